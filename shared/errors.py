"""One error type for the whole kit, with a reason code that maps to gRPC and HTTP.

A handler raises `ServiceError(Reason.NOT_FOUND, "no user 42")`; the server turns it into a
gRPC status with the reason in the trailing metadata; the client turns that back into the
same `ServiceError`; an HTTP front turns it into an HTTP status with a JSON body. Reasons
that are *business* outcomes (the caller asked for something that cannot be) never count
as failures of the callee, so they never open a circuit and are never retried.

The kit's `Reason`s are the transport's. A service declares its own next to its code, as
kratos does with an open reason string per service::

    OUT_OF_STOCK = declare_reason("OUT_OF_STOCK", grpc.StatusCode.FAILED_PRECONDITION)
    raise ServiceError(OUT_OF_STOCK, "3 left")

The reason travels as a string (trailing metadata `x-error-reason`) beside the gRPC code,
so a caller that never imported the declaration still gets a `ServiceError` whose
`reason` is that string, and whose HTTP status and business nature follow from the code;
a declaration in the caller's process, when there is one, says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc

REASON_METADATA_KEY = "x-error-reason"
RETRY_AFTER_METADATA_KEY = "x-retry-after"


class Reason(StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    TIMEOUT = "TIMEOUT"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    REJECTED = "REJECTED"
    OVERLOADED = "OVERLOADED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    """What a reason means on each side: its gRPC code, HTTP status, and business nature."""

    grpc_code: grpc.StatusCode
    http_status: int
    business: bool


# The caller's own fault: says nothing of the callee's health.
BUSINESS_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)

# grpc-gateway's table, except that nothing is a 500: a failure of the callee is a 503
# (try again later), and a refused argument a 422, as FastAPI's own validation says.
_HTTP_OF_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def _spec_of_code(code: grpc.StatusCode) -> ReasonSpec:
    return ReasonSpec(code, _HTTP_OF_CODE.get(code, 503), code in BUSINESS_CODES)


def _transport(code: grpc.StatusCode, http_status: int | None = None) -> ReasonSpec:
    spec = _spec_of_code(code)
    return spec if http_status is None else ReasonSpec(code, http_status, spec.business)


_TRANSPORT: dict[str, ReasonSpec] = {
    Reason.INVALID_ARGUMENT: _transport(grpc.StatusCode.INVALID_ARGUMENT),
    Reason.UNAUTHENTICATED: _transport(grpc.StatusCode.UNAUTHENTICATED),
    Reason.PERMISSION_DENIED: _transport(grpc.StatusCode.PERMISSION_DENIED),
    Reason.NOT_FOUND: _transport(grpc.StatusCode.NOT_FOUND),
    Reason.ALREADY_EXISTS: _transport(grpc.StatusCode.ALREADY_EXISTS),
    Reason.FAILED_PRECONDITION: _transport(grpc.StatusCode.FAILED_PRECONDITION),
    Reason.UNAVAILABLE: _transport(grpc.StatusCode.UNAVAILABLE),
    Reason.TIMEOUT: _transport(grpc.StatusCode.DEADLINE_EXCEEDED),
    Reason.CIRCUIT_OPEN: _transport(grpc.StatusCode.UNAVAILABLE),
    # The callee is overloaded, not the caller too demanding: try again, elsewhere.
    Reason.REJECTED: _transport(grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
    # The callee shed the call before doing any work (shared.server.shedding): neither a
    # success nor a failure of the callee for a breaker; another node may take it.
    Reason.OVERLOADED: _transport(grpc.StatusCode.RESOURCE_EXHAUSTED, 503),
    Reason.INTERNAL: _transport(grpc.StatusCode.INTERNAL),
}

# The reason a bare gRPC status gets when the peer sent none (a proxy, a crash, a transport error).
_REASON_OF_CODE: dict[grpc.StatusCode, Reason] = {
    grpc.StatusCode.INVALID_ARGUMENT: Reason.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED: Reason.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND: Reason.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: Reason.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: Reason.FAILED_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE: Reason.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Reason.TIMEOUT,
    grpc.StatusCode.CANCELLED: Reason.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Reason.REJECTED,
    grpc.StatusCode.UNIMPLEMENTED: Reason.NOT_FOUND,
}

_DECLARED: dict[str, ReasonSpec] = {}
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")

# Kept for code that asks "is this reason a business one?" of a kit reason.
BUSINESS_REASONS = frozenset(name for name, spec in _TRANSPORT.items() if spec.business)


def declare_reason(
    name: str,
    grpc_code: grpc.StatusCode,
    *,
    http_status: int | None = None,
    business: bool | None = None,
) -> str:
    """Declare a service's own reason; returns `name`, to raise `ServiceError(name, ...)`.

    `http_status` and `business` default to what `grpc_code` implies. Declaring the same
    name again the same way is harmless (two services in one test process); differently,
    or over a kit reason, is a mistake and raises `ValueError`.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"a reason is UPPER_SNAKE_CASE, not {name!r}")
    if name in _TRANSPORT:
        raise ValueError(f"{name} is a reason of the kit: use Reason.{name}")
    implied = _spec_of_code(grpc_code)
    spec = ReasonSpec(
        grpc_code,
        implied.http_status if http_status is None else http_status,
        implied.business if business is None else business,
    )
    if _DECLARED.setdefault(name, spec) != spec:
        raise ValueError(f"reason {name} is already declared as {_DECLARED[name]}")
    return name


