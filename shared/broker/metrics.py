"""Prometheus metrics of the broker, created on first use rather than at import."""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class BrokerMetrics:
    """All brokers of a process share one set; tests pass their own registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.published = Counter(
            "broker_events_published_total",
            "Events accepted by the broker server (JetStream acked, or sent on core NATS).",
            ["subject"],
            registry=registry,
        )
        self.dropped = Counter(
            "broker_events_dropped_total",
            "Events given up before reaching the server: outbox full, rejected, or unsent at exit.",
            ["subject"],
            registry=registry,
        )
        self.outbox_size = Gauge(
            "broker_outbox_size",
            "Events waiting in the in-process outbox.",
            registry=registry,
        )
        self.handler_errors = Counter(
            "broker_handler_errors_total",
            "Handler calls that raised.",
            ["subject", "queue"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "broker_events_dead_lettered_total",
            "Events moved to the dead-letter stream after max_deliver attempts.",
            ["subject", "queue"],
            registry=registry,
        )


@cache
def default_metrics() -> BrokerMetrics:
    return BrokerMetrics(REGISTRY)
