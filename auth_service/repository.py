"""Revoked token ids, kept in etcd so that every replica sees them and they survive restarts.

Each revocation is a key on a lease that ends when the token would have expired anyway,
so the set never grows beyond the tokens still alive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aetcd

from shared.errors import Reason, ServiceError
from shared.registry import ETCD_ERRORS


class EtcdRevocationStore:
    """`RevocationStore` (see logic.py) in etcd."""

    def __init__(
        self,
        client: aetcd.Client,
        prefix: str,
        *,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._clock = clock

    async def revoke(self, token_id: str, expires_at: int) -> None:
        ttl = max(int(expires_at - self._clock()) + 1, 1)
        try:
            async with asyncio.timeout(self._timeout_s):
                lease = await self._client.lease(ttl)
                await self._client.put(self._key(token_id), b"1", lease=lease)
        except ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "revocation store unavailable") from error

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

    async def revoke(self, token_id: str, expires_at: int) -> None:
        self._revoked[token_id] = expires_at

    async def is_revoked(self, token_id: str) -> bool:
        return token_id in self._revoked
