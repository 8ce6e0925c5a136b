"""Config use cases: read an app's configuration, follow its changes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

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

    def watch(self, app: str) -> AsyncIterator[Snapshot]:
        """The current snapshot, then one per change."""
        ...


def _check(app: str) -> None:
    if not _APP.match(app):
        raise ServiceError(Reason.INVALID_ARGUMENT, "app: lower-case letters, digits, _ or -")


class ConfigLogic:
    def __init__(self, repository: ConfigRepository) -> None:
        self._repository = repository

    async def get(self, app: str) -> Snapshot:
        _check(app)
        return await self._repository.get(app)

    def watch(self, app: str) -> AsyncIterator[Snapshot]:
        _check(app)
        return self._repository.watch(app)
