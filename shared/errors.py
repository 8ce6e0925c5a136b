"""One error type for the whole kit, with a reason code that maps to gRPC and HTTP.

A handler raises `ServiceError(Reason.NOT_FOUND, "no user 42")`; the server turns it into a
gRPC status with the reason in the trailing metadata; the client turns that back into the
same `ServiceError`; user_api turns it into an HTTP status with a JSON body. Reasons that
are *business* outcomes (the caller asked for something that cannot be) never count as
failures of the callee, so they never open a circuit and are never retried.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import grpc

REASON_METADATA_KEY = "x-error-reason"
RETRY_AFTER_METADATA_KEY = "x-retry-after"


class Reason(StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    UNAVAILABLE = "UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    REJECTED = "REJECTED"
    INTERNAL = "INTERNAL"


_GRPC_CODE: dict[Reason, grpc.StatusCode] = {
    Reason.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.INVALID_CREDENTIALS: grpc.StatusCode.UNAUTHENTICATED,
    Reason.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.TOKEN_INVALID: grpc.StatusCode.UNAUTHENTICATED,
    Reason.TOKEN_EXPIRED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.TOKEN_REVOKED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Reason.CIRCUIT_OPEN: grpc.StatusCode.UNAVAILABLE,
    Reason.REJECTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.INTERNAL: grpc.StatusCode.INTERNAL,
}

_HTTP_STATUS: dict[Reason, int] = {
    Reason.INVALID_ARGUMENT: 422,
    Reason.INVALID_CREDENTIALS: 401,
    Reason.UNAUTHENTICATED: 401,
    Reason.TOKEN_INVALID: 401,
    Reason.TOKEN_EXPIRED: 401,
    Reason.TOKEN_REVOKED: 401,
    Reason.PERMISSION_DENIED: 403,
    Reason.NOT_FOUND: 404,
    Reason.ALREADY_EXISTS: 409,
    Reason.UNAVAILABLE: 503,
    Reason.TIMEOUT: 504,
    Reason.CIRCUIT_OPEN: 503,
    Reason.REJECTED: 503,
    Reason.INTERNAL: 503,
}

# The reason a bare gRPC status gets when the peer sent none (a proxy, a crash, a transport error).
_REASON_OF_CODE: dict[grpc.StatusCode, Reason] = {
    grpc.StatusCode.INVALID_ARGUMENT: Reason.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED: Reason.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND: Reason.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: Reason.ALREADY_EXISTS,
    grpc.StatusCode.UNAVAILABLE: Reason.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Reason.TIMEOUT,
    grpc.StatusCode.CANCELLED: Reason.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Reason.REJECTED,
    grpc.StatusCode.UNIMPLEMENTED: Reason.NOT_FOUND,
}

BUSINESS_REASONS = frozenset(
    {
        Reason.INVALID_ARGUMENT,
        Reason.INVALID_CREDENTIALS,
        Reason.UNAUTHENTICATED,
        Reason.TOKEN_INVALID,
        Reason.TOKEN_EXPIRED,
        Reason.TOKEN_REVOKED,
        Reason.PERMISSION_DENIED,
        Reason.NOT_FOUND,
        Reason.ALREADY_EXISTS,
    }
)


class ServiceError(Exception):
    """An error with a reason code; `str()` is the message safe to show a caller."""

    def __init__(
        self, reason: Reason, message: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(message or reason.value.replace("_", " ").lower())
        self.reason = reason
        self.message = str(self)
        self.retry_after = retry_after

    @property
    def is_business(self) -> bool:
        """True for outcomes of the request itself, which say nothing of the callee's health."""
        return self.reason in BUSINESS_REASONS

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return _GRPC_CODE[self.reason]

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self.reason]

    def to_json(self) -> dict[str, Any]:
        return {"error": {"reason": self.reason.value, "message": self.message}}

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        metadata: tuple[tuple[str, str], ...] = ((REASON_METADATA_KEY, self.reason.value),)
        if self.retry_after is not None:
            metadata += ((RETRY_AFTER_METADATA_KEY, f"{self.retry_after:g}"),)
        return metadata

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> ServiceError:
        """Rebuild the callee's error: its reason if it sent one, else one read from the code."""
        reason: Reason | None = None
        for key, value in error.trailing_metadata() or ():
            if (
                key == REASON_METADATA_KEY
                and isinstance(value, str)
                and value in Reason.__members__
            ):
                reason = Reason(value)
        if reason is None:
            reason = _REASON_OF_CODE.get(error.code(), Reason.INTERNAL)
        return cls(reason, error.details() or "")
