"""OpenTelemetry for the kit: setup, and lean spans for HTTP, gRPC, SQL and NATS.

A service's main calls `setup_tracing(...)` once and passes the returned `Tracing` to the
server interceptor, the HTTP middleware, the gRPC client, the broker and the engine.
"""

from shared.tracing.grpc_client import (
    ClientSpan,
    annotate_breaker,
    client_span,
    mark_peer,
    mark_rejected,
    mark_short_circuited,
    mark_timeout,
)
from shared.tracing.grpc_server import TracingServerInterceptor, server_tracing
from shared.tracing.http import TracingMiddleware
from shared.tracing.messaging import consumer_span, producer_span
from shared.tracing.propagation import inject_headers, outgoing_metadata
from shared.tracing.setup import Tracing, setup_tracing
from shared.tracing.sql import instrument_sqlalchemy

__all__ = [
    "ClientSpan",
    "Tracing",
    "TracingMiddleware",
    "TracingServerInterceptor",
    "annotate_breaker",
    "client_span",
    "consumer_span",
    "inject_headers",
    "instrument_sqlalchemy",
    "mark_peer",
    "mark_rejected",
    "mark_short_circuited",
    "mark_timeout",
    "outgoing_metadata",
    "producer_span",
    "server_tracing",
    "setup_tracing",
]
