"""Server-side RPC metrics, per method and status code."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed by this node", ["grpc_method", "grpc_code"]
)
LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC",
    ["grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
