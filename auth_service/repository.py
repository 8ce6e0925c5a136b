"""Revoked token ids, kept in etcd so that every replica sees them and they survive restarts.

Each revocation is a key on a lease that ends once the token would have expired anyway,
so the set never grows beyond the tokens still alive. Tokens expiring in the same minute share
one lease (granted on first use, reused while alive): a lease per token would cost etcd a
lease, its keep-alive bookkeeping and its expiry per logout. Revoking is put-if-absent, so a
second logout of the same token changes nothing and says so.

A put-if-absent is a transaction, which the kit's etcd client never repeats. So a revocation
repeats it itself: a first attempt gets 0.5 s (one sent to an etcd member that hangs is
abandoned), a second the rest of the call's time (a busy but healthy etcd may need
it). Both write the same mark after the expiry: an attempt that was applied but whose
answer was lost leaves it, and the next one then knows the revocation for its own ("new":
one TokenRevoked event).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable

import aetcd
import aetcd.exceptions

from shared.errors import Reason, ServiceError
from shared.registry import ETCD_ERRORS

_LEASE_MINUTE_S = 60
# Longer than the etcd client's outlier detection interval: by then a member that hung the
# first attempt is set aside, and the second goes to another.
_RETRY_PAUSE_S = 0.15
# An attempt that got no answer, or whose member went: another may reach another member.
_UNANSWERED = (
    TimeoutError,
    aetcd.exceptions.ConnectionFailedError,
    aetcd.exceptions.ConnectionTimeoutError,
)


class EtcdRevocationStore:
    """`RevocationStore` (see logic.py) in etcd."""

    def __init__(
        self,
        client: aetcd.Client,
        prefix: str,
        *,
        timeout_s: float = 2.0,
        attempt_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._attempt_s = attempt_s
        self._clock = clock
        self._leases: dict[int, aetcd.Lease] = {}  # by the minute its tokens expire in
        self._granting = asyncio.Lock()

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        # The value starts with the expiry (replicas holding the set in memory drop it then);
        # the mark after it is this call's.
        value = f"{int(expires_at)} {secrets.token_hex(8)}".encode()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._attempts(token_id, value, expires_at)
        except ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "revocation store unavailable") from error

    async def _attempts(self, token_id: str, value: bytes, expires_at: int) -> bool:
        """Two: enough to get past a member that hangs within a caller's one-second
        budget, and few enough that an etcd without quorum is reported at once."""
        with contextlib.suppress(*_UNANSWERED):
            async with asyncio.timeout(self._attempt_s):
                return await self._put_absent(token_id, value, expires_at)
        await asyncio.sleep(_RETRY_PAUSE_S)
        return await self._put_absent(token_id, value, expires_at)

    async def _put_absent(self, token_id: str, value: bytes, expires_at: int) -> bool:
        try:
            return await self._put_once(token_id, value, await self._lease(expires_at))
        except aetcd.ClientError as error:
            if "lease not found" not in str(error):
                raise
            # etcd lost the lease (restored, or it ended early): grant a new one.
            self._leases.clear()
            return await self._put_once(token_id, value, await self._lease(expires_at))

    async def _put_once(self, token_id: str, value: bytes, lease: aetcd.Lease) -> bool:
        key = self._key(token_id)
        created, responses = await self._client.transaction(
            compare=[self._client.transactions.create(key) == 0],
            success=[self._client.transactions.put(key, value, lease=lease)],
            failure=[self._client.transactions.get(key)],
        )
        if created:
            return True
        stored = [found for found, _ in responses[0]] if responses else []
        return stored == [value]  # put by an earlier attempt of this call

    async def _lease(self, expires_at: int) -> aetcd.Lease:
        minute = expires_at // _LEASE_MINUTE_S
        async with self._granting:  # one grant per minute even when logouts arrive together
            lease = self._leases.get(minute)
            if lease is None:
                now = self._clock()
                for old in [m for m in self._leases if (m + 1) * _LEASE_MINUTE_S < now]:
                    del self._leases[old]
                # Lives until the end of the minute, so it outlives every token it holds.
                ttl = max(int((minute + 1) * _LEASE_MINUTE_S - now) + 1, 1)
                lease = self._leases[minute] = await self._client.lease(ttl)
            return lease

    async def is_revoked(self, token_id: str) -> bool:
        # Fails closed: a token whose revocation cannot be checked is not accepted.
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._client.get(self._key(token_id)) is not None
        except ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "revocation store unavailable") from error

    def _key(self, token_id: str) -> bytes:
        return f"{self._prefix}{token_id}".encode()


class MemoryRevocationStore:
    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        new = token_id not in self._revoked
        self._revoked[token_id] = expires_at
        return new

    async def is_revoked(self, token_id: str) -> bool:
        return token_id in self._revoked
