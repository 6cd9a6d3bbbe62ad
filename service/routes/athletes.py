"""Athletes of the key's team, their sessions, and per-metric trends over sessions."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from enum import StrEnum
from pathlib import Path as FsPath
from typing import Annotated

import polars as pl
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import bindparam, func, select, tuple_

from strideflow.analytics import partitions
from strideflow.analytics.trends import compute_trends
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.ids import is_valid_id
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    FEET,
    FOOT,
    METRICS,
    SESSION_ID,
    STRIDE_COUNT,
    lr_difference,
    session_iqr,
    session_median,
    symmetry_index,
)
from strideflow.service import summary_index
from strideflow.service.auth import CurrentPrincipal, Principal, Role, visible_athlete
from strideflow.service.db import Athlete, Database, SessionRow
from strideflow.service.deps import (
    CursorQuery,
    DbDep,
    LimitQuery,
    SettingsDep,
    decode_cursor,
    encode_cursor,
    page_response,
    page_size,
)
from strideflow.service.errors import DamagedResultsError, read_problem
from strideflow.service.schemas import (
    READ_ERRORS,
    AthleteOut,
    Foot,
    Page,
    SessionFoot,
    SessionOut,
    TrendPoint,
)
from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service")
router = APIRouter(prefix="/v1", tags=["athletes"])

Metric = StrEnum("Metric", {m: m for m in METRICS})
STRIDE_COUNT_ALL = f"{STRIDE_COUNT}_all"  # all strides, valid or not (analytics.sessions)
NO_DATE = dt.date(1, 1, 1)  # sorts undated sessions first

TREND_FIELDS = tuple(TrendPoint.model_fields)

AthletePath = Annotated[str, Path(max_length=128)]


@functools.cache
def _athletes_statement(own_only: bool, after: bool, only: bool):
    """The athletes query for one combination of filters, built once (values are bound per call)."""
    stmt = (
        select(Athlete.id, func.count(SessionRow.session_id), func.max(SessionRow.session_date))
        .outerjoin(SessionRow, SessionRow.athlete_id == Athlete.id)
        .where(Athlete.team_id == bindparam("team_id"))
        .group_by(Athlete.id)
        .order_by(Athlete.id)
        .limit(bindparam("limit"))
    )
    if own_only:
        stmt = stmt.where(Athlete.id == bindparam("own_id"))
    if after:
        stmt = stmt.where(Athlete.id > bindparam("after"))
    if only:
        stmt = stmt.where(Athlete.id == bindparam("only"))
    return stmt


def _athletes(db: Database, principal: Principal, after: str | None, limit: int, only: str | None = None):
    own_only = principal.role is Role.athlete
    stmt = _athletes_statement(own_only, after is not None, only is not None)
    params = {"team_id": principal.team_id, "limit": limit + 1, "after": after, "only": only}
    if own_only:
        params["own_id"] = principal.athlete_id
    with db.engine.connect() as conn:
        rows = conn.execute(stmt, {k: v for k, v in params.items() if v is not None}).all()
    return [{"athlete_id": a, "session_count": n, "last_session_date": d} for a, n, d in rows]


@router.get("/athletes", response_model=Page[AthleteOut], responses=READ_ERRORS)
async def list_athletes(
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    """Athletes the key may see (its team; an athlete key: itself), ordered by athlete id."""
    n = page_size(settings, limit)
    key = decode_cursor("athletes", cursor, (str,))
    items = _athletes(db, principal, None if key is None else key[0], n)  # one indexed query: inline
    nxt = encode_cursor("athletes", [items[n - 1]["athlete_id"]]) if len(items) > n else None
    return page_response(items[:n], nxt)


@router.get("/athletes/{athlete_id}", response_model=AthleteOut, responses=READ_ERRORS)
async def get_athlete(athlete_id: AthletePath, principal: CurrentPrincipal, db: DbDep) -> AthleteOut:
    """One athlete with its session count and last session date."""
    visible_athlete(principal, db, athlete_id)
    items = _athletes(db, principal, None, 1, athlete_id)
    return AthleteOut.model_validate(items[0])


def _clean(value):
    if isinstance(value, float) and value != value:  # NaN is not JSON
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
            # The session's main activity (most valid strides) first: its feet and symmetry lead.
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
                    median={m: _clean(r.get(session_median(m))) for m in METRICS if session_median(m) in r},
                    iqr={m: _clean(r.get(session_iqr(m))) for m in METRICS if session_iqr(m) in r},
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

    The partition files are opened directly (no directory scan) and read in one parallel collect;
    only when that fails are they read one by one, to serve the others and name the damaged ones.
    """
    paths = {}
    for sid in session_ids:
        if not is_valid_id(sid):  # a row stored before ids were checked: no partition can hold it
            continue
        path = partitions.partition_dir(results_dir, partitions.SESSIONS, athlete_id, sid)
        path = path / partitions.PART_FILE
        if path.is_file():
            paths[sid] = path

    def scan(sid: str) -> pl.LazyFrame:
        return pl.scan_parquet(paths[sid]).with_columns(pl.lit(sid).alias(SESSION_ID))

    if not paths:
        return None, {}
    try:
        return pl.concat([scan(sid) for sid in paths], how="diagonal_relaxed").collect(), {}
    except Exception:  # noqa: BLE001 - polars raises several types for a damaged file; found below
        pass
    frames, damaged = [], {}
    for sid in paths:
        try:
            frames.append(scan(sid).collect())
        except Exception as exc:  # noqa: BLE001
            damaged[sid] = read_problem(exc)
            log.error(
                "stored %s of athlete %r, session %r cannot be read: %s",
                partitions.SESSIONS, athlete_id, sid, damaged[sid],
            )  # fmt: skip
    return (pl.concat(frames, how="diagonal_relaxed") if frames else None), damaged


