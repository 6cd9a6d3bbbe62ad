"""Live streams inside the server: receivers and live analysis per device, stored strides, subscribers.

One `LiveHub` per app (`app.state.live`). For each device stream (athlete, session, foot,
device) it keeps a `StreamReceiver` (write-ahead log, sequence state) and a live stride analyzer
(`analytics.live_analyzer.LiveStrideAnalyzer` by default). A packet goes: log append -> fsync (in a
worker thread) -> ack -> analysis; each stride the analyzer completes is published at once to the
matching subscribers and the session is marked for storing.

Storing: every `store_interval_s` (5 s) the sessions with new strides are written with
`analytics.sessions_store.write_session` (STRIDES with every stride of the session so far,
SESSIONS and FLAGS from them, CURVES: each analyzer's `curves_`, the mean and SD curves of its
valid strides, resampled by batch's code), off the event loop; the end of a stream stores at once.
Stored results may lag the stream by that interval (a store rewrites the session's partition,
~15 ms for 100 strides, so it is not done per stride); acknowledged samples are durable in the
log at once.
Rows of feet that have no stream in memory (e.g. the other foot's stream ended earlier) are kept
from the stored partition, so storing never loses the other foot.

Restart: a stream not in memory is rebuilt from its log when its device reconnects, and at
startup `recover()` replays every log without a CLOSE record, so strides of streams whose device
never returns are stored too. Replayed strides are stored, not pushed again to subscribers.

Subscribers that reconnect pass `since` (the `published_at` of the last message they got) and
first receive what was published at or after it, up to `replay_s` (10 min) back: at least once,
so a client drops what it already has by `type`, `foot` and `ic_t`.

Idle streams: a stream with no connection and no packet for `idle_timeout_s` (the setting
`stream_idle_timeout_s`, 30 min by default) is ended as if its client had sent `{"end": true}`:
the analysis is finished (the strides its end closes are published with `closed_by` "idle"),
the results stored and a CLOSE record written, so its log is not replayed at every later start.
A log's last packet time is its file's modification time, so a log left unfinished by a server
that was down longer than the timeout is ended at the next start. A device that comes back
after that (or after its own `end`) is refused at the hello (`StreamEnded`, close code 4410) and
starts a new session: an ended stream takes no more packets, so none can be acknowledged unstored.

Refused packets: a packet whose sequence number or timestamp is out of range
(`ingest.stream_receiver.StreamLimits`) ends the connection (`StreamRefused`, 4400) after the packets
before it are stored and acknowledged. Analysis failures: the first exception the live analysis
raises on a stream is logged with its traceback and sent to the client once as
`{"analysis_error": message, "seq": n}`; the packets stay stored, later failures are counted
(`LiveStream.analysis_failures`), not logged again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from strideflow.analytics.batch import SOURCE, STREAM_SOURCE, UPLOAD_SOURCE, read_marker, write_marker
from strideflow.analytics.curves import STRIDE_COUNT
from strideflow.analytics.live_analyzer import LiveOutput, StreamAnalyzer
from strideflow.analytics.partitions import CURVES, STRIDES, has_partition, read_partition
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.sessions_store import write_session
from strideflow.hardware.profiles import PROFILES
from strideflow.hardware.schema import FOOT, STRIDES_SCHEMA
from strideflow.ingest.stream_receiver import (
    Outcome,
    SampleBlock,
    StreamError,
    StreamHello,
    StreamReceiver,
    packet_block,
)
from strideflow.ingest.wal import list_wals, read_wal, session_wal_devices, wal_path

log = logging.getLogger("strideflow.service")

WAL_DIRNAME = "stream-wal"  # under ServiceSettings.data_dir
REPLAY_MAX_MESSAGES = 200_000  # bound of the replay buffer whatever replay_s (~100 MB at most)
StreamKey = tuple[str, str, str, str]  # athlete_id, session_id, foot, device_id
Send = Callable[[dict], Awaitable[None]]
AnalyzerFactory = Callable[[StreamHello], StreamAnalyzer]


def default_analyzer(hello: StreamHello, analysis: AnalysisSettings | None = None) -> StreamAnalyzer:
    """The streaming stride analyzer of `analytics.live_analyzer` for one foot's stream, with the
    service's `analysis` settings (default AnalysisSettings()).

    A profile with a fixed mounting (`DeviceProfile.mounting_wxyz`, a pod in a known holder)
    gives it to the analyzer; otherwise the analyzer estimates it from its warm-up.
    """
    from strideflow.analytics.live_analyzer import LiveSettings, LiveStrideAnalyzer

    analysis = analysis if analysis is not None else AnalysisSettings()
    mounting = PROFILES[hello.profile].mounting_wxyz
    settings = LiveSettings(analysis=analysis, mounting_wxyz=mounting)
    return LiveStrideAnalyzer(
        hello.athlete_id, hello.session_id, hello.foot, hello.sampling_rate_hz, settings
    )


class StreamConflict(StreamError):
    """Another device already streams this athlete-session-foot, or the session's results come
    from elsewhere (an upload or a batch run)."""


class StreamEnded(StreamConflict):
    """The stream (athlete, session, foot, device) has ended: it takes no more packets."""


class StreamRefused(StreamError):
    """A packet with out-of-range fields: the connection is closed with the reason."""


def has_live_logs(wal_root: str | Path, athlete_id: str, session_id: str) -> bool:
    """Whether any device has streamed into this athlete-session (its write-ahead logs exist).

    A session's results come from one source: live streams, or uploads and batch runs, which
    replace the whole session's partitions. The stream and upload routes refuse to mix them.
    """
    return bool(session_wal_devices(wal_root, athlete_id, session_id))


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def stride_messages(strides: pl.DataFrame, kind: str = "stride", **extra) -> list[dict]:
    """Subscriber messages of rows: {"type": kind, keys, events, metrics, valid, reason, **extra}.

    kind "stride": a final `strides` row; "stance": a provisional row at the toe-off
    (`analytics.live_analyzer`, STANCE_SCHEMA), replaced by the "stride" with the same foot and `ic_t`.
    """
    return [
        {"type": kind, **{k: _json_value(v) for k, v in row.items()}, **extra} for row in strides.to_dicts()
    ]


@dataclass(eq=False)
class Subscriber:
    """A subscriber's view (its team, and one athlete or all of the team) and its outgoing queue."""

    team_id: str
    athlete_id: str | None = None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    dropped: int = 0
    replayed: int = 0

    def wants(self, team_id: str, athlete_id: str) -> bool:
        return team_id == self.team_id and self.athlete_id in (None, athlete_id)

    def offer(self, message: dict) -> None:
        """Queue a message; a subscriber that stopped reading loses its oldest messages, not the server."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


@dataclass(eq=False)
class LiveStream:
    """One device stream in memory."""

    hello: StreamHello
    team_id: str
    receiver: StreamReceiver
    analyzer: StreamAnalyzer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    analysis_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    owner: object | None = None
    ended: bool = False
    last_packet_at: float = field(default_factory=time.time)  # server time of the newest packet
    analysis_failures: int = 0  # packets the live analysis raised on (the first one is reported)

    @property
    def key(self) -> StreamKey:
        h = self.hello
        return (h.athlete_id, h.session_id, h.foot, h.device_id)

    def strides(self) -> pl.DataFrame:
        return self.analyzer.strides_


class LiveHub:
    """Live streams, their analysis, result storage and subscribers of one server process."""

    def __init__(
        self,
        wal_root: str | Path,
        results_dir: str | Path,
        analyzer_factory: AnalyzerFactory | None = None,
        analysis_settings: AnalysisSettings = AnalysisSettings(),
        store_interval_s: float = 5.0,
        analysis_threads: int = 2,
        idle_timeout_s: float | None = 1800.0,
        replay_s: float = 600.0,
    ):
        self.wal_root = Path(wal_root)
        self.results_dir = Path(results_dir)
        # the default analyzer, with this hub's analysis settings
        self.analyzer_factory = analyzer_factory or functools.partial(
            default_analyzer, analysis=analysis_settings
        )
        self.analysis_settings = analysis_settings
        self.store_interval_s = store_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.replay_s = replay_s
        # (athlete, session) -> yyyy-mm-dd stored with the session's tables (set by the stream route)
        self.session_dates: dict[tuple[str, str], str] = {}
        # (published_at, team, athlete, message) of the last replay_s, for subscribers that resume
        self._recent: deque[tuple[float, str, str, dict]] = deque(maxlen=REPLAY_MAX_MESSAGES)
        self.streams: dict[StreamKey, LiveStream] = {}
        self.subscribers: set[Subscriber] = set()
        self._dirty: set[tuple[str, str]] = set()
        self._attach_lock = asyncio.Lock()
        self._store_lock = asyncio.Lock()
        self._flusher: asyncio.Task | None = None
        self.published_ = 0
        # Analyses get their own threads (one per core here), so fsyncs in the default pool never
        # wait behind them, and a burst of analyses queues first come, first served.
        self._analysis_pool = ThreadPoolExecutor(
            max_workers=analysis_threads, thread_name_prefix="live-analysis"
        )

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self, team_of: Callable[[str], str | None] | None = None) -> int:
        """Replay unclosed logs (returns how many) and start the periodic store."""
        recovered = await self.recover(team_of)
        await self.expire_idle()
        await self.flush()
        self._flusher = asyncio.create_task(self._flush_loop())
        return recovered

    async def stop(self) -> None:
        """Store what is pending and close every log."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        for stream in self.streams.values():
            stream.receiver.close()
        self.streams.clear()
        self._analysis_pool.shutdown(wait=False)

    async def recover(self, team_of: Callable[[str], str | None] | None = None) -> int:
        """Rebuild every stream whose log has no CLOSE record (a server killed mid-stream)."""
        count = 0
        for path in list_wals(self.wal_root):
            try:
                meta, _, closed = await asyncio.to_thread(read_wal, path)
                if closed:
                    continue
                hello = StreamHello.parse(meta)
                team = (team_of(hello.athlete_id) if team_of else None) or ""
                stream = await self.attach(hello, team, owner=None)
                stream.last_packet_at = path.stat().st_mtime
                count += 1
            except Exception:  # one unreadable log must not stop the server from starting
                log.exception("could not recover live stream log %s", path)
        return count

    # --- streams ----------------------------------------------------------------------------
    async def attach(self, hello: StreamHello, team_id: str, owner: object | None) -> LiveStream:
        """The stream of `hello`, rebuilt from its log if not in memory; `owner` takes it over."""
        key = (hello.athlete_id, hello.session_id, hello.foot, hello.device_id)
        async with self._attach_lock:
            stream = self.streams.get(key)
            if owner is not None and (
                (stream is not None and stream.ended)
                or (stream is None and await asyncio.to_thread(self._log_closed, hello))
            ):
                raise StreamEnded(
                    f"athlete {hello.athlete_id}, session {hello.session_id}, {hello.foot} foot "
                    f"(device {hello.device_id}) has ended; its results are final. Stream into a new "
                    "session id",
                    column="session_id",
                )
            if stream is None:
                self._check_single_device(hello)
                self._check_results_source(hello)
                stream = await asyncio.to_thread(self._rebuild, hello, team_id)
                self.streams[key] = stream
                self._dirty.add(key[:2])
            if team_id:
                stream.team_id = team_id
            stream.owner = owner
            return stream

    def _log_closed(self, hello: StreamHello) -> bool:
        """Whether the stream's log exists and holds a CLOSE record."""
        path = wal_path(self.wal_root, hello.athlete_id, hello.session_id, hello.foot, hello.device_id)
        return path.is_file() and read_wal(path)[2]

    def _check_single_device(self, hello: StreamHello) -> None:
        others = {k[3] for k in self.streams if k[:3] == (hello.athlete_id, hello.session_id, hello.foot)}
        others |= session_wal_devices(self.wal_root, hello.athlete_id, hello.session_id, hello.foot)
        others.discard(hello.device_id)
        if others:
            raise StreamConflict(
                f"athlete {hello.athlete_id}, session {hello.session_id}, {hello.foot} foot is already "
                f"streamed by device {sorted(others)[0]!r}; one device per foot and session",
                column="device_id",
            )

    def _check_results_source(self, hello: StreamHello) -> None:
        """A first stream into a session whose results were stored by an upload job or a batch
        run is refused: storing the stream would replace them (and the next job its strides)."""
        if has_live_logs(self.wal_root, hello.athlete_id, hello.session_id):
            return
        if has_partition(self.results_dir, STRIDES, hello.athlete_id, hello.session_id):
            marker = read_marker(self.results_dir, hello.athlete_id, hello.session_id) or {}
            source = "an upload" if marker.get(SOURCE) == UPLOAD_SOURCE else "a team batch run"
            raise StreamConflict(
                f"athlete {hello.athlete_id}, session {hello.session_id} already has results from "
                f"{source}; a session has one source of results: stream into a new session id",
                column="session_id",
            )

    def _rebuild(self, hello: StreamHello, team_id: str) -> LiveStream:
        receiver = StreamReceiver.open(self.wal_root, hello)
        try:
            analyzer = self.analyzer_factory(hello)
            failures = 0
            for packet in receiver.replayed_:
                try:
                    analyzer.push(packet_block(packet, hello.sampling_rate_hz))
                except Exception:  # as live: a packet the analysis fails on is kept, not fatal
                    failures += 1
                    if failures == 1:  # once per stream, not per packet
                        log.exception("live analysis failed replaying %s, packet %s", hello, packet.sequence)
            if failures > 1:
                log.error("live analysis failed on %d replayed packets of %s", failures, hello)
            if receiver.closed:
                analyzer.finish()
        except BaseException:
            receiver.close()
            raise
        receiver.replayed_ = []  # the analysis holds what it needs; do not keep the raw packets
        return LiveStream(hello, team_id, receiver, analyzer, ended=receiver.closed)

    def detach(self, stream: LiveStream, owner: object) -> None:
        """The connection `owner` is gone; an ended stream is dropped from memory."""
        if stream.owner is owner:
            stream.owner = None
            if stream.ended:
                self._evict(stream)

    def _drop(self, stream: LiveStream) -> None:
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
        stream.owner = None
        stream.ended = True  # any later packet on the old connection is refused
        stream.receiver.close()

    def _evict(self, stream: LiveStream) -> None:
        if self.streams.get(stream.key) is stream and stream.key[:2] not in self._dirty:
            del self.streams[stream.key]
            stream.receiver.close()

    async def receive(
        self, stream: LiveStream, batch: list[tuple[bytes, float]], owner: object, send: Send
    ) -> None:
        """Handle binary messages (bytes, server receive time) of `owner`'s connection, in order.

        New packets are appended, made durable with one fsync for the batch (group commit), then
        acknowledged; then analysed and their strides published.
        """
        async with stream.lock:
            if stream.owner is not owner:
                raise StreamConflict("another connection took over this stream", column="device_id")
            if stream.ended:
                await send({"rejected": "the stream has ended; start a new session to stream more"})
                return
            replies: list[dict] = []
            new = []
            refused = None
            try:
                for data, received_at in batch:
                    got = stream.receiver.receive(data)
                    if got.fatal:
                        refused = f"packet {got.sequence}: {got.reason}"
                        break
                    if got.outcome is Outcome.REJECTED:
                        replies.append({"rejected": got.reason, "seq": got.sequence})
                    elif got.outcome is Outcome.DUPLICATE:
                        replies.append({"ack": got.sequence, "duplicate": True})
                    elif got.outcome is Outcome.LATE:
                        replies.append({"late": got.sequence})
                    else:
                        if got.gap is not None:
                            replies.append({"gap": list(got.gap)})
                        replies.append({"ack": got.sequence})
                        new.append((got.packet, received_at))
                if new:
                    await asyncio.to_thread(stream.receiver.commit)
                    stream.last_packet_at = time.time()
            except BaseException:
                # Appended but not durable, so never acknowledged, yet counted by the in-memory
                # state: drop it, and the next hello rebuilds the stream from what the log holds.
                self._drop(stream)
                raise
            for reply in replies:
                await send(reply)
            if new:
                # Shielded: a connection dropped mid-analysis must not lose the strides it closes.
                await asyncio.shield(asyncio.ensure_future(self._analyze(stream, new, send)))
            if refused is not None:
                raise StreamRefused(refused)

    async def _analyze(self, stream: LiveStream, packets: list, send: Send | None = None) -> None:
        async with stream.analysis_lock:  # FIFO: packets are analysed in the order they were stored
            for packet, received_at in packets:
                block = packet_block(packet, stream.hello.sampling_rate_hz)
                try:
                    strides, stances = await asyncio.get_running_loop().run_in_executor(
                        self._analysis_pool, lambda b=block: self._push(stream.analyzer, b)
                    )
                except Exception as exc:
                    # The packet is durable; a failing analysis must not drop the connection. Logged
                    # and reported once per stream, not once per packet.
                    stream.analysis_failures += 1
                    if stream.analysis_failures == 1:
                        log.exception("live analysis failed on %s, packet %s", stream.key, packet.sequence)
                        if send is not None:
                            message = (
                                f"live analysis failed at packet {packet.sequence} ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); the packets are stored, strides may be missing"
                            )
                            with contextlib.suppress(Exception):
                                await send({"analysis_error": message, "seq": packet.sequence})
                    continue
                self._publish(stream, stances, received_at, packet.sequence, "packet", kind="stance")
                self._publish(stream, strides, received_at, packet.sequence, "packet")

    @staticmethod
    def _push(analyzer: StreamAnalyzer, block: SampleBlock) -> LiveOutput:
        """(strides, provisional stance rows) the block completed."""
        return analyzer.push(block)

    async def end(self, stream: LiveStream, owner: object) -> dict:
        """The client ended the stream: finish the analysis, store, mark the log closed."""
        async with stream.lock:
            if stream.owner is not owner:
                raise StreamConflict("another connection took over this stream", column="device_id")
            await self._finish(stream, "end")
        await self.flush()
        return {
            "ended": True,
            "last_seq": stream.receiver.resume_from,
            "samples": stream.receiver.samples_received_,
            "strides": stream.strides().height,
        }

    async def _finish(self, stream: LiveStream, closed_by: str) -> None:
        """Finish the analysis, write the CLOSE record, publish the tail (caller holds stream.lock)."""
        if not stream.ended:
            received_at = time.time()
            async with stream.analysis_lock:
                tail = (await asyncio.to_thread(stream.analyzer.finish)).strides
            await asyncio.to_thread(stream.receiver.end)
            stream.ended = True
            self._publish(stream, tail, received_at, stream.receiver.resume_from, closed_by)
        self._dirty.add(stream.key[:2])

    async def expire_idle(self, now: float | None = None) -> int:
        """End every stream without a connection whose newest packet is older than the idle timeout
        (`now`: server time, default the clock); returns how many were ended. Stores them."""
        if self.idle_timeout_s is None:
            return 0
        now = time.time() if now is None else now
        count = 0
        for stream in list(self.streams.values()):
            if stream.owner is not None or stream.ended or now - stream.last_packet_at <= self.idle_timeout_s:
                continue
            async with stream.lock:
                if stream.owner is None and not stream.ended:
                    await self._finish(stream, "idle")
                    count += 1
                    log.info(
                        "live stream %s ended after %.0f s without packets",
                        stream.key,
                        now - stream.last_packet_at,
                    )
        if count:
            await self.flush()
        return count

    # --- subscribers ------------------------------------------------------------------------
    def subscribe(
        self, team_id: str, athlete_id: str | None = None, since: float | None = None
    ) -> Subscriber:
        """A new subscriber; with `since` (server time, s since the epoch) its queue starts with the
        messages it may see that were published at or after it, as far back as `replay_s`."""
        sub = Subscriber(team_id, athlete_id)
        if since is not None:
            for published_at, team, athlete, message in self._recent:
                if published_at >= since and sub.wants(team, athlete):
                    sub.offer(message)
                    sub.replayed += 1
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def _publish(
        self,
        stream: LiveStream,
        strides,
        received_at: float,
        seq: int | None,
        closed_by: str,
        kind: str = "stride",
    ) -> None:
        if not isinstance(strides, pl.DataFrame) or strides.height == 0:
            return
        if kind == "stride":
            self._dirty.add(stream.key[:2])
        now = time.time()
        messages = stride_messages(
            strides,
            kind,
            device_id=stream.hello.device_id,
            closed_by=closed_by,
            closed_by_seq=seq,
            received_at=received_at,
            published_at=now,
        )
        self.published_ += len(messages)
        while self._recent and self._recent[0][0] < now - self.replay_s:
            self._recent.popleft()
        self._recent.extend((now, stream.team_id, stream.hello.athlete_id, m) for m in messages)
        for sub in self.subscribers:
            if sub.wants(stream.team_id, stream.hello.athlete_id):
                for m in messages:
                    sub.offer(m)

    # --- storage ----------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.store_interval_s)
            try:
                await self.expire_idle()
                await self.flush()
            except Exception:
                log.exception("storing live strides failed; retrying")

    async def flush(self) -> None:
        """Store every session with new strides."""
        async with self._store_lock:
            while self._dirty:
                athlete, session = self._dirty.pop()
                streams = [s for k, s in self.streams.items() if k[:2] == (athlete, session)]
                parts = [s.strides() for s in streams]
                curves = [getattr(s.analyzer, "curves_", None) for s in streams]
                feet = {s.hello.foot for s in streams}
                try:
                    await asyncio.to_thread(self._store, athlete, session, parts, feet, curves)
                except BaseException:
                    self._dirty.add((athlete, session))
                    raise
                for s in streams:
                    if s.ended and s.owner is None:
                        self._evict(s)

    def _store(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None = None,
    ) -> None:
        """Write the session from its streams' strides and curves (`curves`: per stream, its
        analyzer's `curves_`, the session curve summary of its foot; None: it keeps none)."""
        strides = pl.concat([p.select(list(STRIDES_SCHEMA)) for p in parts]) if parts else None
        stored = read_partition(self.results_dir, STRIDES, athlete, session)
        curve_parts = [c for c in curves or () if c is not None]
        if curve_parts:
            # as the strides: the stored curves of feet without a stream in memory are kept
            stored_curves = read_partition(self.results_dir, CURVES, athlete, session)
            if stored_curves is not None and STRIDE_COUNT in stored_curves.columns:
                kept_curves = stored_curves.filter(~pl.col(FOOT).is_in(sorted(feet)))
                if kept_curves.height:
                    curve_parts.append(kept_curves)
        if stored is not None:
            kept = stored.filter(~pl.col(FOOT).is_in(sorted(feet)))
            if kept.height:
                kept = kept.select([c for c in STRIDES_SCHEMA if c in kept.columns]).cast(
                    {c: t for c, t in STRIDES_SCHEMA.items() if c in kept.columns}
                )
                strides = kept if strides is None else pl.concat([strides, kept], how="diagonal_relaxed")
        if strides is None:
            return
        if read_marker(self.results_dir, athlete, session) is None:
            # One source per session: a team batch run into these results leaves this session alone.
            write_marker(self.results_dir, athlete, session, {SOURCE: STREAM_SOURCE})
        date = self.session_dates.get((athlete, session))
        write_session(
            self.results_dir,
            athlete,
            session,
            [strides],
            curves_parts=curve_parts,
            session_date=date,
            settings=self.analysis_settings,
        )
