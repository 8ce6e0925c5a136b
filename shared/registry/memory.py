"""An in-process registry for unit tests and single-process examples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from shared.registry.node import ServiceNode


class MemoryRegistry:
    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, ServiceNode]] = {}
        self._changed = asyncio.Condition()

    async def register(self, node: ServiceNode) -> None:
        async with self._changed:
            self._nodes.setdefault(node.name, {})[node.id] = node
            self._changed.notify_all()

    async def deregister(self, node: ServiceNode) -> None:
        async with self._changed:
            self._nodes.get(node.name, {}).pop(node.id, None)
            self._changed.notify_all()

    async def get(self, service: str) -> list[ServiceNode]:
        return list(self._nodes.get(service, {}).values())

    async def all(self) -> list[ServiceNode]:
        """Every node of every service."""
        return [node for nodes in self._nodes.values() for node in nodes.values()]

    async def watch(self, service: str) -> AsyncIterator[list[ServiceNode]]:
        last: list[ServiceNode] | None = None
        while True:
            async with self._changed:
                current = await self.get(service)
                while current == last:
                    await self._changed.wait()
                    current = await self.get(service)
            last = current
            yield current

    async def stop(self) -> None:
        self._nodes.clear()
