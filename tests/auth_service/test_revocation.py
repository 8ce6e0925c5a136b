"""Revocation is seen by every auth_service replica and survives their restart (real etcd)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from auth_service.errors import TOKEN_REVOKED
from shared.errors import ServiceError
from shared.proto.auth.v1 import auth_pb2, auth_pb2_grpc
from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.eventually import eventually
from tests.support.services import wait_for_nodes

pytestmark = pytest.mark.integration


async def _call(address: str, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        try:
            return await getattr(stub, method)(request, timeout=5)
        except grpc.aio.AioRpcError as error:
            raise ServiceError.from_rpc_error(error) from None


async def test_a_token_revoked_on_one_replica_is_refused_by_all_even_after_restart(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    first = start_service("auth_service")
    start_service("auth_service")
    one, two = await wait_for_nodes(registry, "auth_service", 2)
    issued = await _call(
        one.address, "MakeAccessToken", auth_pb2.MakeAccessTokenRequest(user_id=7, user_name="u")
    )
    validate = auth_pb2.ValidateTokenRequest(token=issued.token)
    assert (await _call(two.address, "ValidateToken", validate)).claims.user_id == 7

    await _call(one.address, "RevokeToken", auth_pb2.RevokeTokenRequest(token=issued.token))
    with pytest.raises(ServiceError) as caught:
        await _call(one.address, "ValidateToken", validate)
    assert caught.value.reason == TOKEN_REVOKED

    # The other replica learns it from its watch: within 1 s (auth_service/revocations.py).
    async def refusal() -> str | None:
        try:
            await _call(two.address, "ValidateToken", validate)
        except ServiceError as refused:
            return refused.reason
        return None

    assert await eventually(refusal, lambda r: r is not None, timeout=1.0, interval=0.01) == (
        TOKEN_REVOKED
    )

    first.stop()
    start_service("auth_service")
    nodes = await wait_for_nodes(registry, "auth_service", 2)
    [restarted] = [node for node in nodes if node.id not in (one.id, two.id)]
    with pytest.raises(ServiceError) as caught:
        await _call(restarted.address, "ValidateToken", validate)
    assert caught.value.reason == TOKEN_REVOKED
