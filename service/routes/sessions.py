"""A session and its strides (paginated, filterable by foot, time of initial contact and validity)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from strideflow.analytics import partitions
from strideflow.service import strides_page
from strideflow.service.auth import CurrentPrincipal
from strideflow.service.db import SessionRow
from strideflow.service.deps import (
    CursorQuery,
    DbDep,
    LimitQuery,
    SettingsDep,
    decode_cursor,
    encode_cursor,
    json_page_response,
    page_size,
)
from strideflow.service.errors import DamagedResultsError, read_problem
from strideflow.service.queries import (
    AthleteQuery,
    SessionPath,
    resolve_session,
    session_fields,
    session_item,
    session_summaries,
)
from strideflow.service.schemas import READ_ERRORS, Foot, Page, SessionOut, Stride
from strideflow.service.settings import ServiceSettings

router = APIRouter(prefix="/v1", tags=["sessions"])

# Strides items are built on two threads of their own rather than the shared pool (40): a build holds
# the GIL between its pyarrow and polars calls, and with 8 pages at once the threads' contention for
# it cost ~1 ms of CPU per request (bench api, issue 19); two still overlap reading with the loop.
_PAGE_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="strides-page")


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
    build: bool = True,
) -> tuple[bytes, list | None] | None:
    """(the page's items as one JSON array, the cursor key of the next page or None); None if the
    session's strides items must be built first and `build` is False."""
    path = partitions.partition_dir(settings.results_dir, partitions.STRIDES, row.athlete_id, row.session_id)
    try:
        return strides_page.read_items_page(
            path / partitions.PART_FILE,
            row.athlete_id,
            row.session_id,
            foot,
            t_from,
            t_to,
            valid,
            after,
            limit,
            build,
        )
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise DamagedResultsError(
            row.athlete_id, row.session_id, partitions.STRIDES, read_problem(exc)
        ) from None


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
    args = (settings, row, None if foot is None else foot.value, t_from, t_to, valid, key, n)
    # A page from fresh items is a stat, two reads and a slice (~0.1 ms): answered on the loop; one
    # whose items must be built from the Parquet file first (~20 ms) goes to the page threads.
    page = _strides(*args, build=False)
    if page is None:
        page = await asyncio.get_running_loop().run_in_executor(_PAGE_READERS, _strides, *args)
    items_json, nxt = page
    return json_page_response(items_json, None if nxt is None else encode_cursor("strides", nxt))
