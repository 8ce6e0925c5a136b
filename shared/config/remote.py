"""Reading an app's configuration from config_service, once and then live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from shared import backoff
from shared.client import Client
from shared.errors import ServiceError
from shared.proto.config.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger(__name__)

CONFIG_SERVICE = "config_service"
_RETRY_S = 0.1
OnChange = Callable[[dict[str, Any]], Awaitable[None] | None]


def _decode(snapshot: config_pb2.ConfigSnapshot) -> dict[str, Any]:
    value = json.loads(snapshot.json or "{}")
    return value if isinstance(value, dict) else {}


async def fetch_config(client: Client, app: str, *, timeout: float) -> dict[str, Any] | None:
    """The app's configuration, or None when config_service cannot answer in time.

    Services start in any order, so config_service may register a moment after us.
    """
    give_up = time.monotonic() + timeout
    request = config_pb2.GetConfigRequest(app=app)
    while True:
        left = give_up - time.monotonic()
        try:
            return _decode(await client.call(CONFIG_SERVICE, "GetConfig", request, timeout=left))
        except ServiceError as error:
            if error.is_business or time.monotonic() + _RETRY_S >= give_up:
                log.warning(
                    "config_service unavailable (%s); using environment and defaults", error
                )
                return None
        await asyncio.sleep(_RETRY_S)


class ConfigWatcher:
    """Follows an app's configuration and calls `on_change` with each new version."""

    def __init__(self, client: Client, app: str, on_change: OnChange) -> None:
        self._stub = config_pb2_grpc.ConfigServiceStub(client.channel(CONFIG_SERVICE))
        self._client = client
        self._app = app
        self._on_change = on_change
        self._version = -1
        self._task: asyncio.Task[None] | None = None

    def start(self, known_version: int = -1) -> None:
        self._version = known_version
        self._task = asyncio.create_task(self._follow(), name=f"config-watch-{self._app}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        waits = backoff.delays(0.2, 5.0)
        while True:
            try:
                await self._client.selector.wait_ready(CONFIG_SERVICE, None)
                stream = self._stub.WatchConfig(config_pb2.WatchConfigRequest(app=self._app))
                async for snapshot in stream:
                    waits = backoff.delays(0.2, 5.0)
                    if snapshot.version != self._version:
                        self._version = snapshot.version
                        await self._apply(_decode(snapshot))
            except (grpc.RpcError, ServiceError, ValueError) as error:
                log.debug("config watch interrupted: %r", error)
            await asyncio.sleep(next(waits))

    async def _apply(self, config: dict[str, Any]) -> None:
        log.info("configuration of %s changed (version %d)", self._app, self._version)
        try:
            result = self._on_change(config)
            if result is not None:
                await result
        except Exception:
            log.exception("applying the new configuration failed; keeping the old one")
