"""Broker settings: one frozen object, built by the service and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAY_S = 24 * 3600.0
MIB = 1024 * 1024


class BrokerSettings(BaseModel):
    """Where NATS is, and how hard to try to deliver.

    `url` is `nats://host:port` (a cluster's servers separated by commas: the client
    connects to one and fails over to the others) or `memory://` for the in-process
    broker of unit tests.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = "nats://127.0.0.1:4222"
    # The file holding this client's nkey seed (its NATS user); None connects anonymously.
    nkeys_seed: Path | None = None
    # Events waiting to be sent; past this, new events are dropped and counted.
    outbox_size: int = Field(default=10_000, ge=1)
    # Spool waiting events to this SQLite file instead of memory, so that they survive a
    # crash (shared.broker.spool); `{hostname}` in it is replaced. None: in memory.
    spool_path: str | None = None
    # The spool's bound on payload bytes (besides `outbox_size` events).
    spool_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # A durable delivery not acked within this is delivered again.
    ack_wait_s: float = Field(default=30.0, gt=0)
    # Handler attempts per event per service before it goes to the dead-letter stream.
    max_deliver: int = Field(default=5, ge=1)
    # Pause before redelivering an event whose handler raised.
    nak_delay_s: float = Field(default=1.0, ge=0)
    # Reconnect backoff: first wait, doubled up to the cap (with jitter).
    reconnect_wait_s: float = Field(default=0.5, gt=0)
    reconnect_max_wait_s: float = Field(default=10.0, gt=0)
    # How often the client pings its server: at the tick after two unanswered pings (4 to
    # 6 s) it moves to another. A server that hangs (or whose machine drops off the
    # network) closes nothing, and only this finds it out: nats-py's default of 120 s left
    # events waiting 4 to 6 minutes.
    ping_interval_s: float = Field(default=2.0, gt=0)
    # How long one JetStream publish waits for its ack before the outbox retries it.
    publish_timeout_s: float = Field(default=5.0, gt=0)
    # Bound on stop(): flushing the outbox, then waiting for handlers and draining.
    close_timeout_s: float = Field(default=10.0, gt=0)
    # Handlers running at once per durable subscription in one process.
    max_in_flight: int = Field(default=32, ge=1)
    # Streams beyond those the events declare (shared.broker.streams), for raw subjects:
    # name -> subject patterns. A subject outside every stream is sent on core NATS only.
    streams: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Copies of each stream (1, or 3 on a 3-node cluster: survives losing one node).
    stream_replicas: int = Field(default=1, ge=1, le=5)
    # Every stream is bounded (JetStream's limits; when one is reached the oldest events
    # go): an event's declaration may set its stream's age and size (options.proto),
    # these are the defaults. Consumers that fall further behind than this lose events,
    # so size them to the longest outage a consumer should survive. The sizes are
    # reserved on the NATS server (its max_file_store must hold every stream's).
    stream_max_age_s: float = Field(default=7 * DAY_S, gt=0)
    stream_max_bytes: int = Field(default=256 * MIB, ge=1)
    stream_max_msgs: int = Field(default=1_000_000, ge=1)
    # Operators' word on one stream, over the events' declarations: name -> seconds, bytes.
    stream_max_age_overrides: dict[str, float] = Field(default_factory=dict)
    stream_max_bytes_overrides: dict[str, int] = Field(default_factory=dict)
    dlq_stream: str = "DLQ"
    dlq_max_age_s: float = Field(default=30 * DAY_S, gt=0)
    dlq_max_bytes: int = Field(default=64 * MIB, ge=1)
    dlq_max_msgs: int = Field(default=100_000, ge=1)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        schemes = {part.strip().split("://", 1)[0] for part in url.split(",")}
        if not schemes <= {"nats", "tls", "ws", "wss", "memory"} or (
            "memory" in schemes and len(schemes) > 1
        ):
            raise ValueError(f"broker url must be nats://… or memory://, not {url!r}")
        return url

    @property
    def is_memory(self) -> bool:
        return self.url.startswith("memory://")

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]
