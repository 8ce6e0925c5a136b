"""Big transient buffers: fast while jobs run, given back once they pause."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

from shared.memory import IdleTrim

ROOT = Path(__file__).resolve().parents[2]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def test_the_heap_is_trimmed_once_jobs_pause_not_between_them() -> None:
    trimmed = asyncio.Event()
    trims: list[float] = []

    def record() -> None:
        trims.append(asyncio.get_running_loop().time())
        trimmed.set()

    trimmer = IdleTrim(idle_s=0.05, trim=record)
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(*(trimmer.run(pow, 2, n) for n in range(8)))
    assert results == [2**n for n in range(8)]
    assert await trimmer.run(pow, 3, 2) == 9  # a job within the pause re-arms the timer
    last_job_done = loop.time()
    assert trims == []
    await asyncio.wait_for(trimmed.wait(), 2)
    assert len(trims) == 1
    assert trims[0] - last_job_done >= 0.04


# Run in a fresh process, as a service's entrypoint does: one heap before any thread starts.
_SCRATCH = """
import asyncio, sys, threading, time
from shared.memory import IdleTrim, one_heap, trim
from tests.shared.test_memory import rss_mib

if sys.argv[2] == "agent":  # a thread that allocates before one_heap, as an APM agent's
    started = threading.Event()
    def agent() -> None:
        junk = [bytearray(64) for _ in range(100)]
        started.set()
        time.sleep(60)
    threading.Thread(target=agent, daemon=True).start()
    started.wait()
assert one_heap()
# Another thread first, as grpc's are, so that the hashing thread's turn comes second.
other = threading.Thread(target=lambda: [bytearray(64) for _ in range(100)])
other.start()
other.join()
trimmed = threading.Event()

def scratch() -> int:
    block = bytearray(24 * 1024 * 1024)  # like Argon2's buffer: touched, then freed
    return len(block)

def trim_and_tell() -> None:
    if sys.argv[1] == "trim":
        trim()
    trimmed.set()

async def main() -> None:
    trimmer = IdleTrim(idle_s=0.01, trim=trim_and_tell)
    before = rss_mib()
    # The heap keeps a freed block for the next job (no page faults): what the trim gives back.
    await trimmer.run(scratch)
    await trimmer.run(scratch)
    await asyncio.to_thread(trimmed.wait, 2)
    print(rss_mib() - before)

asyncio.run(main())
"""


def held_after_pause(mode: str, before: str = "none", env: dict[str, str] | None = None) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _SCRATCH, mode, before],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return float(done.stdout.splitlines()[-1])


def test_a_jobs_scratch_memory_goes_back_to_the_os_after_the_pause() -> None:
    assert held_after_pause("keep") > 20  # the heap keeps a freed block: the next job is fast
    assert held_after_pause("trim") < 4


def test_with_a_thread_started_before_the_service_only_the_environment_keeps_one_heap() -> None:
    without = {"MALLOC_ARENA_MAX": ""}  # glibc reads an empty value as unset
    assert held_after_pause("trim", "agent", without) > 20  # in the agent's arena for good
    assert held_after_pause("trim", "agent", {"MALLOC_ARENA_MAX": "1"}) < 4  # the Dockerfile's


def test_one_heap_says_when_threads_run_before_it() -> None:
    script = (
        "import logging, threading, time\n"
        "from shared.memory import one_heap\n"
        "logging.basicConfig()\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "one_heap()\n"
    )
    for arena_max, warned in (("", True), ("1", False)):
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "MALLOC_ARENA_MAX": arena_max},
        )
        assert ("set MALLOC_ARENA_MAX=1" in done.stderr) is warned


async def test_jobs_run_on_as_many_threads_as_it_has_and_the_rest_wait() -> None:
    trimmer = IdleTrim(threads=2, trim=lambda: None)
    started = threading.Semaphore(0)
    release = threading.Event()
    running = 0
    most = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        started.release()
        release.wait(5)
        with lock:
            running -= 1

    jobs = [asyncio.ensure_future(trimmer.run(job)) for _ in range(4)]
    for _ in range(2):
        assert await asyncio.to_thread(started.acquire, True, 5)
    assert not await asyncio.to_thread(started.acquire, True, 0.1)  # the other two wait
    release.set()
    await asyncio.gather(*jobs)
    await trimmer.close()
    assert most == 2
