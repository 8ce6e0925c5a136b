from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.grpc_nodes import Nodes, running_nodes


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    async with running_nodes() as cluster:
        yield cluster
