"""The registry contract: register, deregister, get and watch the nodes of a service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from shared.registry.node import ServiceNode


class Registry(Protocol):
    async def register(self, node: ServiceNode) -> None:
        """Register the node and keep it registered (through lease loss) until deregistered.

        Returns once the node is registered for the first time.
        """

    async def deregister(self, node: ServiceNode) -> None:
        """Remove the node at once and stop keeping it registered."""

    async def get(self, service: str) -> list[ServiceNode]:
        """The nodes registered now; raises when the registry cannot be reached."""

    def watch(self, service: str) -> AsyncIterator[list[ServiceNode]]:
        """Snapshots of the service's nodes: the current one first, then one per change.

        Runs until cancelled. While the registry is unreachable nothing is yielded, so
        a consumer keeps the last snapshot it had.
        """

    async def stop(self) -> None: ...
