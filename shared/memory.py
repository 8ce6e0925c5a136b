"""Giving large transient buffers back to the OS, so that idle RSS stays near the code's size.

glibc serves big allocations with mmap and unmaps them on free, but raises that threshold
to the size of each big block freed (up to 32 MiB): after one Argon2 hash (19 MiB of
scratch memory) every later one comes from the heap of the thread that ran it, and each
worker thread's arena keeps its 19 MiB while the process idles. A fixed threshold keeps
them on mmap, returned at once. No effect (and no error) off glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3
# glibc's default: blocks of 128 KiB and more are mapped, and unmapped when freed.
_THRESHOLD = 128 * 1024


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold (disabling its growth); False where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    return False
