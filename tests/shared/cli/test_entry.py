"""The `micro` console script without the `cli` extra (as in the Docker image): one line
saying what to install, not a traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.support.services import ROOT

# What the console script does, with the extra's modules made unimportable.
WITHOUT_CLI_EXTRA = """
import sys
for name in ("typer", "copier"):
    sys.modules[name] = None  # an import of it fails, as when it is not installed
from shared.cli.entry import main
main()
"""


def test_the_console_script_is_the_checked_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["micro"] == "shared.cli.entry:main"


def test_without_the_cli_extra_micro_says_what_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_CLI_EXTRA, "services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "micro: the cli extra is not installed (no typer, copier): "
        "pip install 'pymicro-kit[cli]'  (or `make install` in a checkout)"
    ]


def test_with_the_cli_extra_micro_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "new" in done.stdout
