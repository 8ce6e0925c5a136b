"""`micro new service NAME`: render the template with copier, then wire the service in.

Everything that could refuse (the name, the Procfile, the compose file, the packaging) is
decided before the first file is written; if rendering or code generation then fails,
what was rendered is removed again, so a failed `micro new` leaves the project as it was.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from shared.cli.compose import ComposeError, ComposeService, add_service, next_port
from shared.cli.names import check_name
from shared.cli.packaging import (
    PackagingError,
    add_to_dockerfile,
    add_to_dockerignore,
    add_to_pyproject,
)
from shared.cli.project import add_procfile_line, next_http_port, procfile_has
from shared.cli.protogen import ProtoError, generate_service_code

__all__ = ["ERRORS", "NewService", "ScaffoldError", "naming", "new_service"]

TEMPLATE = "template"
COMPOSE = "docker-compose.yml"


class ScaffoldError(RuntimeError):
    pass


# Errors the command line turns into one clear line each (a bad name is a ValueError).
ERRORS = (ScaffoldError, ProtoError, ValueError, OSError)


@dataclass
class NewService:
    name: str
    entity: str  # "Order": CreateOrder, GetOrder, OrderService
    http_port: int | None
    grpc_port: int | None = None  # in docker-compose.yml, when there is one
    edits: dict[str, str] = field(default_factory=dict)  # file → its new text
    notes: list[str] = field(default_factory=list)

    @property
    def folders(self) -> list[str]:
        return [f"{self.name}/", f"shared/proto/{self.name}/v1/", f"tests/{self.name}/"]

    @property
    def edited(self) -> list[str]:
        return list(self.edits)


def naming(name: str) -> dict[str, str]:
    """The template's computed names (copier.yml computes the same): Name, entity, Entity."""
    entity = name.removesuffix("_service")
    return {"Name": _camel(name), "entity": entity, "Entity": _camel(entity)}


def new_service(root: Path, name: str, *, http: bool = False) -> NewService:
    check_name(name, root)
    plan = _plan(root, name, http)
    _render(root, name, http, plan.http_port)
    try:
        generate_service_code(root, name)
        plan.notes.extend(_format(root, name))
    except BaseException:
        _remove(root, name)
        raise
    for relative, text in plan.edits.items():
        (root / relative).write_text(text)
    return plan


def _plan(root: Path, name: str, http: bool) -> NewService:
    """The edits of the project's files, decided before anything is written."""
    procfile = _read(root / "Procfile") or ""
    if procfile_has(procfile, name):
        raise ScaffoldError(f"the Procfile already starts {name!r}: refusing to overwrite")
    compose = _read(root / COMPOSE)
    http_port = None
    if http:
        from_compose = next_port(compose, "HTTP_PORT", 8081) if compose else 8081
        http_port = max(next_http_port(root), from_compose)
    plan = NewService(name, naming(name)["Entity"], http_port)
    plan.edits["Procfile"] = add_procfile_line(procfile, name)
    if compose is None:
        plan.notes.append(f"no {COMPOSE} here: the service was not added to one")
    else:
        plan.grpc_port = next_port(compose, "GRPC_PORT", 50051)
        snippet = (root / TEMPLATE / "snippets" / "compose.yml.jinja").read_text()
        service = ComposeService(name, plan.grpc_port, http_port)
        try:
            plan.edits[COMPOSE] = add_service(compose, service, snippet)
        except ComposeError as error:
            raise ScaffoldError(f"cannot add {name!r} to {COMPOSE}: {error}") from None
    packages = {p.parent.name for p in root.glob("*/__init__.py")}
    pyproject, dockerfile = _read(root / "pyproject.toml"), _read(root / "Dockerfile")
    dockerignore = _read(root / ".dockerignore")
    try:
        if pyproject is not None and (updated := add_to_pyproject(pyproject, name)):
            plan.edits["pyproject.toml"] = updated
        if dockerfile is not None and (updated := add_to_dockerfile(dockerfile, name, packages)):
            plan.edits["Dockerfile"] = updated
        if dockerignore is not None and (
            updated := add_to_dockerignore(dockerignore, name, packages)
        ):
            plan.edits[".dockerignore"] = updated
    except PackagingError as error:
        raise ScaffoldError(str(error)) from None
    readme = _read(root / "README.md")
    if readme is None:
        plan.notes.append("no README.md here: its section was not added")
    else:
        section = _snippet(root, "README.section.md.jinja", name, http, http_port)
        plan.edits["README.md"] = readme.rstrip("\n") + "\n" + section
    return plan


def _render(root: Path, name: str, http: bool, http_port: int | None) -> None:
    import copier  # slow to import: only `micro new` pays for it

    data: dict[str, object] = {"name": name, "http": http}
    if http_port is not None:
        data["http_port"] = http_port
    # A relative source: the answers file then says `_src_path: template`, valid in any clone.
    with contextlib.chdir(root):
        try:
            copier.run_copy(
                TEMPLATE,
                ".",
                data=data,
                answers_file=f"{name}/.copier-answers.yml",
                defaults=True,
                overwrite=False,
                quiet=True,
            )
        except Exception as error:
            _remove(root, name)
            raise ScaffoldError(f"copier could not render the template: {error}") from error


def _snippet(root: Path, snippet: str, name: str, http: bool, http_port: int | None) -> str:
    environment = jinja2.Environment(
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
    text = (root / TEMPLATE / "snippets" / snippet).read_text()
    return environment.from_string(text).render(
        name=name, http=http, http_port=http_port, **naming(name)
    )


def _format(root: Path, name: str) -> list[str]:
    """Let ruff settle what a long name does to line lengths and import order."""
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    if ruff is None:
        return ["ruff not found: the generated code was not formatted"]
    paths = [name, f"tests/{name}"]
    for args in (["check", "--quiet", "--fix", "--select", "I", *paths], ["format", *paths]):
        subprocess.run([ruff, *args], cwd=root, capture_output=True, check=False)
    return []


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _remove(root: Path, name: str) -> None:
    for folder in (root / name, root / "shared" / "proto" / name, root / "tests" / name):
        shutil.rmtree(folder, ignore_errors=True)


def _camel(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))
