"""Leadership of one service's jobs: a key created with a lease, only if absent.

The winner's lease is kept alive over one stream for as long as it lives. Leadership ends
when the winner revokes its lease (stop: the key goes at once, and a waiting replica sees
the deletion through its watch), or when the lease expires (the winner died or lost etcd:
the key goes after at most the TTL). The term is identified by the key's create revision,
which fences the job ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aetcd
import grpc

from shared import backoff

log = logging.getLogger(__name__)

ETCD_ERRORS = (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Term:
    lease_id: int
    revision: int  # the leader key's create revision


def leader_key(prefix: str, service: str) -> bytes:
    return f"{prefix}/{service}/leader".encode()


class Election:
    def __init__(
        self,
        client: aetcd.Client,
        key: bytes,
        identity: str,
        *,
        ttl_s: int,
        call_timeout_s: float,
    ) -> None:
        self._client = client
        self.key = key
        self._identity = identity.encode()
        self._ttl_s = ttl_s
        self._call_timeout_s = call_timeout_s

    async def campaign(self) -> Term:
        """Return once this replica leads; waits for the key to go, retries etcd errors."""
        waits = backoff.delays(0.1, 2.0)
        while True:
            try:
                term, seen_revision = await self._try()
                if term is not None:
                    return term
                waits = backoff.delays(0.1, 2.0)
                await self._wait_for_vacancy(seen_revision)
                continue
            except ETCD_ERRORS as error:
                log.warning("job leadership: etcd unreachable: %r", error)
            await asyncio.sleep(next(waits))

    async def hold(self, term: Term) -> None:
        """Keep the term's lease alive; return when it is lost (expired, revoked, unreachable).

        Requests go every third of the TTL; a reply missing for two thirds of it ends the
        term here, before etcd expires the lease, so the replica stops running jobs while
        the key is still its own.
        """
        interval = self._ttl_s / 3

        async def requests() -> AsyncIterator[Any]:
            while True:
                yield aetcd.rpc.LeaseKeepAliveRequest(ID=term.lease_id)
                await asyncio.sleep(interval)

        stream = self._client.leasestub.LeaseKeepAlive(requests(), metadata=self._client.metadata)
        try:
            while True:
                async with asyncio.timeout(interval * 2):
                    reply = await stream.read()
                if reply is grpc.aio.EOF or reply.TTL <= 0:
                    log.warning("job leadership: lease %x expired", term.lease_id)
                    return
        except ETCD_ERRORS as error:
            log.warning("job leadership: keepalive of lease %x failed: %r", term.lease_id, error)
        finally:
            stream.cancel()

    async def resign(self, term: Term) -> None:
        """Revoke the lease: the key goes now, not after the TTL. Errors leave it to the TTL."""
        with contextlib.suppress(*ETCD_ERRORS):
            async with asyncio.timeout(self._call_timeout_s):
                await self._client.revoke_lease(term.lease_id)

    async def _try(self) -> tuple[Term | None, int]:
        ops = self._client.transactions
        async with asyncio.timeout(self._call_timeout_s):
            lease = await self._client.lease(self._ttl_s)
            try:
                won, responses = await self._client.transaction(
                    compare=[ops.create(self.key) == 0],
                    success=[ops.put(self.key, self._identity, lease=lease)],
                    failure=[ops.get(self.key)],
                )
            except BaseException:
                await self._revoke_quietly(lease.id)
                raise
        if won:
            return Term(lease.id, responses[0].response_put.header.revision), 0
        await self._revoke_quietly(lease.id)
        current = responses[0][0][1]  # the failure branch's get: (value, Get)
        log.debug("job leadership held by %r", current.value)
        return None, current.header.revision

    async def _wait_for_vacancy(self, seen_revision: int) -> None:
        # Bounded, in case a watch event is ever missed: then the key is simply tried again.
        with contextlib.suppress(aetcd.WatchTimeoutError):
            await self._client.watch_once(
                self.key,
                timeout=self._ttl_s,
                start_revision=seen_revision + 1,
                kind=aetcd.EventKind.DELETE,
            )

    async def _revoke_quietly(self, lease_id: int) -> None:
        with contextlib.suppress(*ETCD_ERRORS):
            async with asyncio.timeout(self._call_timeout_s):
                await self._client.revoke_lease(lease_id)
