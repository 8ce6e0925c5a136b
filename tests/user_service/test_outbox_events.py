"""user.created goes through user_service's transactional outbox: NATS down, users
created, the process killed before it could publish, started again, NATS back: every
event reaches the stream, once."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.nats import NatsServer, stored_once_each
from tests.support.services import wait_for_nodes
from tests.support.tls import channel_as, tls_root

pytestmark = pytest.mark.integration

USERS = 20
PASSWORD = "a passphrase"


async def test_created_users_events_survive_an_outage_and_a_crash(
    tmp_path: Path, start_service: StartService, registry: EtcdRegistry, mariadb_database: str
) -> None:
    nats_server = NatsServer(tmp_path / "nats")  # not started: NATS is down
    env = {
        "NATS_URL": nats_server.url,
        "USE_CONFIG_SERVICE": "false",
        "DATABASE_URL": mariadb_database,
    }
    try:
        async with asyncio.timeout(60):
            service = start_service("user_service", **env)
            (node,) = await wait_for_nodes(registry, "user_service", 1)
            # As user_api, the one caller CreateUser allows (every hop is mTLS).
            async with channel_as(
                tls_root(tmp_path), "user_api", node.address, "user_service"
            ) as channel:
                stub = user_pb2_grpc.UserServiceStub(channel)
                for number in range(USERS):
                    request = user_pb2.CreateUserRequest(name=f"user{number}", password=PASSWORD)
                    await stub.CreateUser(request, timeout=10)

            service.signal(signal.SIGKILL)  # committed, never published
            await asyncio.to_thread(service.wait)
            start_service("user_service", **env)
            await nats_server.start()

            # Exactly: a row published twice would be one more (past the dedup window).
            await stored_once_each(nats_server, "USER", "user.created", USERS)
    finally:
        await nats_server.stop()
