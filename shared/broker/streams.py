"""JetStream streams: those the events declare, plus the dead-letter stream, set up idempotently.

An event declares its stream (`(micro.v1.event)`, read by `shared.broker.events`). A
stream's subjects are derived, never listed: a stream holds `<first token>.>` of its
events' subjects. So every event of a stream shares its first token, and a first token
belongs to one stream; `declare_stream` refuses anything else. Two services that declare
events of one stream (ORDER: `order.placed` here, `order.shipped` there) therefore create
it with the same subjects, `order.>`, and never undo each other's update.
`BrokerSettings.streams` adds streams for raw subjects (tests, operators); they win.

Every stream is bounded (`stream_limits`): an age, a size and a count, from its events'
declarations, else the broker's defaults; when one is reached JetStream drops the oldest
events (so a publish never fails because a stream is full). The dead-letter stream has
limits of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from shared.broker.settings import BrokerSettings

DLQ_PREFIX = "dlq."
# Publishes repeated with the same Nats-Msg-Id within this window are stored once,
# which makes the outbox's retries safe.
DUPLICATE_WINDOW_S = 120.0
STREAM_NAME_IN_USE = 10058
STREAM_NOT_FOUND = 10059


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_age_s: float
    max_bytes: int
    max_msgs: int


# Stream name -> the first subject token it holds; process-wide, like the declarations.
_declared: dict[str, str] = {}
# Stream name -> (max_age_s, max_bytes) its events declared; 0 leaves the default.
_declared_limits: dict[str, tuple[float, int]] = {}


def declare_stream(name: str, subject: str, *, max_age_s: float = 0, max_bytes: int = 0) -> None:
    """Note that `subject` is published on stream `name` (kept `max_age_s`, at most
    `max_bytes`; 0: the broker's default); raises `ValueError` on a conflict."""
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
    age, size = _declared_limits.get(name, (0.0, 0))
    if max_age_s and age and age != max_age_s:
        raise ValueError(f"stream {name} keeps events {age:g} s, not {max_age_s:g} s")
    if max_bytes and size and size != max_bytes:
        raise ValueError(f"stream {name} holds {size} bytes, not {max_bytes}")
    _declared[name] = token
    _declared_limits[name] = (max_age_s or age, max_bytes or size)


def stream_limits(name: str, settings: BrokerSettings) -> StreamLimits:
    """The operator's override, else the events' declaration, else the broker's default."""
    if name == settings.dlq_stream:
        return StreamLimits(settings.dlq_max_age_s, settings.dlq_max_bytes, settings.dlq_max_msgs)
    age, size = _declared_limits.get(name, (0.0, 0))
    return StreamLimits(
        max_age_s=settings.stream_max_age_overrides.get(name) or age or settings.stream_max_age_s,
        max_bytes=settings.stream_max_bytes_overrides.get(name)
        or size
        or settings.stream_max_bytes,
        max_msgs=settings.stream_max_msgs,
    )


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
    await ensure_stream(js, settings.dlq_stream, (DLQ_PREFIX + ">",), settings)


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    patterns: tuple[str, ...],
    settings: BrokerSettings,
    *,
    update: bool = True,
) -> None:
    """Create stream `name`; if it exists, bring it to this configuration unless not `update`."""
    limits = stream_limits(name, settings)
    config = StreamConfig(
        name=name,
        subjects=list(patterns),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=limits.max_age_s,
        max_bytes=limits.max_bytes,
        max_msgs=limits.max_msgs,
        # Full: the oldest events go, so that publishing (a login) never fails for it.
        discard=DiscardPolicy.OLD,
        duplicate_window=min(DUPLICATE_WINDOW_S, limits.max_age_s),
        num_replicas=settings.stream_replicas,
    )
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as error:
        if error.err_code != STREAM_NAME_IN_USE:
            raise
        if update:
            await js.update_stream(config)
