"""The kit's domain events: subjects, and protobuf payloads (shared/proto/events/v1).

Usage::

    await publish_event(broker, UserLoggedIn(user_id=7, user_name="ann", occurred_at_ms=now_ms()))

    async def on_login(event: Event) -> None:
        login = decode(event, UserLoggedIn)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final, TypeVar

from google.protobuf.message import Message

from shared.broker.outbox import new_event_id
from shared.broker.protocol import Broker, Event
from shared.proto.events.v1.events_pb2 import TokenRevoked, UserLoggedIn, UserLoginFailed

USER_LOGGED_IN: Final = "user.logged_in"
USER_LOGIN_FAILED: Final = "user.login_failed"
AUTH_TOKEN_REVOKED: Final = "auth.token_revoked"

EventMessage = UserLoggedIn | UserLoginFailed | TokenRevoked
SUBJECTS: Final[Mapping[type[EventMessage], str]] = {
    UserLoggedIn: USER_LOGGED_IN,
    UserLoginFailed: USER_LOGIN_FAILED,
    TokenRevoked: AUTH_TOKEN_REVOKED,
}

M = TypeVar("M", bound=Message)


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
    broker: Broker, message: EventMessage, *, headers: Mapping[str, str] | None = None
) -> str:
    """Publish on the message's subject, its `event_id` (set here when empty) as the id."""
    if not message.event_id:
        message.event_id = new_event_id()
    subject = SUBJECTS[type(message)]
    return await broker.publish(
        subject, encode(message), headers=headers, event_id=message.event_id
    )