def reason_spec(reason: str, code: grpc.StatusCode | None = None) -> ReasonSpec | None:
    """How `reason` maps: the kit's or this process's declaration, else what `code` implies."""
    spec = _TRANSPORT.get(reason) or _DECLARED.get(reason)
    if spec is None and code is not None:
        spec = _spec_of_code(code)
    return spec


def is_business(reason: str | None, code: grpc.StatusCode | None = None) -> bool:
    spec = reason_spec(reason, code) if reason is not None else None
    return spec is not None and spec.business


class ServiceError(Exception):
    """An error with a reason code; `str()` is the message safe to show a caller.

    `reason` is a `Reason` for the kit's reasons (so `is` works), else the string.
    `grpc_code` is needed only for a reason nobody in this process declared (one that
    arrived from a peer): the code it came with.
    """

    def __init__(
        self,
        reason: str,
        message: str = "",
        *,
        retry_after: float | None = None,
        grpc_code: grpc.StatusCode | None = None,
    ) -> None:
        spec = reason_spec(reason, grpc_code)
        if spec is None:
            raise ValueError(f"undeclared reason {reason!r}: declare_reason() it, or give its code")
        super().__init__(message or reason.replace("_", " ").lower())
        self.reason: str = Reason(reason) if reason in _TRANSPORT else str(reason)
        self.message = str(self)
        self.retry_after = retry_after
        self._spec = spec

    @property
    def is_business(self) -> bool:
        """True for outcomes of the request itself, which say nothing of the callee's health."""
        return self._spec.business

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return self._spec.grpc_code

    @property
    def http_status(self) -> int:
        return self._spec.http_status

    def to_json(self) -> dict[str, Any]:
        return {"error": {"reason": str(self.reason), "message": self.message}}

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        metadata: tuple[tuple[str, str], ...] = ((REASON_METADATA_KEY, str(self.reason)),)
        if self.retry_after is not None:
            metadata += ((RETRY_AFTER_METADATA_KEY, f"{self.retry_after:g}"),)
        return metadata

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> ServiceError:
        """Rebuild the callee's error: its reason if it sent one, else one read from the code."""
        code = error.code()
        reason: str | None = None
        for key, value in error.trailing_metadata() or ():
            if key == REASON_METADATA_KEY and isinstance(value, str) and _NAME.fullmatch(value):
                reason = value
        if reason is None:
            reason = _REASON_OF_CODE.get(code, Reason.INTERNAL)
        return cls(reason, error.details() or "", grpc_code=code)
