"""`strideflow analyze FILE... --out DIR`: strides and sessions of recorded files, and a summary."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from strideflow.analytics.flags import FLAG, METRIC, NOTE, THRESHOLD, VALUE
from strideflow.analytics.pipeline import AnalysisSettings, summarize_strides
from strideflow.analytics.session_analysis import RecordingFile, analyze_session
from strideflow.analytics.sessions import symmetry_text
from strideflow.analytics.settings import RUNNING_MOUNTING
from strideflow.hardware.mounting import MountingSettings
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    CADENCE_SPM,
    FOOT,
    IC_T,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    MOUNTING_UNCERTAINTY_DEG,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    SESSION_ID,
    STANCE_TIME_S,
    STRIDE_COUNT,
    STRIDE_LENGTH_M,
    STRIKE_TYPE,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    session_iqr,
    session_median,
    steady_of,
)
from strideflow.ingest.durable import write_atomic
from strideflow.service.cli import app
from strideflow.service.schemas import FileFormat, Foot

STRIDES_FILE = "strides.parquet"
SESSIONS_FILE = "sessions.parquet"
FLAGS_FILE = "flags.parquet"

# (metric, label, unit, scale to the shown unit, decimals) of the summary table.
SUMMARY_ROWS = (
    (CADENCE_SPM, "cadence", "steps/min", 1.0, 1),
    (STANCE_TIME_S, "stance time", "ms", 1000.0, 0),
    (STRIDE_LENGTH_M, "stride length", "m", 1.0, 2),
    (PRONATION_EXCURSION_DEG, "pronation excursion", "deg", 1.0, 1),
    (MAX_PRONATION_VELOCITY_DPS, "max pronation velocity", "deg/s", 1.0, 0),
    (TOE_OFF_ANGLE_DEG, "toe-off angle", "deg", 1.0, 1),
    (TOE_OFF_PRONATION_DEG, "toe-off pronation", "deg", 1.0, 1),
    (PUSH_OFF_RATE_DPS, "push-off rate", "deg/s", 1.0, 0),
)


class ShoeAxis(StrEnum):
    auto = "auto"
    calibration = "calibration"
    square = "square"
    walking = "walking"
    swing_axis = "swing_axis"


def _cell(row: dict | None, metric: str, scale: float, decimals: int) -> str:
    if row is None or row.get(session_median(metric)) is None:
        return "-"
    median = row[session_median(metric)] * scale
    iqr = row[session_iqr(metric)] * scale
    return f"{median:.{decimals}f} ± {iqr / 2:.{decimals}f}"


def _strike_share(strides: pl.DataFrame) -> dict[tuple, str]:
    shares = (
        strides.filter(steady_of(strides.columns))
        .group_by(*KEYS, STRIKE_TYPE)
        .len()
        .with_columns((100.0 * pl.col("len") / pl.col("len").sum().over(list(KEYS))).alias("pct"))
        .sort(*KEYS, "pct", descending=[False, False, False, True])
        .group_by(*KEYS, maintain_order=True)
        .agg(pl.format("{} {}%", pl.col(STRIKE_TYPE), pl.col("pct").round(0).cast(pl.Int64)).str.join(", "))
    )
    return {tuple(r[:3]): r[3] for r in shares.iter_rows()}


def print_summary(
    console: Console, strides: pl.DataFrame, sessions: pl.DataFrame, flags: pl.DataFrame
) -> None:
    """One rich table per athlete-session-activity: left, right and their symmetry; then its flags."""
    strikes = _strike_share(strides)
    if ACTIVITY not in sessions.columns:
        sessions = sessions.with_columns(pl.lit(None, dtype=pl.String).alias(ACTIVITY))
    if ACTIVITY not in flags.columns:
        flags = flags.with_columns(pl.lit(None, dtype=pl.String).alias(ACTIVITY))
    groups = sessions.group_by(ATHLETE_ID, SESSION_ID, ACTIVITY, maintain_order=True)
    for (athlete, session, activity), part in groups:
        rows = {r[FOOT]: r for r in part.iter_rows(named=True)}
        gait = {"walk": "walking", "run": "running"}.get(activity, activity)
        title = f"athlete {athlete} · session {session}" + (f" · {gait}" if gait else "")
        table = Table(title=f"{title}  (median ± half IQR of steady strides)")
        table.add_column("metric")
        table.add_column("unit")
        table.add_column("left", justify="right")
        table.add_column("right", justify="right")
        table.add_column("L/R sym.", justify="right")
        counts = [
            "-" if f not in rows else f"{rows[f][STRIDE_COUNT]} of {rows[f]['stride_count_all']}"
            for f in ("left", "right")
        ]
        table.add_row("steady strides", "", *counts, "")
        if (
            activity is None
            or sessions.filter((pl.col(ATHLETE_ID) == athlete) & (pl.col(SESSION_ID) == session))
            .get_column(ACTIVITY)
            .n_unique()
            == 1
        ):  # the strike shares are over all steady strides
            table.add_row(
                "strike type", "", *[strikes.get((athlete, session, f), "-") for f in ("left", "right")], ""
            )
        any_row = next(iter(rows.values()))
        for metric, label, unit, scale, decimals in SUMMARY_ROWS:
            table.add_row(
                label,
                unit,
                _cell(rows.get("left"), metric, scale, decimals),
                _cell(rows.get("right"), metric, scale, decimals),
                symmetry_text(any_row, metric),
            )
        # the mounting's heading uncertainty (1 sigma); "given": the file's frame was trusted
        shoe_axis = []
        for f in ("left", "right"):
            u = rows.get(f, {}).get(MOUNTING_UNCERTAINTY_DEG)
            shoe_axis.append("-" if f not in rows else "given" if u is None else f"± {u:.1f}")
        table.add_row("shoe axis", "deg", *shoe_axis, "")
        console.print(table)
        mine = flags.filter(
            (pl.col(ATHLETE_ID) == athlete)
            & (pl.col(SESSION_ID) == session)
            & pl.col(ACTIVITY).eq_missing(activity)
        )
        if mine.height == 0:
            console.print("flags: none (heuristic thresholds, see analytics/flags.py)")
        else:
            console.print("flags (configurable heuristics, not a diagnosis):")
            for r in mine.iter_rows(named=True):
                who = r[FOOT] or "left/right"
                value = f"{r[METRIC]} = {r[VALUE]:.1f} (threshold {r[THRESHOLD]:g})"
                line = f"  • {r[FLAG]} [{who}]: {value}: {r[NOTE]}"
                console.print(escape(line), highlight=False)


@app.command()
def analyze(
    files: list[Path] = typer.Argument(
        ...,
        help="Recording files: strideflow/gaitmap CSV (.csv or .csv.gz), samples Parquet, or a device "
        "export (LORD SensorConnect, GaitUp Physilog, Xsens DOT, APDM Opal .h5, MbientLab MetaWear, "
        "Shimmer Consensys).",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder for strides.parquet and sessions.parquet."),
    format: FileFormat = typer.Option(
        FileFormat.auto, "--format", help="File format; auto detects it from the file's header."
    ),
    rate: float | None = typer.Option(
        None, "--rate", help="Sampling rate in Hz, for files without a time column (gaitmap: 204.8)."
    ),
    foot: Foot | None = typer.Option(
        None, "--foot", help="Foot of a one-foot file, or the one foot to keep."
    ),
    athlete: str | None = typer.Option(None, "--athlete", help="Athlete id (default: from the file name)."),
    session: str | None = typer.Option(None, "--session", help="Session id (default: from the file name)."),
    columns: str | None = typer.Option(
        None,
        "--columns",
        help="Column mapping for a CSV no reader understands: acc_x=COL,acc_y=COL,...,gyr_z=COL[,t=COL] "
        "(quote names holding commas).",
    ),
    units: str | None = typer.Option(
        None,
        "--units",
        help="Units of the file's channels: acc=g|m/s^2, gyr=deg/s|rad/s, e.g. acc=g,gyr=rad/s.",
    ),
    align: bool = typer.Option(
        True,
        "--align/--no-align",
        help="Estimate each sensor's mounting from the data, or trust the file's frame.",
    ),
    shoe_axis: ShoeAxis = typer.Option(
        ShoeAxis.auto,
        "--shoe-axis",
        help=(
            "Where the foot frame's x (the shoe's long axis) comes from when aligning: auto (a toe-tap "
            "calibration at the start, else the pod's own axis nearest the walking direction if it "
            "sits square on the shoe, else the walking direction), calibration, square, walking, "
            "swing_axis. See docs/frames.md."
        ),
    ),
) -> None:
    """Detect strides and compute pronation and toe-off metrics per stride and per session."""
    console = Console()
    heading = shoe_axis.value
    settings = AnalysisSettings(
        align_mounting=align,
        mounting=MountingSettings(heading=heading),
        mounting_fallback=replace(RUNNING_MOUNTING, heading=heading),
    )
    recordings = [
        RecordingFile(
            str(path),
            format=format.value,
            sampling_rate_hz=rate,
            foot=None if foot is None else foot.value,
            columns=columns,
            units=units,
        )
        for path in files
    ]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"analysing {files[0].name}", total=len(files))

        def analysed(done: RecordingFile) -> None:
            progress.advance(task)
            following = int(progress.tasks[0].completed)
            if following < len(files):
                progress.update(task, description=f"analysing {files[following].name}")

        outcome = analyze_session(
            recordings, settings, athlete_id=athlete, session_id=session, progress=analysed
        )
    for w in outcome.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    strides = pl.concat(outcome.strides_parts).sort(*KEYS, IC_T)
    sessions, flags = summarize_strides(strides, settings)
    for name, table in ((STRIDES_FILE, strides), (SESSIONS_FILE, sessions), (FLAGS_FILE, flags)):
        write_atomic(out / name, table.write_parquet)
    print_summary(console, strides, sessions, flags)
    console.print(
        f"wrote {strides.height} strides to {out / STRIDES_FILE}, {sessions.height} session rows to "
        f"{out / SESSIONS_FILE}, {flags.height} flags to {out / FLAGS_FILE}",
        highlight=False,
    )
