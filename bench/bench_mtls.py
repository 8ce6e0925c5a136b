"""The hot path with mTLS on and off: `Client.call` over plain gRPC vs mutual TLS.

    python bench/bench_mtls.py [--seconds 1] [--rounds 5] [--concurrency 16]

One trivial `user.v1.UserService/GetUser` server in a subprocess (its own core) listens
twice: plain, and with the kit's server credentials (client certificates required,
`shared.security.credentials`); its certificates come from a development CA in a temporary
folder. This process drives the kit's client (tracing off) at each, in alternating rounds,
over one long-lived channel per node as in a service: the handshake is paid once, the
cost measured is record encryption. Reports calls/s (medians) and the median paired ratio
mtls/plain; results go to bench/results/mtls.json.
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
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from bench.bench_client import REQUEST, SERVICE, TrivialUsers, drive, pin  # noqa: E402
from shared.breaker import BreakerMetrics, Breakers  # noqa: E402
from shared.client import Client  # noqa: E402
from shared.proto.user.v1 import user_pb2_grpc  # noqa: E402
from shared.registry import MemoryRegistry, ServiceNode  # noqa: E402
from shared.security.credentials import server_credentials  # noqa: E402
from shared.security.identity import service_identity  # noqa: E402
from shared.security.pki import ensure_identity  # noqa: E402
from shared.security.reload import ReloadingCertificate  # noqa: E402
from shared.selector import Selector  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mtls.json"
DOMAIN = "micro.local"


def certificate(root: Path, name: str) -> ReloadingCertificate:
    return ReloadingCertificate(ensure_identity(root, service_identity(DOMAIN, name)))


async def serve(root: Path) -> None:
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(TrivialUsers(), server)  # type: ignore[abstract]
    plain = server.add_insecure_port("127.0.0.1:0")
    secure = server.add_secure_port("127.0.0.1:0", server_credentials(certificate(root, SERVICE)))
    await server.start()
    print(plain, secure, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await server.stop(None)


async def client_for(address: str, tls: ReloadingCertificate | None) -> Client:
    registry = MemoryRegistry()
    await registry.register(ServiceNode(SERVICE, f"{SERVICE}-bench", address))
    breakers = Breakers(metrics=BreakerMetrics(CollectorRegistry()))
    return Client(Selector(registry), breakers, tls=tls)


async def bench(args: argparse.Namespace, ports: list[str], root: Path, pid: int) -> Any:
    plain = await client_for(f"127.0.0.1:{ports[0]}", None)
    mtls = await client_for(f"127.0.0.1:{ports[1]}", certificate(root, "user_api"))
    variants = {
        "plain": lambda: plain.call(SERVICE, "GetUser", REQUEST),
        "mtls": lambda: mtls.call(SERVICE, "GetUser", REQUEST),
    }
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for call in variants.values():
        await drive(call, args.concurrency, args.warmup, pid)
    for _ in range(args.rounds):
        for name, call in variants.items():
            rounds[name].append(await drive(call, args.concurrency, args.seconds, pid))
    for client in (plain, mtls):
        await client.stop()
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        pin(1)
        asyncio.run(serve(Path(args.serve)))
        return
    pinned = pin(0)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        certificate(root, SERVICE)  # the CA first, here: the server only reads it
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdin is not None
        ports = server.stdout.readline().split()
        try:
            rounds = asyncio.run(bench(args, ports, root, server.pid))
        finally:
            server.stdin.close()
            server.wait(10)
    ratios = [m["calls_per_s"] / p["calls_per_s"] for p, m in zip(*rounds.values(), strict=True)]
    summary = {
        name: {
            "calls_per_s": statistics.median(r["calls_per_s"] for r in runs),
            "cpu_us_per_call": statistics.median(r["cpu_us_per_call"] for r in runs),
        }
        for name, runs in rounds.items()
    }
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "pinned": pinned,
        "settings": vars(args) | {"serve": None},
        "summary": summary,
        "mtls_over_plain": statistics.median(ratios),
        "paired_ratios": ratios,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"summary": summary, "mtls_over_plain": result["mtls_over_plain"]}, indent=2))


if __name__ == "__main__":
    main()
