"""Reading a gRPC call's metadata on the server, for the links and handlers that need one key."""

from __future__ import annotations

from typing import Any

import grpc


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    """The first value the caller sent under `key` (lower case, as gRPC keeps it), or None."""
    for name, value in context.invocation_metadata() or ():
        if name == key:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None
