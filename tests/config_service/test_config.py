"""config_service: seeded on first start, served per app, changes pushed within a second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.breaker import Breakers
from shared.client import Client
from shared.config import ConfigWatcher, fetch_config
from shared.registry import EtcdRegistry
from shared.selector import Selector
from tests.conftest import StartService
from tests.support.etcd import EtcdServer
from tests.support.frozen import frozen
from tests.support.services import ServiceProcess, wait_for_nodes
from tests.support.tls import operator_certificate, tls_root

pytestmark = pytest.mark.integration

ETCDCTL = Path(sys.executable).parent / "etcdctl"
SEED = Path(__file__).resolve().parents[2] / "config_service" / "seed"


@pytest.fixture
async def client(
    start_service: StartService, registry: EtcdRegistry, tmp_path: Path
) -> AsyncIterator[Client]:
    start_service("config_service")
    await wait_for_nodes(registry, "config_service", 1)
    selector = Selector(registry)
    # An operator: reads and writes any app's configuration (config_service runs mTLS).
    client = Client(selector, Breakers(), tls=operator_certificate(tls_root(tmp_path)))
    yield client
    await client.stop()
    await selector.stop()


def etcdctl(etcd: EtcdServer, *args: str) -> None:
    subprocess.run(
        [str(ETCDCTL), f"--endpoints={etcd.endpoint}", *args], check=True, capture_output=True
    )


async def test_apps_get_their_seeded_configuration(client: Client) -> None:
    config = await fetch_config(client, "user_api", timeout=5)

    assert config == json.loads((SEED / "user_api.json").read_text())


async def test_an_app_without_configuration_gets_an_empty_object(client: Client) -> None:
    assert await fetch_config(client, "no_such_app", timeout=5) == {}


async def test_an_etcdctl_put_reaches_a_watching_service_within_a_second(
    client: Client, etcd: EtcdServer
) -> None:
    changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watcher = ConfigWatcher(client, "user_api", changes.put_nowait)
    watcher.start()
    try:
        await asyncio.wait_for(changes.get(), 5)  # the current configuration comes first
        put_at = time.monotonic()
        etcdctl(etcd, "put", "/micro/config/user_api", '{"request_budget_s": 1.5}')
        changed = await asyncio.wait_for(changes.get(), 5)
        assert time.monotonic() - put_at < 1.0
    finally:
        await watcher.stop()

    assert changed == {"request_budget_s": 1.5}


async def test_the_seed_never_overwrites_a_configuration_an_operator_changed(
    start_service: StartService, registry: EtcdRegistry, etcd: EtcdServer, client: Client
) -> None:
    etcdctl(etcd, "put", "/micro/config/user_api", '{"request_budget_s": 9}')
    process = start_service("config_service")
    await wait_for_nodes(registry, "config_service", 2)
    process.stop()

    assert await fetch_config(client, "user_api", timeout=5) == {"request_budget_s": 9}


@dataclass
class WatchedReplica:
    process: ServiceProcess  # the replica the watch is on; another one runs beside it
    changes: asyncio.Queue[dict[str, Any]]


@contextlib.asynccontextmanager
async def watch_on_one_of_two(
    start_service: StartService, registry: EtcdRegistry, tmp_path: Path
) -> AsyncIterator[WatchedReplica]:
    """A config watch on a first replica, with a second one started after it."""
    watched = start_service("config_service")
    await wait_for_nodes(registry, "config_service", 1)
    selector = Selector(registry)
    client = Client(selector, Breakers(), tls=operator_certificate(tls_root(tmp_path)))
    changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watcher = ConfigWatcher(client, "user_api", changes.put_nowait)
    watcher.start()
    try:
        await asyncio.wait_for(changes.get(), 5)  # watching the only replica
        start_service("config_service")
        await wait_for_nodes(registry, "config_service", 2)
        yield WatchedReplica(watched, changes)
    finally:
        await watcher.stop()
        await client.stop()
        await selector.stop()


async def test_a_replica_that_stops_ends_its_watches_and_they_follow_another_at_once(
    start_service: StartService, registry: EtcdRegistry, etcd: EtcdServer, tmp_path: Path
) -> None:
    async with watch_on_one_of_two(start_service, registry, tmp_path) as watched:
        started = time.monotonic()
        watched.process.signal(signal.SIGTERM)
        await asyncio.to_thread(watched.process.wait, 10)
        # Not its 5 s drain: the watch ended at once, and its caller moved on.
        assert time.monotonic() - started < 3
        etcdctl(etcd, "put", "/micro/config/user_api", '{"request_budget_s": 2.5}')
        changed = await asyncio.wait_for(watched.changes.get(), 5)

    assert changed == {"request_budget_s": 2.5}


async def test_a_replica_that_hangs_loses_its_watches_to_another_within_seconds(
    start_service: StartService, registry: EtcdRegistry, etcd: EtcdServer, tmp_path: Path
) -> None:
    """A replica that hangs (SIGSTOP: as on a machine that hangs or drops off the network)
    keeps its connections open and ends nothing: pings find it out."""
    async with watch_on_one_of_two(start_service, registry, tmp_path) as watched:
        with frozen(watched.process.signal):
            etcdctl(etcd, "put", "/micro/config/user_api", '{"request_budget_s": 3.5}')
            # Pings every 5 s, answered within 2 s: then the watch follows the other.
            changed = await asyncio.wait_for(watched.changes.get(), 12)

    assert changed == {"request_budget_s": 3.5}
