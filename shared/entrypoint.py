"""`python -m <service>`: build settings, configure logging, run until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.config import ServiceSettings
from shared.logs import configure_logging
from shared.memory import one_heap
from shared.security.production import refuse_unless_ready
from shared.startup_objects import freeze_startup_objects

S = TypeVar("S", bound=ServiceSettings)


def main(settings_cls: type[S], run: Callable[[S], Awaitable[None]]) -> None:
    try:
        settings = settings_cls()
    except ValidationError as error:
        # A clear message, not a traceback: this is the operator's input.
        print(f"invalid settings for {settings_cls.__name__}:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None
    refuse_unless_ready(settings)
    configure_logging(settings.service_name, level=settings.log_level, json=settings.log_json)
    one_heap()  # before the worker threads: see shared/memory.py
    freeze_startup_objects()  # the imported modules: no full collection walks them again
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(run(settings))  # type: ignore[arg-type]


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it is installed (less CPU per request and per RPC; grpc.aio
    and uvicorn both run on it), else on asyncio's own loop."""
    # MICRO_EVENT_LOOP=asyncio runs asyncio's own loop (to compare, or to rule uvloop out).
    if os.environ.get("MICRO_EVENT_LOOP") != "asyncio":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - a dependency; stay runnable without it
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main)
            return
    asyncio.run(main)
