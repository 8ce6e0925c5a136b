"""gRPC handlers of ConfigService: proto ⇄ domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from config_service.logic import ConfigLogic
from config_service.repository import Snapshot
from shared.proto.config.v1 import config_pb2, config_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _to_proto(snapshot: Snapshot) -> config_pb2.ConfigSnapshot:
    return config_pb2.ConfigSnapshot(app=snapshot.app, json=snapshot.json, version=snapshot.version)


class ConfigHandlers(config_pb2_grpc.ConfigServiceServicer):
    def __init__(self, logic: ConfigLogic) -> None:
        self._logic = logic

    async def GetConfig(
        self, request: config_pb2.GetConfigRequest, context: Context
    ) -> config_pb2.ConfigSnapshot:
        return _to_proto(await self._logic.get(request.app))

    async def SetConfig(
        self, request: config_pb2.SetConfigRequest, context: Context
    ) -> config_pb2.ConfigSnapshot:
        return _to_proto(await self._logic.set(request.app, request.json))

    async def WatchConfig(  # type: ignore[override]
        self, request: config_pb2.WatchConfigRequest, context: Context
    ) -> AsyncIterator[config_pb2.ConfigSnapshot]:
        async for snapshot in self._logic.watch(request.app):
            yield _to_proto(snapshot)
