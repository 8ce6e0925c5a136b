"""Per-call CPU cost of `Command.run` around a trivial coroutine, against awaiting it directly.

    python bench/bench_breaker.py [iterations]

The guard runs with real prometheus metrics (on a private registry), as in a service.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

from shared.breaker import BreakerMetrics, Breakers

# Let the loop run now and then, as it does in a service: asyncio only purges cancelled timer
# handles (one per `asyncio.timeout`) when it gets control.
YIELD_EVERY = 1000


async def trivial(timeout_s: float) -> int:
    return 1


async def under_timeout(timeout_s: float) -> int:
    async with asyncio.timeout(timeout_s):
        return await trivial(timeout_s)


async def measure(iterations: int, call: Callable[[], Awaitable[int]]) -> float:
    """CPU µs per call."""
    for _ in range(YIELD_EVERY):  # warm-up
        await call()
    started = time.process_time()
    for i in range(iterations):
        await call()
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return (time.process_time() - started) / iterations * 1e6


async def main(iterations: int) -> None:
    command = Breakers(metrics=BreakerMetrics(CollectorRegistry())).command("bench.Trivial")
    direct = await measure(iterations, lambda: trivial(1.0))
    timeout_only = await measure(iterations, lambda: under_timeout(1.0))
    guarded = await measure(iterations, lambda: command.run(trivial))
    budgeted = await measure(iterations, lambda: command.run(trivial, budget_s=0.5))
    print(f"iterations            {iterations}")
    print(f"direct await          {direct:6.2f} µs/call")
    print(f"asyncio.timeout only  {timeout_only:6.2f} µs/call  (the floor of any guard)")
    print(f"Command.run           {guarded:6.2f} µs/call  (overhead {guarded - direct:.2f} µs)")
    print(f"Command.run + budget  {budgeted:6.2f} µs/call  (overhead {budgeted - direct:.2f} µs)")
    assert command.snapshot()["counts"]["success"] > 0


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
