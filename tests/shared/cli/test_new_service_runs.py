"""A generated service as it comes out of `micro new`, run as a process on a real etcd:
user_api's portal shows it, it runs its example job once `JOBS_ENABLED=true` (and a short
interval) is in its environment, and it hears its own event after a create. Nothing of
the kit, nor of the service, is edited.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.registry.etcd_client import etcd_client
from tests.support.etcd import EtcdServer
from tests.support.ports import free_port
from tests.support.project_copy import CopiedServiceProcess, copy_project, kit_files, micro
from tests.support.services import service_env

pytestmark = pytest.mark.integration

JOB_KEY = b"/micro/jobs/order/heartbeat/last"  # where the leader claims each tick
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Running:
    root: Path
    etcd: str
    api: str
    order: CopiedServiceProcess


@pytest.fixture
def running(tmp_path: Path, etcd: EtcdServer) -> Iterator[Running]:
    root = copy_project(tmp_path)
    before = kit_files(root)
    made = micro(root, "new", "service", "order")
    assert made.returncode == 0, made.stdout + made.stderr
    assert kit_files(root) == before
    port = free_port()
    alone = {"USE_CONFIG_SERVICE": "false"}  # nothing but etcd, order and user_api here
    jobs = {"JOBS_ENABLED": "true", "HEARTBEAT_EVERY_S": "1", "JOBS_LEASE_TTL_S": "2"}
    order = CopiedServiceProcess(
        root, "order", service_env(etcd.endpoint, **alone, **jobs), tmp_path / "order.log"
    ).start()
    api = CopiedServiceProcess(
        root,
        "user_api",
        service_env(etcd.endpoint, **alone, HTTP_PORT=str(port)),
        tmp_path / "user_api.log",
    ).start()
    try:
        yield Running(root, etcd.endpoint, f"http://127.0.0.1:{port}", order)
    finally:
        order.stop()
        api.stop()


async def eventually(what: str, probe: Callable[[], object], timeout: float = TIMEOUT_S) -> None:
    """Poll `probe` (an awaitable's factory or a plain check) until truthy; a process in
    another address space sends us no event to await."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


async def test_a_generated_service_shows_on_the_portal_and_runs_its_job(
    running: Running,
) -> None:
    async with httpx.AsyncClient(base_url=running.api, timeout=5) as http:

        async def on_the_portal() -> bool:
            try:
                snapshot = (await http.get("/portal/snapshot")).json()
            except httpx.TransportError:
                return False  # user_api not listening yet
            nodes = snapshot["services"].get("order", {}).get("nodes", [])
            return len(nodes) == 1

        await eventually("order shows on the portal", on_the_portal)

    client = etcd_client(running.etcd)
    ticks: set[bytes] = set()

    async def ticking() -> bool:
        claimed = await client.get(JOB_KEY)
        if claimed is not None:
            ticks.add(claimed.value)
        return len(ticks) >= 2  # not a one-off: the job runs on its schedule

    try:
        await eventually("the heartbeat job ran twice", ticking)
    finally:
        await client.close()
    assert "order heartbeat for" in running.order.logs()


async def test_a_generated_service_hears_its_own_created_event(running: Running) -> None:
    create = '{"title": "a book", "quantity": 2}'
    env = {"ETCD_ENDPOINT": running.etcd}
    called = None

    def create_order() -> bool:
        nonlocal called
        called = micro(running.root, "call", "order", "CreateOrder", create, env=env)
        return called.returncode == 0  # order may not be registered yet

    await eventually("order answers CreateOrder", create_order)
    assert called is not None
    order_id = json.loads(called.stdout)["order"]["id"]

    await eventually(
        "order logs its event", lambda: f"order {order_id} created" in running.order.logs()
    )

    too_large = micro(
        running.root, "call", "order", "CreateOrder", '{"title": "a", "quantity": 5000}', env=env
    )
    assert too_large.returncode == 1
    assert too_large.stderr.strip().startswith("error: ORDER_TOO_LARGE:")
