"""The relay: publishes an outbox table's rows, oldest first, and deletes them once acked.

Safe with several replicas: each batch is claimed with `SELECT … FOR UPDATE SKIP LOCKED`
(MariaDB ≥ 10.6, MySQL 8, PostgreSQL; READ COMMITTED, so that no gap lock makes two
relays deadlock), so two relays never hold the same row, and the locks are released by
the commit that deletes what was published. SQLite ignores the clause: one relay per
SQLite database (one process; SQLite has one writer anyway). The relay polls (every
`poll_s`) and can be woken at once after a commit with `wake()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Iterator

from opentelemetry import context, propagate
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import backoff
from shared.broker.outbox import TransientError
from shared.broker.protocol import Broker
from shared.outbox.table import OutboxColumns

log = logging.getLogger(__name__)


class OutboxRelay:
    """A lifecycle part (start/stop) of a service with an outbox table."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        row_type: type[OutboxColumns],
        broker: Broker,
        *,
        poll_s: float = 0.5,
        batch: int = 100,
        publish_timeout_s: float = 5.0,
        retry_max_s: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._row_type = row_type
        self._broker = broker
        self._poll_s = poll_s
        self._batch = batch
        self._publish_timeout_s = publish_timeout_s
        self._retry_max_s = retry_max_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop relaying; rows not yet published stay in the table for the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Look at the table now (after a commit), not at the next poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch; the number of rows published (deleted)."""
        row = self._row_type
        claim = select(row).order_by(row.id).limit(self._batch).with_for_update(skip_locked=True)
        done: list[int] = []
        failure: Exception | None = None
        async with self._sessions() as session, session.begin():
            if session.bind.dialect.name != "sqlite":
                # No gap locks: two relays' claims and deletes never deadlock each other.
                await session.connection(execution_options={"isolation_level": "READ COMMITTED"})
            for item in (await session.scalars(claim)).all():
                try:
                    await self._publish(item)
                except (TransientError, TimeoutError) as error:
                    failure = error
                    break
                done.append(item.id)
            # Also when the server went away mid-batch: what it acked is not sent again.
            if done:
                await session.execute(delete(row).where(row.id.in_(done)))
        if failure is not None:
            raise failure
        return len(done)

    async def _publish(self, item: OutboxColumns) -> None:
        """Return once the server has the event, or rejected it for good (dropped, logged)."""
        headers = json.loads(item.headers)
        # The producer span joins the trace of the change that wrote the event.
        token = context.attach(propagate.extract(headers))
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._broker.publish_now(
                    item.subject,
                    base64.b64decode(item.payload),
                    headers=headers,
                    event_id=item.event_id,
                )
        except (TransientError, TimeoutError):
            raise
        except Exception:
            # Retrying an event the server refuses would hold back every later one.
            log.exception("outbox event %s on %s rejected: dropped", item.event_id, item.subject)
        finally:
            context.detach(token)

    async def _run(self) -> None:
        waits = self._waits()
        while True:
            try:
                published = await self.relay_once()
            except (TransientError, TimeoutError) as error:
                log.debug("outbox relay waits for the broker: %s", error)
                await asyncio.sleep(next(waits))
                continue
            except SQLAlchemyError as error:
                log.warning("outbox relay cannot read its table: %s", error)
                await asyncio.sleep(next(waits))
                continue
            waits = self._waits()
            if published == self._batch:
                continue  # more are waiting
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    def _waits(self) -> Iterator[float]:
        return backoff.delays(self._poll_s, self._retry_max_s)
