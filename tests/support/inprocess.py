"""user_service, auth_service and user_api in one process, on a memory registry.

For fast tests of behaviour around the HTTP layer; the same code as the real processes,
only the registry and the revocation store are in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from auth_service.handlers import AuthHandlers
from auth_service.logic import TokenLogic
from auth_service.repository import MemoryRevocationStore
from shared import db
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.registry import MemoryRegistry
from shared.runtime import Runtime
from shared.server import GrpcServer
from user_api.app import create_app
from user_api.settings import UserApiSettings
from user_service.handlers import UserHandlers
from user_service.logic import UserLogic
from user_service.repository import UserRepository, ensure_schema

SECRET = "in-process-secret-that-is-long-enough-0123456789"


@dataclass
class InProcessSystem:
    http: httpx.AsyncClient
    user_server: GrpcServer
    auth_server: GrpcServer
    runtime: Runtime[UserApiSettings]


@asynccontextmanager
async def in_process_system(
    tmp_path: Path, **api_settings: object
) -> AsyncIterator[InProcessSystem]:
    registry = MemoryRegistry()
    engine = db.create_engine(f"sqlite:///{tmp_path}/users.db")
    await ensure_schema(engine)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    user_server = GrpcServer(name="user_service", version="test", registry=registry, drain_s=0)
    user_server.add_service(
        user_pb2_grpc.add_UserServiceServicer_to_server,
        UserHandlers(UserLogic(UserRepository(db.session_factory(engine)), hasher)),
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
    )
    auth_server = GrpcServer(name="auth_service", version="test", registry=registry, drain_s=0)
    auth_server.add_service(
        auth_pb2_grpc.add_AuthServiceServicer_to_server,
        AuthHandlers(TokenLogic(SECRET, "test", 60, MemoryRevocationStore())),
        auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    )
    await user_server.start()
    await auth_server.start()
    settings = UserApiSettings(
        use_config_service=False,
        nats_url="memory://",
        login_limit_per_address="1000000/minute",  # tests/user_api/test_throttling.py
        login_limit_per_account="1000000/minute",
        **api_settings,  # type: ignore[arg-type]
    )
    try:
        async with Runtime.open(settings, registry=registry) as runtime:
            transport = httpx.ASGITransport(app=create_app(runtime))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                yield InProcessSystem(http, user_server, auth_server, runtime)
    finally:
        await user_server.stop()
        await auth_server.stop()
        await engine.dispose()
