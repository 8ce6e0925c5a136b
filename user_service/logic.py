"""User use cases: verify credentials, read and create users.

Argon2 runs in a worker thread (argon2-cffi releases the GIL), so a login costs the
event loop nothing; its 19 MiB of scratch memory go back to the OS once logins pause
(`shared.memory.IdleTrim`). An unknown user is verified against a dummy hash, so that its
answer takes as long as a wrong password's and says the same thing. A hash made with older
Argon2 costs is made again with the current ones at its user's next login, the one moment
the password is known: raising ARGON2_* upgrades every user who logs in.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.errors import Reason, ServiceError
from shared.memory import IdleTrim
from user_service.errors import INVALID_CREDENTIALS

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[\w.@-]{1,64}$")
_MAX_PASSWORD = 1024
# NIST SP 800-63B's floor for a password its user chose (length, no composition rules).
PASSWORD_MIN_LENGTH = 8


@dataclass(frozen=True)
class StoredUser:
    id: int
    name: str
    password_hash: str
    created_at: datetime
    last_login_at: datetime | None


class DuplicateUserError(Exception):
    """The name or the id is taken."""


class UserRepository(Protocol):
    """What the logic needs of its storage; repository.py implements it on SQL."""

    async def by_name(self, name: str) -> StoredUser | None: ...

    async def by_id(self, user_id: int) -> StoredUser | None: ...

    async def create(self, user_id: int | None, name: str, password_hash: str) -> StoredUser: ...

    async def record_login(
        self, event_id: str, user_id: int, at: datetime, client_address: str, user_agent: str
    ) -> bool:
        """Record a login once per event id; False when it was already recorded."""
        ...

    async def replace_hash(self, user_id: int, old: str, new: str) -> bool:
        """Store `new` as the user's hash if it is still `old`; False when it was not."""
        ...


@dataclass(frozen=True)
class User:
    id: int
    name: str
    created_at: datetime
    last_login_at: datetime | None = None


def _public(stored: StoredUser) -> User:
    return User(stored.id, stored.name, stored.created_at, stored.last_login_at)


class UserLogic:
    def __init__(
        self,
        users: UserRepository,
        hasher: PasswordHasher,
        hashing: IdleTrim | None = None,
        *,
        password_min_length: int = PASSWORD_MIN_LENGTH,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._hashing = hashing or IdleTrim()
        self._password_min_length = password_min_length
        self._dummy_hash: str | None = None

    async def prepare(self) -> None:
        """Make the dummy hash before serving. On the hashing threads, not the loop: an
        Argon2 hash made anywhere else would keep its 19 MiB in the heap until the first
        login (user_service idled at 115 MB instead of 97)."""
        await self._dummy()

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hashing.run(self._hasher.hash, "not a password")
        return self._dummy_hash

    async def verify_credentials(self, name: str, password: str) -> User:
        if not name or not password or len(password) > _MAX_PASSWORD:
            raise ServiceError(INVALID_CREDENTIALS, "invalid user name or password")
        stored = await self._users.by_name(name)
        matches = await self._hashing.run(
            self._verify, stored.password_hash if stored else await self._dummy(), password
        )
        if stored is None or not matches:
            raise ServiceError(INVALID_CREDENTIALS, "invalid user name or password")
        if self._hasher.check_needs_rehash(stored.password_hash):
            await self._rehash(stored, password)
        return _public(stored)

    async def _rehash(self, stored: StoredUser, password: str) -> None:
        new_hash = await self._hashing.run(self._hasher.hash, password)
        try:
            await self._users.replace_hash(stored.id, stored.password_hash, new_hash)
        except ServiceError as error:  # the login stands: the next one tries again
            log.warning("user %s keeps the older password hash for now: %s", stored.id, error)

    async def get_user(self, user_id: int, *, for_user: str | None = None) -> User:
        """`for_user`: the end user a front door asks for, who may read only themselves
        (refused before the read, so the answer says nothing of other ids)."""
        if for_user is not None and for_user != str(user_id):
            raise ServiceError(Reason.PERMISSION_DENIED, "a user may read only their own record")
        stored = await self._users.by_id(user_id)
        if stored is None:
            raise ServiceError(Reason.NOT_FOUND, f"no user {user_id}")
        return _public(stored)

    async def create_user(self, user_id: int | None, name: str, password: str) -> User:
        if not _NAME.match(name):
            raise ServiceError(Reason.INVALID_ARGUMENT, "name: 1 to 64 letters, digits or _ . @ -")
        if not self._password_min_length <= len(password) <= _MAX_PASSWORD:
            raise ServiceError(
                Reason.INVALID_ARGUMENT,
                f"password: {self._password_min_length} to {_MAX_PASSWORD} characters",
            )
        if user_id is not None and user_id <= 0:
            raise ServiceError(Reason.INVALID_ARGUMENT, "id: a positive number, or 0 to choose")
        password_hash = await self._hashing.run(self._hasher.hash, password)
        try:
            return _public(await self._users.create(user_id, name, password_hash))
        except DuplicateUserError:
            raise ServiceError(Reason.ALREADY_EXISTS, "that user name or id is taken") from None

    async def record_login(
        self, event_id: str, user_id: int, at: datetime, client_address: str, user_agent: str
    ) -> bool:
        """Apply a login event once; a redelivered event changes nothing."""
        return await self._users.record_login(event_id, user_id, at, client_address, user_agent)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
