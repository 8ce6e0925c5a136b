"""The API's data lives in other services: typed calls to user_service and auth_service.

`AccountsClient` is the edge where protobuf stops: it returns the logic's domain types
(logic.py), so that the use cases never see a generated message.
"""

from __future__ import annotations

from shared.client import Client
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.server import FAIRNESS_METADATA_KEY
from user_api.logic import AccessToken, TokenClaims, UserView

USER_SERVICE = "user_service"
AUTH_SERVICE = "auth_service"


def _user(user: user_pb2.User) -> UserView:
    return UserView(user.id, user.name)


class AccountsClient:
    """`AccountDirectory` (see logic.py) over gRPC, through the kit's client."""

    def __init__(self, client: Client) -> None:
        self._users = user_pb2_grpc.UserServiceStub(client.channel(USER_SERVICE))
        self._auth = auth_pb2_grpc.AuthServiceStub(client.channel(AUTH_SERVICE))

    async def verify_credentials(
        self, user_name: str, password: str, on_behalf_of: str = ""
    ) -> UserView:
        request = user_pb2.VerifyCredentialsRequest(user_name=user_name, password=password)
        # user_service queues Argon2 work per end client: a flood waits behind itself.
        metadata = ((FAIRNESS_METADATA_KEY, on_behalf_of),) if on_behalf_of else None
        return _user((await self._users.VerifyCredentials(request, metadata=metadata)).user)

    async def get_user(self, user_id: int) -> UserView:
        return _user((await self._users.GetUser(user_pb2.GetUserRequest(id=user_id))).user)

    async def make_token(self, user: UserView) -> AccessToken:
        request = auth_pb2.MakeAccessTokenRequest(user_id=user.id, user_name=user.name)
        reply = await self._auth.MakeAccessToken(request)
        return AccessToken(reply.token, reply.token_id, reply.expires_at)

    async def validate_token(self, token: str) -> TokenClaims:
        request = auth_pb2.ValidateTokenRequest(token=token)
        claims = (await self._auth.ValidateToken(request)).claims
        return TokenClaims(claims.user_id, claims.user_name, claims.token_id, claims.expires_at)

    async def revoke_token(self, token: str) -> str:
        return (await self._auth.RevokeToken(auth_pb2.RevokeTokenRequest(token=token))).token_id
