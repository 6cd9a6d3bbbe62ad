"""Athletes of the key's team, their sessions, and per-metric trends over sessions."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from enum import StrEnum
from typing import Annotated

import polars as pl
import pydantic_core
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import Date, bindparam, func, select, tuple_

from strideflow.analytics import partitions
from strideflow.analytics.trends import compute_trends
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.ids import is_valid_id
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FOOT,
    METRICS,
    SESSION_ID,
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
    json_page_body,
    page_body,
    page_size,
)
from strideflow.service.errors import DamagedResultsError, read_problem
from strideflow.service.queries import session_fields, session_item
from strideflow.service.schemas import (
    READ_ERRORS,
    AthleteOut,
    Foot,
    MountingOut,
    Page,
    SessionOut,
    TrendPoint,
)
from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service")
router = APIRouter(prefix="/v1", tags=["athletes"])

Metric = StrEnum("Metric", {m: m for m in METRICS})
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
    with db.reader.connect() as conn:
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
    after = None if key is None else key[0]
    # The page is the same for every key of the team (an athlete key: of the athlete) until the
    # database changes: its aggregate over the team's sessions was most of the request's CPU.
    own = principal.athlete_id if principal.role is Role.athlete else None
    page_key = ("athletes", principal.team_id, own, after, n)
    stamp = db.change_stamp()
    body = db.read_cache.get(page_key, stamp)
    if body is None:
        items = _athletes(db, principal, after, n)  # one indexed query: inline
        nxt = encode_cursor("athletes", [items[n - 1]["athlete_id"]]) if len(items) > n else None
        body = page_body(items[:n], nxt)
        db.read_cache.put(page_key, stamp, body, len(body))
    return Response(body, media_type="application/json")


@router.get("/athletes/{athlete_id}", response_model=AthleteOut, responses=READ_ERRORS)
async def get_athlete(athlete_id: AthletePath, principal: CurrentPrincipal, db: DbDep) -> AthleteOut:
    """One athlete with its session count and last session date."""
    visible_athlete(principal, db, athlete_id)
    items = _athletes(db, principal, None, 1, athlete_id)
    return AthleteOut.model_validate(items[0])


@functools.cache
def _sessions_statement(after: bool):
    """The sessions query (Core, built once: rows with SessionRow's columns as attributes)."""
    sort_date = func.coalesce(SessionRow.session_date, NO_DATE)
    stmt = (
        select(SessionRow.athlete_id, SessionRow.session_id, SessionRow.session_date, SessionRow.created)
        .where(SessionRow.athlete_id == bindparam("athlete_id"))
        .order_by(sort_date, SessionRow.session_id)
        .limit(bindparam("limit"))
    )
    if after:
        after_key = (bindparam("after_date", type_=Date), bindparam("after_id"))
        stmt = stmt.where(tuple_(sort_date, SessionRow.session_id) > tuple_(*after_key))
    return stmt


def _session_rows(db: Database, athlete_id: str, after: list | None, limit: int):
    """(up to limit + 1 session rows from `after` on, the first `limit` of them with valid ids)."""
    params: dict = {"athlete_id": athlete_id, "limit": limit + 1}
    if after is not None:
        params |= {"after_date": dt.date.fromisoformat(after[0]), "after_id": after[1]}
    with db.reader.connect() as conn:
        rows = conn.execute(_sessions_statement(after is not None), params).all()
    shown = []
    for r in rows[:limit]:
        if is_valid_id(r.session_id):
            shown.append(r)
        else:  # stored before every id was checked: skipped, so it cannot break the listing
            log.warning("athlete %r: skipped session row with an invalid id %r", athlete_id, r.session_id)
    return rows, shown


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
    # A page wholly from the index is kept until the database changes, and served while its
    # sessions' partitions are the files it was built from (a `stat` each, as the index is checked).
    page_key = ("sessions", athlete_id, None if key is None else tuple(key), n)
    stamp = db.change_stamp()
    kept = db.read_cache.get(page_key, stamp)
    if kept is not None:
        signatures, body = kept
        if summary_index.session_signatures(settings.results_dir, athlete_id, signatures) == signatures:
            return Response(body, media_type="application/json")
    rows, shown = _session_rows(db, athlete_id, key, n)
    ids = [r.session_id for r in shown]
    # The index's JSON is written into the answer as stored; only rebuilt summaries are encoded.
    texts, stale, signatures = summary_index.cached_summary_texts(db, settings.results_dir, athlete_id, ids)
    rebuilt, damaged = {}, {}
    if stale:
        rebuilt, damaged = await run_in_threadpool(
            summary_index.rebuild_summaries, db, settings.results_dir, athlete_id, stale
        )
    not_analysed = session_fields(None, "")
    items = []
    for r in shown:
        error = damaged.get(r.session_id)
        text = texts.get(r.session_id)
        if text is None:
            # written as the index stores it (its column's json.dumps), so that the answer's bytes
            # do not change once the summary is cached
            text = json.dumps(rebuilt.get(r.session_id, not_analysed))
        items.append(_with_summary(session_item(r, {}, error), text))
    nxt = None
    if len(rows) > n:
        last = rows[n - 1]
        nxt = encode_cursor("sessions", [(last.session_date or NO_DATE).isoformat(), last.session_id])
    body = json_page_body(b"[" + b",".join(items) + b"]", nxt)
    if not stale:
        db.read_cache.put(page_key, stamp, (signatures, body), len(body))
    return Response(body, media_type="application/json")


def _with_summary(item: dict, summary_json: str) -> bytes:
    """The JSON object of `item` with the members of the JSON object `summary_json` added."""
    head = pydantic_core.to_json(item)
    members = summary_json.strip()[1:-1].strip()
    return head[:-1] + b"," + members.encode() + b"}" if members else head


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
    # A page from the index is kept until the database changes, and served while the athlete's
    # partitions are the files the index was built from (the same `stat`s the index check makes).
    page_key = ("trends", athlete_id, m, f, start, n)
    stamp = db.change_stamp()
    kept = db.read_cache.get(page_key, stamp)
    if kept is not None:
        signature, body = kept
        if summary_index.athlete_signature(settings.results_dir, athlete_id) == signature:
            return Response(body, media_type="application/json")
    # The index, read on the event loop; the partitions (changed since indexed) in the thread pool.
    rows, signature = summary_index.cached_trend_points(db, settings.results_dir, athlete_id, m)
    indexed = rows is not summary_index.MISS and rows is not None
    if not indexed:
        rows = await run_in_threadpool(_trends, db, settings, athlete_id, m, f, signature)
    elif f is not None:
        rows = [p for p in rows if p.get(FOOT) == f]
    page = rows[start : start + n]
    nxt = encode_cursor("trends", [start + n]) if start + n < len(rows) else None
    body = page_body([{f: p.get(f) for f in TREND_FIELDS} for p in page], nxt)
    if indexed:
        db.read_cache.put(page_key, stamp, (signature, body), len(body) + len(signature))
    return Response(body, media_type="application/json")


def _mountings(settings: ServiceSettings, athlete_id: str) -> list[MountingOut]:
    from strideflow.analytics.mountings import read_mountings

    try:
        stored = read_mountings(settings.results_dir, athlete_id)
    except StrideflowError as exc:
        log.error("mountings of athlete %s: %s", athlete_id, exc)
        raise HTTPException(
            503, detail=f"the stored mountings of athlete {athlete_id} cannot be read; re-run an analysis"
        ) from exc
    return [
        MountingOut.model_validate(
            {k: (None if isinstance(v, float) and v != v else v) for k, v in m.to_dict().items()}
            | {"athlete_id": athlete_id, "device_id": m.device_id or "", "foot": m.foot}
        )
        for m in stored
    ]


@router.get("/athletes/{athlete_id}/mountings", response_model=Page[MountingOut], responses=READ_ERRORS)
async def list_mountings(
    athlete_id: AthletePath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Page[MountingOut]:
    """The athlete's mountings (one per device and foot until a remount), oldest first."""
    await run_in_threadpool(visible_athlete, principal, db, athlete_id)
    n = page_size(settings, limit)
    key = decode_cursor("mountings", cursor, (int,))
    start = 0 if key is None else max(key[0], 0)
    rows = await run_in_threadpool(_mountings, settings, athlete_id)
    nxt = encode_cursor("mountings", [start + n]) if start + n < len(rows) else None
    return Page[MountingOut](items=rows[start : start + n], next_cursor=nxt)
