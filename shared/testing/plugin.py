"""pytest plugin of the kit: `in_process`, services in the test's process.

Loaded through the `pytest11` entry point `micro`, or with
`pytest_plugins = ["shared.testing.plugin"]` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from shared.testing.inprocess import InProcess


@pytest_asyncio.fixture
async def in_process() -> AsyncIterator[InProcess]:
    """Serve services with `await in_process.serve(name, add_to, logic)`, call them with
    `in_process.client`; everything stops after the test, in reverse order."""
    async with InProcess.open() as harness:
        yield harness
