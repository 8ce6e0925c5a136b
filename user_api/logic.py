"""The API's use cases: log in, who am I, log out."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Reason, ServiceError
from user_api.repository import Accounts


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


class AccountLogic:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def login(self, user_name: str, password: str) -> Session:
        user = await self._accounts.verify_credentials(user_name, password)
        issued = await self._accounts.make_token(user)
        return Session(
            issued.token, issued.token_id, issued.expires_at, UserView(user.id, user.name)
        )

    async def me(self, token: str) -> UserView:
        claims = await self._accounts.validate_token(token)
        try:
            user = await self._accounts.get_user(claims.user_id)
        except ServiceError as error:
            if error.reason is Reason.NOT_FOUND:
                # The token outlived its user: it grants nothing any more.
                raise ServiceError(Reason.TOKEN_INVALID, "invalid token") from None
            raise
        return UserView(user.id, user.name)

    async def logout(self, token: str) -> str:
        return await self._accounts.revoke_token(token)
