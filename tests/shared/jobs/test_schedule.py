"""Schedules: the instants every replica computes alike, from a cron expression or an interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.jobs import Job, Tick

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


async def nothing(tick: Tick) -> None:
    pass


def test_an_interval_is_anchored_at_the_epoch_not_at_start_up() -> None:
    job = Job("ping", every=timedelta(seconds=30), run=nothing)

    assert job.schedule.next_after(T0 + timedelta(seconds=7)) == T0 + timedelta(seconds=30)
    assert job.schedule.next_after(T0) == T0 + timedelta(seconds=30)  # strictly after
    assert job.schedule.latest_at_or_before(T0) == T0
    assert job.schedule.latest_at_or_before(T0 + timedelta(seconds=29.9)) == T0


def test_a_cron_expression_gives_the_next_and_the_latest_tick_in_utc() -> None:
    job = Job("cleanup", cron="*/5 * * * *", run=nothing)

    assert job.schedule.next_after(T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=5)
    assert job.schedule.next_after(T0) == T0 + timedelta(minutes=5)
    assert job.schedule.latest_at_or_before(T0) == T0
    assert job.schedule.latest_at_or_before(T0 + timedelta(minutes=4, seconds=59)) == T0


def test_a_cron_job_may_name_its_time_zone() -> None:
    job = Job("report", cron="0 9 * * *", timezone=ZoneInfo("Europe/Paris"), run=nothing)

    # 09:00 in Paris on 1 March (UTC+1) is 08:00 UTC.
    assert job.schedule.next_after(T0 - timedelta(hours=6)) == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert job.schedule.next_after(T0).tzinfo == UTC


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"cron": "* * * * *", "every": timedelta(seconds=1)},
        {"cron": "every five minutes"},
        {"every": timedelta(0)},
    ],
)
def test_a_job_needs_exactly_one_valid_schedule(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the mistake
        Job("bad", run=nothing, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a/b", "has space", "x" * 65])
def test_a_job_name_must_fit_in_an_etcd_key_and_a_metric_label(name: str) -> None:
    with pytest.raises(ValueError, match="job name"):
        Job(name, every=timedelta(seconds=1), run=nothing)
