"""Ready means: at least one node of each downstream service answers its health check."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.client import Client

_CHECK_TIMEOUT_S = 1.0


async def reachable(client: Client, service: str) -> bool:
    if not await client.selector.wait_ready(service, _CHECK_TIMEOUT_S):
        return False
    for node in client.selector.nodes(service):
        stub = health_pb2_grpc.HealthStub(client.node_channel(node.address))
        try:
            # types-grpcio-health-checking declares HealthStub without its methods.
            reply: health_pb2.HealthCheckResponse = await stub.Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(), timeout=_CHECK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError:
            continue
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return True
    return False
