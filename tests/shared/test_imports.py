"""Importing a library without an optional dependency it would load."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.imports import without_optional

_LIBRARY = """
try:
    import kit_test_optional
    has_optional = True
except ModuleNotFoundError:
    has_optional = False
"""


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    """A library that enables a feature when its optional dependency imports."""
    (tmp_path / "kit_test_library.py").write_text(_LIBRARY)
    (tmp_path / "kit_test_optional.py").write_text("LOADED = True\n")
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in ("kit_test_library", "kit_test_optional"):
        sys.modules.pop(name, None)


def test_the_library_runs_as_if_the_optional_module_were_not_installed(modules: Path) -> None:
    with without_optional("kit_test_optional"):
        library = importlib.import_module("kit_test_library")

    assert library.has_optional is False
    assert "kit_test_optional" not in sys.modules


def test_the_optional_module_is_importable_again_after_the_block(modules: Path) -> None:
    with without_optional("kit_test_optional"):
        importlib.import_module("kit_test_library")

    assert importlib.import_module("kit_test_optional").LOADED is True


def test_a_module_imported_already_is_left_alone(modules: Path) -> None:
    optional = importlib.import_module("kit_test_optional")

    with without_optional("kit_test_optional"):
        library = importlib.import_module("kit_test_library")

    assert library.has_optional is True
    assert sys.modules["kit_test_optional"] is optional
