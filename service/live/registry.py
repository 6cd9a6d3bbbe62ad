"""The device streams a server process holds: attach (hello checks, rebuild from the log), receive
(log append, group fsync, acknowledgements), detach, and the lock that makes one process the owner.

Group commit across streams (`LogCommitter`): the packets of every stream that stored some in the
same turn of the event loop are made durable by one call on one commit thread (every log written,
then the logs fsynced side by side on a small pool), and a stream's packets are acknowledged once
its own log's fsync has returned. Streams that store packets while a commit runs go together in
the next one. At 200 pods that is one thread hop per batch of streams instead of one per stream
and packet (up to 2,000 a second), and the commits no longer wait behind other work in the event
loop's default executor.

A stream held in memory holds an exclusive `flock` on `<log>.lock` next to its write-ahead log
(`service.instances.try_lock`), so two server processes on one data folder never append to the
same log: a hello for a stream another process holds is refused (`StreamHeld`, close code 4409)
until that process lets it go (with a shared broker it does when the connection closes, see
`service.live.hub`). The kernel drops the lock of a process that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from strideflow.analytics.batch import SOURCE, UPLOAD_SOURCE, read_marker
from strideflow.analytics.live_analyzer import StreamAnalyzer
from strideflow.analytics.partitions import STRIDES, has_partition
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.hardware.profiles import PROFILES
from strideflow.ingest.durable import FILE_SYSTEM_SYNC, sync_file_system
from strideflow.ingest.stream_receiver import Outcome, StreamError, StreamHello, StreamReceiver, packet_block
from strideflow.ingest.wal import read_wal, session_wal_devices, wal_path
from strideflow.service.instances import try_lock, unlock

log = logging.getLogger("strideflow.service")

StreamKey = tuple[str, str, str, str]  # athlete_id, session_id, foot, device_id
Send = Callable[[dict], Awaitable[None]]
AnalyzerFactory = Callable[[StreamHello], StreamAnalyzer]
LOCK_SUFFIX = ".lock"


def default_analyzer(
    hello: StreamHello, analysis: AnalysisSettings | None = None, results_dir: str | Path | None = None
) -> StreamAnalyzer:
    """The streaming stride analyzer of `analytics.live_analyzer` for one foot's stream, with the
    service's `analysis` settings (default AnalysisSettings()).

    A profile with a fixed mounting (`DeviceProfile.mounting_wxyz`, a pod in a known holder)
    gives it to the analyzer; otherwise the analyzer estimates it from its warm-up, starting from
    the athlete's stored mounting of this foot and device in `results_dir` (`prior_mounting`).
    """
    from strideflow.analytics.live_analyzer import LiveSettings, LiveStrideAnalyzer

    analysis = analysis if analysis is not None else AnalysisSettings()
    mounting = PROFILES[hello.profile].mounting_wxyz
    settings = LiveSettings(analysis=analysis, mounting_wxyz=mounting)
    prior = prior_mounting(results_dir, hello) if results_dir is not None and mounting is None else None
    return LiveStrideAnalyzer(
        hello.athlete_id, hello.session_id, hello.foot, hello.sampling_rate_hz, settings, prior_mounting=prior
    )


def prior_mounting(results_dir: str | Path, hello: StreamHello):
    """The athlete's stored mounting of the stream's foot and device (`analytics.mountings`), or
    None; a mountings file that cannot be read is logged and the stream estimates its own."""
    from strideflow.analytics.mountings import prior_mountings, read_mountings
    from strideflow.hardware.errors import StrideflowError

    try:
        stored = read_mountings(results_dir, hello.athlete_id)
    except StrideflowError as exc:
        log.error("live stream %s starts without the stored mounting: %s", hello, exc)
        return None
    return prior_mountings(stored, hello.device_id, hello.session_id, (hello.foot,)).get(hello.foot)


class StreamConflict(StreamError):
    """Another device already streams this athlete-session-foot, or the session's results come
    from elsewhere (an upload or a batch run)."""


class StreamEnded(StreamConflict):
    """The stream (athlete, session, foot, device) has ended: it takes no more packets."""


class StreamHeld(StreamConflict):
    """Another server process on this data folder holds the stream (its device is connected there)."""


class StreamRefused(StreamError):
    """A packet with out-of-range fields: the connection is closed with the reason."""


def has_live_logs(wal_root: str | Path, athlete_id: str, session_id: str) -> bool:
    """Whether any device has streamed into this athlete-session (its write-ahead logs exist).

    A session's results come from one source: live streams, or uploads and batch runs, which
    replace the whole session's partitions. The stream and upload routes refuse to mix them.
    """
    return bool(session_wal_devices(wal_root, athlete_id, session_id))


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
    lease: int | None = None  # descriptor holding the stream's lock file (one process per stream)

    @property
    def key(self) -> StreamKey:
        h = self.hello
        return (h.athlete_id, h.session_id, h.foot, h.device_id)

    def strides(self) -> pl.DataFrame:
        return self.analyzer.strides_

    def close(self) -> None:
        """Close the log, drop a worker process's analyzer, and let other processes take the stream."""
        close = getattr(self.analyzer, "close", None)  # service.live.workers.RemoteAnalyzer
        if close is not None:
            close()
        self.receiver.close()
        unlock(self.lease)
        self.lease = None


