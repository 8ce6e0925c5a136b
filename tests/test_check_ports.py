"""`make run`'s pre-flight (scripts/check_ports.py), run as the Makefile runs it, on ports
this test occupies itself: a taken port the user chose stops everything with one line; a
taken default of `make run`'s own servers is replaced by a free one."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.services import ROOT

SCRIPT = ROOT / "scripts" / "check_ports.py"
SETTINGS = (
    "HTTP_PORT",
    "ETCD_PORT",
    "ETCD_PEER_PORT",
    "NATS_PORT",
    "CONFIG_GRPC_PORT",
    "AUTH_GRPC_PORT",
    "USER_GRPC_PORT",
)
THIS_PROCESS = f"{Path('/proc/self/comm').read_text().strip()} (pid {os.getpid()})"


def check(**settings: str) -> subprocess.CompletedProcess[str]:
    # Every port is set (free ones) unless a test says otherwise, so that nothing on this
    # machine's default ports decides the outcome.
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    env.update({name: str(free_port()) for name in SETTINGS}, **settings)
    for name in [name for name, value in settings.items() if value == ""]:
        del env[name]
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30
    )


def exported(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)=(\S+)$", stdout, re.MULTILINE))


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port this process listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_free_ports_are_used_as_set() -> None:
    ports = {name: str(free_port()) for name in SETTINGS}
    done = check(**ports)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    env = exported(done.stdout)
    assert env["USER_API_HTTP_PORT"] == ports["HTTP_PORT"]  # user_api's alone
    assert "unset HTTP_PORT" in done.stdout.splitlines()
    assert env["NATS_PORT"] == ports["NATS_PORT"]
    assert env["USER_GRPC_PORT"] == ports["USER_GRPC_PORT"]
    assert env["ETCD_ENDPOINT"] == f"127.0.0.1:{ports['ETCD_PORT']}"
    assert env["NATS_URL"] == f"nats://127.0.0.1:{ports['NATS_PORT']}"


@pytest.mark.parametrize("setting", ["NATS_PORT", "HTTP_PORT", "USER_GRPC_PORT"])
def test_a_taken_port_that_was_set_stops_with_one_line(occupied: int, setting: str) -> None:
    done = check(**{setting: str(occupied)})

    assert done.returncode == 1
    assert done.stdout == ""  # nothing for the Makefile to start with
    (line,) = done.stderr.splitlines()
    match = re.fullmatch(
        rf"port {occupied} \({setting}\) is in use by {re.escape(THIS_PROCESS)}; "
        rf"try: make run {setting}=(\d+)",
        line,
    )
    assert match, line
    suggested = int(match.group(1))
    assert suggested != occupied
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # the suggestion is free


def test_a_taken_default_of_make_runs_own_servers_moves_to_a_free_port() -> None:
    # USER_GRPC_PORT's default (50053) is taken: by this test, or by something already.
    with socket.socket() as listener:
        try:
            listener.bind(("127.0.0.1", 50053))
            listener.listen()
        except OSError:
            pass
        done = check(USER_GRPC_PORT="")

    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    moved = int(exported(done.stdout)["USER_GRPC_PORT"])
    assert moved != 50053
    assert line.startswith("USER_GRPC_PORT: 50053 is in use")
    assert line.endswith(f"using {moved} (set USER_GRPC_PORT to choose)")


def test_the_same_port_for_two_settings_stops() -> None:
    port = str(free_port())
    done = check(NATS_PORT=port, ETCD_PORT=port)

    assert done.returncode == 1
    assert done.stderr.strip() == f"port {port} is set for both ETCD_PORT and NATS_PORT"


def test_a_setting_that_is_no_port_stops() -> None:
    done = check(HTTP_PORT="http")

    assert done.returncode == 1
    assert done.stderr.strip() == "HTTP_PORT=http is not a port number (1-65535)"
