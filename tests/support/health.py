"""The standard gRPC health check, typed (the grpc health stubs declare no stub methods)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2

_CHECK = "/grpc.health.v1.Health/Check"


async def check(
    channel: grpc.aio.Channel, service: str = "", *, timeout: float | None = None
) -> health_pb2.HealthCheckResponse:
    call: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ] = channel.unary_unary(
        _CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    return await call(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
