"""Production mode closes what development leaves open: debug routes, docs, the portal,
/metrics on the HTTP app, gRPC reflection and the details of a callee's failure, unless
each is turned on by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from shared.config import ServiceSettings
from shared.testing import InProcess
from tests.support.inprocess import in_process_system

pytestmark = pytest.mark.integration  # real gRPC servers in this process

CLOSED = ("/debug/breakers", "/docs", "/redoc", "/openapi.json", "/portal", "/metrics")


@pytest.fixture(autouse=True)
def _no_inherited_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ENVIRONMENT",
        "DEBUG_ENDPOINTS",
        "DOCS_ENABLED",
        "PORTAL_ENABLED",
        "ERROR_DETAILS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("METRICS_PORT", raising=False)
    monkeypatch.delenv("REFLECTION_ENABLED", raising=False)


async def test_production_answers_404_on_debug_docs_portal_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    async with in_process_system(tmp_path) as system:
        for path in CLOSED:
            assert (await system.http.get(path)).status_code == 404, path
        assert (await system.http.get("/healthz")).status_code == 200


async def test_each_is_turned_on_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DEBUG_ENDPOINTS", "true")
    monkeypatch.setenv("DOCS_ENABLED", "true")
    async with in_process_system(tmp_path) as system:
        assert (await system.http.get("/debug/breakers")).status_code == 200
        assert (await system.http.get("/openapi.json")).status_code == 200
        assert (await system.http.get("/docs")).status_code == 200
        assert (await system.http.get("/portal")).status_code == 404  # not named: still off


async def test_development_keeps_them_open(tmp_path: Path) -> None:
    async with in_process_system(tmp_path) as system:
        for path in CLOSED:
            assert (await system.http.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    ("environment", "details", "message"),
    [
        ("production", None, "the service is unavailable; try again later"),
        ("production", "true", "no available node of user_service"),
        ("development", None, "no available node of user_service"),
    ],
)
async def test_production_does_not_tell_the_public_which_service_failed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environment: str,
    details: str | None,
    message: str,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    if details is not None:
        monkeypatch.setenv("ERROR_DETAILS", details)
    async with in_process_system(tmp_path) as system:
        await system.user_server.stop()
        response = await system.http.post("/user/login", data={"userName": "micro", "pwd": "1"})
        wrong = await system.http.get("/user/me", headers={"Authorization": "Bearer nonsense"})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == {"reason": "UNAVAILABLE", "message": message}
    # The caller's own fault still says what was wrong with the request.
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] != "internal error"


@pytest.fixture
async def in_process() -> AsyncIterator[InProcess]:
    async with InProcess.open() as system:
        yield system


async def _list_services(address: str) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in info(iter([request])):
            assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
            return [service.name for service in reply.list_services_response.service]
    raise AssertionError("no reply")


@pytest.mark.parametrize(
    ("environment", "enabled", "served"),
    [("production", None, False), ("production", "true", True), ("development", None, True)],
)
async def test_reflection_is_not_served_in_production_unless_enabled(
    in_process: InProcess,
    monkeypatch: pytest.MonkeyPatch,
    environment: str,
    enabled: str | None,
    served: bool,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    if enabled is not None:
        monkeypatch.setenv("REFLECTION_ENABLED", enabled)
    settings = ServiceSettings(use_config_service=False, nats_url="memory://")
    runtime = await in_process.runtime(settings)
    server = runtime.grpc_server(drain_s=0)  # serves gRPC health, and reflection if on
    await server.start()
    try:
        if served:
            assert "grpc.health.v1.Health" in await _list_services(server.address)
        else:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _list_services(server.address)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop()
