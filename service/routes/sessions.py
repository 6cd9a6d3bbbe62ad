"""A session and its strides (paginated, filterable by foot, time of initial contact and validity)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import bindparam, select

from strideflow.analytics import partitions
from strideflow.hardware.schema import (
    ATHLETE_ID,
    SESSION_ID,
    STRIDES_SCHEMA,
)
from strideflow.service import strides_page
from strideflow.service.auth import CurrentPrincipal, Principal, Role, not_found
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
from strideflow.service.routes.athletes import session_fields, session_item, session_summaries
from strideflow.service.schemas import READ_ERRORS, Foot, Page, SessionOut, Stride
from strideflow.service.settings import ServiceSettings

router = APIRouter(prefix="/v1", tags=["sessions"])

SessionPath = Annotated[str, Path(max_length=128)]
AthleteQuery = Annotated[
    str | None,
    Query(
        max_length=128,
        description="Athlete of the session; needed only when several visible athletes share the id.",
    ),
]
STRIDE_FIELDS = tuple(c for c in STRIDES_SCHEMA if c not in (ATHLETE_ID, SESSION_ID))


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
    with db.engine.connect() as conn:  # Core: every session route asks this first
        rows = conn.execute(_session_statement(own_only, athlete_id is not None), params).all()
    if not rows:
        raise not_found("session", session_id)
    if len(rows) > 1:
        raise HTTPException(
            422,
            detail=f"query parameter 'athlete_id': session {session_id!r} is shared by several athletes",
        )
    return rows[0]


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=READ_ERRORS)
async def get_session(
    session_id: SessionPath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    athlete_id: AthleteQuery = None,
) -> dict:
    """One session with per-foot medians, IQRs and left/right symmetry."""
    row = resolve_session(db, principal, session_id, athlete_id)  # one indexed query: inline
    summaries, damaged = await session_summaries(db, settings, row.athlete_id, [row.session_id])
    if damaged:
        raise DamagedResultsError(
            row.athlete_id, row.session_id, partitions.SESSIONS, damaged[row.session_id]
        )
    return session_item(row, summaries.get(row.session_id) or session_fields(None, row.session_id))


def _strides(
    settings: ServiceSettings,
    row: SessionRow,
    foot: str | None,
    t_from: float | None,
    t_to: float | None,
    valid: bool | None,
    after: list | None,
    limit: int,
) -> tuple[list[dict], list | None]:
    path = partitions.partition_dir(settings.results_dir, partitions.STRIDES, row.athlete_id, row.session_id)
    path = path / partitions.PART_FILE
    if not path.is_file():
        return [], None
    keys = {ATHLETE_ID: row.athlete_id, SESSION_ID: row.session_id}
    try:
        items, nxt, _ = strides_page.read_page(path, foot, t_from, t_to, valid, after, limit)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise DamagedResultsError(
            row.athlete_id, row.session_id, partitions.STRIDES, read_problem(exc)
        ) from None
    # Every Stride field, in the model's order (partitions older than a column lack it: null).
    return [{c: item.get(c) for c in STRIDE_FIELDS} | keys for item in items], nxt


@router.get("/sessions/{session_id}/strides", response_model=Page[Stride], responses=READ_ERRORS)
async def list_strides(
    session_id: SessionPath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    athlete_id: AthleteQuery = None,
    foot: Foot | None = None,
    t_from: Annotated[
        float | None, Query(description="Earliest initial contact `ic_t`, s.", allow_inf_nan=False)
    ] = None,
    t_to: Annotated[
        float | None, Query(description="Latest initial contact `ic_t`, s.", allow_inf_nan=False)
    ] = None,
    valid: Annotated[bool | None, Query(description="Only valid (true) or invalid (false) strides.")] = None,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Response:
    """Strides of a session, ordered by foot (left first) and stride index."""
    if t_from is not None and t_to is not None and t_from > t_to:
        raise HTTPException(422, detail=f"query parameter 't_from': {t_from} is after t_to={t_to}")
    n = page_size(settings, limit)
    key = decode_cursor("strides", cursor, (int, int))
    row = resolve_session(db, principal, session_id, athlete_id)  # one indexed query: inline
    items, nxt = await run_in_threadpool(
        _strides, settings, row, None if foot is None else foot.value, t_from, t_to, valid, key, n
    )
    return page_response(items, None if nxt is None else encode_cursor("strides", nxt))
