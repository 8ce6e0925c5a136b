"""JetStream streams: those the events declare, plus the dead-letter stream, set up idempotently.

An event declares its stream (`(micro.v1.event)`, read by `shared.broker.events`). A
stream's subjects are derived, never listed: a stream holds `<first token>.>` of its
events' subjects. So every event of a stream shares its first token, and a first token
belongs to one stream; `declare_stream` refuses anything else. Two services that declare
events of one stream (ORDER: `order.placed` here, `order.shipped` there) therefore create
it with the same subjects, `order.>`, and never undo each other's update.
`BrokerSettings.streams` adds streams for raw subjects (tests, operators); they win.
"""

from __future__ import annotations

from collections.abc import Mapping

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


# Stream name -> the first subject token it holds; process-wide, like the declarations.
_declared: dict[str, str] = {}


def declare_stream(name: str, subject: str) -> None:
    """Note that `subject` is published on stream `name`; raises `ValueError` on a conflict."""
    token = subject.split(".", 1)[0]
    if not name or any(c in name for c in ".*> \t") or name.upper() != name:
        raise ValueError(f"stream {name!r}: upper case, without . * > or spaces")
    if token.startswith(DLQ_PREFIX.rstrip(".")):
        raise ValueError(f"subjects under {DLQ_PREFIX}> belong to the dead-letter stream")
    held = _declared.get(name, token)
    if held != token:
        raise ValueError(f"stream {name} holds {held}.>, not {subject!r}")
    for other, other_token in _declared.items():
        if other_token == token and other != name:
            raise ValueError(f"{token}.> belongs to stream {other}, not {name}")
    # Only now: a refused declaration must leave no trace for later ones to trip on.
    _declared[name] = token


def known_streams(settings: BrokerSettings) -> Mapping[str, tuple[str, ...]]:
    """The declared streams with their derived subjects, then those of the settings."""
    derived = {name: (f"{token}.>",) for name, token in _declared.items()}
    return {**derived, **settings.streams}


def dlq_subject(subject: str) -> str:
    return DLQ_PREFIX + subject


async def ensure_streams(js: JetStreamContext, settings: BrokerSettings) -> None:
    """Create or update every known stream; safe to run on each connect, from every replica."""
    for name, patterns in known_streams(settings).items():
        await ensure_stream(js, name, patterns, settings)
    await _ensure_stream(
        js, settings.dlq_stream, [DLQ_PREFIX + ">"], settings.dlq_max_age_s, settings
    )


async def ensure_stream(
    js: JetStreamContext, name: str, patterns: tuple[str, ...], settings: BrokerSettings
) -> None:
    await _ensure_stream(js, name, list(patterns), settings.stream_max_age_s, settings)


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
