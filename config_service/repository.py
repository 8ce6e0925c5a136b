"""Configuration per app, one JSON object per etcd key: `<prefix><app>`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aetcd

from config_service.logic import Snapshot
from shared.errors import Reason, ServiceError
from shared.registry import ETCD_ERRORS

log = logging.getLogger(__name__)


class EtcdConfigRepository:
    """`ConfigRepository` (see logic.py) in etcd."""

    def __init__(self, client: aetcd.Client, prefix: str, *, timeout_s: float = 3.0) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s

    async def get(self, app: str) -> Snapshot:
        try:
            async with asyncio.timeout(self._timeout_s):
                value = await self._client.get(self._key(app))
        except ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "configuration store unavailable") from error
        if value is None:
            return Snapshot(app, "{}", 0)
        return Snapshot(app, _valid_json(app, value.value), value.mod_revision)

    async def put(self, app: str, content: str) -> Snapshot:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.put(self._key(app), content.encode())
        except ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "configuration store unavailable") from error
        return await self.get(app)

    async def watch(self, app: str) -> AsyncIterator[Snapshot]:
        """The current snapshot, then one per change; raises UNAVAILABLE when etcd goes away."""
        current = await self.get(app)
        yield current
        try:
            watch = await self._client.watch(self._key(app), start_revision=current.version + 1)
            async for event in watch:
                if event.kind == aetcd.EventKind.DELETE:
                    yield Snapshot(app, "{}", event.kv.mod_revision)
                else:
                    yield Snapshot(app, _valid_json(app, event.kv.value), event.kv.mod_revision)
        except ETCD_ERRORS as error:
            raise ServiceError(Reason.UNAVAILABLE, "configuration store unavailable") from error

    async def seed(self, seed_dir: Path) -> None:
        """Store each seed file whose app has no configuration yet."""
        for path in await asyncio.to_thread(lambda: sorted(seed_dir.glob("*.json"))):
            raw = await asyncio.to_thread(path.read_text)
            content = json.dumps(json.loads(raw), separators=(",", ":"))
            key = self._key(path.stem)
            async with asyncio.timeout(self._timeout_s):
                created, _ = await self._client.transaction(
                    compare=[self._client.transactions.create(key) == 0],
                    success=[self._client.transactions.put(key, content.encode())],
                    failure=[],
                )
            if created:
                log.info("seeded configuration of %s from %s", path.stem, path.name)

    def _key(self, app: str) -> bytes:
        return f"{self._prefix}{app}".encode()


def _valid_json(app: str, raw: bytes) -> str:
    """The stored text when it is a JSON object; else "{}" and a warning, never a crash."""
    try:
        if isinstance(json.loads(raw), dict):
            return raw.decode()
    except ValueError:
        pass
    log.warning("configuration of %s is not a JSON object; serving {}", app)
    return "{}"
