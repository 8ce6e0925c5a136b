"""A development CA and the certificates it issues, with `cryptography`.

`make run` needs no set-up step: the first process that wants an identity creates the
CA under the TLS folder, then its own certificate, each once (see `files.write_once`);
later starts reuse them. A certificate carries the SPIFFE ID as its URI SAN and the bare
name as a DNS SAN: gRPC Python cannot check URI SANs, so clients verify a server by the
DNS name (`grpc.ssl_target_name_override`), and servers read the URI SAN of the caller.

Layout (the file names cert-manager and SPIFFE helpers write):
    <root>/ca/ca.crt, ca.key                  the CA (its key stays here)
    <root>/<kind>/<name>/tls.crt, tls.key, ca.crt
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.security.files import write_once
from shared.security.identity import Identity
from shared.security.layout import (
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
    CertificateFiles,
    identity_directory,
    issued_files,
)

CA_DAYS = 3650
LEAF_DAYS = 365
CA_KEY_FILE = "ca.key"


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(trust_domain: str, *, days: int = CA_DAYS) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{trust_domain} development CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(
    authority: Authority, identity: Identity, *, days: int = LEAF_DAYS
) -> tuple[bytes, bytes]:
    """A certificate and key for `identity`, as PEM: usable as TLS server and client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(identity.uri),
                    x509.DNSName(identity.name),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def ensure_authority(root: Path, trust_domain: str) -> Authority:
    """The development CA under `root/ca`, created on first use."""
    directory = root / "ca"
    if not directory.exists():
        fresh = new_authority(trust_domain)
        write_once(directory, {CA_FILE: fresh.cert_pem, CA_KEY_FILE: _key_pem(fresh.key)})
    cert = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
    key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{directory / CA_KEY_FILE} is not an EC private key")
    return Authority(cert, key)


def ensure_identity(root: Path, identity: Identity) -> CertificateFiles:
    """`identity`'s certificate files under `root`, issued by the development CA once."""
    if (issued := issued_files(root, identity)) is not None:
        return issued
    directory = identity_directory(root, identity)
    authority = ensure_authority(root, identity.trust_domain)
    cert, key = issue(authority, identity)
    write_once(directory, {CERT_FILE: cert, KEY_FILE: key, CA_FILE: authority.cert_pem})
    return CertificateFiles.in_directory(directory)
