"""Fixtures shared by the whole suite: real etcd, MariaDB databases, service processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypedDict

import pymysql
import pytest

from shared.registry import EtcdRegistry
from tests.support import integration
from tests.support.etcd import EtcdCluster, EtcdServer
from tests.support.nats import nats_server
from tests.support.otlp import otlp_receiver
from tests.support.services import ServiceProcess, service_env
from tests.support.tls import tls_root

__all__ = ["nats_server", "otlp_receiver"]  # fixtures for every test module

# The kit's test kit (`in_process`); also a pytest11 entry point once the package is installed.
pytest_plugins = ["shared.testing.plugin"]


class MariaDBServer(TypedDict):
    """pymysql.connect's arguments for the MariaDB the tests use."""

    host: str
    port: int
    user: str
    password: str


MARIADB: MariaDBServer = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def pytest_configure(config: pytest.Config) -> None:
    # No collector runs beside the tests: a runtime built in this process stops without
    # waiting for its spans to reach one (TRACING_FLUSH_S, 2 s by default).
    os.environ.setdefault("TRACING_FLUSH_S", "0.05")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A test that uses a real server without the `integration` marker fails here.
    integration.check_fixtures(item)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    integration.forget(item)


@pytest.fixture
@integration.real_server
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
@integration.real_server
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """Three etcd members in one Raft cluster."""
    cluster = EtcdCluster(tmp_path / "etcd-cluster")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
@integration.real_server
async def registry(etcd: EtcdServer) -> AsyncIterator[EtcdRegistry]:
    registry = EtcdRegistry(etcd.endpoint, ttl_s=3)
    yield registry
    await registry.stop()


@pytest.fixture
@integration.real_server
def mariadb_database() -> Iterator[str]:
    """A new database on the machine's MariaDB, dropped afterwards; yields its URL.

    Fails (never skips) when MariaDB is not there: CI must run these tests.
    """
    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = pymysql.connect(**MARIADB)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


StartService = Callable[..., ServiceProcess]


@pytest.fixture
@integration.real_server
def start_service(tmp_path: Path, etcd: EtcdServer) -> Iterator[StartService]:
    """Start `python -m <module>` against the test's etcd; every process is stopped after."""
    started: list[ServiceProcess] = []

    def start(module: str, **env: str) -> ServiceProcess:
        env.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/users.db")
        env.setdefault("TLS_DEV_ROOT", str(tls_root(tmp_path)))
        log_path = tmp_path / f"{module}-{len(started)}.log"
        process = ServiceProcess(module, service_env(etcd.endpoint, **env), log_path).start()
        started.append(process)
        return process

    yield start
    # Callers first: a server stopped before its callers waits out its drain for their
    # long-lived streams (config watches), seconds per test.
    for process in reversed(started):
        process.stop()
