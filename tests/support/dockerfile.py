"""The Dockerfile and .dockerignore read the way `docker build` reads them, without Docker.

`parse_dockerfile` gives the instructions (continuations joined, comments dropped);
`DockerIgnore` decides which files of the project are in the build context, with the
rules of moby's patternmatcher: a pattern matches a path or any of its parent folders,
`*`/`?` stay within one folder, `**` spans folders, `!` re-includes, the last match wins.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, arguments = " ".join(part for part in pending if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def command_argv(arguments: str) -> list[str]:
    """A CMD/ENTRYPOINT/RUN in exec (JSON) form or shell form, as a list of words."""
    if arguments.startswith("["):
        parsed = json.loads(arguments)
        assert isinstance(parsed, list)
        assert all(isinstance(part, str) for part in parsed)
        return parsed
    return shlex.split(arguments)


def without_flags(arguments: str) -> tuple[dict[str, str], str]:
    """Split leading `--flag=value` options (COPY --chown, HEALTHCHECK --interval) off."""
    flags: dict[str, str] = {}
    rest = arguments
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        flags[name] = value
        rest = rest.lstrip()
    return flags, rest


def copy_sources(instruction: Instruction) -> tuple[list[str], str]:
    """(sources, destination) of a COPY or ADD."""
    _, rest = without_flags(instruction.arguments)
    parts = command_argv(rest)
    return parts[:-1], parts[-1]


def healthcheck_argv(instruction: Instruction) -> list[str]:
    """The command of `HEALTHCHECK [options] CMD ...` (exec form kept as a list)."""
    _, rest = without_flags(instruction.arguments)
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK without CMD: {instruction.arguments}"
    return command_argv(command.strip())


def env_names(instruction: Instruction) -> list[str]:
    """The variables an ENV or ARG sets (`K=V K2=V2`, or the legacy `K V`)."""
    words = shlex.split(instruction.arguments)
    if words and "=" not in words[0]:
        return [words[0]]
    return [word.split("=", 1)[0] for word in words]


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.patterns: list[tuple[bool, str, re.Pattern[str]]] = []
        for line in text.splitlines():
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negated = pattern.startswith("!")
            pattern = os.path.normpath(pattern.lstrip("!").strip()).lstrip("/")
            self.patterns.append((negated, pattern, re.compile(_regex(pattern))))

    def excluded(self, path: str) -> bool:
        """Whether the file or folder at `path` (relative, with /) stays out of the context."""
        parts = path.strip("/").split("/")
        prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
        result = False
        for negated, _, regex in self.patterns:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negated
        return result

    def context_files(self, root: Path = ROOT) -> set[str]:
        """The files `docker build` would send from `root`."""
        found: set[str] = set()
        for folder, dirs, files in os.walk(root):
            relative = Path(folder).relative_to(root).as_posix()
            prefix = "" if relative == "." else f"{relative}/"
            dirs[:] = [
                name
                for name in dirs
                if not self.excluded(prefix + name) or self._may_reinclude(prefix + name)
            ]
            found.update(prefix + name for name in files if not self.excluded(prefix + name))
        return found

    def _may_reinclude(self, folder: str) -> bool:
        return any(
            negated and (pattern.startswith(f"{folder}/") or any(c in pattern for c in "*?["))
            for negated, pattern, _ in self.patterns
        )


def dockerignore() -> DockerIgnore:
    return DockerIgnore(DOCKERIGNORE.read_text())


def _regex(pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index:]:
            end = pattern.index("]", index)
            out.append(pattern[index : end + 1].replace("[!", "[^"))
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return "".join(out)
