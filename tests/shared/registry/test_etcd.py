"""The etcd registry against a real etcd: leases, re-registration, watches."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from shared.registry import EtcdRegistry, ServiceNode
from tests.support.etcd import EtcdServer
from tests.support.services import wait_for_nodes

pytestmark = pytest.mark.integration

NODE = ServiceNode(
    name="greeter",
    id="greeter-1",
    address="127.0.0.1:7001",
    version="1.2.3",
    endpoints=("greet.v1.Greeter",),
    metadata={"zone": "a"},
)


async def test_a_registered_node_is_found_with_its_address_and_metadata(
    registry: EtcdRegistry,
) -> None:
    await registry.register(NODE)

    assert await registry.get("greeter") == [NODE]


async def test_a_deregistered_node_disappears_at_once(registry: EtcdRegistry) -> None:
    await registry.register(NODE)
    await registry.deregister(NODE)

    assert await registry.get("greeter") == []


async def test_a_node_whose_keepalive_stops_disappears_within_the_ttl(etcd: EtcdServer) -> None:
    owner = EtcdRegistry(etcd.endpoint, ttl_s=2)
    observer = EtcdRegistry(etcd.endpoint)
    try:
        await owner.register(NODE)
        await owner.stop()  # stops the keepalive without deleting the key, as a crash would
        started = time.monotonic()
        await wait_for_nodes(observer, "greeter", 0, timeout=5)
        assert time.monotonic() - started < 3.5
    finally:
        await observer.stop()


async def test_watch_yields_the_current_nodes_then_each_change(registry: EtcdRegistry) -> None:
    other = ServiceNode(name="greeter", id="greeter-2", address="127.0.0.1:7002")
    snapshots: asyncio.Queue[set[str]] = asyncio.Queue()

    async def follow() -> None:
        async for nodes in registry.watch("greeter"):
            await snapshots.put({n.id for n in nodes})

    watcher = asyncio.create_task(follow())
    try:
        assert await asyncio.wait_for(snapshots.get(), 5) == set()
        await registry.register(NODE)
        assert await asyncio.wait_for(snapshots.get(), 5) == {"greeter-1"}
        await registry.register(other)
        assert await asyncio.wait_for(snapshots.get(), 5) == {"greeter-1", "greeter-2"}
        await registry.deregister(NODE)
        assert await asyncio.wait_for(snapshots.get(), 5) == {"greeter-2"}
    finally:
        watcher.cancel()


async def _restart_and_wait(etcd: EtcdServer, registry: EtcdRegistry, *, wipe: bool) -> float:
    etcd.stop(signal.SIGKILL)
    if wipe:
        etcd.wipe()
    etcd.start()
    returned = time.monotonic()
    await wait_for_nodes(registry, "greeter", 1, timeout=10)
    return time.monotonic() - returned


async def test_a_node_registers_again_after_etcd_restarts_with_its_data(
    etcd: EtcdServer, registry: EtcdRegistry
) -> None:
    await registry.register(NODE)

    assert await _restart_and_wait(etcd, registry, wipe=False) < 5
    assert await registry.get("greeter") == [NODE]


async def test_a_node_registers_again_after_etcd_comes_back_empty(
    etcd: EtcdServer, registry: EtcdRegistry
) -> None:
    await registry.register(NODE)

    assert await _restart_and_wait(etcd, registry, wipe=True) < 5
    assert await registry.get("greeter") == [NODE]


async def test_a_watch_resumes_after_etcd_restarts(etcd: EtcdServer) -> None:
    owner = EtcdRegistry(etcd.endpoint, ttl_s=3)
    watcher_registry = EtcdRegistry(etcd.endpoint)
    seen: asyncio.Queue[set[str]] = asyncio.Queue()

    async def follow() -> None:
        async for nodes in watcher_registry.watch("greeter"):
            await seen.put({n.id for n in nodes})

    watcher = asyncio.create_task(follow())
    try:
        assert await asyncio.wait_for(seen.get(), 5) == set()
        etcd.stop()
        etcd.wipe()
        etcd.start()
        await owner.register(NODE)
        while await asyncio.wait_for(seen.get(), 10) != {"greeter-1"}:
            pass
    finally:
        watcher.cancel()
        await owner.stop()
        await watcher_registry.stop()
