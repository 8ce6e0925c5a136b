"""Revoked token ids, kept in etcd so that every replica sees them and they survive restarts.

Each revocation is a key on a lease that ends when the token would have expired anyway,
so the set never grows beyond the tokens still alive.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import aetcd
import grpc

from shared.errors import Reason, ServiceError

_ETCD_ERRORS = (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError)


class RevocationStore(Protocol):
    async def revoke(self, token_id: str, expires_at: int) -> None: ...
    async def is_revoked(self, token_id: str) -> bool: ...


class EtcdRevocationStore:
    def __init__(self, client: aetcd.Client, prefix: str, *, timeout_s: float = 2.0) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s

    async def revoke(self, token_id: str, expires_at: int) -> None:
        ttl = max(int(expires_at - time.time()) + 1, 1)
        try:
            async with asyncio.timeout(self._timeout_s):
                lease = await self._client.lease(ttl)
                # The value is the expiry: replicas holding the set in memory drop it then.
                value = str(int(expires_at)).encode()
                await self._client.put(self._key(token_id), value, lease=lease)
        except _ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "revocation store unavailable") from error

    async def is_revoked(self, token_id: str) -> bool:
        # Fails closed: a token whose revocation cannot be checked is not accepted.
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._client.get(self._key(token_id)) is not None
        except _ETCD_ERRORS as error:
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
