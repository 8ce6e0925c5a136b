"""Build the broker a service asked for: NATS, or in-process for `memory://`."""

from __future__ import annotations

from shared.broker.memory import MemoryBroker
from shared.broker.metrics import BrokerMetrics
from shared.broker.nats import NatsBroker
from shared.broker.protocol import Broker, PublishHook
from shared.broker.settings import BrokerSettings


def build_broker(
    settings: BrokerSettings,
    service_name: str,
    *,
    metrics: BrokerMetrics | None = None,
    on_publish: PublishHook | None = None,
) -> Broker:
    """A broker not yet started: subscribe, then `await broker.start()`."""
    if settings.is_memory:
        return MemoryBroker(settings, metrics=metrics, on_publish=on_publish)
    return NatsBroker(settings, service_name, metrics=metrics, on_publish=on_publish)


async def connect_broker(
    settings: BrokerSettings,
    service_name: str,
    *,
    metrics: BrokerMetrics | None = None,
    on_publish: PublishHook | None = None,
) -> Broker:
    """A started broker; returns promptly even when NATS is down (it keeps trying)."""
    broker = build_broker(settings, service_name, metrics=metrics, on_publish=on_publish)
    await broker.start()
    return broker
