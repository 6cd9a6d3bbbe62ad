"""`strideflow demo`: the main job on a bundled default, with no input files and no services.

It simulates a small team (walking and running, both feet, noise, bias, mounting error), runs the
whole pipeline on every recording, writes the `strides` and `sessions` tables, prints the team's
per-foot summary and checks the result against the simulator's exact truth.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from strideflow.analytics.evaluation import match_strides
from strideflow.analytics.flags import FLAG
from strideflow.analytics.pipeline import AnalysisSettings, analyze_recording, summarize_strides
from strideflow.hardware.schema import (
    ATHLETE_ID,
    CADENCE_SPM,
    FOOT,
    IC_T,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    SESSION_ID,
    STRIDE_COUNT,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    VALID,
    session_median,
)
from strideflow.hardware.simulator import write_dataset
from strideflow.ingest import read_recording
from strideflow.service.cli import app

# (metric, header, decimals) of the team table.
TEAM_COLUMNS = (
    (CADENCE_SPM, "cadence spm", 0),
    (PRONATION_EXCURSION_DEG, "pron. exc. deg", 1),
    (MAX_PRONATION_VELOCITY_DPS, "pron. vel. deg/s", 0),
    (TOE_OFF_ANGLE_DEG, "toe-off deg", 1),
    (TOE_OFF_PRONATION_DEG, "toe-off pron. deg", 1),
)
# Metrics whose error against truth the demo reports (mean absolute error over matched strides).
CHECKED_METRICS = (PRONATION_EXCURSION_DEG, TOE_OFF_ANGLE_DEG, TOE_OFF_PRONATION_DEG)


def _team_table(sessions: pl.DataFrame, flags: pl.DataFrame) -> Table:
    table = Table(title="team summary: per-session median of valid strides")
    for header in ("athlete", "session", "foot", "strides"):
        table.add_column(header)
    for _, header, _ in TEAM_COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("flags", overflow="fold")
    flag_names = flags.group_by(ATHLETE_ID, SESSION_ID).agg(pl.col(FLAG).unique().sort().str.join(", "))
    names = {(r[0], r[1]): r[2] for r in flag_names.iter_rows()}
    for r in sessions.sort(*KEYS).iter_rows(named=True):
        cells = [
            f"{r[session_median(m)]:.{d}f}" if r[session_median(m)] is not None else "-"
            for m, _, d in TEAM_COLUMNS
        ]
        table.add_row(
            r[ATHLETE_ID],
            r[SESSION_ID],
            r[FOOT],
            str(r[STRIDE_COUNT]),
            *cells,
            names.get((r[ATHLETE_ID], r[SESSION_ID]), ""),
        )
    return table


def _truth_check(strides: pl.DataFrame, truth: pl.DataFrame) -> Table:
    reference = truth.filter(pl.col(VALID))
    match = match_strides(strides, reference, on=IC_T)
    table = Table(title="check against the simulator's truth")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("valid truth strides found (recall)", f"{100 * match.recall:.1f} %")
    table.add_row("detected valid strides that are real (precision)", f"{100 * match.precision:.1f} %")
    pairs = match.matches
    for metric in CHECKED_METRICS:
        est = strides[metric].gather(pairs["detected_row"])
        ref = reference[metric].gather(pairs["reference_row"])
        table.add_row(f"{metric} mean absolute error", f"{(est - ref).abs().mean():.2f} deg")
    return table


@app.command()
def demo(
    out: Path = typer.Option(
        Path("strideflow-demo"), "--out", help="Folder for the dataset and the results."
    ),
    athletes: int = typer.Option(4, "--athletes", min=1, help="Simulated athletes."),
    minutes: float = typer.Option(
        2.0, "--minutes", min=0.5, help="Minutes per athlete (walking and running)."
    ),
    seed: int = typer.Option(7, "--seed", help="Simulator seed (the same seed gives the same team)."),
) -> None:
    """Simulate a small team, analyse every recording and check the metrics against the truth."""
    console = Console(width=max(Console().width, 130))
    data = out / "dataset"
    console.print(f"simulating {athletes} athletes x {minutes:g} min (walk and run, both feet) into {data}")
    manifest_path = write_dataset(data, athletes=athletes, minutes=minutes, seed=seed, activity="mixed")
    manifest = pl.read_csv(manifest_path)
    settings = AnalysisSettings()
    parts = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("analysing", total=manifest.height)
        for row in manifest.iter_rows(named=True):
            recording = read_recording(
                data / row["path"], athlete_id=row[ATHLETE_ID], session_id=row[SESSION_ID], foot=row[FOOT]
            )
            parts.append(analyze_recording(recording, settings).strides)
            progress.advance(task)
    strides = pl.concat(parts).sort(*KEYS, IC_T)
    sessions, flags = summarize_strides(strides, settings)
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    strides.write_parquet(results / "strides.parquet")
    sessions.write_parquet(results / "sessions.parquet")
    flags.write_parquet(results / "flags.parquet")
    console.print(_team_table(sessions, flags))
    console.print(_truth_check(strides, pl.read_parquet(data / "truth_strides.parquet")))
    console.print(
        f"wrote {strides.height} strides and {sessions.height} session rows to {results}; "
        f"flags are configurable heuristics, not a diagnosis",
        highlight=False,
    )
