"""The `strideflow` command line: one typer app, one module per command.

Every command prints strideflow's own errors (StrideflowError) as one readable line on stderr
and exits 1, never with a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from strideflow.hardware.errors import StrideflowError

app = typer.Typer(
    name="strideflow",
    help="Per-stride pronation and toe-off metrics from shoe-mounted IMUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    # Each command lives in its own module and registers itself on `app` when imported.
    from strideflow.service import (  # noqa: F401
        cmd_analyze,
        cmd_athletes,
        cmd_batch,
        cmd_bench,
        cmd_demo,
        cmd_evaluate,
        cmd_inspect,
        cmd_keys,
        cmd_report,
        cmd_serve,
        cmd_simulate,
        cmd_stream,
    )


def main() -> None:
    """Console-script entry point."""
    _register()
    try:
        app()
    except StrideflowError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
