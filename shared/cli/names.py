"""What a new service may be called.

The name becomes a top-level package, a proto package, a registry name and a compose
service, so it must be valid, and importing it must never pick up something else.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from pathlib import Path

__all__ = ["InvalidNameError", "check_name"]

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_MAX_LENGTH = 30  # the longest names still fit the generated code in 100 columns
# Folders of the kit that are not services, whether or not they exist yet.
_DEAD_LETTERS = "dlq"  # the broker's dead-letter stream holds dlq.>
_RESERVED = frozenset({"shared", "tests", "template", "bench", "scripts", "sql", "docs", "build"})


class InvalidNameError(ValueError):
    """The message says what is wrong and what would do."""


def check_name(name: str, root: Path) -> str:
    """`name` if a new service may take it in the project at `root`; else `InvalidNameError`."""
    if not _SNAKE.match(name):
        hint = name.lower().replace("-", "_") if name.isascii() else "order"
        raise InvalidNameError(
            f"{name!r} is not lower_snake_case: use letters, digits and single underscores, "
            f"starting with a letter (e.g. {hint!r})"
        )
    if len(name) > _MAX_LENGTH:
        raise InvalidNameError(f"{name!r} is longer than {_MAX_LENGTH} characters")
    base = name.removesuffix("_service")
    if keyword.iskeyword(name) or keyword.iskeyword(base):
        raise InvalidNameError(f"{name!r} is a Python keyword: it cannot name a package")
    if name in _RESERVED:
        raise InvalidNameError(f"{name!r} is a folder of the kit, not a service name")
    if base.startswith(_DEAD_LETTERS):
        # The template's event is `<base>.created`: under dlq.> it would be refused.
        raise InvalidNameError(f"{name!r}: subjects under {_DEAD_LETTERS}.> are dead letters")
    for taken in (root / name, root / "shared" / "proto" / name, root / "tests" / name):
        if taken.exists():
            where = taken.relative_to(root)
            raise InvalidNameError(f"{where}/ already exists: refusing to overwrite it")
    if name in sys.stdlib_module_names or _importable(name):
        raise InvalidNameError(
            f"{name!r} is already an importable module: a package of that name would "
            "shadow it or be shadowed"
        )
    return name


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True
