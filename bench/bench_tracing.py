"""Throughput of a traced FastAPI -> 2 x grpc.aio path against the same path untraced.

    python bench/bench_tracing.py [--seconds 6] [--slice 0.5] [--concurrency 32]
                                  [--grpc-process] [--stock-path DIR]

Each variant is one uvicorn process, started with the variant's OTEL_* environment, serving
`POST /user/login`, whose handler makes two unary grpc.aio calls to a grpc.aio server in
the same process and event loop (or, with --grpc-process, in a second process), so that the
measured processes pay for all five spans of a request: HTTP server, 2 x gRPC client,
2 x gRPC server. Spans go through the real BatchSpanProcessor and OTLP/gRPC exporter to a
receiver in this process that counts them and drops them.

Variants: untraced (no tracing code at all), disabled (every hook installed,
OTEL_SDK_DISABLED=true), kit at 1 % (parentbased_traceidratio 0.01), kit at 100 %
(parentbased_always_on), and the stock OpenTelemetry FastAPI + grpc instrumentations at 1 %
and 100 % when importable (they are not dependencies of the kit: `--stock-path DIR` adds a
folder where they were installed with `pip install --no-deps --target DIR ...`).

How it measures, on a small shared machine whose speed drifts by tens of percent from one
second to the next: all variant servers run at once, pinned to CPU 1, idle until loaded;
the load generator (CPU 0) loads them in turn, one short slice each, round after round, so
that drift hits every variant alike. Load comes from keep-alive HTTP/1.1 connections on raw
asyncio streams (an httpx client costs more CPU per request than the server under test).
Reported per variant: req/s while loaded, server CPU per request (the cost itself, and the
steadier figure), latency, spans exported per request, and both as ratios to untraced.
Results go to bench/results/tracing.json.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.testing.ports import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tracing.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
BODY = b'{"email": "ada@example.com", "password": "correct horse battery staple"}'
REQUEST = (
    b"POST /user/login HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
RATIO_1 = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
ALWAYS = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
VARIANTS: dict[str, dict[str, str]] = {
    "untraced": {},
    "disabled": {"OTEL_SDK_DISABLED": "true"},
    "kit_1pct": RATIO_1,
    "kit_100pct": ALWAYS,
    "stock_1pct": RATIO_1,
    "stock_100pct": ALWAYS,
}


# ---------------------------------------------------------------- the server under test


async def start_grpc(address: str, interceptors: list[Any]) -> Any:
    import grpc

    async def authenticate(request: bytes, context: Any) -> bytes:
        return b"user-42"

    async def issue_token(request: bytes, context: Any) -> bytes:
        return b"token-" + request

    def unary(behavior: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(behavior, lambda b: b, lambda b: b)

    server = grpc.aio.server(interceptors=interceptors)
    handlers = {"Authenticate": unary(authenticate), "IssueToken": unary(issue_token)}
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("auth.v1.AuthService", handlers)]
    )
    server.add_insecure_port(address)
    await server.start()
    return server


def serve_grpc(variant: str, grpc_port: int) -> None:
    from shared.tracing import TracingServerInterceptor, setup_tracing

    async def run() -> None:
        interceptors: list[Any] = []
        tracing = None
        if variant != "untraced":
            tracing = setup_tracing(
                f"auth-{variant}",
                version="0",
                environment="bench",
                set_global=variant.startswith("stock"),
            )
        if variant.startswith(("kit", "disabled")):
            assert tracing is not None
            interceptors.append(TracingServerInterceptor(tracing))
        if variant.startswith("stock"):
            from opentelemetry.instrumentation.grpc import aio_server_interceptor

            interceptors.append(aio_server_interceptor())
        server = await start_grpc(f"127.0.0.1:{grpc_port}", interceptors)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await server.stop(1)
        if tracing is not None:
            await tracing.stop()

    asyncio.run(run())


def serve(variant: str, port: int, grpc_port: int, separate_grpc: bool) -> None:
    import grpc
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    from shared.tracing import (
        Tracing,
        TracingMiddleware,
        TracingServerInterceptor,
        client_span,
        setup_tracing,
    )

    tracing: Tracing | None = None
    interceptors: list[Any] = []
    client_interceptors: list[Any] = []
    if variant != "untraced":
        # The stock instrumentations find the provider through the global one.
        tracing = setup_tracing(
            f"api-{variant}",
            version="0",
            environment="bench",
            set_global=variant.startswith("stock"),
        )
    if variant.startswith(("kit", "disabled")):
        assert tracing is not None
        interceptors.append(TracingServerInterceptor(tracing))
    if variant.startswith("stock"):
        from opentelemetry.instrumentation.grpc import (
            aio_client_interceptors,
            aio_server_interceptor,
        )

        interceptors.append(aio_server_interceptor())
        client_interceptors = list(aio_client_interceptors())
    kit_hooks = tracing if variant.startswith(("kit", "disabled")) else None

    peer = f"127.0.0.1:{grpc_port}"
    stubs: dict[str, Any] = {}

    async def call(method: str, payload: bytes) -> bytes:
        full_method = f"/auth.v1.AuthService/{method}"
        if kit_hooks is None:
            result: bytes = await stubs[method](payload)
            return result
        with client_span(kit_hooks, "auth", method, full_method, peer) as (_, metadata):
            result = await stubs[method](payload, metadata=metadata)
            return result

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server = None if separate_grpc else await start_grpc(peer, interceptors)
        channel = grpc.aio.insecure_channel(peer, interceptors=client_interceptors or None)
        for method in ("Authenticate", "IssueToken"):
            stubs[method] = channel.unary_unary(f"/auth.v1.AuthService/{method}")
        yield
        await channel.close()
        if server is not None:
            await server.stop(1)
        if tracing is not None:
            await tracing.stop()

    app = FastAPI(lifespan=lifespan)

    class Login(BaseModel):
        email: str
        password: str

    @app.post("/user/login")
    async def login(body: Login) -> dict[str, str]:
        user = await call("Authenticate", body.email.encode())
        token = await call("IssueToken", user)
        return {"token": token.decode()}

    if variant.startswith(("kit", "disabled")):
        assert tracing is not None
        app.add_middleware(TracingMiddleware, tracing=tracing)
    if variant.startswith("stock"):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
    # Connections idle while the other variants are loaded: keep them open.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=3600,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it handled
        uvicorn.Server(config).run()


# ---------------------------------------------------------------- the OTLP sink


class Sink:
    """Counts exported spans per service (each variant names its own) and drops them."""

    def __init__(self) -> None:
        self.spans: dict[str, int] = {}

    async def start(self) -> int:
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        async def export(request: bytes, context: Any) -> bytes:
            for resource_spans in ExportTraceServiceRequest.FromString(request).resource_spans:
                service = next(
                    kv.value.string_value
                    for kv in resource_spans.resource.attributes
                    if kv.key == "service.name"
                )
                variant = service.split("-", 1)[1]
                count = sum(len(scope.spans) for scope in resource_spans.scope_spans)
                self.spans[variant] = self.spans.get(variant, 0) + count
            return b""  # an empty ExportTraceServiceResponse

        handler = grpc.unary_unary_rpc_method_handler(export, lambda b: b, lambda b: b)
        service, method = EXPORT_METHOD.lstrip("/").split("/")
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {method: handler})]
        )
        port: int = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    async def stop(self) -> None:
        await self._server.stop(None)


# ---------------------------------------------------------------- load and measurement


class Variant:
    """One variant's server processes, its connections, and what it has measured so far."""

    def __init__(self, name: str, processes: list[subprocess.Popen[bytes]], port: int) -> None:
        self.name = name
        self.processes = processes
        self.port = port
        self.connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.latencies: list[float] = []
        self.errors = 0
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self.slices: list[float] = []

    def cpu_seconds(self) -> float:
        """User + system CPU of the server processes, all threads."""
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    async def connect(self, count: int) -> None:
        for _ in range(count):
            self.connections.append(await asyncio.open_connection("127.0.0.1", self.port))

    async def load(self, seconds: float, record: bool) -> None:
        """Closed-loop load for `seconds`: every connection sends its next request as soon as
        the last is answered. Requests still in flight at the end are awaited and counted,
        so that the server's CPU and the requests it served cover the same work."""
        cpu, started = self.cpu_seconds(), time.perf_counter()
        deadline = started + seconds
        latencies: list[float] = []
        errors = await asyncio.gather(
            *(
                self._drive(reader, writer, deadline, latencies)
                for reader, writer in self.connections
            )
        )
        if record:
            elapsed = time.perf_counter() - started
            self.busy_s += elapsed
            self.cpu_s += self.cpu_seconds() - cpu
            self.latencies += latencies
            self.errors += sum(errors)
            self.slices.append(len(latencies) / elapsed)

    @staticmethod
    async def _drive(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        deadline: float,
        latencies: list[float],
    ) -> int:
        clock, errors = time.perf_counter, 0
        while (started := clock()) < deadline:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(clock() - started)
            errors += head[9:12] != b"200"
        return errors

    def close(self) -> None:
        for _, writer in self.connections:
            writer.close()
        for process in self.processes:
            process.send_signal(signal.SIGINT)


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine, all cores and processes."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def launch(name: str, sink_port: int, args: argparse.Namespace) -> Variant:
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env.update(VARIANTS[name])
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
    if args.stock_path:
        env["PYTHONPATH"] = args.stock_path
    command = [sys.executable, __file__, "--port", str(port), "--grpc-port", str(grpc_port)]
    if args.pin:
        # The child pins itself: code run between fork and exec (preexec_fn) trips gRPC's
        # fork handlers in this process, which serves the sink.
        command += ["--cpu", "1"]
    processes = []
    if args.grpc_process:
        processes.append(subprocess.Popen([*command, "--serve-grpc", name], env=env))
        command.append("--grpc-process")
    processes.append(subprocess.Popen([*command, "--serve", name], env=env))
    return Variant(name, processes, port)


