"""Client-side RPC metrics: what the caller saw of each call, retries included."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ClientMetrics:
    """`grpc_client_handled_total` and `grpc_client_handling_seconds` per service and method."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        labels = ["grpc_service", "grpc_method"]
        self.handled = Counter(
            "grpc_client_handled_total",
            "RPCs completed by this client, by the code the caller got",
            [*labels, "grpc_code"],
            registry=registry,
        )
        self.latency = Histogram(
            "grpc_client_handling_seconds",
            "Time from the call to its answer, retries included",
            labels,
            buckets=_BUCKETS,
            registry=registry,
        )


_default: ClientMetrics | None = None


def default_metrics() -> ClientMetrics:
    """The metrics on prometheus_client's global registry, created once per process."""
    global _default
    if _default is None:
        _default = ClientMetrics()
    return _default
