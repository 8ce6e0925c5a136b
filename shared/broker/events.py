"""Events as protobuf messages that say their own subject and stream.

A service declares each event it owns in its contract, with the kit's option::

    message OrderPlaced {
      option (micro.v1.event) = {subject: "order.placed", stream: "ORDER"};
      string event_id = 1;
      ...
    }

and the kit reads it once per message type, so it holds no list of anyone's events::

    await publish_event(broker, OrderPlaced(order_id="7", occurred_at_ms=now_ms()))
    await broker.subscribe(OrderPlaced, on_placed, queue="billing")   # or subject_of(...)

    async def on_placed(event: Event) -> None:
        placed = decode(event, OrderPlaced)

Reading an event's declaration also declares its stream (see `shared.broker.streams`),
which the broker then creates on JetStream: the streams a service has are those of the
events it publishes or consumes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import Message

from shared.broker import streams, subjects
from shared.broker.outbox import new_event_id
from shared.broker.protocol import STREAM_HEADER, Broker, Event
from shared.proto.micro.v1 import options_pb2

if TYPE_CHECKING:
    from shared.broker.settings import BrokerSettings

M = TypeVar("M", bound=Message)


class NotAnEventError(TypeError):
    """The message type declares no `(micro.v1.event)` option, or an unusable one."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    subject: str
    stream: str


# By the message's full name: read once per type.
_specs: dict[str, EventSpec] = {}


def event_spec(message_type: type[Message]) -> EventSpec:
    """The subject and stream `message_type` declares; read once, and its stream declared."""
    spec = _specs.get(message_type.DESCRIPTOR.full_name)
    if spec is None:
        spec = _specs[message_type.DESCRIPTOR.full_name] = _read_spec(message_type)
    return spec


def _read_spec(message_type: type[Message]) -> EventSpec:
    descriptor = message_type.DESCRIPTOR
    options = descriptor.GetOptions()
    if not options.HasExtension(options_pb2.event):
        raise NotAnEventError(
            f"{descriptor.full_name} is not an event: give it "
            '`option (micro.v1.event) = {subject: "<domain>.<what>", stream: "<STREAM>"};` '
            "(import shared/proto/micro/v1/options.proto)"
        )
    declared = options.Extensions[options_pb2.event]
    spec = EventSpec(declared.subject, declared.stream)
    if not subjects.is_valid(spec.subject, wildcards=False) or "." not in spec.subject:
        raise NotAnEventError(
            f"{descriptor.full_name}: subject {spec.subject!r} is not `<domain>.<what>`"
        )
    if "event_id" not in descriptor.fields_by_name:
        raise NotAnEventError(f"{descriptor.full_name}: an event needs `string event_id = 1`")
    try:
        streams.declare_stream(
            spec.stream,
            spec.subject,
            max_age_s=declared.max_age_s,
            max_bytes=declared.max_bytes,
        )
    except ValueError as error:
        raise NotAnEventError(f"{descriptor.full_name}: {error}") from None
    return spec


def subject_of(message_type: type[Message]) -> str:
    """The subject to subscribe to for `message_type` (its stream is declared on the way)."""
    return event_spec(message_type).subject


def subscription_target(
    subject: str | type[Message], queue: str, *, durable: bool, settings: BrokerSettings
) -> tuple[str, str | None]:
    """What every broker checks before it subscribes, so that the in-memory one refuses
    what NATS would: the subject (an event type's own, or a valid pattern), the queue group
    (one token), and for a durable subscription the stream that holds the subject.

    Returns the subject and that stream (None when not durable); raises ValueError."""
    if not isinstance(subject, str):
        subject = subject_of(subject)
    if not subjects.is_valid(subject, wildcards=True):
        raise ValueError(f"invalid subject to subscribe to: {subject!r}")
    if not queue or not subjects.is_valid(queue, wildcards=False) or "." in queue:
        raise ValueError(f"invalid queue group: {queue!r}")
    if not durable:
        return subject, None
    stream = subjects.find_stream(streams.known_streams(settings), subject)
    if stream is None:
        raise ValueError(
            f"no stream holds {subject!r}: durable subscription impossible "
            "(subscribe by event type, whose declaration names its stream)"
        )
    return subject, stream


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode(message: Message) -> bytes:
    return message.SerializeToString()


def decode(event: Event, message_type: type[M]) -> M:
    """The payload as `message_type`; raises `google.protobuf.message.DecodeError`."""
    message = message_type()
    message.ParseFromString(event.data)
    return message


async def publish_event(
    broker: Broker, message: Message, *, headers: Mapping[str, str] | None = None
) -> str:
    """Publish on the message's subject, its `event_id` (set here when empty) as the id."""
    spec = event_spec(type(message))
    event_id: str = getattr(message, "event_id")  # noqa: B009 - checked by event_spec
    if not event_id:
        event_id = new_event_id()
        setattr(message, "event_id", event_id)  # noqa: B010 - any event type
    sent = {**(headers or {}), STREAM_HEADER: spec.stream}
    return await broker.publish(spec.subject, encode(message), headers=sent, event_id=event_id)
