from __future__ import annotations

from pathlib import Path

from shared.config import ServiceSettings
from shared.security.roles import ServiceRole


class ConfigServiceSettings(ServiceSettings):
    service_name: str = "config_service"
    grpc_port: int = 50051
    # config_service is where configuration comes from; it reads only its environment.
    use_config_service: bool = False
    config_prefix: str = "/micro/config/"
    # Each <app>.json here is stored in etcd on first start (never over an existing key).
    seed_dir: Path = Path(__file__).resolve().parent / "seed"


# Its etcd user (scripts/etcd_auth.py): it writes every app's configuration.
ROLE = ServiceRole(etcd_writes=(ConfigServiceSettings.model_fields["config_prefix"].default,))
