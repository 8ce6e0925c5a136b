from __future__ import annotations

from shared.config import ServiceSettings


class UserServiceSettings(ServiceSettings):
    service_name: str = "user_service"
    grpc_port: int = 50053
    # mysql+aiomysql://user:pwd@host/db (or mysql+pymysql://…) for MySQL/MariaDB.
    database_url: str = "sqlite+aiosqlite:///.run/users.db"
    database_pool_size: int = 10
    # How long GetUser may answer from memory (seconds; 0: always read the database).
    # Bounds how stale a user changed by another replica can be (see user_service/cache.py).
    user_cache_ttl_s: float = 1.0
    # Argon2id cost (OWASP's minimum): memory in KiB, iterations, lanes.
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
