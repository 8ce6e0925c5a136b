from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.trace import SpanKind, StatusCode

from shared.tracing import TracingMiddleware, client_span
from tests.shared.tracing.conftest import Recorded

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _app(recorded: Recorded) -> FastAPI:
    app = FastAPI()
    tracing = recorded.tracing

    @app.post("/user/login")
    async def login() -> dict[str, str]:
        for method in ("Authenticate", "IssueToken"):
            full = f"/auth.v1.AuthService/{method}"
            with client_span(tracing, "auth", method, full, "10.0.0.2:50051") as (_, md):
                assert md[0][0] == "traceparent"
        return {"token": "t"}

    @app.get("/user/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("broken")

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: str) -> str:
        return item_id

    sub = FastAPI()
    sub.include_router(router)
    app.mount("/v2", sub)
    app.add_middleware(TracingMiddleware, tracing=tracing, exclude_paths=["/healthz"])
    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_route_template_names_the_span_with_client_children(recorded: Recorded) -> None:
    async with _client(_app(recorded)) as client:
        response = await client.post("/user/login")
    assert response.status_code == 200
    server = recorded.one("POST /user/login")
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/user/login"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.response.status_code"] == 200
    assert server.status.status_code is StatusCode.UNSET
    children = [s for s in recorded.spans() if s.kind is SpanKind.CLIENT]
    assert sorted(s.name for s in children) == [
        "auth.v1.AuthService/Authenticate",
        "auth.v1.AuthService/IssueToken",
    ]
    assert server.context is not None
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id
        assert child.context is not None
        assert child.context.trace_id == server.context.trace_id


async def test_path_parameters_and_mounts_use_the_template(recorded: Recorded) -> None:
    async with _client(_app(recorded)) as client:
        await client.get("/user/42")
        await client.get("/v2/items/abc")
        await client.get("/missing")
    assert recorded.one("GET /user/{user_id}").attributes["url.path"] == "/user/42"  # type: ignore[index]
    assert recorded.one("GET /v2/items/{item_id}")
    missing = recorded.one("GET")  # no route matched: the method alone, per the conventions
    assert missing.attributes is not None
    assert missing.attributes["http.response.status_code"] == 404
    assert missing.status.status_code is StatusCode.UNSET


async def test_incoming_traceparent_is_the_parent(recorded: Recorded) -> None:
    async with _client(_app(recorded)) as client:
        await client.get("/user/1", headers={"traceparent": PARENT})
    server = recorded.one("GET /user/{user_id}")
    assert server.context is not None
    assert server.parent is not None
    assert f"{server.context.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{server.parent.span_id:016x}" == PARENT.split("-")[2]


async def test_server_error_marks_the_span(recorded: Recorded) -> None:
    async with _client(_app(recorded)) as client:
        response = await client.get("/fail")
    assert response.status_code == 500
    server = recorded.one("GET /fail")
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 500
    assert [event.name for event in server.events] == ["exception"]


async def test_excluded_paths_get_no_span(recorded: Recorded) -> None:
    async with _client(_app(recorded)) as client:
        await client.get("/healthz")
    assert recorded.spans() == []


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_through(recorded: Recorded, scope_type: str) -> None:
    seen = []

    async def app(scope: object, receive: object, send: object) -> None:
        seen.append(scope)

    middleware = TracingMiddleware(app, tracing=recorded.tracing)
    await middleware({"type": scope_type}, None, None)  # type: ignore[arg-type]
    assert seen == [{"type": scope_type}]
    assert recorded.spans() == []


async def test_warns_when_fastapi_traces_natively_too(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI(telemetry={"tracer_provider": recorded.tracing.provider})

    @app.get("/x")
    async def x() -> str:
        return "x"

    app.add_middleware(TracingMiddleware, tracing=recorded.tracing)
    async with _client(app) as client:
        await client.get("/x")
        await client.get("/x")
    warnings = [r for r in caplog.records if "native telemetry" in r.getMessage()]
    assert len(warnings) == 1
