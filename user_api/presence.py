"""user_api in the registry too: an HTTP node, so that views of the system (the portal,
`micro services`) show it with its replicas. Nothing calls it through the registry: its
node has no gRPC endpoints, and metadata `protocol=http`.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from shared.registry import ServiceNode
from shared.runtime import Runtime
from shared.server.server import advertised_host


@contextlib.asynccontextmanager
async def announced(runtime: Runtime[Any], host: str, port: int) -> AsyncIterator[ServiceNode]:
    settings = runtime.settings
    node = ServiceNode(
        name=settings.service_name,
        id=f"{settings.service_name}-{uuid.uuid4().hex[:12]}",
        address=f"{advertised_host(host, settings.advertise_host)}:{port}",
        version=settings.service_version,
        metadata={
            "protocol": "http",
            "dependencies": settings.dependencies,
            "registered_at": f"{time.time():.3f}",
        },
    )
    await runtime.registry.register(node)
    try:
        yield node
    finally:
        await runtime.registry.deregister(node)
