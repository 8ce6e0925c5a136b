"""Adding a service to docker-compose.yml as text, so that its comments and anchors stay.

The block is appended at the end of the `services:` mapping in the file's own style (its
`x-service` anchors when it defines them), and the result is parsed before it is written:
a file that would not load, or would not hold the service, is never written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2

__all__ = ["ComposeError", "ComposeService", "add_service", "next_port"]

_TOP_LEVEL = re.compile(r"^[^\s#]")
_SERVICES = re.compile(r"^services:[ \t]*(#.*)?$")
# What a kit service waits for, when the file has it: the registry first.
_DEPENDENCIES = ("etcd-auth", "etcd", "nats", "jaeger", "config_service")


class ComposeError(ValueError):
    pass


@dataclass(frozen=True)
class ComposeService:
    name: str
    grpc_port: int
    http_port: int | None = None


def add_service(text: str, service: ComposeService, snippet: str) -> str:
    """`text` with `service` added under `services:`; `ComposeError` when it cannot be."""
    document = _load(text)
    services = document.get("services") or {}
    if not isinstance(services, dict):
        raise ComposeError("`services` is not a mapping")
    if service.name in services:
        raise ComposeError(f"it already has a service {service.name!r}")
    block = _render(text, document, service, snippet)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _SERVICES.match(line)), None)
    if start is None:
        if "services" in document:
            raise ComposeError("`services:` is not in block style: add the service by hand")
        updated = "".join(lines) + "\nservices:\n" + block
    else:
        end = _end_of_mapping(lines, start)
        updated = "".join(
            [*lines[:end], "\n", _indent(block, _unit(lines, start, end)), *lines[end:]]
        )
    _check(updated, service.name)
    return updated


def next_port(text: str, variable: str, default: int) -> int:
    """One above the highest `variable` (GRPC_PORT, HTTP_PORT) of the file's services."""
    ports = [default - 1]
    for spec in (_load(text).get("services") or {}).values():
        environment = spec.get("environment") if isinstance(spec, dict) else None
        if isinstance(environment, Mapping) and str(environment.get(variable, "")).isdigit():
            ports.append(int(environment[variable]))
    return max(ports) + 1


def _render(text: str, document: dict[str, Any], service: ComposeService, snippet: str) -> str:
    services = document.get("services") or {}
    anchors = {
        "service": re.search(r"&service\b(?!-)", text) is not None,
        "env": re.search(r"&service-env\b", text) is not None,
        "healthcheck": re.search(r"&healthcheck\b", text) is not None,
    }
    depends_on = [(name, _condition(services, name)) for name in _DEPENDENCIES if name in services]
    environment = jinja2.Environment(
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False
    )
    return environment.from_string(snippet).render(
        name=service.name,
        grpc_port=service.grpc_port,
        http=service.http_port is not None,
        http_port=service.http_port,
        anchors=anchors,
        depends_on=depends_on,
        # The file's one-shot `secrets` step made its certificate and NATS and etcd users.
        secrets="secrets" in services,
        # Events wait for NATS on the file's shared spool volume, when it has one.
        spool="spool" in (document.get("volumes") or {}),
    )


def _condition(services: dict[str, Any], dependency: str) -> str:
    """How the file's other services wait for `dependency`: its convention, not a guess."""
    for spec in services.values():
        depends_on = spec.get("depends_on") if isinstance(spec, dict) else None
        entry = depends_on.get(dependency) if isinstance(depends_on, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("condition"), str):
            return str(entry["condition"])
    has_check = isinstance(services[dependency], dict) and "healthcheck" in services[dependency]
    return "service_healthy" if has_check else "service_started"


def _end_of_mapping(lines: list[str], start: int) -> int:
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL.match(lines[i])), len(lines))
    # Comments just above the next top-level key belong to it, and blank lines to nobody.
    while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return end


def _unit(lines: list[str], start: int, end: int) -> int:
    for line in lines[start + 1 : end]:
        if line.strip() and not line.lstrip().startswith("#"):
            return len(line) - len(line.lstrip(" "))
    return 2


def _indent(block: str, unit: int) -> str:
    """Re-indent a block written with 2-space steps to the file's step."""
    if unit == 2:
        return block
    result = []
    for line in block.splitlines(keepends=True):
        spaces = len(line) - len(line.lstrip(" "))
        result.append(" " * (spaces // 2 * unit) + line[spaces:])
    return "".join(result)


def _load(text: str) -> dict[str, Any]:
    import yaml  # PyYAML (the cli extra), needed only here

    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ComposeError(f"it is not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise ComposeError("it is not a YAML mapping")
    return document


def _check(text: str, name: str) -> None:
    spec = (_load(text).get("services") or {}).get(name)
    if not isinstance(spec, dict) or spec.get("command") != ["python", "-m", name]:
        raise ComposeError("the result would not hold the service: add it by hand")
