"""Calling any registered service with JSON, through gRPC server reflection.

grpcurl's trick in the kit's terms: ask a node of the service for the descriptors of the
gRPC services it registered (`ServiceNode.endpoints`), build message classes from them,
parse JSON into the request and print the response as JSON. The call itself goes through
the kit's client, so it has what every call has: discovery, the breaker `service.Method`,
the deadline, and retries on another node for methods marked safe.

    catalog = Catalog(client)  # keep one: descriptors are fetched once per service
    reply = await call_json(client, "order", "CreateOrder", '{"title": "a"}', catalog=catalog)

`micro call` and user_api's `/rpc/{service}/{method}` gateway both use this module.

Production turns reflection off (REFLECTION_ENABLED). When a node does not answer
reflection, the catalog finds the services it registered among the contracts this
process has itself (`local_contracts`: every generated `*_pb2` module
under `shared/proto`, which is where the project keeps them), so that an operator's
`micro call` and the gateway work without the method list being served to every caller.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import pkgutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import FileDescriptorProto, MethodOptions
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2

from shared import deadline, jsonbody
from shared.client import Client, Endpoint
from shared.client.call import Metadata
from shared.errors import Reason, ServiceError

__all__ = ["Catalog", "Method", "call_json", "parse_method"]

_REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
_SAFE_LEVELS = frozenset({MethodOptions.NO_SIDE_EFFECTS, MethodOptions.IDEMPOTENT})
_DEFAULT_TIMEOUT_S = 3.0
# An unknown method name refetches the descriptors (the service may have been upgraded),
# but not more often than this: a stream of bad names must not become reflection calls.
_REFRESH_AFTER_S = 10.0
_MAX_DEPENDENCY_ROUNDS = 8


@dataclass(frozen=True)
class Method:
    service: str  # the registry name: "order"
    input: type[Message]
    # Path "/order.v1.OrderService/CreateOrder", method "CreateOrder" (so the breaker is
    # "order.CreateOrder"), safe when NO_SIDE_EFFECTS or IDEMPOTENT (retried elsewhere).
    endpoint: Endpoint


@dataclass(frozen=True)
class _Schema:
    services: tuple[ServiceDescriptor, ...]
    fetched_at: float


def parse_method(method: str) -> tuple[str | None, str]:
    """'Method', 'pkg.Service/Method', '/pkg.Service/Method' or 'pkg.Service.Method'."""
    text = method.strip().lstrip("/")
    if "/" in text:
        service, _, name = text.partition("/")
    else:
        service, _, name = text.rpartition(".")
    if not name or not name.isidentifier() or (service and "/" in service):
        raise ServiceError(Reason.INVALID_ARGUMENT, f"not a method name: {method!r}")
    return service or None, name


class Catalog:
    """The descriptors of registered services, fetched by reflection and kept per service."""

    def __init__(
        self,
        client: Client,
        *,
        timeout_s: float = _DEFAULT_TIMEOUT_S,
        local: Callable[[], descriptor_pool.DescriptorPool] | None = None,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        # The contracts of a service whose nodes serve no reflection (default: the project's).
        self._local = local if local is not None else local_contracts
        self._schemas: dict[str, _Schema] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Only names that resolved: what a caller sends cannot grow this beyond the methods.
        self._methods: dict[tuple[str, str], tuple[_Schema, Method]] = {}
        self.fetches = 0  # reflection round trips so far, for tests and debugging

    async def method(self, service: str, method: str) -> Method:
        """The method of `service` named `method`; NOT_FOUND, UNAVAILABLE or INVALID_ARGUMENT."""
        schema = await self._schema(service)
        known = self._methods.get((service, method))
        if known is not None and known[0] is schema:
            return known[1]
        wanted_service, name = parse_method(method)
        found = _find(schema, wanted_service, name)
        if found is None and time.monotonic() - schema.fetched_at > _REFRESH_AFTER_S:
            schema = await self._schema(service, stale=schema)
            found = _find(schema, wanted_service, name)
        if found is None:
            served = ", ".join(s.full_name for s in schema.services) or "nothing"
            raise ServiceError(Reason.NOT_FOUND, f"{service} has no method {method} ({served})")
        if found.client_streaming or found.server_streaming:
            raise ServiceError(Reason.INVALID_ARGUMENT, f"{method} streams: not callable as JSON")
        path = f"/{found.containing_service.full_name}/{found.name}"
        safe = found.GetOptions().idempotency_level in _SAFE_LEVELS
        output = message_factory.GetMessageClass(found.output_type).FromString
        resolved = Method(
            service,
            message_factory.GetMessageClass(found.input_type),
            Endpoint(path, found.name, safe, _serialize, output),
        )
        self._methods[(service, method)] = (schema, resolved)
        return resolved

    async def _schema(self, service: str, stale: _Schema | None = None) -> _Schema:
        schema = self._schemas.get(service)
        if schema is not None and schema is not stale:
            return schema
        lock = self._locks.setdefault(service, asyncio.Lock())
        async with lock:  # concurrent first calls share one fetch
            schema = self._schemas.get(service)
            if schema is None or schema is stale:
                schema = self._schemas[service] = await self._fetch(service)
            return schema

    async def _fetch(self, service: str) -> _Schema:
        timeout = self._budget()
        if not await self._client.selector.wait_ready(service, timeout):
            raise ServiceError(Reason.UNAVAILABLE, f"{service} not found in the registry")
        nodes = self._client.selector.nodes(service)
        if not nodes:
            raise ServiceError(Reason.UNAVAILABLE, f"no available node of {service}")
        failure: Exception | None = None
        for node in nodes:  # any node will do; the next one if this one cannot answer
            channel = self._client.node_channel(node.address, service)
            try:
                self.fetches += 1
                return await _describe(channel, node.endpoints, self._budget())
            except (grpc.RpcError, TimeoutError) as error:
                # Reflection off answers UNIMPLEMENTED, or cuts the stream short while the
                # request is still being sent (INTERNAL): either way, and for a node that
                # cannot answer, the project's own contracts do when they hold its services.
                known = _known(self._local(), node.endpoints)
                if known is not None:
                    return known
                failure = error
        raise ServiceError(
            Reason.UNAVAILABLE,
            f"no node of {service} answered reflection ({failure!r}), "
            "and its contract is not among this project's",
        )

    def _budget(self) -> float:
        left = deadline.remaining()
        return self._timeout_s if left is None else max(0.0, min(left, self._timeout_s))


async def call_json(
    client: Client,
    service: str,
    method: str,
    json_text: str | bytes,
    *,
    catalog: Catalog | None = None,
    timeout: float | None = None,
    metadata: Metadata | None = None,
) -> dict[str, Any]:
    """Call `service`'s `method` with a JSON request; the response as a JSON-ready dict.

    Errors are `ServiceError`s: INVALID_ARGUMENT for JSON that does not fit the request,
    NOT_FOUND for an unknown method, UNAVAILABLE for a service with no reachable node, and
    whatever the service itself answered.
    """
    found = await (catalog or Catalog(client)).method(service, method)
    request = found.input()
    raw = json_text.encode() if isinstance(json_text, str) else json_text
    try:
        # With the kit's bounds (nesting, number length), as every JSON body it takes.
        document = jsonbody.loads(raw or b"{}")
    except jsonbody.JsonBodyError as error:
        raise ServiceError(Reason.INVALID_ARGUMENT, f"request: {error}") from None
    if not isinstance(document, dict):
        raise ServiceError(Reason.INVALID_ARGUMENT, "request: a JSON object")
    try:
        json_format.ParseDict(document, request)
    except (json_format.ParseError, ValueError, TypeError) as error:
        raise ServiceError(Reason.INVALID_ARGUMENT, f"request: {error}") from None
    route = await client.route(service, found.endpoint)
    response = await client.invoke(route, request, timeout=timeout, metadata=metadata)
    return json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _find(schema: _Schema, service: str | None, name: str) -> MethodDescriptor | None:
    candidates = [
        s.methods_by_name[name]
        for s in schema.services
        if name in s.methods_by_name and service in (None, s.full_name)
    ]
    if len(candidates) > 1:
        options = ", ".join(f"{m.containing_service.full_name}/{name}" for m in candidates)
        raise ServiceError(Reason.INVALID_ARGUMENT, f"{name} is ambiguous: say one of {options}")
    return candidates[0] if candidates else None


@functools.cache
def local_contracts() -> descriptor_pool.DescriptorPool:
    """The default pool, holding every contract generated under `shared/proto`."""
    import shared.proto

    for module in pkgutil.walk_packages(shared.proto.__path__, "shared.proto."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    return descriptor_pool.Default()


def _known(pool: descriptor_pool.DescriptorPool, endpoints: Sequence[str]) -> _Schema | None:
    """The services `endpoints` names, from `pool`; None unless it holds them all."""
    try:
        services = tuple(pool.FindServiceByName(name) for name in endpoints)
    except KeyError:
        return None
    return _Schema(services, time.monotonic())


async def _describe(channel: grpc.aio.Channel, endpoints: Sequence[str], timeout: float) -> _Schema:
    """Fetch the files that define `endpoints` (what the node registered), and their imports."""
    with_deadline = time.monotonic() + timeout
    names = list(endpoints)
    files: dict[str, FileDescriptorProto] = {}
    wanted = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=n) for n in names]
    for _ in range(_MAX_DEPENDENCY_ROUNDS):
        for reply in await _reflect(channel, wanted, max(0.0, with_deadline - time.monotonic())):
            if reply.HasField("error_response"):
                raise ServiceError(Reason.NOT_FOUND, reply.error_response.error_message)
            for raw in reply.file_descriptor_response.file_descriptor_proto:
                file = FileDescriptorProto.FromString(raw)
                files[file.name] = file
        missing = sorted({dep for f in files.values() for dep in f.dependency} - set(files))
        if not missing:
            break
        wanted = [reflection_pb2.ServerReflectionRequest(file_by_filename=m) for m in missing]
    # A pool of its own: the descriptors of another version of a service, or of a file this
    # process also imports, can never clash with the default pool.
    pool, added = descriptor_pool.DescriptorPool(), set[str]()
    try:
        while len(added) < len(files):
            ready = [n for n, f in files.items() if n not in added and set(f.dependency) <= added]
            if not ready:
                raise ValueError(f"imports that reflection did not give: {sorted(files)}")
            for name in ready:
                pool.Add(files[name])
                added.add(name)
        services = tuple(pool.FindServiceByName(n) for n in names)
    except (KeyError, TypeError, ValueError) as error:
        raise ServiceError(Reason.INTERNAL, f"unusable descriptors: {error}") from None
    return _Schema(services, time.monotonic())


async def _reflect(
    channel: grpc.aio.Channel,
    requests: list[reflection_pb2.ServerReflectionRequest],
    timeout: float,
) -> list[reflection_pb2.ServerReflectionResponse]:
    stream = channel.stream_stream(
        _REFLECTION,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = stream(iter(requests), timeout=timeout)
    return [reply async for reply in call]


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