def _lock_path(wal_root: Path, hello: StreamHello) -> Path:
    path = wal_path(wal_root, hello.athlete_id, hello.session_id, hello.foot, hello.device_id)
    return path.with_name(path.name + LOCK_SUFFIX)


# fsyncs in flight at once: enough for the file system to join them into few journal commits
SYNC_THREADS = 32


class _SyncPool:
    """Threads that fsync logs side by side: `run(receivers)` returns what each log's fsync raised
    (None if nothing), once every one has returned. The calling thread fsyncs the first log itself
    and hands the others to the threads through one queue, one countdown for the batch: no future,
    condition or work item per log (`ThreadPoolExecutor.map` cost the commit thread ~0.1 ms of
    interpreter time per log, most of the commit's CPU at realtime rates)."""

    def __init__(self, size: int = SYNC_THREADS):
        self.size = size
        self._logs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def run(self, receivers: list[StreamReceiver]) -> list[BaseException | None]:
        errors: list[BaseException | None] = [None] * len(receivers)
        others = len(receivers) - 1
        if others > 0:
            batch = _Countdown(others, errors)
            while len(self._threads) < min(others, self.size):
                thread = threading.Thread(
                    target=self._loop, daemon=True, name=f"live-fsync-{len(self._threads)}"
                )
                thread.start()
                self._threads.append(thread)
            for i in range(1, len(receivers)):
                self._logs.put((batch, i, receivers[i]))
        if receivers:
            errors[0] = _commit_one(receivers[0])
        if others > 0:
            batch.done.acquire()  # released by the last of the others
        return errors

    def _loop(self) -> None:
        while True:
            job = self._logs.get()
            if job is None:
                return
            batch, i, receiver = job
            batch.errors[i] = _commit_one(receiver)
            batch.count_down()

    def shutdown(self) -> None:
        for _ in self._threads:
            self._logs.put(None)
        self._threads = []


class _Countdown:
    """The logs of one batch still being fsynced by the pool's threads; `done` is released by the
    last."""

    __slots__ = ("done", "errors", "left", "lock")

    def __init__(self, left: int, errors: list):
        self.left = left
        self.errors = errors
        self.lock = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()

    def count_down(self) -> None:
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last:
            self.done.release()


class LogCommitter:
    """Makes the received packets of many streams durable together, on one commit thread.

    `commit(receiver)` returns once that receiver's log is written and fsynced (or raises what its
    commit raised; the other streams of the batch are not affected). The receivers waiting when the
    commit thread is free go as one batch, started at the end of the event loop's turn so that the
    streams of one turn share it; the thread takes batches from a queue and hands each back with one
    `call_soon_threadsafe` (no executor future per batch). `file_system_sync`: the logs of a batch
    on one file system are made durable by one `syncfs` (`ingest.durable.sync_file_system`, where
    available) instead of one fsync each. Counts: `batches_` (thread hops), `syncs_` (logs made
    durable), `file_system_syncs_` (syncfs calls).
    """

    def __init__(self, file_system_sync: bool = True):
        self.file_system_sync = file_system_sync and FILE_SYSTEM_SYNC
        self._batches: queue.SimpleQueue | None = None
        self._sync_pool: _SyncPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[tuple[StreamReceiver, asyncio.Future]] = []
        self._running = False
        self.batches_ = 0
        self.syncs_ = 0
        self.file_system_syncs_ = 0

    async def commit(self, receiver: StreamReceiver) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (an app started again): nothing of the old one waits
            self._loop, self._waiting, self._running = loop, [], False
        done = loop.create_future()
        self._waiting.append((receiver, done))
        if not self._running:
            self._running = True
            loop.call_soon(self._start, loop)
        await done

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        batch, self._waiting = self._waiting, []
        if self._batches is None:
            self._batches = queue.SimpleQueue()
            self._sync_pool = _SyncPool()
            threading.Thread(
                target=_commit_loop,
                args=(self._batches, self._sync_pool, self),
                daemon=True,
                name="live-commit",
            ).start()
        self.batches_ += 1
        self.syncs_ += len(batch)
        self._batches.put((loop, batch, self._finished))

    def _finished(self, loop: asyncio.AbstractEventLoop, batch: list, errors: list) -> None:
        for (_, done), error in zip(batch, errors, strict=True):
            if done.done():  # its caller was cancelled: never acknowledged, whatever the log holds
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
        if loop is not self._loop:
            return
        if self._waiting:
            self._start(loop)
        else:
            self._running = False

    def shutdown(self) -> None:
        """Stop the commit thread once its batch is done (a later commit starts a new one)."""
        if self._batches is not None:
            self._batches.put(None)
            self._sync_pool.shutdown()
            self._batches = self._sync_pool = None


