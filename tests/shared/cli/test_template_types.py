"""What `micro new service` renders is strictly typed, as the template's README says: the
service's package and its tests pass `mypy --strict` under the project's mypy settings,
with and without the HTTP front (`--http`).

In a copy of the project (nothing is started: copier, protoc and mypy only).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.project_copy import copy_project, micro, run

# A service of each kind: gRPC only, and gRPC with the HTTP front.
SERVICES = {"order": (), "shop": ("--http",)}


@dataclass(frozen=True)
class Rendered:
    root: Path
    cache: Path  # mypy's cache, shared by the checks (the kit is analysed once)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    root = copy_project(tmp_path_factory.mktemp("kit"))
    for name, options in SERVICES.items():
        made = micro(root, "new", "service", name, *options)
        assert made.returncode == 0, made.stdout + made.stderr
    return Rendered(root, tmp_path_factory.mktemp("mypy_cache"))


@pytest.mark.parametrize("name", list(SERVICES))
def test_the_rendered_service_and_its_tests_pass_mypy_strict(rendered: Rendered, name: str) -> None:
    checked = run(
        rendered.root,
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--cache-dir",
        str(rendered.cache),
        name,
        f"tests/{name}",
        timeout=600,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found" in checked.stdout
