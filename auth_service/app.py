"""The one place that wires auth_service together."""

from __future__ import annotations

import asyncio

from auth_service.handlers import AuthHandlers
from auth_service.logic import TokenLogic
from auth_service.revocations import WatchedRevocations
from auth_service.settings import AuthServiceSettings
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.registry import etcd_client
from shared.runtime import Runtime, serve


async def run(settings: AuthServiceSettings) -> None:
    async with Runtime.open(settings) as runtime:
        settings = runtime.settings
        async with etcd_client(settings.etcd_endpoint) as etcd:
            revoked = WatchedRevocations(
                etcd, settings.revocation_prefix, staleness_s=settings.revocation_staleness_s
            )
            await revoked.start()
            logic = TokenLogic(
                await asyncio.to_thread(settings.signing_key),
                settings.jwt_issuer,
                settings.token_ttl_s,
                revoked,
                runtime.broker,
            )
            server = runtime.grpc_server()
            server.add_service(
                auth_pb2_grpc.add_AuthServiceServicer_to_server,
                AuthHandlers(logic),
                auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
            )
            try:
                await serve(server)
            finally:
                await revoked.close()
