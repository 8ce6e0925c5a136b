from __future__ import annotations

from pathlib import Path

from pydantic import Field
from sqlalchemy.engine import make_url

from shared.config import ServiceSettings
from shared.proto.user.v1.user_events_pb2 import UserCreated, UserLoggedIn
from shared.security.production import weak_password
from shared.security.roles import ServiceRole
from user_service.logic import PASSWORD_MIN_LENGTH


class UserServiceSettings(ServiceSettings):
    service_name: str = "user_service"
    grpc_port: int = 50053
    # mysql+aiomysql://user:pwd@host/db (or mysql+pymysql://…) for MySQL/MariaDB.
    database_url: str = "sqlite+aiosqlite:///.run/users.db"
    # The database password from a file (a Secret, compose's generated one): it replaces
    # the password in DATABASE_URL, which then needs none written into it.
    database_password_file: Path | None = None
    database_pool_size: int = Field(10, ge=1)
    # Failing fast when the database is down or hung, well within a login's budget (user_api's
    # breaker gives VerifyCredentials 1 s): a request waits this long for a pooled
    # connection, for a new one, and for one whole database operation (the caller's
    # deadline, when shorter, wins); the server ends a statement after
    # database_statement_timeout_s (MariaDB's max_statement_time). Beyond: 503 UNAVAILABLE.
    database_pool_timeout_s: float = Field(0.5, gt=0, le=60)
    database_connect_timeout_s: float = Field(0.5, gt=0, le=60)
    database_timeout_s: float = Field(0.7, gt=0, le=300)
    database_statement_timeout_s: float = Field(0.5, gt=0, le=300)
    # How long GetUser may answer from memory (seconds; 0: always read the database).
    # Bounds how stale a user changed by another replica can be (see user_service/cache.py).
    user_cache_ttl_s: float = Field(1.0, ge=0)
    # Argon2id cost (OWASP's minimum): memory in KiB, iterations, lanes.
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    # The shortest password CreateUser accepts (login checks whatever was stored).
    password_min_length: int = Field(PASSWORD_MIN_LENGTH, ge=1, le=1024)

    def database(self) -> str:
        """DATABASE_URL with the password of DATABASE_PASSWORD_FILE, when that is set."""
        if self.database_password_file is None:
            return self.database_url
        password = self.database_password_file.read_text().strip()
        url = make_url(self.database_url).set(password=password)
        return url.render_as_string(hide_password=False)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        url = make_url(self.database())
        if not url.drivername.startswith("sqlite") and weak_password(url.password):
            problems.append("DATABASE_URL has an empty or default password")
        return problems


# Its NATS user (scripts/nats_config.py): it announces new users (through its outbox) and
# records logins.
ROLE = ServiceRole(publishes=(UserCreated,), consumes=(UserLoggedIn,))
