"""The whole system as real processes (config, auth, user services and user_api on a real
etcd) for fault-injection tests, and the measurements those tests make of it.

    system = await start_system(start_service, registry)
    with system.frozen(system.users[0]):  # SIGSTOP ... SIGCONT
        status, seconds, body = await timed_login(system.http)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.registry import EtcdRegistry
from tests.support.frozen import frozen
from tests.support.http import login, wait_until_ready
from tests.support.ports import free_port
from tests.support.rawhttp import Connections, Reply
from tests.support.services import ServiceProcess, wait_for_nodes

StartService = Callable[..., ServiceProcess]
# A frozen node must stay registered for as long as a test keeps it frozen: the production
# lease TTL, not the suite's short one.
FROZEN_TTL_S = "15"


@dataclass
class System:
    http: httpx.AsyncClient
    base_url: str
    users: list[ServiceProcess]
    # Prometheus port of each user_service, in the order of `users`.
    user_metrics_ports: list[int]
    api: ServiceProcess
    others: list[ServiceProcess]
    _connections: list[Connections] = field(default_factory=list)

    def frozen(self, process: ServiceProcess) -> contextlib.AbstractContextManager[None]:
        """The process keeps its sockets and registration but answers nothing."""
        return frozen(process.signal)

    async def breaker(self, command: str) -> dict[str, Any]:
        """The command's entry in GET /debug/breakers."""
        breakers = (await self.http.get("/debug/breakers")).json()["breakers"]
        entry: dict[str, Any] = breakers[command]
        return entry

    async def wait_for_breaker(
        self, command: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Poll /debug/breakers (the process offers no event) until `predicate` holds."""
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(KeyError):
                    entry = await self.breaker(command)
                    if predicate(entry):
                        return entry
                await asyncio.sleep(0.02)

    async def metrics(self, port: int | None = None) -> str:
        """user_api's GET /metrics, or that of the service on metrics port `port`."""
        if port is None:
            return (await self.http.get("/metrics")).text
        async with httpx.AsyncClient() as http:
            return (await http.get(f"http://127.0.0.1:{port}/metrics")).text

    async def connections(self, count: int) -> Connections:
        """`count` connections opened now, closed with the system."""
        opened = await Connections.open(self.base_url, count)
        self._connections.append(opened)
        return opened

    async def close(self) -> None:
        await self.http.aclose()
        for connections in self._connections:
            await connections.close()
        self.stop()

    def stop(self) -> None:
        """Callers first, so that no server waits out its drain for their open streams."""
        for process in [self.api, *self.users, *reversed(self.others)]:
            process.stop()


async def start_system(
    start_service: StartService,
    registry: EtcdRegistry,
    *,
    user_services: int = 1,
    **api_env: str,
) -> System:
    others = [start_service(module) for module in ("config_service", "auth_service")]
    metrics_ports = [free_port() for _ in range(user_services)]
    users = [
        start_service("user_service", REGISTRY_TTL_S=FROZEN_TTL_S, METRICS_PORT=str(port))
        for port in metrics_ports
    ]
    port = free_port()
    api = start_service("user_api", HTTP_PORT=str(port), **api_env)
    base_url = f"http://127.0.0.1:{port}"
    await wait_for_nodes(registry, "user_service", user_services)
    await wait_until_ready(base_url)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    http = httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits)
    return System(http, base_url, users, metrics_ports, api, others)


async def timed_login(http: httpx.AsyncClient) -> Reply:
    started = time.perf_counter()
    response = await login(http)
    finished = time.perf_counter()
    return Reply(
        response.status_code, finished - started, response.json(), response.headers, finished
    )


def metric(scraped: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in scraped.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric_name, _, label_text = sample.partition("{")
        found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric_name == name and found == wanted:
            return float(value)
    return 0.0
