"""The signing key: JWT_SECRET when given, else a key file created once and then shared.

A key file lets `make run` and `docker compose up` work with no set-up step while the key
still never appears in code, images or the repository. Replicas that share the file (a
volume) race to create it; the atomic link below lets exactly one win and the rest read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

MIN_SECRET = 32


def key_id(key: str) -> str:
    """The `kid` of tokens signed with `key`: names the key without saying anything of it."""
    return hmac.new(key.encode(), b"pymicro-kit key id", hashlib.sha256).hexdigest()[:16]


def signing_key(secret: str | None, key_file: Path | None) -> str:
    if secret:
        return secret
    if key_file is None:
        raise SystemExit(
            "auth_service needs JWT_SECRET (at least 32 characters) or JWT_SECRET_FILE, "
            "a file it reads, or creates when missing"
        )
    if not key_file.exists():
        _create(key_file)
    key = key_file.read_text().strip()
    if len(key) < MIN_SECRET:
        raise SystemExit(f"{key_file} holds fewer than {MIN_SECRET} characters")
    return key


def _create(key_file: Path) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor, draft = tempfile.mkstemp(dir=key_file.parent, prefix=".jwt-")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        os.chmod(draft, 0o600)
        # Fails if another replica created it first: then theirs is the key.
        with contextlib.suppress(FileExistsError):
            os.link(draft, key_file)
    finally:
        os.unlink(draft)
