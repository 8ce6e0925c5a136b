"""W3C trace context (`traceparent`, `tracestate`) for gRPC metadata and message headers.

A lean codec instead of the global propagator: the hot paths (every gRPC call, every
message) need only these two fields, and formatting them directly skips the getter/setter
indirection and the per-call `Context` the generic propagator builds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

Metadata = tuple[tuple[str, str], ...]

# Future versions may append fields, so the match is a prefix match; version 00 may not.
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_FLAGS = tuple(TraceFlags(i) for i in range(256))


def format_traceparent(span_context: SpanContext) -> str:
    trace_id, span_id, _, flags = span_context[:4]
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def outgoing_metadata(span_context: SpanContext) -> Metadata:
    """The (key, value) pairs to send with a call made under `span_context`."""
    if not span_context.is_valid:
        return ()
    traceparent = (TRACEPARENT, format_traceparent(span_context))
    if span_context.trace_state:
        return (traceparent, (TRACESTATE, span_context.trace_state.to_header()))
    return (traceparent,)


def parse_traceparent(traceparent: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The remote parent named by the headers, or None when absent or malformed."""
    if not traceparent:
        return None
    match = _TRACEPARENT_RE.fullmatch(traceparent.strip(" \t"))
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id = int(trace_hex, 16)
    span_id = int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    return SpanContext(trace_id, span_id, True, _FLAGS[int(flags_hex, 16)], state)


def parent_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> SpanContext | None:
    """The remote parent in gRPC invocation metadata (keys arrive lower-cased)."""
    traceparent = tracestate = None
    for key, value in metadata or ():
        if key == TRACEPARENT and isinstance(value, str):
            traceparent = value
        elif key == TRACESTATE and isinstance(value, str):
            tracestate = value
    return parse_traceparent(traceparent, tracestate) if traceparent else None


def parent_from_headers(headers: Mapping[str, str] | None) -> SpanContext | None:
    """The remote parent in a message's headers."""
    if not headers:
        return None
    return parse_traceparent(headers.get(TRACEPARENT), headers.get(TRACESTATE))


def inject_headers(headers: dict[str, str]) -> None:
    """Write the current span's context into a message's headers (no-op outside a span)."""
    write_headers(headers, trace.get_current_span().get_span_context())


def write_headers(headers: dict[str, str], span_context: SpanContext) -> None:
    if not span_context.is_valid:
        return
    headers[TRACEPARENT] = format_traceparent(span_context)
    if span_context.trace_state:
        headers[TRACESTATE] = span_context.trace_state.to_header()
