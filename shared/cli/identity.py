"""The identity the `micro` CLI calls services with: an operator's certificate.

Services behind mTLS accept no caller without a certificate, and their policy lets an
operator (`spiffe://<trust-domain>/operator/<name>`) call only the methods that list
"operator" in `allowed_callers`. The certificate comes from, in this order:

- `--tls-dir` / `MICRO_TLS_DIR`: tls.crt, tls.key and ca.crt the deployment's CA issued
  to you (reloaded like a service's);
- the development CA of `make run` (`--tls-dev-root` / `TLS_DEV_ROOT`, `.run/tls` by
  default) when it exists: an operator certificate is issued there once;
- neither: plain gRPC, for services run without mTLS.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

from shared.security.identity import operator_identity
from shared.security.layout import CertificateFiles
from shared.security.pki import ensure_identity
from shared.security.reload import ReloadingCertificate

DEFAULT_DEV_ROOT = Path(".run/tls")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def operator_name() -> str:
    """This user's login name, fit for a SPIFFE path segment."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return _UNSAFE.sub("-", name) or "operator"


def operator_certificate(
    *,
    tls_dir: Path | None,
    dev_root: Path | None,
    name: str | None,
    trust_domain: str,
    plaintext: bool = False,
) -> ReloadingCertificate | None:
    """The operator's certificate, or None to call over plain gRPC."""
    if plaintext:
        return None
    if tls_dir is not None:
        files = CertificateFiles.in_directory(tls_dir)
        missing = [str(p) for p in (files.cert, files.key, files.ca) if not p.exists()]
        if missing:
            raise FileNotFoundError(f"no operator certificate: missing {', '.join(missing)}")
        return ReloadingCertificate(files)
    root = dev_root or DEFAULT_DEV_ROOT
    if not (root / "ca").is_dir():
        return None
    identity = operator_identity(trust_domain, name or operator_name())
    return ReloadingCertificate(ensure_identity(root, identity))
