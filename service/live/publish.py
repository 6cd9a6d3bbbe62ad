"""Subscribers of live rows, and the broker that carries the rows to the other server processes.

`Publisher.publish` offers a stream's messages to this process's subscribers at once (no round
trip) and hands them to the broker, which keeps them for `replay_s` (subscribers that resume with
`since`) and delivers them to every other server process on the same store:

- `InMemoryBroker` (the embedded SQLite default): a bounded deque; one process only
  (`shared` False), nothing to install.
- `PostgresBroker` (the store is PostgreSQL): each message is a row of the table `live_messages`
  (the replay buffer, pruned after `replay_s`) and a `NOTIFY strideflow_live` in the same
  transaction (psycopg 3); every process LISTENs and offers what other processes published to its
  own subscribers. A notification carries the message itself when it fits PostgreSQL's 8000-byte
  payload limit, else its row id, which the listener reads. A listener that lost its connection
  reads the rows it missed (by id) when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from strideflow.analytics.live_mountings import REASON_REMOUNT, mounting_rule
from strideflow.hardware.schema import (
    FOOT,
    IC_T,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    REASON,
    REMOUNT,
    STEADY,
    VALID,
)

log = logging.getLogger("strideflow.service")

REPLAY_MAX_MESSAGES = 200_000  # bound of the replay buffer whatever replay_s (~100 MB at most)
CHANNEL = "strideflow_live"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL refuses payloads of 8000 bytes or more
# (published_at, team_id, athlete_id, message)
Entry = tuple[float, str, str, dict]


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def stream_mountings(stream) -> tuple[tuple, str, str]:
    """(the stream's mountings so far, `analytics.live_mountings.LivePiece`s, empty for a frame that
    was given; its foot; its session): what `stride_messages` labels the rows with."""
    watch = getattr(stream.analyzer, "mountings_", None)
    return (tuple(watch.pieces_) if watch is not None else (), stream.hello.foot, stream.hello.session_id)


def _mounting_label(pieces: tuple, foot: str, session_id: str) -> Callable[[dict], dict]:
    """One row (a dict) with the mounting columns the stream's store gives it (issue 15, item 3):
    `analytics.live_mountings.mounting_rule`, the rule `label_strides` applies to the stored rows,
    called per row (microseconds; the Polars table costs 0.4-1 ms per call): a valid row measured
    in the old frame after a remount becomes invalid, reason "remount"."""
    rule = mounting_rule(pieces, foot, session_id)

    def label(row: dict) -> dict:
        uncertainty, mounting_id, remount, stale = rule(row.get(FOOT), row.get(IC_T))
        out = row | {MOUNTING_UNCERTAINTY_DEG: uncertainty, MOUNTING_ID: mounting_id, REMOUNT: remount}
        if stale and row.get(VALID):
            out |= {VALID: False, REASON: REASON_REMOUNT} | ({STEADY: False} if STEADY in row else {})
        return out

    return label


def stride_messages(
    strides: pl.DataFrame, kind: str = "stride", mountings: tuple | None = None, **extra
) -> list[dict]:
    """Subscriber messages of rows: {"type": kind, keys, events, metrics, valid, reason, **extra}.

    kind "stride": a final `strides` row; "stance": a provisional row at the toe-off
    (`analytics.live_analyzer`, STANCE_SCHEMA), replaced by the "stride" with the same foot and `ic_t`;
    `mountings`: `stream_mountings` of the stream, whose mounting columns the rows then carry as
    stored (`_mounting_label`; a row already pushed is not sent again when a later remount relabels it).
    """
    label = _mounting_label(*mountings) if mountings is not None else None
    return [
        {"type": kind, **{k: _json_value(v) for k, v in (label(row) if label else row).items()}, **extra}
        for row in strides.to_dicts()
    ]


@dataclass(eq=False)
class Subscriber:
    """A subscriber's view (its team, and one athlete or all of the team) and its outgoing queue.

    While `held` is a list (the replay of a resuming subscriber is being read), live messages
    wait in it, so that they follow the replayed ones.
    """

    team_id: str
    athlete_id: str | None = None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    dropped: int = 0
    replayed: int = 0
    held: list | None = None

    def wants(self, team_id: str, athlete_id: str) -> bool:
        return team_id == self.team_id and self.athlete_id in (None, athlete_id)

    def offer(self, message: dict) -> None:
        """Queue a message; a subscriber that stopped reading loses its oldest messages, not the server."""
        if self.held is not None:
            self.held.append(message)
        else:
            self.put(message)

    def put(self, message: dict) -> None:
        """Queue a message now (dropping the oldest when full)."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)

    def release(self) -> None:
        """Queue the live messages held during the replay."""
        held, self.held = self.held or [], None
        for message in held:
            self.offer(message)


