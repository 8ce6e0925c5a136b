"""docker-compose.yml, checked without Docker: against the Compose schema, against the code
it runs (entry points, settings, ports, health checks), and by running its app services as
local processes with their compose environment until the README's login works, scaled out.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import json
import os
import re
import secrets
import socket
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import jsonschema
import opentelemetry.environment_variables
import opentelemetry.sdk.environment_variables
import pymysql
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from shared.config import ServiceSettings
from shared.registry import EtcdRegistry
from shared.registry.etcd import parse_endpoint
from shared.server.server import advertised_host
from shared.tracing import setup_tracing
from tests.support.compose import (
    COMPOSE_FILE,
    ROOT,
    SQL_DIR,
    WILDCARD_HOSTS,
    InterpolationError,
    LocalCompose,
    LocalServers,
    app_services,
    command,
    compose_schema,
    depends_on,
    environment,
    exposed_ports,
    flag_value,
    healthcheck_argv,
    host_ports,
    interpolate,
    load_compose,
    load_sql,
    module_path,
    one_shots,
    port_mappings,
    python_module,
    raw_compose,
    run_one_shot,
    services,
    start_order,
    volume_mounts,
)
from tests.support.etcd import EtcdServer
from tests.support.eventually import eventually
from tests.support.http import login
from tests.support.nats import NatsServer
from tests.support.otlp import OtlpReceiver, otlp_receiver
from tests.support.ports import wait_for_port
from tests.support.services import TEST_SECRET, settings_class, spooling_services

__all__ = ["otlp_receiver"]  # fixtures used below

# What a user may put in .env before `docker compose up` (nothing is required).
USER_ENV = {"JWT_SECRET": TEST_SECRET}
# The seed user's script (micro / 123), which a production database does not run.
SEED_SQL = "002_seed.sql"
# The README's scale-out command: --scale user_service=3 --scale auth_service=2.
README_SCALE = {"user_service": 3, "auth_service": 2}
# Every OTEL_* variable the OpenTelemetry API and SDK (with its OTLP exporter) read.
OTEL_VARIABLES = {
    name
    for module in (opentelemetry.environment_variables, opentelemetry.sdk.environment_variables)
    for name in dir(module)
    if name.startswith("OTEL_")
}
# Where the MySQL/MariaDB images run initialisation files from, and which files they run.
INITDB = "/docker-entrypoint-initdb.d"
INITDB_SUFFIXES = (".sh", ".sql", ".sql.gz", ".sql.xz", ".sql.zst")


PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PYPROJECT_DEPENDENCIES = {
    re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()
    for requirement in PYPROJECT["project"]["dependencies"]
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(USER_ENV)


@pytest.fixture(scope="module")
def apps(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return app_services(compose)


def service_packages() -> set[str]:
    """The project's runnable services: packages with __main__.py and settings.py."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return {
        path.parent.name
        for path in ROOT.glob("*/__main__.py")
        if (path.parent / "settings.py").exists()
        and any(fnmatch.fnmatch(path.parent.name, pattern) for pattern in include)
    }


