"""A logout's event survives a crash: what auth_service spools while NATS is down outlives
SIGKILL, as user_api's login events do (tests/user_api/test_spool_crash.py).

NATS down, 20 tokens revoked (each answered once its event is in the spool file),
auth_service killed with SIGKILL, started again on the same spool, NATS started: all 20
`auth.token_revoked` events reach the AUTH stream once each.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.nats import NatsServer, stored_once_each
from tests.support.services import wait_for_nodes
from tests.support.tls import channel_as, tls_root

pytestmark = pytest.mark.integration

REVOKED = 20


async def test_spooled_revocation_events_outlive_sigkill(
    tmp_path: Path, start_service: StartService, registry: EtcdRegistry
) -> None:
    nats_server = NatsServer(tmp_path / "nats")  # not started: NATS is down
    env = {
        "NATS_URL": nats_server.url,
        "USE_CONFIG_SERVICE": "false",
        "BROKER_SPOOL_PATH": str(tmp_path / "auth_service" / "spool.sqlite3"),
    }
    try:
        async with asyncio.timeout(60):
            auth = start_service("auth_service", **env)
            (node,) = await wait_for_nodes(registry, "auth_service", 1)
            async with channel_as(
                tls_root(tmp_path), "user_api", node.address, "auth_service"
            ) as channel:
                stub = auth_pb2_grpc.AuthServiceStub(channel)
                for user_id in range(1, REVOKED + 1):
                    issued = await stub.MakeAccessToken(
                        auth_pb2.MakeAccessTokenRequest(user_id=user_id, user_name="u"),
                        timeout=5,
                    )
                    await stub.RevokeToken(
                        auth_pb2.RevokeTokenRequest(token=issued.token), timeout=5
                    )

            auth.signal(signal.SIGKILL)  # no flush, no goodbye
            await asyncio.to_thread(auth.wait)
            restarted = start_service("auth_service", **env)
            await nats_server.start()

            await stored_once_each(
                nats_server, "AUTH", "auth.token_revoked", REVOKED, logs=restarted.logs
            )
    finally:
        await nats_server.stop()
