"""`micro`: the kit's command line (installed with the project).

micro new service order [--http]
micro services
micro call order CreateOrder '{"title": "a book", "quantity": 2}'
micro health order
micro streams
micro events AUDIT --last 5
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from shared.cli import nats_view, remote
from shared.cli.identity import operator_certificate
from shared.cli.options import Timeout
from shared.cli.options import fail as _fail
from shared.errors import ServiceError
from shared.registry import ServiceNode

T = TypeVar("T")

app = typer.Typer(
    name="micro",
    help="The kit's command line: new services, and a look at the running ones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
new_app = typer.Typer(help="Create a part of the project from the kit's template.")
app.add_typer(new_app, name="new", no_args_is_help=True)

Etcd = Annotated[
    str,
    typer.Option(
        "--etcd",
        envvar=["ETCD_ENDPOINTS", "ETCD_ENDPOINT"],
        help="etcd host:port of the registry (a cluster: comma-separated)",
    ),
]
Prefix = Annotated[
    str, typer.Option("--prefix", envvar="REGISTRY_PREFIX", help="registry key prefix")
]


class _Identity:
    """The global options of who the CLI is, read by `_target` (see shared.cli.identity)."""

    tls_dir: Path | None = None
    dev_root: Path | None = None
    name: str | None = None
    trust_domain: str = "micro.local"
    plaintext: bool = False


@app.callback()
def identity(
    tls_dir: Annotated[
        Path | None,
        typer.Option(
            "--tls-dir",
            envvar="MICRO_TLS_DIR",
            help="your operator certificate: a folder with tls.crt, tls.key, ca.crt",
        ),
    ] = None,
    dev_root: Annotated[
        Path | None,
        typer.Option(
            "--tls-dev-root",
            envvar="TLS_DEV_ROOT",
            help="the development CA of `make run` (default .run/tls, used when it exists)",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--operator", envvar="MICRO_OPERATOR", help="operator name (default: you)"),
    ] = None,
    trust_domain: Annotated[
        str, typer.Option("--trust-domain", envvar="TRUST_DOMAIN", help="SPIFFE trust domain")
    ] = "micro.local",
    plaintext: Annotated[
        bool, typer.Option("--plaintext", help="call without TLS (services run without mTLS)")
    ] = False,
) -> None:
    """The kit's command line: new services, and a look at the running ones."""
    _Identity.tls_dir, _Identity.dev_root, _Identity.name = tls_dir, dev_root, name
    _Identity.trust_domain, _Identity.plaintext = trust_domain, plaintext


def _target(etcd: str, prefix: str, timeout: float) -> remote.Target:
    try:
        tls = operator_certificate(
            tls_dir=_Identity.tls_dir,
            dev_root=_Identity.dev_root,
            name=_Identity.name,
            trust_domain=_Identity.trust_domain,
            plaintext=_Identity.plaintext,
        )
    except (OSError, ValueError) as error:
        _fail(str(error))
    return remote.Target(etcd, prefix, timeout, tls)


@new_app.command("service")
def new_service(
    name: Annotated[str, typer.Argument(help="lower_snake_case: folder, registry and proto name")],
    http: Annotated[
        bool, typer.Option("--http", help="also serve an HTTP (FastAPI) front, next to gRPC")
    ] = False,
    project: Annotated[
        Path, typer.Option("--project", help="the kit project (default: this folder or above)")
    ] = Path(),
) -> None:
    """Create service NAME from template/: code, .proto, tests, Procfile and compose entries."""
    from shared.cli.project import NotAProjectError, find_root
    from shared.cli.scaffold import ERRORS, new_service

    try:
        root = find_root(project)
        created = new_service(root, name, http=http)
    except (NotAProjectError, *ERRORS) as error:
        _fail(f"cannot create service {name!r}: {error}")
    entity = created.entity
    typer.echo(f"created {name}: " + ", ".join(created.folders))
    if created.edited:
        typer.echo(f"added {name} to: " + ", ".join(created.edited))
    for note in created.notes:
        typer.echo(f"note: {note}")
    steps = [
        (f"pytest tests/{name}", "its tests"),
        ("make run", f"starts {name} with the others (Procfile)"),
        ("micro services", "shows it registered in etcd"),
        (f"""micro call {name} Create{entity} '{{"title": "a book", "quantity": 2}}'""", ""),
        (f"GATEWAY_ENABLED=true GATEWAY_ALLOW='{name}.*' make run", f"/rpc/{name}/..."),
        (f"edit shared/proto/{name}/v1/{name}.proto, then: make proto", ""),
    ]
    width = max(len(command) for command, why in steps if why)
    lines = [f"  {command:<{width}}  # {why}" if why else f"  {command}" for command, why in steps]
    typer.echo("next:\n" + "\n".join(lines))


