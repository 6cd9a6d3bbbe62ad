"""`LiveHub`: the live streams of one server process, as the stream routes use them.

It wires the parts (`registry`: streams and their logs; `analysis`: the analysis ticks;
`publish`: subscribers and the broker; `store`: periodic storing) and owns what crosses them:
a packet goes log append -> fsync (in a worker thread) -> ack -> analysis; each row the analyzer
completes is published at once and the session is marked for storing.

Storing: every `store_interval_s` (5 s) the sessions with new strides are written (`store`), off
the event loop, a fifth of them every second (`store.STORE_SLOTS`: sessions started together are
not stored in one burst); the end of a stream stores at once. Stored results may lag the stream
by that interval (a store rewrites the session's partition, ~15 ms for 100 strides, so it is not
done per stride); acknowledged samples are durable in the log at once. With `store_process` (the
setting `live_store_process`, off by default), the sessions are written by a store process of this
server process (`store_process`: the strides new since the last pass cross, the store's Python and
Polars work no longer holds this process's interpreter lock); without, by `SessionStore` in threads
here.

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
before it are stored and acknowledged.

Several server processes (a broker with `shared` True, e.g. `PostgresBroker`): subscribers get
the rows of every process; a stream belongs to the process its device is connected to (its log's
lock, `registry`). While other processes serve the data folder (`peers`), the owner stores the
session and lets the stream go when its connection closes (and, every `store_interval_s`, any
stored stream without a connection), so the device may reconnect to any process, which rebuilds
it from the log. Logs nobody holds are ended when idle by whichever process scans them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.ingest.stream_receiver import StreamHello
from strideflow.ingest.wal import WAL_SUFFIX, list_wals, read_wal
from strideflow.service.live.analysis import LiveAnalysis
from strideflow.service.live.publish import (
    Broker,
    InMemoryBroker,
    Publisher,
    Subscriber,
    stream_mountings,
    stride_messages,
)
from strideflow.service.live.registry import (
    AnalyzerFactory,
    LiveStream,
    Send,
    StreamConflict,
    StreamHeld,
    StreamRegistry,
    default_analyzer,
)
from strideflow.service.live.store import STORE_SLOTS, SessionStore
from strideflow.service.live.store_process import StoreProcess
from strideflow.service.live.workers import AnalysisWorkers, RemoteAnalyzer
from strideflow.service.settings import LOG_SYNCS

log = logging.getLogger("strideflow.service")

LOG_SCAN_INTERVAL_S = 60.0  # how often a process with a shared broker looks for idle logs nobody holds


class LiveHub:
    """Live streams, their analysis, result storage and subscribers of one server process."""

    def __init__(
        self,
        wal_root: str | Path,
        results_dir: str | Path,
        analyzer_factory: AnalyzerFactory | None = None,
        analysis_settings: AnalysisSettings = AnalysisSettings(),
        store_interval_s: float = 5.0,
        idle_timeout_s: float | None = 1800.0,
        replay_s: float = 600.0,
        broker: Broker | None = None,
        peers: Callable[[], bool] | None = None,
        analysis_workers: int = 0,
        store_process: bool = False,
        log_sync: str = "file_system",
    ):
        if log_sync not in LOG_SYNCS:
            raise ValueError(f"log_sync must be one of {LOG_SYNCS}, got {log_sync!r}")
        self.wal_root = Path(wal_root)
        self.results_dir = Path(results_dir)
        self.analysis_settings = analysis_settings
        self.store_interval_s = store_interval_s
        self.idle_timeout_s = idle_timeout_s
        self.replay_s = replay_s
        # the default analyzer, with this hub's analysis settings (in worker processes if asked)
        self.analysis_workers = analysis_workers
        self._workers: AnalysisWorkers | None = None
        self._workers_lock = threading.Lock()
        factory = analyzer_factory or (
            self._remote_analyzer
            if analysis_workers > 0
            else functools.partial(default_analyzer, analysis=analysis_settings, results_dir=self.results_dir)
        )
        self.registry = StreamRegistry(
            wal_root, results_dir, factory, file_system_sync=log_sync == "file_system"
        )
        self.analysis = LiveAnalysis(self._emit)
        self.publisher = Publisher(broker if broker is not None else InMemoryBroker(replay_s))
        self.store = SessionStore(results_dir, wal_root, analysis_settings)
        # the store in its own process (`service.live.store_process`), opt-in: an idle A/B at 128 pods
        # showed no CPU saved and a higher p99 with it (benchmarks/README.md, session 15)
        self.store_process = store_process
        # whether other server processes serve this data folder now (then streams are let go)
        self.peers = peers if peers is not None and self.publisher.broker.shared else (lambda: False)
        self._flusher: asyncio.Task | None = None
        self._team_of: Callable[[str], str | None] | None = None
        self._closed_logs: set[Path] = set()  # logs known to hold a CLOSE record (never reopened)
        self._last_scan = 0.0

    # --- what the routes read ---------------------------------------------------------------
    @property
    def streams(self) -> dict:
        return self.registry.streams

    @property
    def session_dates(self) -> dict:
        return self.store.session_dates

    @property
    def subscribers(self) -> set[Subscriber]:
        return self.publisher.subscribers

    @property
    def published_(self) -> int:
        return self.publisher.published_

    @property
    def analyzer_factory(self) -> AnalyzerFactory:
        return self.registry.analyzer_factory

    @analyzer_factory.setter
    def analyzer_factory(self, factory: AnalyzerFactory) -> None:
        self.registry.analyzer_factory = factory

    def _remote_analyzer(self, hello: StreamHello) -> RemoteAnalyzer:
        """The default analyzer of a stream, run in one of the hub's worker processes."""
        return RemoteAnalyzer(self._worker_pool(), hello, self.wal_root)

    def _worker_pool(self) -> AnalysisWorkers:
        with self._workers_lock:
            if self._workers is None:
                self._workers = AnalysisWorkers(
                    self.analysis_workers, self.analysis_settings, self.results_dir
                )
            return self._workers

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self, team_of: Callable[[str], str | None] | None = None) -> int:
        """Start the broker, replay unclosed logs (returns how many) and start the periodic store."""
        self._team_of = team_of
        if self.analysis_workers > 0 and self.registry.analyzer_factory == self._remote_analyzer:
            await asyncio.to_thread(self._worker_pool)  # started now, not at the first stream
        if self.store_process and self.store.process is None:
            self.store.process = await asyncio.to_thread(
                StoreProcess, self.results_dir, self.wal_root, self.analysis_settings
            )
        await self.publisher.start()
        recovered = await self.recover(team_of)
        await self.expire_idle()
        await self.flush()
        self._release_idle()
        self._flusher = asyncio.create_task(self._flush_loop())
        return recovered

    async def stop(self) -> None:
        """Store what is pending, close every log, stop the broker."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        if self.store.process is not None:
            await asyncio.to_thread(self.store.process.close)
            self.store.process = None
        self.registry.close_all()
        self.analysis.shutdown()
        if self._workers is not None:
            await asyncio.to_thread(self._workers.close)
            self._workers = None
        await self.publisher.stop()

    async def recover(self, team_of: Callable[[str], str | None] | None = None) -> int:
        """Rebuild every stream whose log has no CLOSE record (a server killed mid-stream), except
        those another server process holds."""
        count = 0
        for path in list_wals(self.wal_root):
            try:
                meta, _, closed = await asyncio.to_thread(read_wal, path)
                if closed:
                    self._closed_logs.add(path)
                    continue
                hello = StreamHello.parse(meta)
                team = (team_of(hello.athlete_id) if team_of else None) or ""
                stream = await self.attach(hello, team, owner=None)
                stream.last_packet_at = path.stat().st_mtime
                count += 1
            except StreamHeld:
                continue  # its device is connected to another process
            except Exception:  # one unreadable log must not stop the server from starting
                log.exception("could not recover live stream log %s", path)
        return count

    # --- streams ----------------------------------------------------------------------------
    async def attach(self, hello: StreamHello, team_id: str, owner: object | None) -> LiveStream:
        """The stream of `hello`, rebuilt from its log if not in memory; `owner` takes it over."""
        stream, created = await self.registry.attach(hello, team_id, owner)
        if created:
            self.store.mark(stream.key[:2])
        return stream

    def detach(self, stream: LiveStream, owner: object) -> None:
        """The connection `owner` is gone; an ended stream is dropped from memory (and with a shared
        broker, any stream, once stored)."""
        if stream.owner is not owner:
            return
        stream.owner = None
        if stream.ended:
            self._evict(stream)
        elif self.peers():
            asyncio.ensure_future(self._release(stream))

    async def _release(self, stream: LiveStream) -> None:
        """Store the stream's session and let another process take the stream."""
        try:
            await self.flush(only={stream.key[:2]})
        except Exception:
            log.exception("storing live stream %s before letting it go failed", stream.key)
            return  # kept in memory: the periodic store retries, the idle timeout ends it
        async with stream.lock:
            if stream.owner is None and self.streams.get(stream.key) is stream:
                self._remove(stream)

    def _release_idle(self) -> None:
        """With other server processes on the data folder, let go of the stored streams without a
        connection, so that their devices may reconnect to any process."""
        if not self.peers():
            return
        for stream in list(self.streams.values()):
            if stream.owner is None and stream.key[:2] not in self.store.dirty:
                self._remove(stream)

    def _evict(self, stream: LiveStream) -> None:
        if self.streams.get(stream.key) is stream and stream.key[:2] not in self.store.dirty:
            self._remove(stream)

    def _remove(self, stream: LiveStream) -> None:
        """Drop a stored stream from memory (and, with its session's last stream, what the store
        process holds of the session)."""
        self.registry.remove(stream)
        key = stream.key[:2]
        if self.store.process is not None and not any(k[:2] == key for k in self.streams):
            self.store.process.forget(key)

    async def receive(
        self, stream: LiveStream, batch: list[tuple[bytes, float]], owner: object, send: Send
    ) -> None:
        """Handle binary messages (bytes, server receive time) of `owner`'s connection, in order:
        stored and acknowledged, then analysed and their rows published."""
        await self.registry.receive(stream, batch, owner, send, self.analysis.analyse)

    async def end(self, stream: LiveStream, owner: object) -> dict:
        """The client ended the stream: finish the analysis, store, mark the log closed."""
        async with stream.lock:
            if stream.owner is not owner:
                raise StreamConflict("another connection took over this stream", column="device_id")
            await self._finish(stream, "end")
        await self.flush(only={stream.key[:2]})  # its session now; the others at the periodic store
        return {
            "ended": True,
            "last_seq": stream.receiver.resume_from,
            "samples": stream.receiver.samples_received_,
            "strides": stream.strides().height,
        }

    async def _finish(self, stream: LiveStream, closed_by: str) -> None:
        await self.analysis.finish(stream, closed_by)
        self.store.mark(stream.key[:2])

    async def expire_idle(self, now: float | None = None) -> int:
        """End every stream without a connection whose newest packet is older than the idle timeout
        (`now`: server time, default the clock); returns how many were ended. Stores them."""
        if self.idle_timeout_s is None:
            return 0
        now = time.time() if now is None else now
        if self.publisher.broker.shared and now - self._last_scan > LOG_SCAN_INTERVAL_S:
            self._last_scan = now
            await self._take_idle_logs(now)
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

    async def _take_idle_logs(self, now: float) -> None:
        """Take into memory the unclosed logs no process holds whose newest packet is older than the
        idle timeout, so that they are ended below."""
        team_of = self._team_of
        for path in list_wals(self.wal_root):
            if path in self._closed_logs or _log_key(path) in self.streams:
                continue
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime <= self.idle_timeout_s:
                    continue
            try:
                meta, _, closed = await asyncio.to_thread(read_wal, path)
                if closed:
                    self._closed_logs.add(path)
                    continue
                hello = StreamHello.parse(meta)
                if hello_key(hello) in self.streams:
                    continue
                team = (team_of(hello.athlete_id) if team_of else None) or ""
                stream = await self.attach(hello, team, owner=None)
                stream.last_packet_at = path.stat().st_mtime
            except StreamHeld:
                continue
            except Exception:
                log.exception("could not take idle live stream log %s", path)

    # --- subscribers ------------------------------------------------------------------------
    async def subscribe(
        self, team_id: str, athlete_id: str | None = None, since: float | None = None
    ) -> Subscriber:
        """A new subscriber; with `since` (server time, s since the epoch) its queue starts with the
        messages it may see that were published at or after it, as far back as `replay_s`."""
        return await self.publisher.subscribe(team_id, athlete_id, since)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.publisher.unsubscribe(sub)

    def _emit(
        self,
        stream: LiveStream,
        strides,
        received_at: float,
        seq: int | None,
        closed_by: str,
        kind: str = "stride",
    ) -> None:
        if strides is None or strides.height == 0:  # a frame, or a worker's `LiveRows`
            return
        if kind == "stride":
            self.store.mark(stream.key[:2])
        now = time.time()
        messages = stride_messages(
            strides,
            kind,
            mountings=stream_mountings(stream),
            device_id=stream.hello.device_id,
            closed_by=closed_by,
            closed_by_seq=seq,
            received_at=received_at,
            published_at=now,
        )
        self.publisher.publish(stream.team_id, stream.hello.athlete_id, messages, now)

    # --- storage ----------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        slot = 0
        while True:
            await asyncio.sleep(self.store_interval_s / STORE_SLOTS)
            try:
                await self.expire_idle()
                due = self.store.due(slot)
                if due:
                    await self.flush(only=due, once=True)
                self._release_idle()
            except Exception:
                log.exception("storing live strides failed; retrying")
            slot = (slot + 1) % STORE_SLOTS

    async def flush(self, only: Collection[tuple[str, str]] | None = None, once: bool = False) -> None:
        """Store every session with new strides (or those of them in `only`: (athlete, session));
        with `once`, those that have new strides now, once each (`SessionStore.flush`)."""

        def streams_of(key):
            return [s for k, s in self.streams.items() if k[:2] == key]

        def stored(streams):
            for s in streams:
                if s.ended and s.owner is None:
                    self._evict(s)

        # streams analysed in worker processes: their curves and mountings as of now
        remote = [
            asyncio.wrap_future(s.analyzer.refresh())
            for k, s in list(self.streams.items())
            if k[:2] in self.store.dirty
            and (only is None or k[:2] in only)
            and isinstance(s.analyzer, RemoteAnalyzer)
        ]
        if remote:
            await asyncio.gather(*remote, return_exceptions=True)
        await self.store.flush(streams_of, stored, only, once)


def hello_key(hello: StreamHello) -> tuple[str, str, str, str]:
    return (hello.athlete_id, hello.session_id, hello.foot, hello.device_id)


def _log_key(path: Path) -> tuple[str, ...]:
    """(athlete, session, foot, device) of a log's path (`ingest.wal.wal_path`)."""
    foot, _, device = path.name[: -len(WAL_SUFFIX)].partition(".")
    return (path.parent.parent.name.partition("=")[2], path.parent.name.partition("=")[2], foot, device)
