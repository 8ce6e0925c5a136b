"""gRPC handlers of ConfigService: proto ⇄ domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from config_service.logic import ConfigLogic, Snapshot
from shared.errors import Reason, ServiceError
from shared.proto.config.v1 import config_pb2, config_pb2_grpc
from shared.security.identity import caller_identity

Context = grpc.aio.ServicerContext[Any, Any]


def _to_proto(snapshot: Snapshot) -> config_pb2.ConfigSnapshot:
    return config_pb2.ConfigSnapshot(app=snapshot.app, json=snapshot.json, version=snapshot.version)


def _check_reader(context: Context, app: str) -> None:
    """A service reads its own app's configuration only; an operator reads any. Without
    mTLS there is no identity to check (development over plain gRPC)."""
    identity = caller_identity(context)
    if identity is not None and not identity.is_operator and identity.name != app:
        raise ServiceError(Reason.PERMISSION_DENIED, f"{identity.uri} may not read {app!r}")


class ConfigHandlers(config_pb2_grpc.ConfigServiceServicer):
    def __init__(self, logic: ConfigLogic) -> None:
        self._logic = logic

    async def GetConfig(
        self, request: config_pb2.GetConfigRequest, context: Context
    ) -> config_pb2.ConfigSnapshot:
        _check_reader(context, request.app)
        return _to_proto(await self._logic.get(request.app))

    async def SetConfig(
        self, request: config_pb2.SetConfigRequest, context: Context
    ) -> config_pb2.ConfigSnapshot:
        return _to_proto(await self._logic.set(request.app, request.json))

    async def WatchConfig(
        self, request: config_pb2.WatchConfigRequest, context: Context
    ) -> AsyncIterator[config_pb2.ConfigSnapshot]:
        _check_reader(context, request.app)
        async for snapshot in self._logic.watch(request.app):
            yield _to_proto(snapshot)
