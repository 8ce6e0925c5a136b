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
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.security.layout import CertificateFiles

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Material:
    """One consistent set, PEM: the certificate chain, its key, the trusted CA bundle."""

    cert: bytes
    key: bytes
    ca: bytes


def load_material(files: CertificateFiles, stamp: Stamp) -> Material:
    """Read and check the files, whose stamp was `stamp` before; ValueError when the key
    does not match the certificate, when a file is not PEM, or when a file changed since.

    The check is OpenSSL's own (the `ssl` module loading the pair from the files), so a
    service needs no `cryptography` to reload its certificate. The bytes kept are those
    of the files OpenSSL checked: their stamp is the same before and after.
    """
    material = Material(files.cert.read_bytes(), files.key.read_bytes(), files.ca.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # An encrypted key gets an empty password (and fails) rather than a prompt.
        context.load_cert_chain(files.cert, files.key, password=b"")
        context.load_verify_locations(cadata=material.ca.decode("ascii", "replace"))
    except ssl.SSLError as error:
        raise ValueError(f"{files.key} and {files.cert} are not a usable pair: {error}") from None
    if read_stamp(files) != stamp:
        raise ValueError(f"{files.cert} changed while it was read")
    return material


def read_stamp(files: CertificateFiles) -> Stamp:
    """Inode, size and modification time of the three files: what a rotation changes."""
    stamps = []
    for path in (files.cert, files.key, files.ca):
        status = os.stat(path)
        stamps.append((status.st_ino, status.st_size, status.st_mtime_ns))
    return tuple(stamps)


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
        self._stamp = read_stamp(self.files)
        self._material = load_material(files, self._stamp)
        self._checked = clock()
        self.version = 1

    def current(self) -> Material:
        now = self._clock()
        if now - self._checked < self._interval:
            return self._material
        with self._lock:
            self._checked = now
            try:
                stamp = read_stamp(self.files)
                if stamp != self._stamp:
                    material = load_material(self.files, stamp)
                    self._stamp, self._material = stamp, material
                    self.version += 1
                    log.info("reloaded the certificate in %s", self.files.cert)
            except (OSError, ValueError) as error:
                # Mid-rotation or broken: keep serving the pair that worked.
                log.warning("keeping the current certificate: %s", error)
            return self._material
