"""Importing a library without the optional dependencies it loads whenever they are installed.

Some libraries try an optional import at their own import time and enable a feature when it
succeeds, whether or not the caller uses it: pybreaker loads redis-py (13 MB of a service's
memory) for its Redis storage, PyJWT cryptography's bindings (11 MB) for RSA and EC keys.
A caller that uses none of that feature can import the library with the optional module
hidden; the library then runs as it does where that module is not installed (its
documented fallback), and the module stays importable by anything else afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without_optional(*modules: str) -> Iterator[None]:
    """Within the block, importing any of `modules` raises ModuleNotFoundError, as if it were
    not installed. A module already imported is left alone: its memory is spent already."""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
