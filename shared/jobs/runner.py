"""What the leader does with its jobs: wait for each tick, claim it, run it once, traced.

One driver task per job sleeps until the job's next tick, then fires it: a tick that
comes while the previous run of the same job still goes is skipped (and counted), never
started as a second copy; otherwise the tick is claimed in the ledger and run in its own
task, so a slow run does not delay the driver. Runs outlive the drivers: the scheduler
decides whether to wait for them (stop) or cancel them (leadership lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime

from opentelemetry.trace import SpanKind

from shared import backoff
from shared.jobs import metrics as outcomes
from shared.jobs.clock import Clock
from shared.jobs.job import Job, Tick
from shared.jobs.ledger import Ledger
from shared.jobs.metrics import JobMetrics
from shared.tracing import Tracing
from shared.tracing.spans import ROOT_CONTEXT, ActiveSpan, record_error

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self, jobs: Iterable[Job], *, clock: Clock, metrics: JobMetrics, tracing: Tracing
    ) -> None:
        self._jobs = list(jobs)
        self._clock = clock
        self._metrics = metrics
        self._tracing = tracing
        self._running: dict[str, asyncio.Task[None]] = {}
        self._ticks: dict[str, datetime] = {}

    @property
    def running(self) -> dict[str, datetime]:
        """The tick each job is running now, by job name."""
        return {name: self._ticks[name] for name in self._running}

    async def lead(self, ledger: Ledger) -> None:
        """Drive every job until cancelled; runs in flight are left to `drain`/`cancel`."""
        async with asyncio.TaskGroup() as group:
            for job in self._jobs:
                group.create_task(self._drive(job, ledger), name=f"job-driver-{job.name}")

    async def drain(self, timeout_s: float) -> None:
        """Let the runs in flight finish for up to `timeout_s`, then cancel the rest."""
        runs = list(self._running.values())
        if not runs:
            return
        _, late = await asyncio.wait(runs, timeout=timeout_s)
        if late:
            log.warning("cancelling %d job run(s) still going after %.1f s", len(late), timeout_s)
        await self._cancel(late)

    async def cancel(self) -> None:
        await self._cancel(list(self._running.values()))

    async def _cancel(self, runs: Iterable[asyncio.Task[None]]) -> None:
        runs = list(runs)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    async def _drive(self, job: Job, ledger: Ledger) -> None:
        schedule = job.schedule
        now = self._clock.now()
        tick = schedule.next_after(now)
        last = await self._last(job, ledger)
        if last is not None:
            # Ticks missed while no replica led are run once, together: the latest of them.
            # A job that never ran has no missed ticks: it starts with its next one.
            due = schedule.latest_at_or_before(now)
            if due > last:
                tick = due
        while True:
            await self._clock.sleep_until(tick)
            # Woken late by more than a tick (a stalled loop, a suspended host): the latest
            # due tick stands for those missed, rather than firing the backlog in a burst.
            tick = max(tick, schedule.latest_at_or_before(self._clock.now()))
            await self._fire(job, tick, ledger)
            tick = schedule.next_after(tick)

    async def _last(self, job: Job, ledger: Ledger) -> datetime | None:
        # Without the record the driver cannot tell a missed tick from a run one: it waits.
        for wait in backoff.delays(0.1, 2.0):
            try:
                return await ledger.last(job.name)
            except Exception as error:
                log.warning("job %s: cannot read its last tick: %r", job.name, error)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _fire(self, job: Job, tick: datetime, ledger: Ledger) -> None:
        if (previous := self._running.get(job.name)) is not None and not previous.done():
            self._metrics.runs.labels(job.name, outcomes.SKIPPED_OVERRUN).inc()
            log.warning("job %s: tick %s skipped, the previous run is still going", job.name, tick)
            return
        try:
            claimed = await ledger.claim(job.name, tick)
        except Exception as error:
            # Unclaimed means unrun: a tick is run at most once, never on a guess.
            log.warning("job %s: tick %s not run, cannot claim it: %r", job.name, tick, error)
            return
        if not claimed:
            log.info("job %s: tick %s already claimed, or leadership lost", job.name, tick)
            return
        run = asyncio.create_task(self._run(job, tick), name=f"job-{job.name}-{tick.isoformat()}")
        self._running[job.name] = run
        self._ticks[job.name] = tick
        run.add_done_callback(lambda done: self._forget(job.name, done))

    def _forget(self, name: str, run: asyncio.Task[None]) -> None:
        if self._running.get(name) is run:
            del self._running[name]
            del self._ticks[name]

    async def _run(self, job: Job, tick: datetime) -> None:
        started = time.monotonic()
        outcome = outcomes.ERROR
        span = self._tracing.tracer.start_span(
            f"job {job.name}",
            context=ROOT_CONTEXT,  # a tick is a trace of its own, not part of whatever ran before
            kind=SpanKind.INTERNAL,
            attributes={"job.name": job.name, "job.tick": tick.isoformat()},
        )
        with ActiveSpan(span):
            try:
                await job.run(Tick(job.name, tick))
                outcome = outcomes.OK
            except asyncio.CancelledError:
                outcome = outcomes.CANCELLED
                raise
            except Exception as exc:
                record_error(span, exc)
                log.exception("job %s: the run for tick %s failed", job.name, tick)
            finally:
                span.set_attribute("job.outcome", outcome)
                self._metrics.runs.labels(job.name, outcome).inc()
                self._metrics.duration.labels(job.name).observe(time.monotonic() - started)
                if outcome == outcomes.OK:
                    self._metrics.last_success.labels(job.name).set(time.time())
