"""`strideflow report (--athlete ID | --session ID | FILE...) --out report.html`: the athlete report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from strideflow.service.cli import app


@app.command()
def report(
    files: list[Path] | None = typer.Argument(
        None, help="Recording files to analyse now (else the report reads stored results from --data)."
    ),
    out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained, opens offline)."),
    athlete: str | None = typer.Option(
        None, "--athlete", help="Athlete whose report it is (with FILE...: the files' athlete id)."
    ),
    session: str | None = typer.Option(
        None, "--session", help="Session to show (default: the athlete's latest; with FILE...: the id)."
    ),
    data: Path = typer.Option(
        Path("strideflow-data/results"),
        "--data",
        help="Results root as written by `strideflow batch --out` or the service's results dir.",
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="Sampling rate in Hz for FILE... without a time column (gaitmap: 204.8)."
    ),
) -> None:
    """Write one athlete's HTML report: curves, distributions, trends against baseline, flags."""
    from strideflow.service.report import ReportError, load_files, load_results, write_report

    console = Console(stderr=True)
    with console.status("building the report ..."):
        if files:
            report_data = load_files(files, sampling_rate_hz=rate, athlete_id=athlete, session_id=session)
        else:
            if athlete is None and session is None:
                raise ReportError("give FILE... or --athlete ID / --session ID (with --data DIR)")
            report_data = load_results(data, athlete_id=athlete, session_id=session)
        path = write_report(report_data, out)
    for w in report_data.warnings:
        console.print(f"[yellow]note:[/] {w}", highlight=False, soft_wrap=True)
    Console().print(
        f"wrote {path} (athlete {report_data.athlete_id}, session {report_data.session_id}, "
        f"{report_data.strides.height} strides)",
        highlight=False,
    )
