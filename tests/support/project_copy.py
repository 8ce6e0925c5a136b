"""A throw-away copy of the project, to run `micro new` in and start what it made.

The copy leaves out the venv, git and local state, and runs with this venv's Python.
Nothing beside the project is linked: the copy stands on its own, as a fresh clone does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support import integration
from tests.support.services import ROOT, ServiceProcess

BIN = Path(sys.executable).parent
MICRO = BIN / "micro"
_LEFT_OUT = shutil.ignore_patterns(
    ".venv", ".git", ".run", "__pycache__", "*.egg-info", ".*_cache", "*.db"
)


def copy_project(parent: Path) -> Path:
    """Copy the project to `parent/project`; return the copy's root."""
    root = parent / "project"
    shutil.copytree(ROOT, root, ignore=_LEFT_OUT, symlinks=True)
    return root


def kit_files(root: Path) -> dict[str, str]:
    """sha256 of every file of the kit: shared/, except the contracts in shared/proto/."""
    hashes: dict[str, str] = {}
    for path in sorted((root / "shared").rglob("*")):
        relative = path.relative_to(root).as_posix()
        if (
            path.is_file()
            and "__pycache__" not in relative
            and not relative.startswith("shared/proto/")
        ):
            hashes[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def run(
    root: Path, *argv: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv in the copy (its own code first on the path)."""
    return subprocess.run(
        list(argv),
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def micro(
    root: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run(root, str(MICRO), *args, env=env)


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(
        root, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, timeout=300
    )


class CopiedServiceProcess(ServiceProcess):
    """`python -m <module>` run from the copy rather than from this project."""

    def __init__(self, root: Path, module: str, env: Mapping[str, str], log_path: Path) -> None:
        super().__init__(module, {**env, "PYTHONPATH": str(root)}, log_path)
        self.root = root

    def start(self) -> CopiedServiceProcess:
        integration.require(self.module)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        return self
