"""Certificate files that may be rotated on disk (cert-manager, a SPIFFE helper).

`current()` looks at the files' inode, size and modification time at most once per
`check_interval_s` and re-reads them when any changed; a new pair is taken only once
the key matches the certificate, so a rotation caught half-written keeps the old pair
until the next look. Reading three small files happens only after a change, and at most
once per interval: cheap enough for the event loop and for gRPC's handshake thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.security.pki import CertificateFiles

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Material:
    """One consistent set, PEM: the certificate chain, its key, the trusted CA bundle."""

    cert: bytes
    key: bytes
    ca: bytes


def load_material(files: CertificateFiles) -> Material:
    """Read and check the files; ValueError when the key does not match the certificate."""
    material = Material(files.cert.read_bytes(), files.key.read_bytes(), files.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(material.cert)
    key = serialization.load_pem_private_key(material.key, None)
    x509.load_pem_x509_certificates(material.ca)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if cert.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(
        encoding, public
    ):
        raise ValueError(f"{files.key} does not match {files.cert}")
    return material


class ReloadingCertificate:
    """The newest valid material of `files`; `version` grows by one per reload."""

    def __init__(
        self,
        files: CertificateFiles,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = files
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()  # gRPC's handshake thread and the event loop both ask
        self._stamp = self._read_stamp()
        self._material = load_material(files)
        self._checked = clock()
        self.version = 1

    def current(self) -> Material:
        now = self._clock()
        if now - self._checked < self._interval:
            return self._material
        with self._lock:
            self._checked = now
            try:
                stamp = self._read_stamp()
                if stamp != self._stamp:
                    material = load_material(self.files)
                    self._stamp, self._material = stamp, material
                    self.version += 1
                    log.info("reloaded the certificate in %s", self.files.cert)
            except (OSError, ValueError) as error:
                # Mid-rotation or broken: keep serving the pair that worked.
                log.warning("keeping the current certificate: %s", error)
            return self._material

    def _read_stamp(self) -> Stamp:
        stamps = []
        for path in (self.files.cert, self.files.key, self.files.ca):
            status = os.stat(path)
            stamps.append((status.st_ino, status.st_size, status.st_mtime_ns))
        return tuple(stamps)
