"""Errors as a caller of the HTTP API sees them: a status that says what to do, a JSON body
with a reason code, Retry-After when trying later helps, and never a 500.

The mapping is checked for every reason, then end to end through user_api, its kit client
and breakers, and a user_service node (in one process, on a memory registry)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.errors import Reason, ServiceError
from shared.http_errors import error_response
from tests.support.http import login
from tests.support.inprocess import InProcessSystem, in_process_system
from user_api.app import create_app

VERIFY = "user_service.VerifyCredentials"


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[InProcessSystem]:
    async with in_process_system(tmp_path) as system:
        yield system


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_maps_to_a_json_error_that_is_never_a_500(reason: Reason) -> None:
    response = error_response(ServiceError(reason, "what happened"))

    assert response.status_code != 500
    assert json.loads(response.body) == {
        "error": {"reason": reason.value, "message": "what happened"}
    }


@pytest.mark.parametrize(
    ("reason", "status", "retry_after"),
    [
        (Reason.CIRCUIT_OPEN, 503, "1"),
        (Reason.REJECTED, 503, "1"),
        (Reason.UNAVAILABLE, 503, "1"),
        (Reason.TIMEOUT, 504, None),
        (Reason.INVALID_CREDENTIALS, 401, None),
        (Reason.NOT_FOUND, 404, None),
    ],
)
def test_statuses_and_retry_after(reason: Reason, status: int, retry_after: str | None) -> None:
    response = error_response(ServiceError(reason))

    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after


def test_retry_after_rounds_the_circuit_s_sleep_window_up_to_whole_seconds() -> None:
    response = error_response(ServiceError(Reason.CIRCUIT_OPEN, retry_after=2.2))

    assert response.headers["Retry-After"] == "3"


async def test_a_call_cut_by_the_breaker_timeout_is_a_504(system: InProcessSystem) -> None:
    system.runtime.breakers.configure(VERIFY, timeout_ms=1)

    response = await login(system.http)

    assert response.status_code == 504
    assert response.json()["error"]["reason"] == "TIMEOUT"


async def test_an_open_circuit_is_a_fast_503_with_retry_after(system: InProcessSystem) -> None:
    system.runtime.breakers.configure(
        VERIFY, timeout_ms=1, request_volume_threshold=2, sleep_window_ms=4000
    )
    for _ in range(2):
        assert (await login(system.http)).status_code == 504

    started = time.monotonic()
    response = await login(system.http)

    assert time.monotonic() - started < 0.05
    assert response.status_code == 503
    assert response.json()["error"]["reason"] == "CIRCUIT_OPEN"
    assert response.headers["Retry-After"] == "4"


async def test_a_call_beyond_the_concurrency_limit_is_a_503_rejected(
    system: InProcessSystem,
) -> None:
    system.runtime.breakers.configure(VERIFY, max_concurrent_requests=1)

    responses = await asyncio.gather(login(system.http), login(system.http))

    ok, rejected = sorted(responses, key=lambda response: response.status_code)
    assert (ok.status_code, rejected.status_code) == (200, 503)
    assert rejected.json()["error"]["reason"] == "REJECTED"
    assert rejected.headers["Retry-After"] == "1"


async def test_no_node_to_call_is_a_503_unavailable(system: InProcessSystem) -> None:
    await system.user_server.stop()

    response = await login(system.http)

    assert response.status_code == 503
    assert response.json()["error"]["reason"] == "UNAVAILABLE"


async def test_an_unexpected_exception_is_a_json_503_not_a_500(system: InProcessSystem) -> None:
    app = create_app(system.runtime)

    async def broken(user_name: str, password: str) -> None:
        raise RuntimeError("a bug")

    app.state.logic.login = broken
    # As uvicorn does: the error handler's response is sent, the exception only logged.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await login(http)

    assert response.status_code == 503
    assert response.json() == {"error": {"reason": "INTERNAL", "message": "internal error"}}
