"""`strideflow simulate`: write a simulated recorded dataset with its ground truth."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.simulator import write_dataset
from strideflow.hardware.simulator.schedule import MIN_SESSION_S
from strideflow.service.cli import app


class SimulateError(StrideflowError):
    """Bad arguments to `strideflow simulate`."""


@app.command()
def simulate(
    athletes: int = typer.Option(..., "--athletes", help="Number of athletes.", min=1),
    minutes: float = typer.Option(..., "--minutes", help="Minutes per session."),
    out: Path = typer.Option(..., "--out", help="Output directory (created)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, identical files."),
    activity: str = typer.Option("walk", "--activity", help="walk, run or mixed."),
    rate: float = typer.Option(200.0, "--rate", help="Sampling rate, Hz."),
    sessions: int = typer.Option(1, "--sessions", help="Sessions per athlete, spread over weeks.", min=1),
    toe_out: float | None = typer.Option(
        None,
        "--toe-out",
        help="Toe-out (foot progression angle) of every foot, deg, + outward; default: each "
        "athlete's own, drawn 0-20 deg. 0 puts the shoes along the walking direction.",
    ),
    calibration: bool = typer.Option(
        False,
        "--calibration",
        help="Start every session with a toe-tap field calibration (standing, heel-down toe taps of "
        "the left then the right foot, standing; 10-16 s), as `analyze` recognises it. Its taps turn "
        "the shoe about an axis drawn per athlete ~1 deg off the shoe's own (manifest `tap_axis_deg`; "
        "`calibration_s`: where the session proper starts).",
    ),
) -> None:
    """Simulate shoe IMUs on both feet and write a recorded dataset with its truth.

    Writes one Parquet per athlete-session-foot (samples table, device frame), manifest.csv and
    truth_strides.parquet (plus truth_params.parquet: the mean gait of each session).
    """
    if activity not in ("walk", "run", "mixed"):
        raise SimulateError(f"--activity must be walk, run or mixed, got {activity!r}")
    if minutes <= 0 or rate <= 0:
        raise SimulateError(f"--minutes and --rate must be positive, got {minutes} and {rate}")
    if minutes * 60.0 < MIN_SESSION_S:
        raise SimulateError(
            f"--minutes {minutes:g} ({minutes * 60.0:g} s) is too short: a session needs at least "
            f"{MIN_SESSION_S:g} s (standing, one bout of gait, standing)"
        )
    if toe_out is not None and not -30.0 <= toe_out <= 45.0:
        raise SimulateError(f"--toe-out must be within -30 and 45 deg, got {toe_out}")
    if out.exists() and not out.is_dir():
        raise SimulateError(f"--out {out} exists and is not a directory")
    console = Console(stderr=True)
    with Progress(
        TextColumn("simulate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("", total=athletes * sessions)
        manifest = write_dataset(
            out,
            athletes=athletes,
            minutes=minutes,
            seed=seed,
            activity=activity,
            sampling_rate_hz=rate,
            sessions=sessions,
            toe_out_deg=toe_out,
            calibration=calibration,
            progress=lambda name: bar.update(task, advance=1, description=name),
        )
    typer.echo(f"wrote {athletes * sessions * 2} files, {manifest}")
