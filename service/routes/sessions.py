"""A session and its strides (paginated, filterable by foot, time of initial contact and validity)."""

from __future__ import annotations

from typing import Annotated

import polars as pl
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from strideflow.analytics import partitions
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FEET,
    FOOT,
    IC_T,
    SESSION_ID,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
    VALID,
)
from strideflow.service.auth import CurrentPrincipal
from strideflow.service.db import SessionRow
from strideflow.service.deps import (
    CursorQuery,
    DbDep,
    LimitQuery,
    SettingsDep,
    decode_cursor,
    encode_cursor,
    page_size,
)
from strideflow.service.errors import DamagedResultsError, read_problem
from strideflow.service.queries import (
    AthleteQuery,
    SessionPath,
    resolve_session,
    session_out,
    session_results,
)
from strideflow.service.schemas import READ_ERRORS, Foot, Page, SessionOut, Stride
from strideflow.service.settings import ServiceSettings

router = APIRouter(prefix="/v1", tags=["sessions"])

_FOOT_RANK = {f: i for i, f in enumerate(FEET)}


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=READ_ERRORS)
async def get_session(
    session_id: SessionPath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    athlete_id: AthleteQuery = None,
) -> SessionOut:
    """One session with per-foot medians, IQRs and left/right symmetry."""
    row = await run_in_threadpool(resolve_session, db, principal, session_id, athlete_id)
    results, damaged = await run_in_threadpool(session_results, settings, row.athlete_id, [row.session_id])
    if damaged:
        raise DamagedResultsError(
            row.athlete_id, row.session_id, partitions.SESSIONS, damaged[row.session_id]
        )
    return session_out(row, results)


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
    lf = pl.scan_parquet(path)
    if foot is not None:
        lf = lf.filter(pl.col(FOOT) == foot)
    if t_from is not None:
        lf = lf.filter(pl.col(IC_T) >= t_from)
    if t_to is not None:
        lf = lf.filter(pl.col(IC_T) <= t_to)
    if valid is not None:
        lf = lf.filter(pl.col(VALID) == valid)
    # Stable order: foot (left, right), then stride index; the cursor is the last item's key.
    rank = pl.col(FOOT).replace_strict(_FOOT_RANK, default=len(FEET), return_dtype=pl.Int32)
    lf = lf.with_columns(rank.alias("_foot_rank"))
    if after is not None:
        lf = lf.filter(
            (pl.col("_foot_rank") > after[0])
            | ((pl.col("_foot_rank") == after[0]) & (pl.col(STRIDE_INDEX) > after[1]))
        )
    try:
        df = lf.sort("_foot_rank", STRIDE_INDEX).head(limit + 1).collect()
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a damaged file
        raise DamagedResultsError(
            row.athlete_id, row.session_id, partitions.STRIDES, read_problem(exc)
        ) from None
    nxt = None
    if df.height > limit:
        last = df.row(limit - 1, named=True)
        nxt = [last["_foot_rank"], last[STRIDE_INDEX]]
        df = df.head(limit)
    cols = [c for c in STRIDES_SCHEMA if c in df.columns and c not in (ATHLETE_ID, SESSION_ID)]
    floats = [c for c in cols if df.schema[c].is_float()]
    df = df.select(cols).with_columns(pl.col(floats).fill_nan(None))
    df = df.with_columns(pl.lit(row.athlete_id).alias(ATHLETE_ID), pl.lit(row.session_id).alias(SESSION_ID))
    return df.to_dicts(), nxt


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
) -> dict:
    """Strides of a session, ordered by foot (left first) and stride index."""
    if t_from is not None and t_to is not None and t_from > t_to:
        raise HTTPException(422, detail=f"query parameter 't_from': {t_from} is after t_to={t_to}")
    n = page_size(settings, limit)
    key = decode_cursor("strides", cursor, (int, int))
    row = await run_in_threadpool(resolve_session, db, principal, session_id, athlete_id)
    items, nxt = await run_in_threadpool(
        _strides, settings, row, None if foot is None else foot.value, t_from, t_to, valid, key, n
    )
    # A plain dict: FastAPI validates it against Page[Stride] once, on the way out.
    return {"items": items, "next_cursor": None if nxt is None else encode_cursor("strides", nxt)}
