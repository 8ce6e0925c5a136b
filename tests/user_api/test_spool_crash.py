"""Events survive a crash: what user_api's spool holds while NATS is down outlives SIGKILL.

NATS down, 50 logins (each answered once its event is in the spool file), user_api killed
with SIGKILL, started again on the same spool, NATS started: all 50 `user.logged_in`
events reach the stream once each, and user_service records 50 logins.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import StartService
from tests.support.eventually import eventually
from tests.support.http import login, wait_until_ready
from tests.support.nats import NatsServer, stored_once_each
from tests.support.ports import free_port
from tests.user_service.test_login_events import history

pytestmark = pytest.mark.integration

LOGINS = 50


async def test_spooled_login_events_outlive_sigkill(
    tmp_path: Path, start_service: StartService
) -> None:
    nats_server = NatsServer(tmp_path / "nats")  # not started: NATS is down
    database_url = f"sqlite+aiosqlite:///{tmp_path}/users.db"
    common = {"NATS_URL": nats_server.url, "USE_CONFIG_SERVICE": "false"}
    api_env = {
        **common,
        "HTTP_PORT": str(free_port()),
        "BROKER_SPOOL_PATH": str(tmp_path / "user_api" / "spool.sqlite3"),
    }
    base_url = f"http://127.0.0.1:{api_env['HTTP_PORT']}"
    try:
        async with asyncio.timeout(60):
            start_service("auth_service", **common)
            start_service("user_service", DATABASE_URL=database_url, **common)
            api = start_service("user_api", **api_env)
            await wait_until_ready(base_url)
            async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
                statuses = [(await login(http)).status_code for _ in range(LOGINS)]
            assert statuses == [200] * LOGINS

            api.signal(signal.SIGKILL)  # no flush, no goodbye
            await asyncio.to_thread(api.wait)
            restarted = start_service("user_api", **api_env)
            await wait_until_ready(base_url)
            await nats_server.start()

            await stored_once_each(
                nats_server, "USER", "user.logged_in", LOGINS, logs=restarted.logs
            )
            rows = await eventually(lambda: history(database_url), lambda r: r[0] >= LOGINS)
            assert rows == (LOGINS, LOGINS)  # once each: one row per distinct event id
    finally:
        await nats_server.stop()
