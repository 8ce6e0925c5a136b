"""An in-process OTLP/gRPC trace receiver for tests: what Jaeger would get, flattened.

It serves on a thread pool (a plain `grpc.server`), not on the test's event loop: the SDK's
exporter makes blocking gRPC calls, and a test that flushes synchronously from the loop
would otherwise wait on a receiver that the same blocked loop has to run. Arrivals wake
`wait_for` through `call_soon_threadsafe`, so waiting is event-driven, never a poll.

    async def test_x(otlp_receiver):
        tracing = setup_tracing("svc", ..., endpoint=otlp_receiver.endpoint)
        ...
        spans = await otlp_receiver.wait_for(lambda spans: len(spans) >= 2)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

__all__ = ["OtlpReceiver", "ReceivedSpan", "otlp_receiver"]


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    kind: str  # "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "INTERNAL"
    service_name: str
    attributes: dict[str, Any]
    status_code: str  # "UNSET", "OK", "ERROR"
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any] = field(repr=False)


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.stop(None).wait)
            self._server = None

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = [
            _flatten(span, resource)
            for resource_spans in request.resource_spans
            for resource in [_attributes(resource_spans.resource.attributes)]
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.spans.extend(received)
            self.requests += 1
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._notify)
        return trace_service_pb2.ExportTraceServiceResponse()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for(
        self,
        predicate: Callable[[list[ReceivedSpan]], bool],
        timeout: float = 5.0,
    ) -> list[ReceivedSpan]:
        """Wait until `predicate(all spans so far)` holds; return the spans then."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    spans = self.snapshot()
                    if predicate(spans):
                        return spans
                    await changed.wait()
        except TimeoutError:
            names = [f"{s.service_name}:{s.name}" for s in self.snapshot()]
            raise TimeoutError(f"spans received after {timeout}s did not match: {names}") from None

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def by_name(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.snapshot() if span.name == name]


@pytest_asyncio.fixture
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def _flatten(span: Span, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        service_name=str(resource.get("service.name", "")),
        attributes=_attributes(span.attributes),
        status_code=Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        status_message=span.status.message,
        events=[(event.name, _attributes(event.attributes)) for event in span.events],
        resource=resource,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        result[pair.key] = _value(pair.value)
    return result


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None
