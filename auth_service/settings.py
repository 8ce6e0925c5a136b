from __future__ import annotations

from pydantic import SecretStr, field_validator

from shared.config import ServiceSettings

_MIN_SECRET = 32


class AuthServiceSettings(ServiceSettings):
    service_name: str = "auth_service"
    grpc_port: int = 50052
    # HS256 key shared by every replica; from the environment or config_service, never code.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "pymicro-kit"
    token_ttl_s: int = 3600
    revocation_prefix: str = "/micro/auth/revoked/"

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < _MIN_SECRET:
            raise ValueError(f"JWT_SECRET must be at least {_MIN_SECRET} characters")
        return secret

    def signing_key(self) -> str:
        if self.jwt_secret is None:
            raise SystemExit(
                "auth_service needs JWT_SECRET (at least 32 characters) from the environment "
                "or config_service; `make run` generates one in .run/secrets.env"
            )
        return self.jwt_secret.get_secret_value()
