"""PRODUCER and CONSUMER spans for NATS messages, with the context in the message headers.

The broker calls these around publish and around each handler; headers are a plain
`dict[str, str]` so that the memory broker and NATS carry them the same way.
"""

from __future__ import annotations

from types import TracebackType

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, Span, SpanKind

from shared.tracing.propagation import inject_headers, parent_from_headers, write_headers
from shared.tracing.setup import Tracing
from shared.tracing.spans import ROOT_CONTEXT, ActiveSpan, EndingSpan, unsampled_parent

__all__ = ["consumer_span", "inject_headers", "producer_span"]

MESSAGING_SYSTEM = "nats"


def producer_span(
    tracing: Tracing, subject: str, headers: dict[str, str]
) -> EndingSpan | _Unrecorded:
    """Span `<subject> publish` around a publish; writes its context into `headers`.

    The span is not made current: a publish has no children. Under an unsampled parent
    the headers get the parent's context (sampled flag off) and no span is created.
    """
    if not tracing.enabled:
        return _DISABLED
    parent = trace.get_current_span()
    if unsampled_parent(parent.get_span_context(), tracing.skip_unsampled):
        inject_headers(headers)
        return _Unrecorded(parent)
    span = tracing.tracer.start_span(
        f"{subject} publish",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": subject,
            "messaging.operation.name": "publish",
            "messaging.operation.type": "send",
        },
    )
    write_headers(headers, span.get_span_context())
    return EndingSpan(span)


def consumer_span(
    tracing: Tracing, subject: str, headers: dict[str, str] | None
) -> ActiveSpan | _Unrecorded:
    """Span `<subject> process` around a handler, parented on the producer via `headers`.

    The span is current inside the block, so the handler's SQL, calls and publishes join
    the producer's trace; an exception escaping the block marks it failed.
    """
    if not tracing.enabled:
        return _DISABLED
    parent = parent_from_headers(headers)
    if unsampled_parent(parent, tracing.skip_unsampled):
        return ActiveSpan(NonRecordingSpan(parent), end=False)  # type: ignore[arg-type]
    parent_context = (
        ROOT_CONTEXT
        if parent is None
        else trace.set_span_in_context(NonRecordingSpan(parent), ROOT_CONTEXT)
    )
    span = tracing.tracer.start_span(
        f"{subject} process",
        parent_context,
        SpanKind.CONSUMER,
        {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": subject,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
        },
    )
    return ActiveSpan(span)


class _Unrecorded:
    """Yields a span that records nothing; used when tracing is off or the trace unsampled."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_DISABLED = _Unrecorded(INVALID_SPAN)
