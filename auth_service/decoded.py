"""Tokens already verified, with their claims: a repeated validation skips HS256 and JSON.

A token's claims cannot change (the signature covers them), so a token verified once needs
only its expiry checked again; revocation is checked on every validation as before. Only
tokens that verified are kept, at most `max_entries` of them, each until it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auth_service.logic import Claims


class DecodedTokens:
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._claims: dict[str, Claims] = {}

    def get(self, token: str) -> Claims | None:
        """The token's claims if it verified before and has not expired (None otherwise)."""
        claims = self._claims.get(token)
        if claims is not None and claims.expires_at <= self._clock():
            # Expired now: decoding again gives the caller the "expired" answer.
            del self._claims[token]
            return None
        return claims

    def put(self, token: str, claims: Claims) -> None:
        if len(self._claims) >= self._max_entries:
            for old in list(self._claims)[: self._max_entries // 10 or 1]:  # oldest first
                del self._claims[old]
        self._claims[token] = claims
