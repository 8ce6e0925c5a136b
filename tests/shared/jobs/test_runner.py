"""The leader's tick logic on a hand-driven clock: once per tick, catch-up, overruns, outcomes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from shared.jobs import Job, JobMetrics, JobRunner, ManualClock, MemoryLedger, Tick
from shared.tracing import Tracing

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
PERIOD = timedelta(seconds=10)
WAIT_S = 2.0


@pytest.fixture(autouse=True)
def _sdk_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's TracerProvider records nothing when OTEL_SDK_DISABLED is set in the
    # environment the suite runs in; these tests read the spans a run makes.
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)


@dataclass
class Harness:
    clock: ManualClock
    ledger: MemoryLedger
    registry: CollectorRegistry
    exporter: InMemorySpanExporter
    runner: JobRunner = field(init=False)
    runs: asyncio.Queue[datetime] = field(default_factory=asyncio.Queue)

    def count(self, outcome: str, job: str = "ping") -> float:
        value = self.registry.get_sample_value("jobs_runs_total", {"job": job, "outcome": outcome})
        return value or 0.0

    async def tick(self) -> None:
        """Move to the next tick and wait until the driver is asleep again."""
        self.clock.advance(PERIOD)
        await asyncio.wait_for(self.clock.sleepers(1), WAIT_S)

    async def ran(self) -> datetime:
        return await asyncio.wait_for(self.runs.get(), WAIT_S)

    async def finished(self) -> None:
        await asyncio.wait_for(self.runner.drain(WAIT_S), WAIT_S)


Body = Callable[[Tick], Awaitable[None]]


@contextlib.asynccontextmanager
async def leading(
    body: Body | None = None, *, start: datetime = T0, ledger: MemoryLedger | None = None
) -> AsyncIterator[Harness]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(
        provider.get_tracer("test"), provider, service_name="svc", skip_unsampled=True
    )
    harness = Harness(ManualClock(start), ledger or MemoryLedger(), CollectorRegistry(), exporter)

    async def record(tick: Tick) -> None:
        harness.runs.put_nowait(tick.at)
        if body is not None:
            await body(tick)

    job = Job("ping", every=PERIOD, run=record)
    runner = JobRunner(
        [job], clock=harness.clock, metrics=JobMetrics(harness.registry), tracing=tracing
    )
    harness.runner = runner
    driving = asyncio.create_task(runner.lead(harness.ledger))
    try:
        await asyncio.wait_for(harness.clock.sleepers(1), WAIT_S)
        yield harness
    finally:
        driving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driving
        await runner.drain(WAIT_S)


async def test_each_tick_runs_once_with_its_own_instant() -> None:
    async with leading() as h:
        for n in range(1, 6):
            await h.tick()
            assert await h.ran() == T0 + n * PERIOD

        assert h.runs.empty()
        assert h.count("ok") == 5
        assert h.ledger.claimed["ping"] == T0 + 5 * PERIOD


async def test_a_job_that_never_ran_waits_for_its_next_tick() -> None:
    async with leading(start=T0 + timedelta(seconds=5)) as h:
        assert h.runs.empty()
        await h.tick()
        assert await h.ran() == T0 + PERIOD


async def test_a_new_leader_runs_the_latest_missed_tick_once_at_once() -> None:
    ledger = MemoryLedger()
    ledger.claimed["ping"] = T0 - 3 * PERIOD  # the old leader's last; two ticks went unled

    async with leading(start=T0 + timedelta(seconds=5), ledger=ledger) as h:
        assert await h.ran() == T0  # not T0 - 2 * PERIOD, not T0 - PERIOD
        await h.tick()
        assert await h.ran() == T0 + PERIOD
        assert h.runs.empty()


async def test_a_new_leader_does_not_rerun_the_tick_the_old_one_claimed() -> None:
    ledger = MemoryLedger()
    ledger.claimed["ping"] = T0

    async with leading(start=T0 + timedelta(seconds=5), ledger=ledger) as h:
        assert h.runs.empty()
        await h.tick()
        assert await h.ran() == T0 + PERIOD


async def test_an_overrun_skips_the_tick_instead_of_starting_a_second_copy() -> None:
    release = asyncio.Event()

    async def slow(tick: Tick) -> None:
        await release.wait()

    async with leading(slow) as h:
        await h.tick()
        assert await h.ran() == T0 + PERIOD
        await h.tick()  # the first run still goes

        assert h.runs.empty()
        assert h.count("skipped_overrun") == 1
        assert h.runner.running == {"ping": T0 + PERIOD}

        release.set()
        await h.tick()
        assert await h.ran() == T0 + 3 * PERIOD
        assert h.count("ok") == 2


async def test_a_failing_run_is_counted_and_its_span_marked_failed() -> None:
    async def fail(tick: Tick) -> None:
        raise RuntimeError("disk full")

    async with leading(fail) as h:
        await h.tick()
        await h.ran()
        await h.finished()
        assert h.count("error") == 1

        assert (
            h.registry.get_sample_value("jobs_last_success_timestamp_seconds", {"job": "ping"})
            is None
        )
        (span,) = h.exporter.get_finished_spans()
        assert span.name == "job ping"
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["job.tick"] == (T0 + PERIOD).isoformat()
        assert span.attributes["job.outcome"] == "error"
        assert span.parent is None


async def test_a_successful_run_sets_its_last_success_time() -> None:
    async with leading() as h:
        await h.tick()
        await h.ran()
        await h.finished()
        assert h.count("ok") == 1

        assert h.registry.get_sample_value("jobs_last_success_timestamp_seconds", {"job": "ping"})
        (span,) = h.exporter.get_finished_spans()
        assert span.status.status_code is StatusCode.UNSET


async def test_drain_waits_for_a_run_within_its_bound_then_cancels_it() -> None:
    async def forever(tick: Tick) -> None:
        await asyncio.Event().wait()

    async with leading(forever) as h:
        await h.tick()
        await h.ran()
        await asyncio.wait_for(h.runner.drain(0.05), WAIT_S)

        assert h.count("cancelled") == 1
        assert h.runner.running == {}


async def test_an_unclaimable_tick_is_not_run_and_the_next_one_is() -> None:
    class FlakyLedger(MemoryLedger):
        fail = True

        async def claim(self, job: str, tick: datetime) -> bool:
            if self.fail:
                self.fail = False
                raise ConnectionError("etcd away")
            return await super().claim(job, tick)

    async with leading(ledger=FlakyLedger()) as h:
        await h.tick()
        assert h.runs.empty()
        await h.tick()
        assert await h.ran() == T0 + 2 * PERIOD


@pytest.mark.parametrize("behind", [1, 5])
async def test_a_driver_that_fell_behind_fires_the_latest_tick_not_a_backlog(behind: int) -> None:
    async with leading() as h:
        h.clock.advance(PERIOD * behind + timedelta(seconds=1))
        await asyncio.wait_for(h.clock.sleepers(1), WAIT_S)
        assert await h.ran() == T0 + behind * PERIOD
        assert h.runs.empty()
