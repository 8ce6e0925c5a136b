"""The one place that wires auth_service together."""

from __future__ import annotations

import asyncio

from auth_service.handlers import AuthHandlers
from auth_service.logic import TokenLogic
from auth_service.revocations import WatchedRevocations
from auth_service.settings import AuthServiceSettings
from shared.app import App
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.registry import etcd_client
from shared.server import GrpcServer


def add_to(server: GrpcServer, logic: TokenLogic) -> None:
    """Serve AuthService on `server`; the in-process tests use this too."""
    server.add_service(
        auth_pb2_grpc.add_AuthServiceServicer_to_server,
        AuthHandlers(logic),
        auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    )


async def run(settings: AuthServiceSettings) -> None:
    async with App.open(settings) as app:
        settings = app.settings
        username, password = settings.etcd_login()
        etcd = await app.enter(
            etcd_client(settings.etcd_endpoint, username=username, password=password)
        )
        # A part: its watch is current before the server starts, and stops after it drains.
        revoked = app.add(
            WatchedRevocations(
                etcd, settings.revocation_prefix, staleness_s=settings.revocation_staleness_s
            )
        )
        logic = TokenLogic(
            await asyncio.to_thread(settings.signing_key),
            settings.jwt_issuer,
            settings.token_ttl_s,
            revoked,
            app.runtime.broker,
            accepted=settings.accepted_keys(),
        )
        add_to(app.grpc_server(), logic)
        await app.run()
