"""One HTTP error renderer for the kit: every error becomes JSON with a reason code and a
proper status, never a traceback.

`install(app)` on a FastAPI app renders a `ServiceError` (its reason, message, HTTP
status, `Retry-After` when the caller may retry, `WWW-Authenticate` on 401), request
validation errors (422 with the fields at fault), Starlette's HTTP exceptions (404, 405,
415 …), a client that left before its body arrived (499, not logged) and anything
unexpected (logged here, 500-class INTERNAL to the caller).

`install(app, details=False)` (production) tells a public caller that a callee failed and
when to try again, not which method of which service failed, how busy it was or where its
nodes are: `without_details`. The call's span keeps the full message.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from shared.errors import Reason, ServiceError

log = logging.getLogger(__name__)

# Transient refusals: a client may try again shortly even when no delay was given.
_RETRY_SOON = (Reason.CIRCUIT_OPEN, Reason.REJECTED, Reason.OVERLOADED, Reason.UNAVAILABLE)
# A callee's failure as a public caller is told of it; the caller's own faults (business
# reasons, the service's or the kit's) keep their message, which is about the request.
_PUBLIC_MESSAGE: dict[str, str] = {
    Reason.UNAVAILABLE: "the service is unavailable; try again later",
    Reason.CIRCUIT_OPEN: "the service is unavailable; try again later",
    Reason.TIMEOUT: "the service did not answer in time",
    Reason.REJECTED: "the service is busy; try again shortly",
    Reason.OVERLOADED: "the service is busy; try again shortly",
    Reason.INTERNAL: "internal error",
}
_HTTP_REASON = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE"}


def without_details(error: ServiceError) -> ServiceError:
    """`error` with the kit's public message when a callee failed; as it is otherwise."""
    message = _PUBLIC_MESSAGE.get(error.reason)
    if message is None or message == error.message:
        return error
    return ServiceError(error.reason, message, retry_after=error.retry_after)


def error_response(
    error: ServiceError, *, fields: list[dict[str, str]] | None = None
) -> JSONResponse:
    """`error` as a JSON body, its HTTP status and the headers that go with it."""
    body = error.to_json()
    if fields:
        body["error"]["fields"] = fields
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    elif error.reason in _RETRY_SOON:
        headers["Retry-After"] = "1"
    if error.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=error.http_status, headers=headers)


def validation_error(problems: list[dict[str, str]]) -> JSONResponse:
    """INVALID_ARGUMENT with each `{"field", "message"}` at fault."""
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
    return error_response(ServiceError(Reason.INVALID_ARGUMENT, message), fields=problems)


def install(app: FastAPI, *, details: bool = True) -> None:
    """Render every error `app` raises as the kit's JSON error; with `details=False`, a
    callee's failure without its details (`without_details`)."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, error: ServiceError) -> JSONResponse:
        return error_response(error if details else without_details(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in item["loc"][1:]) or "body", "message": item["msg"]}
            for item in error.errors()
        ]
        return validation_error(problems)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        reason = _HTTP_REASON.get(error.status_code, "HTTP_ERROR")
        return JSONResponse(
            {"error": {"reason": reason, "message": error.detail}},
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, __: ClientDisconnect) -> Response:
        # The client left before its body arrived (or was cut by the read deadline,
        # shared/http_deadline.py): nobody to answer, and no fault of the service.
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
        return error_response(ServiceError(Reason.INTERNAL, "internal error"))
