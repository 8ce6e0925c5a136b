from __future__ import annotations

import asyncio

from shared.registry import MemoryRegistry, ServiceNode

NODE = ServiceNode(name="greeter", id="g-1", address="127.0.0.1:1")


async def test_memory_registry_registers_watches_and_deregisters() -> None:
    registry = MemoryRegistry()
    snapshots = registry.watch("greeter")

    assert await anext(snapshots) == []
    await registry.register(NODE)
    assert await asyncio.wait_for(anext(snapshots), 1) == [NODE]
    await registry.deregister(NODE)
    assert await asyncio.wait_for(anext(snapshots), 1) == []


def test_a_node_survives_its_json_round_trip() -> None:
    node = ServiceNode("a", "a-1", "h:1", "2.0", ("x.v1.X",), {"k": "v"})

    assert ServiceNode.from_json(node.to_json()) == node
