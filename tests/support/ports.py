"""Free ports on 127.0.0.1 and waiting for a server to accept connections."""

from __future__ import annotations

import asyncio
import socket
import time

from shared.testing.ports import free_port

__all__ = ["free_port", "wait_for_port", "wait_for_port_sync"]


async def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Return once something accepts TCP connections on the port."""
    give_up = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > give_up:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            await asyncio.sleep(0.02)
        else:
            writer.close()
            await writer.wait_closed()
            return


def wait_for_port_sync(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """The blocking twin of `wait_for_port`, for fixtures that start processes."""
    give_up = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > give_up:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.02)
