"""Prometheus metrics of the breakers, with the labelled children resolved once per command."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from shared.breaker.window import OUTCOMES

STATE_CODES = {"closed": 0.0, "open": 1.0, "half-open": 2.0}

# RPC latencies: sub-millisecond in-cluster calls up to the longest sensible timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Incrementer(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Observer(Protocol):
    def observe(self, amount: float) -> None: ...


@dataclass(frozen=True, slots=True)
class CommandMetrics:
    """One command's children: `calls[kind]` is the counter of outcome `OUTCOMES[kind]`."""

    calls: tuple[Incrementer, ...]
    latency: Observer


class _Nothing:
    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


NO_METRICS = CommandMetrics(calls=(_Nothing(),) * len(OUTCOMES), latency=_Nothing())


class BreakerMetrics:
    """breaker_calls_total{command,outcome}, breaker_call_latency_seconds{command},
    breaker_state{command} (0 closed, 1 open, 2 half-open) and breaker_in_flight{command}.

    The two gauges are read from the command when scraped, so the hot path never touches them.
    A call served by a fallback counts twice: its outcome (failure, timeout...) and `fallback`.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self.calls = Counter(
            "breaker_calls_total",
            "Calls through a circuit breaker, by outcome.",
            ("command", "outcome"),
            registry=registry,
        )
        self.latency = Histogram(
            "breaker_call_latency_seconds",
            "Latency of the calls that ran (not short-circuited, not rejected).",
            ("command",),
            buckets=tuple(latency_buckets),
            registry=registry,
        )
        self.state = Gauge(
            "breaker_state",
            "Circuit state: 0 closed, 1 open, 2 half-open.",
            ("command",),
            registry=registry,
        )
        self.in_flight = Gauge(
            "breaker_in_flight",
            "Calls of the command running now.",
            ("command",),
            registry=registry,
        )

    def bind(
        self, command: str, state: Callable[[], str], in_flight: Callable[[], int]
    ) -> CommandMetrics:
        self.state.labels(command).set_function(lambda: STATE_CODES[state()])
        self.in_flight.labels(command).set_function(in_flight)
        return CommandMetrics(
            calls=tuple(self.calls.labels(command, outcome) for outcome in OUTCOMES),
            latency=self.latency.labels(command),
        )


@functools.cache
def default_metrics() -> BreakerMetrics:
    """The metrics on prometheus_client's global registry, created once: a second
    registration of the same names there would raise."""
    return BreakerMetrics()
