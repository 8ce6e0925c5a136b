"""Large transient buffers (Argon2's 19 MiB of scratch memory per hash): fast while busy,
given back to the OS once idle.

glibc serves a big allocation with mmap and unmaps it on free, but then raises that
threshold to the freed size (up to 32 MiB), so later ones come from the heap, already
paged in. Keeping them on mmap instead costs a page fault per 4 KiB on every hash (11 ms
of kernel time per Argon2 verification on the 2-core development machine: a third of the
login's rate). So the heap keeps them while a burst lasts: `IdleTrim` fixes both
thresholds, blocks up to 32 MiB come from the heap, and it keeps one freed block per
thread (left to glibc, the heap gave two freed buffers back at once and faulted them in
again: 2 ms of kernel time per login). Two measures bound what an idle process holds:

- one heap (`one_heap`): every thread allocates from glibc's main arena, which gives its
  free top back as it shrinks; a worker thread's own arena would keep its 19 MiB for
  good (`malloc_trim` trims only the main arena's top). A thread that allocated before
  `one_heap` keeps an arena of its own, which later threads then share in turn:
  the example user store idled at 118 MB instead of 97 with one idle thread started by
  a sitecustomize, as APM agents do. The environment's `MALLOC_ARENA_MAX=1`, which glibc
  reads as the process starts, holds even then: the Dockerfile sets it;
- `IdleTrim`: once the jobs have been idle for a second, `malloc_trim(0)` returns what
  the heap still holds (0.1 ms, on the loop, once per burst).

`IdleTrim` runs the jobs on threads of its own, one per core: more would only share the
cores, and each one more buffer competes for the CPU caches (Argon2 with six threads on
two cores: 8 % fewer hashes per second than with two).

No effect (and no error) off glibc.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

# mallopt's parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_BIG = 32 * 1024 * 1024


def _libc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None


def one_heap() -> bool:
    """Make every thread allocate from the main arena (call once, at start, before any
    other thread); False off glibc. Says so when another thread is already running."""
    libc = _libc()
    if libc is None:
        return False
    others = _thread_count() - 1
    if others and os.environ.get("MALLOC_ARENA_MAX") != "1":
        log.warning(
            "%d threads run before the service starts (an agent's?): their malloc arenas "
            "may keep big buffers for good; set MALLOC_ARENA_MAX=1 in the environment",
            others,
        )
    return bool(libc.mallopt(_M_ARENA_MAX, 1))


def _thread_count() -> int:
    """Every thread of the process, those started by native code too."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def trim() -> bool:
    """Give the heap's free memory back to the OS; True if some was."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


def keep_while_busy(buffers: int) -> bool:
    """Serve blocks up to 32 MiB from the heap, and let it hold `buffers` of them freed."""
    libc = _libc()
    return bool(
        libc is not None
        and libc.mallopt(_M_MMAP_THRESHOLD, _BIG)
        and libc.mallopt(_M_TRIM_THRESHOLD, _BIG * (buffers + 1))
    )


class IdleTrim:
    """Runs memory-hungry jobs on worker threads; trims the heap once they have been idle.

    For C code that releases the GIL (Argon2): `await trimmer.run(fn, *args)`.
    """

    def __init__(
        self,
        idle_s: float = 1.0,
        trim: Callable[[], object] = trim,
        *,
        threads: int | None = None,
    ) -> None:
        self._idle_s = idle_s
        self._trim = trim
        workers = threads or os.cpu_count() or 1
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="idle-trim")
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        keep_while_busy(workers)

    async def close(self) -> None:
        """Let the running jobs finish, then end the threads."""
        if self._timer is not None:
            self._timer.cancel()
        await asyncio.to_thread(self._threads.shutdown, wait=True)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)
        finally:
            self._running -= 1
            if not self._running:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._idle_s, self._trim)
