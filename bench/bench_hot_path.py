"""GET /user/me and POST /user/login on `make run`'s stack, against a raw-stub baseline.

    python bench/bench_hot_path.py [--seconds 10] [--rounds 3] [--soak-seconds 60]
                                   [--no-sqlite] [--no-mariadb] [--no-login] [--no-mtls]
                                   [--env NAME=value] [--out bench/results/hot_path.json]

Starts etcd, nats-server and the four services as processes (SQLite, tracing off, mTLS on as
under `make run`, the baseline calling with user_api's certificate), logs in
once, then runs `wrk -t1` on GET /user/me against user_api and against bench/baseline_app.py
(the same two calls with raw grpc.aio stubs) in alternating rounds: c64 for requests/s, c8
for p99. Then the same on MariaDB (127.0.0.1:3306, a database of its own, dropped after),
POST /user/login on the kit and on the baseline against the Argon2id hash rate
(user_service's parameters, as many threads as cores, alternating rounds), idle RSS per
service against its libraries alone (bench/floor_app.py, the floor), a c64 soak counting
errors, and the kit on two stacks at once, mTLS on and off, in alternating rounds.
Everything shares the machine's cores: the load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.hashrate import hash_rate  # noqa: E402
from bench.report import machine, print_table  # noqa: E402
from bench.stack import SERVICES, Stack, cpu_s, pss_mb, rss_mb  # noqa: E402
from bench.wrk import wrk  # noqa: E402

MARIADB = "mysql+aiomysql://root@127.0.0.1:3306/"
IDLE_S = 3.0


def token_for(stack: Stack) -> str:
    for _ in range(10):  # the first login may meet a cold, busy stack: its budget is short
        form = {"userName": "micro", "pwd": "123"}
        reply = httpx.post(f"{stack.kit_url}/user/login", data=form, timeout=10)
        if reply.status_code == 200:
            break
        time.sleep(0.5)
    reply.raise_for_status()
    token: str = reply.json()["token"]
    for _ in range(20):  # a few requests, so the idle figures include warmed paths
        httpx.get(f"{stack.kit_url}/user/me", headers={"Authorization": f"Bearer {token}"})
    return token


def median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


Runs = dict[str, dict[str, list[dict[str, Any]]]]


def alternating(
    urls: dict[str, str], tokens: dict[str, str], args: argparse.Namespace, stack: Stack | None
) -> tuple[Runs, list[dict[str, float]]]:
    """wrk at c64 then c8 on each URL in turn, the order reversed every other round.

    With `stack`, the CPU each of its processes spends per request during the c64 runs on
    the first URL (the kit) is measured from /proc."""
    runs: Runs = {name: {"c64": [], "c8": []} for name in urls}
    cpu_ms: list[dict[str, float]] = []
    for name in urls:  # warm-up: channels, caches, the JIT-less interpreter's first calls
        wrk(urls[name], "me.lua", connections=8, seconds=2, token=tokens[name])
    first = next(iter(urls))
    for round_ in range(args.rounds):
        order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
        for name in order:
            pids = {}
            if stack is not None and name == first:
                pids = {p: stack.pid(p) for p in ("etcd", *SERVICES)}
            before = {p: cpu_s(pid) for p, pid in pids.items()}
            run = wrk(
                urls[name], "me.lua", connections=64, seconds=args.seconds, token=tokens[name]
            )
            runs[name]["c64"].append(run)
            if pids:
                cpu_ms.append(
                    {p: (cpu_s(pid) - before[p]) / run["requests"] * 1e3 for p, pid in pids.items()}
                )
            runs[name]["c8"].append(
                wrk(urls[name], "me.lua", connections=8, seconds=args.seconds, token=tokens[name])
            )
    return runs, cpu_ms


def summary(runs: Runs) -> dict[str, Any]:
    return {
        name: {
            "rps_c64": median(by_c["c64"], "rps"),
            "p99_ms_c64": median(by_c["c64"], "p99_ms"),
            "p50_ms_c8": median(by_c["c8"], "p50_ms"),
            "p99_ms_c8": median(by_c["c8"], "p99_ms"),
            "rps_c8": median(by_c["c8"], "rps"),
            "errors": sum(r["errors"] for runs_ in by_c.values() for r in runs_),
            "runs": by_c,
        }
        for name, by_c in runs.items()
    }


def me_rounds(stack: Stack, token: str, args: argparse.Namespace) -> dict[str, Any]:
    """The kit against the raw-stub baseline on the same stack; medians and all runs."""
    urls = {"kit": stack.kit_url + "/user/me", "baseline": stack.baseline_url + "/user/me"}
    runs, cpu_ms = alternating(urls, dict.fromkeys(urls, token), args, stack)
    result = summary(runs)
    result["ratio_rps_c64"] = result["kit"]["rps_c64"] / result["baseline"]["rps_c64"]
    result["ratio_p99_c8"] = result["kit"]["p99_ms_c8"] / result["baseline"]["p99_ms_c8"]
    result["cpu_ms_per_request"] = {p: statistics.median(c[p] for c in cpu_ms) for p in cpu_ms[0]}
    return result


def login_rounds(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Logins at c8 on the kit and on the raw-stub baseline, and the hash rate, in turn."""
    logins: dict[str, list[dict[str, Any]]] = {"kit": [], "baseline": []}
    hashes: list[float] = []
    urls = {"kit": stack.kit_url, "baseline": stack.baseline_url}
    for round_ in range(args.rounds):
        steps = ["kit", "baseline", "hash"]
        for step in steps if round_ % 2 == 0 else reversed(steps):
            if step == "hash":
                hashes.append(hash_rate(args.seconds))
            else:
                url = urls[step] + "/user/login"
                logins[step].append(wrk(url, "login.lua", connections=8, seconds=args.seconds))
    login_rps = median(logins["kit"], "rps")
    baseline_rps = median(logins["baseline"], "rps")
    hash_ps = statistics.median(hashes)
    return {
        "login_rps": login_rps,
        "baseline_login_rps": baseline_rps,
        "hash_per_s": hash_ps,
        "ratio": login_rps / hash_ps,
        "baseline_ratio": baseline_rps / hash_ps,
        "errors": sum(r["errors"] for r in logins["kit"]),
        "baseline_errors": sum(r["errors"] for r in logins["baseline"]),
        "runs": {
            "login": logins["kit"],
            "baseline_login": logins["baseline"],
            "hash_per_s": hashes,
        },
    }


