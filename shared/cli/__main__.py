"""`python -m shared.cli` is `micro`, for when the entry point is not on PATH."""

from shared.cli.main import app

app(prog_name="micro")
