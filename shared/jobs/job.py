"""A job: a name, a schedule (cron or interval) and the async function each tick runs.

Ticks are instants every replica computes alike without talking to the others: an interval
is anchored at the Unix epoch (every 30 s means :00 and :30 of each minute, whatever time
a replica started), a cron expression is read in UTC unless the job names a time zone.
A tick's instant is its identity: the leader records the last one it claimed, by instant.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

from croniter import croniter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The name is part of an etcd key and a metric label.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_JUST_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Tick:
    """What a run is told: which job, and the scheduled instant (UTC) it runs for."""

    job: str
    at: datetime


JobFunction = Callable[[Tick], Awaitable[None]]


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment`."""
        ...

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before `moment`."""
        ...


@dataclass(frozen=True, slots=True)
class Every:
    period: timedelta

    def __post_init__(self) -> None:
        if self.period <= timedelta(0):
            raise ValueError(f"an interval must be positive, not {self.period}")

    def latest_at_or_before(self, moment: datetime) -> datetime:
        return EPOCH + ((moment - EPOCH) // self.period) * self.period

    def next_after(self, moment: datetime) -> datetime:
        return self.latest_at_or_before(moment) + self.period


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression as croniter reads it (5 fields; a 6th is seconds)."""

    expression: str
    timezone: tzinfo = UTC

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression):
            raise ValueError(f"not a valid cron expression: {self.expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        base = moment.astimezone(self.timezone)
        tick: datetime = croniter(self.expression, base).get_next(datetime)
        return tick.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        # croniter's get_prev is strictly before its base; a microsecond later makes it "at or".
        base = (moment + _JUST_AFTER).astimezone(self.timezone)
        tick: datetime = croniter(self.expression, base).get_prev(datetime)
        return tick.astimezone(UTC)


@dataclass(frozen=True)
class Job:
    """`Job("cleanup", cron="*/5 * * * *", run=cleanup)` or
    `Job("ping", every=timedelta(seconds=30), run=ping)`.

    `run` is called with a `Tick`; it may use `tick.at` as an idempotency key.
    """

    name: str
    run: JobFunction
    cron: str | None = None
    every: timedelta | None = None
    timezone: tzinfo = UTC
    schedule: Schedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"a job name is letters, digits, '_', '.', '-': {self.name!r}")
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"job {self.name!r} needs exactly one of cron= or every=")
        schedule: Schedule
        if self.cron is not None:
            schedule = Cron(self.cron, self.timezone)
        else:
            assert self.every is not None
            schedule = Every(self.every)
        object.__setattr__(self, "schedule", schedule)
