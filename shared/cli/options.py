"""What every `micro` command shares: its options' types and how it fails."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

Timeout = Annotated[float, typer.Option("--timeout", min=0.1, help="seconds for the whole command")]


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 1: what went wrong, never a traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
