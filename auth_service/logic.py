"""Access tokens: signed JWTs (HS256) with expiry and a unique id, and their revocation."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from auth_service.decoded import DecodedTokens
from auth_service.repository import RevocationStore
from shared.broker import Broker
from shared.broker.events import now_ms, publish_event
from shared.errors import Reason, ServiceError
from shared.proto.events.v1.events_pb2 import TokenRevoked

_ALGORITHM = "HS256"
_REQUIRED = ["exp", "iat", "jti", "sub", "iss"]


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
    ) -> None:
        self._secret = secret
        self._issuer = issuer
        self._ttl_s = ttl_s
        self._revoked = revoked
        self._events = events
        self._decoded = DecodedTokens()

    def make_token(self, user_id: int, user_name: str) -> IssuedToken:
        if user_id <= 0 or not user_name:
            raise ServiceError(Reason.INVALID_ARGUMENT, "user id and user name are required")
        now = int(time.time())
        claims = Claims(user_id, user_name, uuid.uuid4().hex, now, now + self._ttl_s)
        payload = {
            "sub": str(user_id),
            "name": user_name,
            "jti": claims.token_id,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
            "iss": self._issuer,
        }
        return IssuedToken(jwt.encode(payload, self._secret, algorithm=_ALGORITHM), claims)

    async def validate(self, token: str) -> Claims:
        claims = self._decoded.get(token)
        if claims is None:
            claims = self._decode(token)
            self._decoded.put(token, claims)
        if await self._revoked.is_revoked(claims.token_id):
            raise ServiceError(Reason.TOKEN_REVOKED, "token revoked")
        return claims

    async def revoke(self, token: str) -> Claims:
        claims = self._decode(token)
        await self._revoked.revoke(claims.token_id, claims.expires_at)
        if self._events is not None:
            revoked = TokenRevoked(
                token_id=claims.token_id, user_id=claims.user_id, occurred_at_ms=now_ms()
            )
            await publish_event(self._events, revoked)
        return claims

    def _decode(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                options={"require": _REQUIRED},
            )
            return Claims(
                user_id=int(payload["sub"]),
                user_name=str(payload.get("name", "")),
                token_id=str(payload["jti"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise ServiceError(Reason.TOKEN_EXPIRED, "token expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise ServiceError(Reason.TOKEN_INVALID, "invalid token") from None
