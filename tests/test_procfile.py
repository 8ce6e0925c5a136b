"""`make run` as the README says: the curl works, Ctrl-C is clean, a taken port stops it
before anything starts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from shared.healthcheck import check_grpc
from tests.support.http import wait_until_ready
from tests.support.ports import free_port
from tests.support.services import ROOT, TEST_SECRET, spooling_services

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
THIS_PROCESS_NAME = Path("/proc/self/comm").read_text().strip()


def make_run(tmp_path: Path, *settings: str) -> list[str]:
    """`make run` with this venv, which is set up already (a fresh stamp: no install)."""
    stamp = tmp_path / "installed"
    stamp.touch()
    return [
        "make",
        "--no-print-directory",
        "run",
        f"VENV={BIN.parent}",
        f"STAMP={stamp}",
        *settings,
    ]


def run_env(tmp_path: Path) -> dict[str, str]:
    """This shell's environment, with nothing of a previous `make run` in it, nor of the
    `make test` the suite may run under (MAKELEVEL would make it a sub-make, `make[1]`)."""
    inherited = (
        "ETCD_ENDPOINT",
        "NATS_URL",
        "GRPC_PORT",
        "HTTP_PORT",
        "MAKELEVEL",
        "MAKEFLAGS",
        "MFLAGS",
        *PORT_SETTINGS,
    )
    return {
        **{key: value for key, value in os.environ.items() if key not in inherited},
        "PYTHONPATH": str(ROOT),
        "RUN_DIR": str(tmp_path / "run"),
        "JWT_SECRET": TEST_SECRET,
        "JWT_SECRET_FILE": str(tmp_path / "jwt_secret"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/users.db",
        "OTEL_SDK_DISABLED": "true",
        "LOG_JSON": "false",
    }


PORT_SETTINGS = (
    "HTTP_PORT",
    "ETCD_PORT",
    "ETCD_PEER_PORT",
    "NATS_PORT",
    "CONFIG_GRPC_PORT",
    "AUTH_GRPC_PORT",
    "USER_GRPC_PORT",
)


async def test_make_run_starts_a_system_where_the_readme_curl_works(tmp_path: Path) -> None:
    ports = {name: free_port() for name in PORT_SETTINGS}
    http_port = ports["HTTP_PORT"]
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        make = await asyncio.create_subprocess_exec(
            *make_run(tmp_path, *(f"{name}={port}" for name, port in ports.items())),
            cwd=ROOT,
            env=run_env(tmp_path),
            stdout=log,
            stderr=log,
            start_new_session=True,  # a terminal of its own, for Ctrl-C below
        )
    try:
        await wait_until_ready(f"http://127.0.0.1:{http_port}", timeout=60)
        curl = await asyncio.create_subprocess_exec(
            "curl", "-s", "-X", "POST", f"http://127.0.0.1:{http_port}/user/login",
            "-H", "Content-Type: application/x-www-form-urlencoded",
            "--data", "userName=micro&pwd=123",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(curl.communicate(), 10)
        assert json.loads(output)["user"] == {"id": 10001, "name": "micro"}
        # Each service listens where its make setting says.
        for name in ("ETCD_PORT", "NATS_PORT", "CONFIG_GRPC_PORT", "AUTH_GRPC_PORT"):
            socket.create_connection(("127.0.0.1", ports[name]), timeout=5).close()
        socket.create_connection(("127.0.0.1", ports["USER_GRPC_PORT"]), timeout=5).close()
        # mTLS is on, with the development CA `make run` made (no set-up step, secrets 0600):
        # a caller without a certificate is refused at the handshake, the CLI is an operator.
        tls = tmp_path / "run" / "tls"
        assert (tls / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
        assert not check_grpc("127.0.0.1", ports["AUTH_GRPC_PORT"], timeout_s=5)
        micro = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.cli", "--tls-dev-root", str(tls),
            "call", "user_service", "GetUser", '{"id": 10001}',
            "--etcd", f"127.0.0.1:{ports['ETCD_PORT']}",
            cwd=ROOT, env=run_env(tmp_path), stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        answer, _ = await asyncio.wait_for(micro.communicate(), 30)
        assert json.loads(answer)["user"]["name"] == "micro"
        # An operator creates an account (the request on stdin), which then logs in.
        account = {"name": "alice", "password": "a passphrase of her own"}
        create = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shared.cli", "--tls-dev-root", str(tls),
            "call", "user_service", "CreateUser", "-",
            "--etcd", f"127.0.0.1:{ports['ETCD_PORT']}",
            cwd=ROOT, env=run_env(tmp_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        created, _ = await asyncio.wait_for(create.communicate(json.dumps(account).encode()), 30)
        assert json.loads(created)["user"]["name"] == "alice"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            form = {"userName": "alice", "pwd": account["password"]}
            logged_in = await http.post("/user/login", data=form, timeout=10)
        assert logged_in.status_code == 200, logged_in.text
        assert logged_in.json()["user"]["name"] == "alice"
        # What waits for NATS in a service without a database outlives a crash: a spool file.
        for service in spooling_services():
            assert (tmp_path / "run" / service / "spool.sqlite3").is_file(), service
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        await asyncio.wait_for(make.wait(), 30)

    logs = log_path.read_text()
    assert f"user_api http://127.0.0.1:{http_port}" in logs.splitlines()[0]
    for service in ("config_service", "auth_service", "user_service"):
        assert f"{service} deregistered" in logs, logs[-3000:]
    for process in ("config_service", "auth_service", "user_service", "user_api", "etcd", "nats"):
        assert f"{process}.1 stopped (rc=0)" in logs, logs[-3000:]


async def test_make_run_stops_at_once_when_a_port_it_was_given_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        make = await asyncio.create_subprocess_exec(
            *make_run(tmp_path, f"NATS_PORT={port}"),
            cwd=ROOT,
            env=run_env(tmp_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(make.communicate(), 20)

    assert make.returncode != 0
    lines = stderr.decode().splitlines()
    holder = f"{THIS_PROCESS_NAME} (pid {os.getpid()})"
    assert lines[0].startswith(
        f"port {port} (NATS_PORT) is in use by {holder}; try: make run NATS_PORT="
    )
    assert all(line.startswith("make: ***") for line in lines[1:]), lines  # make's own trailer
    assert b"starting" not in stdout
    assert not (tmp_path / "run").exists(), "a server was started"
