"""What the client resolves once per (service, method), so that a call only looks it up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from shared.breaker import Command
from shared.client.endpoint import Endpoint
from shared.errors import REASON_METADATA_KEY

if TYPE_CHECKING:
    from shared.client.call import Call, Handler

MultiCallable = grpc.aio.UnaryUnaryMultiCallable[Any, Any]


@dataclass(slots=True, eq=False)
class Route:
    service: str
    endpoint: Endpoint
    command: Command
    # One per node address, on that node's channel.
    callables: dict[str, MultiCallable] = field(default_factory=dict)
    # The client's chain of middleware for this route, composed once (`shared.client.chain`).
    handler: Handler = field(default=lambda call: _not_composed(call))

    def bind(self, channel: grpc.aio.Channel) -> MultiCallable:
        return channel.unary_unary(
            self.endpoint.path,
            request_serializer=self.endpoint.serialize,
            response_deserializer=self.endpoint.deserialize,
            # As generated stubs do: core then skips per-call method look-ups.
            _registered_method=True,  # type: ignore[call-arg]
        )


def _not_composed(call: Call) -> Any:
    raise RuntimeError(f"the route {call.route.endpoint.path} has no chain: use Client.route")


def node_failed(error: grpc.aio.AioRpcError) -> bool:
    """The node could not be reached, or did not answer within the deadline (Envoy's
    "gateway failures"): a bare UNAVAILABLE or DEADLINE_EXCEEDED, not a status the node
    chose (which carries its reason: its own dependency timed out, say)."""
    code = error.code()
    if code is not grpc.StatusCode.UNAVAILABLE and code is not grpc.StatusCode.DEADLINE_EXCEEDED:
        return False
    return not any(key == REASON_METADATA_KEY for key, _ in error.trailing_metadata() or ())
