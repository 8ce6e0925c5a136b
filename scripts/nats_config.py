"""Write the nats-server configuration: one nkey user per service, on its own subjects.

    python scripts/nats_config.py <run-dir> [port] [--host 0.0.0.0] [--store-dir DIR]

Seeds go to <run-dir>/nats-users/<service>.nk (0600, created once, reused), the
configuration to <run-dir>/nats.conf. What each service publishes and consumes is its
own declaration (`ROLE` in its settings module, see shared.security.roles), whose
subjects come from the events' `(micro.v1.event)` options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.security.nats_auth import NatsRole, generate  # noqa: E402
from shared.security.roles import discover  # noqa: E402


def roles() -> tuple[NatsRole, ...]:
    return tuple(role.nats(name) for name, role in discover(ROOT).items())


def write(
    run_dir: Path, port: int, *, host: str = "127.0.0.1", store_dir: Path | None = None
) -> Path:
    config = generate(
        roles(),
        run_dir / "nats-users",
        host=host,
        port=port,
        store_dir=store_dir or run_dir / "nats",
    )
    path = run_dir / "nats.conf"
    path.write_text(config)
    path.chmod(0o600)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, default=Path(".run"))
    parser.add_argument("port", nargs="?", type=int, default=4222)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--store-dir", type=Path)
    args = parser.parse_args()
    print(write(args.run_dir, args.port, host=args.host, store_dir=args.store_dir))
