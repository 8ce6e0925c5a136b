from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from shared.tracing import consumer_span, inject_headers, producer_span
from tests.shared.tracing.conftest import Recorded


def test_consumer_continues_the_producers_trace(recorded: Recorded) -> None:
    tracer = recorded.tracing.tracer
    headers: dict[str, str] = {"content-type": "application/json"}
    with (
        tracer.start_as_current_span("request"),
        producer_span(recorded.tracing, "user.logged_in", headers) as produced,
    ):
        pass
    assert headers["traceparent"].startswith("00-")
    assert headers["content-type"] == "application/json"

    with consumer_span(recorded.tracing, "user.logged_in", headers) as consumed:
        # Current inside the handler, so its calls and SQL join the trace.
        assert trace.get_current_span() is consumed

    producer = recorded.one("user.logged_in publish")
    consumer = recorded.one("user.logged_in process")
    request = recorded.one("request")
    assert producer.kind is SpanKind.PRODUCER
    assert consumer.kind is SpanKind.CONSUMER
    assert producer.context is not None
    assert consumer.context is not None
    assert request.context is not None
    assert producer.context.trace_id == consumer.context.trace_id == request.context.trace_id
    assert producer.parent is not None
    assert producer.parent.span_id == request.context.span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert headers["traceparent"].split("-")[2] == f"{produced.get_span_context().span_id:016x}"
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.system"] == "nats"
    assert consumer.attributes["messaging.destination.name"] == "user.logged_in"


def test_consumer_without_headers_starts_a_trace(recorded: Recorded) -> None:
    with consumer_span(recorded.tracing, "orders.created", None):
        pass
    assert recorded.one("orders.created process").parent is None


def test_handler_error_marks_the_consumer_span(recorded: Recorded) -> None:
    with (
        pytest.raises(ValueError, match="bad event"),
        consumer_span(recorded.tracing, "user.logged_in", {}),
    ):
        raise ValueError("bad event")
    consumer = recorded.one("user.logged_in process")
    assert consumer.status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_inject_headers_outside_a_span_adds_nothing() -> None:
    headers: dict[str, str] = {}
    inject_headers(headers)
    assert headers == {}
