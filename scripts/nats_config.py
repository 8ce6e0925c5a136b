"""Write the nats-server configuration for `make run`: one nkey user per service.

    python scripts/nats_config.py <run-dir> [port]

Seeds go to <run-dir>/nats-users/<service>.nk (0600, created once, reused), the
configuration to <run-dir>/nats.conf. What each service publishes and consumes is
declared here for now; it belongs next to each service's events (its contract).
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared.security.nats_auth import NatsRole, generate

ROLES = (
    NatsRole("user_api", publishes=("user.logged_in", "audit.user_login_failed")),
    NatsRole("auth_service", publishes=("auth.token_revoked",)),
    NatsRole("user_service", consumes=("user.logged_in",)),
    NatsRole("config_service"),
)


def write(run_dir: Path, port: int) -> Path:
    config = generate(ROLES, run_dir / "nats-users", port=port, store_dir=run_dir / "nats")
    path = run_dir / "nats.conf"
    path.write_text(config)
    path.chmod(0o600)
    return path


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".run")
    print(write(root, int(sys.argv[2]) if len(sys.argv) > 2 else 4222))
