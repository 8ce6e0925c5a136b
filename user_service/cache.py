"""Recently read users, kept for at most `ttl_s`: GetUser without a database round trip.

Stale for at most `ttl_s` (1 s by default, USER_CACHE_TTL_S; 0 turns it off): this
replica's own writes (a login recorded, a user created) drop the entry at once; a write
made by another replica (login events go to one replica of the service) is seen when the
entry expires. Names and password hashes have no update path; the last login time is the
one field that can be up to `ttl_s` old. Logins read the database (by name), never this.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from user_service.logic import StoredUser


class UserCache:
    def __init__(self, ttl_s: float = 1.0, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[int, tuple[float, StoredUser]] = {}

    @property
    def enabled(self) -> bool:
        return self._ttl_s > 0

    def get(self, user_id: int) -> StoredUser | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            del self._entries[user_id]
            return None
        return entry[1]

    def put(self, user: StoredUser) -> None:
        if not self.enabled:
            return
        if len(self._entries) >= self._max_entries:
            # Oldest first (insertion order): entries live one TTL, so these are the stalest.
            for user_id in list(self._entries)[: self._max_entries // 10 or 1]:
                del self._entries[user_id]
        self._entries[user.id] = (time.monotonic() + self._ttl_s, user)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)
