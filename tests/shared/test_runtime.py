"""What `Runtime.open` wires from the settings."""

from __future__ import annotations

import uuid

import nats
import pytest
import redis

from shared.broker import Event
from shared.broker.events import subject_of
from shared.broker.subjects import consumer_name
from shared.config import ServiceSettings
from shared.errors import Reason, ServiceError
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn
from shared.registry import MemoryRegistry
from shared.runtime import Runtime
from tests.support.nats import NatsServer

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


async def failing(timeout_s: float) -> None:
    raise ServiceError(Reason.UNAVAILABLE, "down")


async def test_replicas_with_a_breaker_redis_url_share_their_circuits() -> None:
    settings = ServiceSettings(
        service_name=f"test-{uuid.uuid4().hex[:8]}",
        use_config_service=False,
        nats_url="memory://",
        breaker_redis_url=REDIS_URL,
    )
    try:
        async with (
            Runtime.open(settings, registry=MemoryRegistry()) as one,
            Runtime.open(settings, registry=MemoryRegistry()) as other,
        ):
            one.breakers.configure(request_volume_threshold=2)
            for _ in range(2):
                with pytest.raises(ServiceError):
                    await one.breakers.command("svc.Method").run(failing)
            assert one.breakers.command("svc.Method").state == "open"

            # What each one's task does every second: `one` after its write, then `other`.
            command = other.breakers.command("svc.Method")
            await one.breakers.follow_shared()
            await other.breakers.follow_shared()
            with pytest.raises(ServiceError) as caught:
                await command.run(failing)
            assert caught.value.reason is Reason.CIRCUIT_OPEN
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"micro:{settings.service_name}:*"))
        if keys:
            client.delete(*keys)
        client.close()


async def test_a_services_delivery_settings_reach_its_durable_subscriptions(
    nats_server: NatsServer,
) -> None:
    settings = ServiceSettings(
        service_name="billing",
        use_config_service=False,
        nats_url=nats_server.url,
        broker_ack_wait_s=7,
        broker_max_deliver=2,
    )
    subject = subject_of(UserLoggedIn)  # declares its stream, as a service's import does
    attempts: list[int] = []

    async def poisoned(event: Event) -> None:
        attempts.append(event.delivery_count)
        raise ValueError("cannot handle this one")

    async with Runtime.open(settings, registry=MemoryRegistry()) as runtime:
        await runtime.subscribe(subject, poisoned)
        connection = await nats.connect(nats_server.url)
        try:
            js = connection.jetstream(timeout=5)
            dead = await js.subscribe(f"dlq.{subject}")
            await runtime.broker.publish(subject, b"not a UserLoggedIn")
            letter = await dead.next_msg(timeout=15)
            consumer = await js.consumer_info("USER", consumer_name("billing", subject))
        finally:
            await connection.close()
    assert attempts == [1, 2]
    assert (letter.headers or {})["Dlq-Deliveries"] == "2"
    assert consumer.config.ack_wait == 7
