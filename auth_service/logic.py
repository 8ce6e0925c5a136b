"""Access tokens: signed JWTs (HS256) with expiry and a unique id, and their revocation.

A token names its key in its header (`kid`): tokens signed with a key that is now only
accepted (JWT_ACCEPTED_SECRETS) stay valid while the signing key changes (README, "Rotating
the signing key"). A token without `kid` is checked against the signing key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from auth_service.decoded import DecodedTokens
from auth_service.errors import TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_REVOKED
from auth_service.keys import key_id
from shared.broker import Broker
from shared.broker.events import now_ms, publish_event
from shared.errors import Reason, ServiceError
from shared.imports import without_optional
from shared.proto.auth.v1.auth_events_pb2 import TokenRevoked

# PyJWT loads cryptography's bindings whenever they are installed (the development CA needs
# them), for RSA and EC keys: 11 MB of auth_service's memory for a signer that needs only
# hmac (HS256).
with without_optional("cryptography.hazmat"):
    import jwt

_ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "jti", "sub", "iss"]
_MAX_INT64 = 2**63 - 1


class RevocationStore(Protocol):
    """Revoked token ids; repository.py keeps them in etcd (or in memory for tests)."""

    async def revoke(self, token_id: str, expires_at: int) -> bool:
        """Record the revocation; False when the token was revoked already."""
        ...

    async def is_revoked(self, token_id: str) -> bool: ...


@dataclass(frozen=True)
class Claims:
    user_id: int
    user_name: str
    token_id: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True)
class IssuedToken:
    token: str
    claims: Claims


class TokenLogic:
    def __init__(
        self,
        secret: str,
        issuer: str,
        ttl_s: int,
        revoked: RevocationStore,
        events: Broker | None = None,
        clock: Callable[[], float] = time.time,
        *,
        accepted: Sequence[str] = (),
    ) -> None:
        """`secret` signs and validates; each of `accepted` only validates."""
        self._secret = secret
        self._kid = key_id(secret)
        self._keys = {key_id(key): key for key in (*accepted, secret)}
        self._clock = clock
        self._issuer = issuer
        self._ttl_s = ttl_s
        self._revoked = revoked
        self._events = events
        self._decoded = DecodedTokens(clock=self._clock)

    def make_token(self, user_id: int, user_name: str) -> IssuedToken:
        if user_id <= 0 or not user_name:
            raise ServiceError(Reason.INVALID_ARGUMENT, "user id and user name are required")
        now = int(self._clock())
        claims = Claims(user_id, user_name, uuid.uuid4().hex, now, now + self._ttl_s)
        payload = {
            "sub": str(user_id),
            "name": user_name,
            "jti": claims.token_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "iss": self._issuer,
        }
        token = jwt.encode(payload, self._secret, algorithm=_ALGORITHM, headers={"kid": self._kid})
        return IssuedToken(token, claims)

    async def validate(self, token: str) -> Claims:
        claims = self._decoded.get(token)
        if claims is None:
            claims = self._decode(token)
            self._decoded.put(token, claims)
        if await self._revoked.is_revoked(claims.token_id):
            raise ServiceError(TOKEN_REVOKED, "token revoked")
        return claims

    async def revoke(self, token: str) -> Claims:
        claims = self._decode(token)
        # Logging out twice is a success both times, but only the first is an event.
        newly = await self._revoked.revoke(claims.token_id, claims.expires_at)
        if newly and self._events is not None:
            revoked = TokenRevoked(
                token_id=claims.token_id, user_id=claims.user_id, occurred_at_ms=now_ms()
            )
            await publish_event(self._events, revoked)
        return claims

    def _decode(self, token: str) -> Claims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._secret if kid is None else self._keys.get(str(kid))
            if key is None:  # a key we do not hold (any longer)
                raise ServiceError(TOKEN_INVALID, "invalid token")
            payload = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                # Expiry is checked below against the injected clock, not the system's.
                options={"require": _REQUIRED, "verify_exp": False, "verify_iat": False},
            )
            claims = Claims(
                user_id=int(payload["sub"]),
                user_name=str(payload.get("name", "")),
                token_id=str(payload["jti"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
            )
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise ServiceError(TOKEN_INVALID, "invalid token") from None
        # A signed token can still carry any number; ids and times are int64 everywhere else.
        numbers = (claims.user_id, claims.issued_at, claims.expires_at)
        if claims.user_id <= 0 or not all(0 <= n <= _MAX_INT64 for n in numbers):
            raise ServiceError(TOKEN_INVALID, "invalid token")
        if claims.expires_at <= self._clock():
            raise ServiceError(TOKEN_EXPIRED, "token expired")
        return claims
