"""`python -m shared.cli` is `micro`, for when the entry point is not on PATH."""

from shared.cli.entry import main

main()
