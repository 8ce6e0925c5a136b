"""Client spans for the kit's own gRPC client, called on its hot path (not an interceptor).

grpc.aio client interceptors wrap every call in extra tasks and call objects; the kit's
client has its own chain of middleware, whose tracing link opens the span and sends the
returned metadata with the call:

    with client_span(tracing, "user", "Login", "/user.v1.UserService/Login", peer) as (span, md):
        annotate_breaker(span, command, breaker_state)
        await stub.Login(request, metadata=md, timeout=budget)

`peer` may be "" when the node is not known yet (a span around retries): `mark_peer`
names it once it is.
"""

from __future__ import annotations

from types import TracebackType

import grpc
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from shared.errors import REASON_METADATA_KEY, ServiceError
from shared.tracing.propagation import Metadata, outgoing_metadata
from shared.tracing.setup import Tracing
from shared.tracing.spans import ERROR_REASON, is_business_reason, record_error, unsampled_parent

STATUS_CODE = "rpc.grpc.status_code"
_MAX_CACHED = 4096

# (service, full_method, peer) -> (span name, attributes): the set is small (methods x
# nodes), and building the name and dict once keeps the per-call cost to a lookup.
_call_info: dict[tuple[str, str, str], tuple[str, Attributes]] = {}
_peers: dict[str, dict[str, str | int]] = {}


def client_span(
    tracing: Tracing, service: str, method: str, full_method: str, peer: str
) -> ClientSpan:
    """A context manager yielding `(span, metadata)` for one outgoing call.

    `service` is the registry name of the callee, `method` its short method name,
    `full_method` the gRPC path (`/package.Service/Method`), `peer` the node (`host:port`).
    Under an unsampled parent no span is created: the yielded span is the parent and the
    metadata carries its context with the sampled flag off.
    """
    if not tracing.enabled:
        return _DISABLED
    parent = trace.get_current_span()
    parent_context = parent.get_span_context()
    if unsampled_parent(parent_context, tracing.skip_unsampled):
        return ClientSpan(parent, outgoing_metadata(parent_context), record=False)
    key = (service, full_method, peer)
    info = _call_info.get(key)
    if info is None:
        info = _describe(service, method, full_method, peer)
    span = tracing.tracer.start_span(info[0], kind=SpanKind.CLIENT, attributes=info[1])
    return ClientSpan(span, outgoing_metadata(span.get_span_context()), record=True)


class ClientSpan:
    __slots__ = ("_metadata", "_record", "_span")

    def __init__(self, span: Span, metadata: Metadata, *, record: bool) -> None:
        self._span = span
        self._metadata = metadata
        self._record = record

    def __enter__(self) -> tuple[Span, Metadata]:
        return self._span, self._metadata

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._record:
            return
        span = self._span
        if exc is None:
            span.set_attribute(STATUS_CODE, 0)
        elif isinstance(exc, grpc.aio.AioRpcError):
            _record_rpc_error(span, exc)
        else:
            if isinstance(exc, ServiceError):
                span.set_attribute(STATUS_CODE, exc.grpc_code.value[0])
            record_error(span, exc)
        span.end()


_DISABLED = ClientSpan(INVALID_SPAN, (), record=False)


def mark_peer(span: Span, peer: str) -> None:
    """Name the node (`host:port`) that was called last."""
    if span.is_recording():
        attributes = _peers.get(peer)
        if attributes is None:
            attributes = _peer_attributes(peer)
            if len(_peers) >= _MAX_CACHED:
                _peers.clear()
            _peers[peer] = attributes
        span.set_attributes(attributes)


def annotate_breaker(span: Span, command: str, state: str) -> None:
    """Name the breaker command guarding the call and its state (`closed`, `open`, `half-open`)."""
    if span.is_recording():
        span.set_attributes({"breaker.command": command, "breaker.state": state})


def mark_short_circuited(span: Span, command: str) -> None:
    """The circuit was open: the call failed fast without reaching the callee."""
    _breaker_event(span, "breaker.short_circuited", command, "circuit open")


def mark_rejected(span: Span, command: str) -> None:
    """The command was at its concurrency limit: the call was rejected, not queued."""
    _breaker_event(span, "breaker.rejected", command, "rejected: too many concurrent calls")


def mark_timeout(span: Span, command: str, timeout_s: float) -> None:
    """The breaker's timeout cancelled the call."""
    _breaker_event(span, "breaker.timeout", command, f"timed out after {timeout_s:g}s")


def _breaker_event(span: Span, event: str, command: str, description: str) -> None:
    if span.is_recording():
        span.add_event(event, {"breaker.command": command})
        span.set_status(Status(StatusCode.ERROR, description))


def _record_rpc_error(span: Span, error: grpc.aio.AioRpcError) -> None:
    span.set_attribute(STATUS_CODE, error.code().value[0])
    reason = None
    for key, value in error.trailing_metadata() or ():
        if key == REASON_METADATA_KEY and isinstance(value, str):
            reason = value
    if reason is not None:
        span.set_attribute(ERROR_REASON, reason)
    if not is_business_reason(reason, error.code()):
        # The callee's traceback is in its own span; here the status line is enough.
        span.set_status(Status(StatusCode.ERROR, f"{error.code().name}: {error.details()}"))


def _describe(service: str, method: str, full_method: str, peer: str) -> tuple[str, Attributes]:
    name = full_method.lstrip("/")
    rpc_service, _, rpc_method = name.rpartition("/")
    attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.service": rpc_service,
        "rpc.method": rpc_method or method,
        "peer.service": service,
    }
    if peer:
        attributes.update(_peer_attributes(peer))
    if len(_call_info) >= _MAX_CACHED:
        _call_info.clear()
    info = _call_info[(service, full_method, peer)] = (name, attributes)
    return info


def _peer_attributes(peer: str) -> dict[str, str | int]:
    host, _, port = peer.rpartition(":")
    attributes: dict[str, str | int] = {"server.address": host.strip("[]") or peer}
    if port.isdigit():
        attributes["server.port"] = int(port)
    return attributes
