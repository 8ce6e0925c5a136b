"""The one place that wires config_service together."""

from __future__ import annotations

from config_service.handlers import ConfigHandlers
from config_service.logic import ConfigLogic
from config_service.repository import EtcdConfigRepository
from config_service.schemas import Schemas
from config_service.settings import ConfigServiceSettings
from shared.app import App
from shared.proto.config.v1 import config_pb2, config_pb2_grpc
from shared.registry import etcd_client
from shared.retry import until_done
from shared.server import GrpcServer


def add_to(server: GrpcServer, logic: ConfigLogic) -> None:
    """Serve ConfigService on `server`; the in-process tests use this too."""
    server.add_service(
        config_pb2_grpc.add_ConfigServiceServicer_to_server,
        ConfigHandlers(logic),
        config_pb2.DESCRIPTOR.services_by_name["ConfigService"],
    )


async def run(settings: ConfigServiceSettings) -> None:
    async with App.open(settings) as app:
        settings = app.settings
        etcd = await app.enter(etcd_client(settings.etcd_endpoint))
        repository = EtcdConfigRepository(etcd, settings.config_prefix)
        await until_done(lambda: repository.seed(settings.seed_dir), "seeding configuration")
        add_to(app.grpc_server(), ConfigLogic(repository, Schemas.load()))
        await app.run()
