from __future__ import annotations

import pytest

from shared.tracing import client_span, setup_tracing
from tests.support.otlp import OtlpReceiver


async def test_spans_reach_the_otlp_receiver(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    tracing = setup_tracing(
        "user_api", version="0.1.0", environment="test", instance_id="i-1", set_global=False
    )
    full_method = "/auth.v1.Auth/Login"
    with (
        tracing.tracer.start_as_current_span("POST /user/login") as root,
        client_span(tracing, "auth", "Login", full_method, "127.0.0.1:1") as (span, _),
    ):
        span.set_attribute("extra", 3)
    # Shutdown flushes: no explicit flush needed.
    await tracing.stop()

    spans = await otlp_receiver.wait_for(lambda spans: len(spans) >= 2)
    by_name = {span.name: span for span in spans}
    server, client = by_name["POST /user/login"], by_name["auth.v1.Auth/Login"]
    assert server.trace_id == client.trace_id == f"{root.get_span_context().trace_id:032x}"
    assert client.parent_span_id == server.span_id
    assert server.parent_span_id == ""
    assert client.kind == "CLIENT"
    assert client.service_name == "user_api"
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert client.attributes["extra"] == 3
    assert client.resource["service.version"] == "0.1.0"
    assert client.resource["service.instance.id"] == "i-1"
    assert client.resource["deployment.environment.name"] == "test"


async def test_wait_for_times_out_with_what_arrived(otlp_receiver: OtlpReceiver) -> None:
    with pytest.raises(TimeoutError, match="did not match"):
        await otlp_receiver.wait_for(lambda spans: bool(spans), timeout=0.05)
