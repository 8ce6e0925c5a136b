"""What `Runtime.open` wires from the settings."""

from __future__ import annotations

import uuid

import pytest
import redis

from shared.config import ServiceSettings
from shared.errors import Reason, ServiceError
from shared.registry import MemoryRegistry
from shared.runtime import Runtime

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
