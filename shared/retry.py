"""Retrying start-up steps until a dependency is there: services start in any order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared import backoff

log = logging.getLogger(__name__)

T = TypeVar("T")


async def until_done(
    step: Callable[[], Awaitable[T]],
    what: str,
    *,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    first_backoff_s: float = 0.2,
    max_backoff_s: float = 5.0,
) -> T:
    """Run `step` until it succeeds, with exponential backoff; log each failure once."""
    waits = backoff.delays(first_backoff_s, max_backoff_s)
    while True:
        try:
            return await step()
        except retry_on as error:
            delay = next(waits)
            log.warning("%s failed (%s); retrying in %.1f s", what, error, delay)
        await asyncio.sleep(delay)
