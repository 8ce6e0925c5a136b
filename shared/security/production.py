"""Production mode: what a service refuses to start without.

`ENVIRONMENT=production` turns development's conveniences into refusals: no certificates
(mTLS off, or TLS_DIR without its files), no NATS user, no etcd user, or a password
anyone can guess stop the start with one line that names every missing piece. Services
add their own checks (auth_service's signing key, user_service's database password) by
extending `ServiceSettings.production_problems`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.config.settings import ServiceSettings

# Passwords that ship somewhere in this repository or are guessed first.
DEFAULT_PASSWORDS = frozenset({"", "micro", "123", "password", "changeme", "root", "admin"})
MIN_KEY_BYTES = 32
TLS_FILES = ("tls.crt", "tls.key", "ca.crt")


def _missing_file(path: Path | None) -> bool:
    return path is None or not path.is_file()


def kit_problems(settings: ServiceSettings) -> list[str]:
    problems: list[str] = []
    if not settings.mtls:
        problems.append("MTLS is off (production serves and calls gRPC over mTLS only)")
    elif settings.tls_dir is None:
        problems.append("TLS_DIR is not set (the directory of tls.crt, tls.key and ca.crt)")
    else:
        missing = [name for name in TLS_FILES if not (settings.tls_dir / name).is_file()]
        if missing:
            problems.append(f"TLS_DIR {settings.tls_dir} lacks {', '.join(missing)}")
    if _missing_file(settings.nats_nkey_seed_file):
        problems.append("NATS_NKEY_SEED_FILE names no file (this service's NATS user)")
    if not settings.etcd_username:
        problems.append("ETCD_USERNAME is not set (this service's etcd user)")
    elif settings.etcd_password_file is None or not settings.etcd_password_file.is_file():
        problems.append("ETCD_PASSWORD_FILE names no file (the etcd user's password)")
    elif settings.etcd_password_file.read_text().strip() in DEFAULT_PASSWORDS:
        problems.append("ETCD_PASSWORD_FILE holds a default password")
    return problems


def weak_password(password: str | None) -> bool:
    return password is None or password in DEFAULT_PASSWORDS


def refuse_unless_ready(settings: ServiceSettings) -> None:
    """In production, exit with one line naming what is missing (status 2)."""
    if settings.environment != "production":
        return
    problems = settings.production_problems()
    if problems:
        print(
            f"{settings.service_name} refuses to start in production: {'; '.join(problems)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
