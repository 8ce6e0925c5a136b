"""Workload identities: SPIFFE IDs (`spiffe://<trust-domain>/<kind>/<name>`) and reading
the caller's identity from a grpc.aio server context.

A service is `service/<name>`; a person using the `micro` CLI is `operator/<name>`. The
identity is the certificate's URI SAN; the TLS handshake has already proved that the
peer holds the key and that the deployment's CA issued the certificate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

log = logging.getLogger(__name__)

SERVICE = "service"
OPERATOR = "operator"
_KINDS = (SERVICE, OPERATOR)
# TSI peer property names gRPC puts in the auth context of a TLS connection.
_URI_SANS = "x509_uri_subject_alternative_name"
_ALL_SANS = "x509_subject_alternative_name"


@dataclass(frozen=True)
class Identity:
    trust_domain: str
    kind: str  # SERVICE or OPERATOR
    name: str

    @property
    def uri(self) -> str:
        return f"spiffe://{self.trust_domain}/{self.kind}/{self.name}"

    @property
    def is_operator(self) -> bool:
        return self.kind == OPERATOR

    def __str__(self) -> str:
        return self.uri


def service_identity(trust_domain: str, name: str) -> Identity:
    return Identity(trust_domain, SERVICE, name)


def operator_identity(trust_domain: str, name: str) -> Identity:
    return Identity(trust_domain, OPERATOR, name)


def parse_spiffe_id(uri: str) -> Identity | None:
    """The identity in a `spiffe://td/kind/name` URI, or None for anything else."""
    if not uri.startswith("spiffe://"):
        return None
    trust_domain, _, path = uri[len("spiffe://") :].partition("/")
    kind, _, name = path.partition("/")
    if not trust_domain or kind not in _KINDS or not name or "/" in name:
        return None
    return Identity(trust_domain, kind, name)


def peer_identity(
    auth_context: Mapping[str, Iterable[bytes]], trust_domain: str | None = None
) -> Identity | None:
    """The one SPIFFE identity of a TLS peer (from `context.auth_context()`), or None.

    None when the connection is not TLS, the certificate has no SPIFFE URI SAN, it has
    several (ambiguous), or it belongs to another trust domain than `trust_domain`.
    """
    values = list(auth_context.get(_URI_SANS, ())) or list(auth_context.get(_ALL_SANS, ()))
    found = {parse_spiffe_id(value.decode(errors="replace")) for value in values}
    found.discard(None)
    if len(found) != 1:
        return None
    identity = found.pop()
    if identity is None or (trust_domain is not None and identity.trust_domain != trust_domain):
        return None
    return identity


def caller_identity(
    context: grpc.aio.ServicerContext[Any, Any], trust_domain: str | None = None
) -> Identity | None:
    """Who is calling: the identity in the client certificate of this RPC, or None."""
    return peer_identity(context.auth_context(), trust_domain)


def caller_service(
    context: grpc.aio.ServicerContext[Any, Any], trust_domain: str | None = None
) -> str | None:
    """The calling service's name; None for an operator or a peer without an identity."""
    identity = caller_identity(context, trust_domain)
    return identity.name if identity is not None and identity.kind == SERVICE else None
