"""Which tick of each job was claimed last: the record that makes a tick run at most once.

The leader claims a tick before running it. In etcd a claim is one transaction that
succeeds only if (a) the job's `last` key is unchanged since it was read, and was older
than the tick, and (b) the leader key is still the one this term created. So a new
leader never reruns a tick the old one claimed, and a deposed leader whose lease ran
out can claim nothing, even before it notices it was deposed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import aetcd


class Ledger(Protocol):
    async def last(self, job: str) -> datetime | None:
        """The last tick claimed for `job`, or None if it never ran."""
        ...

    async def claim(self, job: str, tick: datetime) -> bool:
        """Record `tick` as the job's last; False if it, or a later one, was already claimed
        or this replica no longer leads."""
        ...


class MemoryLedger:
    """One process's ledger (tests, a single replica)."""

    def __init__(self) -> None:
        self.claimed: dict[str, datetime] = {}

    async def last(self, job: str) -> datetime | None:
        return self.claimed.get(job)

    async def claim(self, job: str, tick: datetime) -> bool:
        previous = self.claimed.get(job)
        if previous is not None and previous >= tick:
            return False
        self.claimed[job] = tick
        return True


def last_key(prefix: str, service: str, job: str) -> bytes:
    return f"{prefix}/{service}/{job}/last".encode()


class EtcdLedger:
    """Claims fenced by one leadership term: the leader key's create revision."""

    def __init__(
        self,
        client: aetcd.Client,
        *,
        prefix: str,
        service: str,
        leader_key: bytes,
        term_revision: int,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._service = service
        self._leader_key = leader_key
        self._term_revision = term_revision

    async def last(self, job: str) -> datetime | None:
        current = await self._client.get(last_key(self._prefix, self._service, job))
        return None if current is None else datetime.fromisoformat(current.value.decode())

    async def claim(self, job: str, tick: datetime) -> bool:
        key = last_key(self._prefix, self._service, job)
        current = await self._client.get(key)
        if current is not None and datetime.fromisoformat(current.value.decode()) >= tick:
            return False
        seen = 0 if current is None else current.mod_revision  # 0: the key must not exist
        ops = self._client.transactions
        claimed, _ = await self._client.transaction(
            compare=[
                ops.mod(key) == seen,
                ops.create(self._leader_key) == self._term_revision,
            ],
            success=[ops.put(key, tick.isoformat().encode())],
            failure=[],
        )
        return bool(claimed)
