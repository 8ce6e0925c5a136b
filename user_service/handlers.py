"""gRPC handlers of UserService: proto ⇄ domain, nothing else."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import grpc

from shared.broker import Event
from shared.broker.events import decode
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn
from shared.security.policy import relayed_for
from user_service.logic import User, UserLogic

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


def _to_proto(user: User) -> user_pb2.User:
    return user_pb2.User(
        id=user.id,
        name=user.name,
        created_at_ms=int(user.created_at.timestamp() * 1000),
        last_login_at_ms=int(user.last_login_at.timestamp() * 1000) if user.last_login_at else 0,
    )


class UserHandlers(user_pb2_grpc.UserServiceServicer):
    def __init__(self, logic: UserLogic) -> None:
        self._logic = logic

    async def VerifyCredentials(
        self, request: user_pb2.VerifyCredentialsRequest, context: Context
    ) -> user_pb2.VerifyCredentialsResponse:
        user = await self._logic.verify_credentials(request.user_name, request.password)
        return user_pb2.VerifyCredentialsResponse(user=_to_proto(user))

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        user = await self._logic.get_user(request.id, for_user=relayed_for(context))
        return user_pb2.GetUserResponse(user=_to_proto(user))

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        user = await self._logic.create_user(request.id or None, request.name, request.password)
        return user_pb2.CreateUserResponse(user=_to_proto(user))


class LoginEvents:
    """Consumes `user.logged_in`: the login history and each user's last login time."""

    def __init__(self, logic: UserLogic) -> None:
        self._logic = logic

    async def on_logged_in(self, event: Event) -> None:
        login = decode(event, UserLoggedIn)
        applied = await self._logic.record_login(
            event.event_id,
            login.user_id,
            datetime.fromtimestamp(login.occurred_at_ms / 1000, UTC),
            login.client_address,
            login.user_agent,
        )
        if not applied:
            log.info("login event %s was applied before; ignored", event.event_id)