def env(args: argparse.Namespace) -> dict[str, str]:
    """Extra environment of the services: `--env NAME=value` (e.g. MICRO_EVENT_LOOP=asyncio)."""
    return dict(item.split("=", 1) for item in args.env)


def sqlite_phase(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{run_dir / 'sqlite' / 'users.db'}"
    stack = Stack(run_dir / "sqlite", url, env(args))
    try:
        stack.start()
        time.sleep(IDLE_S)  # fresh: started, nothing served yet
        fresh = {name: rss_mb(stack.pid(name)) for name in SERVICES}
        token = token_for(stack)
        time.sleep(IDLE_S)  # idle: past user_service's heap trim after the login's hash
        rss = {name: rss_mb(stack.pid(name)) for name in SERVICES}
        pss = {name: pss_mb(stack.pid(name)) for name in SERVICES}
        # The same figure for each service's libraries alone (bench/floor_app.py).
        stack.start_floors()
        time.sleep(IDLE_S)
        floor = {name: rss_mb(stack.pid(f"floor_{name}")) for name in SERVICES}
        stack.stop_floors()
        me = me_rounds(stack, token, args)
        login = None if args.no_login else login_rounds(stack, args)
        soak = None
        if args.soak_seconds > 0:
            soak = wrk(
                stack.kit_url + "/user/me",
                "me.lua",
                connections=64,
                seconds=args.soak_seconds,
                token=token,
            )
            soak["seconds"] = args.soak_seconds
        return {
            "me": me,
            "login": login,
            "idle_rss_mb": rss,
            "floor_rss_mb": floor,
            "fresh_rss_mb": fresh,
            "idle_pss_mb": pss,
            "soak_c64": soak,
        }
    finally:
        stack.stop()


def mtls_phase(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """The kit on two stacks at once, mTLS on and off, in alternating rounds."""
    stacks = {
        name: Stack(
            run_dir / f"mtls_{name}",
            f"sqlite+aiosqlite:///{run_dir / f'mtls_{name}' / 'users.db'}",
            env(args),
            mtls=name == "on",
        )
        for name in ("on", "off")
    }
    try:
        for stack in stacks.values():
            stack.start()
        tokens = {name: token_for(stack) for name, stack in stacks.items()}
        urls = {name: stack.kit_url + "/user/me" for name, stack in stacks.items()}
        # Two stacks share the cores: more rounds than the others, for a steadier median.
        rounds = argparse.Namespace(**{**vars(args), "rounds": max(args.rounds, 5)})
        result = summary(alternating(urls, tokens, rounds, None)[0])
        result["ratio_rps_c64"] = result["on"]["rps_c64"] / result["off"]["rps_c64"]
        result["ratio_p99_c8"] = result["on"]["p99_ms_c8"] / result["off"]["p99_ms_c8"]
        return result
    finally:
        for stack in stacks.values():
            stack.stop()


def mariadb_phase(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    import pymysql

    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    stack = Stack(run_dir / "mariadb", MARIADB + name, env(args))
    try:
        stack.start()
        token = token_for(stack)
        return {"me": me_rounds(stack, token, args)}
    finally:
        stack.stop()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak-seconds", type=float, default=60)
    parser.add_argument("--no-mariadb", action="store_true")
    parser.add_argument("--no-login", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-mtls", action="store_true", help="skip the mTLS on/off phase")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for services")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hot_path.json")
    args = parser.parse_args()
    started = time.time()
    results: dict[str, Any] = {"machine_before": machine()}
    with tempfile.TemporaryDirectory(prefix="bench-hot-path-") as tmp:
        if not args.no_sqlite:
            results["sqlite"] = sqlite_phase(args, Path(tmp))
        if not args.no_mariadb:
            results["mariadb"] = mariadb_phase(args, Path(tmp))
        if not args.no_mtls:
            results["mtls"] = mtls_phase(args, Path(tmp))
    results["machine"] = machine()
    results["settings"] = {**vars(args), "out": str(args.out), "wall_s": time.time() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results)
    print(f"\nwritten to {os.path.relpath(args.out, ROOT)}  ({platform.node()})")


if __name__ == "__main__":
    main()
