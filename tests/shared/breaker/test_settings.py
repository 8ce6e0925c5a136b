from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.breaker import BreakerSettings
from shared.breaker.settings import resolve


def test_defaults_are_hystrix_defaults() -> None:
    assert BreakerSettings().model_dump() == {
        "timeout_ms": 1000,
        "max_concurrent_requests": 100,
        "error_percent_threshold": 50,
        "request_volume_threshold": 20,
        "sleep_window_ms": 5000,
        "rolling_window_ms": 10000,
        "buckets": 10,
    }


@pytest.mark.parametrize(
    "values",
    [
        {"timeout_ms": 0},
        {"max_concurrent_requests": -1},
        {"error_percent_threshold": 0},
        {"error_percent_threshold": 101},
        {"request_volume_threshold": 0},
        {"sleep_window_ms": 0},
        {"buckets": 0},
        {"rolling_window_ms": 10000, "buckets": 3},
        {"timeout": 5},  # a typo is refused, not ignored
    ],
)
def test_invalid_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BreakerSettings(**values)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        BreakerSettings().timeout_ms = 5  # type: ignore[misc]


def test_layers_default_then_command() -> None:
    base = BreakerSettings(timeout_ms=2000)
    defaults, per_command = resolve(
        base, {"default": {"sleep_window_ms": 100}, "a.B": {"timeout_ms": 30}}
    )
    assert (defaults.timeout_ms, defaults.sleep_window_ms) == (2000, 100)
    assert (per_command["a.B"].timeout_ms, per_command["a.B"].sleep_window_ms) == (30, 100)
