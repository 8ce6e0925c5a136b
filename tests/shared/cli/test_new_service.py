"""`micro new service order`, end to end, in a copy of the project: the service it makes
passes its own tests, starts, registers in etcd, answers `micro call`, is reachable through
user_api's gateway when allowed, and its calls show in the gateway's breaker metrics.

The slow part (the copy, `micro new`, the processes) is set up once for the module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import yaml

from shared.registry import EtcdRegistry
from tests.support.etcd import EtcdServer
from tests.support.http import login, wait_until_ready
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.ports import free_port
from tests.support.project_copy import (
    BIN,
    CopiedServiceProcess,
    copy_project,
    micro,
    pytest_in,
    run,
)
from tests.support.services import service_env, wait_for_nodes

pytestmark = pytest.mark.integration
in_module_loop = pytest.mark.asyncio(loop_scope="module")

CREATE = '{"title": "a book", "quantity": 2}'


@dataclass(frozen=True)
class Made:
    root: Path
    stdout: str


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = copy_project(tmp_path_factory.mktemp("kit"))
    result = micro(root, "new", "service", "order")
    assert result.returncode == 0, result.stdout + result.stderr
    # A second one with an HTTP front, so that the compose checks see both kinds.
    shop = micro(root, "new", "service", "shop", "--http")
    assert shop.returncode == 0, shop.stdout + shop.stderr
    return Made(root, result.stdout)


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def traces() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="module")
def processes(
    made: Made, etcd_server: EtcdServer, traces: OtlpReceiver
) -> Iterator[dict[str, str]]:
    """The kit's services, order and user_api with the gateway open to order, from the copy."""
    logs = made.root / ".run"
    logs.mkdir(exist_ok=True)
    port = free_port()
    traced = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": traces.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    extra = {
        "user_service": {"DATABASE_URL": f"sqlite+aiosqlite:///{logs}/users.db"},
        "user_api": {"HTTP_PORT": str(port), "GATEWAY_ENABLED": "true", "GATEWAY_ALLOW": "order.*"},
    }
    started = [
        CopiedServiceProcess(
            made.root,
            module,
            service_env(etcd_server.endpoint, **traced, **extra.get(module, {})),
            logs / f"{module}.log",
        ).start()
        for module in ("config_service", "auth_service", "user_service", "order", "user_api")
    ]
    yield {"etcd": etcd_server.endpoint, "api": f"http://127.0.0.1:{port}"}
    for process in reversed(started):  # callers first: see tests/conftest.py
        process.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(processes: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    registry = EtcdRegistry(processes["etcd"])
    try:
        await wait_for_nodes(registry, "order", 1, timeout=60)
    finally:
        await registry.stop()
    await wait_until_ready(processes["api"], timeout=60)
    async with httpx.AsyncClient(base_url=processes["api"], timeout=10) as http:
        yield http


@pytest_asyncio.fixture(loop_scope="module")
async def token(api: httpx.AsyncClient) -> str:
    response = await login(api)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(made: Made, processes: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = micro(made.root, *args, env={"ETCD_ENDPOINT": processes["etcd"]})
    return result.returncode, result.stdout, result.stderr


def test_it_says_what_it_made_and_what_to_do_next(made: Made) -> None:
    assert "created order: order/, shared/proto/order/v1/, tests/order/" in made.stdout
    assert "Procfile, docker-compose.yml" in made.stdout
    assert "micro call order CreateOrder" in made.stdout
    for path in ("order/app.py", "order/handlers.py", "shared/proto/order/v1/order_pb2.py"):
        assert (made.root / path).is_file(), path
    answers = yaml.safe_load((made.root / "order" / ".copier-answers.yml").read_text())
    assert answers == {"_src_path": "template", "http": False, "name": "order"}
    spooled = "env BROKER_SPOOL_PATH=${RUN_DIR:-.run}/order/spool.sqlite3 python -m order"
    assert f"order: exec scripts/credentials order {spooled}" in (
        (made.root / "Procfile").read_text().splitlines()
    )
    assert "\n## order\n" in (made.root / "README.md").read_text()


def test_the_generated_tests_pass_and_the_code_is_lint_clean(made: Made) -> None:
    tests = pytest_in(made.root, "tests/order", "tests/shop")
    assert tests.returncode == 0, tests.stdout + tests.stderr

    generated = ["order", "tests/order", "shop", "tests/shop"]
    for check in (["check", *generated], ["format", "--check", *generated]):
        linted = run(made.root, str(BIN / "ruff"), *check)
        assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_compose_file_the_image_and_the_generated_code_checks_take_the_services(
    made: Made,
) -> None:
    # The project's own checks of docker-compose.yml, the Dockerfile and `make proto`, run
    # in the copy: they see order and shop as they see the kit's services.
    checks = pytest_in(
        made.root,
        "tests/test_compose.py",
        "tests/test_dockerfile.py",
        "tests/shared/proto",
        "-m",
        "not integration",
    )
    assert checks.returncode == 0, checks.stdout + checks.stderr
    order = yaml.safe_load((made.root / "docker-compose.yml").read_text())["services"]["order"]
    assert order["command"] == ["python", "-m", "order"]
    assert order["depends_on"]["etcd"] == {"condition": "service_healthy"}


def test_its_nats_user_lets_it_publish_and_consume_its_own_event(made: Made) -> None:
    # The project's test of every service's NATS user, run in the copy: it drives order's
    # and shop's brokers too, under the users their ROLE (settings.py) gives them.
    checks = pytest_in(made.root, "tests/shared/security/test_nats_auth.py", "-k", "every_service")
    assert checks.returncode == 0, checks.stdout + checks.stderr
    assert "1 passed" in checks.stdout


def test_new_twice_fails_cleanly_and_overwrites_nothing(made: Made) -> None:
    def snapshot() -> dict[str, str]:
        return {
            str(p.relative_to(made.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in made.root.rglob("*")
            if p.is_file() and not {".run", ".ruff_cache", "__pycache__"} & set(p.parts)
        }

    before = snapshot()
    again = micro(made.root, "new", "service", "order")

    assert again.returncode == 1
    assert "cannot create service 'order': order/ already exists" in again.stderr
    assert snapshot() == before


@in_module_loop
async def test_it_registers_and_answers_micro_call(
    made: Made, processes: dict[str, str], api: httpx.AsyncClient
) -> None:
    code, listed, _ = cli(made, processes, "services")
    assert code == 0
    assert "order  (1 node)" in listed
    assert "order.v1.OrderService" in listed

    code, out, err = cli(made, processes, "call", "order", "CreateOrder", CREATE)
    assert code == 0, err
    created = json.loads(out)["order"]
    assert (created["title"], created["quantity"]) == ("a book", 2)

    by_id = json.dumps({"id": created["id"]})
    read = cli(made, processes, "call", "order", "order.v1.OrderService/GetOrder", by_id)
    assert read[0] == 0, read[2]
    assert json.loads(read[1]) == {"order": created}

    code, _, err = cli(made, processes, "call", "order", "GetOrder", '{"id": "nope"}')
    assert (code, err.strip()) == (1, "error: NOT_FOUND: no order 'nope'")

    code, out, _ = cli(made, processes, "health", "order")
    assert code == 0
    assert out.strip().endswith("SERVING")


@in_module_loop
async def test_the_gateway_calls_order_when_allowed(api: httpx.AsyncClient, token: str) -> None:
    auth = bearer(token)

    created = await api.post("/rpc/order/CreateOrder", content=CREATE, headers=auth)
    assert created.status_code == 200, created.text
    order = created.json()["order"]
    read = await api.post("/rpc/order/GetOrder", json={"id": order["id"]}, headers=auth)

    assert read.status_code == 200, read.text
    assert read.json() == {"order": order}


@in_module_loop
async def test_the_gateway_refuses_what_is_not_allowed(api: httpx.AsyncClient, token: str) -> None:
    auth = bearer(token)

    refused = await api.post("/rpc/user_service/GetUser", json={"id": 10001}, headers=auth)
    anonymous = await api.post("/rpc/order/CreateOrder", content=CREATE)

    assert refused.status_code == 403
    assert refused.json()["error"]["reason"] == "PERMISSION_DENIED"
    assert anonymous.status_code == 401


@in_module_loop
async def test_gateway_calls_show_in_the_breaker_metrics(
    api: httpx.AsyncClient, token: str
) -> None:
    called = await api.post("/rpc/order/CreateOrder", content=CREATE, headers=bearer(token))
    assert called.status_code == 200, called.text

    metrics = (await api.get("/metrics")).text
    breakers = (await api.get("/debug/breakers")).json()["breakers"]

    successes = [
        line
        for line in metrics.splitlines()
        if line.startswith('breaker_calls_total{command="order.CreateOrder",outcome="success"}')
    ]
    assert successes, metrics
    assert float(successes[0].split()[-1]) >= 1
    assert breakers["order.CreateOrder"]["state"] == "closed"


@in_module_loop
async def test_gateway_calls_to_the_new_service_are_traced(
    api: httpx.AsyncClient, token: str, traces: OtlpReceiver
) -> None:
    called = await api.post("/rpc/order/CreateOrder", content=CREATE, headers=bearer(token))
    assert called.status_code == 200, called.text

    def called_through_the_gateway(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        by_id = {s.span_id: s for s in spans}
        return [
            s
            for s in spans
            if s.service_name == "order"
            and s.kind == "SERVER"
            and by_id.get(s.parent_span_id, s).service_name == "user_api"
        ]

    spans = await traces.wait_for(lambda spans: bool(called_through_the_gateway(spans)), 15)
    server = called_through_the_gateway(spans)[0]
    [client] = [s for s in spans if s.span_id == server.parent_span_id]
    assert server.name == "order.v1.OrderService/CreateOrder"
    assert (client.service_name, client.kind) == ("user_api", "CLIENT")
    assert client.attributes["breaker.command"] == "order.CreateOrder"
    assert client.trace_id == server.trace_id
