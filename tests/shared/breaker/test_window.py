from __future__ import annotations

from shared.breaker.window import FAILURE, SHORT_CIRCUITED, SUCCESS, TIMEOUT, RollingWindow


def test_counts_and_health() -> None:
    window = RollingWindow(10, 10)
    for kind in (SUCCESS, SUCCESS, FAILURE, TIMEOUT, SHORT_CIRCUITED):
        window.add(kind, 0.5)
    assert window.health() == (4, 2)
    assert window.counts(0.5)["short_circuited"] == 1


def test_buckets_fall_out_one_by_one() -> None:
    window = RollingWindow(10, 10)
    window.add(FAILURE, 0.0)
    window.add(FAILURE, 3.2)
    window.add(SUCCESS, 9.9)
    assert window.health() == (3, 2)
    window.advance(10.0)  # the bucket [0, 1) is out
    assert window.health() == (2, 1)
    window.advance(12.99)
    assert window.health() == (2, 1)
    window.advance(13.0)  # now [3, 4) is out: the window is buckets [4, 14)
    assert window.health() == (1, 0)


def test_a_gap_longer_than_the_window_clears_everything() -> None:
    window = RollingWindow(10, 10)
    for second in range(10):
        window.add(FAILURE, float(second))
    window.add(SUCCESS, 1000.0)
    assert window.health() == (1, 0)


def test_a_clock_stepping_back_fills_the_current_bucket() -> None:
    window = RollingWindow(10, 10)
    window.add(FAILURE, 5.0)
    window.add(FAILURE, 4.0)
    assert window.health() == (2, 2)
    window.advance(14.99)
    assert window.health() == (2, 2)
    window.advance(15.0)
    assert window.health() == (0, 0)


def test_reset() -> None:
    window = RollingWindow(1, 4)
    window.add(FAILURE, 0.1)
    window.reset()
    assert window.counts(0.1) == dict.fromkeys(window.counts(0.1), 0)
