"""Stride-normalised curves of a session: mean and SD of pronation and pitch per foot and percent."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import polars as pl
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from strideflow.analytics import partitions
from strideflow.analytics.curves import (
    PCT,
    PHASE,
    STANCE,
    STRIDE,
    STRIDE_COUNT,
    curve_mean,
    curve_sd,
    curve_summary,
)
from strideflow.hardware.schema import ACTIVITY, FOOT, PITCH_DEG, PRONATION_DEG
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
from strideflow.service.errors import read_results
from strideflow.service.queries import AthleteQuery, SessionPath, resolve_session
from strideflow.service.schemas import READ_ERRORS, Foot, Page
from strideflow.service.settings import ServiceSettings

router = APIRouter(prefix="/v1", tags=["sessions"])


class Phase(StrEnum):
    stance = STANCE
    stride = STRIDE


class CurvePoint(BaseModel):
    """Mean and SD over the session's steady strides of one activity at one percent of a phase of one foot."""

    foot: Foot
    activity: str | None = Field(
        None, description="walk or run: walking and running strides never share a curve."
    )
    phase: Phase
    pct: float = Field(description="Percent of the phase: 0 = initial contact, 100 = toe-off / next IC.")
    stride_count: int = Field(description="Valid strides with a value here.")
    pronation_deg_mean: float | None = Field(None, description="deg, eversion positive")
    pronation_deg_sd: float | None = Field(None, description="deg, standard deviation (ddof 1)")
    pitch_deg_mean: float | None = Field(None, description="deg, toes up positive")
    pitch_deg_sd: float | None = Field(None, description="deg, standard deviation (ddof 1)")


_COLUMNS = {
    "pronation_deg_mean": curve_mean(PRONATION_DEG),
    "pronation_deg_sd": curve_sd(PRONATION_DEG),
    "pitch_deg_mean": curve_mean(PITCH_DEG),
    "pitch_deg_sd": curve_sd(PITCH_DEG),
}


def _curves(settings: ServiceSettings, row: SessionRow, phase: str | None, foot: str | None) -> list[dict]:
    curves = read_results(settings.results_dir, partitions.CURVES, row.athlete_id, row.session_id)
    if curves is None or curves.height == 0:
        return []
    if phase is not None:
        curves = curves.filter(pl.col(PHASE) == phase)
    if foot is not None:
        curves = curves.filter(pl.col(FOOT) == foot)
    # Stored since the team batch's speed work: the session's summary; older stores: per-stride curves.
    summary = curves if STRIDE_COUNT in curves.columns else curve_summary(curves)
    summary = summary.filter(pl.col(STRIDE_COUNT) > 0)
    activity = pl.col(ACTIVITY) if ACTIVITY in summary.columns else pl.lit(None, dtype=pl.String)
    out = summary.select(
        FOOT,
        activity.alias(ACTIVITY),
        PHASE,
        PCT,
        STRIDE_COUNT,
        *[pl.col(src).fill_nan(None).alias(dst) for dst, src in _COLUMNS.items()],
    )
    return out.to_dicts()


@router.get("/sessions/{session_id}/curves", response_model=Page[CurvePoint], responses=READ_ERRORS)
async def session_curves(
    session_id: SessionPath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    athlete_id: AthleteQuery = None,
    phase: Annotated[Phase | None, Query(description="stance (IC..toe-off) or stride (IC..next IC).")] = None,
    foot: Foot | None = None,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Page[CurvePoint]:
    """Mean ± SD curves of pronation and pitch over stance and stride (steady strides: valid, no
    turn or gait start), per foot.

    Ordered by foot, phase and percent. Empty when the session's curves are not stored.
    """
    n = page_size(settings, limit)
    key = decode_cursor("curves", cursor, (int,))
    start = 0 if key is None else max(key[0], 0)
    row = await run_in_threadpool(resolve_session, db, principal, session_id, athlete_id)
    rows = await run_in_threadpool(
        _curves, settings, row, None if phase is None else phase.value, None if foot is None else foot.value
    )
    nxt = encode_cursor("curves", [start + n]) if start + n < len(rows) else None
    return Page[CurvePoint](
        items=[CurvePoint.model_validate(r) for r in rows[start : start + n]], next_cursor=nxt
    )
