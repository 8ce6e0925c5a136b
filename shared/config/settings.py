"""Typed settings every service shares, read from the environment, then config_service.

The environment wins over config_service, which wins over the defaults: an operator can
always pin a value on one process. Settings are built in `main` and passed down.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.broker.settings import BrokerSettings
from shared.security.production import kit_problems
from shared.selector import Strategy

S = TypeVar("S", bound="ServiceSettings")
_BROKER = BrokerSettings.model_fields  # the delivery defaults are the broker's own


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = "service"
    service_version: str = "0.1.0"
    environment: Literal["development", "test", "production"] = "development"
    # etcd's client address; a cluster's members comma-separated ("a:2379,b:2379,c:2379"),
    # or one DNS name that resolves to all of them. ETCD_ENDPOINTS, when set, wins.
    etcd_endpoint: str = "127.0.0.1:2379"
    etcd_endpoints: str = ""
    # etcd with auth on: this service's user, and the file holding its password (0600).
    etcd_username: str | None = None
    etcd_password_file: Path | None = None
    registry_prefix: str = "/micro/registry"
    registry_ttl_s: int = 15
    # NATS servers, comma-separated: the client fails over between them.
    nats_url: str = "nats://127.0.0.1:4222"
    # This service's NATS user: the file holding its nkey seed (shared.security.nats_auth).
    nats_nkey_seed_file: Path | None = None
    # Replicas of each JetStream stream this service creates: 3 on a 3-node cluster.
    nats_stream_replicas: int = 1
    # Spool events waiting for NATS to this SQLite file (else memory), so that they survive
    # a crash: for a service without a database of its own. `{hostname}` is replaced.
    broker_spool_path: str | None = None
    # This service's durable subscriptions: a delivery not acked within `broker_ack_wait_s`
    # comes again (set it above the slowest handler's time, and it bounds how late an event
    # whose delivery a crash or a lost NATS node took with it arrives); a handler that
    # fails `broker_max_deliver` times sends its event to the dead-letter stream.
    broker_ack_wait_s: float = Field(_BROKER["ack_wait_s"].default, gt=0)
    broker_max_deliver: int = Field(_BROKER["max_deliver"].default, ge=1)
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    # The host other services dial; defaults to the bind host, or this host's address.
    advertise_host: str | None = None
    # gRPC server limits (shared/server): a larger message is refused (RESOURCE_EXHAUSTED);
    # calls at once, streams included; the budget of a unary call that came without a
    # deadline; and per method, unless the service declares its own (a CPU-bound method:
    # `shared.server.per_core`), the calls running and those waiting per fairness key.
    grpc_max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    grpc_max_concurrent_rpcs: int = Field(1000, ge=1)
    grpc_default_deadline_s: float = Field(30.0, gt=0, le=3600)
    grpc_method_concurrency: int = Field(100, ge=1)
    grpc_method_queue: int = Field(100, ge=0)
    # Prometheus metrics over HTTP on a port of their own; 0 turns them off.
    metrics_port: int = 0
    # gRPC server reflection (what `micro call` and the gateway use): None means on in
    # development and test, off in production.
    reflection_enabled: bool | None = None
    # At stop, buffered spans are exported for at most this long, then dropped: a collector
    # that is down must not hold the stop (the OTLP exporter's retries alone take 7 s).
    tracing_flush_s: float = Field(2.0, ge=0, le=60)
    log_level: str = "INFO"
    log_json: bool | None = None
    # Ask config_service for this app's settings at start-up and follow its changes.
    use_config_service: bool = True
    selector: Strategy = Strategy.ROUND_ROBIN
    # Share circuit states with this service's other replicas through Redis (redis://…).
    breaker_redis_url: str | None = None
    config_wait_s: float = 3.0
    # Service identity (see shared/security): mTLS on every gRPC hop when `mtls` is on.
    # TLS_DIR holds tls.crt, tls.key and ca.crt (as cert-manager or a SPIFFE helper writes
    # them, reloaded on rotation); else TLS_DEV_ROOT holds a development CA that issues
    # this service's certificate on first start (`make run`: .run/tls).
    mtls: bool = False
    trust_domain: str = "micro.local"
    tls_dir: Path | None = None
    tls_dev_root: Path | None = None
    tls_reload_s: float = 1.0
    # Deny calls the method's `allowed_callers` option does not list (else log them only).
    enforce_policy: bool = True
    # The services this one calls, comma-separated: registered as the node's metadata
    # `dependencies`, so that a view of the system (user_api's /portal) can show them.
    dependencies: str = ""

    @model_validator(mode="before")
    @classmethod
    def _endpoints_win(cls, data: Any) -> Any:
        # One value for every etcd user: ETCD_ENDPOINTS (the cluster) over ETCD_ENDPOINT.
        if isinstance(data, dict) and data.get("etcd_endpoints"):
            return {**data, "etcd_endpoint": data["etcd_endpoints"]}
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments carry config_service's values: below the environment.
        return env_settings, dotenv_settings, init_settings, file_secret_settings

    @property
    def is_development(self) -> bool:
        return self.environment != "production"

    @property
    def reflection_on(self) -> bool:
        return self.is_development if self.reflection_enabled is None else self.reflection_enabled

    def etcd_login(self) -> tuple[str | None, str | None]:
        """(username, password) for the etcd client: (None, None) unless ETCD_USERNAME."""
        if not self.etcd_username:
            return None, None
        if self.etcd_password_file is None:
            raise ValueError("ETCD_USERNAME needs ETCD_PASSWORD_FILE")
        return self.etcd_username, self.etcd_password_file.read_text().strip()

    def production_problems(self) -> list[str]:
        """What production mode misses (shared.security.production); services add theirs."""
        return kit_problems(self)


def load_settings(cls: type[S], remote: Mapping[str, Any] | None = None) -> S:
    """Settings from the environment over `remote` (config_service's JSON) over defaults."""
    known = {key: value for key, value in (remote or {}).items() if key in cls.model_fields}
    return cls(**known)