async def wait_ready(variant: Variant) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in variant.processes):
            raise RuntimeError(f"a server of {variant.name} exited")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", variant.port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        if head[9:12] == b"200":
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{variant.name} not ready after 60 s")


def stock_available(stock_path: str | None) -> bool:
    code = "import opentelemetry.instrumentation.fastapi, opentelemetry.instrumentation.grpc"
    env = dict(os.environ, PYTHONPATH=stock_path or "")
    return (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True).returncode == 0
    )


async def bench(args: argparse.Namespace) -> None:
    if args.pin:
        os.sched_setaffinity(0, {0})
    sink = Sink()
    sink_port = await sink.start()
    names = [n for n in VARIANTS if not n.startswith("stock") or stock_available(args.stock_path)]
    if args.variants:
        names = [n for n in names if n in args.variants.split(",")]
    variants = [launch(name, sink_port, args) for name in names]
    try:
        for variant in variants:
            await wait_ready(variant)
            await variant.connect(args.concurrency)
        for variant in variants:
            await variant.load(args.warmup, record=False)
        cycles = max(1, round(args.seconds / args.slice))
        spans_before = dict(sink.spans)
        machine, own = machine_cpu_seconds(), time.process_time()
        started = time.perf_counter()
        for cycle in range(cycles):
            # Alternate the order too, so that no variant always follows the same neighbour.
            for variant in variants if cycle % 2 == 0 else variants[::-1]:
                await variant.load(args.slice, record=True)
        elapsed = time.perf_counter() - started
        # Let the last batches arrive (the schedule delay is 5 s), then count spans.
        await asyncio.sleep(6)
        servers = sum(v.cpu_s for v in variants)
        foreign = machine_cpu_seconds() - machine - (time.process_time() - own) - servers
    finally:
        for variant in variants:
            variant.close()
        for variant in variants:
            for process in variant.processes:
                await asyncio.to_thread(process.wait, 30)
        await sink.stop()
    rows = {
        v.name: row(v, sink.spans.get(v.name, 0) - spans_before.get(v.name, 0)) for v in variants
    }
    base = rows.get("untraced", next(iter(rows.values())))
    for values in rows.values():
        values["ratio"] = values["req_per_s"] / base["req_per_s"]
        values["cpu_ratio"] = base["server_cpu_us_per_req"] / values["server_cpu_us_per_req"]
    report(rows, args, foreign / (elapsed + 6))


