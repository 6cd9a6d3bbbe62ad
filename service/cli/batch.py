"""`strideflow batch DATASET_DIR --out DIR`: the whole team's recordings on Dask, then trends."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from strideflow.analytics.batch import BatchProgress, BatchSettings, RunSummary, TeamBatch
from strideflow.analytics.trends import TrendSettings, compute_trends
from strideflow.hardware.errors import StrideflowError
from strideflow.ingest.durable import write_atomic
from strideflow.service.cli import app

TRENDS_FILE = "trends.parquet"


def _write_trends(out: Path, baseline_sessions: int) -> int:
    trends = compute_trends(out, settings=TrendSettings(baseline_sessions=baseline_sessions))
    write_atomic(out / TRENDS_FILE, trends.write_parquet)
    return trends.height


def print_run_summary(console: Console, summary: RunSummary) -> None:
    """Counts, speed, memory and every failure with its error."""
    table = Table(title="batch run", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    s = summary
    table.add_row("recordings", f"{s.recordings_total}")
    table.add_row("  analysed", f"{s.recordings_done}")
    table.add_row("  skipped (already done)", f"{s.recordings_skipped}")
    table.add_row("  failed", f"{s.recordings_failed}")
    table.add_row(
        "sessions (done / skipped / failed)",
        f"{s.sessions_done} / {s.sessions_skipped} / {s.sessions_failed}",
    )
    table.add_row("samples analysed", f"{s.samples:,}")
    table.add_row("wall time (of it Dask start)", f"{s.wall_s:.1f} s ({s.startup_s:.1f} s)")
    table.add_row("speed", f"{s.samples_per_s:,.0f} samples/s")
    table.add_row("realtime factor", f"{s.realtime_factor:,.0f} x")
    table.add_row("peak memory (client + workers)", f"{s.peak_rss_mb:,.0f} MB")
    table.add_row("peak memory of one worker", f"{s.worker_peak_rss_mb:,.0f} MB")
    table.add_row("workers", f"{s.workers} ({s.scheduler})")
    console.print(table)
    for f in s.failures:
        where = f"athlete {f['athlete_id']}, session {f['session_id']}, {', '.join(f['paths'])}"
        console.print(
            escape(f"failed: {where}: {f['error_type']}: {f['error']}"),
            style="red",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def batch(
    dataset_dir: Path = typer.Argument(
        ...,
        help="Dataset folder: a manifest.csv, or files ATHLETE/SESSION/FOOT.<ext> (FOOT: left, right, both).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder (partitioned Parquet, run_summary.json, trends)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Worker processes of the local Dask cluster (default: one per core)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a running dask.distributed scheduler, e.g. tcp://10.0.0.5:8786."
    ),
    threads_per_worker: int = typer.Option(
        1, "--threads-per-worker", min=1, help="Threads per local worker."
    ),
    baseline_sessions: int = typer.Option(
        3, "--baseline-sessions", min=1, help="First sessions per athlete that form the trend baseline."
    ),
    rate: float | None = typer.Option(
        None,
        "--rate",
        help="Sampling rate in Hz for files without a time column that the manifest gives none.",
    ),
    curves: bool = typer.Option(True, "--curves/--no-curves", help="Also write stride-normalised curves."),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Replace the results a strideflow server serves from OUT for the same athlete and session "
        "ids with those of other files (refused without it).",
    ),
) -> None:
    """Analyse every recording of a dataset with Dask, resumably, then compute trends.

    Writes OUT/<table>/athlete_id=A/session_id=S/part-0.parquet (strides, sessions, flags, curves),
    OUT/run_summary.json and OUT/trends.parquet.

    Sessions already done with the same files and settings are skipped; changed ones are redone.

    A recording that fails is reported and the others go on. Exit code: 1 if any recording failed, else 0.
    """
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("give --workers or --scheduler, not both", param_hint="--workers")
    console = Console()
    served = out.resolve().parent / "strideflow.db"
    if served.exists() and not replace:
        from strideflow.analytics.batch import replaced_sessions

        clash = replaced_sessions(dataset_dir, out)
        if clash:
            shown = ", ".join(f"{a}/{s}" for a, s in clash[:5]) + (" ..." if len(clash) > 5 else "")
            raise StrideflowError(
                f"{out} is served by strideflow (database {served}) and holds results of other files for "
                f"{len(clash)} of these sessions ({shown}) under the same athlete and session ids: "
                "write to another --out folder, or pass --replace to replace them"
            )
    settings = BatchSettings(
        workers=workers,
        scheduler=scheduler,
        threads_per_worker=threads_per_worker,
        write_curves=curves,
        sampling_rate_hz=rate,
    )
    with Progress(
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("recordings"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("batch", total=None, speed="starting Dask ...")

        def on_progress(p: BatchProgress) -> None:
            progress.update(
                task,
                total=p.recordings_total,
                completed=p.recordings_done,
                speed=f"{p.samples_per_s:,.0f} samples/s",
            )

        summary = TeamBatch(settings).run(dataset_dir, out, progress=on_progress).summary_
    print_run_summary(console, summary)
    n_trends = _write_trends(out, baseline_sessions)
    console.print(
        f"wrote partitions under {out}, {out / 'run_summary.json'} and {n_trends} trend rows to "
        f"{out / TRENDS_FILE}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.recordings_failed:
        raise typer.Exit(1)
