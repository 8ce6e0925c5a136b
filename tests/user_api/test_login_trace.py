"""One trace per login, across real processes, received over OTLP as Jaeger would."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import StartService
from tests.support.http import login, wait_until_ready
from tests.support.nats import NatsServer
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.ports import free_port
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration


@dataclass
class TracedSystem:
    http: httpx.AsyncClient
    api: ServiceProcess
    users: ServiceProcess


@pytest.fixture
async def system(
    start_service: StartService, nats_server: NatsServer, otlp_receiver: OtlpReceiver
) -> AsyncIterator[TracedSystem]:
    traced = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "NATS_URL": nats_server.url,
        "USE_CONFIG_SERVICE": "false",
        "LOG_JSON": "true",
    }
    port = free_port()
    start_service("auth_service", **traced)
    users = start_service("user_service", **traced)
    api = start_service("user_api", HTTP_PORT=str(port), **traced)
    base_url = f"http://127.0.0.1:{port}"
    await wait_until_ready(base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield TracedSystem(http, api, users)


def one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    [span] = [s for s in spans if s.service_name == service and s.name == name]
    return span


def login_trace_complete(spans: list[ReceivedSpan]) -> bool:
    names = {(s.service_name, s.name) for s in spans}
    return {
        ("user_api", "POST /user/login"),
        ("user_service", "user.v1.UserService/VerifyCredentials"),
        ("auth_service", "auth.v1.AuthService/MakeAccessToken"),
        ("user_service", "user.logged_in process"),
    } <= names


async def test_a_login_is_one_trace_from_http_to_sql_and_nats(
    system: TracedSystem, otlp_receiver: OtlpReceiver
) -> None:
    assert (await login(system.http)).status_code == 200

    spans = await otlp_receiver.wait_for(login_trace_complete, timeout=15)

    root = one(spans, "user_api", "POST /user/login")
    assert (root.kind, root.parent_span_id) == ("SERVER", "")
    trace = [s for s in spans if s.trace_id == root.trace_id]
    assert {s.service_name for s in trace} == {"user_api", "user_service", "auth_service"}
    by_id = {s.span_id: s for s in trace}

    def parent(span: ReceivedSpan) -> ReceivedSpan:
        return by_id[span.parent_span_id]

    for service, method in [
        ("user_service", "user.v1.UserService/VerifyCredentials"),
        ("auth_service", "auth.v1.AuthService/MakeAccessToken"),
    ]:
        server = one(trace, service, method)
        client = parent(server)
        assert (server.kind, client.kind, client.service_name) == ("SERVER", "CLIENT", "user_api")
        assert parent(client) == root
        assert client.attributes["breaker.command"] == f"{service}.{method.split('/')[1]}"
        assert client.attributes["breaker.state"] == "closed"

    produced = one(trace, "user_api", "user.logged_in publish")
    consumed = one(trace, "user_service", "user.logged_in process")
    assert (produced.kind, consumed.kind) == ("PRODUCER", "CONSUMER")
    assert parent(produced) == root
    assert parent(consumed) == produced

    verify = one(trace, "user_service", "user.v1.UserService/VerifyCredentials")
    sql = [s for s in trace if s.service_name == "user_service" and s.kind == "CLIENT"]
    reading = [s for s in sql if parent(s) == verify]
    recording = [s for s in sql if parent(s) == consumed]
    assert len(reading) + len(recording) == len(sql)
    assert any(s.attributes["db.query.text"].startswith("SELECT") for s in reading)
    assert any(s.attributes["db.query.text"].startswith("INSERT") for s in recording)


async def test_log_lines_of_a_login_carry_its_trace_id(
    system: TracedSystem, otlp_receiver: OtlpReceiver
) -> None:
    assert (await login(system.http)).status_code == 200
    spans = await otlp_receiver.wait_for(login_trace_complete, timeout=15)
    trace_id = one(spans, "user_api", "POST /user/login").trace_id

    lines = [json.loads(line) for line in system.api.logs().splitlines() if line.startswith("{")]

    logged_in = [line for line in lines if "logged in" in line["msg"]]
    assert [line.get("trace_id") for line in logged_in] == [trace_id]


async def test_a_call_to_a_frozen_service_is_an_error_span_with_the_breakers_outcome(
    system: TracedSystem, otlp_receiver: OtlpReceiver
) -> None:
    system.users.signal(signal.SIGSTOP)
    try:
        response = await login(system.http)
    finally:
        system.users.signal(signal.SIGCONT)
    assert response.status_code == 504

    def timed_out(spans: list[ReceivedSpan]) -> bool:
        # The request's span ends after its client span: it may come in a later export.
        return any(s.kind == "CLIENT" and s.status_code == "ERROR" for s in spans) and any(
            s.name == "POST /user/login" for s in spans
        )

    spans = await otlp_receiver.wait_for(timed_out, timeout=15)
    [client] = [s for s in spans if s.kind == "CLIENT" and s.status_code == "ERROR"]
    assert client.attributes["breaker.command"] == "user_service.VerifyCredentials"
    assert "breaker.timeout" in [name for name, _ in client.events]
    root = one(spans, "user_api", "POST /user/login")
    assert (root.status_code, client.parent_span_id) == ("ERROR", root.span_id)
