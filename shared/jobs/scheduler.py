"""`Scheduler`: a lifecycle part that runs a service's jobs on one of its replicas.

Every replica runs a scheduler with the same jobs; they campaign for one etcd key and
only the leader fires ticks. See README "Scheduled jobs" for the guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from types import TracebackType

import aetcd

from shared.jobs.clock import Clock, SystemClock
from shared.jobs.election import Election, Term, leader_key
from shared.jobs.job import Job
from shared.jobs.ledger import EtcdLedger
from shared.jobs.metrics import JobMetrics, default_metrics
from shared.jobs.runner import JobRunner
from shared.registry.etcd import etcd_client
from shared.tracing import Tracing

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/micro/jobs"


class Scheduler:
    """`scheduler.add(Job(...))`, then `await start()` ... `await stop()` (or `async with`).

    `etcd` is a client (the caller keeps it and closes it) or an endpoint (the scheduler
    makes its own client and closes it on stop). `ttl_s` bounds how long the jobs stay
    without a leader after the leader dies; `stop_timeout_s` how long stop waits for a
    run in flight before cancelling it.
    """

    def __init__(
        self,
        service: str,
        etcd: aetcd.Client | str,
        *,
        jobs: Iterable[Job] = (),
        ttl_s: int = 10,
        stop_timeout_s: float = 10.0,
        call_timeout_s: float = 3.0,
        prefix: str = DEFAULT_PREFIX,
        identity: str | None = None,
        clock: Clock | None = None,
        tracing: Tracing | None = None,
        metrics: JobMetrics | None = None,
    ) -> None:
        self.service = service
        self._owns_client = isinstance(etcd, str)
        self._client = etcd_client(etcd) if isinstance(etcd, str) else etcd
        self._ttl_s = ttl_s
        self._stop_timeout_s = stop_timeout_s
        self._call_timeout_s = call_timeout_s
        self._prefix = prefix.rstrip("/")
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock or SystemClock()
        self._tracing = tracing or Tracing.disabled(service)
        self._metrics = metrics or default_metrics()
        self._jobs: dict[str, Job] = {}
        self._task: asyncio.Task[None] | None = None
        self._leading = asyncio.Event()
        self._stopping = False
        for job in jobs:
            self.add(job)

    def add(self, job: Job) -> Job:
        if self._task is not None:
            raise RuntimeError("add jobs before the scheduler starts")
        if job.name in self._jobs:
            raise ValueError(f"a job named {job.name!r} is already scheduled")
        self._jobs[job.name] = job
        return job

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    async def wait_leading(self) -> None:
        await self._leading.wait()

    async def start(self) -> None:
        """Begin campaigning; returns at once. A scheduler without jobs does nothing."""
        if self._task is not None or not self._jobs:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._serve(), name=f"jobs-{self.service}")

    async def stop(self) -> None:
        """Stop firing ticks, let a run in flight finish (or cancel it after
        `stop_timeout_s`), then resign so another replica takes over at once."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            task.cancel()
            limit = self._stop_timeout_s + 2 * self._call_timeout_s + 1
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(limit):
                    await task
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self._client.close()

    async def __aenter__(self) -> Scheduler:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self) -> None:
        key = leader_key(self._prefix, self.service)
        election = Election(
            self._client,
            key,
            self.identity,
            ttl_s=self._ttl_s,
            call_timeout_s=self._call_timeout_s,
        )
        runner = JobRunner(
            self._jobs.values(), clock=self._clock, metrics=self._metrics, tracing=self._tracing
        )
        while True:
            term = await election.campaign()
            ledger = EtcdLedger(
                self._client,
                prefix=self._prefix,
                service=self.service,
                leader_key=key,
                term_revision=term.revision,
            )
            await self._lead(election, term, runner, ledger)

    async def _lead(
        self, election: Election, term: Term, runner: JobRunner, ledger: EtcdLedger
    ) -> None:
        log.info("leading the jobs of %s as %s", self.service, self.identity)
        self._leading.set()
        self._metrics.leader.set(1)
        drivers = asyncio.create_task(runner.lead(ledger), name="jobs-drivers")
        keeper = asyncio.create_task(election.hold(term), name="jobs-lease")
        try:
            await asyncio.wait({drivers, keeper}, return_when=asyncio.FIRST_COMPLETED)
            if drivers.done() and (error := drivers.exception()) is not None:
                log.error("job drivers failed; resigning: %r", error)
        finally:
            drivers.cancel()
            keeper.cancel()
            await asyncio.gather(drivers, keeper, return_exceptions=True)
            if self._stopping:
                await runner.drain(self._stop_timeout_s)
            else:
                # The lease is gone or going: another replica may lead already, so a run
                # that went on here could overlap its next one.
                await runner.cancel()
            await election.resign(term)
            self._leading.clear()
            self._metrics.leader.set(0)
            log.info("no longer leading the jobs of %s", self.service)
