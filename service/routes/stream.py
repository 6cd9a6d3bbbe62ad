"""WS /v1/stream (live ingest) and WS /v1/stream/subscribe (live per-stride metrics).

Ingest protocol (JSON text frames, packets as binary frames in the `hardware.packets` format):

1. The key comes as `Authorization: Bearer <key>` on the handshake, or as `"key"` in the first
   message (the hello itself, or a `{"key": ...}` message before it).
2. Hello `{athlete_id, session_id, foot, device_id, sampling_rate_hz, profile}` (optional
   `session_date` yyyy-mm-dd; default the day the stream starts, UTC) is answered with
   `{"resume_from": <last stored sequence number or null>, "gaps": [[a, b], ...], "ended": bool}`.
   Admin keys stream for any registered athlete of their team (unknown ids are refused like other
   teams' ids, 4403), athlete keys only
   for themselves, coach keys are read-only (as for uploads).
3. Each packet is appended to the stream's write-ahead log and fsynced, then answered
   `{"ack": seq}`; a skipped range is reported first as `{"gap": [first_missing, last_missing]}`.
   A packet stored before is answered `{"ack": seq, "duplicate": true}`, one inside a reported
   gap `{"late": seq}` (dropped), an invalid one `{"rejected": reason, "seq": ...}`.
4. `{"end": true}` finishes the analysis, stores the results and answers
   `{"ended": true, "last_seq", "samples", "strides"}`.

Errors close the socket after an `{"error": message, "code": code}` frame, with that close code:
4400 bad hello or message (a field out of range, a hello larger than `HELLO_MAX_BYTES` or nested
deeper than JSON can be parsed, or a CRC-valid packet whose sequence number or timestamp is out of
range: `ingest.stream_receiver.StreamLimits`), 4401 missing or invalid key, 4403 key may not stream/see this
athlete, 4409 another device streams this foot (or another connection took the stream over, or
the session already has uploaded recordings or batch results: a session is either streamed or
uploaded), 4410 this stream has ended (its client sent `end`, or it was idle too long): an ended
stream takes no more packets, stream into a new session id; 4408 no hello within
`HELLO_TIMEOUT_S`; 1013 (try again later) the stream is held by another server process on the
same data folder (its device is connected there; released when that connection closes). A live
analysis that fails is reported once per stream as
`{"analysis_error": message, "seq": n}` (the packets stay stored).

Subscribers (`?athlete_id=` optional) get `{"subscribed": {...}}`, then per stride two messages
(a reconnecting subscriber passes `?since=<published_at of its last message>` and first gets what
it missed, up to 10 min back, at least once: `{"subscribed": {..., "replayed": n}}`; `server_time`
in `subscribed` is the resume point of a subscriber that has had no message yet):

- `{"type": "stance", ...}` as soon as the stride's toe-off is known (the swing after it has
  begun, typically 30-100 ms after the toe-off): keys, `ic_t`, `foot_flat_t`, `heel_off_t`,
  `toe_off_t` and the metrics of the stance (pronation, toe-off, strike, push-off, impact, stance
  time; the columns of `schema.STANCE_SCHEMA`), with `valid` false only if something already makes
  the stride invalid. Provisional: the levelling at the next foot-flat can still move the toe-off
  angles by a few tenths of a degree (`analytics.live_analyzer`).
- `{"type": "stride", ...}` once the stride is final (the full `strides` row, which is stored):
  it replaces the stance message with the same `foot` and `ic_t`.

Both carry device_id, `closed_by` ("packet"; "end": the client's end closed it; "idle": the
stream was ended after `stream_idle_timeout_s` without a connection or packet),
`closed_by_seq`, `received_at` (server time, s since the Unix epoch, at which the packet that
completed the row arrived, or the end message) and `published_at`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from strideflow.hardware.errors import StrideflowError
from strideflow.ingest.stream_receiver import StreamError, StreamHello
from strideflow.service.auth import Principal, Role, authenticate, can_see
from strideflow.service.db import Database, SessionRow
from strideflow.service.live import LiveHub, StreamConflict, StreamEnded, StreamHeld
from strideflow.service.queries import hub_of

log = logging.getLogger("strideflow.service")

HELLO_TIMEOUT_S = 10.0
HELLO_MAX_BYTES = 16 * 1024  # a hello is ~200 bytes; anything much larger is not one
BAD_MESSAGE, UNAUTHORIZED, FORBIDDEN, TIMEOUT, CONFLICT, ENDED, INTERNAL, TRY_AGAIN = (
    4400, 4401, 4403, 4408, 4409, 4410, 1011, 1013
)  # fmt: skip


class _Closing(Exception):
    def __init__(self, code: int, message: str):
        self.code = code
        self.message = message


@asynccontextmanager
async def _lifespan(app: FastAPI):
    hub = hub_of(app)
    db: Database = app.state.db
    recovered = await hub.start(team_of=db.athlete_team)
    if recovered:
        log.info("live streams: replayed %d unfinished stream logs", recovered)
    try:
        yield
    finally:
        await hub.stop()


router = APIRouter(tags=["live"], lifespan=_lifespan)


def get_hub(websocket: WebSocket) -> LiveHub:
    return hub_of(websocket.app)


def get_db(websocket: WebSocket) -> Database:
    return websocket.app.state.db


HubDep = Annotated[LiveHub, Depends(get_hub)]
WsDbDep = Annotated[Database, Depends(get_db)]


async def _close(websocket: WebSocket, code: int, message: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json({"error": message, "code": code})
        await websocket.close(code=code, reason=message.encode()[:120].decode(errors="ignore"))


async def _receive_json(websocket: WebSocket) -> dict:
    try:
        text = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT_S)
    except TimeoutError:
        raise _Closing(TIMEOUT, f"no hello within {HELLO_TIMEOUT_S:g} s") from None
    except KeyError:  # a binary frame where JSON was expected
        raise _Closing(BAD_MESSAGE, "expected a JSON text message (hello), got a binary frame") from None
    if len(text) > HELLO_MAX_BYTES:
        raise _Closing(BAD_MESSAGE, f"the hello is larger than {HELLO_MAX_BYTES} bytes")
    try:
        msg = json.loads(text)
    except ValueError:
        raise _Closing(BAD_MESSAGE, "expected a JSON object, got text that is not JSON") from None
    except RecursionError:  # nesting deeper than the parser's recursion limit
        raise _Closing(BAD_MESSAGE, "expected a flat JSON object, got one nested too deeply") from None
    if not isinstance(msg, dict):
        raise _Closing(BAD_MESSAGE, "expected a JSON object")
    return msg


def _bearer(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def _authenticate(websocket: WebSocket, db: Database) -> tuple[Principal, dict | None]:
    """The principal, and the first message if it had to be read for the key."""
    raw = _bearer(websocket)
    first = None
    if raw is None:
        first = await _receive_json(websocket)
        raw = first.pop("key", None)
        if not isinstance(raw, str) or not raw:
            raise _Closing(
                UNAUTHORIZED, "missing API key: send 'Authorization: Bearer <key>' or \"key\" first"
            )
    principal = await run_in_threadpool(authenticate, db, raw)
    if principal is None:
        raise _Closing(UNAUTHORIZED, "invalid API key")
    return principal, (first or None)


def _authorize_stream(principal: Principal, db: Database, athlete_id: str) -> str:
    """The athlete's team if this key may stream for the athlete, who must be registered in its team."""
    if principal.role is Role.coach:
        raise _Closing(
            FORBIDDEN, "coach keys are read-only: streaming needs an admin or the athlete's own key"
        )
    if principal.role is Role.athlete and principal.athlete_id != athlete_id:
        raise _Closing(
            FORBIDDEN, f"athlete keys may stream only their own data, not athlete_id={athlete_id!r}"
        )
    team = db.athlete_team(athlete_id)
    if team != principal.team_id:
        # Unknown and other teams' ids are refused alike, so a stream cannot probe for ids.
        raise _Closing(FORBIDDEN, f"athlete_id={athlete_id!r} is not an athlete of this key's team")
    return team


