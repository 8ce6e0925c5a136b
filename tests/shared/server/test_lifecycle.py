"""A real service process registers after start, and leaves the registry when it stops."""

from __future__ import annotations

import signal
import time

import pytest

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.services import wait_for_nodes

pytestmark = pytest.mark.integration


async def test_a_started_service_appears_with_its_address_and_endpoints(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    start_service("user_service")

    [node] = await wait_for_nodes(registry, "user_service", 1)

    assert node.address.startswith("127.0.0.1:")
    assert node.endpoints == ("user.v1.UserService",)
    assert node.version


async def test_sigterm_deregisters_at_once(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    process = start_service("user_service")
    await wait_for_nodes(registry, "user_service", 1)

    stopped = time.monotonic()
    process.signal(signal.SIGTERM)
    await wait_for_nodes(registry, "user_service", 0, timeout=5)

    assert time.monotonic() - stopped < 1.5
    assert process.wait() == 0


async def test_sigkill_leaves_the_registry_within_the_lease_ttl(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    process = start_service("user_service", REGISTRY_TTL_S="3")
    await wait_for_nodes(registry, "user_service", 1)

    killed = time.monotonic()
    process.signal(signal.SIGKILL)
    await wait_for_nodes(registry, "user_service", 0, timeout=10)

    assert time.monotonic() - killed < 3 + 1.5
