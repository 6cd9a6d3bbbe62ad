"""`strideflow demo`: the main job on a bundled default, ending with the HTTP service running.

It simulates a small team (walking and running, both feet, noise, bias, mounting error, a few
sessions weeks apart whose parameters drift), runs every recording through the pipeline with
the team batch runner into the service's results store (`DATA/results`, the
analytics.partitions layout), registers the sessions in the service's database, prints the
team's per-foot summary and the check against the simulator's exact truth, creates a demo admin
key and an athlete key, prints example `curl` calls that return this data, and serves the API
until Ctrl-C (`--no-serve` stops after printing).

Running it again on the same folder re-uses the analysed sessions (the batch skips them) and
prints fresh keys.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from strideflow.analytics import partitions
from strideflow.analytics.evaluation import match_strides
from strideflow.analytics.flags import FLAG
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ATHLETE_ID,
    CADENCE_SPM,
    CONTEXT,
    CONTEXT_GAIT_START,
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
from strideflow.service.cli import app

DEMO_TEAM = "demo-team"
DATASET_DIR = "dataset"
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


class DemoError(StrideflowError):
    """The demo cannot run as asked (port taken, a recording that failed to analyse)."""


def _team_table(sessions: pl.DataFrame, flags: pl.DataFrame) -> Table:
    table = Table(title="team summary: per-session median of valid strides")
    for header in ("athlete", "session", "foot", "activity", "strides"):
        table.add_column(header)
    for _, header, _ in TEAM_COLUMNS:
        table.add_column(header, justify="right")
    table.add_column("flags", overflow="fold")
    names = {}
    if flags.height:
        flag_names = flags.group_by(ATHLETE_ID, SESSION_ID).agg(pl.col(FLAG).unique().sort().str.join(", "))
        names = {(r[0], r[1]): r[2] for r in flag_names.iter_rows()}
    order = [*KEYS, "activity"] if "activity" in sessions.columns else list(KEYS)
    for r in sessions.sort(order, nulls_last=True).iter_rows(named=True):
        cells = [
            f"{r[session_median(m)]:.{d}f}" if r.get(session_median(m)) is not None else "-"
            for m, _, d in TEAM_COLUMNS
        ]
        table.add_row(
            r[ATHLETE_ID],
            r[SESSION_ID],
            r[FOOT],
            r.get("activity") or "-",
            str(r[STRIDE_COUNT]),
            *cells,
            names.get((r[ATHLETE_ID], r[SESSION_ID]), ""),
        )
    return table


def _truth_check(strides: pl.DataFrame, truth: pl.DataFrame) -> Table:
    reference = truth.filter(pl.col(VALID))
    # The simulator's truth has no stride from standing: the detected gait-start row (valid since
    # issue 17) would count as a false detection. bench accuracy leaves it out the same way.
    strides = strides.filter(pl.col(CONTEXT).ne_missing(CONTEXT_GAIT_START))
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


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DemoError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another with --port, "
                "or use --no-serve"
            ) from None


def _read_table(results: Path, table: str) -> pl.DataFrame:
    df = partitions.collect_table(results, table)
    return pl.DataFrame() if df is None else df


def example_calls(
    base_url: str, admin_key: str, athlete_key: str, athlete_id: str, session_id: str
) -> list[str]:
    """`curl` command lines (one per line, no wrapping) that return the demo's data."""
    admin = f'-H "Authorization: Bearer {admin_key}"'
    athlete = f'-H "Authorization: Bearer {athlete_key}"'
    return [
        f"curl -s {admin} '{base_url}/v1/athletes'",
        f"curl -s {admin} '{base_url}/v1/athletes/{athlete_id}/sessions'",
        f"curl -s {admin} '{base_url}/v1/sessions/{session_id}/strides"
        f"?athlete_id={athlete_id}&foot=left&valid=true&limit=3'",
        f"curl -s {athlete} '{base_url}/v1/athletes/{athlete_id}/trends?metric={PRONATION_EXCURSION_DEG}'",
    ]


@dataclass(frozen=True)
class DemoData:
    """What `prepare_demo` stored: the folder, a sample athlete/session and the two new keys."""

    data_dir: Path
    athlete_id: str
    session_id: str
    admin_key: str
    athlete_key: str
    stride_count: int


