"""Hystrix's rolling window: counts per outcome in time buckets that fall out as time passes."""

from __future__ import annotations

from typing import Final

# Outcome kinds are plain ints, not an Enum: they index lists on the hot path.
SUCCESS: Final = 0
BUSINESS_ERROR: Final = 1
FAILURE: Final = 2
TIMEOUT: Final = 3
REJECTED: Final = 4
SHORT_CIRCUITED: Final = 5
FALLBACK: Final = 6
# The callee shed the call unstarted (OVERLOADED): neither a success nor a failure.
SHED: Final = 7
OUTCOMES: Final = (
    "success",
    "business_error",
    "failure",
    "timeout",
    "rejected",
    "short_circuited",
    "fallback",
    "shed",
)
_KINDS: Final = len(OUTCOMES)


class RollingWindow:
    """`buckets` buckets of `window_s / buckets` seconds each, in one flat ring of counters.

    `totals` is kept equal to the sum of the live buckets (added on record, subtracted when a
    bucket is recycled), so reading the window is O(1) and rotating is O(1) amortised: each
    bucket is cleared at most once per bucket period, and a gap longer than the window clears
    the whole ring at once.
    """

    __slots__ = ("_buckets", "_current", "_per_s", "_ring", "totals")

    def __init__(self, window_s: float, buckets: int) -> None:
        self._buckets = buckets
        self._per_s = buckets / window_s
        self._ring = [0] * (buckets * _KINDS)
        self.totals = [0] * _KINDS
        self._current = 0

    def add(self, kind: int, now: float) -> None:
        index = int(now * self._per_s)
        if index != self._current:
            self.advance_to(index)
        self._ring[(self._current % self._buckets) * _KINDS + kind] += 1
        self.totals[kind] += 1

    def advance(self, now: float) -> None:
        """Drop the buckets that are older than the window at `now`."""
        index = int(now * self._per_s)
        if index != self._current:
            self.advance_to(index)

    def advance_to(self, index: int) -> None:
        steps = index - self._current
        if steps <= 0:
            # A clock that steps back (only a fake one can) keeps filling the current bucket.
            return
        if steps >= self._buckets:
            self.reset()
        else:
            ring, totals, buckets = self._ring, self.totals, self._buckets
            for bucket in range(self._current + 1, index + 1):
                start = (bucket % buckets) * _KINDS
                for kind in range(_KINDS):
                    count = ring[start + kind]
                    if count:
                        totals[kind] -= count
                        ring[start + kind] = 0
        self._current = index

    def reset(self) -> None:
        self._ring = [0] * (self._buckets * _KINDS)
        self.totals = [0] * _KINDS

    def health(self) -> tuple[int, int]:
        """(volume, errors) over the live buckets; short-circuits, sheds and fallbacks are
        not calls the callee worked on, so they are in neither."""
        t = self.totals
        errors = t[FAILURE] + t[TIMEOUT] + t[REJECTED]
        return errors + t[SUCCESS] + t[BUSINESS_ERROR], errors

    def counts(self, now: float) -> dict[str, int]:
        self.advance(now)
        return dict(zip(OUTCOMES, self.totals, strict=True))
