from __future__ import annotations

import pytest
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from shared.tracing.propagation import outgoing_metadata, parse_traceparent

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def test_round_trip_with_tracestate() -> None:
    parent = parse_traceparent(f"00-{TRACE}-{SPAN}-01", "vendor=abc,other=1")
    assert parent is not None
    assert parent.is_remote
    assert parent.trace_flags.sampled
    assert parent.trace_state == TraceState([("vendor", "abc"), ("other", "1")])
    context = SpanContext(
        parent.trace_id, parent.span_id, False, parent.trace_flags, parent.trace_state
    )
    assert outgoing_metadata(context) == (
        ("traceparent", f"00-{TRACE}-{SPAN}-01"),
        ("tracestate", "vendor=abc,other=1"),
    )


def test_future_versions_may_append_fields() -> None:
    parent = parse_traceparent(f"01-{TRACE}-{SPAN}-00-extra")
    assert parent is not None
    assert parent.trace_flags == TraceFlags(0)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-1",
    ],
)
def test_malformed_traceparent_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_invalid_context_sends_nothing() -> None:
    assert outgoing_metadata(SpanContext(0, 0, False)) == ()
