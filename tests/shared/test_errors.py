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

import grpc
import httpx
import pytest

from shared.errors import REASON_METADATA_KEY, Reason, ServiceError, declare_reason
from shared.http_errors import error_response
from tests.support.http import login
from tests.support.inprocess import InProcessSystem, in_process_system
from user_api.app import create_app

VERIFY = "user_service.VerifyCredentials"
# A reason of a service's own, as a service declares it beside its code.
TEAPOT_EMPTY = declare_reason("TEAPOT_EMPTY", grpc.StatusCode.FAILED_PRECONDITION, http_status=409)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[InProcessSystem]:
    async with in_process_system(tmp_path) as system:
        yield system


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_maps_to_a_json_error_that_is_never_a_500(reason: Reason) -> None:
    response = error_response(ServiceError(reason, "what happened"))

    assert response.status_code != 500
    assert json.loads(bytes(response.body)) == {
        "error": {"reason": reason.value, "message": "what happened"}
    }


@pytest.mark.parametrize(
    ("reason", "status", "retry_after"),
    [
        (Reason.CIRCUIT_OPEN, 503, "1"),
        (Reason.REJECTED, 503, "1"),
        (Reason.UNAVAILABLE, 503, "1"),
        (Reason.TIMEOUT, 504, None),
        (Reason.UNAUTHENTICATED, 401, None),
        (TEAPOT_EMPTY, 409, None),
        (Reason.NOT_FOUND, 404, None),
    ],
)
def test_statuses_and_retry_after(reason: str, status: int, retry_after: str | None) -> None:
    response = error_response(ServiceError(reason))

    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after


def test_a_declared_reason_keeps_its_name_code_and_status_everywhere() -> None:
    error = ServiceError(TEAPOT_EMPTY, "no tea left")

    assert (error.reason, error.grpc_code, error.http_status) == (
        "TEAPOT_EMPTY",
        grpc.StatusCode.FAILED_PRECONDITION,
        409,
    )
    assert error.is_business
    assert error.trailing_metadata() == ((REASON_METADATA_KEY, "TEAPOT_EMPTY"),)
    assert json.loads(bytes(error_response(error).body))["error"]["reason"] == "TEAPOT_EMPTY"


def test_declaring_a_reason_twice_differently_or_over_the_kit_s_is_refused() -> None:
    assert declare_reason("TEAPOT_EMPTY", grpc.StatusCode.FAILED_PRECONDITION, http_status=409)
    with pytest.raises(ValueError, match="already declared"):
        declare_reason("TEAPOT_EMPTY", grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(ValueError, match="kit"):
        declare_reason("NOT_FOUND", grpc.StatusCode.NOT_FOUND)
    with pytest.raises(ValueError, match="UPPER_SNAKE"):
        declare_reason("teapot", grpc.StatusCode.NOT_FOUND)
    with pytest.raises(ValueError, match="undeclared"):
        ServiceError("NEVER_DECLARED")


def _rpc_error(code: grpc.StatusCode, reason: str | None) -> grpc.aio.AioRpcError:
    trailers = grpc.aio.Metadata(*([(REASON_METADATA_KEY, reason)] if reason else []))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details="said the callee")


@pytest.mark.parametrize(
    ("code", "status", "business"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, 400, True),
        (grpc.StatusCode.UNAUTHENTICATED, 401, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, False),
        (grpc.StatusCode.INTERNAL, 503, False),
    ],
)
def test_a_reason_this_process_never_declared_follows_its_grpc_code(
    code: grpc.StatusCode, status: int, business: bool
) -> None:
    error = ServiceError.from_rpc_error(_rpc_error(code, "SOMEONE_ELSES"))

    assert (error.reason, error.message) == ("SOMEONE_ELSES", "said the callee")
    assert (error.grpc_code, error.http_status, error.is_business) == (code, status, business)
    assert error.to_json()["error"]["reason"] == "SOMEONE_ELSES"


def test_a_declaration_in_this_process_wins_over_the_code_and_kit_reasons_stay_enums() -> None:
    declared = ServiceError.from_rpc_error(_rpc_error(grpc.StatusCode.UNKNOWN, TEAPOT_EMPTY))
    kit = ServiceError.from_rpc_error(_rpc_error(grpc.StatusCode.UNAVAILABLE, "CIRCUIT_OPEN"))
    bare = ServiceError.from_rpc_error(_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, None))

    assert (declared.http_status, declared.is_business) == (409, True)
    assert kit.reason is Reason.CIRCUIT_OPEN
    assert bare.reason is Reason.TIMEOUT


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
