from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator

from auth_service.keys import MIN_SECRET, signing_key
from shared.config import ServiceSettings
from shared.proto.auth.v1.auth_events_pb2 import TokenRevoked
from shared.security.production import MIN_KEY_BYTES
from shared.security.roles import ServiceRole


def _keys(secrets: SecretStr | None) -> list[str]:
    """The comma-separated keys of `secrets`, each without surrounding spaces."""
    if secrets is None:
        return []
    return [key.strip() for key in secrets.get_secret_value().split(",")]


class AuthServiceSettings(ServiceSettings):
    service_name: str = "auth_service"
    grpc_port: int = 50052
    # The HS256 key every replica shares: JWT_SECRET, else the key in JWT_SECRET_FILE
    # (created on first start). From the environment or config_service, never code.
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = None
    # Keys that validate tokens but never sign them, comma-separated: the key before a
    # rotation (until its tokens expire, TOKEN_TTL_S), or the next one before it signs.
    jwt_accepted_secrets: SecretStr | None = None
    jwt_issuer: str = "pymicro-kit"
    token_ttl_s: int = 3600
    revocation_prefix: str = "/micro/auth/revoked/"
    # How old the in-memory revocation set may be (since last proved current against etcd)
    # and still be trusted; past it validation asks etcd, and fails closed without it.
    # It bounds how long a revocation made on another replica can go unseen.
    revocation_staleness_s: float = 1.0

    @field_validator("jwt_secret", "jwt_accepted_secrets", mode="before")
    @classmethod
    def _empty_is_unset(cls, secret: object) -> object:
        return None if secret == "" else secret

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_SECRET:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET} characters")
        return secret

    @field_validator("jwt_accepted_secrets")
    @classmethod
    def _each_long_enough(cls, secrets: SecretStr | None) -> SecretStr | None:
        if any(len(key) < MIN_SECRET for key in _keys(secrets)):
            raise ValueError(f"each key must be at least {MIN_SECRET} characters")
        return secrets

    def accepted_keys(self) -> list[str]:
        """JWT_ACCEPTED_SECRETS, one key each."""
        return _keys(self.jwt_accepted_secrets)

    def signing_key(self) -> str:
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        return signing_key(secret, self.jwt_secret_file)

    def production_problems(self) -> list[str]:
        # Production brings its key (a Secret): none is created, none shorter than 32 bytes.
        problems = super().production_problems()
        if self.jwt_secret is not None:
            key = self.jwt_secret.get_secret_value().encode()
        elif self.jwt_secret_file is not None and self.jwt_secret_file.is_file():
            key = self.jwt_secret_file.read_bytes().strip()
        else:
            return [*problems, "JWT_SECRET or an existing JWT_SECRET_FILE (the signing key)"]
        if len(key) < MIN_KEY_BYTES:
            problems.append(f"the signing key is shorter than {MIN_KEY_BYTES} bytes")
        return problems


# Its NATS and etcd users (scripts/nats_config.py, scripts/etcd_auth.py): it publishes
# revocations and owns their etcd prefix.
ROLE = ServiceRole(
    publishes=(TokenRevoked,),
    etcd_writes=(AuthServiceSettings.model_fields["revocation_prefix"].default,),
)
