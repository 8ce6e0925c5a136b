"""node_statuses(): every node of every service, with its last heartbeat, on a real etcd."""

from __future__ import annotations

import time

import pytest

from shared.registry import EtcdRegistry, MemoryRegistry, ServiceNode, node_statuses
from tests.support.etcd import EtcdServer

pytestmark = pytest.mark.integration


def node(service: str, n: int) -> ServiceNode:
    return ServiceNode(
        name=service,
        id=f"{service}-{n}",
        address=f"127.0.0.1:{7000 + n}",
        metadata={"registered_at": "1700000000.5"},
    )


async def test_every_node_of_every_service_with_a_recent_heartbeat(etcd: EtcdServer) -> None:
    owner = EtcdRegistry(etcd.endpoint, ttl_s=6)
    observer = EtcdRegistry(etcd.endpoint)
    try:
        for registered in (node("b", 2), node("a", 1), node("b", 3)):
            await owner.register(registered)

        statuses = await node_statuses(observer)
    finally:
        await owner.stop()
        await observer.stop()

    assert [s.node.id for s in statuses] == ["a-1", "b-2", "b-3"]
    for status in statuses:
        assert status.ttl_s == 6
        assert status.last_heartbeat is not None
        assert time.time() - 2 <= status.last_heartbeat <= time.time() + 1
        assert status.registered_at == 1700000000.5


async def test_a_memory_registry_lists_its_nodes_without_heartbeats() -> None:
    registry = MemoryRegistry()
    await registry.register(node("a", 1))

    statuses = await node_statuses(registry)

    assert [(s.node.id, s.last_heartbeat) for s in statuses] == [("a-1", None)]
