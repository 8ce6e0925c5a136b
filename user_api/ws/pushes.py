"""Events pushed to sockets: one fan-out subscription per process, handed out per user.

Every replica of user_api must see every login, whichever replica it happened on: so the
subscription is core NATS (at most once: a push is a notification, not a record) in a
queue group of its own, which makes it a plain fan-out. The payload is protobuf; sockets
get it as proto3 JSON.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from shared.broker import Broker, Event
from shared.broker.events import decode
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn

log = logging.getLogger(__name__)

# What a socket may subscribe to: events that carry the user they are about (`user_id`).
PUSHABLE: dict[str, type[Message]] = {"user.logged_in": UserLoggedIn}

Listener = Callable[[dict[str, Any]], None]


class EventHub:
    def __init__(self, broker: Broker, service_name: str) -> None:
        self._broker = broker
        # Unique per process: a queue group of one member is a plain subscription.
        self._queue = f"{service_name}_push_{uuid.uuid4().hex[:12]}"
        self._subscribed: set[str] = set()
        self._lock = asyncio.Lock()
        self._listeners: dict[tuple[str, int], set[Listener]] = {}

    async def listen(self, subject: str, user_id: int, listener: Listener) -> None:
        """Call `listener` with each new `subject` frame about `user_id`; at once, not awaited."""
        if subject not in PUSHABLE:
            raise KeyError(subject)
        async with self._lock:  # the broker offers no unsubscribe: subscribe once per subject
            if subject not in self._subscribed:
                await self._broker.subscribe(
                    subject, self._on_event, queue=self._queue, durable=False
                )
                self._subscribed.add(subject)
        self._listeners.setdefault((subject, user_id), set()).add(listener)

    def forget(self, listener: Listener) -> None:
        for key in [key for key, found in self._listeners.items() if listener in found]:
            self._listeners[key].discard(listener)
            if not self._listeners[key]:
                del self._listeners[key]

    async def _on_event(self, event: Event) -> None:
        message_type = PUSHABLE.get(event.subject)
        if message_type is None:
            return
        try:
            message = decode(event, message_type)
        except DecodeError:
            log.warning("undecodable %s event %s", event.subject, event.event_id)
            return
        user_id = int(getattr(message, "user_id", 0))
        listeners = self._listeners.get((event.subject, user_id))
        if not listeners:
            return
        body = json_format.MessageToDict(message, preserving_proto_field_name=True)
        frame = {"event": event.subject, "body": body}
        for listener in list(listeners):
            listener(frame)
