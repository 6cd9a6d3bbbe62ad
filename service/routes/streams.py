"""Live device streams the key may see: which pods are streaming now, how far, how fresh, in every
server process of the data folder (`service.stream_list`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from strideflow.service import stream_list
from strideflow.service.auth import CurrentPrincipal, Role
from strideflow.service.deps import (
    CursorQuery,
    LimitQuery,
    SettingsDep,
    decode_cursor,
    encode_cursor,
    page_size,
)
from strideflow.service.queries import hub_of
from strideflow.service.schemas import READ_ERRORS, Page, StreamOut


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """With a shared broker (several server processes), keep this process's streams written to the
    `live_streams` table for the others to list (`service.stream_list`)."""
    hub = hub_of(app)
    instance = getattr(app.state, "instance", None)
    task = None
    if hub.publisher.broker.shared and instance is not None:
        task = asyncio.create_task(
            stream_list.keep_written(app.state.db, instance.id, lambda: list(hub.streams.values()))
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


router = APIRouter(prefix="/v1", tags=["live"], lifespan=_lifespan)


def _visible(states: list[stream_list.StreamState], principal) -> list[stream_list.StreamState]:
    mine = [s for s in states if s.team_id == principal.team_id]
    if principal.role is Role.athlete:
        mine = [s for s in mine if s.athlete_id == principal.athlete_id]
    return mine


@router.get("/streams", response_model=Page[StreamOut], responses=READ_ERRORS)
async def list_streams(
    request: Request,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Page[StreamOut]:
    """Device streams held by the server processes of this data folder (open, or ended and not yet
    stored) of the key's team (an athlete key: its own), ordered by athlete, session, foot and
    device. Streams of another process are as it last wrote them, at most a few seconds ago."""
    n = page_size(settings, limit)
    after = decode_cursor("streams", cursor, (str, str, str, str))
    hub = hub_of(request.app)
    states = {s.key: s for s in _visible(stream_list.local_states(hub.streams.values()), principal)}
    instance = getattr(request.app.state, "instance", None)
    if hub.publisher.broker.shared and instance is not None:
        remote = await run_in_threadpool(
            stream_list.remote_states, request.app.state.db, instance, principal.team_id
        )
        for s in _visible(remote, principal):
            states.setdefault(s.key, s)  # this process's own state is the fresher one
    visible = sorted(states.values(), key=lambda s: s.key)
    if after is not None:
        visible = [s for s in visible if s.key > tuple(after)]
    now = time.time()
    items = [
        StreamOut(
            athlete_id=s.athlete_id,
            session_id=s.session_id,
            foot=s.foot,
            device_id=s.device_id,
            sampling_rate_hz=s.sampling_rate_hz,
            connected=s.connected,
            ended=s.ended,
            last_seq=s.last_seq,
            samples=s.samples,
            strides=s.strides,
            last_packet_at=dt.datetime.fromtimestamp(s.last_packet_at, dt.UTC),
            idle_s=max(now - s.last_packet_at, 0.0),
        )
        for s in visible[: n + 1]
    ]
    nxt = encode_cursor("streams", list(visible[n - 1].key)) if len(items) > n else None
    return Page[StreamOut](items=items[:n], next_cursor=nxt)
