"""`micro streams` and `micro events`: the operator's read-only view of NATS (the reading
is in shared.cli.events; `main` registers these commands)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import nats.errors
import nats.js.errors
import typer

from shared.cli import events as view
from shared.cli.options import Timeout, fail

T = TypeVar("T")

Nats = Annotated[
    str | None,
    typer.Option(
        "--nats",
        envvar="NATS_URL",
        help="the NATS server (default: the `make run` here, else nats://127.0.0.1:4222)",
    ),
]
Nkey = Annotated[
    Path | None,
    typer.Option(
        "--nkey",
        envvar="MICRO_NATS_NKEY",
        help="your operator's NATS seed (default .run/nats-operators/operator.nk, when it exists)",
    ),
]


def streams(
    nats_url: Nats = None,
    nkey: Nkey = None,
    timeout: Timeout = 5.0,
) -> None:
    """JetStream's streams, as JSON: their size, and each consumer's backlog."""
    found = _run(view.streams(_nats_target(nats_url, nkey, timeout)))
    typer.echo(json.dumps(found, indent=2))


def events(
    stream: Annotated[str, typer.Argument(help="e.g. AUDIT (micro streams lists them)")],
    subject: Annotated[
        str | None, typer.Option("--subject", help="only these, e.g. audit.> or user.logged_in")
    ] = None,
    last: Annotated[int, typer.Option("--last", min=1, help="how many, newest last")] = 20,
    scan: Annotated[
        int, typer.Option("--scan", min=1, help="read at most this many looking for them")
    ] = 10_000,
    nats_url: Nats = None,
    nkey: Nkey = None,
    timeout: Timeout = 5.0,
) -> None:
    """The newest events STREAM holds, one JSON object per line, decoded with the project's
    contracts. Reads only: no consumer, so no service misses an event for it."""
    target = _nats_target(nats_url, nkey, timeout)
    found = _run(view.events(target, stream, subject=subject, last=last, scan=scan))
    for item in found:
        typer.echo(json.dumps(item, separators=(",", ":")))


def _nats_target(url: str | None, nkey: Path | None, timeout: float) -> view.NatsTarget:
    if nkey is not None and not nkey.is_file():
        fail(f"no NATS seed at {nkey}")
    return view.NatsTarget.of(url, nkey, timeout)


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except nats.js.errors.NotFoundError:
        fail("no such stream (micro streams lists them)")
    except nats.errors.NoServersError:
        fail("cannot reach NATS (--nats, NATS_URL)")
    except ValueError as error:  # nats-py's check of a stream name
        fail(str(error))
    except (nats.errors.Error, OSError) as error:
        # A permissions violation shows as no answer: the server drops what it refuses.
        fail(f"NATS did not answer ({type(error).__name__}: {error}); is --nkey yours?")
