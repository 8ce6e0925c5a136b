"""A process frozen (SIGSTOP) for a block, then let go on (SIGCONT): it keeps its sockets open
and answers nothing, as one on a machine that hangs or drops off the network does (no RST
reaches its peers), unlike one that stops."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def frozen(send_signal: Callable[[int], None]) -> Iterator[None]:
    """`with frozen(process.send_signal):` (or a ServiceProcess's `signal`)."""
    send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        send_signal(signal.SIGCONT)
