"""Register result partitions written outside the service (e.g. `strideflow batch`) in the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from pathlib import Path

import polars as pl

from strideflow.analytics import partitions
from strideflow.hardware.schema import ATHLETE_ID, SESSION_DATE, SESSION_ID
from strideflow.service import summary_index
from strideflow.service.db import Database, SessionRow


def _stored_keys(results_dir: Path) -> list[tuple[str, str]]:
    keys = set()
    for table in (partitions.SESSIONS, partitions.STRIDES):
        base = results_dir / table
        for part in base.glob(f"{ATHLETE_ID}=*/{SESSION_ID}=*/{partitions.PART_GLOB}"):
            athlete = part.parent.parent.name.split("=", 1)[1]
            session = part.parent.name.split("=", 1)[1]
            keys.add((athlete, session))
    return sorted(keys)


def _session_date(results_dir: Path, athlete_id: str, session_id: str) -> dt.date | None:
    df = partitions.read_partition(results_dir, partitions.SESSIONS, athlete_id, session_id)
    if df is None or SESSION_DATE not in df.columns:
        return None
    values = df.get_column(SESSION_DATE).drop_nulls()
    if values.len() == 0:
        return None
    value = values[0]
    if isinstance(value, dt.date):
        return value
    parsed = pl.Series([str(value)]).str.to_date(strict=False)[0]
    return parsed


def sync_results(
    db: Database, results_dir: str | Path, team_id: str, athletes: Collection[str] | None = None
) -> int:
    """Register athlete-sessions stored in `results_dir` for `team_id`; returns how many were new.

    `athletes` limits it to those athlete ids (a results tree holding several teams is registered
    one team at a time); None takes every stored athlete.

    Athletes that are new join `team_id`; an athlete owned by another team raises DatabaseError
    (its results cannot be re-assigned silently). Session dates come from the sessions table's
    `session_date` column when present. The API's index of their summaries and trends
    (`service.summary_index`) is brought up to date for the registered athletes.
    """
    results_dir = Path(results_dir)
    partitions.check_id("team_id", team_id)
    new = 0
    registered: set[str] = set()
    for athlete_id, session_id in _stored_keys(results_dir):
        if athletes is not None and athlete_id not in athletes:
            continue
        partitions.check_id(ATHLETE_ID, athlete_id)
        partitions.check_id(SESSION_ID, session_id)
        db.ensure_athlete(team_id, athlete_id)
        with db.session() as s:
            existed = s.get(SessionRow, (athlete_id, session_id)) is not None
        db.ensure_session(athlete_id, session_id, _session_date(results_dir, athlete_id, session_id))
        new += not existed
        registered.add(athlete_id)
    summary_index.refresh(db, results_dir, sorted(registered))
    return new
