"""Publish / subscribe with queue groups: NATS (JetStream for durable events) and memory.

Usage::

    broker = await connect_broker(BrokerSettings(), "billing")
    await broker.subscribe(OrderPlaced, on_placed, queue="billing")  # an event type
    await publish_event(broker, OrderPlaced(...))  # returns at once, even with NATS down
    await broker.stop()                            # flush, finish handlers, drain

Events and their streams are declared by the services that own them, in their protobuf
contracts (see `shared.broker.events`); the kit knows none.
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
