"""The `strideflow` command line: one typer app here, one module per command in this package.

Every command prints strideflow's own errors (StrideflowError) as one readable line on stderr
and exits 1, never with a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from strideflow.hardware.errors import StrideflowError

app = typer.Typer(
    name="strideflow",
    help="Per-stride pronation and toe-off metrics from shoe-mounted IMUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


# Command names; each is the module of this package that defines it (and registers itself on `app`
# when imported).
COMMANDS = (
    "analyze",
    "athletes",
    "batch",
    "bench",
    "demo",
    "evaluate",
    "inspect",
    "keys",
    "report",
    "serve",
    "simulate",
    "stream",
)


@app.callback()
def _root() -> None:
    """Per-stride pronation and toe-off metrics from shoe-mounted IMUs."""


def _register(argv: list[str] | None = None) -> None:
    """Import the command modules: only the one named in `argv` when it names one, else all.

    Importing every command pulls in the whole analysis stack (numba, scipy, Dask); a quick
    command such as `keys create` should not pay for that.
    """
    import importlib

    name = next((a for a in (argv or []) if not a.startswith("-")), None)
    modules = [name] if name in COMMANDS else COMMANDS
    for module in modules:
        importlib.import_module(f"strideflow.service.cli.{module}")


def main() -> None:
    """Console-script entry point."""
    _register(sys.argv[1:])
    try:
        app()
    except StrideflowError as exc:
        # escaped: a message may quote brackets (a header like `gyr_x [rad/s]`), which are not markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
