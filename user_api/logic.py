"""The API's use cases: log in, who am I, log out.

Login events go to the broker's outbox after the outcome is decided: the response never
waits for NATS, and a login never fails because NATS is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import grpc

from shared.broker import Broker
from shared.broker.events import now_ms, publish_event
from shared.errors import Reason, ServiceError
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn, UserLoginFailed
from shared.throttle import client_key
from user_api.throttling import LoginThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    address: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class UserView:
    id: int
    name: str


@dataclass(frozen=True)
class Session:
    token: str
    token_id: str
    expires_at: int
    user: UserView


@dataclass(frozen=True)
class AccessToken:
    token: str
    token_id: str
    expires_at: int


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    user_name: str
    token_id: str
    expires_at: int


class AccountDirectory(Protocol):
    """Users and tokens, kept by other services; repository.py calls them over gRPC."""

    async def verify_credentials(
        self, user_name: str, password: str, on_behalf_of: str = ""
    ) -> UserView:
        """`on_behalf_of`: the end client (`client_key`: its address, or its IPv6 /64), whose
        attempts queue together."""
        ...

    async def get_user(self, user_id: int) -> UserView: ...

    async def make_token(self, user: UserView) -> AccessToken: ...

    async def validate_token(self, token: str) -> TokenClaims: ...

    async def revoke_token(self, token: str) -> str:
        """Revoke `token`; returns its id."""
        ...


class AccountLogic:
    def __init__(
        self, accounts: AccountDirectory, events: Broker, throttle: LoginThrottle | None = None
    ) -> None:
        self._accounts = accounts
        self._events = events
        self._throttle = throttle

    async def login(self, user_name: str, password: str, caller: Caller) -> Session:
        client = client_key(caller.address)  # what throttles and queues count it under
        if self._throttle is None:
            return await self._login(user_name, password, caller, client)
        with self._throttle.running(client):  # before any work: a refusal costs nothing
            await self._throttle.admit(user_name, client)
            return await self._login(user_name, password, caller, client)

    async def _login(self, user_name: str, password: str, caller: Caller, client: str) -> Session:
        try:
            user = await self._accounts.verify_credentials(user_name, password, client)
        except ServiceError as error:
            if error.is_business:  # a failed attempt, not an outage: worth an event
                log.info("login failed (%s) from %s", error.reason, caller.address)
                failed = UserLoginFailed(
                    user_name=user_name,
                    reason=str(error.reason),
                    occurred_at_ms=now_ms(),
                    client_address=caller.address,
                )
                await publish_event(self._events, failed)
            raise
        if self._throttle is not None:
            await self._throttle.succeeded(user_name, client)
        issued = await self._accounts.make_token(user)
        logged_in = UserLoggedIn(
            user_id=user.id,
            user_name=user.name,
            occurred_at_ms=now_ms(),
            client_address=caller.address,
            user_agent=caller.user_agent,
        )
        await publish_event(self._events, logged_in)
        log.info("user %d logged in from %s", user.id, caller.address)
        return Session(issued.token, issued.token_id, issued.expires_at, user)

    async def me(self, token: str) -> UserView:
        claims = await self._accounts.validate_token(token)
        try:
            user = await self._accounts.get_user(claims.user_id)
        except ServiceError as error:
            if error.reason is Reason.NOT_FOUND:
                # The token outlived its user: it grants nothing any more.
                # auth_service's reason, by its name: what a client of the API already knows.
                raise ServiceError(
                    "TOKEN_INVALID", "invalid token", grpc_code=grpc.StatusCode.UNAUTHENTICATED
                ) from None
            raise
        return user

    async def logout(self, token: str) -> str:
        return await self._accounts.revoke_token(token)
