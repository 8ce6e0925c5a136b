"""What `micro services`, `micro call` and `micro health` do, against a real registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from shared.breaker import Breakers
from shared.client import Client
from shared.config.remote import CONFIG_SERVICE
from shared.errors import Reason, ServiceError
from shared.proto.config.v1 import config_pb2
from shared.reflection import call_json
from shared.registry import EtcdRegistry, ServiceNode
from shared.security.credentials import secure_channel
from shared.security.reload import ReloadingCertificate
from shared.selector import Selector

__all__ = [
    "NodeHealth",
    "call",
    "check_health",
    "get_config",
    "list_services",
    "set_config",
]

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Target:
    etcd: str
    prefix: str = "/micro/registry"
    timeout_s: float = 5.0
    # The operator's certificate (shared.cli.identity); None calls over plain gRPC.
    tls: ReloadingCertificate | None = None


@dataclass(frozen=True)
class NodeHealth:
    node: ServiceNode
    status: str  # SERVING, NOT_SERVING, SERVICE_UNKNOWN, or the gRPC code that prevented an answer


async def list_services(target: Target) -> dict[str, list[ServiceNode]]:
    """Every registered node, by service name, read once from etcd."""
    registry = _registry(target)
    try:
        async with asyncio.timeout(target.timeout_s):
            listing = await registry.client.get_prefix(f"{target.prefix.rstrip('/')}/".encode())
    except Exception as error:  # aetcd raises its own errors, grpc's and OSError
        raise ServiceError(Reason.UNAVAILABLE, f"etcd at {target.etcd}: {error!r}") from None
    finally:
        await registry.stop()
    services: dict[str, list[ServiceNode]] = {}
    for item in listing:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            node = ServiceNode.from_json(item.value)
            services.setdefault(node.name, []).append(node)
    return {name: sorted(nodes, key=lambda n: n.id) for name, nodes in sorted(services.items())}


async def call(target: Target, service: str, method: str, json_text: str) -> dict[str, Any]:
    async with _client(target) as client:
        return await call_json(client, service, method, json_text, timeout=target.timeout_s)


async def check_health(target: Target, service: str) -> list[NodeHealth]:
    """Ask each node of `service` for its gRPC health (grpc.health.v1), all at once."""
    nodes = (await list_services(target)).get(service, [])
    return list(await asyncio.gather(*(_check(node, target) for node in nodes)))


def _channel(node: ServiceNode, tls: ReloadingCertificate | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(node.address)
    return secure_channel(node.address, node.name, tls)


async def _check(node: ServiceNode, target: Target) -> NodeHealth:
    timeout_s = target.timeout_s
    async with _channel(node, target.tls) as channel:
        check = channel.unary_unary(
            _HEALTH_CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply = await check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            return NodeHealth(node, error.code().name)
    return NodeHealth(node, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def get_config(target: Target, app: str) -> dict[str, Any]:
    request = config_pb2.GetConfigRequest(app=app)
    async with _client(target) as client:
        snapshot = await client.call(CONFIG_SERVICE, "GetConfig", request)
    return _document(snapshot)


async def set_config(target: Target, app: str, json_text: str) -> dict[str, Any]:
    """Through config_service, which checks the document against the app's schema first."""
    request = config_pb2.SetConfigRequest(app=app, json=json_text)
    async with _client(target) as client:
        snapshot = await client.call(CONFIG_SERVICE, "SetConfig", request)
    return _document(snapshot)


def _document(snapshot: config_pb2.ConfigSnapshot) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(snapshot.json or "{}")
    return document


def etcd_login() -> tuple[str | None, str | None]:
    """The operator's etcd login: ETCD_USERNAME and ETCD_PASSWORD_FILE, else next to a
    `make run` (etcd's auth on) its root user from <RUN_DIR>/etcd-users; else none."""
    username, password_file = os.environ.get("ETCD_USERNAME"), os.environ.get("ETCD_PASSWORD_FILE")
    if not username:
        username = "root"
        password_file = str(Path(os.environ.get("RUN_DIR", ".run")) / "etcd-users/root.password")
    if password_file is None or not Path(password_file).is_file():
        return None, None
    return username, Path(password_file).read_text().strip()


def _registry(target: Target) -> EtcdRegistry:
    username, password = etcd_login()
    return EtcdRegistry(
        target.etcd,
        prefix=target.prefix,
        call_timeout_s=target.timeout_s,
        username=username,
        password=password,
    )


@contextlib.asynccontextmanager
async def _client(target: Target) -> AsyncIterator[Client]:
    registry = _registry(target)
    selector = Selector(registry)
    client = Client(selector, Breakers(), default_timeout_s=target.timeout_s, tls=target.tls)
    try:
        yield client
    finally:
        await client.stop()
        await selector.stop()
        await registry.stop()
