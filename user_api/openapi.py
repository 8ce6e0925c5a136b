"""What the API declares about itself: bodies, responses with their models, the bearer scheme.

The login handler reads its body itself (form or JSON, bounded: user_api/handlers.py), so
its request body is declared here rather than inferred from a parameter.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LoginFields(BaseModel):
    userName: str = Field(min_length=1, max_length=64)  # noqa: N815 - the seed's field names
    pwd: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    id: int
    name: str


class SessionOut(BaseModel):
    token: str
    token_type: str = "Bearer"
    token_id: str
    expires_at: int
    user: UserOut


class LogoutOut(BaseModel):
    revoked: bool
    token_id: str


class ErrorDetail(BaseModel):
    reason: str = Field(description="machine-readable, e.g. INVALID_CREDENTIALS, TOKEN_EXPIRED")
    message: str
    fields: list[dict[str, str]] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: _error("a service behind the API is unavailable (Retry-After)"),
    504: _error("the request's time budget ran out"),
}
LOGIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("wrong user name or password"),
    413: _error("body over 64 KiB"),
    415: _error("neither form nor JSON"),
    422: _error("a field is missing or malformed, or the JSON is too deep or its numbers huge"),
    429: _error("too many attempts (Retry-After)"),
    **UNAVAILABLE,
}
TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("missing, invalid, expired or revoked token"),
    **UNAVAILABLE,
}
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

_LOGIN_SCHEMA = {"$ref": "#/components/schemas/LoginFields"}
LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _LOGIN_SCHEMA},
            "application/json": {"schema": _LOGIN_SCHEMA},
        },
    }
}


def describe(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add what routes cannot say themselves: the login body's schema, the bearer scheme."""
    components = openapi.setdefault("components", {})
    components.setdefault("schemas", {})["LoginFields"] = LoginFields.model_json_schema()
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    return openapi
