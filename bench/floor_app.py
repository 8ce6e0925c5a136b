"""The floor of a service's idle memory: what its libraries hold with no kit code running.

    python bench/floor_app.py {config_service,auth_service,user_service,user_api}
        --etcd HOST:PORT --nats nats://HOST:PORT [--database-url URL] [--port N]

Each service is replaced by the least that the design asks of it, straight from the
libraries the kit builds on:
- every one: the uvloop event loop, settings read by pydantic-settings, an etcd client
  (aetcd, over grpc.aio) that reads the registry once, a NATS connection, a Prometheus
  counter and an OpenTelemetry tracer (the API, as with tracing off);
- a gRPC service: a grpc.aio server with the health service;
- auth_service: PyJWT signing and checking an HS256 token (imported without cryptography's
  bindings, as auth_service does, so that the floor stays a floor);
- user_service: SQLAlchemy asyncio on the service's database, one query, and Argon2;
- user_api: FastAPI with a form route, served by uvicorn on uvloop and httptools, and the
  `limits` rate limiter.

No TLS, breakers, selector, throttles or handlers: each figure is below what a service with
these libraries can hold, so a service's RSS over its floor is the kit's own cost at most.
It prints `ready` once everything is up, then idles until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aetcd
import grpc
import nats
import prometheus_client
import uvloop
from grpc_health.v1 import health, health_pb2_grpc
from opentelemetry import trace
from pydantic_settings import BaseSettings

from shared.imports import without_optional

KINDS = ("config_service", "auth_service", "user_service", "user_api")
# Not bench.stack's: importing it would load httpx into the floor.
SECRET = "floor-secret-that-is-long-enough-for-hs256-0123456789"


class FloorSettings(BaseSettings):
    service_name: str = "floor"
    log_level: str = "WARNING"


async def grpc_server() -> grpc.aio.Server:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server


def sign_and_check() -> None:
    with without_optional("cryptography.hazmat"):
        import jwt
    token = jwt.encode({"sub": "1"}, SECRET, algorithm="HS256")
    jwt.decode(token, SECRET, algorithms=["HS256"])


async def query_and_hasher(database_url: str) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    PasswordHasher()


async def http_server(port: int) -> asyncio.Task[None]:
    import uvicorn
    from fastapi import FastAPI, Form
    from limits import RateLimitItemPerMinute
    from limits.aio.storage import MemoryStorage
    from limits.aio.strategies import SlidingWindowCounterRateLimiter

    limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
    per_minute = RateLimitItemPerMinute(20)
    app = FastAPI()

    @app.post("/login")
    async def login(user_name: Annotated[str, Form()]) -> dict[str, bool]:
        return {"allowed": await limiter.hit(per_minute, user_name)}

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="none", http="httptools", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
        await asyncio.sleep(0.05)
    return serving


async def main(args: argparse.Namespace) -> None:
    FloorSettings()
    prometheus_client.Counter("floor_calls", "Calls served.")
    trace.get_tracer("floor")
    host, _, port = args.etcd.partition(":")
    etcd = aetcd.Client(host=host, port=int(port))
    await etcd.get_prefix(b"/micro/registry/")
    broker = await nats.connect(args.nats)
    # Held to the end: the loop keeps only weak references to tasks, and a grpc.aio server
    # that is collected stops.
    server = await http_server(args.port) if args.kind == "user_api" else await grpc_server()
    if args.kind == "auth_service":
        sign_and_check()
    if args.kind == "user_service":
        await query_and_hasher(args.database_url)
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await broker.close()
        if isinstance(server, grpc.aio.Server):
            await server.stop(None)
        else:
            server.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--database-url", default="sqlite+aiosqlite:///:memory:")
    parser.add_argument("--port", type=int, default=0)
    uvloop.run(main(parser.parse_args()))