def row(variant: Variant, spans: int) -> dict[str, Any]:
    requests = len(variant.latencies)
    latencies = sorted(variant.latencies)
    return {
        "req_per_s": requests / variant.busy_s,
        "server_cpu_us_per_req": variant.cpu_s / requests * 1e6,
        "p50_ms": latencies[requests // 2] * 1000,
        "p99_ms": latencies[int(requests * 0.99)] * 1000,
        "spans_per_req": spans / requests,
        "requests": requests,
        "errors": variant.errors,
        "slice_req_per_s_min_median_max": [
            round(min(variant.slices)),
            round(statistics.median(variant.slices)),
            round(max(variant.slices)),
        ],
    }


def report(rows: dict[str, dict[str, Any]], args: argparse.Namespace, foreign: float) -> None:
    print(f"{'variant':13} {'req/s':>6} {'ratio':>6} {'cpu µs/req':>10} {'cpu ratio':>9}", end="")
    print(f" {'p50 ms':>7} {'p99 ms':>7} {'spans/req':>9}")
    for name, values in rows.items():
        print(
            f"{name:13} {values['req_per_s']:6.0f} {values['ratio']:6.2f}"
            f" {values['server_cpu_us_per_req']:10.0f} {values['cpu_ratio']:9.2f}"
            f" {values['p50_ms']:7.1f} {values['p99_ms']:7.1f} {values['spans_per_req']:9.2f}"
        )
    print(f"other load on the machine meanwhile: {foreign:.2f} cores on average")
    document = {
        "benchmark": "POST /user/login (FastAPI on uvicorn/h11) making 2 unary grpc.aio calls",
        "grpc_server": "separate process" if args.grpc_process else "same process and loop",
        "ratio": "req/s of the variant / req/s untraced, while loaded",
        "cpu_ratio": "server CPU per request untraced / server CPU per request of the variant",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pinned": args.pin,
            "other_load_cores": round(foreign, 3),
        },
        "params": {
            key: getattr(args, key) for key in ("seconds", "slice", "warmup", "concurrency")
        },
        "variants": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="loaded time per variant")
    parser.add_argument("--slice", type=float, default=0.5, help="one turn of load, seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--variants", help="comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--stock-path", help="folder holding the stock instrumentations")
    parser.add_argument(
        "--grpc-process",
        action="store_true",
        help="serve gRPC from a second process (default: in the HTTP server's event loop)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the servers to CPU 1 and the load generator to CPU 0",
    )
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--serve-grpc", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--grpc-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.serve_grpc:
        serve_grpc(args.serve_grpc, args.grpc_port)
    elif args.serve:
        serve(args.serve, args.port, args.grpc_port, args.grpc_process)
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
