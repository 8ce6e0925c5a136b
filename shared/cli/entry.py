"""The `micro` console script: the command line, or one line saying what to install.

The CLI's libraries are the `cli` extra, which the Docker image leaves out; without this
check `micro` would end in a traceback about a missing module.
"""

from __future__ import annotations

import importlib.util
import sys

# The top-level modules of the `cli` extra that `micro` imports (some only for `micro new`).
CLI_MODULES = ("typer", "copier", "jinja2", "yaml")
INSTALL_HINT = "pip install 'pymicro-kit[cli]'  (or `make install` in a checkout)"


def missing_modules() -> list[str]:
    return [name for name in CLI_MODULES if importlib.util.find_spec(name) is None]


def main() -> None:
    missing = missing_modules()
    if missing:
        sys.exit(f"micro: the cli extra is not installed (no {', '.join(missing)}): {INSTALL_HINT}")
    from shared.cli.main import app

    app(prog_name="micro")
