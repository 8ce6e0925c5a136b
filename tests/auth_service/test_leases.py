"""Logout is idempotent, also when an etcd member applies it and hangs before answering, and
revocations share one etcd lease per expiry minute (real etcd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aetcd
import pytest
from aetcd import rpc

from auth_service.logic import TokenLogic
from auth_service.repository import EtcdRevocationStore
from shared.registry import etcd_client
from tests.support.etcd import EtcdServer

pytestmark = pytest.mark.integration

SECRET = "a-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
async def etcd_kv(etcd: EtcdServer) -> AsyncIterator[aetcd.Client]:
    async with etcd_client(etcd.endpoint) as client:
        # etcd takes a moment between opening its port and answering.
        for _ in range(50):
            try:
                await client.get(b"/warm-up")
                break
            except aetcd.ClientError:
                await asyncio.sleep(0.1)
        yield client


class Published:
    """Records what the logic hands its broker (the broker itself is tested elsewhere)."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def publish(self, subject: str, data: bytes, **_: Any) -> str:
        self.subjects.append(subject)
        return str(len(self.subjects))


async def _leases(client: aetcd.Client) -> int:
    return len((await client.leasestub.LeaseLeases(rpc.LeaseLeasesRequest())).leases)


async def test_52_logouts_of_one_token_take_one_lease_and_make_one_event(
    etcd_kv: aetcd.Client,
) -> None:
    events = Published()
    store = EtcdRevocationStore(etcd_kv, "/revoked/")
    logic = TokenLogic(SECRET, "iss", 600, store, events)  # type: ignore[arg-type]
    token = logic.make_token(7, "u").token

    for _ in range(52):
        assert (await logic.revoke(token)).user_id == 7

    assert await _leases(etcd_kv) == 1
    assert len(events.subjects) == 1


async def test_100_tokens_expiring_in_the_same_minute_share_one_lease(
    etcd_kv: aetcd.Client,
) -> None:
    store = EtcdRevocationStore(etcd_kv, "/revoked/")
    minute_start = (int(time.time()) // 60 + 10) * 60

    for n in range(100):
        assert await store.revoke(f"token-{n}", minute_start + n % 60)

    assert await _leases(etcd_kv) == 1
    assert await store.is_revoked("token-99")
    assert not await store.revoke("token-5", minute_start + 5)


class AnswerLost:
    """The client of a member that applies the first transaction, then hangs before answering
    (its machine stopped, or dropped off the network)."""

    def __init__(self, client: aetcd.Client) -> None:
        self._client = client
        self.answers_lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def transaction(self, **kwargs: Any) -> Any:
        answer = await self._client.transaction(**kwargs)
        if not self.answers_lost:
            self.answers_lost += 1
            await asyncio.Event().wait()  # until the attempt is given up
        return answer


async def test_a_logout_applied_by_a_member_that_then_hangs_is_retried_and_makes_one_event(
    etcd_kv: aetcd.Client,
) -> None:
    events = Published()
    client = AnswerLost(etcd_kv)
    store = EtcdRevocationStore(client, "/revoked/", attempt_s=0.2)
    logic = TokenLogic(SECRET, "iss", 600, store, events)  # type: ignore[arg-type]
    token = logic.make_token(7, "u").token

    async with asyncio.timeout(1):  # well within the call's 2 s
        assert (await logic.revoke(token)).user_id == 7
    assert client.answers_lost == 1
    # The retry found the lost attempt's revocation, and knew it for its own.
    assert len(events.subjects) == 1
    assert (await logic.revoke(token)).user_id == 7
    assert len(events.subjects) == 1