def _session_rows(db: Database, athlete_id: str, after: list | None, limit: int):
    """(up to limit + 1 session rows from `after` on, the first `limit` of them with valid ids)."""
    sort_date = func.coalesce(SessionRow.session_date, NO_DATE)
    stmt = (
        select(SessionRow)
        .where(SessionRow.athlete_id == athlete_id)
        .order_by(sort_date, SessionRow.session_id)
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(
            tuple_(sort_date, SessionRow.session_id) > (dt.date.fromisoformat(after[0]), after[1])
        )
    with db.session() as s:
        rows = list(s.scalars(stmt).all())
    shown = []
    for r in rows[:limit]:
        if is_valid_id(r.session_id):
            shown.append(r)
        else:  # stored before every id was checked: skipped, so it cannot break the listing
            log.warning("athlete %r: skipped session row with an invalid id %r", athlete_id, r.session_id)
    return rows, shown


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


@router.get("/athletes/{athlete_id}/sessions", response_model=Page[SessionOut], responses=READ_ERRORS)
async def list_sessions(
    athlete_id: AthletePath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    """Sessions of an athlete, oldest first (undated first), each with per-foot medians and symmetry."""
    visible_athlete(principal, db, athlete_id)
    n = page_size(settings, limit)
    key = decode_cursor("sessions", cursor, (str, str))
    if key is not None:
        try:
            dt.date.fromisoformat(key[0])
        except ValueError:
            raise HTTPException(422, detail="query parameter 'cursor': not a cursor of this list") from None
    rows, shown = _session_rows(db, athlete_id, key, n)
    summaries, damaged = await session_summaries(db, settings, athlete_id, [r.session_id for r in shown])
    not_analysed = session_fields(None, "")
    items = [
        session_item(r, summaries.get(r.session_id, not_analysed), damaged.get(r.session_id)) for r in shown
    ]
    nxt = None
    if len(rows) > n:
        last = rows[n - 1]
        nxt = encode_cursor("sessions", [(last.session_date or NO_DATE).isoformat(), last.session_id])
    return page_response(items, nxt)


def damaged_partition(settings: ServiceSettings, table: str, athlete_id: str) -> DamagedResultsError | None:
    """The first of the athlete's stored partitions of `table` that cannot be read, as an error."""
    base = settings.results_dir / table / f"{ATHLETE_ID}={athlete_id}"
    for path in sorted(base.glob(f"{SESSION_ID}=*/{partitions.PART_FILE}")):
        try:
            pl.read_parquet(path)
        except Exception as exc:  # noqa: BLE001
            return DamagedResultsError(
                athlete_id, path.parent.name.split("=", 1)[1], table, read_problem(exc)
            )
    return None


def _trends(
    db: Database,
    settings: ServiceSettings,
    athlete_id: str,
    metric: str | None,
    foot: str | None,
    signature: str | None = None,
) -> list[dict]:
    points = summary_index.trend_points(db, settings.results_dir, athlete_id, metric, signature)
    if points is not None:
        return points if foot is None else [p for p in points if p.get(FOOT) == foot]
    try:
        df = compute_trends(settings.results_dir, athlete_id=athlete_id, metric=metric)
    except StrideflowError:
        raise
    except Exception:
        # A trend needs every session: a damaged one is named (503), not silently left out.
        damaged = damaged_partition(settings, partitions.SESSIONS, athlete_id)
        if damaged is not None:
            raise damaged from None
        raise
    if df is None or df.height == 0:
        return []
    if foot is not None and FOOT in df.columns:
        df = df.filter(pl.col(FOOT) == foot)
    floats = [c for c, t in df.schema.items() if t.is_float()]
    return df.with_columns(pl.col(floats).fill_nan(None)).to_dicts()


@router.get("/athletes/{athlete_id}/trends", response_model=Page[TrendPoint], responses=READ_ERRORS)
async def trends(
    athlete_id: AthletePath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    metric: Annotated[Metric | None, Query(description="One stride metric; omit for all.")] = None,
    foot: Foot | None = None,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    """Per-session median of a metric, change from the athlete's baseline, slope per 30 days."""
    visible_athlete(principal, db, athlete_id)
    n = page_size(settings, limit)
    key = decode_cursor("trends", cursor, (int,))
    start = 0 if key is None else max(key[0], 0)
    m = None if metric is None else metric.value
    f = None if foot is None else foot.value
    # The index, read on the event loop; the partitions (changed since indexed) in the thread pool.
    rows, signature = summary_index.cached_trend_points(db, settings.results_dir, athlete_id, m)
    if rows is summary_index.MISS or rows is None:
        rows = await run_in_threadpool(_trends, db, settings, athlete_id, m, f, signature)
    elif f is not None:
        rows = [p for p in rows if p.get(FOOT) == f]
    page = rows[start : start + n]
    nxt = encode_cursor("trends", [start + n]) if start + n < len(rows) else None
    return page_response([{f: p.get(f) for f in TREND_FIELDS} for p in page], nxt)
