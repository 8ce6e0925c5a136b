"""Write the nats-server configuration: one nkey user per service, on its own subjects.

    python scripts/nats_config.py <run-dir> [port]

Seeds go to <run-dir>/nats-users/<service>.nk (0600, created once, reused), the
configuration to <run-dir>/nats.conf. What each service publishes and consumes is its
own declaration (`ROLE` in its settings module, see shared.security.roles), whose
subjects come from the events' `(micro.v1.event)` options. The same step in an image:
`python -m shared.security.provision nats` (compose).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.security.provision import nats_config  # noqa: E402


def write(run_dir: Path, port: int) -> Path:
    return nats_config(run_dir, port, root=ROOT)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".run")
    print(write(root, int(sys.argv[2]) if len(sys.argv) > 2 else 4222))
