"""schemathesis against the live stack: every operation of the OpenAPI document user_api
serves, with every check, bounded in examples and time.

The stack is real processes (etcd, config, auth and user services, user_api); the schema
is loaded from the running user_api, and the authenticated routes get a valid token (a
fresh one for logout, which revokes the token it is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.result import Err
from schemathesis.schemas import APIOperation

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.http import wait_until_ready
from tests.support.ports import free_port
from tests.support.services import wait_for_nodes

pytestmark = pytest.mark.integration

load_all_checks()
# Every check schemathesis has, named here so that none is left to its configuration.
ALL_CHECKS: list[Any] = list(CHECKS.get_all())
MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    token: str

    def fresh_token(self) -> str:
        response = httpx.post(
            f"{self.base_url}/user/login", data={"userName": "micro", "pwd": "123"}, timeout=10
        )
        response.raise_for_status()
        token: str = response.json()["token"]
        return token


@pytest.fixture
async def live_api(start_service: StartService, registry: EtcdRegistry) -> LiveApi:
    for module in ("config_service", "auth_service", "user_service"):
        start_service(module)
    port = free_port()
    start_service(
        "user_api",
        HTTP_PORT=str(port),
        # schemathesis logs in hundreds of times from one address: not what throttling is for.
        LOGIN_LIMIT_PER_ADDRESS="100000/minute",
        LOGIN_LIMIT_PER_ACCOUNT="100000/minute",
    )
    await wait_for_nodes(registry, "user_service", 1)
    base_url = f"http://127.0.0.1:{port}"
    await wait_until_ready(base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.post("/user/login", data={"userName": "micro", "pwd": "123"})
    assert response.status_code == 200, response.text
    return LiveApi(base_url, response.json()["token"])


def run_operation(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, api: LiveApi
) -> None:
    """`MAX_EXAMPLES` cases of one operation, every check on each answer."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=REQUEST_TIMEOUT_S * 1000,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: schemathesis.Case[Any]) -> None:
        token = api.fresh_token() if case.path == "/user/logout" else api.token
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
            checks=ALL_CHECKS,
        )

    run()


# The pytest plugin's lazy loading (schemathesis.pytest.from_fixture) fails on pytest 9;
# the Python API (one Hypothesis strategy per operation) needs no plugin.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_passes_every_check(live_api: LiveApi, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api.base_url}/openapi.json", timeout=10)
    failures: dict[str, str] = {}
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            pytest.fail(f"the live OpenAPI document is invalid: {result.err()}")
        operations.append(result.ok())
    for operation in operations:
        try:
            run_operation(operation, mode, live_api)
        except Unsatisfiable:
            # No parameters and no body (GET /healthz): no invalid request to make.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as error:  # every operation's failure, not only the first
            failures[operation.label] = str(error)

    assert {"POST /user/login", "GET /user/me", "POST /user/logout"} <= {
        operation.label for operation in operations
    }
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
