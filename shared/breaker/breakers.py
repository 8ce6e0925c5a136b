"""The process's breakers: one `Command` per `<service>.<method>`, made on first use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.breaker.command import Command, Fallback, IsFailure, default_is_failure
from shared.breaker.metrics import BreakerMetrics, default_metrics
from shared.breaker.settings import DEFAULT_KEY, BreakerSettings, resolve
from shared.breaker.shared_state import SharedState
from shared.breaker.storage import StorageFactory

logger = logging.getLogger(__name__)


class Breakers:
    """Settings are layered: `defaults` <- overrides["default"] <- overrides[command].

    Use from one event loop: the commands take no locks (asyncio makes each step between two
    awaits atomic), so they are not thread-safe.

    `metrics=None` uses one `BreakerMetrics` on prometheus_client's global registry, shared
    by every `Breakers` of the process (the gauges then show the last one made per command);
    pass your own to use another registry.
    With a `storage_factory` (Redis), the circuits are shared with the other replicas:
    each command's changes are written behind it, and every `sync_interval_s` a task reads
    the circuits another replica opened or closed (`shared.breaker.shared_state`). The
    factory is called on the event loop as a command is made, so it must not do I/O (the
    Redis one makes no connection). Make the commands on the event loop, and `close()` when
    done.
    """

    def __init__(
        self,
        defaults: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        storage_factory: StorageFactory | None = None,
        is_failure: IsFailure = default_is_failure,
        metrics: BreakerMetrics | None = None,
        sync_interval_s: float = 1.0,
    ) -> None:
        self._base = defaults or BreakerSettings()
        self._defaults = self._base
        self._overrides: dict[str, dict[str, Any]] = {}
        self._settings: dict[str, BreakerSettings] = {}
        self._commands: dict[str, Command] = {}
        self._clock = clock
        self._storage_factory = storage_factory
        self._is_failure = is_failure
        self._metrics = default_metrics() if metrics is None else metrics
        self._sync_interval_s = sync_interval_s
        self._worker: ThreadPoolExecutor | None = None
        self._following: asyncio.Task[None] | None = None

    def command(self, name: str) -> Command:
        command = self._commands.get(name)
        if command is None:
            command = self._commands[name] = Command(
                name,
                self.settings_for(name),
                clock=self._clock,
                shared=self._shared_state(name),
                is_failure=self._is_failure,
                metrics=self._metrics,
            )
        return command

    def _shared_state(self, name: str) -> SharedState | None:
        if self._storage_factory is None:
            return None
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="breaker-state")
        if self._following is None:
            self._following = asyncio.get_running_loop().create_task(
                self._follow_forever(), name="breaker-state"
            )
        return SharedState(name, self._storage_factory(name), self._worker)

    async def follow_shared(self) -> None:
        """Take every circuit state the other replicas changed; the task that the first
        shared command starts does this once per sync interval."""
        if self._storage_factory is not None:  # else no command has a shared state
            await asyncio.gather(*(c.follow_shared() for c in self._commands.values()))

    async def _follow_forever(self) -> None:
        while True:
            try:
                await self.follow_shared()
            except Exception:
                logger.exception("breakers: reading the shared circuit states failed")
            await asyncio.sleep(self._sync_interval_s)

    async def close(self) -> None:
        """Stop reading the shared states. What is still queued for the shared storage is
        written before the process exits (each write bounded by the storage's timeout)."""
        if self._following is not None:
            self._following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._following
            self._following = None
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    def set_fallback(self, name: str, fallback: Fallback | None) -> None:
        """Serve `await fallback(error)` instead of failing; `None` removes it."""
        self.command(name).fallback = fallback

    def settings_for(self, name: str) -> BreakerSettings:
        return self._settings.get(name, self._defaults)

    def update_settings(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace all overrides with `overrides` ({"default": {...}, "<command>": {...}}),
        as read whole from the config service: a command no longer named returns to the
        defaults. Validated as a whole first, so an invalid value changes nothing."""
        copied = {name: dict(values) for name, values in overrides.items()}
        defaults, per_command = resolve(self._base, copied)
        self._overrides, self._defaults, self._settings = copied, defaults, per_command
        for name, command in self._commands.items():
            command.apply_settings(per_command.get(name, defaults))

    def check_settings(self, overrides: Mapping[str, Mapping[str, Any]]) -> None:
        """Raise ValueError if `update_settings(overrides)` would; change nothing."""
        resolve(self._base, {name: dict(values) for name, values in overrides.items()})

    def configure(self, name: str = DEFAULT_KEY, **overrides: Any) -> None:
        """Change some settings of one command (or of "default"), keeping the other overrides."""
        merged = {key: dict(values) for key, values in self._overrides.items()}
        merged.setdefault(name, {}).update(overrides)
        self.update_settings(merged)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every command's state and counts, for GET /debug/breakers."""
        return {name: self._commands[name].snapshot() for name in sorted(self._commands)}
