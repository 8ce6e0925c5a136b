"""docker-compose.yml without Docker: load it as Compose would, and run its app services.

`load_compose(env)` reads the file and interpolates `${VAR:-default}` and friends the way
Compose does (strictly: an unset `${VAR}` without a default is an error here).
`LocalCompose` starts each app service's `command` as a local process with the service's
`environment`, after `localise` has pointed the compose host names at local servers and
given every port a free one; it orders the start by `depends_on` and waits on each
service's own `healthcheck` command, as `docker compose up --wait` does.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import yaml
from pymysql.constants import CLIENT
from sqlalchemy.engine import make_url

from tests.support import integration
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SQL_DIR = ROOT / "sql"

WILDCARD_HOSTS = frozenset(("", "0.0.0.0", "::", "[::]"))
# host:port where a URL or an endpoint names one: at the start, after `//`, `@` or `,`.
_HOST_PORT = re.compile(r"(?:^|//|@|,)(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    pass


# ---------------------------------------------------------------------------- loading


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e},
    ${VAR:+a}, ${VAR+a}; defaults and alternatives are interpolated in turn."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], env))
            i = end + 1
        elif name := _NAME.match(text, i + 1):
            out.append(_required(name.group(), env, f"${name.group()}"))
            i = name.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise InterpolationError(f"unclosed ${{ in {text!r}")


def _expand(expression: str, env: Mapping[str, str]) -> str:
    name = _NAME.match(expression)
    if name is None:
        raise InterpolationError(f"invalid interpolation ${{{expression}}}")
    rest = expression[name.end() :]
    if not rest:
        return _required(name.group(), env, f"${{{expression}}}")
    value = env.get(name.group())
    for operator in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(operator):
            argument = rest[len(operator) :]
            missing = value is None or (operator.startswith(":") and value == "")
            if operator.endswith("-"):
                return interpolate(argument, env) if missing else str(value)
            if operator.endswith("?"):
                if missing:
                    raise InterpolationError(f"required variable {name.group()}: {argument}")
                return str(value)
            return "" if missing else interpolate(argument, env)
    raise InterpolationError(f"invalid interpolation ${{{expression}}}")


def _required(name: str, env: Mapping[str, str], written: str) -> str:
    if name not in env:
        raise InterpolationError(f"{written} is not set and has no default")
    return env[name]


def _interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(item, env) for item in node]
    return node


def raw_compose() -> dict[str, Any]:
    """The file as written (YAML anchors and merge keys resolved, nothing interpolated)."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict), "docker-compose.yml is not a mapping"
    return loaded


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """The file as Compose sees it with `env` as the shell environment (and .env)."""
    loaded: dict[str, Any] = _interpolated(raw_compose(), env)
    return loaded


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored (with its licence) by the
    check-jsonschema package, a dev dependency: nothing outside the project is read."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text("utf-8"))
    return schema


# ------------------------------------------------------------------- reading services


def services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def app_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services built from this project (the others are third-party images), but for
    its one-shot steps."""
    return {
        name: spec
        for name, spec in services(compose).items()
        if "build" in spec and not is_one_shot(spec)
    }


def is_one_shot(spec: Mapping[str, Any]) -> bool:
    """A step run once to completion (restart "no"), not a service kept running."""
    return str(spec.get("restart", "")) == "no"


def one_shots(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in services(compose).items() if is_one_shot(spec)}


def environment(spec: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, list or mapping form, as strings (null → empty)."""
    env = spec.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else _scalar(value) for key, value in env.items()}


def _scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def command(spec: Mapping[str, Any]) -> list[str]:
    raw = spec.get("command")
    assert isinstance(raw, list), f"use the exec (list) form of command, not {raw!r}"
    return [str(part) for part in raw]


def python_module(argv: list[str]) -> str:
    """X of `python -m X ...`; fails on any other command."""
    assert argv[:2] == ["python", "-m"], f"not `python -m X`: {argv}"
    assert len(argv) >= 3, f"not `python -m X`: {argv}"
    return argv[2]


def module_path(module: str) -> Path:
    """The file `python -m module` runs from the project root."""
    base = ROOT.joinpath(*module.split("."))
    return base / "__main__.py" if base.is_dir() else base.with_suffix(".py")


def healthcheck_argv(spec: Mapping[str, Any]) -> list[str]:
    """The exec form of a service's healthcheck test (`["CMD", ...]` → `[...]`)."""
    test = spec["healthcheck"]["test"]
    assert isinstance(test, list), f"use the exec form [CMD, ...]: {test!r}"
    assert test[0] == "CMD", f"use [CMD, ...]: {test!r}"
    return [str(part) for part in test[1:]]


