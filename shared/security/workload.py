"""This process's certificate, from the settings: rotated files, or the development CA."""

from __future__ import annotations

from pathlib import Path

from shared.security.identity import Identity, service_identity
from shared.security.layout import CertificateFiles, issued_files
from shared.security.reload import ReloadingCertificate


def certificate_files(
    identity: Identity, tls_dir: Path | None, dev_root: Path | None
) -> CertificateFiles:
    """Files written by the platform when `tls_dir` is set, else issued once under `dev_root`."""
    if tls_dir is not None:
        files = CertificateFiles.in_directory(tls_dir)
        missing = [str(p) for p in (files.cert, files.key, files.ca) if not p.exists()]
        if missing:
            raise SystemExit(f"mTLS is on but certificate files are missing: {', '.join(missing)}")
        return files
    if dev_root is None:
        raise SystemExit("mTLS is on but neither TLS_DIR nor TLS_DEV_ROOT is set")
    if (issued := issued_files(dev_root, identity)) is not None:
        return issued
    # Only the first start issues a certificate: only it loads `cryptography` (see layout.py).
    from shared.security.pki import ensure_identity

    return ensure_identity(dev_root, identity)


def service_certificate(
    name: str,
    *,
    trust_domain: str,
    tls_dir: Path | None,
    dev_root: Path | None,
    reload_s: float = 1.0,
) -> ReloadingCertificate:
    files = certificate_files(service_identity(trust_domain, name), tls_dir, dev_root)
    return ReloadingCertificate(files, check_interval_s=reload_s)
