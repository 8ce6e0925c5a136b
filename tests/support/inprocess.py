"""user_service, auth_service and user_api in one process, on the kit's memory registry.

For fast tests of behaviour around the HTTP layer: each service is wired by its own
`add_to`, as its app does; only the registry, the database and the revocation store
differ from the real processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from auth_service import app as auth_app
from auth_service.logic import TokenLogic
from auth_service.repository import MemoryRevocationStore
from shared import db
from shared.runtime import Runtime
from shared.testing import InProcess, Served
from user_api.app import create_app
from user_api.settings import UserApiSettings
from user_service import app as user_app
from user_service.logic import UserLogic
from user_service.repository import SqlUserRepository, ensure_schema

SECRET = "in-process-secret-that-is-long-enough-0123456789"


@dataclass
class InProcessSystem:
    http: httpx.AsyncClient
    user_server: Served
    auth_server: Served
    runtime: Runtime[UserApiSettings]


@asynccontextmanager
async def in_process_system(
    tmp_path: Path, **api_settings: object
) -> AsyncIterator[InProcessSystem]:
    engine = db.create_engine(f"sqlite:///{tmp_path}/users.db")
    await ensure_schema(engine)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users = UserLogic(SqlUserRepository(db.session_factory(engine)), hasher)
    tokens = TokenLogic(SECRET, "test", 60, MemoryRevocationStore())
    defaults: dict[str, object] = {
        "use_config_service": False,
        "nats_url": "memory://",
        "login_limit_per_address": "1000000/minute",  # tests/user_api/test_throttling.py
        "login_limit_per_account": "1000000/minute",
    }
    settings = UserApiSettings(**{**defaults, **api_settings})  # type: ignore[arg-type]
    try:
        async with InProcess.open() as system:
            user_server = await system.serve("user_service", user_app.add_to, users)
            auth_server = await system.serve("auth_service", auth_app.add_to, tokens)
            runtime = await system.runtime(settings)
            http = await system.http(create_app(runtime), base_url="http://api")
            yield InProcessSystem(http, user_server, auth_server, runtime)
    finally:
        await engine.dispose()
