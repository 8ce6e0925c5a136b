"""Per-command breaker settings, with Hystrix's names and defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

DEFAULT_KEY = "default"


class BreakerSettings(BaseModel):
    """What one command tolerates. Values are validated so that a typo in the config
    service is refused as a whole rather than half-applied (unknown keys are errors too)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_ms: PositiveInt = 1000
    max_concurrent_requests: PositiveInt = 100
    error_percent_threshold: int = Field(default=50, ge=1, le=100)
    request_volume_threshold: PositiveInt = 20
    sleep_window_ms: PositiveInt = 5000
    rolling_window_ms: PositiveInt = 10000
    buckets: PositiveInt = 10

    @model_validator(mode="after")
    def _window_divides_into_buckets(self) -> BreakerSettings:
        if self.rolling_window_ms % self.buckets:
            raise ValueError(
                f"rolling_window_ms ({self.rolling_window_ms}) must be divisible "
                f"by buckets ({self.buckets})"
            )
        return self

    def merged(self, overrides: Mapping[str, Any]) -> BreakerSettings:
        """These settings with `overrides` on top, validated as a whole."""
        if not overrides:
            return self
        return BreakerSettings.model_validate({**self.model_dump(), **overrides})


def resolve(
    base: BreakerSettings, overrides: Mapping[str, Mapping[str, Any]]
) -> tuple[BreakerSettings, dict[str, BreakerSettings]]:
    """Layer base <- overrides["default"] <- overrides[command]; returns the defaults and
    the settings of each named command. Raises before anything is applied if one is invalid."""
    defaults = base.merged(overrides.get(DEFAULT_KEY, {}))
    per_command = {
        name: defaults.merged(values) for name, values in overrides.items() if name != DEFAULT_KEY
    }
    return defaults, per_command
