"""Overload through real processes, with production Argon2 and the login throttle out of
the way (tests/support/services.py raises its limits): a flood of wrong passwords is shed
by user_service, not timed out, so no circuit opens and the flooded account still logs in
from elsewhere; and a hung user_service node is ejected after three timeouts."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from shared.breaker.settings import BreakerSettings
from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.http import login
from tests.support.system import metric, start_system

pytestmark = pytest.mark.integration

VERIFY = "user_service.VerifyCredentials"
USER_TRIES = 20
# One fewer than user_api's bulkhead for a command (BreakerSettings.max_concurrent_requests,
# 100 in flight, Hystrix's default): a wave of 100 left the user's login no slot, REJECTED
# at once, before user_service's fair queue, the subject here, could see it. With the
# throttle on (20 attempts a minute per address), one address never has 100 in flight.
WAVE = BreakerSettings.model_fields["max_concurrent_requests"].default - 1


def _from(base_url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections leave from `address` (any 127.x.y.z is this machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10, limits=limits)


async def test_a_flood_of_wrong_passwords_is_shed_and_the_user_still_logs_in(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    system = await start_system(start_service, registry)
    attacker = _from(system.base_url, "127.0.0.1")
    user = _from(system.base_url, "127.0.0.2")
    try:
        assert (await login(user)).status_code == 200  # connections are up
        flooded: list[int] = []
        user_done = asyncio.Event()

        async def flood() -> None:
            # Waves of parallel wrong passwords, for as long as the user tries.
            while not user_done.is_set():
                wave = [login(attacker, "micro", f"guess-{n}") for n in range(WAVE)]
                flooded.extend(answer.status_code for answer in await asyncio.gather(*wave))

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.2)  # the first wave is in
        tries: list[tuple[int, float]] = []
        for _ in range(USER_TRIES):
            started = time.perf_counter()
            status = (await login(user)).status_code
            tries.append((status, time.perf_counter() - started))
        user_done.set()
        await flooding
        breakers = (await system.http.get("/debug/breakers")).json()["breakers"]
    finally:
        await attacker.aclose()
        await user.aclose()
        await system.close()

    seen = {status: flooded.count(status) for status in set(flooded)}
    # Every attempt got an answer it deserved: wrong password, or "overloaded, try later";
    # a few may time out still (this host runs other loads: Argon2 slows without notice),
    # far too few to open a circuit.
    assert set(flooded) <= {401, 503, 504}, (seen, breakers[VERIFY])
    assert seen.get(504, 0) <= 0.05 * len(flooded), (seen, breakers[VERIFY])
    assert seen.get(401, 0) >= 10, seen
    assert seen.get(503, 0) >= 1, seen  # shed, or the flood never overloaded anything
    fast = [seconds for status, seconds in tries if status == 200 and seconds < 1.0]
    assert len(fast) >= 0.95 * USER_TRIES, tries
    verify = breakers[VERIFY]
    assert all(entry["state"] == "closed" for entry in breakers.values()), breakers
    assert verify["counts"]["shed"] >= 1, verify


async def test_a_hung_node_of_three_is_ejected_and_logins_go_on(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    system = await start_system(start_service, registry, user_services=3)
    try:
        for _ in range(6):  # every node has served: channels are up
            assert (await login(system.http)).status_code == 200
        with system.frozen(system.users[1]):
            statuses = [(await login(system.http)).status_code for _ in range(100)]
            scraped = await system.metrics()
            breaker = await system.breaker(VERIFY)
    finally:
        await system.close()

    assert statuses.count(200) >= 97, statuses
    # The hung node's calls failed, three in a row before it was ejected (and one each time
    # it came back from an ejection); each was retried on another node. They time out, or,
    # once the channel's pings have found the node out, fail at once.
    failed = sum(
        metric(scraped, "breaker_calls_total", command=VERIFY, outcome=outcome)
        for outcome in ("timeout", "failure")
    )
    assert 3 <= failed <= 6, (failed, breaker)
    assert breaker["state"] == "closed"
