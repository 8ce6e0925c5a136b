"""Throughput and client CPU of the kit's `Client.call` against a raw grpc.aio stub call.

    python bench/bench_client.py [--seconds 2] [--rounds 9] [--concurrency 16]

A trivial `user.v1.UserService/GetUser` server runs in a subprocess on its own core; this
process drives `--concurrency` calls in flight, in alternating rounds, of
  raw  `await stub.GetUser(request)`, the generated stub on one grpc.aio channel, and
  kit  `await client.call("user_service", "GetUser", request)`: the client chain with
       tracing off: call metrics, deadline, retry (selector on a MemoryRegistry), breaker
       (timeout, bulkhead, rolling window, prometheus metrics), transport.
It reports calls/s and CPU µs per call of both processes (medians), and the median over
paired rounds of kit/raw throughput and of the client CPU difference: the guard's cost
when the server is the bottleneck (its CPU per call near 1e6 / calls/s). As that is noisy,
it also times the guard alone: `client.call` to a node whose call returns at once, in a
tight loop. Results go to bench/results/client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from shared.breaker import BreakerMetrics, Breakers  # noqa: E402
from shared.client import Client, resolve  # noqa: E402
from shared.proto.user.v1 import user_pb2, user_pb2_grpc  # noqa: E402
from shared.registry import MemoryRegistry, ServiceNode  # noqa: E402
from shared.selector import Selector  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "client.json"
SERVICE = "user_service"
REQUEST = user_pb2.GetUserRequest(id=10001)
Call = Callable[[], Awaitable[Any]]


class TrivialUsers(user_pb2_grpc.UserServiceServicer):
    _reply = user_pb2.GetUserResponse(user=user_pb2.User(id=10001, name="micro"))

    async def GetUser(self, request: Any, context: Any) -> Any:  # noqa: N802 - the contract
        return self._reply


async def serve() -> None:
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(TrivialUsers(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await server.stop(None)


def pin(core: int) -> bool:
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2
    if pinned:
        os.sched_setaffinity(0, {core})
    return pinned


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc (0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(call: Call, concurrency: int, seconds: float, server_pid: int) -> dict[str, float]:
    """`concurrency` loops calling `call` until `seconds` are up: calls/s, CPU µs/call."""
    stop_at = 0.0
    counts = [0] * concurrency

    async def loop(slot: int) -> None:
        while time.perf_counter() < stop_at:
            await call()
            counts[slot] += 1

    server_cpu, wall, cpu = process_cpu_s(server_pid), time.perf_counter(), time.process_time()
    stop_at = wall + seconds
    await asyncio.gather(*(loop(slot) for slot in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = process_cpu_s(server_pid) - server_cpu
    calls = sum(counts)
    return {
        "calls": calls,
        "calls_per_s": calls / wall,
        "cpu_us_per_call": cpu / calls * 1e6,
        "server_cpu_us_per_call": server_cpu / calls * 1e6,
    }


async def bench(args: argparse.Namespace, address: str, server_pid: int) -> dict[str, Any]:
    channel = grpc.aio.insecure_channel(address)
    stub = user_pb2_grpc.UserServiceStub(channel)
    registry = MemoryRegistry()
    await registry.register(ServiceNode(SERVICE, f"{SERVICE}-bench", address))
    selector = Selector(registry)
    client = Client(selector, Breakers(metrics=BreakerMetrics(CollectorRegistry())))

    variants: dict[str, Call] = {
        "raw": lambda: stub.GetUser(REQUEST),
        # The same stub call with a deadline, as any call in production should have: what
        # the kit adds beyond that is the guard's own cost.
        "raw_deadline": lambda: stub.GetUser(REQUEST, timeout=1.0),
        "kit": lambda: client.call(SERVICE, "GetUser", REQUEST),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for call in variants.values():  # connect, fill caches, let grpc settle
        await drive(call, args.concurrency, args.warmup, server_pid)
    for _ in range(args.rounds):
        for name, call in variants.items():
            rounds[name].append(await drive(call, args.concurrency, args.seconds, server_pid))
    await client.stop()
    await selector.stop()
    await channel.close()
    return rounds


async def guard_alone(iterations: int) -> dict[str, float]:
    """CPU µs per call of awaiting a call that returns at once: directly, in the breaker
    alone (`Command.run`, as in bench_breaker.py) and through the whole `client.call`."""
    registry = MemoryRegistry()
    address = "127.0.0.1:1"  # never dialled: the route's call for it is replaced below
    await registry.register(ServiceNode(SERVICE, f"{SERVICE}-fake", address))
    selector = Selector(registry)
    client = Client(selector, Breakers(metrics=BreakerMetrics(CollectorRegistry())))
    reply = user_pb2.GetUserResponse()

    async def instant(request: Any, *, timeout: float | None = None, metadata: Any = None) -> Any:
        return reply

    route = await client.route(SERVICE, resolve(REQUEST, "GetUser"))
    route.callables[address] = instant  # type: ignore[assignment]

    async def measure(call: Call) -> float:
        for _ in range(1000):
            await call()
        started = time.process_time()
        for i in range(iterations):
            await call()
            if i % 1000 == 0:  # let the loop purge cancelled timers, as a service's does
                await asyncio.sleep(0)
        return (time.process_time() - started) / iterations * 1e6

    breaker = route.command
    direct = await measure(lambda: instant(REQUEST, timeout=1.0))
    breaker_only = await measure(
        lambda: breaker.run(lambda t: instant(REQUEST, timeout=t), self_timed=True)
    )
    guarded = await measure(lambda: client.call(SERVICE, "GetUser", REQUEST))
    await client.stop()
    await selector.stop()
    timings = {"direct_us": direct, "breaker_only_us": breaker_only, "kit_us": guarded}
    return {name: round(us, 2) for name, us in timings.items()}


def report(
    args: argparse.Namespace, rounds: dict[str, Any], alone: dict[str, float], cores: str
) -> dict[str, Any]:
    keys = ("calls_per_s", "cpu_us_per_call", "server_cpu_us_per_call")
    summary = {
        name: {key: round(statistics.median(r[key] for r in runs), 2) for key in keys}
        for name, runs in rounds.items()
    }
    # Each kit round runs right after a raw one: pairing them cancels the drift of a shared
    # machine, which shows up as both getting slower together.
    pairs = list(zip(rounds["raw"], rounds["kit"], strict=True))
    ratio = statistics.median(k["calls_per_s"] / r["calls_per_s"] for r, k in pairs)
    cpu_vs_raw = statistics.median(k["cpu_us_per_call"] - r["cpu_us_per_call"] for r, k in pairs)
    with_deadline = zip(rounds["raw_deadline"], rounds["kit"], strict=True)
    cpu = statistics.median(k["cpu_us_per_call"] - r["cpu_us_per_call"] for r, k in with_deadline)
    result = {
        "benchmark": "bench/bench_client.py",
        "what": "unary GetUser to a trivial grpc.aio server in another process",
        "concurrency": args.concurrency,
        "seconds_per_round": args.seconds,
        "rounds": args.rounds,
        "cores": cores,
        "versions": f"Python {platform.python_version()}, grpcio {grpc.__version__}",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "median": summary,
        "throughput_ratio_kit_over_raw": round(ratio, 3),
        "guard_cpu_us_per_call": round(cpu, 2),
        "kit_cpu_over_raw_without_deadline_us_per_call": round(cpu_vs_raw, 2),
        "guard_alone_cpu_us_per_call": round(alone["kit_us"] - alone["direct_us"], 2),
        "guard_alone": alone,
        "all_rounds": rounds,
    }
    widths = dict(zip(keys, (10, 21, 21), strict=True))
    print(f"{'':13}{'calls/s':>10}{'client CPU µs/call':>21}{'server CPU µs/call':>21}")
    for name in ("raw", "raw_deadline", "kit"):
        print(f"{name:13}" + "".join(f"{summary[name][k]:>{w}.1f}" for k, w in widths.items()))
    print(f"kit/raw throughput {ratio:.3f} (median of {len(pairs)} paired rounds)")
    print(f"guard CPU          {cpu:.2f} µs/call over raw_deadline ({cores})")
    print(f"                   {cpu_vs_raw:.2f} µs/call over raw (the deadline included)")
    print(
        f"guard alone        {result['guard_alone_cpu_us_per_call']:.2f} µs/call (no network; "
        f"breaker {alone['breaker_only_us'] - alone['direct_us']:.2f}, "
        f"client {alone['kit_us'] - alone['breaker_only_us']:.2f})"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=200_000, help="for the guard alone")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args()
    if args.serve:
        pin(1)
        asyncio.run(serve())
        return

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        cores = "server and bench on separate cores" if pin(0) else "shared cores"
        rounds = asyncio.run(bench(args, f"127.0.0.1:{port}", server.pid))
        alone = asyncio.run(guard_alone(args.iterations))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:  # seen on an overloaded machine
            server.kill()
    result = report(args, rounds, alone, cores)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