def prepare_demo(
    data: Path,
    athletes: int = 4,
    minutes: float = 2.0,
    seed: int = 7,
    workers: int | None = None,
    console: Console | None = None,
    sessions: int = 3,
) -> DemoData:
    """Simulate, analyse (team batch) into `data/results`, print the summary and truth check,
    register the sessions for DEMO_TEAM and create an admin and an athlete key."""
    from strideflow.analytics.batch import BatchProgress, BatchSettings, TeamBatch
    from strideflow.service.auth import create_key
    from strideflow.service.catalog import sync_results
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    console = console or Console(width=max(Console().width, 130))
    settings = ServiceSettings(data_dir=data)
    dataset = data / DATASET_DIR
    console.print(
        f"simulating {athletes} athletes x {sessions} sessions x {minutes:g} min (walk and run, both feet) "
        f"into {dataset}",
        highlight=False,
    )
    write_dataset(dataset, athletes=athletes, minutes=minutes, seed=seed, activity="mixed", sessions=sessions)
    results = settings.results_dir
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("analysing (starting workers)", total=None)

        def on_progress(p: BatchProgress) -> None:
            progress.update(
                task, description="analysing", total=p.recordings_total, completed=p.recordings_done
            )

        batch = TeamBatch(BatchSettings(workers=workers))
        summary = batch.run(dataset, results, progress=on_progress).summary_
    for f in summary.failures:
        raise DemoError(f"analysis of {', '.join(f['paths'])} failed: {f['error_type']}: {f['error']}")

    strides = _read_table(results, partitions.STRIDES).sort(*KEYS, IC_T)
    sessions = _read_table(results, partitions.SESSIONS)
    flags = _read_table(results, partitions.FLAGS)
    console.print(_team_table(sessions, flags))
    console.print(_truth_check(strides, pl.read_parquet(dataset / "truth_strides.parquet")))
    console.print(
        f"stored {strides.height} strides of {sessions.height} session-feet under {results}; "
        "flags are configurable heuristics, not a diagnosis",
        highlight=False,
        soft_wrap=True,
    )

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.create_all()
        sync_results(db, results, DEMO_TEAM)
        first = strides.row(0, named=True)
        athlete_id, session_id = first[ATHLETE_ID], first[SESSION_ID]
        admin_key = create_key(db, DEMO_TEAM, "admin")
        athlete_key = create_key(db, DEMO_TEAM, "athlete", athlete_id)
    finally:
        db.dispose()
    return DemoData(data, athlete_id, session_id, admin_key, athlete_key, strides.height)


@app.command()
def demo(
    data: Path = typer.Option(
        Path("strideflow-data"),
        "--data",
        "--out",
        help="Data folder: the simulated dataset, the results store, the database (as for `serve --data`).",
    ),
    athletes: int = typer.Option(4, "--athletes", min=1, help="Simulated athletes."),
    minutes: float = typer.Option(
        2.0, "--minutes", min=0.5, help="Minutes per athlete (walking and running)."
    ),
    seed: int = typer.Option(7, "--seed", help="Simulator seed (the same seed gives the same team)."),
    sessions: int = typer.Option(
        3, "--sessions", min=1, help="Sessions per athlete, weeks apart (their metrics drift: trends)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Analysis worker processes (default: one per core)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface the service listens on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port of the service."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the API at the end (until Ctrl-C)."),
) -> None:
    """Simulate a small team, analyse it, check it against the truth, then serve it over HTTP."""
    from strideflow.service.settings import ServiceSettings

    console = Console(width=max(Console().width, 130))
    if serve:
        _check_port_free(host, port)
    info = prepare_demo(data, athletes, minutes, seed, workers, console, sessions)
    settings = ServiceSettings(data_dir=data)

    url_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base_url = f"http://{url_host}:{port}"
    say = {"highlight": False, "soft_wrap": True, "markup": False}
    stored_in = settings.resolved_database_url
    console.print(f"\ndemo keys (shown once; only their hashes are stored in {stored_in}):", **say)
    console.print(f"admin key   (team {DEMO_TEAM}): {info.admin_key}", **say)
    console.print(f"athlete key (athlete {info.athlete_id} only): {info.athlete_key}", **say)
    hint = "" if serve else f" (start the service first: strideflow serve --data {data} --port {port})"
    console.print(f"\nexample calls{hint}:", **say)
    for line in example_calls(base_url, info.admin_key, info.athlete_key, info.athlete_id, info.session_id):
        console.print(line, **say)
    if not serve:
        return
    console.print(
        f"\nserving {base_url} (API docs at {base_url}/docs, dashboard at {base_url}/); Ctrl-C stops", **say
    )
    import uvicorn

    from strideflow.service.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
