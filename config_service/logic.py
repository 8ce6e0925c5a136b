"""Config use cases: read an app's configuration, follow its changes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from config_service.schemas import Schemas
from shared import jsonbody
from shared.errors import Reason, ServiceError

_APP = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Snapshot:
    app: str
    json: str
    version: int


class ConfigRepository(Protocol):
    """Where configurations live; repository.py keeps them in etcd."""

    async def get(self, app: str) -> Snapshot: ...

    async def put(self, app: str, content: str) -> Snapshot:
        """Store `content` as the app's whole configuration."""
        ...

    def watch(self, app: str) -> AsyncIterator[Snapshot]:
        """The current snapshot, then one per change."""
        ...


def _check(app: str) -> None:
    if not _APP.match(app):
        raise ServiceError(Reason.INVALID_ARGUMENT, "app: lower-case letters, digits, _ or -")


class ConfigLogic:
    def __init__(self, repository: ConfigRepository, schemas: Schemas | None = None) -> None:
        self._repository = repository
        self._schemas = schemas or Schemas({})

    async def get(self, app: str) -> Snapshot:
        _check(app)
        return await self._repository.get(app)

    def watch(self, app: str) -> AsyncIterator[Snapshot]:
        _check(app)
        return self._repository.watch(app)

    async def set(self, app: str, text: str) -> Snapshot:
        """Store `text` as the app's whole configuration once it passes the app's schema."""
        _check(app)
        try:
            document = jsonbody.loads(text.encode())
        except jsonbody.JsonBodyError as error:
            raise ServiceError(Reason.INVALID_ARGUMENT, str(error)) from None
        if not isinstance(document, dict):
            raise ServiceError(Reason.INVALID_ARGUMENT, "configuration must be a JSON object")
        self._schemas.check(app, document)
        return await self._repository.put(app, json.dumps(document, separators=(",", ":")))
