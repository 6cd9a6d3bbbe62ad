"""`strideflow bench NAME [--quick] [--json PATH]`: run one benchmark of `benchmarks/`.

The benchmarks are found through the `strideflow.bench` entry-point group (pyproject.toml),
so the service never imports the benchmarks package that sits above it.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import typer

from strideflow.hardware.errors import StrideflowError
from strideflow.service.cli import app


class BenchmarkError(StrideflowError):
    """Unknown benchmark name, or a benchmark module without run(quick)."""


BENCHMARK_GROUP = "strideflow.bench"


def available_benchmarks() -> list[str]:
    """Names of the registered benchmarks (the entry points of group `strideflow.bench`)."""
    return sorted(ep.name for ep in entry_points(group=BENCHMARK_GROUP))


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
    found = {ep.name: ep for ep in entry_points(group=BENCHMARK_GROUP)}
    if name not in found:
        raise BenchmarkError(f"unknown benchmark {name!r}; available: {', '.join(sorted(found)) or 'none'}")
    run_and_report = found[name].load()
    from rich.console import Console

    # The status spinner ends before the table is printed.
    status = Console(stderr=True).status(f"running benchmark {name}{' (quick)' if quick else ''} ...")
    run_and_report(name, quick, json_path, status=status)