Deliver = Callable[[list[Entry]], None]


class Broker(Protocol):
    """Keeps published messages for `replay_s` and carries them to the other server processes."""

    shared: bool  # whether other processes receive what this one publishes

    async def start(self, deliver: Deliver) -> None:
        """Start; `deliver` gets the entries other processes publish, in their order."""

    async def stop(self) -> None: ...

    def publish(self, entries: list[Entry]) -> None:
        """Keep and forward entries (non-blocking; this process's subscribers already have them)."""

    async def replay(self, since: float, team_id: str, athlete_id: str | None) -> list[dict]:
        """Messages of the team (and athlete) published at or after `since`, at most `replay_s` ago."""


class InMemoryBroker:
    """The replay buffer in this process's memory; no other process (the embedded default)."""

    shared = False

    def __init__(self, replay_s: float = 600.0):
        self.replay_s = replay_s
        self._recent: deque[Entry] = deque(maxlen=REPLAY_MAX_MESSAGES)

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        return None

    def publish(self, entries: list[Entry]) -> None:
        if not entries:
            return
        oldest = entries[-1][0] - self.replay_s
        while self._recent and self._recent[0][0] < oldest:
            self._recent.popleft()
        self._recent.extend(entries)

    async def replay(self, since: float, team_id: str, athlete_id: str | None) -> list[dict]:
        return [
            m
            for t, team, athlete, m in self._recent
            if t >= since and team == team_id and athlete_id in (None, athlete)
        ]


def psycopg_dsn(url: str) -> str:
    """A libpq connection string of a SQLAlchemy PostgreSQL URL (`postgresql+psycopg://...`)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresBroker:
    """Replay buffer in the table `live_messages`, delivery by LISTEN/NOTIFY (see the module docstring).

    Parameters
    ----------
    url
        The store's SQLAlchemy URL (`postgresql+psycopg://...`).
    source
        This process's id (`service.instances`), so it skips its own notifications.
    replay_s
        How long messages are kept for subscribers that resume, s.
    """

    shared = True

    def __init__(self, url: str, source: str, replay_s: float = 600.0, prune_interval_s: float = 30.0):
        self.dsn = psycopg_dsn(url)
        self.source = source
        self.replay_s = replay_s
        self.prune_interval_s = prune_interval_s
        self._outbox: asyncio.Queue[list[Entry]] | None = None
        self._tasks: list[asyncio.Task] = []
        self._writer = None
        self._last_id = 0  # newest row id this process has delivered or written
        self._deliver: Deliver | None = None
        self.delivered_ = 0

    async def start(self, deliver: Deliver) -> None:
        import psycopg

        self._deliver = deliver
        self._outbox = asyncio.Queue()
        self._writer = await psycopg.AsyncConnection.connect(self.dsn)
        async with self._writer.transaction():
            cur = await self._writer.execute("SELECT coalesce(max(id), 0) FROM live_messages")
            self._last_id = (await cur.fetchone())[0]
        listening = asyncio.get_running_loop().create_future()
        self._tasks = [
            asyncio.create_task(self._write_loop()),
            asyncio.create_task(self._listen_loop(listening)),
        ]
        await listening  # subscribed before the first message can be published

    async def stop(self) -> None:
        if self._outbox is not None:
            while not self._outbox.empty():  # write what is queued
                with contextlib.suppress(Exception):
                    await self._write(self._outbox.get_nowait())
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._writer is not None:
            await self._writer.close()

    def publish(self, entries: list[Entry]) -> None:
        if entries and self._outbox is not None:
            self._outbox.put_nowait(entries)

    async def replay(self, since: float, team_id: str, athlete_id: str | None) -> list[dict]:
        import psycopg

        athlete = "" if athlete_id is None else " AND athlete_id = %s"
        query = (
            "SELECT message FROM live_messages WHERE published_at >= %s AND published_at >= %s "
            f"AND team_id = %s{athlete} ORDER BY id LIMIT %s"
        )
        args = [since, time.time() - self.replay_s, team_id]
        if athlete_id is not None:
            args.append(athlete_id)
        args.append(REPLAY_MAX_MESSAGES)
        async with await psycopg.AsyncConnection.connect(self.dsn) as conn:
            cur = await conn.execute(query, args)
            return [json.loads(row[0]) for row in await cur.fetchall()]

    # --- writing ------------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        last_prune = 0.0
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                await self._write([e for entries in batch for e in entries])
                if time.time() - last_prune > self.prune_interval_s:
                    last_prune = time.time()
                    async with self._writer.transaction():
                        await self._writer.execute(
                            "DELETE FROM live_messages WHERE published_at < %s", [last_prune - self.replay_s]
                        )
            except Exception:  # the local subscribers have them; the others miss them, the server goes on
                log.exception("live broker: publishing %d messages to PostgreSQL failed", len(batch))
                await self._reconnect_writer()

    async def _reconnect_writer(self) -> None:
        import psycopg

        with contextlib.suppress(Exception):
            await self._writer.close()
        try:
            self._writer = await psycopg.AsyncConnection.connect(self.dsn)
        except Exception:
            log.exception("live broker: reconnecting to PostgreSQL failed")
            await asyncio.sleep(1.0)

    async def _write(self, entries: list[Entry]) -> None:
        """One transaction: the rows and their notifications (sent at commit, in order)."""
        async with self._writer.transaction():
            async with self._writer.cursor() as cur:
                for published_at, team, athlete, message in entries:
                    text = json.dumps(message)
                    await cur.execute(
                        "INSERT INTO live_messages (published_at, team_id, athlete_id, source, message) "
                        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        [published_at, team, athlete, self.source, text],
                    )
                    row_id = (await cur.fetchone())[0]
                    head = {"src": self.source, "id": row_id, "t": published_at}
                    head.update(team=team, athlete=athlete)
                    payload = json.dumps({**head, "m": message})
                    if len(payload.encode()) > NOTIFY_MAX_BYTES:
                        payload = json.dumps(head)
                    await cur.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])

    # --- listening ----------------------------------------------------------------------------
    async def _listen_loop(self, listening: asyncio.Future) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if not listening.done():
                        listening.set_result(True)
                    else:  # back after a lost connection: read what was missed
                        await self._catch_up(conn)
                    async for note in conn.notifies():
                        await self._on_notify(conn, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not listening.done():
                    listening.set_exception(exc)
                    return
                log.exception("live broker: the PostgreSQL listener lost its connection; reconnecting")
                await asyncio.sleep(1.0)

    async def _on_notify(self, conn, payload: str) -> None:
        head = json.loads(payload)
        self._last_id = max(self._last_id, head["id"])
        if head["src"] == self.source:
            return
        message = head.get("m")
        if message is None:  # too large for a notification: read the row
            cur = await conn.execute("SELECT message FROM live_messages WHERE id = %s", [head["id"]])
            row = await cur.fetchone()
            if row is None:
                return
            message = json.loads(row[0])
        self.delivered_ += 1
        self._deliver([(head["t"], head["team"], head["athlete"], message)])

    async def _catch_up(self, conn) -> None:
        cur = await conn.execute(
            "SELECT id, published_at, team_id, athlete_id, message FROM live_messages WHERE id > %s "
            "AND source <> %s ORDER BY id",
            [self._last_id, self.source],
        )
        rows = await cur.fetchall()
        if rows:
            self._last_id = rows[-1][0]
            self._deliver([(t, team, athlete, json.loads(m)) for _, t, team, athlete, m in rows])


def broker_for(database_url: str, source: str, replay_s: float = 600.0) -> Broker:
    """The broker of live rows for the service's store: PostgreSQL LISTEN/NOTIFY when the store is
    PostgreSQL (every server process on it shares the rows), else in this process's memory.
    `source`: this server process's id (`service.instances.Instance.id`)."""
    if database_url.startswith("postgresql"):
        return PostgresBroker(database_url, source, replay_s=replay_s)
    return InMemoryBroker(replay_s=replay_s)


