"""Running Debian's `wrk` with one of the Lua scripts in bench/lua and reading its JSON line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"
WRK = "/usr/bin/wrk"


def wrk(
    url: str, script: str, *, connections: int, seconds: float, token: str = ""
) -> dict[str, Any]:
    """One wrk run (one thread): requests/s, latency percentiles in ms, errors."""
    env = {**os.environ, "WRK_TOKEN": token, "WRK_REPORT": str(LUA / "report.lua")}
    command = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(int(seconds), 1)}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA / script),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": raw["requests"],
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": errors,
        "error_detail": {k: raw[k] for k in ("connect", "read", "write", "status", "timeout")},
    }
