"""The outbox table's columns, and `stage_event`, which writes one event into it."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from opentelemetry import propagate
from sqlalchemy import BigInteger, DateTime, Integer, String, Text, func
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from sqlalchemy.schema import UniqueConstraint

from shared.broker.events import encode, event_spec
from shared.broker.outbox import new_event_id
from shared.broker.protocol import EVENT_ID_HEADER, STREAM_HEADER

_Timestamp = DateTime().with_variant(mysql.TIMESTAMP(fsp=3), "mysql")


class OutboxColumns:
    """Mix into a declarative class to make a service's outbox table.

    Its SQL (MariaDB) is::

        CREATE TABLE IF NOT EXISTS `outbox` (
          `id`         bigint unsigned NOT NULL AUTO_INCREMENT,
          `event_id`   varchar(64) CHARACTER SET ascii NOT NULL,
          `subject`    varchar(255) NOT NULL,
          `payload`    mediumtext CHARACTER SET ascii NOT NULL,
          `headers`    text NOT NULL,
          `created_at` timestamp(3) NOT NULL DEFAULT current_timestamp(3),
          PRIMARY KEY (`id`),
          UNIQUE KEY `outbox_event_id_uindex` (`event_id`)
        ) ENGINE = InnoDB;
    """

    # Published oldest first: the id orders the rows as they were committed.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    # Base64 of the protobuf bytes: aiomysql 0.3 cannot bind bytes with PyMySQL 1.1+.
    payload: Mapped[str] = mapped_column(Text().with_variant(mysql.MEDIUMTEXT(), "mysql"))
    # JSON: the headers to publish with (the event id, the trace context).
    headers: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_Timestamp, server_default=func.now())

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Any, ...]:
        name = getattr(cls, "__tablename__", "outbox")
        return (UniqueConstraint("event_id", name=f"{name}_event_id_uindex"),)


def stage_event(
    session: AsyncSession,
    row_type: type[OutboxColumns],
    message: Message,
    *,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Add `message` to the outbox in `session`'s transaction; its event id (set if empty).

    The event goes out when the transaction commits and the relay runs, never before,
    and never if the transaction rolls back.
    """
    spec = event_spec(type(message))
    event_id: str = getattr(message, "event_id")  # noqa: B009 - checked by event_spec
    if not event_id:
        event_id = new_event_id()
        setattr(message, "event_id", event_id)  # noqa: B010 - any event type
    sent = dict(headers or {})
    propagate.inject(sent)  # consumers' spans join the trace of the change
    sent[EVENT_ID_HEADER] = event_id
    sent[STREAM_HEADER] = spec.stream
    row = row_type()
    row.event_id, row.subject = event_id, spec.subject
    row.payload, row.headers = base64.b64encode(encode(message)).decode(), json.dumps(sent)
    session.add(row)
    return event_id
