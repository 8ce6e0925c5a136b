"""Shipping a new service: pyproject's package list, and what the image is built from.

These list the services one by one (pyproject's `include`, the Dockerfile's COPY lines or
.dockerignore's allow-list); a service missing from one would run with `make run` but not
in the image compose builds. Each edit is a small text change, and nothing is changed
when the file already covers the service.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from typing import Any

__all__ = ["PackagingError", "add_to_dockerfile", "add_to_dockerignore", "add_to_pyproject"]

_FIND_TABLE = re.compile(r"^\[tool\.setuptools\.packages\.find\]\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"^include\s*=\s*\[(?P<items>[^\]]*)\]", re.MULTILINE)
_COPY_PACKAGE = re.compile(r"^COPY\s+(?P<source>[A-Za-z_]\w*)/?\s+\./(?P=source)/?\s*$")
_COMPILEALL = re.compile(r"^RUN\s+python\s+-m\s+compileall\b")
_ALLOWED = re.compile(r"^!/?(?P<path>[A-Za-z_]\w*)/?\s*$")


class PackagingError(ValueError):
    pass


def add_to_pyproject(text: str, name: str) -> str | None:
    """`text` with `name*` in packages.find's include; None when it is included already."""
    include = _include(tomllib.loads(text))
    if include is None or any(fnmatch.fnmatch(name, pattern) for pattern in include):
        return None
    table = _FIND_TABLE.search(text)
    found = _INCLUDE.search(text, table.end()) if table else None
    if found is None:
        raise PackagingError("pyproject.toml: cannot find packages.find's include list")
    items = found.group("items").rstrip()
    separator = ", " if items.strip() and not items.endswith(",") else " " if items else ""
    updated = (
        f'{text[: found.start("items")]}{items}{separator}"{name}*"{text[found.end("items") :]}'
    )
    if not any(fnmatch.fnmatch(name, p) for p in _include(tomllib.loads(updated)) or []):
        raise PackagingError("pyproject.toml: the include list did not take the service")
    return updated


def add_to_dockerfile(text: str, name: str, packages: set[str]) -> str | None:
    """`text` copying `name` into the image beside the other `packages`; None when the image
    copies the whole project (or already copies `name`)."""
    lines = text.splitlines(keepends=True)
    copies = [(i, m["source"]) for i, line in enumerate(lines) if (m := _COPY_PACKAGE.match(line))]
    if any(source == name for _, source in copies) or re.search(r"^COPY\s+\.\s", text, re.M):
        return None
    services = [i for i, source in copies if source in packages]
    if not services:
        raise PackagingError("Dockerfile: no `COPY <package> ./<package>` line to follow")
    at = services[-1] + 1
    lines.insert(at, f"COPY {name} ./{name}\n")
    for index, line in enumerate(lines):
        if _COMPILEALL.match(line) and not line.rstrip().endswith("\\"):
            lines[index] = f"{line.rstrip()} {name}\n"
    return "".join(lines)


def add_to_dockerignore(text: str, name: str, packages: set[str]) -> str | None:
    """`text` letting `name/` into the build context when it is an allow-list (`*`, then
    `!package/` lines); None for a deny-list, which lets a new folder in already."""
    lines = text.splitlines(keepends=True)
    if not any(line.strip() == "*" for line in lines):
        return None
    allowed = [(i, m["path"]) for i, line in enumerate(lines) if (m := _ALLOWED.match(line))]
    if any(path == name for _, path in allowed):
        return None
    services = [i for i, path in allowed if path in packages]
    if not services:
        raise PackagingError(".dockerignore: no `!<package>/` line to follow")
    lines.insert(services[-1] + 1, f"!{name}/\n")
    return "".join(lines)


def _include(document: dict[str, Any]) -> list[str] | None:
    find = document.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find")
    include = find.get("include") if isinstance(find, dict) else None
    return [str(p) for p in include] if isinstance(include, list) else None