def _commit_loop(batches: queue.SimpleQueue, sync_pool: _SyncPool, committer: LogCommitter) -> None:
    """The commit thread: each batch's logs committed (`_commit_all`), the outcome handed back to the
    batch's event loop."""
    while True:
        item = batches.get()
        if item is None:
            return
        loop, batch, finished = item
        try:
            errors = _commit_all([receiver for receiver, _ in batch], sync_pool, committer)
        except BaseException as exc:  # a failed hop leaves none of them durable
            errors = [exc] * len(batch)
        with contextlib.suppress(RuntimeError):  # its loop has closed: nobody waits for the acks
            loop.call_soon_threadsafe(finished, loop, batch, errors)


def _commit_all(
    receivers: list[StreamReceiver], sync_pool: _SyncPool, committer: LogCommitter
) -> list[BaseException | None]:
    """Commit each receiver's log (on the commit thread); what each raised, or None.

    Every log's records are written first. With `committer.file_system_sync`, the logs that share a
    file system (two or more) are then made durable by one `syncfs` of it: one system call and no
    thread hand-off per log (at 200 pods ~2,000 logs a second; 0.3-0.5 ms of the server's CPU per
    stride, benchmarks/README.md, session 17); if it fails, none of them is durable. The other logs
    are fsynced side by side (`sync_pool`): the file system joins concurrent fsyncs into shared
    journal commits, where one after another each waits for its own (this machine's ext4, 100 logs
    of ~900 bytes each: 11-16 ms concurrently on 32 threads against 145-430 ms in turn).
    """
    errors: list[BaseException | None] = [None] * len(receivers)
    for i, receiver in enumerate(receivers):
        try:
            receiver.write()
        except BaseException as exc:  # that stream only: the caller drops it and rebuilds from its log
            errors[i] = exc
    written = [i for i, error in enumerate(errors) if error is None]
    if committer.file_system_sync and len(written) > 1:
        by_device: dict[int, list[int]] = {}
        for i in written:
            by_device.setdefault(receivers[i].wal.device, []).append(i)
        written = []
        for members in by_device.values():
            if len(members) == 1:
                written += members
                continue
            committer.file_system_syncs_ += 1
            try:
                sync_file_system(receivers[members[0]].wal.fileno())
            except BaseException as exc:  # none of them durable: each is dropped, none acknowledged
                for i in members:
                    errors[i] = exc
        written.sort()
    for i, error in zip(written, sync_pool.run([receivers[i] for i in written]), strict=True):
        errors[i] = error
    return errors


def _commit_one(receiver: StreamReceiver) -> BaseException | None:
    """Fsync one receiver's log; what it raised, or None."""
    try:
        receiver.commit()
    except BaseException as exc:  # that stream only
        return exc
    return None


