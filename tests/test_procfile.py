"""`make run`'s Procfile, run by honcho as the README says: the curl works, Ctrl-C is clean."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from tests.support.http import wait_until_ready
from tests.support.ports import free_port
from tests.support.services import ROOT, TEST_SECRET

BIN = Path(sys.executable).parent


async def test_the_procfile_starts_a_system_where_the_readme_curl_works(tmp_path: Path) -> None:
    http_port, etcd_port, nats_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "RUN_DIR": str(tmp_path),
        "ETCD_PORT": str(etcd_port),
        "ETCD_PEER_PORT": str(free_port()),
        "NATS_PORT": str(nats_port),
        "ETCD_ENDPOINT": f"127.0.0.1:{etcd_port}",
        "NATS_URL": f"nats://127.0.0.1:{nats_port}",  # the Procfile's own nats-server
        "GRPC_PORT": "0",
        "HTTP_PORT": str(http_port),
        "JWT_SECRET": TEST_SECRET,
        "DATABASE_URL": f"sqlite:///{tmp_path}/users.db",
        "OTEL_SDK_DISABLED": "true",
        "LOG_JSON": "false",
    }
    log_path = tmp_path / "honcho.log"
    with log_path.open("wb") as log:
        honcho = await asyncio.create_subprocess_exec(
            str(BIN / "honcho"), "start", cwd=ROOT, env=env, stdout=log, stderr=log
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
    finally:
        honcho.send_signal(signal.SIGINT)  # Ctrl-C
        await asyncio.wait_for(honcho.wait(), 30)

    logs = log_path.read_text()
    for service in ("config_service", "auth_service", "user_service"):
        assert f"{service} deregistered" in logs, logs[-3000:]
    for process in ("config_service", "auth_service", "user_service", "user_api", "etcd", "nats"):
        assert f"{process}.1 stopped (rc=0)" in logs, logs[-3000:]
