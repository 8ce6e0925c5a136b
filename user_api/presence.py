"""user_api in the registry too: an HTTP node, so that views of the system (the portal,
`micro services`) show it with its replicas. Nothing calls it through the registry: its
node has no gRPC endpoints, and metadata `protocol=http`.
"""

from __future__ import annotations

from typing import Any

from shared.registry import ServiceNode
from shared.runtime import Runtime
from shared.server.server import advertised_host


class HttpPresence:
    """A part of the app: registered once HTTP listens, deregistered before it drains."""

    def __init__(self, runtime: Runtime[Any], host: str, port: int) -> None:
        settings = runtime.settings
        self._registry = runtime.registry
        self._node = ServiceNode.new(
            settings.service_name,
            f"{advertised_host(host, settings.advertise_host)}:{port}",
            version=settings.service_version,
            metadata={"protocol": "http", "dependencies": settings.dependencies},
        )

    async def start(self) -> None:
        await self._registry.register(self._node)

    async def stop(self) -> None:
        await self._registry.deregister(self._node)
