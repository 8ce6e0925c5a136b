"""NATS users per service against a real nats-server running the generated configuration."""

from __future__ import annotations

import asyncio
import importlib.util
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from shared.security.nats_auth import seed_path
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "nats_config", ROOT / "scripts" / "nats_config.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[NatsServer, Path]]:
    config = _generator().write(tmp_path, 4222)
    server = NatsServer(tmp_path / "nats", config=config)
    await server.start()
    try:
        yield server, tmp_path / "nats-users"
    finally:
        await server.stop()


class Connection:
    """A client as a service: its nkey, and the errors the server reports to it."""

    def __init__(self) -> None:
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    async def open(self, server: NatsServer, seed: Path | None) -> Client:
        async def on_error(error: Exception) -> None:
            await self.errors.put(error)

        return await nats.connect(
            server.url,
            nkeys_seed=str(seed) if seed else None,
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
        )


def test_seeds_are_private_and_reused(tmp_path: Path) -> None:
    first = _generator().write(tmp_path, 4222).read_text()
    seed = seed_path(tmp_path / "nats-users", "user_api")
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert _generator().write(tmp_path, 4222).read_text() == first


async def test_only_user_api_may_publish_user_logged_in(
    secured: tuple[NatsServer, Path],
) -> None:
    server, seeds = secured
    consumer = await Connection().open(server, seed_path(seeds, "user_service"))
    received = await consumer.subscribe("user.logged_in")
    forger = Connection()
    forging = await forger.open(server, seed_path(seeds, "auth_service"))
    genuine = await Connection().open(server, seed_path(seeds, "user_api"))
    try:
        await forging.publish("user.logged_in", b"forged")
        refused = await asyncio.wait_for(forger.errors.get(), 5)
        assert "permissions violation" in str(refused).lower()

        await genuine.publish("user.logged_in", b"genuine")
        # The forged message was dropped by the server before the genuine one was sent.
        message = await received.next_msg(timeout=5)
        assert message.data == b"genuine"
    finally:
        for connection in (consumer, forging, genuine):
            await connection.close()


async def test_user_api_publishes_to_jetstream(secured: tuple[NatsServer, Path]) -> None:
    server, seeds = secured
    connection = await Connection().open(server, seed_path(seeds, "user_api"))
    try:
        js = connection.jetstream()
        await js.add_stream(name="USER", subjects=["user.>"])
        ack = await js.publish("user.logged_in", b"genuine", timeout=5)
        assert ack.stream == "USER"
    finally:
        await connection.close()


async def test_a_client_without_credentials_cannot_connect(
    secured: tuple[NatsServer, Path],
) -> None:
    server, _ = secured
    with pytest.raises((nats.errors.Error, OSError)) as refused:
        await Connection().open(server, None)
    assert "authorization" in str(refused.value).lower()


def test_a_service_that_imports_its_role_does_not_load_nkeys() -> None:
    # Roles are read by every service's settings; only provisioning makes keys.
    code = (
        "import sys, user_service.settings, shared.security.roles\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('nkeys', 'nacl')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
