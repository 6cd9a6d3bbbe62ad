"""The live streams of every server process on a data folder, for `GET /v1/streams`.

A stream lives in the memory of the process its device is connected to (`service.live`). With a
shared broker (PostgreSQL, `serve --workers N` or several instances), each process writes a row
per stream it holds to the `live_streams` table every `WRITE_INTERVAL_S` and removes its rows
when it stops; the route lists this process's streams from memory (fresh) and the others' from
the table (at most that interval old), ignoring rows of processes that are no longer alive
(`service.instances`: the kernel dropped their lock) and deleting them. With the embedded store
there is one process, and the route reads memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from strideflow.service.db import Database, LiveStreamRow
from strideflow.service.instances import Instance

log = logging.getLogger("strideflow.service")

WRITE_INTERVAL_S = 1.0

FIELDS = (
    "athlete_id",
    "session_id",
    "foot",
    "device_id",
    "team_id",
    "sampling_rate_hz",
    "connected",
    "ended",
    "last_seq",
    "samples",
    "strides",
    "last_packet_at",
)


@dataclass(frozen=True)
class StreamState:
    """What the listing shows of one stream (StreamOut's fields but `idle_s`, plus its team)."""

    athlete_id: str
    session_id: str
    foot: str
    device_id: str
    team_id: str
    sampling_rate_hz: float
    connected: bool
    ended: bool
    last_seq: int | None
    samples: int
    strides: int
    last_packet_at: float  # server time, s since the epoch

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.athlete_id, self.session_id, self.foot, self.device_id)


def local_states(streams) -> list[StreamState]:
    """The states of a hub's streams (`LiveHub.streams` values), read from memory."""
    return [
        StreamState(
            athlete_id=s.hello.athlete_id,
            session_id=s.hello.session_id,
            foot=s.hello.foot,
            device_id=s.hello.device_id,
            team_id=s.team_id,
            sampling_rate_hz=float(s.hello.sampling_rate_hz),
            connected=s.owner is not None,
            ended=bool(s.ended),
            last_seq=s.receiver.resume_from,
            samples=int(s.receiver.samples_received_),
            strides=int(s.strides().height),
            last_packet_at=float(s.last_packet_at),
        )
        for s in streams
    ]


def write(db: Database, instance_id: str, states: list[StreamState]) -> None:
    """Replace this process's rows with `states` (one transaction)."""
    now = time.time()
    with db.engine.begin() as conn:
        conn.execute(delete(LiveStreamRow).where(LiveStreamRow.instance_id == instance_id))
        if states:
            rows = [{f: getattr(s, f) for f in FIELDS} | {"instance_id": instance_id, "written_at": now}
                    for s in states]  # fmt: skip
            conn.execute(insert(LiveStreamRow), rows)


def remote_states(db: Database, instance: Instance, team_id: str) -> list[StreamState]:
    """The streams of the team that other live server processes hold, one per stream (a stream
    just handed from one process to another may have a row from each: the connected one, else
    the newer, is kept). Rows of processes no longer alive are deleted."""
    stmt = select(LiveStreamRow).where(
        LiveStreamRow.team_id == team_id, LiveStreamRow.instance_id != instance.id
    )
    with db.session() as s:
        rows = list(s.scalars(stmt))
    alive: dict[str, bool] = {}
    dead = set()
    best: dict[tuple, tuple] = {}
    for r in rows:
        if r.instance_id not in alive:
            alive[r.instance_id] = instance.is_alive(r.instance_id)
        if not alive[r.instance_id]:
            dead.add(r.instance_id)
            continue
        state = StreamState(**{f: getattr(r, f) for f in FIELDS})
        rank = (state.connected, r.written_at)
        if state.key not in best or rank > best[state.key][0]:
            best[state.key] = (rank, state)
    if dead:
        with db.engine.begin() as conn:
            conn.execute(delete(LiveStreamRow).where(LiveStreamRow.instance_id.in_(dead)))
    return [state for _, state in best.values()]


async def keep_written(db: Database, instance_id: str, streams, interval_s: float = WRITE_INTERVAL_S) -> None:
    """Write this process's streams (`streams()`: the hub's current stream objects) every
    `interval_s` until cancelled, then remove its rows. A failed write is logged and retried."""
    last: list[StreamState] | None = None
    try:
        while True:
            states = local_states(streams())
            if states != last:
                try:
                    await asyncio.to_thread(write, db, instance_id, states)
                    last = states
                except Exception:
                    log.exception("writing the live stream list failed; retrying")
            await asyncio.sleep(interval_s)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(write, db, instance_id, [])
