"""Login events over a real NATS: published once, applied once per service, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from sqlalchemy import text

from shared import db
from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.eventually import eventually
from tests.support.http import login, wait_until_ready
from tests.support.nats import NatsServer
from tests.support.ports import free_port
from tests.support.services import wait_for_nodes

pytestmark = pytest.mark.integration


@dataclass
class EventSystem:
    http: httpx.AsyncClient
    database_url: str


@pytest.fixture
async def system(
    start_service: StartService,
    registry: EtcdRegistry,
    nats_server: NatsServer,
    mariadb_database: str,
) -> AsyncIterator[EventSystem]:
    common = {"NATS_URL": nats_server.url, "USE_CONFIG_SERVICE": "false"}
    port = free_port()
    start_service("auth_service", **common)
    start_service("user_service", DATABASE_URL=mariadb_database, **common)
    start_service("user_api", HTTP_PORT=str(port), **common)
    base_url = f"http://127.0.0.1:{port}"
    await wait_until_ready(base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
        yield EventSystem(http, mariadb_database)


async def history(database_url: str) -> tuple[int, int]:
    """(rows, distinct event ids) in login_history."""
    engine = db.create_engine(database_url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM login_history")
            )
            rows, distinct = result.one()
            return int(rows), int(distinct)
    finally:
        await engine.dispose()


async def test_a_login_publishes_one_event_and_records_one_history_row(
    system: EventSystem, nats_server: NatsServer
) -> None:
    connection = await nats.connect(nats_server.url)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(message: Msg) -> None:
        await received.put(message.data)

    await connection.subscribe("user.logged_in", cb=on_message)
    try:
        assert (await login(system.http)).status_code == 200
        await asyncio.wait_for(received.get(), 10)
        await eventually(lambda: history(system.database_url), lambda rows: rows == (1, 1))
        stream = await connection.jetstream().stream_info("USER")
    finally:
        await connection.close()

    assert received.empty()
    assert stream.state.messages == 1


async def test_two_replicas_in_one_queue_group_apply_each_of_100_logins_once(
    system: EventSystem,
    start_service: StartService,
    registry: EtcdRegistry,
    nats_server: NatsServer,
) -> None:
    start_service(
        "user_service",
        DATABASE_URL=system.database_url,
        NATS_URL=nats_server.url,
        USE_CONFIG_SERVICE="false",
    )
    await wait_for_nodes(registry, "user_service", 2)

    # Four at a time: two per replica, as many as each runs at once (one Argon2 call per
    # core), so that none waits in its queue and none is shed on a slow host.
    for _ in range(25):
        statuses = await asyncio.gather(*(login(system.http) for _ in range(4)))
        assert [r.status_code for r in statuses] == [200] * 4

    assert await eventually(lambda: history(system.database_url), lambda rows: rows[0] >= 100) == (
        100,
        100,
    )


async def test_logins_while_nats_is_down_succeed_and_their_events_arrive_later(
    system: EventSystem, nats_server: NatsServer
) -> None:
    await nats_server.stop()

    statuses = [(await login(system.http)).status_code for _ in range(50)]
    assert statuses == [200] * 50
    assert await history(system.database_url) == (0, 0)

    await nats_server.start()
    assert await eventually(
        lambda: history(system.database_url), lambda rows: rows[0] >= 50, timeout=30
    ) == (50, 50)
