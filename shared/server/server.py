"""The kit's grpc.aio server: health, reflection, the chain of middleware.

It starts NOT_SERVING and reports its node (bound address, services); the application
(`shared.app.App`) registers the node once every part serves and turns it SERVING, then
on stop says NOT_SERVING and deregisters before this server drains.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.registry import ServiceNode
from shared.security.policy import Policy
from shared.server.chain import ChainInterceptor
from shared.server.links import ServerMiddleware
from shared.server.shedding import Admission
from shared.tracing import Tracing

log = logging.getLogger(__name__)

Servicer = TypeVar("Servicer")

MiB = 1024 * 1024

_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    # Below the kit's clients' 5 s keep-alive (shared/client/client.py), with a margin: a
    # ping sooner than this is a strike, and a few strikes end the connection.
    ("grpc.http2.min_ping_interval_without_data_ms", 4000),
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
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_host: str | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        tracing: Tracing | None = None,
        middleware: Sequence[ServerMiddleware] = (),
        metadata: Mapping[str, str] | None = None,
        drain_s: float = 5.0,
        credentials: grpc.ServerCredentials | None = None,
        reflection: bool = True,
        policy: Policy | None = None,
        max_message_bytes: int = 4 * MiB,
        max_concurrent_rpcs: int | None = None,
        default_deadline_s: float | None = 30.0,
        admissions: Mapping[str, Admission] | None = None,
        default_admission: Admission | None = None,
    ) -> None:
        """Limits: a message larger than `max_message_bytes` either way is refused with
        RESOURCE_EXHAUSTED; beyond `max_concurrent_rpcs` calls at once (streams included)
        gRPC refuses the call; a unary call without a deadline gets `default_deadline_s`.
        `admissions` bound each method's running and waiting calls (see
        `shared.server.shedding`), keyed by method path or name; other methods get
        `default_admission` (None: no shedding)."""
        self.name = name
        self._version = version
        self._host = host
        self._port = port
        self._advertise_host = advertise_host
        self._metadata = dict(metadata or {})
        self._drain_s = drain_s
        # mTLS (shared.security.credentials.server_credentials); None serves plain gRPC.
        self._credentials = credentials
        # Server reflection lists every method: production turns it off (REFLECTION_ENABLED).
        self._reflection = reflection
        # Who may call what: each service added declares its methods' `allowed_callers`.
        self._policy = policy
        # The kit's chain (see shared/server/chain.py) with `middleware` of your own in it.
        chain = ChainInterceptor(
            tracing or Tracing.disabled(),
            middleware,
            policy,
            admissions=admissions,
            default_admission=default_admission,
            default_deadline_s=default_deadline_s,
        )
        options = [
            *_OPTIONS,
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        self._streams = chain.streams
        self._server = grpc.aio.server(
            interceptors=[*interceptors, chain],
            options=options,
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
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
        if self._policy is not None:
            self._policy.declare(descriptor)

    @property
    def grpc_server(self) -> grpc.aio.Server:
        return self._server

    @property
    def address(self) -> str:
        """The address callers dial (host:port), once started."""
        if self.node is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.node.address

    async def start(self) -> ServiceNode:
        """Bind and serve, NOT_SERVING to health checks until `set_serving(True)`."""
        bind = f"{self._host}:{self._port}"
        if self._credentials is not None:
            port = self._server.add_secure_port(bind, self._credentials)
        else:
            port = self._server.add_insecure_port(bind)
        if self._reflection:
            reflection.enable_server_reflection(
                [*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
            )
        await self._health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.start()
        self.node = ServiceNode.new(
            self.name,
            f"{advertised_host(self._host, self._advertise_host)}:{port}",
            version=self._version,
            endpoints=tuple(self._services),
            metadata=self._metadata,
        )
        log.info("%s listening on %s", self.name, self.node.address)
        return self.node

    async def set_serving(self, serving: bool) -> None:
        """SERVING once callers can find the node; NOT_SERVING for good once stopping."""
        if not serving:
            await self._health.enter_graceful_shutdown()
            return
        for service in ("", *self._services):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self) -> None:
        """NOT_SERVING, end the server streams, then finish the calls in flight for up to
        `drain_s`."""
        await self._health.enter_graceful_shutdown()
        self._streams.end_all()  # their callers subscribe again on another node
        await self._server.stop(self._drain_s)
