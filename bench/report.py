"""The machine a benchmark ran on, and the hot-path table printed after a run."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from typing import Any


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "grpcio": version("grpcio"),
        "uvicorn": version("uvicorn"),
        "load_average": os.getloadavg(),
    }


def _row(name: str, ours: float, theirs: float | None, unit: str, target: str) -> str:
    ratio = f"{ours / theirs:5.2f}x" if theirs else "      "
    base = f"{theirs:10.1f}" if theirs is not None else " " * 10
    return f"{name:<34}{ours:10.1f}{base}  {ratio}  {unit:<6} {target}"


def print_table(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"machine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}, "
        f"grpcio {m['grpcio']}, load average before "
        f"{results['machine_before']['load_average']}, after {m['load_average']}"
    )
    print(f"{'':<34}{'kit':>10}{'baseline':>10}  {'ratio':>6}  {'unit':<6} target")
    for db in ("sqlite", "mariadb"):
        if db not in results:
            continue
        me = results[db]["me"]
        kit, base = me["kit"], me["baseline"]
        print(_row(f"GET /user/me c64 ({db})", kit["rps_c64"], base["rps_c64"], "req/s", ">=1500"))
        print(
            _row(f"GET /user/me p99 c8 ({db})", kit["p99_ms_c8"], base["p99_ms_c8"], "ms", "<=10")
        )
        print(f"{'  errors (kit, baseline)':<34}{kit['errors']:10d}{base['errors']:10d}")
    if "mtls" in results:  # the kit with mTLS on, against the kit with mTLS off
        on, off = results["mtls"]["on"], results["mtls"]["off"]
        print(
            _row("/user/me c64 mTLS on vs off", on["rps_c64"], off["rps_c64"], "req/s", ">=0.90x")
        )
        print(_row("/user/me p99 c8 mTLS on vs off", on["p99_ms_c8"], off["p99_ms_c8"], "ms", ""))
        print(f"{'  errors (on, off)':<34}{on['errors']:10d}{off['errors']:10d}")
    sqlite = results.get("sqlite")
    if sqlite is None:
        return
    login = sqlite["login"]
    if login:
        print(
            _row(
                "POST /user/login vs hash rate",
                login["login_rps"],
                login["hash_per_s"],
                "/s",
                ">=0.90x",
            )
        )
        if "baseline_login_rps" in login:  # the same calls with raw stubs, same services
            base = login["baseline_login_rps"]
            print(_row("POST /user/login vs baseline", login["login_rps"], base, "/s", ""))
            print(_row("  baseline login vs hash rate", base, login["hash_per_s"], "/s", ""))
            errors = f"{login['errors']:10d}{login['baseline_errors']:10d}"
            print(f"{'  errors (kit, baseline)':<34}{errors}")
        else:
            print(f"{'  login errors':<34}{login['errors']:10d}")
    floor = sqlite.get("floor_rss_mb", {})  # the baseline: the service's libraries alone
    for name, mb in sqlite["idle_rss_mb"].items():
        print(_row(f"idle RSS {name} (vs floor)", mb, floor.get(name), "MB", "<=80"))
    for name, mb in sqlite.get("fresh_rss_mb", {}).items():
        print(_row(f"fresh RSS {name}", mb, None, "MB", "<=80"))
    for name, mb in sqlite.get("idle_pss_mb", {}).items():
        print(_row(f"idle PSS {name}", mb, None, "MB", ""))
    soak = sqlite["soak_c64"] or {"seconds": 0, "rps": 0.0, "errors": 0}
    print(_row(f"soak c64 {soak['seconds']:.0f}s req/s", soak["rps"], None, "req/s", ""))
    print(f"{'  soak errors':<34}{soak['errors']:10d}{'':10}  {'':6}  {'':6} 0")
    cpu = sqlite["me"]["cpu_ms_per_request"]
    print("CPU ms per /user/me (sqlite, c64): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
