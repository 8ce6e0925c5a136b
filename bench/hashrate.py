"""The Argon2id hash rate with user_service's parameters, on as many threads as cores.

argon2-cffi releases the GIL while hashing, so threads in this process use every core,
as user_service's thread pool does for logins.
"""

from __future__ import annotations

import os
import threading
import time

from argon2 import PasswordHasher

from user_service.settings import UserServiceSettings


def hasher() -> PasswordHasher:
    fields = UserServiceSettings.model_fields
    return PasswordHasher(
        time_cost=fields["argon2_time_cost"].default,
        memory_cost=fields["argon2_memory_kib"].default,
        parallelism=fields["argon2_parallelism"].default,
    )


def hash_rate(seconds: float, threads: int | None = None) -> float:
    """Verifications per second (what a login does) over `seconds`, all threads together."""
    ph = hasher()
    stored = ph.hash("123")
    counts = [0] * (threads or os.cpu_count() or 1)
    stop_at = time.perf_counter() + seconds

    def work(slot: int) -> None:
        while time.perf_counter() < stop_at:
            ph.verify(stored, "123")
            counts[slot] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(counts))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)