def depends_on(spec: Mapping[str, Any]) -> dict[str, str]:
    """Dependency → condition (the short list form means service_started)."""
    raw = spec.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: dependency["condition"] for name, dependency in raw.items()}


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    published: str
    target: int


def port_mappings(spec: Mapping[str, Any]) -> list[PortMapping]:
    mappings = []
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            mappings.append(
                PortMapping(
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    int(entry["target"]),
                )
            )
            continue
        parts = str(entry).split("/")[0].split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        published = parts[-2] if len(parts) >= 2 else ""
        mappings.append(PortMapping(host_ip, published, int(parts[-1])))
    return mappings


def exposed_ports(spec: Mapping[str, Any]) -> set[int]:
    """Ports a service declares it listens on, to other containers or to the host."""
    exposed = {int(str(port).split("/")[0]) for port in spec.get("expose") or []}
    return exposed | {mapping.target for mapping in port_mappings(spec)}


def host_ports(value: str) -> list[tuple[str, int]]:
    """Every host:port named in a setting's value (an endpoint, a URL, a list of URLs)."""
    return [(m.group("host"), int(m.group("port"))) for m in _HOST_PORT.finditer(value)]


def flag_value(argv: Iterable[str], flag: str) -> str | None:
    """The value of `--flag=value`, `--flag value` or `-f value` in a command line."""
    parts = list(argv)
    for index, part in enumerate(parts):
        if part.startswith(f"{flag}="):
            return part.split("=", 1)[1]
        if part == flag and index + 1 < len(parts):
            return parts[index + 1]
    return None


def volume_mounts(spec: Mapping[str, Any]) -> dict[str, str]:
    """Container path → source (a named volume or a ./path) for short and long syntax."""
    mounts = {}
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[str(volume["target"])] = str(volume.get("source", ""))
        else:
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
    return mounts


def start_order(compose: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    """`names` so that each comes after its dependencies among them (Kahn; fails on cycles)."""
    wanted = list(names)
    graph = {name: set(depends_on(services(compose)[name])) & set(wanted) for name in wanted}
    order: list[str] = []
    while graph:
        ready = sorted(name for name, deps in graph.items() if not deps - set(order))
        assert ready, f"depends_on has a cycle among {sorted(graph)}"
        order.extend(ready)
        for name in ready:
            del graph[name]
    return order


# ------------------------------------------------------------------------ local run


@dataclass(frozen=True)
class LocalServers:
    """What stands in for the compose infrastructure in a local run."""

    # "etcd:2379" → "127.0.0.1:41234", one entry per compose host:port the services dial.
    endpoints: Mapping[str, str]
    # DATABASE_URL names a user and password of the compose database; locally another one.
    database_url: str
    # Folders of the containers ("/secrets") → where the local run keeps their files.
    paths: Mapping[str, str] = field(default_factory=dict)


def localise(env: Mapping[str, str], servers: LocalServers) -> dict[str, str]:
    """A compose service environment made runnable on this machine."""
    local: dict[str, str] = {}
    for key, value in env.items():
        if key == "DATABASE_URL":
            value = servers.database_url
        elif key == "DATABASE_PASSWORD_FILE":
            continue  # the local database has its own URL, password included
        else:
            for container_path, local_path in servers.paths.items():
                if value.startswith(container_path + "/"):
                    value = local_path + value[len(container_path) :]
            for compose_endpoint, local_endpoint in servers.endpoints.items():
                value = value.replace(compose_endpoint, local_endpoint)
        if key.endswith("_HOST") and value in WILDCARD_HOSTS:
            value = "127.0.0.1"
        if key.endswith("_PORT") and value not in ("", "0"):
            value = str(free_port())
        local[key] = value
    unmapped = {
        key: value
        for key, value in local.items()
        if any(host not in ("127.0.0.1", "localhost") for host, _ in host_ports(value))
    }
    assert not unmapped, f"compose endpoints the local run does not stand in for: {unmapped}"
    return local


def load_sql(database_url: str, sql_dir: Path = SQL_DIR) -> None:
    """Run sql/*.sql in name order in the URL's database, as the MySQL image's
    /docker-entrypoint-initdb.d does on a new volume."""
    url = make_url(database_url)
    connection = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        client_flag=CLIENT.MULTI_STATEMENTS,
    )
    try:
        with connection.cursor() as cursor:
            for script in sorted(sql_dir.glob("*.sql")):
                cursor.execute(script.read_text())
                while cursor.nextset():
                    pass
        connection.commit()
    finally:
        connection.close()


def _local_argv(argv: list[str]) -> list[str]:
    """`python ...` in the image is this interpreter here."""
    assert argv[0] == "python", f"expected a python command, got {argv}"
    return [sys.executable, *argv[1:]]


