"""Mutual TLS between real grpc.aio peers on 127.0.0.1, with certificates from the kit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import grpc
import pytest

from shared.security.credentials import secure_channel, server_credentials
from shared.security.identity import operator_identity, service_identity
from shared.security.layout import CertificateFiles
from shared.security.pki import ensure_authority, ensure_identity, issue, new_authority
from shared.security.reload import ReloadingCertificate
from tests.shared.security.support import ask, serving

pytestmark = pytest.mark.integration

DOMAIN = "micro.local"


def source(root: Path, kind: str, name: str) -> ReloadingCertificate:
    identity = (
        operator_identity(DOMAIN, name) if kind == "operator" else service_identity(DOMAIN, name)
    )
    return ReloadingCertificate(ensure_identity(root, identity), check_interval_s=0)


def test_certificates_are_created_once_private_and_reused(tmp_path: Path) -> None:
    first = ensure_identity(tmp_path, service_identity(DOMAIN, "user_api"))
    issued = first.cert.read_bytes()
    for path in (first.cert, first.key, first.ca, tmp_path / "ca" / "ca.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    again = ensure_identity(tmp_path, service_identity(DOMAIN, "user_api"))
    assert again.cert.read_bytes() == issued
    other = ensure_identity(tmp_path, service_identity(DOMAIN, "auth_service"))
    assert other.ca.read_bytes() == first.ca.read_bytes()  # one CA for the deployment


async def test_server_sees_the_callers_service_identity(tmp_path: Path) -> None:
    server = source(tmp_path, "service", "user_service")
    client = source(tmp_path, "service", "user_api")
    async with serving(server_credentials(server)) as address:
        who = await ask(secure_channel(address, "user_service", client))
    assert who == b"spiffe://micro.local/service/user_api"


async def test_operator_identity(tmp_path: Path) -> None:
    server = source(tmp_path, "service", "config_service")
    operator = source(tmp_path, "operator", "alice")
    async with serving(server_credentials(server)) as address:
        who = await ask(secure_channel(address, "config_service", operator))
    assert who == b"spiffe://micro.local/operator/alice"


async def test_a_client_without_a_certificate_fails_the_handshake(tmp_path: Path) -> None:
    server = source(tmp_path, "service", "user_service")
    ca_only = grpc.ssl_channel_credentials(root_certificates=server.current().ca)
    async with serving(server_credentials(server)) as address:
        channel = grpc.aio.secure_channel(
            address, ca_only, options=[("grpc.ssl_target_name_override", "user_service")]
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ask(channel, timeout=2)
        plain = grpc.aio.insecure_channel(address)
        with pytest.raises(grpc.aio.AioRpcError) as plain_failed:
            await ask(plain, timeout=2)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    assert plain_failed.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_fails_the_handshake(tmp_path: Path) -> None:
    server = source(tmp_path / "ours", "service", "user_service")
    stranger = source(tmp_path / "theirs", "service", "user_api")
    ours_ca = server.current().ca
    # The stranger even trusts our CA: only its own certificate is foreign.
    credentials = grpc.ssl_channel_credentials(
        ours_ca, stranger.current().key, stranger.current().cert
    )
    async with serving(server_credentials(server)) as address:
        channel = grpc.aio.secure_channel(
            address, credentials, options=[("grpc.ssl_target_name_override", "user_service")]
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ask(channel, timeout=2)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_client_refuses_a_server_with_another_name(tmp_path: Path) -> None:
    impostor = source(tmp_path, "service", "auth_service")
    client = source(tmp_path, "service", "user_api")
    async with serving(server_credentials(impostor)) as address:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ask(secure_channel(address, "user_service", client), timeout=2)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE


def _rotate(files: CertificateFiles, cert: bytes, key: bytes, ca: bytes) -> None:
    # Each file replaced atomically, the way a rotating agent writes them.
    for path, content in ((files.ca, ca), (files.key, key), (files.cert, cert)):
        draft = path.with_suffix(".new")
        draft.write_bytes(content)
        os.chmod(draft, 0o600)
        os.replace(draft, path)


async def test_a_certificate_rotated_on_disk_serves_new_connections(tmp_path: Path) -> None:
    server = source(tmp_path / "old", "service", "user_service")
    old_client = source(tmp_path / "old", "service", "user_api")
    new_client = source(tmp_path / "new", "service", "user_api")  # another CA
    async with serving(server_credentials(server)) as address:
        assert await ask(secure_channel(address, "user_service", old_client))
        with pytest.raises(grpc.aio.AioRpcError):
            await ask(secure_channel(address, "user_service", new_client), timeout=2)

        authority = ensure_authority(tmp_path / "new", DOMAIN)  # new_client's CA
        cert, key = issue(authority, service_identity(DOMAIN, "user_service"))
        _rotate(server.files, cert, key, authority.cert_pem)

        # Same process, same server: the next handshake uses the new pair and CA bundle.
        assert await ask(secure_channel(address, "user_service", new_client))
        with pytest.raises(grpc.aio.AioRpcError):
            await ask(secure_channel(address, "user_service", old_client), timeout=2)


def test_a_half_written_rotation_keeps_the_working_pair(tmp_path: Path) -> None:
    server = source(tmp_path, "service", "user_service")
    before = server.current()
    other = new_authority(DOMAIN)
    cert, _ = issue(other, service_identity(DOMAIN, "user_service"))
    server.files.cert.write_bytes(cert)  # the new certificate, the old key
    assert server.current() == before


def test_a_rotated_ca_bundle_that_is_not_pem_keeps_the_working_set(tmp_path: Path) -> None:
    server = source(tmp_path, "service", "user_service")
    before = server.current()
    server.files.ca.write_bytes(b"not a certificate")
    assert server.current() == before