def _stored_date(db, athlete_id: str, session_id: str) -> dt.date | None:
    """The session's date in the database (a resumed or earlier stream keeps its first date)."""
    with db.session() as s:
        row = s.get(SessionRow, (athlete_id, session_id))
        return None if row is None else row.session_date


def _hello_session_date(msg: dict) -> dt.date:
    """The optional hello field `session_date` (yyyy-mm-dd), else today (UTC); a bad one closes."""
    value = msg.get("session_date")
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise _Closing(BAD_MESSAGE, f"bad hello: session_date: not a date yyyy-mm-dd ({value!r})") from None


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket, hub: HubDep, db: WsDbDep) -> None:
    """Live ingest of one device (see the module docstring for the protocol)."""
    await websocket.accept()
    owner = object()
    live = None
    try:
        principal, first = await _authenticate(websocket, db)
        msg = first if first is not None and set(first) - {"key"} else await _receive_json(websocket)
        msg.pop("key", None)
        try:
            hello = StreamHello.parse(msg)
        except StreamError as exc:
            raise _Closing(BAD_MESSAGE, f"bad hello: {exc}") from None
        team = await run_in_threadpool(_authorize_stream, principal, db, hello.athlete_id)
        if await run_in_threadpool(db.has_recordings, hello.athlete_id, hello.session_id):
            raise _Closing(
                CONFLICT,
                f"session {hello.session_id!r} of athlete {hello.athlete_id!r} has uploaded recordings; "
                "stream into a new session id",
            )
        day = _hello_session_date(msg)  # the hello's session_date, else the stream start (UTC)
        try:
            live = await hub.attach(hello, team, owner)
        except StreamEnded as exc:
            raise _Closing(ENDED, str(exc)) from None
        except StreamHeld as exc:
            raise _Closing(TRY_AGAIN, str(exc)) from None
        except StreamConflict as exc:
            raise _Closing(CONFLICT, str(exc)) from None
        except StrideflowError as exc:
            raise _Closing(BAD_MESSAGE, str(exc)) from None
        # Only once the stream is taken: a refused hello leaves no session row behind.
        await run_in_threadpool(db.ensure_session, hello.athlete_id, hello.session_id, day)
        stored = await run_in_threadpool(_stored_date, db, hello.athlete_id, hello.session_id)
        hub.session_dates[(hello.athlete_id, hello.session_id)] = (stored or day).isoformat()
        await websocket.send_json(
            {
                "resume_from": live.receiver.resume_from,
                "gaps": [list(g) for g in live.receiver.state.gaps],
                "ended": live.ended,
            }
        )

        async def send(message: dict) -> None:
            seq = message.get("ack")
            if len(message) == 1 and type(seq) is int:  # one per packet: the text send_json makes
                await websocket.send_text(f'{{"ack":{seq}}}')
            else:
                await websocket.send_json(message)

        # A reader queues frames as they arrive; the loop below takes every queued packet at once,
        # so a fast client's packets share one fsync (group commit) instead of one each.
        inbox: asyncio.Queue = asyncio.Queue()
        reader = asyncio.ensure_future(_read_frames(websocket, inbox))
        try:
            while True:
                frames = [await inbox.get()]
                while not inbox.empty():
                    frames.append(inbox.get_nowait())
                packets: list[tuple[bytes, float]] = []
                for kind, payload, received_at in frames:
                    if kind == "bytes":
                        packets.append((payload, received_at))
                        continue
                    if packets:
                        await hub.receive(live, packets, owner, send)
                        packets = []
                    if kind == "disconnect":
                        return
                    await _control(websocket, hub, live, owner, payload)
                if packets:
                    await hub.receive(live, packets, owner, send)
        finally:
            reader.cancel()
    except _Closing as exc:
        await _close(websocket, exc.code, exc.message)
    except StreamConflict as exc:
        await _close(websocket, CONFLICT, str(exc))
    except StreamError as exc:  # StreamRefused: a packet out of range
        await _close(websocket, BAD_MESSAGE, str(exc))
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("live stream failed")
        await _close(websocket, INTERNAL, "internal error; the server log has the details")
    finally:
        if live is not None:
            hub.detach(live, owner)


