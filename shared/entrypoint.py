"""`python -m <service>`: build settings, configure logging, run until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import ValidationError

from shared.config import ServiceSettings
from shared.logs import configure_logging
from shared.security.production import refuse_unless_ready

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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))  # type: ignore[arg-type]
