"""Configuration is checked where it is written: config_service refuses a document that
does not fit the app's settings schema, naming the field and the reason."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.breaker import Breakers
from shared.client import Client
from shared.config import fetch_config
from shared.errors import Reason, ServiceError
from shared.proto.config.v1 import config_pb2
from shared.registry import EtcdRegistry
from shared.selector import Selector
from tests.conftest import StartService
from tests.support.etcd import EtcdServer
from tests.support.services import wait_for_nodes
from tests.support.tls import operator_certificate, tls_root

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_schemas_are_current(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_schemas", ROOT / "scripts/gen_schemas.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    written = module.generate(ROOT, tmp_path)

    committed = ROOT / "config_service" / "schemas"
    assert sorted(p.name for p in written) == sorted(p.name for p in committed.glob("*.json"))
    for path in written:
        assert path.read_text() == (committed / path.name).read_text(), "run `make schemas`"


@pytest.fixture
async def client(
    start_service: StartService, registry: EtcdRegistry, tmp_path: Path
) -> AsyncIterator[Client]:
    start_service("config_service")
    await wait_for_nodes(registry, "config_service", 1)
    selector = Selector(registry)
    # An operator: reads and writes any app's configuration (config_service runs mTLS).
    client = Client(selector, Breakers(), tls=operator_certificate(tls_root(tmp_path)))
    yield client
    await client.stop()
    await selector.stop()


async def _set(client: Client, app: str, document: object) -> config_pb2.ConfigSnapshot:
    request = config_pb2.SetConfigRequest(app=app, json=json.dumps(document))
    snapshot: config_pb2.ConfigSnapshot = await client.call(
        "config_service", "SetConfig", request, timeout=5
    )
    return snapshot


@pytest.mark.integration
@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"request_budget_s": -1}, "request_budget_s: -1 is less than or equal to"),
        ({"breakers": {"default": 5}}, "breakers.default: 5 is not of type 'object'"),
        ({"breakers": {"default": {"timeout_ms": 0}}}, "breakers.default.timeout_ms"),
        ({"request_budget_z": 1}, "'request_budget_z' was unexpected"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_an_invalid_document_is_refused_with_the_field_and_nothing_is_stored(
    client: Client, document: object, says: str
) -> None:
    before = await fetch_config(client, "user_api", timeout=5)

    with pytest.raises(ServiceError) as caught:
        await _set(client, "user_api", document)

    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert says in caught.value.message
    assert await fetch_config(client, "user_api", timeout=5) == before


@pytest.mark.integration
async def test_a_valid_document_is_stored_whole(client: Client) -> None:
    document = {"request_budget_s": 2.5, "breakers": {"default": {"timeout_ms": 800}}}

    snapshot = await _set(client, "user_api", document)

    assert json.loads(snapshot.json) == document
    assert await fetch_config(client, "user_api", timeout=5) == document


@pytest.mark.integration
async def test_micro_config_set_refuses_a_bad_value_and_get_shows_a_good_one(
    client: Client, etcd: EtcdServer, tmp_path: Path
) -> None:
    micro = [sys.executable, "-m", "shared.cli", "config"]
    where = ["--etcd", etcd.endpoint]
    # The CLI is an operator with a certificate from the services' development CA.
    env = {**os.environ, "TLS_DEV_ROOT": str(tls_root(tmp_path))}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*micro, *args, *where], input=stdin, capture_output=True, text=True, cwd=ROOT, env=env
        )

    refused = await asyncio.to_thread(run, "set", "user_api", "-", stdin='{"request_budget_s": -1}')
    stored = await asyncio.to_thread(run, "set", "user_api", "-", stdin='{"request_budget_s": 2}')
    shown = await asyncio.to_thread(run, "get", "user_api")

    assert refused.returncode == 1
    assert "INVALID_ARGUMENT: request_budget_s" in refused.stderr
    assert stored.returncode == 0, stored.stderr
    assert json.loads(shown.stdout) == {"request_budget_s": 2}
