"""The application's lifecycle: start in order, register once all serve, stop in reverse."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2

from shared.app import App
from shared.config import ServiceSettings
from shared.registry import MemoryRegistry, ServiceNode
from tests.support.health import check

pytestmark = pytest.mark.integration  # real gRPC and HTTP servers on local ports


def settings() -> ServiceSettings:
    return ServiceSettings(
        service_name="svc", use_config_service=False, nats_url="memory://", grpc_port=0
    )


class Recorded:
    """A part that records its start and stop in a shared journal."""

    def __init__(self, name: str, journal: list[str]) -> None:
        self.name = name
        self._journal = journal

    async def start(self) -> None:
        self._journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self._journal.append(f"stop {self.name}")


class JournaledRegistry(MemoryRegistry):
    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self._journal = journal

    async def register(self, node: ServiceNode) -> None:
        self._journal.append(f"register {node.name}")
        await super().register(node)

    async def deregister(self, node: ServiceNode) -> None:
        self._journal.append(f"deregister {node.name}")
        await super().deregister(node)


async def health(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        return (await check(channel)).status


async def test_parts_start_in_order_register_once_and_stop_in_reverse() -> None:
    journal: list[str] = []
    registry = JournaledRegistry(journal)
    stop = asyncio.Event()
    seen: dict[str, object] = {}

    async def close_resource() -> None:
        journal.append("close resource")

    async with App.open(settings(), registry=registry) as app:
        app.on_stop(close_resource)
        app.add(Recorded("first", journal))
        server = app.grpc_server(drain_s=0)
        app.add(Recorded("last", journal))

        async def while_running() -> None:
            nodes = await registry.get("svc")
            seen["nodes"] = nodes
            seen["health"] = await health(nodes[0].address)
            stop.set()

        app.background(while_running, name="probe")
        await app.run(until=stop.wait())
        seen["after_run"] = await registry.get("svc")

    assert journal == [
        "start first",
        "start last",
        "register svc",
        "deregister svc",
        "stop last",
        "stop first",
        "close resource",
    ]
    assert seen["nodes"] == [server.node]
    assert seen["health"] == health_pb2.HealthCheckResponse.SERVING
    assert seen["after_run"] == [server.node]  # still registered until the stack unwinds


async def test_a_part_that_fails_to_start_stops_those_already_started() -> None:
    journal: list[str] = []

    class Broken(Recorded):
        async def start(self) -> None:
            raise OSError("port taken")

    async def run() -> None:
        async with App.open(settings(), registry=JournaledRegistry(journal)) as app:
            app.add(Recorded("first", journal))
            app.add(Broken("broken", journal))
            await app.run(until=asyncio.Event().wait())

    with pytest.raises(OSError, match="port taken"):
        await run()

    assert journal == ["start first", "stop first"]  # never registered


async def test_the_http_server_serves_and_a_part_ending_on_its_own_stops_the_app() -> None:
    api = FastAPI()

    @api.get("/ping")
    async def ping() -> str:
        return "pong"

    answers: list[str] = []

    async def run() -> None:
        async with App.open(settings(), registry=MemoryRegistry()) as app:
            http = app.http_server(api, host="127.0.0.1", port=0)

            async def call_then_fail() -> None:
                async with httpx.AsyncClient() as client:
                    answers.append((await client.get(f"http://{http.address}/ping")).json())
                raise RuntimeError("job failed")

            app.background(call_then_fail, name="job")
            await app.run(until=asyncio.Event().wait())  # returns when the job ends

    with pytest.raises(RuntimeError, match="job failed"):
        await run()

    assert answers == ["pong"]
