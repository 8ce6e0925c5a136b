"""Writing a set of secret files once, atomically, so concurrent first starts agree.

Like auth_service's signing key: the files are written into a private draft folder, then
the folder is renamed into place. A rename onto an existing, non-empty folder fails, so
exactly one of several processes starting together wins and the others use its files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def write_once(directory: Path, files: Mapping[str, bytes]) -> bool:
    """Create `directory` holding `files` (mode 0600) unless it exists; True if this call did."""
    if directory.exists():
        return False
    directory.parent.mkdir(parents=True, exist_ok=True)
    draft = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
    try:
        os.chmod(draft, DIR_MODE)
        for name, content in files.items():
            path = draft / name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
        try:
            os.rename(draft, directory)
        except OSError:
            # Another process created it first (ENOTEMPTY/EEXIST): theirs is the one.
            if not directory.exists():
                raise
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(draft)


def write_file_once(path: Path, content: bytes) -> bool:
    """Create `path` (mode 0600) holding `content` unless it exists; True if this call did."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(draft, FILE_MODE)
        try:
            os.link(draft, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(draft)
