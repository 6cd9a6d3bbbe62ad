"""Lookups shared by the routes: a session the key may see, a session's stored per-foot results as
the API shows them (kept by `service.summary_index`), and the app's live hub. Routes import these
from here, never from each other."""

from __future__ import annotations

import functools
import logging
import math
import os
import uuid
from pathlib import Path as FsPath
from typing import Annotated

import polars as pl
from fastapi import HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import bindparam, select

from strideflow.analytics import partitions
from strideflow.analytics.sessions import STRIDE_COUNT_ALL, STRIDE_COUNT_VALID
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware.ids import is_valid_id
from strideflow.hardware.schema import (
    ACTIVITY,
    FEET,
    FOOT,
    METRICS,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    REMOUNT,
    SESSION_ID,
    STRIDE_COUNT,
    lr_difference,
    session_iqr,
    session_median,
    symmetry_index,
)
from strideflow.service import summary_index
from strideflow.service.auth import Principal, Role, not_found
from strideflow.service.db import Athlete, Database, SessionRow
from strideflow.service.errors import read_problem
from strideflow.service.live import WAL_DIRNAME, LiveHub, broker_for
from strideflow.service.schemas import Foot, SessionFoot, SessionOut
from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service")

SessionPath = Annotated[str, Path(max_length=128)]
AthleteQuery = Annotated[
    str | None,
    Query(
        max_length=128,
        description="Athlete of the session; needed only when several visible athletes share the id.",
    ),
]


@functools.cache
def _session_statement(own_only: bool, by_athlete: bool):
    """The session lookup for one combination of filters, built once (values bound per call)."""
    stmt = (
        select(SessionRow.athlete_id, SessionRow.session_id, SessionRow.session_date, SessionRow.created)
        .join(Athlete, Athlete.id == SessionRow.athlete_id)
        .where(SessionRow.session_id == bindparam("session_id"), Athlete.team_id == bindparam("team_id"))
        .limit(2)
    )
    if own_only:
        stmt = stmt.where(SessionRow.athlete_id == bindparam("own_id"))
    if by_athlete:
        stmt = stmt.where(SessionRow.athlete_id == bindparam("athlete_id"))
    return stmt


def resolve_session(db: Database, principal: Principal, session_id: str, athlete_id: str | None):
    """The one session with this id the principal may see (a row with `athlete_id`, `session_id`,
    `session_date`, `created`): 404 if none, 422 if several (pass athlete_id)."""
    own_only = principal.role is Role.athlete
    params = {"session_id": session_id, "team_id": principal.team_id}
    if own_only:
        params["own_id"] = principal.athlete_id
    if athlete_id is not None:
        params["athlete_id"] = athlete_id
    # Every session route asks this first: the row found is kept until the database changes.
    found_key = ("session", principal.team_id, params.get("own_id"), session_id, athlete_id)
    stamp = db.change_stamp()
    row = db.read_cache.get(found_key, stamp)
    if row is not None:
        return row
    with db.reader.connect() as conn:  # Core and a prebuilt statement
        rows = conn.execute(_session_statement(own_only, athlete_id is not None), params).all()
    if not rows:
        raise not_found("session", session_id)
    if len(rows) > 1:
        raise HTTPException(
            422,
            detail=f"query parameter 'athlete_id': session {session_id!r} is shared by several athletes",
        )
    db.read_cache.put(found_key, stamp, rows[0])
    return rows[0]


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):  # NaN and inf are not JSON: null
        return None
    return value


def session_fields(results: pl.DataFrame | None, session_id: str) -> dict:
    """SessionOut's result fields of one session (`analysed`, `feet`, `symmetry_index_pct`,
    `lr_difference_deg`, JSON-ready) from rows of the sessions table (None: not analysed)."""
    feet: list[dict] = []
    si: dict[str, float | None] = {}
    diff: dict[str, float | None] = {}
    analysed = False
    if results is not None and results.height:
        mine = results.filter(pl.col(SESSION_ID) == session_id)
        analysed = mine.height > 0
        if ACTIVITY in mine.columns:
            # The session's main activity (most steady strides) first: its feet and symmetry lead.
            main = mine.with_columns(
                pl.col(STRIDE_COUNT).fill_null(0).sum().over(ACTIVITY).alias("_n_activity")
            ).sort("_n_activity", ACTIVITY, FOOT, descending=[True, False, False], nulls_last=True)
        else:
            main = mine.sort(FOOT)
        for r in main.iter_rows(named=True):
            if r.get(FOOT) not in FEET:
                continue
            feet.append(
                SessionFoot(
                    foot=Foot(r[FOOT]),
                    activity=r.get(ACTIVITY),
                    stride_count=r.get(STRIDE_COUNT),
                    stride_count_all=r.get(STRIDE_COUNT_ALL),
                    stride_count_valid=r.get(STRIDE_COUNT_VALID),
                    median={m: _clean(r.get(session_median(m))) for m in METRICS if session_median(m) in r},
                    iqr={m: _clean(r.get(session_iqr(m))) for m in METRICS if session_iqr(m) in r},
                    mounting_id=r.get(MOUNTING_ID),
                    remount=r.get(REMOUNT),
                    mounting_uncertainty_deg=_clean(r.get(MOUNTING_UNCERTAINTY_DEG)),
                ).model_dump(mode="json")
            )
            for m in METRICS:
                if symmetry_index(m) in r and m not in si:
                    si[m] = _clean(r[symmetry_index(m)])
                if lr_difference(m) in r and m not in diff:
                    diff[m] = _clean(r[lr_difference(m)])
    return {"analysed": analysed, "feet": feet, "symmetry_index_pct": si, "lr_difference_deg": diff}


