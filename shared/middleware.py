"""A middleware wraps a handler in another handler, as kratos' `middleware.Middleware`.

    def log_calls(next: Handler) -> Handler:
        async def handler(call): ...; return await next(call)
        return handler

The client (`shared.client.chain`) and the server (`shared.server.chain`) each compose
their links once per route or method with `chain`, so a call only runs the handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

H = TypeVar("H", bound=Callable[..., Any])

Middleware = Callable[[H], H]


def chain(links: Sequence[Callable[[H], H]], handler: H) -> H:
    """`handler` wrapped in `links`, the first one outermost (it runs first)."""
    for link in reversed(links):
        handler = link(handler)
    return handler


def passthrough(handler: H) -> H:
    """The link that adds nothing: what a turned-off link composes to, at no cost per call."""
    return handler


__all__ = ["Middleware", "chain", "passthrough"]
