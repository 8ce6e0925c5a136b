"""Revoked token ids held in memory, fed by an etcd watch: a validation costs a dict lookup.

The set is loaded with one range read of the revocation prefix, then follows a watch from
the next revision (as shared/selector.py follows nodes). It is only trusted while it is
known to be current, and that is proved, not assumed:

- Every `heartbeat_s` a linearizable read asks etcd for the newest revision of any key under
  the prefix (one key, keys only). Once the watch has delivered that revision, the set holds
  every revocation committed before the read was sent, so it is current "as of" that moment.
- A validation trusts the set only if it was current as of at most `staleness_s` ago (1 s by
  default). Otherwise (etcd lost, watch stalled or restarting) it asks etcd directly, and
  that read fails closed: UNAVAILABLE, never "not revoked".

So a revocation is refused at once by the replica that made it, by every other replica at
most `staleness_s` later (in practice within the watch's few milliseconds), and a token is
never accepted on the strength of a set that has not heard from etcd for longer than
`staleness_s`.

Each key's value is the token's expiry (unix seconds): entries past it are dropped, as the
token is refused as expired anyway; the key's lease deletes it from etcd at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

import aetcd
from aetcd import rpc
from aetcd.utils import prefix_range_end

from auth_service.repository import EtcdRevocationStore
from shared.backoff import delays
from shared.registry import ETCD_ERRORS

log = logging.getLogger(__name__)


def _expiry(value: bytes) -> float:
    # b"<expiry> <mark>" (repository.py). Keys written before values carried the expiry hold
    # b"1": kept until their lease ends.
    with contextlib.suppress(ValueError, IndexError):
        expires_at = int(value.split()[0])
        if expires_at > 1_000_000_000:
            return float(expires_at)
    return float("inf")


class WatchedRevocations:
    def __init__(
        self,
        client: aetcd.Client,
        prefix: str,
        *,
        staleness_s: float = 1.0,
        heartbeat_s: float = 0.2,
        timeout_s: float = 2.0,
    ) -> None:
        self._client = client
        self._prefix = prefix.encode()
        self._store = EtcdRevocationStore(client, prefix, timeout_s=timeout_s)
        self._staleness_s = staleness_s
        self._heartbeat_s = heartbeat_s
        self._revoked: dict[str, float] = {}  # what etcd's listing and watch have said
        # Revoked by this replica: refused at once, whatever a re-read of the set (taken
        # before the revocation committed, landing after it) replaces `_revoked` with.
        self._mine: dict[str, float] = {}
        self._seen_revision = 0  # the newest etcd revision the set reflects
        self._seen = asyncio.Condition()
        self._current_as_of = float("-inf")  # monotonic time the set was proved current
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(), name="revocations-watch"),
            asyncio.create_task(self._prove_current(), name="revocations-heartbeat"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def current(self) -> bool:
        return time.monotonic() - self._current_as_of <= self._staleness_s

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        new = await self._store.revoke(token_id, expires_at)
        self._mine[token_id] = float(expires_at)
        return new

    async def is_revoked(self, token_id: str) -> bool:
        # "Revoked" is safe to answer from any set; "not revoked" only from a current one.
        if token_id in self._mine or token_id in self._revoked:
            return True
        if self.current:
            return False
        return await self._store.is_revoked(token_id)  # fails closed when etcd is away

    def _seen_up_to_date(self, revision: int) -> bool:
        return self._seen_revision >= revision

    async def _seen_up_to(self, revision: int) -> None:
        async with self._seen:
            self._seen_revision = max(self._seen_revision, revision)
            self._seen.notify_all()

    async def _follow(self) -> None:
        waits = delays(0.05, 1.0)
        while True:
            try:
                listing = await self._client.get_prefix(self._prefix)
                self._revoked = {
                    kv.key[len(self._prefix) :].decode(): _expiry(kv.value) for kv in listing
                }
                await self._seen_up_to(listing.header.revision)
                watch = await self._client.watch_prefix(
                    self._prefix, start_revision=listing.header.revision + 1
                )
                waits = delays(0.05, 1.0)
                async for event in watch:
                    token_id = event.kv.key[len(self._prefix) :].decode()
                    if event.kind == aetcd.EventKind.PUT:
                        self._revoked[token_id] = _expiry(event.kv.value)
                    else:
                        self._revoked.pop(token_id, None)
                    await self._seen_up_to(event.kv.mod_revision)
            except ETCD_ERRORS as error:
                log.warning("revocation watch interrupted, re-reading: %r", error)
            await asyncio.sleep(next(waits))

    async def _prove_current(self) -> None:
        while True:
            asked_at = time.monotonic()
            try:
                async with asyncio.timeout(self._staleness_s):
                    newest = await self._newest_revision()
                    async with self._seen:
                        await self._seen.wait_for(partial(self._seen_up_to_date, newest))
                self._current_as_of = max(self._current_as_of, asked_at)
            except (*ETCD_ERRORS, TimeoutError) as error:
                log.debug("revocations not proved current: %r", error)
            self._prune()
            await asyncio.sleep(max(0.0, self._heartbeat_s - (time.monotonic() - asked_at)))

    async def _newest_revision(self) -> int:
        """The mod revision of the newest key under the prefix (0 if there is none)."""
        await self._client.connect()  # idempotent: makes sure the stub exists
        request = rpc.RangeRequest(
            key=self._prefix,
            range_end=prefix_range_end(self._prefix),
            limit=1,
            sort_order=rpc.RangeRequest.DESCEND,
            sort_target=rpc.RangeRequest.MOD,
            keys_only=True,
        )
        response = await self._client.kvstub.Range(request, metadata=self._client.metadata)
        return int(response.kvs[0].mod_revision) if response.kvs else 0

    def _prune(self) -> None:
        now = time.time()
        for revoked in (self._revoked, self._mine):
            expired = [token_id for token_id, expiry in revoked.items() if expiry < now]
            for token_id in expired:
                del revoked[token_id]
