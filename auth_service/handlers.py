"""gRPC handlers of AuthService: proto ⇄ domain, nothing else."""

from __future__ import annotations

from typing import Any

import grpc

from auth_service.logic import Claims, TokenLogic
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _to_proto(claims: Claims) -> auth_pb2.Claims:
    return auth_pb2.Claims(
        user_id=claims.user_id,
        user_name=claims.user_name,
        token_id=claims.token_id,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )


class AuthHandlers(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, logic: TokenLogic) -> None:
        self._logic = logic

    async def MakeAccessToken(
        self, request: auth_pb2.MakeAccessTokenRequest, context: Context
    ) -> auth_pb2.MakeAccessTokenResponse:
        issued = self._logic.make_token(request.user_id, request.user_name)
        return auth_pb2.MakeAccessTokenResponse(
            token=issued.token, token_id=issued.claims.token_id, expires_at=issued.claims.expires_at
        )

    async def ValidateToken(
        self, request: auth_pb2.ValidateTokenRequest, context: Context
    ) -> auth_pb2.ValidateTokenResponse:
        return auth_pb2.ValidateTokenResponse(
            claims=_to_proto(await self._logic.validate(request.token))
        )

    async def RevokeToken(
        self, request: auth_pb2.RevokeTokenRequest, context: Context
    ) -> auth_pb2.RevokeTokenResponse:
        claims = await self._logic.revoke(request.token)
        return auth_pb2.RevokeTokenResponse(token_id=claims.token_id)
