"""Breaker settings and the request budget change per command through config_service, on
the running processes, with no restart: `etcdctl put /micro/config/user_api '<json>'`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.etcd import EtcdServer
from tests.support.http import login
from tests.support.system import System, start_system

pytestmark = pytest.mark.integration

ETCDCTL = Path(sys.executable).parent / "etcdctl"
VERIFY = "user_service.VerifyCredentials"
SEED = json.loads((Path(__file__).parents[2] / "config_service/seed/user_api.json").read_text())


@pytest.fixture
async def system(start_service: StartService, registry: EtcdRegistry) -> AsyncIterator[System]:
    system = await start_system(start_service, registry)
    try:
        assert (await login(system.http)).status_code == 200  # makes the command
        yield system
    finally:
        await system.close()


async def put_config(etcd: EtcdServer, config: dict[str, Any]) -> None:
    await asyncio.to_thread(
        subprocess.run,
        [str(ETCDCTL), f"--endpoints={etcd.endpoint}", "put", "/micro/config/user_api"],
        input=json.dumps(config).encode(),
        check=True,
        capture_output=True,
    )


def with_changes(
    breakers: dict[str, dict[str, Any]] | None = None, **settings: Any
) -> dict[str, Any]:
    """The seed configuration with some breaker overrides and settings changed."""
    config: dict[str, Any] = json.loads(json.dumps(SEED))
    config["breakers"].update(breakers or {})
    config.update(settings)
    return config


async def test_a_new_timeout_for_one_command_takes_effect_without_a_restart(
    system: System, etcd: EtcdServer
) -> None:
    assert (await system.breaker(VERIFY))["settings"]["timeout_ms"] == 1000

    await put_config(etcd, with_changes({VERIFY: {"timeout_ms": 300}}))
    await system.wait_for_breaker(VERIFY, lambda b: b["settings"]["timeout_ms"] == 300)

    connection = (await system.connections(1))[0]
    with system.frozen(system.users[0]):
        result = await connection.login()
    assert (result.status, result.reason) == (504, "TIMEOUT"), result
    # The new 0.3 s, not the old 1 s (the upper bound leaves room for a busy CI).
    assert 0.27 <= result.seconds <= 0.5
    # Only that command changed; the others keep the defaults.
    assert (await system.breaker("auth_service.MakeAccessToken"))["settings"]["timeout_ms"] == 1000
    assert (await login(system.http)).status_code == 200


async def test_a_request_budget_smaller_than_the_breaker_timeout_wins(
    system: System, etcd: EtcdServer
) -> None:
    connection = (await system.connections(1))[0]
    await put_config(etcd, with_changes(request_budget_s=0.2))
    # No debug view shows the budget: wait until a frozen node's login ends as fast as it.
    with system.frozen(system.users[0]):
        async with asyncio.timeout(5):
            while (result := await connection.login()).seconds > 0.5:
                assert (result.status, result.reason) == (504, "TIMEOUT"), result

    assert (result.status, result.reason) == (504, "TIMEOUT"), result
    # The budget's 0.2 s, not the breaker's 1 s (the upper bound leaves room for a busy CI).
    assert 0.18 <= result.seconds <= 0.4
    assert (await system.breaker(VERIFY))["settings"]["timeout_ms"] == 1000


async def test_an_invalid_change_is_ignored_and_later_changes_still_apply(
    system: System, etcd: EtcdServer
) -> None:
    await put_config(etcd, with_changes({VERIFY: {"timeout_ms": 250, "sleep_window_ms": -1}}))
    await put_config(etcd, with_changes({VERIFY: {"timeout_ms": 400}}))

    await system.wait_for_breaker(VERIFY, lambda b: b["settings"]["timeout_ms"] == 400)
    settings = (await system.breaker(VERIFY))["settings"]
    assert settings["sleep_window_ms"] == 5000


async def test_a_change_is_applied_all_or_nothing(system: System, etcd: EtcdServer) -> None:
    # Valid breakers next to an invalid budget, then a malformed breaker next to a valid one.
    await put_config(etcd, with_changes({VERIFY: {"timeout_ms": 250}}, request_budget_s=-1))
    await put_config(etcd, {"breakers": {"default": 5, VERIFY: {"timeout_ms": 260}}})
    await put_config(etcd, with_changes({VERIFY: {"timeout_ms": 400}}))

    await system.wait_for_breaker(VERIFY, lambda b: b["settings"]["timeout_ms"] == 400)
    assert (await login(system.http)).status_code == 200
    assert "Traceback" not in system.api.logs()


async def test_a_bad_configuration_never_stops_a_service_from_starting(
    start_service: StartService, registry: EtcdRegistry, etcd: EtcdServer
) -> None:
    await put_config(etcd, {"breakers": {"default": 5}, "request_budget_s": -1})
    system = await start_system(start_service, registry)
    try:
        assert (await login(system.http)).status_code == 200
        assert "ignoring invalid configuration" in system.api.logs()
    finally:
        await system.close()
