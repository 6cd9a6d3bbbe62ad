"""Live device streams the key may see: which pods are streaming now, how far, how fresh."""

from __future__ import annotations

import datetime as dt
import time

from fastapi import APIRouter, Request

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

router = APIRouter(prefix="/v1", tags=["live"])


@router.get("/streams", response_model=Page[StreamOut], responses=READ_ERRORS)
async def list_streams(
    request: Request,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> Page[StreamOut]:
    """Device streams held by this server (open, or ended and not yet stored) of the key's team (an
    athlete key: its own), ordered by athlete, session, foot and device."""
    n = page_size(settings, limit)
    after = decode_cursor("streams", cursor, (str, str, str, str))
    now = time.time()
    visible = sorted(
        (s for s in hub_of(request.app).streams.values() if s.team_id == principal.team_id),
        key=lambda s: s.key,
    )
    if principal.role is Role.athlete:
        visible = [s for s in visible if s.hello.athlete_id == principal.athlete_id]
    if after is not None:
        visible = [s for s in visible if s.key > tuple(after)]
    items = [
        StreamOut(
            athlete_id=s.hello.athlete_id,
            session_id=s.hello.session_id,
            foot=s.hello.foot,
            device_id=s.hello.device_id,
            sampling_rate_hz=s.hello.sampling_rate_hz,
            connected=s.owner is not None,
            ended=s.ended,
            last_seq=s.receiver.resume_from,
            samples=s.receiver.samples_received_,
            strides=s.strides().height,
            last_packet_at=dt.datetime.fromtimestamp(s.last_packet_at, dt.UTC),
            idle_s=max(now - s.last_packet_at, 0.0),
        )
        for s in visible[: n + 1]
    ]
    nxt = encode_cursor("streams", list(visible[n - 1].key)) if len(items) > n else None
    return Page[StreamOut](items=items[:n], next_cursor=nxt)