def session_item(row: SessionRow, fields: dict, results_error: str | None = None) -> dict:
    """A session row with its result fields (`session_fields`) as a SessionOut-shaped dict."""
    return {
        "athlete_id": row.athlete_id,
        "session_id": row.session_id,
        "session_date": row.session_date,
        "created": row.created,
        **fields,
        "results_error": results_error,
    }


def session_out(
    row: SessionRow, results: pl.DataFrame | None, results_error: str | None = None
) -> SessionOut:
    """A session row with its per-foot aggregates from the sessions table (if analysed);
    `results_error`: why its stored results cannot be read (a damaged partition), else None."""
    return SessionOut.model_validate(
        session_item(row, session_fields(results, row.session_id), results_error)
    )


def session_results(
    settings: ServiceSettings, athlete_id: str, session_ids: list[str]
) -> tuple[pl.DataFrame | None, dict[str, str]]:
    """`read_session_rows` of the service's results folder."""
    return read_session_rows(settings.results_dir, athlete_id, session_ids)


def read_session_rows(
    results_dir: FsPath, athlete_id: str, session_ids: list[str]
) -> tuple[pl.DataFrame | None, dict[str, str]]:
    """Rows of the sessions table for these sessions of one athlete (None if none stored), and
    {session_id: problem} of sessions whose stored partition cannot be read (logged).

    Each partition file is opened once and read from that open file: a partition replaced while
    it is read (`os.replace` by a live stream or a job) gives the old table or the new one; read
    by path, polars may take the footer from one file and the pages from the other.
    """
    frames, damaged = [], {}
    for sid in session_ids:
        if not is_valid_id(sid):  # a row stored before ids were checked: no partition can hold it
            continue
        path = partitions.partition_dir(results_dir, partitions.SESSIONS, athlete_id, sid)
        try:
            with open(path / partitions.PART_FILE, "rb") as fh:
                frames.append(pl.read_parquet(fh).with_columns(pl.lit(sid).alias(SESSION_ID)))
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - polars raises several types for a damaged file
            damaged[sid] = read_problem(exc)
            log.error(
                "stored %s of athlete %r, session %r cannot be read: %s",
                partitions.SESSIONS, athlete_id, sid, damaged[sid],
            )  # fmt: skip
    return (pl.concat(frames, how="diagonal_relaxed") if frames else None), damaged


async def session_summaries(
    db: Database, settings: ServiceSettings, athlete_id: str, session_ids: list[str]
) -> tuple[dict[str, dict], dict[str, str]]:
    """`summary_index.session_summaries`: index rows read on the event loop (no file is opened),
    partitions that changed since read again in the thread pool."""
    found, stale = summary_index.cached_summaries(db, settings.results_dir, athlete_id, session_ids)
    if not stale:
        return found, {}
    more, damaged = await run_in_threadpool(
        summary_index.rebuild_summaries, db, settings.results_dir, athlete_id, stale
    )
    return found | more, damaged


def hub_of(app) -> LiveHub:
    """The app's LiveHub (created on first use if the lifespan did not run)."""
    hub = getattr(app.state, "live", None)
    if hub is None:
        settings = app.state.settings
        instance = getattr(app.state, "instance", None)  # service.instances.Instance (create_app)
        source = instance.id if instance is not None else f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        hub = LiveHub(
            settings.data_dir / WAL_DIRNAME,
            settings.results_dir,
            analysis_settings=getattr(app.state, "analysis", None) or AnalysisSettings(),
            idle_timeout_s=settings.stream_idle_timeout_s,
            broker=broker_for(settings.resolved_database_url, source),
            peers=None if instance is None else (lambda: bool(instance.others())),
            analysis_workers=settings.live_analysis_workers,
            store_process=settings.live_store_process,
            log_sync=settings.live_log_sync,
        )
        app.state.live = hub
    return hub
