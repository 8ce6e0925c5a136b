"""A tiny grpc.aio server for the identity tests: `/test.Who/Am` answers the caller's URI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc

from shared.security.identity import caller_identity

WHO_AM = "/test.Who/Am"


async def _who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    identity = caller_identity(context)
    return b"" if identity is None else identity.uri.encode()


def who_handler(
    behavior: Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]] = _who,
) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "test.Who", {"Am": grpc.unary_unary_rpc_method_handler(behavior)}
    )


@asynccontextmanager
async def serving(
    credentials: grpc.ServerCredentials,
    handlers: tuple[grpc.GenericRpcHandler, ...] = (),
    interceptors: tuple[grpc.aio.ServerInterceptor, ...] = (),
) -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers(handlers or (who_handler(),))
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def ask(channel: grpc.aio.Channel, path: str = WHO_AM, timeout: float = 5.0) -> bytes:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
    async with channel:
        return await call(b"", timeout=timeout)