class Publisher:
    """This process's subscribers, and the broker that connects it to the other processes."""

    def __init__(self, broker: Broker):
        self.broker = broker
        self.subscribers: set[Subscriber] = set()
        self.published_ = 0

    async def start(self) -> None:
        await self.broker.start(self._deliver)

    async def stop(self) -> None:
        await self.broker.stop()

    def publish(self, team_id: str, athlete_id: str, messages: list[dict], published_at: float) -> None:
        """Offer messages to the matching subscribers here and hand them to the broker."""
        self.published_ += len(messages)
        self.broker.publish([(published_at, team_id, athlete_id, m) for m in messages])
        self._offer(team_id, athlete_id, messages)

    def _offer(self, team_id: str, athlete_id: str, messages: list[dict]) -> None:
        for sub in self.subscribers:
            if sub.wants(team_id, athlete_id):
                for m in messages:
                    sub.offer(m)

    def _deliver(self, entries: list[Entry]) -> None:
        for _, team, athlete, message in entries:
            self._offer(team, athlete, [message])

    async def subscribe(
        self, team_id: str, athlete_id: str | None = None, since: float | None = None
    ) -> Subscriber:
        """A new subscriber; with `since` its queue starts with what was published at or after it."""
        sub = Subscriber(team_id, athlete_id, held=[] if since is not None else None)
        self.subscribers.add(sub)
        if since is not None:
            try:
                for message in await self.broker.replay(since, team_id, athlete_id):
                    sub.put(message)
                    sub.replayed += 1
            finally:
                sub.release()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
