"""Server streams end when their server stops, instead of holding its drain."""

from __future__ import annotations

import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.server import GrpcServer

SERVING = health_pb2.HealthCheckResponse.SERVING


async def test_a_watch_in_progress_ends_with_ok_when_the_server_stops() -> None:
    server = GrpcServer(name="svc", version="test", drain_s=10)
    node = await server.start()
    await server.set_serving(True)
    async with grpc.aio.insecure_channel(node.address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # grpc_health ships no stub types
        watch = stub.Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING

        started = time.monotonic()
        await server.stop()
        stopped_in = time.monotonic() - started
        rest = []
        while (reply := await watch.read()) is not grpc.aio.EOF:  # ends: no error raised
            rest.append(reply)

    assert stopped_in < 2  # not the 10 s drain
    assert await watch.code() is grpc.StatusCode.OK
    assert all(reply.status != SERVING for reply in rest)