def _base_env() -> dict[str, str]:
    # Only what a process needs to run here: the service sees the compose environment, not
    # the test runner's (no stray OTEL_* or ETCD_ENDPOINT from the shell or the Makefile).
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    return {key: os.environ[key] for key in keep if key in os.environ}


def run_one_shot(name: str, spec: Mapping[str, Any], servers: LocalServers, log: Path) -> None:
    """Run a one-shot step here, to completion, as compose runs it before its dependents:
    container paths and compose endpoints in its command are the local ones."""
    integration.require(name)
    argv = []
    for arg in command(spec):
        for container_path, local_path in servers.paths.items():
            if arg == container_path or arg.startswith(container_path + "/"):
                arg = local_path + arg[len(container_path) :]
        for compose_endpoint, local_endpoint in servers.endpoints.items():
            arg = arg.replace(compose_endpoint, local_endpoint)
        argv.append(arg)
    with log.open("ab") as output:
        done = subprocess.run(
            _local_argv(argv), cwd=ROOT, env=_base_env(), stdout=output, stderr=output, timeout=90
        )
    assert done.returncode == 0, f"{name} failed:\n{log.read_text()[-3000:]}"


@dataclass
class Replica:
    service: str
    index: int
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        integration.require(self.service)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                _local_argv(self.argv),
                cwd=ROOT,
                env={**_base_env(), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class LocalCompose:
    compose: Mapping[str, Any]
    servers: LocalServers
    log_dir: Path
    scale: Mapping[str, int] = field(default_factory=dict)
    replicas: dict[str, list[Replica]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in app_services(self.compose).items():
            self.replicas[name] = [
                Replica(
                    name,
                    index,
                    command(spec),
                    localise(environment(spec), self.servers),
                    self.log_dir / f"{name}-{index + 1}.log",
                )
                for index in range(self.scale.get(name, 1))
            ]
            for replica in self.replicas[name]:
                if "BROKER_SPOOL_PATH" in replica.env:  # a volume in compose: here, a folder
                    spool = self.log_dir / f"spool-{name}-{replica.index + 1}.sqlite3"
                    replica.env["BROKER_SPOOL_PATH"] = str(spool)

    def all_replicas(self) -> Iterator[Replica]:
        for replicas in self.replicas.values():
            yield from replicas

    async def up(self, timeout: float = 90.0) -> None:
        """Start in `depends_on` order; before a service, wait until the dependencies it
        needs healthy are; at the end, until every service is (`up --wait`)."""
        async with asyncio.timeout(timeout):
            for name in start_order(self.compose, self.replicas):
                for dependency, condition in depends_on(services(self.compose)[name]).items():
                    if condition == "service_healthy" and dependency in self.replicas:
                        await self.wait_healthy(dependency)
                for replica in self.replicas[name]:
                    replica.start()
            for name in self.replicas:
                await self.wait_healthy(name)

    def start(self, order: Iterable[str]) -> None:
        """Start every replica of the services in `order` at once, waiting for nothing."""
        for name in order:
            for replica in self.replicas[name]:
                replica.start()

    async def wait_all_healthy(self, timeout: float = 90.0) -> None:
        async with asyncio.timeout(timeout):
            for name in self.replicas:
                await self.wait_healthy(name)

    async def wait_healthy(self, service: str) -> None:
        argv = healthcheck_argv(services(self.compose)[service])
        for replica in self.replicas[service]:
            await self._wait_replica_healthy(replica, argv)

    async def _wait_replica_healthy(self, replica: Replica, argv: list[str]) -> None:
        # Docker polls the healthcheck too: a process gives no other sign of being ready.
        while True:
            if not replica.running:
                raise AssertionError(
                    f"{replica.service} #{replica.index + 1} exited:\n{replica.logs()[-4000:]}"
                )
            if await self.healthcheck(replica, argv) == 0:
                return
            await asyncio.sleep(0.2)

    @staticmethod
    async def healthcheck(replica: Replica, argv: list[str]) -> int:
        """Run the service's healthcheck as Docker would inside its container."""
        process = await asyncio.create_subprocess_exec(
            *_local_argv(argv),
            cwd=ROOT,
            env={**_base_env(), **replica.env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await process.wait()

    def down(self) -> None:
        """SIGTERM to every replica, dependents first, then wait for all of them."""
        stopping = [
            replica
            for name in reversed(start_order(self.compose, self.replicas))
            for replica in self.replicas[name]
        ]
        for replica in stopping:
            replica.terminate()
        for replica in stopping:
            replica.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {replica.log_path.name}\n{replica.logs()[-3000:]}"
            for replica in self.all_replicas()
        )
