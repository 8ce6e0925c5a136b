"""Every test that starts or uses a real server (etcd, NATS, MariaDB, Redis, a service
process, honcho) carries the `integration` marker, and this keeps it so.

Two checks, both failing the test that lacks the marker:
- a fixture decorated with `@real_server` (etcd, registry, nats_server, start_service,
  mariadb_database, ...) is among the fixtures the test uses;
- a server is started while the test runs (`require("etcd")` in EtcdServer.start and the
  other starters), which also catches a server started in the test's body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

MARKER = "integration"
_ATTRIBUTE = "starts_real_server"

F = TypeVar("F", bound=Callable[..., object])

_current: pytest.Item | None = None


def real_server(function: F) -> F:
    """Mark a fixture function as one that gives a test a real server (put it under
    @pytest.fixture)."""
    setattr(function, _ATTRIBUTE, True)
    return function


def _marked(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None


def check_fixtures(item: pytest.Item) -> None:
    """Before the test's fixtures are set up: it uses no real-server fixture unmarked."""
    global _current
    _current = item
    if _marked(item) or not isinstance(item, pytest.Function):  # only functions use fixtures
        return
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is None:
        return
    used = sorted(
        name
        for name in item.fixturenames
        for definition in fixture_info.name2fixturedefs.get(name, ())[-1:]
        if getattr(definition.func, _ATTRIBUTE, False)
    )
    if used:
        pytest.fail(
            f"{item.nodeid} uses {', '.join(used)} (a real server): mark it `{MARKER}`",
            pytrace=False,
        )


def forget(item: pytest.Item) -> None:
    global _current
    if _current is item:
        _current = None


def require(server: str) -> None:
    """Called where a real server or service process starts."""
    if _current is not None and not _marked(_current):
        pytest.fail(
            f"{_current.nodeid} starts {server} (a real server): mark it `{MARKER}`",
            pytrace=False,
        )
