"""Service processes started the way `make run` starts them: `python -m <service>`."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from shared.config import ServiceSettings
from shared.registry import EtcdRegistry, ServiceNode
from shared.security.roles import discover
from tests.support import integration

ROOT = Path(__file__).resolve().parents[2]
TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def settings_class(package: str) -> type[ServiceSettings]:
    """The settings class a service package defines (in its settings.py)."""
    module = importlib.import_module(f"{package}.settings")
    (cls,) = [
        value
        for _, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, ServiceSettings) and value.__module__ == module.__name__
    ]
    return cls


def spooling_services() -> set[str]:
    """The services that publish events and have no database to keep them in until NATS
    has them (user_service's transactional outbox): each must spool them to a file
    (BROKER_SPOOL_PATH), or what waits for NATS dies with the process."""
    return {
        name
        for name, role in discover(ROOT).items()
        if role.publishes and "database_url" not in settings_class(name).model_fields
    }


class ServiceProcess:
    def __init__(self, module: str, env: Mapping[str, str], log_path: Path) -> None:
        self.module = module
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        integration.require(self.module)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


async def wait_for_nodes(
    registry: EtcdRegistry, service: str, count: int, timeout: float = 20.0
) -> list[ServiceNode]:
    """Wait, by watching the registry, until `service` has exactly `count` nodes."""
    async with asyncio.timeout(timeout):
        async for nodes in registry.watch(service):
            if len(nodes) == count:
                return nodes
    raise AssertionError("unreachable")


def service_env(etcd_endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of a service process in the tests: mTLS on, as under `make run`,
    with the development CA under TLS_DEV_ROOT (give each test its own: `start_service`
    does; the default is relative to the process's working directory, as `make run`'s)."""
    return {
        "MTLS": "true",
        "TLS_DEV_ROOT": ".run/tls",
        "ETCD_ENDPOINT": etcd_endpoint,
        "ENVIRONMENT": "test",
        "GRPC_PORT": "0",
        "REGISTRY_TTL_S": "3",
        "JWT_SECRET": TEST_SECRET,
        # Events stay in each process unless a test brings its own NATS.
        "NATS_URL": "memory://",
        "OTEL_SDK_DISABLED": "true",
        "LOG_JSON": "false",
        # Load and fault tests log in far more often than a person: only the throttle
        # tests (tests/user_api/test_throttling.py) run with the real limits.
        "LOGIN_LIMIT_PER_ADDRESS": "1000000/minute",
        "LOGIN_LIMIT_PER_ACCOUNT": "1000000/minute",
        "LOGIN_IN_FLIGHT_PER_ADDRESS": "1000000",
        **extra,
    }