class StreamRegistry:
    """The streams this process holds in memory, by (athlete, session, foot, device)."""

    def __init__(
        self,
        wal_root: str | Path,
        results_dir: str | Path,
        analyzer_factory: AnalyzerFactory,
        file_system_sync: bool = True,
    ):
        self.wal_root = Path(wal_root)
        self.results_dir = Path(results_dir)
        self.analyzer_factory = analyzer_factory
        self.streams: dict[StreamKey, LiveStream] = {}
        self._attach_lock = asyncio.Lock()
        self.committer = LogCommitter(file_system_sync)

    async def attach(self, hello: StreamHello, team_id: str, owner: object | None) -> tuple[LiveStream, bool]:
        """The stream of `hello` and whether it is new in memory (rebuilt from its log); `owner`
        takes it over."""
        key = (hello.athlete_id, hello.session_id, hello.foot, hello.device_id)
        while True:
            async with self._attach_lock:
                stream = self.streams.get(key)
                if owner is not None and (
                    (stream is not None and stream.ended)
                    or (stream is None and await asyncio.to_thread(self._log_closed, hello))
                ):
                    raise StreamEnded(
                        f"athlete {hello.athlete_id}, session {hello.session_id}, {hello.foot} foot "
                        f"(device {hello.device_id}) has ended; its results are final. Stream into a "
                        "new session id",
                        column="session_id",
                    )
                created = stream is None
                if stream is None:
                    self._check_single_device(hello)
                    self._check_results_source(hello)
                    stream = await asyncio.to_thread(self._rebuild, hello, team_id)
                    self.streams[key] = stream
                if team_id:
                    stream.team_id = team_id
                stream.owner = owner
            # The previous connection's packets may be counted (the hello's resume_from, which the
            # client takes as acknowledged) while their fsync is still running: wait for it. If it
            # failed, the stream was dropped: rebuilt from what its log holds.
            async with stream.lock:
                if self.streams.get(key) is stream:
                    return stream, created

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
        lease = try_lock(_lock_path(self.wal_root, hello))
        if lease is None:
            raise StreamHeld(
                f"athlete {hello.athlete_id}, session {hello.session_id}, {hello.foot} foot (device "
                f"{hello.device_id}) is connected to another server process; it is released when that "
                "connection closes: reconnect then",
                column="device_id",
            )
        try:
            receiver = StreamReceiver.open(self.wal_root, hello)
        except BaseException:
            unlock(lease)
            raise
        analyzer = None
        try:
            analyzer = self.analyzer_factory(hello)
            failures = 0
            replay = getattr(analyzer, "replay", None)  # an analyzer in a worker process replays there
            if replay is not None:
                texts = replay(receiver.replayed_, receiver.closed)
                failures = len(texts)
                if texts:
                    log.error("live analysis failed replaying %s, %s", hello, texts[0])
            for packet in receiver.replayed_ if replay is None else ():
                try:
                    analyzer.push(packet_block(packet, hello.sampling_rate_hz))
                except Exception:  # as live: a packet the analysis fails on is kept, not fatal
                    failures += 1
                    if failures == 1:  # once per stream, not per packet
                        log.exception("live analysis failed replaying %s, packet %s", hello, packet.sequence)
            if failures > 1:
                log.error("live analysis failed on %d replayed packets of %s", failures, hello)
            if receiver.closed and replay is None:
                analyzer.finish()
        except BaseException:
            if analyzer is not None and hasattr(analyzer, "close"):
                analyzer.close()
            receiver.close()
            unlock(lease)
            raise
        receiver.replayed_ = []  # the analysis holds what it needs; do not keep the raw packets
        return LiveStream(hello, team_id, receiver, analyzer, ended=receiver.closed, lease=lease)

    def remove(self, stream: LiveStream) -> None:
        """Forget the stream and close it (if it is still the one in memory)."""
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]
        stream.close()

    def drop(self, stream: LiveStream) -> None:
        """Forget a stream whose in-memory state may be ahead of its log; the next hello rebuilds it."""
        self.remove(stream)
        stream.owner = None
        stream.ended = True  # any later packet on the old connection is refused

    def close_all(self) -> None:
        for stream in self.streams.values():
            stream.close()
        self.streams.clear()
        self.committer.shutdown()

    async def receive(
        self,
        stream: LiveStream,
        batch: list[tuple[bytes, float]],
        owner: object,
        send: Send,
        analyse: Callable[[LiveStream, list, Send], Awaitable[None]],
    ) -> None:
        """Handle binary messages (bytes, server receive time) of `owner`'s connection, in order.

        New packets are appended, made durable with one fsync for the batch (group commit, with the
        other streams' batches of the same turn: `LogCommitter`), then acknowledged; then `analyse`d
        (shielded: a connection dropped mid-analysis must not lose the strides it closes).
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
                    await self.committer.commit(stream.receiver)  # with the other streams' of this turn
                    stream.last_packet_at = time.time()
            except BaseException:
                # Appended but not durable, so never acknowledged, yet counted by the in-memory
                # state: drop it, and the next hello rebuilds the stream from what the log holds.
                self.drop(stream)
                raise
            for reply in replies:
                await send(reply)
            if new:
                # a finished future when the rows need not be waited for (no task per packet)
                await asyncio.shield(asyncio.ensure_future(analyse(stream, new, send)))
            if refused is not None:
                raise StreamRefused(refused)