async def _read_frames(websocket: WebSocket, inbox: asyncio.Queue) -> None:
    """Queue ("bytes", data, receive time), ("text", str, time) and finally ("disconnect", ...)."""
    while True:
        message = await websocket.receive()
        now = time.time()
        if message["type"] == "websocket.disconnect":
            inbox.put_nowait(("disconnect", None, now))
            return
        if message.get("bytes") is not None:
            inbox.put_nowait(("bytes", message["bytes"], now))
        else:
            inbox.put_nowait(("text", message.get("text") or "", now))


async def _control(websocket: WebSocket, hub: LiveHub, live, owner: object, text: str) -> None:
    """A JSON text frame after the hello: only {"end": true} is one."""
    try:
        control = json.loads(text)
    except ValueError:
        control = None
    if isinstance(control, dict) and control.get("end") is True:
        await websocket.send_json(await hub.end(live, owner))
    else:
        await websocket.send_json({"error": 'expected a binary packet or {"end": true}', "code": BAD_MESSAGE})


@router.websocket("/v1/stream/subscribe")
async def subscribe(
    websocket: WebSocket,
    hub: HubDep,
    db: WsDbDep,
    athlete_id: Annotated[
        str | None, Query(max_length=128, description="Only this athlete's strides.")
    ] = None,
    since: Annotated[
        float | None,
        Query(
            ge=0,
            allow_inf_nan=False,
            description="Resume: first replay the messages published at or after this server time "
            "(s since the Unix epoch; the `published_at` of the last message received), up to 10 min back.",
        ),
    ] = None,
) -> None:
    """Per-stride metrics as they are computed: the key's team (admin/coach) or the athlete itself."""
    await websocket.accept()
    sub = None
    closed: asyncio.Future | None = None
    try:
        principal, _ = await _authenticate(websocket, db)
        if principal.role is Role.athlete:
            if athlete_id not in (None, principal.athlete_id):
                raise _Closing(
                    FORBIDDEN, f"athlete keys see only their own strides, not athlete_id={athlete_id!r}"
                )
            athlete_id = principal.athlete_id
        elif athlete_id is not None:
            team = await run_in_threadpool(db.athlete_team, athlete_id)
            if not can_see(principal, team, athlete_id):
                raise _Closing(FORBIDDEN, f"athlete_id={athlete_id!r} is not an athlete of this key's team")
        sub = await hub.subscribe(principal.team_id, athlete_id, since)
        subscribed = {"team_id": principal.team_id, "athlete_id": athlete_id, "server_time": time.time()}
        if since is not None:
            subscribed["replayed"] = sub.replayed
        await websocket.send_json({"subscribed": subscribed})
        closed = asyncio.ensure_future(websocket.receive())
        while True:
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed in done:
                getter.cancel()
                message = closed.result()
                if message["type"] == "websocket.disconnect":
                    break
                closed = asyncio.ensure_future(websocket.receive())  # ignore what a subscriber sends
                if getter.cancelled() or not getter.done():
                    continue
            await websocket.send_json(getter.result())
            # what queued meanwhile goes out now, without a getter task and a wait per message
            while not sub.queue.empty():
                await websocket.send_json(sub.queue.get_nowait())
    except _Closing as exc:
        await _close(websocket, exc.code, exc.message)
    except WebSocketDisconnect:
        pass
    finally:
        if closed is not None and not closed.done():
            closed.cancel()
        if sub is not None:
            hub.unsubscribe(sub)
