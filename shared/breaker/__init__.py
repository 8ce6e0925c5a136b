"""Netflix Hystrix semantics for asyncio calls, on top of pybreaker's state machine.

    breakers = Breakers()
    reply = await breakers.command("user_service.VerifyCredentials").run(
        lambda timeout_s: stub.VerifyCredentials(request, timeout=timeout_s),
        budget_s=deadline - loop.time(),
    )

The rules are in the README, "What holds, and is tested against real servers" (**Breakers**);
`Command.run` documents the errors raised.
"""

from shared.breaker.breakers import Breakers
from shared.breaker.command import Command, default_is_failure
from shared.breaker.metrics import BreakerMetrics
from shared.breaker.settings import BreakerSettings
from shared.breaker.storage import redis_storage_factory

__all__ = [
    "BreakerMetrics",
    "BreakerSettings",
    "Breakers",
    "Command",
    "default_is_failure",
    "redis_storage_factory",
]
