"""The tests' side of mTLS: a development CA per test, and channels with a chosen identity.

Service processes started by the tests run with mTLS on (`service_env`), their CA under
`tls_root(tmp_path)`; a test that calls a service directly shows a certificate from the
same CA, as the service it pretends to be (`channel_as`).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from shared.security.credentials import secure_channel
from shared.security.identity import Identity, operator_identity, service_identity
from shared.security.pki import ensure_identity
from shared.security.reload import ReloadingCertificate

TRUST_DOMAIN = "micro.local"


def tls_root(tmp_path: Path) -> Path:
    return tmp_path / "tls"


def certificate(root: Path, identity: Identity) -> ReloadingCertificate:
    return ReloadingCertificate(ensure_identity(root, identity))


def service_certificate(root: Path, name: str) -> ReloadingCertificate:
    return certificate(root, service_identity(TRUST_DOMAIN, name))


def operator_certificate(root: Path, name: str = "tester") -> ReloadingCertificate:
    return certificate(root, operator_identity(TRUST_DOMAIN, name))


def channel_as(root: Path, caller: str, address: str, service: str) -> grpc.aio.Channel:
    """A channel to `service` at `address`, calling as the service named `caller`."""
    return secure_channel(address, service, service_certificate(root, caller))
