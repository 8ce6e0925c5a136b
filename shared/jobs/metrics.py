"""Prometheus metrics of scheduled jobs, created on first use rather than at import."""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

OK = "ok"
ERROR = "error"
SKIPPED_OVERRUN = "skipped_overrun"
CANCELLED = "cancelled"


class JobMetrics:
    """All schedulers of a process share one set; tests pass their own registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.runs = Counter(
            "jobs_runs_total",
            "Ticks handled by this replica, by outcome: ok, error, cancelled (stop or "
            "leadership lost mid-run), skipped_overrun (the previous run was still going).",
            ["job", "outcome"],
            registry=registry,
        )
        self.last_success = Gauge(
            "jobs_last_success_timestamp_seconds",
            "Unix time at which a run of the job last ended without error, on this replica.",
            ["job"],
            registry=registry,
        )
        self.duration = Histogram(
            "jobs_run_duration_seconds",
            "How long runs took, whatever their outcome.",
            ["job"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0),
            registry=registry,
        )
        self.leader = Gauge(
            "jobs_leader",
            "1 while this replica leads its service's jobs, else 0.",
            registry=registry,
        )


@cache
def default_metrics() -> JobMetrics:
    return JobMetrics(REGISTRY)
