"""The state machine and the guards of one command, in the manner of resilience4j's
CircuitBreakerStateMachineTest: a fake clock for the circuit, real time only where asyncio
has to cancel something (timeouts of a few tens of ms)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from shared.breaker import BreakerSettings, Command
from shared.errors import Reason, ServiceError

NAME = "user_service.VerifyCredentials"


class Calls:
    """Callables for `Command.run` that count how often they ran."""

    def __init__(self) -> None:
        self.count = 0
        self.timeouts: list[float] = []

    async def ok(self, timeout_s: float) -> str:
        self.count += 1
        self.timeouts.append(timeout_s)
        return "ok"

    async def boom(self, timeout_s: float) -> str:
        self.count += 1
        raise ConnectionError("callee down")

    async def not_found(self, timeout_s: float) -> str:
        self.count += 1
        raise ServiceError(Reason.NOT_FOUND, "no such user")

    async def fallback(self, error: BaseException) -> str:
        return "fallback"

    async def hang(self, timeout_s: float) -> str:
        await asyncio.sleep(10)
        return "too late"


@pytest.fixture
def calls() -> Calls:
    return Calls()


def make(clock: Any, **settings: Any) -> Command:
    return Command(NAME, BreakerSettings(**settings), clock=clock)


async def succeed(command: Command, calls: Calls, times: int) -> None:
    for _ in range(times):
        assert await command.run(calls.ok) == "ok"


async def fail(command: Command, calls: Calls, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            await command.run(calls.boom)


async def trip(command: Command, calls: Calls) -> None:
    await fail(command, calls, command.settings.request_volume_threshold)
    assert command.state == "open"


async def short_circuited(command: Command, calls: Calls) -> ServiceError:
    before = calls.count
    with pytest.raises(ServiceError) as caught:
        await command.run(calls.ok)
    assert calls.count == before, "fn must not run while the circuit is open"
    assert caught.value.reason is Reason.CIRCUIT_OPEN
    return caught.value


# --- opening -------------------------------------------------------------------------------


async def test_19_failures_of_19_stay_closed_the_20th_opens(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await fail(command, calls, 19)
    assert command.state == "closed"
    await fail(command, calls, 1)
    assert command.state == "open"


async def test_20_calls_at_50_percent_open(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await succeed(command, calls, 10)
    await fail(command, calls, 9)
    assert command.state == "closed"  # 19 calls: below the volume
    await fail(command, calls, 1)
    assert command.state == "open"


async def test_a_success_that_completes_the_volume_opens(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await fail(command, calls, 10)
    await succeed(command, calls, 9)
    assert command.state == "closed"
    await succeed(command, calls, 1)  # 10 of 20 failed: 50 %
    assert command.state == "open"


async def test_just_below_the_error_threshold_stays_closed(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await succeed(command, calls, 51)
    await fail(command, calls, 49)
    assert command.snapshot()["error_percent"] == 49.0
    await fail(command, calls, 1)  # 50 of 101: 49.5 %
    assert command.state == "closed"
    await fail(command, calls, 1)  # 51 of 102: 50 %
    assert command.state == "open"


async def test_old_buckets_fall_out_of_the_window(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await fail(command, calls, 19)
    clock.advance(11)
    await fail(command, calls, 1)
    assert command.state == "closed"
    assert command.snapshot()["volume"] == 1


async def test_failures_inside_the_window_still_count(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await fail(command, calls, 19)
    clock.advance(8.5)
    await fail(command, calls, 1)
    assert command.state == "open"


async def test_business_errors_are_reraised_unchanged_and_count_as_healthy(
    clock: Any, calls: Calls
) -> None:
    command = make(clock)
    error = ServiceError(Reason.UNAUTHENTICATED)

    async def wrong_password(timeout_s: float) -> str:
        raise error

    for _ in range(30):
        with pytest.raises(ServiceError) as caught:
            await command.run(wrong_password)
        assert caught.value is error
    await fail(command, calls, 29)  # 29 of 59: 49 %
    snapshot = command.snapshot()
    assert (snapshot["state"], snapshot["volume"]) == ("closed", 59)
    assert snapshot["counts"]["business_error"] == 30


async def test_the_failure_classifier_is_injectable(clock: Any) -> None:
    command = Command(
        NAME,
        BreakerSettings(request_volume_threshold=1),
        clock=clock,
        is_failure=lambda exc: not isinstance(exc, KeyError),
    )

    async def lookup(timeout_s: float) -> str:
        raise KeyError("absent")

    with pytest.raises(KeyError):
        await command.run(lookup)
    assert command.state == "closed"


# --- open, half-open -----------------------------------------------------------------------


async def test_open_fails_fast_with_the_time_left_of_the_sleep_window(
    clock: Any, calls: Calls
) -> None:
    command = make(clock)
    await trip(command, calls)
    assert (await short_circuited(command, calls)).retry_after == 5
    clock.advance(2.5)
    assert (await short_circuited(command, calls)).retry_after == 3
    clock.advance(2.49)
    assert (await short_circuited(command, calls)).retry_after == 1
    snapshot = command.snapshot()
    assert snapshot["counts"]["short_circuited"] == 3
    assert snapshot["volume"] == 20, "short-circuits are not in the error %"


async def test_exactly_one_trial_after_the_sleep_window(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await trip(command, calls)
    clock.advance(5)
    release = asyncio.Event()
    trials = 0

    async def trial(timeout_s: float) -> str:
        nonlocal trials
        trials += 1
        await release.wait()
        return "recovered"

    trial_task = asyncio.create_task(command.run(trial))
    await asyncio.sleep(0)
    assert (command.state, trials) == ("half-open", 1)
    for _ in range(5):
        assert (await short_circuited(command, calls)).retry_after == 1
    release.set()
    assert await trial_task == "recovered"
    assert command.state == "closed"
    await succeed(command, calls, 3)
    assert trials == 1


async def test_no_trial_before_the_sleep_window_ends(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await trip(command, calls)
    clock.advance(4.999)
    await short_circuited(command, calls)
    clock.advance(0.001)
    await succeed(command, calls, 1)
    assert command.state == "closed"


async def test_a_failed_trial_reopens_for_a_new_sleep_window(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await trip(command, calls)
    clock.advance(5)
    await fail(command, calls, 1)
    assert command.state == "open"
    clock.advance(4.9)
    assert (await short_circuited(command, calls)).retry_after == 1
    clock.advance(0.1)
    await succeed(command, calls, 1)
    assert command.state == "closed"


async def test_a_business_error_as_trial_closes(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await trip(command, calls)
    clock.advance(5)
    with pytest.raises(ServiceError):
        await command.run(calls.not_found)
    assert command.state == "closed"


async def test_closing_starts_a_fresh_window(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await trip(command, calls)
    clock.advance(5)
    await succeed(command, calls, 1)
    await fail(command, calls, 1)
    assert command.state == "closed"
    assert command.snapshot()["volume"] == 1


async def test_a_cancelled_trial_lets_the_next_call_be_the_trial(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await trip(command, calls)
    clock.advance(5)
    trial_task = asyncio.create_task(command.run(calls.hang))
    await asyncio.sleep(0)
    trial_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial_task
    assert (command.state, command.in_flight) == ("half-open", 0)
    await succeed(command, calls, 1)
    assert command.state == "closed"


# --- timeout, budget -----------------------------------------------------------------------


async def test_timeout_cancels_fn_and_raises_timeout(calls: Calls) -> None:
    command = Command(NAME, BreakerSettings(timeout_ms=50))
    cancelled = asyncio.Event()

    async def slow(timeout_s: float) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "too late"

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        await command.run(slow)
    assert caught.value.reason is Reason.TIMEOUT
    assert cancelled.is_set()
    assert time.monotonic() - started < 0.5
    assert command.snapshot()["counts"]["timeout"] == 1


async def test_an_answer_after_the_deadline_is_a_timeout() -> None:
    command = Command(NAME, BreakerSettings(timeout_ms=20))

    async def stubborn(timeout_s: float) -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return "late"

    with pytest.raises(ServiceError) as caught:
        await command.run(stubborn)
    assert caught.value.reason is Reason.TIMEOUT


async def test_a_timeout_error_of_fn_itself_is_a_plain_failure(clock: Any) -> None:
    command = make(clock)

    async def inner_timeout(timeout_s: float) -> str:
        raise TimeoutError("from a library")

    with pytest.raises(TimeoutError):
        await command.run(inner_timeout)
    assert command.snapshot()["counts"]["failure"] == 1


async def test_fn_gets_the_smaller_of_timeout_and_budget(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await command.run(calls.ok)
    await command.run(calls.ok, budget_s=0.25)
    await command.run(calls.ok, budget_s=30)
    assert calls.timeouts == [1.0, 0.25, 1.0]


async def test_a_budget_smaller_than_the_timeout_cuts_the_call(calls: Calls) -> None:
    command = Command(NAME)
    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        await command.run(calls.hang, budget_s=0.03)
    assert caught.value.reason is Reason.TIMEOUT
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("budget_s", [0.0, -1.0])
async def test_a_spent_budget_raises_at_once(clock: Any, calls: Calls, budget_s: float) -> None:
    command = make(clock)
    command.fallback = calls.fallback  # the caller has gone: nobody to serve a fallback to
    with pytest.raises(ServiceError) as caught:
        await command.run(calls.ok, budget_s=budget_s)
    assert caught.value.reason is Reason.TIMEOUT
    assert calls.count == 0
    assert command.snapshot()["volume"] == 0


# --- bulkhead ------------------------------------------------------------------------------


async def test_bulkhead_runs_100_and_rejects_50_at_once() -> None:
    command = Command(NAME, BreakerSettings(request_volume_threshold=1000))
    release = asyncio.Event()
    entered = 0

    async def slow(timeout_s: float) -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(command.run(slow)) for _ in range(150)]
    await asyncio.sleep(0)
    done = [task for task in tasks if task.done()]
    assert (entered, command.in_flight, len(done)) == (100, 100, 50)
    for task in done:
        error = task.exception()
        assert isinstance(error, ServiceError)
        assert error.reason is Reason.REJECTED
    release.set()
    results = await asyncio.gather(*tasks[:100])
    assert results == ["ok"] * 100
    assert command.in_flight == 0
    assert command.snapshot()["counts"]["rejected"] == 50


async def test_rejections_count_as_failures(clock: Any, calls: Calls) -> None:
    command = make(clock, max_concurrent_requests=1)
    release = asyncio.Event()
    holder = asyncio.create_task(command.run(lambda timeout_s: release.wait()))
    await asyncio.sleep(0)
    for _ in range(20):
        with pytest.raises(ServiceError, match="in flight"):
            await command.run(calls.ok)
    assert command.state == "open"
    release.set()
    await holder


async def test_a_rejected_trial_reopens(clock: Any, calls: Calls) -> None:
    command = make(clock, max_concurrent_requests=1)
    release = asyncio.Event()
    holder = asyncio.create_task(command.run(lambda timeout_s: release.wait()))
    await asyncio.sleep(0)
    for _ in range(20):
        with pytest.raises(ServiceError, match="in flight"):
            await command.run(calls.ok)
    clock.advance(5)
    with pytest.raises(ServiceError, match="in flight"):
        await command.run(calls.ok)
    assert command.state == "open"
    release.set()
    await holder
    clock.advance(5)
    await succeed(command, calls, 1)
    assert command.state == "closed"


# --- fallback ------------------------------------------------------------------------------


async def test_fallback_serves_failures_and_the_open_circuit(clock: Any, calls: Calls) -> None:
    command = make(clock)
    seen: list[BaseException] = []

    async def cached(error: BaseException) -> str:
        seen.append(error)
        return "cached"

    for _ in range(20):
        assert await command.run(calls.boom, fallback=cached) == "cached"
    assert command.state == "open"
    assert await command.run(calls.ok, fallback=cached) == "cached"
    assert isinstance(seen[0], ConnectionError)
    assert isinstance(seen[-1], ServiceError)
    assert seen[-1].reason is Reason.CIRCUIT_OPEN
    assert command.snapshot()["counts"]["fallback"] == 21


async def test_fallback_does_not_serve_business_errors(clock: Any, calls: Calls) -> None:
    command = make(clock)
    command.fallback = calls.fallback
    with pytest.raises(ServiceError) as caught:
        await command.run(calls.not_found)
    assert caught.value.reason is Reason.NOT_FOUND


async def test_fallback_serves_timeouts_and_rejections(calls: Calls) -> None:
    command = Command(NAME, BreakerSettings(timeout_ms=20, max_concurrent_requests=1))

    async def reason(error: BaseException) -> str:
        assert isinstance(error, ServiceError)
        return str(error.reason)

    command.fallback = reason
    holder = asyncio.create_task(command.run(calls.hang))
    await asyncio.sleep(0)
    assert await command.run(calls.ok) == "REJECTED"
    assert await holder == "TIMEOUT"


async def test_the_per_call_fallback_wins(clock: Any, calls: Calls) -> None:
    command = make(clock)
    command.fallback = calls.fallback

    async def other(error: BaseException) -> str:
        return "per call"

    assert await command.run(calls.boom, fallback=other) == "per call"
    assert await command.run(calls.boom) == "fallback"


# --- snapshot ------------------------------------------------------------------------------


async def test_snapshot(clock: Any, calls: Calls) -> None:
    command = make(clock)
    await succeed(command, calls, 3)
    await fail(command, calls, 1)
    snapshot = command.snapshot()
    assert snapshot == {
        "state": "closed",
        "error_percent": 25.0,
        "volume": 4,
        "in_flight": 0,
        "counts": {
            "success": 3,
            "business_error": 0,
            "failure": 1,
            "timeout": 0,
            "rejected": 0,
            "short_circuited": 0,
            "fallback": 0,
            "shed": 0,
        },
        "settings": BreakerSettings().model_dump(),
    }


@pytest.mark.parametrize("self_timed", [False, True])
async def test_a_timeout_reported_by_the_call_itself_counts_as_a_timeout(
    clock: Any, self_timed: bool
) -> None:
    command = make(clock, request_volume_threshold=2)

    async def deadline_exceeded(timeout_s: float) -> None:
        raise ServiceError(Reason.TIMEOUT, "DEADLINE_EXCEEDED from the gRPC deadline")

    for _ in range(2):
        with pytest.raises(ServiceError) as caught:
            await command.run(deadline_exceeded, self_timed=self_timed)
        assert caught.value.reason is Reason.TIMEOUT

    assert command.snapshot()["counts"]["timeout"] == 2
    assert command.state == "open"


async def test_a_self_timed_call_gets_the_timeout_and_no_timer_of_the_commands(
    clock: Any,
) -> None:
    command = make(clock, timeout_ms=10)
    given: list[float] = []

    async def slow_but_self_timed(timeout_s: float) -> str:
        given.append(timeout_s)
        await asyncio.sleep(0.03)  # past the 10 ms: only the callee's own deadline may stop it
        return "done"

    assert await command.run(slow_but_self_timed, self_timed=True, budget_s=5) == "done"
    assert given == [0.01]
