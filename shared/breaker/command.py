"""One Hystrix command: timeout, bulkhead and rolling error % around async calls, deciding
when its `Circuit` opens, lets a trial through and closes.

Nothing here awaits while holding a lock, or takes one at all: every change of the counters
and of the state happens between two awaits, which asyncio already makes atomic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.breaker.circuit import CLOSED, Circuit
from shared.breaker.metrics import NO_METRICS, BreakerMetrics
from shared.breaker.settings import BreakerSettings
from shared.breaker.shared_state import SharedState
from shared.breaker.window import (
    BUSINESS_ERROR,
    FAILURE,
    FALLBACK,
    REJECTED,
    SHED,
    SHORT_CIRCUITED,
    SUCCESS,
    TIMEOUT,
    RollingWindow,
)
from shared.errors import Reason, ServiceError

T = TypeVar("T")
Fallback = Callable[[BaseException], Awaitable[Any]]
IsFailure = Callable[[BaseException], bool]


def default_is_failure(exc: BaseException) -> bool:
    """Business outcomes ("wrong password", "not found") say nothing of the callee's health."""
    return not (isinstance(exc, ServiceError) and exc.is_business)


class Command:
    """The guard of one `<service>.<method>`; made by `Breakers.command()`."""

    __slots__ = (
        "_circuit",
        "_clock",
        "_error_percent",
        "_in_flight",
        "_is_failure",
        "_max_concurrent",
        "_metrics",
        "_timeout_s",
        "_volume_threshold",
        "_window",
        "fallback",
        "name",
        "settings",
    )

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
        is_failure: IsFailure = default_is_failure,
        metrics: BreakerMetrics | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self.name = name
        self.fallback = fallback
        self._clock = clock
        self._is_failure = is_failure
        self._in_flight = 0
        settings = settings or BreakerSettings()
        self._apply(settings, new_window=True)
        self._circuit = Circuit(
            name,
            sleep_s=settings.sleep_window_ms / 1000,
            # As Hystrix does: else the failures that opened the circuit reopen it at once.
            on_close=lambda: self._window.reset(),
            shared=shared,
        )
        self._metrics = (
            NO_METRICS
            if metrics is None
            else metrics.bind(name, lambda: self._circuit.state, lambda: self._in_flight)
        )

    @property
    def state(self) -> str:
        """ "closed", "open" or "half-open"."""
        return self._circuit.state

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def follow_shared(self) -> None:
        """Take the state the other replicas left in shared storage (Breakers does this once
        per sync interval)."""
        await self._circuit.follow_shared(self._clock)

    def apply_settings(self, settings: BreakerSettings) -> None:
        """Takes effect from the next call. A new window size restarts the counts."""
        if settings == self.settings:
            return
        old = self.settings
        self._apply(
            settings,
            new_window=(old.rolling_window_ms, old.buckets)
            != (settings.rolling_window_ms, settings.buckets),
        )
        self._circuit.set_sleep_window(settings.sleep_window_ms / 1000)

    def _apply(self, settings: BreakerSettings, *, new_window: bool) -> None:
        # Copied into plain attributes: the hot path must not go through pydantic.
        self.settings = settings
        self._timeout_s = settings.timeout_ms / 1000
        self._max_concurrent = settings.max_concurrent_requests
        self._error_percent = settings.error_percent_threshold
        self._volume_threshold = settings.request_volume_threshold
        if new_window:
            self._window = RollingWindow(settings.rolling_window_ms / 1000, settings.buckets)

    async def run(
        self,
        fn: Callable[[float], Awaitable[T]],
        *,
        budget_s: float | None = None,
        fallback: Callable[[BaseException], Awaitable[T]] | None = None,
        self_timed: bool = False,
    ) -> T:
        """Call `fn(timeout_s)` under this command's rules and return its result.

        `timeout_s` is the smaller of the command timeout and `budget_s` (what is left of the
        caller's deadline); `fn` should pass it on as the gRPC deadline. Raises
        `ServiceError` TIMEOUT, REJECTED or CIRCUIT_OPEN (with `retry_after`), or what `fn`
        raised; with a fallback (this argument, else the command's), every one of those but
        a business error returns the fallback's value instead (an error the fallback raises
        propagates). A spent budget raises TIMEOUT without calling `fn` or the fallback, and
        is not held against the callee.

        `self_timed` says that `fn` enforces `timeout_s` itself and cancels its work at that
        point (a gRPC call given it as its deadline does, on both sides): the command then
        sets no timer of its own, which is most of its cost. Either way, a `ServiceError`
        TIMEOUT from `fn` counts as a timeout.
        """
        start = self._clock()
        circuit = self._circuit
        timeout = self._timeout_s
        if budget_s is not None:
            if budget_s <= 0:
                self._metrics.calls[TIMEOUT].inc()
                raise ServiceError(Reason.TIMEOUT, f"{self.name}: the caller's deadline has passed")
            if budget_s < timeout:
                timeout = budget_s
        trial = False
        if circuit.state != CLOSED:
            if not circuit.admit(start):
                return await self._short_circuit(start, fallback)
            trial = True
        if self._in_flight >= self._max_concurrent:
            # Hystrix counts a rejected trial as a failed one: the callee is still saturated.
            circuit.trial_in_flight = False
            self._record(REJECTED, start, trial)
            error = ServiceError(
                Reason.REJECTED, f"{self.name}: {self._max_concurrent} calls already in flight"
            )
            return await self._fall_back(error, fallback)

        self._in_flight += 1
        timer = None if self_timed else asyncio.timeout(timeout)
        raised: Exception | None = None
        try:
            if timer is None:
                result = await fn(timeout)
            else:
                async with timer:
                    result = await fn(timeout)
        except Exception as exc:
            raised = exc
        finally:
            # Also on cancellation from outside: the slot and the trial must not leak.
            self._in_flight -= 1
            if trial:
                circuit.trial_in_flight = False
        end = self._clock()
        self._metrics.latency.observe(end - start)

        # An `fn` that swallowed the cancellation still answered too late.
        timed_out = (timer is not None and timer.expired()) or (
            isinstance(raised, ServiceError) and raised.reason is Reason.TIMEOUT
        )
        if raised is None and not timed_out:
            self._record(SUCCESS, end, trial)
            return result
        if timed_out:
            error = ServiceError(
                Reason.TIMEOUT, f"{self.name} timed out after {timeout * 1000:.0f} ms"
            )
            error.__cause__ = raised
            self._record(TIMEOUT, end, trial)
            return await self._fall_back(error, fallback)
        assert raised is not None
        if isinstance(raised, ServiceError) and raised.reason is Reason.OVERLOADED:
            # Shed by the callee before any work: says nothing of its health, and settles
            # no trial (the next call is the trial).
            self._window.add(SHED, end)
            self._metrics.calls[SHED].inc()
            return await self._fall_back(raised, fallback)
        if not self._is_failure(raised):
            self._record(BUSINESS_ERROR, end, trial)
            raise raised
        self._record(FAILURE, end, trial)
        return await self._fall_back(raised, fallback)

    def _record(self, kind: int, now: float, trial: bool) -> None:
        self._window.add(kind, now)
        self._metrics.calls[kind].inc()
        if trial:
            # FAILURE, TIMEOUT and REJECTED are the kinds that count as errors.
            self._circuit.settle_trial(kind >= FAILURE, now)
        elif self._circuit.state == CLOSED:
            # Checked after successes too: expired buckets can raise the error % at any time.
            volume, errors = self._window.health()
            if volume >= self._volume_threshold and errors * 100 >= self._error_percent * volume:
                self._circuit.trip(now)

    async def _short_circuit(
        self, now: float, fallback: Callable[[BaseException], Awaitable[T]] | None
    ) -> T:
        self._window.add(SHORT_CIRCUITED, now)
        self._metrics.calls[SHORT_CIRCUITED].inc()
        error = ServiceError(
            Reason.CIRCUIT_OPEN,
            f"circuit of {self.name} is open",
            retry_after=self._circuit.retry_after(now),
        )
        return await self._fall_back(error, fallback)

    async def _fall_back(
        self, error: BaseException, fallback: Callable[[BaseException], Awaitable[T]] | None
    ) -> T:
        if fallback is None:
            if self.fallback is None:
                raise error
            fallback = self.fallback
        result: T = await fallback(error)
        self._window.add(FALLBACK, self._clock())
        self._metrics.calls[FALLBACK].inc()
        return result

    def snapshot(self) -> dict[str, Any]:
        counts = self._window.counts(self._clock())
        volume, errors = self._window.health()
        return {
            "state": self._circuit.state,
            "error_percent": round(100 * errors / volume, 1) if volume else 0.0,
            "volume": volume,
            "in_flight": self._in_flight,
            "counts": counts,
            "settings": self.settings.model_dump(),
        }
