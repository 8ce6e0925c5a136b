from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from shared.errors import Reason, ServiceError
from shared.tracing import (
    TracingServerInterceptor,
    annotate_breaker,
    client_span,
    mark_short_circuited,
)
from tests.shared.tracing.conftest import Recorded

SERVICE = "test.v1.Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return request


async def _business(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise ServiceError(Reason.NOT_FOUND, "no such user")


async def _aborts_business(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    # What the kit's server does with a ServiceError: a status plus the reason in trailers.
    error = ServiceError("BAD_PASSWORD", grpc_code=grpc.StatusCode.UNAUTHENTICATED)
    await context.abort(error.grpc_code, error.message, error.trailing_metadata())


async def _unavailable(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise ServiceError(Reason.UNAVAILABLE, "db down")


async def _crash(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise RuntimeError("boom")


async def _stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    for _ in range(3):
        yield request


STREAM_CLOSED = asyncio.Event()


async def _endless(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    try:
        while True:
            yield request
            await asyncio.sleep(0.01)
    finally:
        STREAM_CLOSED.set()


def _identity(value: bytes) -> bytes:
    return value


def _unary(behavior: Callable[..., Any]) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        behavior, request_deserializer=_identity, response_serializer=_identity
    )


@pytest.fixture
async def server_address(recorded: Recorded) -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[TracingServerInterceptor(recorded.tracing)])
    handlers = {
        "Echo": _unary(_echo),
        "Business": _unary(_business),
        "AbortsBusiness": _unary(_aborts_business),
        "Unavailable": _unary(_unavailable),
        "Crash": _unary(_crash),
        "Stream": grpc.unary_stream_rpc_method_handler(
            _stream, request_deserializer=_identity, response_serializer=_identity
        ),
        "Endless": grpc.unary_stream_rpc_method_handler(
            _endless, request_deserializer=_identity, response_serializer=_identity
        ),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def _call(recorded: Recorded, address: str, method: str) -> None:
    full_method = f"/{SERVICE}/{method}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            full_method, request_serializer=_identity, response_deserializer=_identity
        )
        with client_span(recorded.tracing, "echo", method, full_method, address) as (span, md):
            annotate_breaker(span, f"echo.{method}", "closed")
            await stub(b"hi", metadata=md)


def _pair(recorded: Recorded, method: str) -> tuple[ReadableSpan, ReadableSpan]:
    spans = [s for s in recorded.spans() if s.name == f"{SERVICE}/{method}"]
    client = next(s for s in spans if s.kind is SpanKind.CLIENT)
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    return client, server


async def test_server_span_is_child_of_client_span(recorded: Recorded, server_address: str) -> None:
    with recorded.tracing.tracer.start_as_current_span("request") as outer:
        await _call(recorded, server_address, "Echo")
    client, server = _pair(recorded, "Echo")
    trace_id = outer.get_span_context().trace_id
    assert client.context is not None
    assert server.context is not None
    assert client.context.trace_id == server.context.trace_id == trace_id
    assert client.parent is not None
    assert client.parent.span_id == outer.get_span_context().span_id
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    assert dict(server.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Echo",
        "rpc.grpc.status_code": 0,
    }
    client_attributes = dict(client.attributes or {})
    assert client_attributes["rpc.method"] == "Echo"
    assert client_attributes["server.address"] == "127.0.0.1"
    assert client_attributes["breaker.command"] == "echo.Echo"
    assert client_attributes["breaker.state"] == "closed"
    assert client.status.status_code is server.status.status_code is StatusCode.UNSET


async def test_server_span_without_traceparent_is_a_root(
    recorded: Recorded, server_address: str
) -> None:
    async with grpc.aio.insecure_channel(server_address) as channel:
        stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{SERVICE}/Echo", request_serializer=_identity
        )
        with recorded.tracing.tracer.start_as_current_span("unrelated"):
            await stub(b"hi")  # no metadata: no traceparent
    server = recorded.one(f"{SERVICE}/Echo")
    assert server.parent is None


async def test_business_error_is_not_a_span_error(recorded: Recorded, server_address: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await _call(recorded, server_address, "Business")
    _, server = _pair(recorded, "Business")
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes is not None
    assert server.attributes["error.reason"] == "NOT_FOUND"
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert not server.events


async def test_aborted_business_error_is_not_an_error_on_either_side(
    recorded: Recorded, server_address: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await _call(recorded, server_address, "AbortsBusiness")
    client, server = _pair(recorded, "AbortsBusiness")
    for span in (client, server):
        assert span.status.status_code is StatusCode.UNSET
        assert span.attributes is not None
        assert span.attributes["error.reason"] == "BAD_PASSWORD"
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]


@pytest.mark.parametrize(("method", "message"), [("Crash", "boom"), ("Unavailable", "db down")])
async def test_real_error_is_a_span_error(
    recorded: Recorded, server_address: str, method: str, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await _call(recorded, server_address, method)
    client, server = _pair(recorded, method)
    assert server.status.status_code is StatusCode.ERROR
    assert message in (server.status.description or "")
    assert [event.name for event in server.events] == ["exception"]
    assert client.status.status_code is StatusCode.ERROR


async def test_streaming_call_gets_one_span(recorded: Recorded, server_address: str) -> None:
    full_method = f"/{SERVICE}/Stream"
    async with grpc.aio.insecure_channel(server_address) as channel:
        stub: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            full_method, request_serializer=_identity
        )
        with client_span(recorded.tracing, "echo", "Stream", full_method, server_address) as (
            _,
            md,
        ):
            responses = [r async for r in stub(b"x", metadata=md)]
    assert len(responses) == 3
    client, server = _pair(recorded, "Stream")
    assert server.parent is not None
    assert client.context is not None
    assert server.parent.span_id == client.context.span_id
    assert server.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == 0


def test_short_circuit_marks_the_client_span(recorded: Recorded) -> None:
    def call() -> None:
        with client_span(recorded.tracing, "user", "Get", "/u.v1.U/Get", "10.0.0.1:50051") as (
            span,
            _,
        ):
            annotate_breaker(span, "user.Get", "open")
            mark_short_circuited(span, "user.Get")
            raise ServiceError(Reason.CIRCUIT_OPEN)

    with pytest.raises(ServiceError):
        call()
    client = recorded.one("u.v1.U/Get")
    assert client.status.status_code is StatusCode.ERROR
    assert next(event.name for event in client.events) == "breaker.short_circuited"
    assert client.attributes is not None
    assert client.attributes["breaker.state"] == "open"
    assert client.attributes["error.reason"] == "CIRCUIT_OPEN"
    assert client.attributes["server.port"] == 50051


async def test_cancelled_stream_is_not_a_server_error(
    recorded: Recorded, server_address: str
) -> None:
    STREAM_CLOSED.clear()
    async with grpc.aio.insecure_channel(server_address) as channel:
        stub: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
            f"/{SERVICE}/Endless", request_serializer=_identity
        )
        call = stub(b"x")
        assert await call.read() == b"x"
        call.cancel()
        await asyncio.wait_for(STREAM_CLOSED.wait(), 5)
    server = recorded.one(f"{SERVICE}/Endless")
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
