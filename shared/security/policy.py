"""Who may call which method: read once from the `micro.v1.allowed_callers` method option,
checked on every call against the caller's certificate identity. Default deny.

Entries: a service name, "*" for any service of the trust domain, "operator" for any
operator, "gateway" for end users' calls that a front door relays (an HTTP→RPC gateway,
a WebSocket). A front marks each call it relays with the end user's id (`relay_metadata`):
such a call needs the front's own entry *and* "gateway", so that a method the front calls
for itself (minting a token, creating a user) stays out of an end user's reach whatever an
operator's allow-list names. The handler learns the user from `relayed_for(context)`, to
answer only what is theirs.

Health checks and server reflection are open to every identity of the trust domain
(services and operators: probes, `micro health`, `micro call`, the gateway), as they
reveal no data; production turns reflection off instead. They still need a valid
client certificate: the TLS handshake comes first.

`Policy.authorize(method, context)` is the check; the server chain runs it in its policy
link (`ChainInterceptor(..., policy=...)`, on every kind of call). With `enforce=False` a
call that would be denied is logged and let through, to roll a policy out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from shared.errors import Reason, ServiceError
from shared.metadata import metadata_value
from shared.proto.micro.v1 import policy_pb2
from shared.security.identity import Identity, caller_identity

log = logging.getLogger(__name__)

ANY_SERVICE = "*"
OPERATOR = "operator"
GATEWAY = "gateway"
ANY_IDENTITY = "**"  # internal: any service or operator
# The end user a front door relays a call for (metadata).
RELAYED_FOR_METADATA_KEY = "x-micro-relayed-for"
OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)

Context = grpc.aio.ServicerContext[Any, Any]


def declared_callers(service: ServiceDescriptor) -> dict[str, frozenset[str]]:
    """`/pkg.Service/Method` → the callers its `allowed_callers` option lists."""
    return {
        f"/{service.full_name}/{method.name}": frozenset(
            method.GetOptions().Extensions[policy_pb2.allowed_callers]
        )
        for method in service.methods
    }


def relay_metadata(user: int | str) -> tuple[tuple[str, str]]:
    """The metadata a front door adds to a call it relays for `user`."""
    return ((RELAYED_FOR_METADATA_KEY, str(user)),)


def relayed_for(context: Context) -> str | None:
    """The end user this call is relayed for, or None for a call the caller makes for itself.
    The policy has checked the caller (the front) before the handler reads it."""
    return metadata_value(context, RELAYED_FOR_METADATA_KEY)


def _allows(allowed: frozenset[str], identity: Identity) -> bool:
    if ANY_IDENTITY in allowed:
        return True
    if identity.is_operator:
        return OPERATOR in allowed
    return ANY_SERVICE in allowed or identity.name in allowed


class Policy:
    def __init__(
        self, rules: Mapping[str, frozenset[str]], *, trust_domain: str, enforce: bool = True
    ) -> None:
        self._rules = dict(rules)
        self.trust_domain = trust_domain
        self.enforce = enforce

    @classmethod
    def from_services(
        cls, services: Iterable[ServiceDescriptor], *, trust_domain: str, enforce: bool = True
    ) -> Policy:
        rules: dict[str, frozenset[str]] = {}
        for service in services:
            rules.update(declared_callers(service))
        return cls(rules, trust_domain=trust_domain, enforce=enforce)

    def declare(self, service: ServiceDescriptor) -> None:
        """Add the rules of `service`'s methods (a server declares each service it adds)."""
        self._rules.update(declared_callers(service))

    def allowed(self, method: str) -> frozenset[str]:
        """Who may call `method`; empty (no one) for a method that declares nobody."""
        rule = self._rules.get(method)
        if rule is not None:
            return rule
        if method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES:
            return frozenset({ANY_IDENTITY})
        return frozenset()

    def check(self, method: str, identity: Identity | None, *, relayed: bool = False) -> None:
        """Raise PERMISSION_DENIED unless `identity` may call `method` (for an end user, when
        `relayed`)."""
        allowed = self.allowed(method)
        who = identity.uri if identity is not None else "a caller without an identity"
        if identity is not None and _allows(allowed, identity):
            if not relayed or GATEWAY in allowed or ANY_IDENTITY in allowed:
                return
            who = f"end users through {who}"
        if not self.enforce:
            log.warning("policy would deny %s to %s (not enforced)", method, who)
            return
        log.warning("denied %s to %s", method, who)
        raise ServiceError(Reason.PERMISSION_DENIED, f"{method} is not open to {who}")

    def authorize(self, method: str, context: Context) -> Identity | None:
        """Check the caller of this RPC; its identity when allowed."""
        identity = caller_identity(context, self.trust_domain)
        self.check(method, identity, relayed=relayed_for(context) is not None)
        return identity
