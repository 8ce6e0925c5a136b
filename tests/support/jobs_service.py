"""A tiny service for the job tests: one scheduler, a 1-second job that logs each run.

`python -m tests.support.jobs_service` with ETCD_ENDPOINT, JOBS_SERVICE, JOBS_OUT (a file
each run appends "<tick iso> <pid>" to) and JOBS_TTL_S. Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import timedelta
from pathlib import Path

from shared.jobs import Job, Scheduler, Tick


async def main() -> None:
    out = Path(os.environ["JOBS_OUT"])

    async def record(tick: Tick) -> None:
        # One short O_APPEND write per run: lines from several processes never interleave.
        line = f"{tick.at.isoformat()} {os.getpid()}\n".encode()
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    scheduler = Scheduler(
        os.environ["JOBS_SERVICE"],
        os.environ["ETCD_ENDPOINT"],
        ttl_s=int(os.environ.get("JOBS_TTL_S", "2")),
        stop_timeout_s=2.0,
    )
    scheduler.add(Job("tick", every=timedelta(seconds=1), run=record))
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    async with scheduler:
        await stopped.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
