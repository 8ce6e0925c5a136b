"""The baseline for GET /user/me and POST /user/login: a bare FastAPI app making the same
calls as user_api with raw grpc.aio generated stubs, to the same running services. For
/user/me: auth ValidateToken, then user GetUser. For a login: user VerifyCredentials, then
auth MakeAccessToken, then (with `--nats`) the `user.logged_in` event published to
JetStream, the answer not waiting for it, as user_api does; user_service then records it.
Addresses are read from etcd once at start; no selector, breaker, deadline, throttle or
tracing. With `--tls-root` (the stack's development CA, when its services run with mTLS on)
it calls with user_api's certificate, as the kit does: the same handshakes, the same policy.
Served by uvicorn with the same loop and HTTP parser as the kit's `shared/http.py`, so the
comparison is between the two apps, not between servers.

    python bench/baseline_app.py --etcd 127.0.0.1:2379 --port 8090 [--loop uvloop --http httptools]
                                 [--tls-root .run/tls] [--nats nats://127.0.0.1:4222]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aetcd
import grpc
import nats
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse

from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn
from shared.security.credentials import secure_channel
from shared.security.workload import service_certificate

REGISTRY = "/micro/registry"


async def first_address(etcd: aetcd.Client, service: str) -> str:
    listing = await etcd.get_prefix(f"{REGISTRY}/{service}/".encode())
    for kv in listing:
        return str(json.loads(kv.value)["address"])
    raise SystemExit(f"no {service} node in etcd")


async def addresses(endpoint: str) -> tuple[str, str]:
    host, _, port = endpoint.partition(":")
    async with aetcd.Client(host=host, port=int(port)) as etcd:
        return (
            await first_address(etcd, "auth_service"),
            await first_address(etcd, "user_service"),
        )


def channel(address: str, service: str, tls_root: Path | None) -> grpc.aio.Channel:
    if tls_root is None:
        return grpc.aio.insecure_channel(address)
    certificate = service_certificate(
        "user_api", trust_domain="micro.local", tls_dir=None, dev_root=tls_root
    )
    return secure_channel(address, service, certificate)


def create_app(
    auth_address: str, user_address: str, tls_root: Path | None, nats_url: str | None = None
) -> FastAPI:
    app = FastAPI()
    stubs: dict[str, Any] = {}
    publishing: set[asyncio.Task[None]] = set()

    async def publish(event: UserLoggedIn) -> None:
        if nats_url is None:
            return
        if "jetstream" not in stubs:
            stubs["jetstream"] = (await nats.connect(nats_url)).jetstream()
        await stubs["jetstream"].publish(
            "user.logged_in",
            event.SerializeToString(),
            headers={"Nats-Msg-Id": event.event_id},
            stream="USER",
        )

    def channels() -> tuple[Any, Any]:
        # Created on the serving loop (grpc.aio channels belong to the loop that made them).
        if not stubs:
            auth = channel(auth_address, "auth_service", tls_root)
            users = channel(user_address, "user_service", tls_root)
            stubs["auth"] = auth_pb2_grpc.AuthServiceStub(auth)
            stubs["user"] = user_pb2_grpc.UserServiceStub(users)
        return stubs["auth"], stubs["user"]

    @app.get("/user/me")
    async def me(request: Request) -> Any:
        auth, users = channels()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse({"error": "unauthenticated"}, status_code=401)
        try:
            claims = (await auth.ValidateToken(auth_pb2.ValidateTokenRequest(token=token))).claims
            user = (await users.GetUser(user_pb2.GetUserRequest(id=claims.user_id))).user
        except grpc.aio.AioRpcError as error:
            return JSONResponse({"error": error.code().name}, status_code=502)
        return {"id": user.id, "name": user.name}

    @app.post("/user/login")
    async def login(
        request: Request,
        user_name: Annotated[str, Form(alias="userName")],
        password: Annotated[str, Form(alias="pwd")],
    ) -> Any:
        auth, users = channels()
        try:
            verified = await users.VerifyCredentials(
                user_pb2.VerifyCredentialsRequest(user_name=user_name, password=password)
            )
            user = verified.user
            token = await auth.MakeAccessToken(
                auth_pb2.MakeAccessTokenRequest(user_id=user.id, user_name=user.name)
            )
        except grpc.aio.AioRpcError as error:
            return JSONResponse({"error": error.code().name}, status_code=502)
        event = UserLoggedIn(
            event_id=uuid.uuid4().hex,
            user_id=user.id,
            user_name=user.name,
            occurred_at_ms=int(time.time() * 1000),
            client_address=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
        )
        task = asyncio.create_task(publish(event))
        publishing.add(task)
        task.add_done_callback(publishing.discard)
        return {
            "token": token.token,
            "token_id": token.token_id,
            "expires_at": token.expires_at,
            "user": {"id": user.id, "name": user.name},
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--tls-root", type=Path, default=None)
    parser.add_argument("--nats", default=None, help="publish login events to this server")
    args = parser.parse_args()
    auth_address, user_address = asyncio.run(addresses(args.etcd))
    config = uvicorn.Config(
        create_app(auth_address, user_address, args.tls_root, args.nats),
        host="127.0.0.1",
        port=args.port,
        loop=args.loop,
        http=args.http,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
