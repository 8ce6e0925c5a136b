"""The one place that wires user_service together."""

from __future__ import annotations

from argon2 import PasswordHasher

from shared import db
from shared.broker.events import USER_LOGGED_IN
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.retry import until_done
from shared.runtime import Runtime, serve
from shared.sqlite_reads import SqliteReads
from shared.tracing import instrument_sqlalchemy
from user_service.cache import UserCache
from user_service.handlers import LoginEvents, UserHandlers
from user_service.logic import UserLogic
from user_service.repository import UserRepository, ensure_schema
from user_service.settings import UserServiceSettings


async def run(settings: UserServiceSettings) -> None:
    async with Runtime.open(settings) as runtime:
        settings = runtime.settings
        engine = db.create_engine(settings.database_url, pool_size=settings.database_pool_size)
        instrument_sqlalchemy(engine, runtime.tracing)
        reads: SqliteReads | None = None
        try:
            await until_done(lambda: ensure_schema(engine), "preparing the database")
            hasher = PasswordHasher(
                time_cost=settings.argon2_time_cost,
                memory_cost=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            )
            reads = SqliteReads.for_url(settings.database_url)
            cache = UserCache(ttl_s=settings.user_cache_ttl_s)
            users = UserRepository(db.session_factory(engine), reads, cache)
            logic = UserLogic(users, hasher)
            await runtime.subscribe(USER_LOGGED_IN, LoginEvents(logic).on_logged_in)
            server = runtime.grpc_server()
            server.add_service(
                user_pb2_grpc.add_UserServiceServicer_to_server,
                UserHandlers(logic),
                user_pb2.DESCRIPTOR.services_by_name["UserService"],
            )
            await serve(server)
        finally:
            if reads is not None:
                reads.close()
            await engine.dispose()
