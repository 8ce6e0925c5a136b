"""Where a workload's certificate files are: the names cert-manager and SPIFFE helpers write.

Kept apart from `pki` (which issues certificates with `cryptography`) so that a service
whose certificate exists reads and reloads it without loading `cryptography` at all: its
x509 bindings are about 10 MB of a service's resident memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.security.identity import Identity

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
CA_FILE = "ca.crt"


@dataclass(frozen=True)
class CertificateFiles:
    """Where a workload's certificate chain, key and trusted CA bundle are."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def in_directory(cls, directory: Path) -> CertificateFiles:
        return cls(directory / CERT_FILE, directory / KEY_FILE, directory / CA_FILE)


def identity_directory(root: Path, identity: Identity) -> Path:
    """Where the development CA under `root` puts `identity`'s files."""
    return root / identity.kind / identity.name


def issued_files(root: Path, identity: Identity) -> CertificateFiles | None:
    """`identity`'s files if the development CA under `root` issued them, else None. The
    folder appears with all its files at once (`files.write_once`)."""
    directory = identity_directory(root, identity)
    return CertificateFiles.in_directory(directory) if directory.exists() else None
