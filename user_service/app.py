"""The one place that wires user_service together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from argon2 import PasswordHasher

from shared import db
from shared.app import App
from shared.broker.events import subject_of
from shared.memory import IdleTrim
from shared.outbox import OutboxRelay
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.proto.user.v1.user_events_pb2 import UserCreated, UserLoggedIn
from shared.retry import until_done
from shared.server import GrpcServer, per_core
from shared.sqlite_reads import SqliteReads
from shared.tracing import instrument_sqlalchemy
from user_service.cache import UserCache
from user_service.handlers import LoginEvents, UserHandlers
from user_service.logic import UserLogic
from user_service.repository import OutboxRow, SqlUserRepository, ensure_schema
from user_service.settings import UserServiceSettings

# The methods that hash or verify a password.
CPU_BOUND = ("VerifyCredentials", "CreateUser")


def add_to(server: GrpcServer, logic: UserLogic) -> None:
    """Serve UserService on `server`; the in-process tests use this too."""
    server.add_service(
        user_pb2_grpc.add_UserServiceServicer_to_server,
        UserHandlers(logic),
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
    )


def _closing(reads: SqliteReads) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        reads.close()

    return close


async def run(settings: UserServiceSettings) -> None:
    async with App.open(settings) as app:
        settings = app.settings
        engine = db.create_engine(
            settings.database(),
            pool_size=settings.database_pool_size,
            pool_timeout_s=settings.database_pool_timeout_s,
            connect_timeout_s=settings.database_connect_timeout_s,
            statement_timeout_s=settings.database_statement_timeout_s,
        )
        app.on_stop(engine.dispose)
        instrument_sqlalchemy(engine, app.runtime.tracing)
        # The seed user (micro/123) is development's convenience: never in production.
        seed = settings.is_development
        await until_done(lambda: ensure_schema(engine, seed=seed), "preparing the database")
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        # SQLite: point reads straight on the loop (microseconds), writes through SQLAlchemy.
        reads = await SqliteReads.open(settings.database_url)
        if reads is not None:
            app.on_stop(_closing(reads))
        cache = UserCache(ttl_s=settings.user_cache_ttl_s)
        sessions = db.session_factory(engine)
        users = SqlUserRepository(sessions, reads, cache, timeout_s=settings.database_timeout_s)
        hashing = IdleTrim()  # Argon2 on one thread per core; its memory back when idle
        app.on_stop(hashing.close)
        logic = UserLogic(users, hasher, hashing, password_min_length=settings.password_min_length)
        await logic.prepare()
        app.subscribe(subject_of(UserLoggedIn), LoginEvents(logic).on_logged_in)
        # Publishes the outbox (user.created, written with each new user); its stream is
        # declared here, as this replica may relay what another one wrote.
        subject_of(UserCreated)
        app.add(OutboxRelay(sessions, OutboxRow, app.runtime.broker))
        # Argon2 is CPU-bound (in worker threads): one running per core, a queue per client,
        # the rest shed at once rather than timing out behind each other.
        cpu_bound = per_core(calls=1, queue=8)
        add_to(app.grpc_server(admissions=dict.fromkeys(CPU_BOUND, cpu_bound)), logic)
        await app.run()
