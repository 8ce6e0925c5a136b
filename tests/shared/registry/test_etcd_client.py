"""The kit's etcd client on a real 3-member cluster, one member of which hangs (SIGSTOP): its
connections stay open and it answers nothing, as on a machine that hangs or drops off the
network. A stopped member is simpler (its connections are refused or reset at once): the
system tests in tests/test_etcd_cluster.py stop one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.registry import EtcdRegistry, ServiceNode, etcd_client
from tests.support.etcd import EtcdCluster

pytestmark = pytest.mark.integration

# A hung member is found out by HTTP/2 pings: every 5 s, answered within 2 s.
FOUND_OUT_S = 7.0


@pytest.fixture
async def registry(etcd_cluster: EtcdCluster) -> AsyncIterator[EtcdRegistry]:
    registry = EtcdRegistry(etcd_cluster.endpoints, ttl_s=30)
    yield registry
    await registry.stop()


async def test_reads_go_to_another_member_while_one_hangs(etcd_cluster: EtcdCluster) -> None:
    async with etcd_client(etcd_cluster.endpoints) as etcd:
        await etcd.put(b"/probe", b"stored")
        with etcd_cluster.members[1].frozen():
            # Round robin sends every third call to the hung member until it is set aside:
            # each such attempt is abandoned after 0.3 s (ATTEMPT_S) and sent to another one
            # (without that, a read sent there waits for good).
            for _ in range(12):
                async with asyncio.timeout(3):
                    stored = await etcd.get(b"/probe")
                assert stored is not None
                assert stored.value == b"stored"


async def test_a_watch_on_a_member_that_hangs_resumes_on_another(
    etcd_cluster: EtcdCluster, registry: EtcdRegistry
) -> None:
    seen: asyncio.Queue[set[str]] = asyncio.Queue()

    async def watch() -> None:
        async for nodes in registry.watch("probe"):
            seen.put_nowait({node.id for node in nodes})

    watching = asyncio.create_task(watch())
    writer = EtcdRegistry(etcd_cluster.endpoints, ttl_s=30)
    try:
        assert await asyncio.wait_for(seen.get(), 10) == set()
        # One of the members serves the watch: whichever it is, it hangs in one round.
        for index, member in enumerate(etcd_cluster.members):
            with member.frozen():
                node_id = f"probe-{index}"
                async with asyncio.timeout(5):
                    await writer.register(ServiceNode("probe", node_id, f"127.0.0.1:{index + 1}"))
                async with asyncio.timeout(FOUND_OUT_S + 5):
                    while node_id not in await seen.get():
                        pass
    finally:
        watching.cancel()
        await writer.stop()
