"""The kit's grpc.aio server: health, reflection, the chain of middleware, and the registry.

Start, then register; on stop, say NOT_SERVING, deregister, then drain (kratos' order):
callers stop picking the node before it stops answering.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.registry import Registry, ServiceNode
from shared.server.chain import ChainInterceptor
from shared.server.links import ServerMiddleware
from shared.tracing import Tracing

log = logging.getLogger(__name__)

Servicer = TypeVar("Servicer")

_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.so_reuseport", 0),
]


def advertised_host(bind_host: str, advertise_host: str | None) -> str:
    """The host other services dial: explicit, else the bind host, else this host's address."""
    if advertise_host:
        return advertise_host
    if bind_host not in ("", "0.0.0.0", "::", "[::]"):
        return bind_host
    return socket.gethostbyname(socket.gethostname())


class GrpcServer:
    def __init__(
        self,
        *,
        name: str,
        version: str,
        registry: Registry,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_host: str | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        tracing: Tracing | None = None,
        middleware: Sequence[ServerMiddleware] = (),
        metadata: Mapping[str, str] | None = None,
        drain_s: float = 5.0,
    ) -> None:
        self.name = name
        self._version = version
        self._registry = registry
        self._host = host
        self._port = port
        self._advertise_host = advertise_host
        self._metadata = dict(metadata or {})
        self._drain_s = drain_s
        # The kit's chain (see shared/server/chain.py) with `middleware` of your own in it.
        chain = ChainInterceptor(tracing or Tracing.disabled(), middleware)
        self._server = grpc.aio.server(interceptors=[*interceptors, chain], options=_OPTIONS)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._services: list[str] = []
        self.node: ServiceNode | None = None

    def add_service(
        self,
        add_to_server: Callable[[Servicer, grpc.aio.Server], None],
        servicer: Servicer,
        descriptor: ServiceDescriptor,
    ) -> None:
        add_to_server(servicer, self._server)
        self._services.append(descriptor.full_name)

    @property
    def grpc_server(self) -> grpc.aio.Server:
        return self._server

    async def start(self) -> ServiceNode:
        port = self._server.add_insecure_port(f"{self._host}:{self._port}")
        reflection.enable_server_reflection(
            [*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        await self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()
        self.node = ServiceNode(
            name=self.name,
            id=f"{self.name}-{uuid.uuid4().hex[:12]}",
            address=f"{advertised_host(self._host, self._advertise_host)}:{port}",
            version=self._version,
            endpoints=tuple(self._services),
            metadata=self._metadata,
        )
        await self._registry.register(self.node)
        # Healthy once callers can find it: a node still waiting for etcd is not.
        for service in ("", *self._services):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s serving on %s as %s", self.name, self.node.address, self.node.id)
        return self.node

    async def stop(self) -> None:
        await self._health.enter_graceful_shutdown()
        if self.node is not None:
            await self._registry.deregister(self.node)
            log.info("%s deregistered %s", self.name, self.node.id)
        await self._server.stop(self._drain_s)

    async def wait_for_termination(self) -> Any:
        return await self._server.wait_for_termination()
