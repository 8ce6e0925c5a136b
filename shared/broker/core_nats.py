"""Core NATS subscriptions: at most once, for events that may be lost (cache hints)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared.broker.metrics import BrokerMetrics
from shared.broker.protocol import EVENT_ID_HEADER, Event, Handler

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 2


@dataclass(slots=True)
class CoreSubscription:
    subject: str
    queue: str
    handler: Handler
    metrics: BrokerMetrics
    sub: Subscription | None = None

    async def subscribe(self, nc: Client) -> None:
        """Subscribe once; nats-py itself replays the subscription after reconnects."""
        try:
            self.sub = await nc.subscribe(self.subject, queue=self.queue, cb=self._deliver)
            # Confirmed by the server, so that an event published next is not missed.
            await nc.flush(timeout=CONFIRM_TIMEOUT_S)
        except (nats.errors.Error, OSError) as error:
            log.warning("core subscription to %s not confirmed: %s", self.subject, error)

    async def _deliver(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        event = Event(msg.subject, msg.data, headers, headers.get(EVENT_ID_HEADER, ""), 1)
        try:
            await self.handler(event)
        except Exception:
            # Nothing redelivers a core message, so say it loudly.
            self.metrics.handler_errors.labels(subject=msg.subject, queue=self.queue).inc()
            log.exception("handler of %s (%s) failed; event lost", msg.subject, self.queue)
