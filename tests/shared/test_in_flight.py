"""The per-key cap on operations running at once."""

from __future__ import annotations

import contextlib

import pytest

from shared.in_flight import InFlight


def test_a_key_past_its_places_is_refused_at_once_and_others_are_not() -> None:
    cap = InFlight(2)
    with contextlib.ExitStack() as running:
        for _ in range(2):
            place = cap.try_hold("a")
            assert place is not None
            running.enter_context(place)
        assert cap.running("a") == 2

        assert cap.try_hold("a") is None  # refused at once, never queued
        other = cap.try_hold("b")
        assert other is not None
        with other:
            assert cap.running("b") == 1
    assert cap.running("a") == 0
    assert cap.try_hold("a") is not None  # its places are free again


def test_a_place_is_given_back_when_the_operation_fails_and_keys_are_forgotten() -> None:
    cap = InFlight(1)
    for key in (f"client-{n}" for n in range(1000)):
        place = cap.try_hold(key)
        assert place is not None
        with pytest.raises(RuntimeError), place:
            raise RuntimeError("the operation failed")
    assert len(cap) == 0  # a flood of distinct keys leaves nothing behind
    assert cap.try_hold("client-1") is not None


def test_a_place_never_entered_holds_nothing() -> None:
    cap = InFlight(1)
    assert cap.try_hold("a") is not None  # dropped without entering
    assert cap.running("a") == 0
    assert cap.try_hold("a") is not None


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(0)
