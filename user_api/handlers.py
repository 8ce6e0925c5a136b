"""HTTP routes: request ⇄ domain, nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException

from shared import jsonbody
from shared.errors import Reason, ServiceError
from shared.http_errors import validation_error
from user_api.logic import AccountLogic, Caller, Session, UserView
from user_api.openapi import (
    BEARER,
    LOGIN_BODY,
    LOGIN_RESPONSES,
    TOKEN_RESPONSES,
    LogoutOut,
    SessionOut,
    UserOut,
)

router = APIRouter()


class LoginForm(BaseModel):
    userName: str = Field(min_length=1, max_length=64)  # noqa: N815 - the seed's field names
    pwd: str = Field(min_length=1, max_length=1024)


# Async dependencies: FastAPI runs a sync one in anyio's thread pool, a thread hop per request.
async def _logic(request: Request) -> AccountLogic:
    logic: AccountLogic = request.app.state.logic
    return logic


Logic = Annotated[AccountLogic, Depends(_logic)]


async def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ServiceError(Reason.UNAUTHENTICATED, "missing bearer token")
    return token.strip()


Token = Annotated[str, Depends(bearer_token)]


async def _login_fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = jsonbody.loads(await request.body() or b"null")
        except jsonbody.JsonBodyError as error:
            raise ServiceError(Reason.INVALID_ARGUMENT, str(error)) from None
        if not isinstance(data, dict):
            raise ServiceError(Reason.INVALID_ARGUMENT, "body must be a JSON object")
        return data
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        form = await request.form()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    raise HTTPException(415, "send application/x-www-form-urlencoded or application/json")


def _user(user: UserView) -> dict[str, Any]:
    return {"id": user.id, "name": user.name}


def _session(session: Session) -> dict[str, Any]:
    return {
        "token": session.token,
        "token_type": "Bearer",
        "token_id": session.token_id,
        "expires_at": session.expires_at,
        "user": _user(session.user),
    }


@router.post(
    "/user/login",
    response_model=SessionOut,
    responses=LOGIN_RESPONSES,
    openapi_extra=LOGIN_BODY,
)
async def login(request: Request, logic: Logic) -> Any:
    try:
        form = LoginForm.model_validate(await _login_fields(request))
    except ValidationError as error:
        return validation_error(
            [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in error.errors()]
        )
    caller = Caller(
        address=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
    )
    return _session(await logic.login(form.userName, form.pwd, caller))


# The hottest route takes the Request and builds its response itself: the 200 model is
# documented, not enforced, and FastAPI's dependency solving and response encoding were
# 8 % of user_api's CPU under load here (py-spy).
@router.get(
    "/user/me",
    response_model=None,
    responses={200: {"model": UserOut}, **TOKEN_RESPONSES},
    openapi_extra={"security": BEARER},
)
async def me(request: Request) -> JSONResponse:
    logic = await _logic(request)
    return JSONResponse(_user(await logic.me(await bearer_token(request))))


@router.post(
    "/user/logout",
    response_model=LogoutOut,
    responses=TOKEN_RESPONSES,
    openapi_extra={"security": BEARER},
)
async def logout(token: Token, logic: Logic) -> dict[str, Any]:
    return {"revoked": True, "token_id": await logic.logout(token)}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, bool] = await request.app.state.readiness()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
