"""The kit's sliding-window throttle, in memory and shared through the machine's Redis."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.breaker import BreakerSettings, Command
from shared.throttle import Throttle, client_key, parse_limit
from tests.support.silent import silent_server

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_hits_beyond_the_window_are_refused_with_the_wait() -> None:
    throttle = Throttle()
    limit = parse_limit("3/minute")

    allowed = [await throttle.hit(limit, "k") for _ in range(3)]
    refused = await throttle.hit(limit, "k")

    assert allowed == [None, None, None]
    assert refused is not None
    assert 1 <= refused <= 60
    assert await throttle.retry_after(limit, "k") == refused
    assert await throttle.hit(limit, "other") is None  # keys are counted apart


async def test_clear_forgets_a_key() -> None:
    throttle = Throttle()
    limit = parse_limit("1/hour")
    await throttle.hit(limit, "k")

    await throttle.clear(limit, "k")

    assert await throttle.hit(limit, "k") is None


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:0:1:aaaa:bbbb:cccc:dddd", "2001:db8:0:1::/64"),
        ("[2001:db8:0:1::1]", "2001:db8:0:1::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("testclient", "testclient"),
        ("", ""),
    ],
)
def test_a_client_counts_as_its_ipv4_address_or_its_ipv6_64(address: str, key: str) -> None:
    assert client_key(address) == key


def test_the_ipv6_network_can_be_wider() -> None:
    assert client_key("2001:db8:aa:bb::1", ipv6_prefix=48) == "2001:db8:aa::/48"


async def test_two_processes_share_the_windows_through_redis() -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    one = Throttle(REDIS_URL, namespace=namespace)
    two = Throttle(REDIS_URL, namespace=namespace)
    limit = parse_limit("4/minute")

    for throttle in (one, two, one, two):
        assert await throttle.hit(limit, "k") is None

    assert await one.hit(limit, "k") is not None
    assert await two.retry_after(limit, "k") is not None


async def test_an_unreachable_redis_leaves_each_replica_throttling_in_memory() -> None:
    throttle = Throttle("redis://127.0.0.1:1/0")
    # A day: a sliding window weighs the last fixed window's hits by their overlap, so a
    # test crossing a minute's boundary would get a hit back.
    limit = parse_limit("1/day")

    assert await throttle.hit(limit, "k") is None
    assert await throttle.hit(limit, "k") is not None  # still throttled: never a free pass


async def test_a_redis_that_never_answers_is_left_alone_once_its_circuit_opens() -> None:
    guard = Command("redis.throttle", BreakerSettings(request_volume_threshold=2))
    limit = parse_limit("3/day")  # no window boundary within the test (see above)
    async with silent_server() as port:
        throttle = Throttle(f"redis://127.0.0.1:{port}/0", guard=guard)
        # Two hits wait out the socket timeout (0.5 s each), and open the circuit.
        assert [await throttle.hit(limit, "k") for _ in range(2)] == [None, None]
        assert guard.state == "open"
        started = time.monotonic()
        verdicts = [await throttle.hit(limit, "k") for _ in range(20)]
        assert time.monotonic() - started < 0.4  # not one more wait on Redis
    assert verdicts[0] is None
    assert all(wait is not None for wait in verdicts[1:])  # counted in memory all along
