"""A MariaDB of the test's own (`mariadb-install-db` into a temp directory, `mariadbd` on a
free port), for the tests that take the database away: stop it, freeze it, start it again."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pymysql
import pytest

from tests.support import integration
from tests.support.ports import free_port, wait_for_port

START_TIMEOUT_S = 30.0


class MariaDbServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    async def install(self) -> None:
        """A new data directory: the system tables, root without a password."""
        await asyncio.to_thread(self._install)

    def _install(self) -> None:
        install = shutil.which("mariadb-install-db")
        if install is None:
            raise RuntimeError("mariadb-install-db is missing: install mariadb-server")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "install.log", "ab") as log:
            subprocess.run(
                [
                    install,
                    "--no-defaults",
                    f"--datadir={self.data_dir}",
                    "--auth-root-authentication-method=normal",
                    "--user=root",
                    "--skip-test-db",
                ],
                stdout=log,
                stderr=log,
                check=True,
                timeout=START_TIMEOUT_S,
            )

    async def start(self) -> None:
        """Start (or start again on the same port and data) and wait until it accepts."""
        integration.require("mariadb")
        await asyncio.to_thread(self._launch)
        await wait_for_port(self.port, timeout=START_TIMEOUT_S)

    def _launch(self) -> None:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        with open(self.root / "mariadbd.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    mariadbd,
                    "--no-defaults",
                    f"--datadir={self.data_dir}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.root / 'sock'}",
                    f"--pid-file={self.root / 'mariadbd.pid'}",
                    "--user=root",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=32M",
                ],
                stdout=log,
                stderr=log,
            )

    def create_database(self, name: str) -> None:
        with pymysql.connect(host="127.0.0.1", port=self.port, user="root") as connection:
            connection.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")

    def freeze(self) -> None:
        """Hung, not gone: connections stay open and nothing answers (a partition, a stall)."""
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
@integration.real_server
async def own_mariadb(tmp_path: Path) -> AsyncIterator[MariaDbServer]:
    """A MariaDB of the test's own, stopped afterwards whatever state it is left in."""
    server = MariaDbServer(tmp_path / "mariadb")
    await server.install()
    await server.start()
    try:
        yield server
    finally:
        server.stop()
