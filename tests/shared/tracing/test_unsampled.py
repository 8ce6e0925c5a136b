from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from shared.tracing import (
    TracingMiddleware,
    TracingServerInterceptor,
    client_span,
    consumer_span,
    producer_span,
)
from shared.tracing.propagation import parse_traceparent
from tests.shared.tracing.conftest import Recorded

UNSAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _identity(value: bytes) -> bytes:
    return value


@pytest.fixture
def never(make_recorded: Callable[..., Recorded]) -> Recorded:
    return make_recorded(sampler=ParentBased(TraceIdRatioBased(0.0)))


async def _run_request(recorded: Recorded, headers: dict[str, str]) -> dict[str, Any]:
    """HTTP -> gRPC -> NATS headers, returning what each hop saw of the trace."""
    seen: dict[str, Any] = {}

    async def handler(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        seen["metadata"] = dict(context.invocation_metadata() or ())
        seen["server_span"] = trace.get_current_span()
        return request

    server = grpc.aio.server(interceptors=[TracingServerInterceptor(recorded.tracing)])
    method = grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("t.v1.S", {"Get": method})]
    )
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()

    app = FastAPI()

    @app.get("/go")
    async def go() -> str:
        seen["http_span"] = trace.get_current_span()
        async with grpc.aio.insecure_channel(address) as channel:
            stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/t.v1.S/Get", request_serializer=_identity
            )
            with client_span(recorded.tracing, "t", "Get", "/t.v1.S/Get", address) as (span, md):
                seen["client_span"] = span
                await stub(b"x", metadata=md)
        message_headers: dict[str, str] = {}
        with producer_span(recorded.tracing, "evt", message_headers):
            pass
        seen["message_headers"] = message_headers
        with consumer_span(recorded.tracing, "evt", message_headers) as consumed:
            seen["consumer_span"] = consumed
        return "ok"

    app.add_middleware(TracingMiddleware, tracing=recorded.tracing)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/go", headers=headers)).status_code == 200
    await server.stop(None)
    return seen


async def test_unsampled_root_records_nothing_but_propagates(never: Recorded) -> None:
    seen = await _run_request(never, {})
    http_context = seen["http_span"].get_span_context()
    assert http_context.is_valid
    assert not http_context.trace_flags.sampled
    sent = parse_traceparent(seen["metadata"]["traceparent"])
    assert sent is not None
    assert sent.trace_id == http_context.trace_id
    assert not sent.trace_flags.sampled
    for name in ("http_span", "client_span", "server_span", "consumer_span"):
        assert not seen[name].is_recording(), name
        assert seen[name].get_span_context().trace_id == http_context.trace_id, name
    assert seen["message_headers"]["traceparent"].split("-")[1] == f"{http_context.trace_id:032x}"
    assert never.spans() == []


async def test_unsampled_remote_parent_creates_no_sdk_spans(
    never: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    start_span = never.tracing.tracer.start_span

    def counting(name: str, *args: Any, **kwargs: Any) -> trace.Span:
        calls.append(name)
        return start_span(name, *args, **kwargs)

    monkeypatch.setattr(never.tracing.tracer, "start_span", counting)
    seen = await _run_request(never, {"traceparent": UNSAMPLED_PARENT})
    assert calls == []
    sent = parse_traceparent(seen["metadata"]["traceparent"])
    assert sent is not None
    assert f"{sent.trace_id:032x}" == UNSAMPLED_PARENT.split("-")[1]
    assert never.spans() == []
