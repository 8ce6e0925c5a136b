"""The kit's HTTP front: a span per request, a budget, body limits, errors as JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared import deadline
from shared.errors import Reason, ServiceError
from shared.testing.inprocess import http_client
from shared.tracing import Tracing, setup_tracing
from shared.web import web_app


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    exporter = InMemorySpanExporter()
    tracing = setup_tracing("front", version="1", environment="test", exporter=exporter)
    yield tracing, exporter
    tracing.shutdown()


def _routes(app: FastAPI) -> FastAPI:
    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, float | None]:
        return {"id": item_id, "budget": deadline.remaining()}

    @app.post("/upload/")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/gone")
    async def gone() -> None:
        raise ServiceError(Reason.NOT_FOUND, "no such thing")

    @app.get("/busy")
    async def busy() -> None:
        raise ServiceError(
            Reason.OVERLOADED, "/shop.v1.Stock/Reserve is overloaded: 2 running", retry_after=3
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
async def front(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> AsyncIterator[httpx.AsyncClient]:
    tracing, _ = exported
    app = web_app(
        title="front",
        version="1",
        tracing=tracing,
        budget_s=lambda: 2.5,
        body_limits={"/upload/": 1024},
    )
    async with http_client(_routes(app)) as client:
        yield client


async def test_each_request_is_one_span_named_by_its_route_and_health_is_not_traced(
    front: httpx.AsyncClient, exported: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracing, exporter = exported
    assert (await front.get("/items/7")).status_code == 200
    assert (await front.get("/healthz")).status_code == 200

    tracing.force_flush()
    spans = exporter.get_finished_spans()
    assert [(span.name, span.kind) for span in spans] == [("GET /items/{item_id}", SpanKind.SERVER)]


async def test_a_request_runs_within_its_budget(front: httpx.AsyncClient) -> None:
    budget = (await front.get("/items/7")).json()["budget"]

    assert 2.0 < budget <= 2.5  # what the kit's client turns into its calls' deadlines


async def test_a_body_over_its_paths_limit_is_a_413_with_a_reason(front: httpx.AsyncClient) -> None:
    assert (await front.post("/upload/", content=b"x" * 1024)).json() == {"bytes": 1024}

    refused = await front.post("/upload/", content=b"x" * 1025)

    assert refused.status_code == 413
    assert refused.json()["error"]["reason"] == "PAYLOAD_TOO_LARGE"


async def test_errors_are_the_kits_json_with_their_status(front: httpx.AsyncClient) -> None:
    gone = await front.get("/gone")
    invalid = await front.get("/items/seven")

    assert (gone.status_code, gone.json()["error"]["reason"]) == (404, "NOT_FOUND")
    assert (invalid.status_code, invalid.json()["error"]["reason"]) == (422, "INVALID_ARGUMENT")


async def test_without_error_details_a_callee_failure_says_what_not_where(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, _ = exported
    app = web_app(title="front", version="1", tracing=tracing, error_details=False)
    async with http_client(_routes(app)) as client:
        busy = await client.get("/busy")
        gone = await client.get("/gone")

    assert busy.status_code == 503
    assert busy.json()["error"] == {
        "reason": "OVERLOADED",
        "message": "the service is busy; try again shortly",
    }
    assert busy.headers["Retry-After"] == "3"
    assert gone.json()["error"]["message"] == "no such thing"  # the request's own fault


async def test_with_error_details_a_callee_failure_names_itself(front: httpx.AsyncClient) -> None:
    busy = await front.get("/busy")

    assert busy.json()["error"]["message"] == "/shop.v1.Stock/Reserve is overloaded: 2 running"


async def test_without_docs_there_is_no_openapi_document() -> None:
    with_docs = web_app(title="front", version="1", tracing=Tracing.disabled())
    without = web_app(title="front", version="1", tracing=Tracing.disabled(), docs=False)

    async with http_client(with_docs) as client:
        assert (await client.get("/openapi.json")).status_code == 200
    async with http_client(without) as client:
        assert (await client.get("/openapi.json")).status_code == 404
        assert (await client.get("/docs")).status_code == 404
