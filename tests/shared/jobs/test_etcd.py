"""Election and ledger against a real etcd: the fence, the TTL, prompt resignation."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aetcd
import pytest
from prometheus_client import CollectorRegistry

from shared.jobs import EtcdLedger, Job, JobMetrics, Scheduler, Tick
from shared.jobs.election import Election, leader_key
from shared.registry.etcd import etcd_client
from tests.support.etcd import EtcdServer

pytestmark = pytest.mark.integration

PREFIX = "/micro/jobs"
KEY = leader_key(PREFIX, "svc")
T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
async def client(etcd: EtcdServer) -> AsyncIterator[aetcd.Client]:
    client = etcd_client(etcd.endpoint)
    yield client
    await client.close()


def election(client: aetcd.Client, name: str, ttl_s: int = 2) -> Election:
    return Election(client, KEY, name, ttl_s=ttl_s, call_timeout_s=3)


def ledger(client: aetcd.Client, term_revision: int) -> EtcdLedger:
    return EtcdLedger(
        client, prefix=PREFIX, service="svc", leader_key=KEY, term_revision=term_revision
    )


async def test_a_tick_is_claimed_once_and_only_by_the_current_term(client: aetcd.Client) -> None:
    term = await asyncio.wait_for(election(client, "a").campaign(), 5)
    current = ledger(client, term.revision)
    stale = ledger(client, term.revision - 1)

    assert await current.last("job") is None
    assert not await stale.claim("job", T0)
    assert await current.claim("job", T0)
    assert not await current.claim("job", T0)
    assert not await current.claim("job", T0 - timedelta(seconds=1))
    assert await current.claim("job", T0 + timedelta(seconds=1))
    assert await current.last("job") == T0 + timedelta(seconds=1)


async def test_a_leader_that_stops_keeping_its_lease_alive_is_replaced_within_the_ttl(
    client: aetcd.Client,
) -> None:
    first = await asyncio.wait_for(election(client, "a").campaign(), 5)
    started = time.monotonic()
    second = await asyncio.wait_for(election(client, "b").campaign(), 10)  # "a" never holds

    assert 1.0 < time.monotonic() - started < 3.5
    assert second.revision > first.revision
    assert not await ledger(client, first.revision).claim("job", T0)  # deposed: fenced off
    assert await ledger(client, second.revision).claim("job", T0)


async def test_a_stopping_leader_hands_over_at_once_without_rerunning_a_tick(
    etcd: EtcdServer,
) -> None:
    runs: asyncio.Queue[tuple[str, datetime]] = asyncio.Queue()

    def replica(name: str) -> Scheduler:
        async def record(tick: Tick) -> None:
            runs.put_nowait((name, tick.at))

        job = Job("ping", every=timedelta(seconds=1), run=record)
        metrics = JobMetrics(CollectorRegistry())
        return Scheduler("svc", etcd.endpoint, jobs=[job], ttl_s=10, identity=name, metrics=metrics)

    a, b = replica("a"), replica("b")
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(a)
        await asyncio.wait_for(a.wait_leading(), 5)
        await stack.enter_async_context(b)
        first = await asyncio.wait_for(runs.get(), 5)
        assert first[0] == "a"
        assert not b.is_leader

        await a.stop()
        stopped = time.monotonic()
        await asyncio.wait_for(b.wait_leading(), 5)
        assert time.monotonic() - stopped < 1.0  # the lease was revoked, not left to expire

        seen = [first]
        while (run := await asyncio.wait_for(runs.get(), 5))[0] != "b":
            seen.append(run)
        seen.append(run)
        ticks = [tick for _, tick in seen]
        assert len(ticks) == len(set(ticks))
        assert ticks == [ticks[0] + timedelta(seconds=n) for n in range(len(ticks))]
