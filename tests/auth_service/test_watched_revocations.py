"""The in-memory revocation set of two replicas on a real etcd: fast, and never unsafe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from auth_service.revocations import WatchedRevocations
from shared.errors import Reason, ServiceError
from shared.registry import etcd_client
from tests.support.etcd import EtcdServer
from tests.support.eventually import eventually

pytestmark = pytest.mark.integration
PREFIX = "/micro/auth/revoked/"
STALENESS_S = 1.0


async def _current(store: WatchedRevocations, timeout: float = 10.0) -> None:
    """Wait until the store has proved itself current (it offers no event for it)."""
    await eventually(_value(lambda: store.current), bool, timeout=timeout, interval=0.01)


def _value(read: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return read()

    return probe


@pytest.fixture
async def replicas(etcd: EtcdServer) -> AsyncIterator[tuple[WatchedRevocations, ...]]:
    async with etcd_client(etcd.endpoint) as one_etcd, etcd_client(etcd.endpoint) as two_etcd:
        stores = tuple(
            WatchedRevocations(client, PREFIX, staleness_s=STALENESS_S, timeout_s=0.5)
            for client in (one_etcd, two_etcd)
        )
        for store in stores:
            await store.start()
            await _current(store)
        yield stores
        for store in stores:
            await store.stop()


async def test_a_revocation_on_one_replica_is_refused_by_the_other_within_a_second(
    replicas: tuple[WatchedRevocations, WatchedRevocations],
) -> None:
    one, two = replicas
    expires_at = int(time.time()) + 60
    assert not await two.is_revoked("t1")

    await one.revoke("t1", expires_at)
    revoked_at = time.monotonic()
    assert await one.is_revoked("t1")
    await eventually(lambda: two.is_revoked("t1"), bool, timeout=1.0, interval=0.005)
    assert time.monotonic() - revoked_at < 1.0
    assert not await two.is_revoked("another token")


async def test_a_replica_started_later_loads_earlier_revocations(
    etcd: EtcdServer, replicas: tuple[WatchedRevocations, WatchedRevocations]
) -> None:
    await replicas[0].revoke("t-old", int(time.time()) + 60)
    async with etcd_client(etcd.endpoint) as client:
        late = WatchedRevocations(client, PREFIX, staleness_s=STALENESS_S)
        await late.start()
        try:
            await _current(late)
            assert await late.is_revoked("t-old")
        finally:
            await late.stop()


async def test_without_etcd_revocation_fails_and_validation_fails_closed_after_the_bound(
    etcd: EtcdServer, replicas: tuple[WatchedRevocations, WatchedRevocations]
) -> None:
    one, two = replicas
    await one.revoke("before", int(time.time()) + 60)
    await eventually(lambda: two.is_revoked("before"), bool, timeout=1.0, interval=0.005)
    etcd.stop()
    lost_at = time.monotonic()

    # A revocation that etcd did not take is reported as failed: the caller knows the token
    # is still valid, rather than believing it revoked while other replicas accept it.
    with pytest.raises(ServiceError) as caught:
        await one.revoke("during", int(time.time()) + 60)
    assert caught.value.reason is Reason.UNAVAILABLE

    # Once the set has not been proved current for the bound, no token is accepted.
    await eventually(_value(lambda: two.current), lambda c: not c, timeout=STALENESS_S + 0.5)
    assert time.monotonic() - lost_at <= STALENESS_S + 0.5
    for store in (one, two):
        assert await store.is_revoked("before")  # refusing a known revocation stays safe
        for token_id in ("during", "never-revoked"):
            with pytest.raises(ServiceError) as caught:
                await store.is_revoked(token_id)
            assert caught.value.reason is Reason.UNAVAILABLE


async def test_revocations_past_their_token_expiry_are_dropped(
    replicas: tuple[WatchedRevocations, WatchedRevocations],
) -> None:
    one, two = replicas
    await one.revoke("short", int(time.time()) + 1)
    await eventually(lambda: two.is_revoked("short"), bool, timeout=1.0, interval=0.005)
    await eventually(lambda: two.is_revoked("short"), lambda r: not r, timeout=5.0)


async def test_a_replica_refuses_its_own_revocation_at_once_even_across_a_re_read(
    etcd: EtcdServer,
) -> None:
    """The watch breaks (a member that hangs, a restart) and the set is read again; that read
    is taken just before a logout commits and lands just after it."""
    async with etcd_client(etcd.endpoint) as client:
        store = WatchedRevocations(client, PREFIX, staleness_s=STALENESS_S, timeout_s=0.5)
        await store.start()
        await _current(store)
        listing, watching = client.get_prefix, client.watch_prefix
        taken, revoked, rewatched = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def listed_before_the_revocation(prefix: bytes) -> Any:
            found = await listing(prefix)
            taken.set()
            await revoked.wait()
            return found

        async def watch_after_the_listing(prefix: bytes, **options: Any) -> Any:
            rewatched.set()  # the listing has been taken in
            return await watching(prefix, **options)

        client.get_prefix = listed_before_the_revocation
        client.watch_prefix = watch_after_the_listing
        await store.stop()  # the watch ends: on start it reads the set again
        await store.start()
        try:
            await taken.wait()
            await store.revoke("mine", int(time.time()) + 60)
            revoked.set()
            await rewatched.wait()
            assert store.current  # the set is trusted: it was proved current < 1 s ago
            assert await store.is_revoked("mine")
        finally:
            await store.stop()
