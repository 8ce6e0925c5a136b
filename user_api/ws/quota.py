"""How many sockets each user holds on this replica: one past the limit is refused."""

from __future__ import annotations

from collections import Counter


class SocketQuota:
    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._held: Counter[int] = Counter()

    def take(self, user_id: int) -> bool:
        """A socket for `user_id`, if the user holds fewer than `per_user`; else False."""
        if self._held[user_id] >= self.per_user:
            return False
        self._held[user_id] += 1
        return True

    def give_back(self, user_id: int) -> None:
        self._held[user_id] -= 1
        if self._held[user_id] <= 0:
            del self._held[user_id]  # a user without sockets costs no memory
