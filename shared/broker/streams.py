"""JetStream streams: one per domain plus the dead-letter stream, set up idempotently."""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from shared.broker.settings import BrokerSettings

DLQ_PREFIX = "dlq."
# Publishes repeated with the same Nats-Msg-Id within this window are stored once,
# which makes the outbox's retries safe.
DUPLICATE_WINDOW_S = 120.0
STREAM_NAME_IN_USE = 10058
STREAM_NOT_FOUND = 10059


def dlq_subject(subject: str) -> str:
    return DLQ_PREFIX + subject


async def ensure_streams(js: JetStreamContext, settings: BrokerSettings) -> None:
    """Create or update every stream; safe to run on each connect, from every replica."""
    for name, patterns in settings.streams.items():
        await _ensure_stream(js, name, list(patterns), settings.stream_max_age_s, settings)
    dlq = [DLQ_PREFIX + ">"]
    await _ensure_stream(js, settings.dlq_stream, dlq, settings.dlq_max_age_s, settings)


async def _ensure_stream(
    js: JetStreamContext,
    name: str,
    patterns: list[str],
    max_age_s: float,
    settings: BrokerSettings,
) -> None:
    config = StreamConfig(
        name=name,
        subjects=patterns,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_s,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=settings.stream_replicas,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as error:
        if error.err_code != STREAM_NAME_IN_USE:
            raise
        await js.update_stream(config)