def settings_from(
    cls: type[ServiceSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """The settings `python -m <service>` builds in a container with exactly `env`."""
    for name in cls.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def image_version(spec: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """(repository, numeric version) of `repo:v1.2.3-suffix`."""
    repository, _, tag = spec["image"].partition(":")
    match = re.match(r"v?(\d+(?:\.\d+)*)", tag)
    assert match, f"{spec['image']}: pin a version, not {tag or 'latest'}"
    return repository, tuple(int(part) for part in match.group(1).split("."))


# --------------------------------------------------------------------- the file itself


def test_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    # The draft the schema names ($schema), not one assumed here.
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for document in (raw_compose(), compose):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, "\n".join(errors)


def test_interpolation_behaves_like_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET $SET", env) == (
        "x d d  $SET x"
    )
    assert interpolate("${UNSET:-${SET}} ${SET:+alt} ${EMPTY:+alt}", env) == "x alt "
    with pytest.raises(InterpolationError, match="UNSET: needed"):
        interpolate("${UNSET:?needed}", env)
    with pytest.raises(InterpolationError, match="not set"):
        interpolate("${UNSET}", env)


# ------------------------------------------------------------------ wiring to the code


def test_every_service_of_the_project_runs_its_own_entry_point(
    apps: dict[str, dict[str, Any]],
) -> None:
    assert set(apps) == service_packages()
    for name, spec in apps.items():
        module = python_module(command(spec))
        assert module == name
        assert module_path(module).is_file(), f"{name}: no {module_path(module)}"


def test_secrets_are_made_once_before_what_needs_them(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    every = services(compose)
    steps = one_shots(compose)
    assert set(steps) == {"secrets", "etcd-auth"}
    for name, spec in steps.items():
        argv = command(spec)
        assert argv[:3] == ["python", "-m", "shared.security.provision"], name
        assert module_path(argv[2]).is_file()
        assert volume_mounts(spec)["/secrets"] == "secrets", name
    assert depends_on(every["etcd-auth"]) == {
        "secrets": "service_completed_successfully",
        "etcd": "service_healthy",
    }
    for name in ("nats", "mysql"):
        assert depends_on(every[name])["secrets"] == "service_completed_successfully"
    assert flag_value(command(every["nats"]), "-c") == "/secrets/nats.conf"
    for name, spec in apps.items():
        env = environment(spec)
        # Each service is its own NATS and etcd user, with its own certificate.
        assert depends_on(spec)["etcd-auth"] == "service_completed_successfully", name
        assert env["NATS_NKEY_SEED_FILE"] == f"/secrets/nats-users/{name}.nk"
        assert env["ETCD_USERNAME"] == name
        assert env["ETCD_PASSWORD_FILE"] == f"/secrets/etcd-users/{name}.password"
        assert env["MTLS"] == "true"
        assert env["TLS_DIR"] == f"/secrets/tls/service/{name}"
        assert volume_mounts(spec)["/secrets"] == "secrets", name


def test_every_variable_a_service_gets_is_a_setting_it_reads(
    apps: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, spec in apps.items():
        env = environment(spec)
        cls = settings_class(name)
        fields = {field.upper() for field in cls.model_fields}
        unread = set(env) - fields - OTEL_VARIABLES
        assert not unread, f"{name} is given variables no code reads: {sorted(unread)}"

        settings = settings_from(cls, env, monkeypatch)  # also validates every value

        for key, value in env.items():
            if key in fields:
                actual = getattr(settings, key.lower())
                if isinstance(actual, SecretStr):
                    actual = actual.get_secret_value()
                assert str(actual).lower() == value.lower(), (name, key)


def test_the_tracing_variables_configure_the_kits_tracing(
    apps: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, spec in apps.items():
        otel = {k: v for k, v in environment(spec).items() if k.startswith("OTEL_")}
        assert otel.get("OTEL_SDK_DISABLED", "false") != "true", name
        for variable in OTEL_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        for variable, value in otel.items():
            monkeypatch.setenv(variable, value)

        tracing = setup_tracing(name, version="0", environment="development", set_global=False)
        try:
            assert tracing.enabled
            assert tracing.service_name == name
        finally:
            tracing.shutdown()


def test_endpoints_name_compose_services_on_ports_they_listen_on(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    every = services(compose)
    for name, spec in apps.items():
        for key, value in environment(spec).items():
            for host, port in host_ports(value):
                assert host in every, f"{name} {key}: {host} is not a compose service"
                assert port in exposed_ports(every[host]), f"{name} {key}: {host}:{port}"
                assert host in depends_on(spec), f"{name} dials {host} but does not depend on it"


def test_etcd_nats_mysql_and_jaeger_are_where_the_services_look(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    every = services(compose)
    etcd, nats, mysql, jaeger = (every[name] for name in ("etcd", "nats", "mysql", "jaeger"))
    for name, spec in apps.items():
        env = environment(spec)
        assert parse_endpoint(env["ETCD_ENDPOINT"]) == ("etcd", 2379), name
        assert env["NATS_URL"] == "nats://nats:4222", name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317", name

    etcd_argv = command(etcd)
    client_url = flag_value(etcd_argv, "--listen-client-urls") or ""
    assert client_url.endswith(":2379")
    assert flag_value(etcd_argv, "--advertise-client-urls") == "http://etcd:2379"

    nats_argv = command(nats)
    assert "-js" in nats_argv
    assert (flag_value(nats_argv, "-p") or "4222") == "4222"

    database = make_url(environment(apps["user_service"])["DATABASE_URL"])
    mysql_env = environment(mysql)
    assert database.get_backend_name() == "mysql"
    assert (database.host, database.port) == ("mysql", 3306)
    assert database.database == mysql_env["MARIADB_DATABASE"]
    assert database.username == mysql_env["MARIADB_USER"]
    # No password in the file: both read the one the `secrets` step generated.
    assert database.password is None
    password_file = environment(apps["user_service"])["DATABASE_PASSWORD_FILE"]
    assert password_file == mysql_env["MARIADB_PASSWORD_FILE"]

    assert 4317 in exposed_ports(jaeger)
    assert [(p.published, p.target) for p in port_mappings(jaeger)] == [("16686", 16686)]


def test_infrastructure_images_are_pinned_to_supported_versions(compose: dict[str, Any]) -> None:
    every = services(compose)
    etcd, etcd_version = image_version(every["etcd"])
    assert etcd.endswith("/etcd")
    assert etcd_version >= (3, 5)
    nats, nats_version = image_version(every["nats"])
    assert nats == "nats"
    assert nats_version >= (2, 10)
    mysql, mysql_version = image_version(every["mysql"])
    if mysql == "mariadb":
        assert mysql_version >= (10, 6)
    else:
        # MySQL 8 logs in with caching_sha2_password, which PyMySQL does only with
        # `cryptography` installed: the image would need it.
        assert mysql == "mysql"
        assert mysql_version >= (8,)
        assert "cryptography" in PYPROJECT_DEPENDENCIES
    jaeger, jaeger_version = image_version(every["jaeger"])
    if jaeger.endswith("jaegertracing/all-in-one"):
        assert jaeger_version >= (1, 35)
        assert environment(every["jaeger"]).get("COLLECTOR_OTLP_ENABLED") == "true"
    else:
        assert jaeger.endswith("jaegertracing/jaeger")
        assert jaeger_version >= (2,)


def test_user_api_serves_its_port_to_the_proxy_only(apps: dict[str, dict[str, Any]]) -> None:
    api = apps["user_api"]
    env = environment(api)

    assert env["HTTP_HOST"] in WILDCARD_HOSTS
    # `--scale user_api=3`: replicas cannot share a host port; the proxy publishes 8080.
    assert not port_mappings(api)
    assert int(env["HTTP_PORT"]) in exposed_ports(api)
    # Its metrics on a port of its own (served in production too), which the proxy does not
    # pass on: deploy/compose/nginx.conf proxies to the HTTP port only.
    assert int(env["METRICS_PORT"]) in exposed_ports(api)
    assert env["METRICS_PORT"] != env["HTTP_PORT"]


def test_data_lives_in_volumes_and_sql_initialises_the_database(compose: dict[str, Any]) -> None:
    every = services(compose)
    named = set(compose.get("volumes") or {})
    data_dirs = {
        "etcd": flag_value(command(every["etcd"]), "--data-dir"),
        "nats": flag_value(command(every["nats"]), "-sd"),
        "mysql": "/var/lib/mysql",
    }
    for service, data_dir in data_dirs.items():
        assert data_dir, f"{service}: no data directory"
        source = volume_mounts(every[service]).get(data_dir)
        assert source in named, f"{service}: {data_dir} is not on a named volume"

    initdb = volume_mounts(every["mysql"])[INITDB]
    assert (COMPOSE_FILE.parent / initdb).resolve() == (ROOT / "sql").resolve()
    scripts = sorted(path.name for path in (ROOT / "sql").iterdir())
    assert scripts
    assert all(name.endswith(INITDB_SUFFIXES) for name in scripts), scripts


def test_events_without_a_database_wait_in_a_spool_on_a_volume(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    named = set(compose.get("volumes") or {})
    assert {"auth_service", "user_api"} <= spooling_services()  # and a generated service
    for service in spooling_services():
        path = PurePosixPath(environment(apps[service])["BROKER_SPOOL_PATH"])
        # Replicas share the volume; each keeps a file of its own, named by its hostname.
        assert "{hostname}" in path.name, service
        assert volume_mounts(apps[service]).get(str(path.parent)) in named, service


def test_every_service_is_health_checked_and_waits_only_on_checked_services(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    every = services(compose)
    for name, spec in every.items():
        if name in one_shots(compose):
            continue  # a step that ends: its exit status is its health
        check = spec.get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} has its healthcheck disabled"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, condition in depends_on(spec).items():
            assert dependency in every, f"{name} depends on unknown {dependency}"
            if dependency in one_shots(compose):
                assert condition == "service_completed_successfully", (name, dependency)
            else:
                assert condition in ("service_started", "service_healthy"), (name, dependency)
    assert start_order(compose, every)  # no cycle

    for name, spec in apps.items():
        env = environment(spec)
        argv = healthcheck_argv(spec)
        assert argv[:3] == ["python", "-m", "shared.healthcheck"], name
        assert module_path(argv[2]).is_file()
        # What the service serves: gRPC, HTTP, or either when it serves both.
        modes = {
            mode for mode, port in (("grpc", "GRPC_PORT"), ("http", "HTTP_PORT")) if port in env
        }
        assert len(argv) == 4, name
        assert argv[3] in modes, name


def test_grpc_services_scale_out(apps: dict[str, dict[str, Any]]) -> None:
    grpc_services = {n: s for n, s in apps.items() if "GRPC_PORT" in environment(s)}
    assert set(README_SCALE) <= set(grpc_services)
    for name, spec in apps.items():
        assert "container_name" not in spec, f"{name}: a fixed name cannot be scaled"
    for name, spec in grpc_services.items():
        env = environment(spec)
        # Every replica binds the same fixed port in its own container, none on the host...
        assert "ports" not in spec, f"{name}: published ports clash between replicas"
        assert env["GRPC_HOST"] in WILDCARD_HOSTS
        assert int(env["GRPC_PORT"]) > 0
        if "expose" in spec:
            assert int(env["GRPC_PORT"]) in exposed_ports(spec), f"{name}: expose is stale"
        # ...and registers its container's own address, which other containers reach.
        assert "ADVERTISE_HOST" not in env
        own_address = socket.gethostbyname(socket.gethostname())
        assert advertised_host(env["GRPC_HOST"], None) == own_address


def test_secrets_come_from_the_environment_only() -> None:
    raw = raw_compose()
    raw_apps = app_services(raw)
    auth = raw_apps["auth_service"]
    assert environment(auth)["JWT_SECRET"] == "${JWT_SECRET:-}"
    # Without one, the key is made once on a volume the replicas share, not in the image.
    key_dir = str(Path(environment(auth)["JWT_SECRET_FILE"]).parent)
    assert any(v.split(":")[1] == key_dir for v in auth["volumes"] if not v.startswith("."))
    assert load_compose({})  # `docker compose up` needs no set-up step

    for name, spec in services(raw).items():
        for key, value in environment(spec).items():
            if (
                re.search("SECRET|PASSWORD|TOKEN", key)
                and key != "MARIADB_RANDOM_ROOT_PASSWORD"
                # A path: the secret is kept in a volume.
                and not key.endswith("_FILE")
            ):
                assert value.startswith("${"), f"{name} {key} is written into the file"

    # No default password anywhere in the file (the database's is generated, in a volume).
    assert "micro}" not in COMPOSE_FILE.read_text()
    assert "MYSQL_PASSWORD" not in COMPOSE_FILE.read_text()


# ------------------------------------------------------------- running it, locally


@pytest.fixture
def database(mariadb_database: str) -> str:
    """A new MariaDB database initialised from sql/ as the compose database is."""
    load_sql(mariadb_database)
    return mariadb_database


@pytest.fixture
async def nats_server(compose: dict[str, Any], tmp_path: Path) -> AsyncIterator[NatsServer]:
    """NATS as compose runs it: with the users the `secrets` step generated."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    servers = LocalServers(endpoints={}, database_url="", paths={"/secrets": str(secrets)})
    run_one_shot("secrets", services(compose)["secrets"], servers, tmp_path / "secrets.log")
    server = NatsServer(tmp_path / "nats", config=secrets / "nats.conf")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def servers_for(
    compose: dict[str, Any],
    etcd: EtcdServer,
    nats_server: NatsServer,
    otlp_receiver: OtlpReceiver,
    database_url: str,
    tmp_path: Path,
) -> LocalServers:
    servers = LocalServers(
        endpoints={
            "etcd:2379": etcd.endpoint,
            "nats:4222": f"127.0.0.1:{nats_server.port}",
            "jaeger:4317": f"127.0.0.1:{otlp_receiver.port}",
        },
        database_url=database_url,
        paths={"/secrets": str(tmp_path / "secrets")},
    )
    # etcd's auth on, as the `etcd-auth` step does before the services start.
    run_one_shot("etcd-auth", services(compose)["etcd-auth"], servers, tmp_path / "etcd-auth.log")
    return servers


@pytest.fixture
def local_servers(
    compose: dict[str, Any],
    etcd: EtcdServer,
    nats_server: NatsServer,
    otlp_receiver: OtlpReceiver,
    database: str,
    tmp_path: Path,
) -> LocalServers:
    return servers_for(compose, etcd, nats_server, otlp_receiver, database, tmp_path)


@pytest.fixture
def local_compose(
    request: pytest.FixtureRequest,
    compose: dict[str, Any],
    local_servers: LocalServers,
    tmp_path: Path,
) -> Iterator[LocalCompose]:
    scale: dict[str, int] = getattr(request, "param", {})
    system = LocalCompose(compose, local_servers, tmp_path, scale=scale)
    try:
        yield system
    finally:
        system.down()


@pytest.fixture
async def api(local_compose: LocalCompose) -> AsyncIterator[httpx.AsyncClient]:
    (replica,) = local_compose.replicas["user_api"]
    base_url = f"http://127.0.0.1:{replica.env['HTTP_PORT']}"
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield http


def as_user(name: str, system: LocalCompose) -> tuple[str, str]:
    """The etcd login of `name` in the local run (etcd's auth is on)."""
    env = system.replicas[name][0].env
    return name, Path(env["ETCD_PASSWORD_FILE"]).read_text().strip()


async def scraped(metrics_port: str, name: str) -> list[Sample]:
    """The samples of metric `name` on a service's metrics port."""
    async with httpx.AsyncClient() as scraper:
        text = (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def metric(metrics_port: str, name: str) -> dict[str, float]:
    """A counter's samples on a service's metrics port, by their `subject` label."""
    return {s.labels.get("subject", ""): s.value for s in await scraped(metrics_port, name)}


async def handled_ok(metrics_port: str, method: str) -> int:
    return int(
        sum(
            sample.value
            for sample in await scraped(metrics_port, "grpc_server_handled_total")
            if sample.labels.get("grpc_method", "").endswith(f"/{method}")
            and sample.labels.get("grpc_code") == "OK"
        )
    )


@pytest.mark.integration
@pytest.mark.parametrize("local_compose", [README_SCALE], indirect=True)
async def test_the_readme_login_works_on_the_compose_services_scaled_out(
    local_compose: LocalCompose,
    api: httpx.AsyncClient,
    etcd: EtcdServer,
    otlp_receiver: OtlpReceiver,
) -> None:
    await local_compose.up()

    # The README's curl: -X POST --data 'userName=micro&pwd=123' (a form, the seeded user).
    first = await api.post(
        "/user/login",
        content="userName=micro&pwd=123",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert first.status_code == 200, first.text + local_compose.logs()
    assert first.json()["token"]
    assert first.json()["user"] == {"id": 10001, "name": "micro"}
    for _ in range(11):
        assert (await login(api)).status_code == 200

    # Each replica registered the address and the port compose gives it...
    username, password = as_user("user_api", local_compose)
    registry = EtcdRegistry(etcd.endpoint, username=username, password=password)
    try:
        for service, count in README_SCALE.items():
            nodes = await registry.get(service)
            replicas = local_compose.replicas[service]
            assert len(replicas) == count
            assert sorted(node.address for node in nodes) == sorted(
                f"127.0.0.1:{replica.env['GRPC_PORT']}" for replica in replicas
            )
    finally:
        await registry.stop()
    # ...and user_api spread the twelve logins over all of them.
    for service, method in (
        ("user_service", "VerifyCredentials"),
        ("auth_service", "MakeAccessToken"),
    ):
        served = [
            await handled_ok(replica.env["METRICS_PORT"], method)
            for replica in local_compose.replicas[service]
        ]
        assert min(served) >= 1, (service, served)
        assert sum(served) >= 12, (service, served)

    # The trace reaches "jaeger" (here an OTLP receiver) across the three services.
    spans = await otlp_receiver.wait_for(
        lambda s: (
            {"user_api", "user_service", "auth_service"} <= {x.service_name for x in s}
            # The request's span ends last: it may come in a later export than its children.
            and any(x.service_name == "user_api" and x.kind == "SERVER" for x in s)
        ),
        timeout=15,
    )
    root = next(s for s in spans if s.service_name == "user_api" and s.kind == "SERVER")
    assert any(s.trace_id == root.trace_id for s in spans if s.service_name == "user_service")


@pytest.mark.integration
async def test_the_services_start_in_any_order_and_wait_for_etcd_and_nats(
    local_compose: LocalCompose,
    api: httpx.AsyncClient,
    compose: dict[str, Any],
    etcd: EtcdServer,
    nats_server: NatsServer,
) -> None:
    etcd.stop()
    await nats_server.stop()
    # Dependents first, all at once, with etcd and NATS down: nobody waits for anybody.
    order = list(reversed(start_order(compose, local_compose.replicas)))
    assert order[0] == "user_api"
    local_compose.start(order)

    # Every process is up and running without them: the gRPC services serve their
    # metrics (the first thing they open) and user_api answers that it is not ready.
    async with asyncio.timeout(60):
        for replica in local_compose.all_replicas():
            if "METRICS_PORT" in replica.env:
                await wait_for_port(int(replica.env["METRICS_PORT"]), timeout=60)
        while await readyz_status(api) != 503:
            assert all(r.running for r in local_compose.all_replicas()), local_compose.logs()
            await asyncio.sleep(0.2)
    assert all(replica.running for replica in local_compose.all_replicas())

    await asyncio.to_thread(etcd.start)
    await nats_server.start()
    await local_compose.wait_all_healthy()

    response = await login(api)
    assert response.status_code == 200, response.text + local_compose.logs()


async def readyz_status(api: httpx.AsyncClient) -> int | None:
    try:
        return (await api.get("/readyz")).status_code
    except httpx.TransportError:
        return None


# ------------------------------------------------------- the front door (the proxy)

NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
PROXY_CONF_TARGET = "/etc/nginx/conf.d/default.conf"


def nginx_directives(text: str) -> list[list[str]]:
    """Each `name arg...;` of an nginx config, comments dropped, blocks flattened."""
    code = re.sub(r"#[^\n]*", "", text)
    return [statement.split() for statement in re.split(r"[;{}]", code) if statement.split()]


def test_only_the_proxy_publishes_the_readme_port(compose: dict[str, Any]) -> None:
    published = {
        name: mapping
        for name, spec in services(compose).items()
        for mapping in port_mappings(spec)
        if mapping.published == "8080"
    }
    assert set(published) == {"proxy"}
    assert published["proxy"].host_ip in ("", "127.0.0.1")  # the README's curl
    # Jaeger's UI is the only other published port.
    others = {
        (name, m.published) for name, spec in services(compose).items() for m in port_mappings(spec)
    }
    assert others == {("proxy", "8080"), ("jaeger", "16686")}


def test_the_proxy_routes_to_every_user_api_replica(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    proxy = services(compose)["proxy"]
    image, version = image_version(proxy)
    assert image == "nginx"
    # `server ... resolve` (re-resolving replicas as they come and go) is in open-source
    # nginx from 1.27.3 on.
    assert version >= (1, 27, 3)
    assert "build" not in proxy

    source = volume_mounts(proxy)[PROXY_CONF_TARGET]
    assert (COMPOSE_FILE.parent / source).resolve() == NGINX_CONF
    directives = nginx_directives(NGINX_CONF.read_text())

    (mapping,) = port_mappings(proxy)
    assert ["listen", str(mapping.target)] in directives

    # Docker's embedded DNS answers `user_api` with every replica's address.
    resolvers = [d for d in directives if d[0] == "resolver"]
    assert resolvers
    assert resolvers[0][1] == "127.0.0.11"
    assert any(d[0] == "zone" for d in directives), "`resolve` needs a shared memory zone"

    env = environment(apps["user_api"])
    (server,) = [d for d in directives if d[0] == "server" and len(d) > 1]
    assert server[1] == f"user_api:{env['HTTP_PORT']}"
    assert "resolve" in server[2:], "without `resolve` nginx sticks to the first replicas"
    upstream = next(d[1] for d in directives if d[0] == "upstream")
    assert ["proxy_pass", f"http://{upstream}"] in directives


def test_logins_are_counted_per_client_behind_the_proxy(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    from user_api.settings import UserApiSettings

    directives = nginx_directives(NGINX_CONF.read_text())
    # nginx writes the address it saw; appending ($proxy_add_x_forwarded_for) would pass on
    # whatever the client wrote first, which user_api would then take for its address.
    headers = {d[1]: d[2:] for d in directives if d[0] == "proxy_set_header"}
    assert headers["X-Forwarded-For"] == ["$remote_addr"]
    # ...and user_api believes it: by default only a proxy on its own host is.
    env = environment(apps["user_api"])
    assert UserApiSettings.model_fields["forwarded_allow_ips"].default == "127.0.0.1"
    assert env["FORWARDED_ALLOW_IPS"] == "*"
    assert port_mappings(services(compose)["user_api"]) == []  # only its peers reach it


def test_the_proxy_passes_websockets_and_lets_them_idle_as_user_api_does(
    apps: dict[str, dict[str, Any]],
) -> None:
    from user_api.settings import UserApiSettings

    directives = nginx_directives(NGINX_CONF.read_text())
    headers = {d[1]: d[2:] for d in directives if d[0] == "proxy_set_header"}
    assert headers["Upgrade"] == ["$http_upgrade"]
    (connection,) = headers["Connection"]
    assert ["map", "$http_upgrade", connection] in directives
    (read_timeout,) = [d[1] for d in directives if d[0] == "proxy_read_timeout"]
    idle = UserApiSettings.model_fields["ws_idle_timeout_s"].default
    assert float(read_timeout.removesuffix("s")) > idle


def test_the_proxy_is_health_checked_through_user_api(
    compose: dict[str, Any], apps: dict[str, dict[str, Any]]
) -> None:
    from user_api.handlers import router

    proxy = services(compose)["proxy"]
    assert depends_on(proxy) == {"user_api": "service_healthy"}
    argv = healthcheck_argv(proxy)
    url = argv[-1]
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/\S*)", url)
    assert match, argv
    (mapping,) = port_mappings(proxy)
    assert int(match.group(1)) == mapping.target
    routes = {getattr(route, "path", None) for route in router.routes}
    assert match.group(2) in routes, f"user_api serves no {match.group(2)}"
    assert apps["user_api"]["healthcheck"]["test"]


# ------------------------------------------------- production mode, run locally


@pytest.fixture
def production_database(mariadb_database: str, tmp_path: Path) -> Iterator[str]:
    """The database as production has it: the schema without the seed user, reached as a
    user of its own with a generated password (production refuses root's empty one)."""
    schema = tmp_path / "sql"
    schema.mkdir()
    for script in SQL_DIR.glob("*.sql"):
        if script.name != SEED_SQL:
            (schema / script.name).write_text(script.read_text())
    load_sql(mariadb_database, schema)
    url = make_url(mariadb_database)
    # Not a digit after the colon of `user:password@`: it would read as a host and port.
    user, password = f"prod_{secrets.token_hex(4)}", f"pw-{secrets.token_urlsafe(24)}"
    admin = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username)
    try:
        with admin.cursor() as cursor:
            cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
            cursor.execute(f"GRANT ALL ON `{url.database}`.* TO %s@'%%'", (user,))
        yield url.set(username=user, password=password).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        admin.close()


@pytest.fixture
def production_compose(
    compose: dict[str, Any],
    etcd: EtcdServer,
    nats_server: NatsServer,
    otlp_receiver: OtlpReceiver,
    production_database: str,
    tmp_path: Path,
) -> Iterator[LocalCompose]:
    servers = servers_for(compose, etcd, nats_server, otlp_receiver, production_database, tmp_path)
    system = LocalCompose(compose, servers, tmp_path)
    for replica in system.all_replicas():
        replica.env["ENVIRONMENT"] = "production"
    try:
        yield system
    finally:
        system.down()


async def as_operator(
    system: LocalCompose, etcd: EtcdServer, secrets_dir: Path, *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    """`micro` as an operator of this deployment: a certificate from its CA, etcd's root."""
    micro = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.cli", "--tls-dev-root", str(secrets_dir / "tls"),
        *args, "--etcd", etcd.endpoint,
        cwd=ROOT,
        env={
            **os.environ,
            "ETCD_USERNAME": "root",
            "ETCD_PASSWORD_FILE": str(secrets_dir / "etcd-users" / "root.password"),
        },
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(micro.communicate(stdin.encode()), 30)
    assert micro.returncode is not None
    return micro.returncode, out.decode(), err.decode() + system.logs()[-2000:]


@pytest.mark.integration
async def test_production_mode_runs_on_what_the_secrets_step_made(
    production_compose: LocalCompose, etcd: EtcdServer, tmp_path: Path
) -> None:
    (replica,) = production_compose.replicas["user_api"]
    # The gateway on, for a user's own record: without reflection, as production serves.
    replica.env |= {"GATEWAY_ENABLED": "true", "GATEWAY_ALLOW": "user_service.GetUser"}
    await production_compose.up()
    base_url = f"http://127.0.0.1:{replica.env['HTTP_PORT']}"
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        assert (await login(http)).status_code == 401  # no seed user in production
        for path in ("/docs", "/openapi.json", "/debug/breakers", "/portal", "/metrics"):
            assert (await http.get(path)).status_code == 404, path

        # The first account is an operator's doing, the request on stdin.
        account = {"name": "alice", "password": "a passphrase of her own"}
        code, out, err = await as_operator(
            production_compose, etcd, tmp_path / "secrets",
            "call", "user_service", "CreateUser", "-", stdin=json.dumps(account),
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["user"]["name"] == "alice"
        code, _, err = await as_operator(
            production_compose, etcd, tmp_path / "secrets",
            "call", "user_service", "CreateUser", "-",
            stdin=json.dumps({"name": "bob", "password": "short"}),
        )  # fmt: skip
        assert code == 1
        assert "INVALID_ARGUMENT: password: 8 to 1024 characters" in err
        # The rest of the operator's tools: health, and configuration through config_service.
        code, out, err = await as_operator(
            production_compose, etcd, tmp_path / "secrets", "health", "user_service"
        )
        assert code == 0, err
        assert out.strip().endswith("SERVING")
        code, out, err = await as_operator(
            production_compose, etcd, tmp_path / "secrets", "config", "get", "user_api"
        )
        assert code == 0, err
        assert json.loads(out)["request_budget_s"] == 3.0  # config_service's seed

        logged_in = await login(http, "alice", account["password"])
        assert logged_in.status_code == 200, logged_in.text + production_compose.logs()
        auth = {"Authorization": f"Bearer {logged_in.json()['token']}"}
        me = await http.get("/user/me", headers=auth)
        assert me.json()["name"] == "alice"
        own = await http.post(
            "/rpc/user_service/GetUser", json={"id": me.json()["id"]}, headers=auth
        )
        assert own.status_code == 200, own.text
        assert own.json()["user"]["name"] == "alice"
        assert (await http.post("/user/logout", headers=auth)).status_code == 200
        # Her login reached NATS under user_api's user, through its spool (acknowledged).
        published = await eventually(
            functools.partial(metric, replica.env["METRICS_PORT"], "broker_events_published_total"),
            lambda samples: samples.get("user.logged_in", 0) >= 1,
        )
        assert published.get("audit.user_login_failed", 0) >= 1  # the seed user's attempt
        again = await http.get("/user/me", headers=auth)
        assert again.status_code == 401
