from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, field_validator

from auth_service.keys import MIN_SECRET, signing_key
from shared.config import ServiceSettings


class AuthServiceSettings(ServiceSettings):
    service_name: str = "auth_service"
    grpc_port: int = 50052
    # The HS256 key every replica shares: JWT_SECRET, else the key in JWT_SECRET_FILE
    # (created on first start). From the environment or config_service, never code.
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = None
    jwt_issuer: str = "pymicro-kit"
    token_ttl_s: int = 3600
    revocation_prefix: str = "/micro/auth/revoked/"
    # How old the in-memory revocation set may be (since last proved current against etcd)
    # and still be trusted; past it validation asks etcd, and fails closed without it.
    # It bounds how long a revocation made on another replica can go unseen.
    revocation_staleness_s: float = 1.0

    @field_validator("jwt_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, secret: object) -> object:
        return None if secret == "" else secret

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_SECRET:
            raise ValueError(f"JWT_SECRET must be at least {MIN_SECRET} characters")
        return secret

    def signing_key(self) -> str:
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        return signing_key(secret, self.jwt_secret_file)
