"""The heuristic flags of a session, each with its threshold and a plain-words explanation."""

from __future__ import annotations

import logging

import polars as pl
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from strideflow.analytics import partitions
from strideflow.analytics.flags import FLAG, METRIC, NOTE, THRESHOLD, VALUE, asymmetry_against_baseline
from strideflow.hardware.schema import FOOT
from strideflow.service.auth import CurrentPrincipal
from strideflow.service.db import SessionRow
from strideflow.service.deps import DbDep, SettingsDep
from strideflow.service.errors import read_results
from strideflow.service.queries import AthleteQuery, SessionPath, resolve_session
from strideflow.service.schemas import READ_ERRORS, Page
from strideflow.service.settings import ServiceSettings
from strideflow.service.wording import flag_sentence

router = APIRouter(prefix="/v1", tags=["sessions"])
log = logging.getLogger("strideflow.service")


class FlagOut(BaseModel):
    """One raised flag (analytics.flags): a configurable heuristic, not a diagnosis."""

    athlete_id: str
    session_id: str
    foot: str | None = Field(None, description="null: left/right asymmetry, which belongs to the session")
    activity: str | None = Field(None, description="walk or run: the gait the flag was raised on")
    flag: str
    metric: str
    value: float | None = Field(None, description="Session median in the metric's unit, or SI in percent.")
    threshold: float
    note: str
    text: str = Field(description="The flag in plain words with its value and threshold.")


def _baseline_flags(settings: ServiceSettings, row: SessionRow) -> pl.DataFrame | None:
    """Asymmetry against the athlete's own earlier sessions (`analytics.flags.asymmetry_against_baseline`),
    from the athlete's stored sessions tables as they are now (so it follows later uploads)."""
    try:
        history = partitions.collect_table(
            settings.results_dir, partitions.SESSIONS, athlete_id=row.athlete_id
        )
        if history is None:
            return None
        return asymmetry_against_baseline(history, row.session_id)
    except Exception:  # noqa: BLE001 - a damaged earlier session must not hide this session's flags
        log.exception(
            "asymmetry baseline of athlete %r, session %r not computed", row.athlete_id, row.session_id
        )
        return None


def _flags(settings: ServiceSettings, row: SessionRow) -> list[dict]:
    flags = read_results(settings.results_dir, partitions.FLAGS, row.athlete_id, row.session_id)
    if flags is None:
        return []
    baseline = _baseline_flags(settings, row)
    if baseline is not None and baseline.height:
        flags = pl.concat(
            [flags, baseline.select([c for c in flags.columns if c in baseline.columns])],
            how="diagonal_relaxed",
        )
    out = []
    for r in flags.iter_rows(named=True):
        value = r[VALUE]
        out.append(
            {
                "athlete_id": row.athlete_id,
                "session_id": row.session_id,
                FOOT: r[FOOT],
                "activity": r.get("activity"),
                FLAG: r[FLAG],
                METRIC: r[METRIC],
                VALUE: None if value is None or value != value else value,
                THRESHOLD: r[THRESHOLD],
                NOTE: r[NOTE],
                "text": flag_sentence(r),
            }
        )
    return out


@router.get("/sessions/{session_id}/flags", response_model=Page[FlagOut], responses=READ_ERRORS)
async def session_flags(
    session_id: SessionPath,
    principal: CurrentPrincipal,
    db: DbDep,
    settings: SettingsDep,
    athlete_id: AthleteQuery = None,
) -> Page[FlagOut]:
    """Flags raised on a session (one page: a session has at most a few): the stored heuristic flags,
    then `asymmetry_change` rows, a left/right symmetry index beyond the athlete's own baseline of
    earlier sessions (computed at request time from the athlete's stored sessions)."""
    row = await run_in_threadpool(resolve_session, db, principal, session_id, athlete_id)
    items = await run_in_threadpool(_flags, settings, row)
    return Page[FlagOut](items=[FlagOut.model_validate(i) for i in items], next_cursor=None)
