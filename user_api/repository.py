"""The API's data lives in other services: typed calls to user_service and auth_service."""

from __future__ import annotations

from shared.client import Client
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.proto.user.v1 import user_pb2, user_pb2_grpc

USER_SERVICE = "user_service"
AUTH_SERVICE = "auth_service"


class Accounts:
    def __init__(self, client: Client) -> None:
        self._users = user_pb2_grpc.UserServiceStub(client.channel(USER_SERVICE))
        self._auth = auth_pb2_grpc.AuthServiceStub(client.channel(AUTH_SERVICE))

    async def verify_credentials(self, user_name: str, password: str) -> user_pb2.User:
        request = user_pb2.VerifyCredentialsRequest(user_name=user_name, password=password)
        return (await self._users.VerifyCredentials(request)).user

    async def get_user(self, user_id: int) -> user_pb2.User:
        return (await self._users.GetUser(user_pb2.GetUserRequest(id=user_id))).user

    async def make_token(self, user: user_pb2.User) -> auth_pb2.MakeAccessTokenResponse:
        request = auth_pb2.MakeAccessTokenRequest(user_id=user.id, user_name=user.name)
        return await self._auth.MakeAccessToken(request)

    async def validate_token(self, token: str) -> auth_pb2.Claims:
        return (await self._auth.ValidateToken(auth_pb2.ValidateTokenRequest(token=token))).claims

    async def revoke_token(self, token: str) -> str:
        return (await self._auth.RevokeToken(auth_pb2.RevokeTokenRequest(token=token))).token_id