@app.command("services")
def services(
    etcd: Etcd = "127.0.0.1:2379",
    prefix: Prefix = "/micro/registry",
    timeout: Timeout = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the registered services and their nodes."""
    found = _run(remote.list_services(_target(etcd, prefix, timeout)))
    if as_json:
        typer.echo(json.dumps({k: [_node(n) for n in v] for k, v in found.items()}, indent=2))
        return
    if not found:
        typer.echo(f"no services registered under {prefix} at {etcd}")
    for service, nodes in found.items():
        typer.echo(f"{service}  ({len(nodes)} node{'s' if len(nodes) != 1 else ''})")
        for node in nodes:
            served = ", ".join(node.endpoints) or "-"
            typer.echo(f"  {node.id}  {node.address}  v{node.version}  {served}")


@app.command("call")
def call(
    service: Annotated[str, typer.Argument(help="the registered name, e.g. order")],
    method: Annotated[str, typer.Argument(help="Method or pkg.Service/Method")],
    request: Annotated[str, typer.Argument(help="the request as JSON; - reads stdin")] = "{}",
    etcd: Etcd = "127.0.0.1:2379",
    prefix: Prefix = "/micro/registry",
    timeout: Timeout = 5.0,
) -> None:
    """Call METHOD of SERVICE with a JSON request (through reflection); print the reply."""
    text = sys.stdin.read() if request == "-" else request
    reply = _run(remote.call(_target(etcd, prefix, timeout), service, method, text))
    typer.echo(json.dumps(reply, indent=2))


@app.command("health")
def health(
    service: Annotated[str, typer.Argument(help="the registered name, e.g. order")],
    etcd: Etcd = "127.0.0.1:2379",
    prefix: Prefix = "/micro/registry",
    timeout: Timeout = 5.0,
) -> None:
    """Each node's gRPC health (grpc.health.v1); exit 1 unless every node is SERVING."""
    nodes = _run(remote.check_health(_target(etcd, prefix, timeout), service))
    if not nodes:
        _fail(f"no node of {service} is registered")
    for checked in nodes:
        typer.echo(f"{checked.node.id}  {checked.node.address}  {checked.status}")
    if any(checked.status != "SERVING" for checked in nodes):
        raise typer.Exit(1)


app.command("streams")(nats_view.streams)
app.command("events")(nats_view.events)


config_app = typer.Typer(help="Read and write an app's configuration in config_service.")
app.add_typer(config_app, name="config", no_args_is_help=True)


@config_app.command("get")
def config_get(
    app_name: Annotated[str, typer.Argument(metavar="APP", help="e.g. user_api")],
    etcd: Etcd = "127.0.0.1:2379",
    prefix: Prefix = "/micro/registry",
    timeout: Timeout = 5.0,
) -> None:
    """Print APP's configuration as JSON."""
    document = _run(remote.get_config(_target(etcd, prefix, timeout), app_name))
    typer.echo(json.dumps(document, indent=2))


@config_app.command("set")
def config_set(
    app_name: Annotated[str, typer.Argument(metavar="APP", help="e.g. user_api")],
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="a JSON object; - reads stdin")],
    etcd: Etcd = "127.0.0.1:2379",
    prefix: Prefix = "/micro/registry",
    timeout: Timeout = 5.0,
) -> None:
    """Replace APP's whole configuration; refused (nothing stored) unless it fits APP's
    settings schema. Running replicas apply it within a second."""
    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    document = _run(remote.set_config(_target(etcd, prefix, timeout), app_name, text))
    typer.echo(json.dumps(document, indent=2))


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except ServiceError as error:
        _fail(f"{error.reason}: {error.message}")


def _node(node: ServiceNode) -> Any:
    return json.loads(node.to_json())
