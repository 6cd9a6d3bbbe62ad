"""`strideflow inspect FILE...`: read recordings through ingest and summarise what was found."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from strideflow.hardware.schema import FOOT, INTERPOLATED, SATURATED, SEGMENT, T
from strideflow.ingest import FORMATS, read_recording
from strideflow.service.cli import app


@app.command()
def inspect(
    files: list[Path] = typer.Argument(..., help="Recordings to read (CSV, gaitmap CSV or Parquet)."),
    format: str = typer.Option("auto", "--format", help=f"File format: {', '.join(FORMATS)}."),
    rate: float | None = typer.Option(
        None, "--rate", help="Sampling rate in Hz, for files without a time column."
    ),
    foot: str | None = typer.Option(
        None, "--foot", help="left or right, for one-foot files without it in the name."
    ),
    max_warnings: int = typer.Option(10, "--max-warnings", help="Warnings shown per file."),
) -> None:
    """Read each file as ingest does and print rows, feet, rate, duration and warnings."""
    console = Console()
    for path in files:
        rec = read_recording(path, format=format, sampling_rate_hz=rate, foot=foot)
        per_foot = (
            rec.samples.group_by(FOOT, maintain_order=True)
            .agg(
                pl.len().alias("rows"),
                (pl.col(T).max() - pl.col(T).min()).alias("span_s"),
                (pl.col(SEGMENT).max() + 1).alias("segments"),
                pl.col(INTERPOLATED).sum().alias("interpolated"),
                pl.col(SATURATED).sum().alias("saturated"),
            )
            .sort(FOOT)
        )
        table = Table(title=f"{path}  ({rec.sampling_rate_hz:g} Hz, {rec.athlete_id} / {rec.session_id})")
        for name in ("foot", "rows", "duration s", "segments", "interpolated", "saturated"):
            table.add_column(name, justify="left" if name == "foot" else "right")
        for row in per_foot.iter_rows(named=True):
            table.add_row(
                row[FOOT],
                str(row["rows"]),
                f"{row['span_s'] + 1.0 / rec.sampling_rate_hz:.2f}",
                str(row["segments"]),
                str(row["interpolated"]),
                str(row["saturated"]),
            )
        console.print(table)
        shown = rec.warnings[:max_warnings]
        console.print(f"{len(rec.warnings)} warning(s)", style="yellow" if rec.warnings else "green")
        for w in shown:
            console.print(f"  [{w.kind}] {w}", highlight=False, soft_wrap=True, markup=False)
        if len(rec.warnings) > len(shown):
            console.print(f"  ... {len(rec.warnings) - len(shown)} more", highlight=False)
