"""`make run`'s stack as processes for the benchmark: etcd, nats-server, the four services
(`python -m <service>`, as the Procfile starts them; tracing off) and the baseline app, on
free ports, with their own data in a temporary folder. mTLS is on, as under `make run`
(a development CA in the folder), unless the stack is made with `mtls=False`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = ("config_service", "auth_service", "user_service", "user_api")
SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    give_up = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > give_up:
                raise TimeoutError(f"nothing on port {port} after {timeout} s") from None
            time.sleep(0.05)


def wait_ready(url: str, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > give_up:
            raise TimeoutError(f"{url} not ready after {timeout} s")
        time.sleep(0.1)


class Stack:
    def __init__(
        self, run_dir: Path, database_url: str, extra_env: dict[str, str], *, mtls: bool = True
    ) -> None:
        self.extra_env = extra_env
        self.mtls = mtls
        self.run_dir = run_dir
        self.database_url = database_url
        self.etcd_port, self.peer_port, self.nats_port = free_port(), free_port(), free_port()
        self.http_port, self.baseline_port = free_port(), free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def etcd_endpoint(self) -> str:
        return f"127.0.0.1:{self.etcd_port}"

    @property
    def tls_root(self) -> Path:
        return self.run_dir / "tls"

    @property
    def kit_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def baseline_url(self) -> str:
        return f"http://127.0.0.1:{self.baseline_port}"

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def service_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ETCD_ENDPOINT": self.etcd_endpoint,
            "NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "GRPC_PORT": "0",
            "HTTP_PORT": str(self.http_port),
            "JWT_SECRET": SECRET,
            "DATABASE_URL": self.database_url,
            "OTEL_SDK_DISABLED": "true",
            "LOG_LEVEL": "WARNING",
            "MTLS": str(self.mtls).lower(),
            "TLS_DEV_ROOT": str(self.tls_root),
            # The login rounds come from one address as one account: measure the path, not
            # the throttle that would answer them 429.
            "LOGIN_LIMIT_PER_ADDRESS": "1000000/second",
            "LOGIN_LIMIT_PER_ACCOUNT": "1000000/second",
            "LOGIN_IN_FLIGHT_PER_ADDRESS": "1000000",
            **self.extra_env,
        }

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        client = f"http://{self.etcd_endpoint}"
        self._spawn(
            "etcd",
            [
                str(BIN / "etcd"),
                "--name=bench",
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=bench={peer}",
                "--log-level=error",
            ],
        )
        self._spawn(
            "nats",
            [
                str(BIN / "nats-server"),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.nats_port),
                "-js",
                "-sd",
                str(self.run_dir / "nats"),
            ],
        )
        wait_for_port(self.etcd_port)
        wait_for_port(self.nats_port)
        env = self.service_env()
        if self.mtls:
            # Issued before the services start, as compose's one-shot `secrets` step does:
            # the services then only read their certificates (no `cryptography` loaded).
            subprocess.run(
                [sys.executable, "-m", "shared.security.provision", "certs", str(self.tls_root)],
                cwd=ROOT,
                env=env,
                check=True,
            )
        for service in SERVICES:
            self._spawn(service, [sys.executable, "-m", service], env)
        wait_ready(f"{self.kit_url}/readyz")
        self._spawn(
            "baseline",
            [
                sys.executable,
                str(ROOT / "bench" / "baseline_app.py"),
                "--etcd",
                self.etcd_endpoint,
                "--port",
                str(self.baseline_port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--nats",
                f"nats://127.0.0.1:{self.nats_port}",
                *(["--tls-root", str(self.tls_root)] if self.mtls else []),
            ],
            env,
        )
        wait_for_port(self.baseline_port)

    def start_floors(self, timeout: float = 30.0) -> None:
        """bench/floor_app.py in place of each service (`floor_<service>`), on this stack's
        etcd, NATS and database; returns once each says it is ready."""
        for service in SERVICES:
            command = [
                sys.executable,
                str(ROOT / "bench" / "floor_app.py"),
                service,
                "--etcd",
                self.etcd_endpoint,
                "--nats",
                f"nats://127.0.0.1:{self.nats_port}",
                "--database-url",
                self.database_url,
                "--port",
                str(free_port()),
            ]
            self._spawn(f"floor_{service}", command, self.service_env())
        give_up = time.monotonic() + timeout
        for service in SERVICES:
            log = self.run_dir / f"floor_{service}.log"
            while b"ready" not in log.read_bytes():
                exited = self.processes[f"floor_{service}"].poll() is not None
                if exited or time.monotonic() > give_up:
                    raise RuntimeError(f"floor of {service} not ready: see {log}")
                time.sleep(0.1)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def stop_floors(self) -> None:
        self._stop([name for name in self.processes if name.startswith("floor_")])

    def stop(self) -> None:
        # Callers first, so that no server waits out its drain for their streams.
        self.stop_floors()
        self._stop(["baseline", *reversed(SERVICES), "nats", "etcd"])

    def _stop(self, names: list[str]) -> None:
        for name in names:
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _proc_mb(path: str, field: str) -> float:
    """A `field: N kB` line of a /proc file, in MB (0 when absent)."""
    with open(path) as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    return _proc_mb(f"/proc/{pid}/status", "VmRSS")


def pss_mb(pid: int) -> float:
    """Proportional set size: the process's own pages plus its share of those it maps with
    others (the four services map the same grpc, libpython and OpenSSL libraries)."""
    return _proc_mb(f"/proc/{pid}/smaps_rollup", "Pss")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
