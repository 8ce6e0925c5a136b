"""The project a command runs in, and the small edits `micro new` makes to its files."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "NotAProjectError",
    "add_procfile_line",
    "find_root",
    "next_http_port",
    "procfile_has",
]


class NotAProjectError(LookupError):
    pass


def find_root(start: Path) -> Path:
    """The closest folder at or above `start` that holds the kit (template/ and shared/)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "template" / "copier.yml").is_file() and (folder / "shared").is_dir():
            return folder
    raise NotAProjectError(
        f"no kit project at or above {start}: run micro in the folder that holds "
        "template/copier.yml and shared/ (or pass --project)"
    )


def procfile_has(text: str, name: str) -> bool:
    return any(line.split(":", 1)[0].strip() == name for line in text.splitlines())


CREDENTIALS = "scripts/credentials"


def add_procfile_line(text: str, name: str) -> str:
    """Honcho starts every line of the Procfile: `make run` then runs the service too, as
    its own NATS and etcd user when the Procfile starts the others that way. A new service
    publishes its events and keeps no database, so what waits for NATS is spooled to a file
    that outlives a crash (shared.broker.spool)."""
    if text and not text.endswith("\n"):
        text += "\n"
    command = f"env BROKER_SPOOL_PATH=${{RUN_DIR:-.run}}/{name}/spool.sqlite3 python -m {name}"
    if CREDENTIALS in text:
        return f"{text}{name}: exec {CREDENTIALS} {name} {command}\n"
    return f"{text}{name}: {command}\n"


_HTTP_PORT = re.compile(r"^\s*http_port:\s*int\s*=\s*(\d+)", re.MULTILINE)


def next_http_port(root: Path, at_least: int = 8081) -> int:
    """A port no service's settings already default to, so `make run` starts them all."""
    taken = [
        int(port)
        for settings in root.glob("*/settings.py")
        for port in _HTTP_PORT.findall(settings.read_text(errors="replace"))
    ]
    return max([at_least - 1, *taken]) + 1
