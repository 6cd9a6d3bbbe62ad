"""`strideflow bench NAME [--quick] [--json PATH]`: run one benchmark of `benchmarks/`."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import typer

from strideflow.hardware.errors import StrideflowError
from strideflow.service.cli import app


class BenchmarkError(StrideflowError):
    """Unknown benchmark name, or a benchmark module without run(quick)."""


def available_benchmarks() -> list[str]:
    """Names of the benchmark modules (every public module of strideflow.benchmarks)."""
    import strideflow.benchmarks as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


@app.command()
def bench(
    name: str = typer.Argument(..., help="Benchmark to run, e.g. fusion, accuracy, batch, api, stream."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Smaller run, the same rows: fusion 400 k samples (8 x 100 k batched, 2 repeats); accuracy "
        "8 athletes x 20 s per activity; batch 4 athletes x 15 min (the dataset is generated once and "
        "cached); api 50,000 stored strides; stream 2 and 8 devices x 8 s. Aimed at about a minute "
        "each on 2 idle cores; a loaded machine takes longer (measured times: benchmarks/README.md).",
    ),
    json_path: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
) -> None:
    """Run one benchmark, print its table (samples/s, ratios, accuracy) and optionally write JSON."""
    from strideflow.benchmarks._common import report

    names = available_benchmarks()
    if name not in names:
        raise BenchmarkError(f"unknown benchmark {name!r}; available: {', '.join(names) or 'none'}")
    module = importlib.import_module(f"strideflow.benchmarks.{name}")
    run = getattr(module, "run", None)
    if run is None:
        raise BenchmarkError(f"benchmarks/{name}.py has no run(quick) function")
    from rich.console import Console

    with Console(stderr=True).status(f"running benchmark {name}{' (quick)' if quick else ''} ..."):
        rows = run(quick)
    report(name, rows, json_path)
