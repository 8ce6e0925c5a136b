"""Server CPU per unary call of a trivial grpc.aio servicer, by the kit's server interceptors.

    python bench/bench_server_interceptors.py [--seconds 3] [--rounds 3] [--concurrency 16]

Three servers run at once, each in its own process on uvloop, with the kit's server options:
  none     no interceptor,
  guard    the kit's server chain without tracing (metrics, deadline, errors to statuses),
  kit      the kit's server chain with the service's tracing (disabled, as `make run`).
This process drives each in turn (alternating rounds) with raw stubs and reads the server's
CPU from /proc: the difference to `none` is what the interceptor costs per call.
Results go to bench/results/server_interceptors.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.stack import cpu_s  # noqa: E402
from shared.proto.user.v1 import user_pb2, user_pb2_grpc  # noqa: E402

VARIANTS = ("none", "guard", "kit")
RESULTS = ROOT / "bench" / "results" / "server_interceptors.json"


class TrivialUsers(user_pb2_grpc.UserServiceServicer):
    _reply = user_pb2.GetUserResponse(user=user_pb2.User(id=10001, name="micro"))

    async def GetUser(self, request: Any, context: Any) -> Any:  # noqa: N802 - the contract
        return self._reply


async def serve(variant: str) -> None:
    from shared.server import ChainInterceptor
    from shared.server.server import _OPTIONS
    from shared.tracing import Tracing, setup_tracing

    interceptors: list[Any] = []
    if variant == "kit":
        tracing = setup_tracing("bench", version="0", environment="bench")
        interceptors.append(ChainInterceptor(tracing, ()))
    if variant == "guard":
        interceptors.append(ChainInterceptor(Tracing.disabled(), ()))
    server = grpc.aio.server(interceptors=interceptors, options=_OPTIONS)
    user_pb2_grpc.add_UserServiceServicer_to_server(TrivialUsers(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(None)


async def drive(address: str, pid: int, seconds: float, concurrency: int) -> dict[str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        request = user_pb2.GetUserRequest(id=10001)
        for _ in range(200):
            await stub.GetUser(request)
        stop_at = time.perf_counter() + seconds
        calls = 0

        async def loop() -> None:
            nonlocal calls
            while time.perf_counter() < stop_at:
                await stub.GetUser(request)
                calls += 1

        before, started = cpu_s(pid), time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        wall, server = time.perf_counter() - started, cpu_s(pid) - before
    return {"calls_per_s": calls / wall, "server_cpu_us_per_call": server / calls * 1e6}


async def main(args: argparse.Namespace) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true"}
    servers = {  # started before any load, so blocking here is harmless
        v: subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, __file__, "--serve", v],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for v in VARIANTS
    }
    ports = {v: int(p.stdout.readline()) for v, p in servers.items()}  # type: ignore[union-attr]
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        for round_ in range(args.rounds):
            order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
            for v in order:
                runs[v].append(
                    await drive(
                        f"127.0.0.1:{ports[v]}", servers[v].pid, args.seconds, args.concurrency
                    )
                )
    finally:
        for process in servers.values():
            process.stdin.close()  # type: ignore[union-attr]
            process.wait()
    cost = {v: statistics.median(r["server_cpu_us_per_call"] for r in runs[v]) for v in VARIANTS}
    result = {
        "server_cpu_us_per_call": cost,
        "interceptor_cost_us": {v: cost[v] - cost["none"] for v in VARIANTS[1:]},
        "calls_per_s": {v: statistics.median(r["calls_per_s"] for r in runs[v]) for v in VARIANTS},
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for v in VARIANTS:
        print(f"{v:<6} {cost[v]:7.1f} µs server CPU/call  (+{cost[v] - cost['none']:.1f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=VARIANTS)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parsed = parser.parse_args()
    import uvloop

    if parsed.serve:
        uvloop.run(serve(parsed.serve))
    else:
        uvloop.run(main(parsed))
