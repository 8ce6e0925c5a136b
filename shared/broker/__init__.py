"""Publish / subscribe with queue groups: NATS (JetStream for durable events) and memory.

Usage::

    broker = await connect_broker(BrokerSettings(), "user_service")
    await broker.subscribe(USER_LOGGED_IN, on_login, queue="user_service")
    await broker.publish(USER_LOGGED_IN, payload)     # returns at once, even with NATS down
    await broker.stop()                              # flush, finish handlers, drain
"""

from shared.broker.factory import build_broker, connect_broker
from shared.broker.idempotency import SeenEvents, once
from shared.broker.memory import DeadLetter, MemoryBroker
from shared.broker.metrics import BrokerMetrics, default_metrics
from shared.broker.nats import NatsBroker
from shared.broker.protocol import EVENT_ID_HEADER, Broker, Event, Handler, PublishHook
from shared.broker.settings import BrokerSettings

__all__ = [
    "EVENT_ID_HEADER",
    "Broker",
    "BrokerMetrics",
    "BrokerSettings",
    "DeadLetter",
    "Event",
    "Handler",
    "MemoryBroker",
    "NatsBroker",
    "PublishHook",
    "SeenEvents",
    "build_broker",
    "connect_broker",
    "default_metrics",
    "once",
]
