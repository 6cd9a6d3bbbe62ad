"""Live analysis in worker processes: each owns the analyzers of a disjoint set of streams.

The server process keeps the hub (write-ahead logs, acknowledgements, subscribers, storing);
`AnalysisWorkers` starts `n` processes (`python -c`, `worker_main`, connected by
a socket pair: forking a threaded server deadlocks polars, and multiprocessing's spawn would
import the caller's main script again) and gives each new stream to the one with the fewest. A
stream's stored packets go to its worker, which pushes them through the stream's
`LiveStrideAnalyzer` in the order stored and sends back each packet's rows as soon as they are
complete, so the analysis runs on as many cores as there are workers and no longer shares the
server's interpreter lock with its event loop.

In a worker, streams with packets waiting are analysed in rounds (round r: the next packet of each).
The metric queries of the rows that packets complete, across all of the worker's streams and
rounds, wait up to `GATHER_S` (or until `GATHER_MAX` streams wait) and run as one
(`resolve_together`, as in `service.live.analysis`); their rows then go out at once, in one
message with the outputs of the packets that completed nothing. A due row waits at most that long
for others, also while the worker idles.

`RemoteAnalyzer` stands for a stream's analyzer in the server process: it keeps the strides the
worker emitted (`strides_`, what the store writes) and, refreshed before each store, the curves and
mountings (`curves_`, `mountings_.pieces_`).

A worker that dies (killed, out of memory) fails the packets waiting on it (reported once per stream
as an analysis failure; the packets stay stored in the log). A replacement process takes its slot,
and each of its streams' analyzers is rebuilt there from the stream's log, one stream after the
other: the first `pushed_` packets of the log (those sent to the analysis so far, whatever became
of them) are replayed in the replacement before any later packet reaches it, so the strides are
those of an uninterrupted run (the rebuilt strides are stored, not published again, as after a
restart). Bounds: a stream is rebuilt after at most `MAX_LOSSES` losses blamed on it (a loss while
streams were being rebuilt is blamed on those, otherwise on every stream of the worker), then it
is left without analysis until its stream is rebuilt from the log again (server restart); and the
pool starts at most `MAX_RESTARTS` replacements within `RESTART_WINDOW_S`, after which a dead
worker's slot stays empty and its streams are left without analysis.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import math
import os
import queue
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import polars as pl

from strideflow.hardware.packets import AXES
from strideflow.ingest.stream_receiver import counts_block

log = logging.getLogger("strideflow.service")

_WORKER_CODE = (
    "import sys; from strideflow.service.live.workers import worker_main; worker_main(int(sys.argv[1]))"
)
# One thread per library in a worker: the queries and arrays of a stride are small, and each
# process's own thread pools (Polars', BLAS's) only compete with the other workers for the cores.
WORKER_ENV = {
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}
# A due row's metric query waits this long at most for other streams' rows to run with (s), or
# until this many streams' rows wait: a query's fixed cost (~1.4 ms) is then paid once for them all.
GATHER_S = 0.02
GATHER_MAX = 64
# Outputs of packets that completed no row (the server counts them against MAX_IN_FLIGHT, 2 s of a
# pod) wait up to this long for a message with rows (s): not one message per packet back.
HOLD_S = 0.1
MAX_LOSSES = 2  # worker losses blamed on one stream after which it is no longer rebuilt
MAX_RESTARTS = 10  # replacement workers started within RESTART_WINDOW_S before the pool stops
RESTART_WINDOW_S = 60.0
REBUILD_WAIT_S = 120.0  # how long `finish` on a lost worker waits for the stream's rebuild (s)

NOT_SENT = "-"  # an output without the stream's mountings (it has no rows)
# an output whose rows have the mountings of the stream's last output that carried them (~600 bytes
# pickled, which only a remount changes)
UNCHANGED = "="
MANY = "many"  # (MANY, [message, ...]): the messages queued for a worker, sent as one
# per packet, from the worker: (index in the push, strides or None, stances or None, error or None,
# the stream's mountings after it, NOT_SENT or UNCHANGED); the rows as `LiveRows` (or a frame of
# another schema)
OnOutput = Callable[[int, object, object, Exception | None, object], None]


class RemoteAnalysisError(RuntimeError):
    """An exception raised in a worker process that could not be sent as it was."""


class WorkerLost(RemoteAnalysisError):
    """The worker process holding the stream's analyzer stopped."""

    def __init__(self):
        super().__init__("the live analysis worker process has stopped")


def _portable(exc: BaseException) -> Exception:
    """The exception if it survives pickling, else a RemoteAnalysisError with its type and text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc  # type: ignore[return-value]
    except Exception:
        return RemoteAnalysisError(f"{type(exc).__name__}: {exc}")


def _pieces(analyzer) -> tuple | None:
    """The analyzer's mountings so far (`LivePiece`s), None when its frame was given."""
    watch = getattr(analyzer, "mountings_", None)
    return None if watch is None else tuple(watch.pieces_)


def _frame(df) -> pl.DataFrame | None:
    return df if isinstance(df, pl.DataFrame) and df.height else None


def _row_schemas() -> dict[str, tuple]:
    from strideflow.hardware.schema import STANCE_SCHEMA, STRIDES_SCHEMA

    return {"strides": tuple(STRIDES_SCHEMA.items()), "stances": tuple(STANCE_SCHEMA.items())}


# Polars types without parameters: one of these equals another type exactly when its class does.
_PLAIN_TYPES = frozenset(
    (pl.Float64, pl.Float32, pl.Int64, pl.Int32, pl.Int16, pl.Int8, pl.UInt64, pl.UInt32, pl.UInt16, pl.UInt8)
    + (pl.String, pl.Boolean)
)


class LiveRows:
    """The rows of a frame with the `strides` or `stance` schema (STRIDES_SCHEMA, STANCE_SCHEMA) as
    tuples: what a worker sends back for a packet's rows. A pickled one-row Polars frame is its
    Arrow IPC stream (~5 KB, 20-40 us of CPU to pickle and 20-30 us to unpickle); the tuples are
    ~250 bytes and ~2 us, and the values (Python floats, ints, strings, bools, None) make the same
    frame again.

    The server reads `height` and `to_dicts()` (the subscriber messages, as of a frame) and
    `frame()` (what the store writes), without a frame per packet."""

    __slots__ = ("kind", "rows")
    _schemas: dict[str, tuple] | None = None
    _split: dict[str, tuple[list[str], list[type]]] | None = None

    def __init__(self, kind: str, rows: list[tuple]):
        self.kind = kind
        self.rows = rows

    def __getstate__(self):
        return self.kind, self.rows

    def __setstate__(self, state):
        self.kind, self.rows = state

    @classmethod
    def schemas(cls) -> dict[str, tuple]:
        if cls._schemas is None:
            cls._schemas = _row_schemas()
        return cls._schemas

    @classmethod
    def of(cls, df) -> LiveRows | pl.DataFrame | None:
        """None for no rows, the frame itself if its schema is neither of the two."""
        if not isinstance(df, pl.DataFrame) or df.height == 0:
            return None
        # names, then the types' classes (the two schemas' types have no parameters, so the class
        # is the type): `df.schema` and `DataType.__eq__` cost ~25 us per frame, this ~5 us
        names = df.columns
        for kind, (schema_names, classes) in cls._names_and_classes().items():
            if names == schema_names and [type(d) for d in df.dtypes] == classes:
                return cls(kind, df.rows())
        return df

    @classmethod
    def _names_and_classes(cls) -> dict[str, tuple[list[str], list[type]]]:
        if cls._split is None:
            split = {}
            for kind, schema in cls.schemas().items():
                unparametrised = all(type(d) in _PLAIN_TYPES for _, d in schema)
                assert unparametrised, f"{kind}: a type with parameters needs DataType equality here"
                split[kind] = ([n for n, _ in schema], [type(d) for _, d in schema])
            cls._split = split
        return cls._split

    @property
    def height(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.schemas()[self.kind]]

    def to_dicts(self) -> list[dict]:
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.rows]

    def frame(self) -> pl.DataFrame:
        return frame_of(self.kind, self.rows)


def frame_of(kind: str, rows: list[tuple]) -> pl.DataFrame:
    """The frame of rows of one `LiveRows` kind (the worker's frame, value for value)."""
    return pl.DataFrame(rows, schema=dict(LiveRows.schemas()[kind]), orient="row")


def compact_packet(packet) -> tuple:
    """A stored packet as a worker gets it: its fields and its samples as bytes (pickled in ~1 us,
    a `Packet` with its array in ~7 us, and checked again for nothing: it was checked when stored)."""
    return (
        packet.device_id,
        packet.foot,
        packet.sequence,
        packet.timestamp_us,
        packet.acc_scale_per_mps2,
        packet.gyr_scale_per_dps,
        packet.counts.tobytes(),
    )


def compact_block(compact: tuple, sampling_rate_hz: float):
    """The `SampleBlock` of a `compact_packet` (`ingest.stream_receiver.counts_block`: what
    `packet_block` gives the `Packet`, without building one)."""
    _, _, sequence, timestamp_us, acc_scale, gyr_scale, counts = compact
    samples = np.frombuffer(counts, np.int16).reshape(-1, AXES)
    return counts_block(samples, timestamp_us, acc_scale, gyr_scale, sequence, sampling_rate_hz)


# --- the worker process ---------------------------------------------------------------------
def _ms_until(deadline: float) -> int:
    """Milliseconds from now to a `time.perf_counter` deadline, rounded up (0 if past): a poll's
    timeout."""
    return max(math.ceil((deadline - time.perf_counter()) * 1e3), 0)


class _Worker:
    """The analyzers of one worker process, their waiting packets, and the rows gathered for one
    metric query.

    A stream's packet is begun (`begin_push`) in a round; if it completed rows, their metric queries
    wait in `due` (the stream takes no further packet meanwhile) until `GATHER_S` after the first
    of them or until `GATHER_MAX` streams wait, then run as one query (`resolve_together`) and the
    rows go out at once. The outputs of packets that completed nothing are sent with the next rows,
    before a reply, or once `HOLD_S` old: one message back per gathering, not per packet."""

    def __init__(self, conn, analysis_settings, results_dir: str):
        self.conn = conn
        self.analysis = analysis_settings
        self.results_dir = results_dir
        self.analyzers: dict[int, tuple[object, float]] = {}  # stream id -> (analyzer, rate Hz)
        # stream id -> (push id, index, packet as `compact_packet` gives it), in stored order
        self.waiting: dict[int, deque] = {}
        self.due: dict[int, tuple[int, int]] = {}  # stream id -> (push id, index): queries waiting
        self.due_since = 0.0  # perf_counter s when the oldest of `due` was begun
        self.outbox: list[tuple] = []  # outputs not sent yet (see `OnOutput`)
        self.outbox_since = 0.0  # perf_counter s of the oldest of them
        self.sent_pieces: dict[int, tuple | None] = {}  # stream id -> mountings its last output sent
        self.queries_ = 0  # metric queries run by `_resolve_due` (rows' groups)
        self.messages_ = 0  # messages sent to the server

    def send(self, message) -> None:
        self.messages_ += 1
        self.conn.send(message)

    def _output(self, out: tuple) -> None:
        if not self.outbox:
            self.outbox_since = time.perf_counter()
        self.outbox.append(out)

    def _flush(self) -> None:
        """Send the outputs waiting, as one message."""
        if self.outbox:
            outs, self.outbox = self.outbox, []
            self.send(("out", outs))

    def _receive(self) -> bool:
        """Read one message from the server and handle what it holds; False once the server's end
        has closed."""
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            return False
        self._handle_all(message)
        return True

    def _handle_all(self, message) -> None:
        if message[0] == MANY:  # the server's batches (a sender thread's may hold posted ones)
            for one in message[1]:
                self._handle_all(one)
        else:
            self._handle(message)

    def run(self) -> None:
        # The messages are read by this loop between rounds (a reader thread cost a thread
        # hand-off and a wake-up per message; the server's sender thread holds what does not fit
        # in the socket's buffer meanwhile). A poll object, not `Connection.poll`, which builds a
        # selector per call (~20 us, once per round).
        arrived = select.poll()
        arrived.register(self.conn.fileno(), select.POLLIN)
        while True:
            if not self.waiting and not self.due:
                # idle: wait for the next message; outputs without rows go once HOLD_S old
                while self.outbox and not arrived.poll(_ms_until(self.outbox_since + HOLD_S)):
                    self._flush()
                if not self._receive():
                    return
            while arrived.poll(0):  # everything that has arrived (or the end), then a round
                if not self._receive():
                    return
            if any(sid not in self.due for sid in self.waiting):
                self._round()
            elif self.due:
                # nothing to push: the due rows wait for other streams' packets until their bound
                if arrived.poll(_ms_until(self.due_since + GATHER_S)):
                    continue
                self._resolve_due()
            if self.outbox and time.perf_counter() - self.outbox_since >= HOLD_S:
                self._flush()

    def _handle(self, message) -> None:
        kind, sid = message[0], message[1]
        if kind == "push":
            _, _, push_id, packets = message
            q = self.waiting.setdefault(sid, deque())
            q.extend((push_id, i, p) for i, p in enumerate(packets))
            return
        call_id = message[2]
        try:
            self._drain(sid)  # a call sees every packet sent before it
            result = getattr(self, f"_{kind}")(sid, *message[3:])
            reply = ("reply", call_id, result, None)
        except BaseException as exc:
            reply = ("reply", call_id, None, _portable(exc))
        self._flush()  # the outputs of the packets sent before the call reach the server first
        self.send(reply)

    def _open(self, sid: int, hello, packets: list, closed: bool):
        from strideflow.ingest.stream_receiver import packet_block
        from strideflow.service.live.registry import default_analyzer

        analyzer = default_analyzer(hello, analysis=self.analysis, results_dir=self.results_dir)
        failures: list[str] = []
        for packet in packets:
            try:
                analyzer.push(packet_block(packet, hello.sampling_rate_hz))
            except Exception:  # as live: a packet the analysis fails on is kept, not fatal
                failures.append(f"packet {packet.sequence}: {traceback.format_exc()}")
        if closed:
            analyzer.finish()
        self.analyzers[sid] = (analyzer, hello.sampling_rate_hz)
        self.sent_pieces.pop(sid, None)
        return _frame(analyzer.strides_), failures, self._snapshot(sid)

    def _finish(self, sid: int):
        analyzer, _ = self.analyzers[sid]
        out = analyzer.finish()
        return _frame(out.strides), _frame(out.stances), self._snapshot(sid)

    def _snapshot(self, sid: int):
        analyzer, _ = self.analyzers[sid]
        return getattr(analyzer, "curves_", None), _pieces(analyzer)

    def _close(self, sid: int):
        self.analyzers.pop(sid, None)
        self.waiting.pop(sid, None)
        self.sent_pieces.pop(sid, None)

    def _drain(self, sid: int) -> None:
        """Every packet of stream `sid` analysed and its rows resolved (and every other due row)."""
        self._resolve_due()
        while self.waiting.get(sid):
            self._round(only=sid)
            self._resolve_due()

    def _round(self, only: int | None = None) -> None:
        """Begin the next packet of each stream with packets waiting and no rows due (or of stream
        `only`); the due rows are resolved once they reach their bound, within the round too."""
        sids = [only] if only is not None else [sid for sid in self.waiting if sid not in self.due]
        for sid in sids:
            q = self.waiting[sid]
            push_id, index, packet = q.popleft()
            if not q:
                del self.waiting[sid]
            if sid not in self.analyzers:
                continue  # closed meanwhile
            analyzer, rate = self.analyzers[sid]
            try:
                analyzer.begin_push(compact_block(packet, rate))
            except Exception as exc:
                try:
                    analyzer.resolve()  # rows completed before the failure are kept, as by push()
                except Exception:
                    pass
                self._output((push_id, index, None, None, _portable(exc), NOT_SENT))
                self._flush()  # a failure is reported at once
                continue
            if analyzer.pending_:
                if not self.due:
                    self.due_since = time.perf_counter()
                self.due[sid] = (push_id, index)
                if len(self.due) >= GATHER_MAX:
                    self._resolve_due()
            else:  # completed nothing: no query to wait for
                self._output(self._end(sid, push_id, index))
            if self.due and time.perf_counter() - self.due_since >= GATHER_S:
                self._resolve_due()

    def _resolve_due(self) -> None:
        """Run the due rows' metric queries as one and send every output waiting."""
        from strideflow.analytics.live_analyzer import resolve_together

        if not self.due:
            return
        group, self.due = list(self.due.items()), {}
        failed = resolve_together([self.analyzers[sid][0] for sid, _ in group])
        self.queries_ += 1
        for i, (sid, (push_id, index)) in enumerate(group):
            if i in failed:
                self._output((push_id, index, None, None, _portable(failed[i]), NOT_SENT))
            else:
                self._output(self._end(sid, push_id, index))
        self._flush()

    def _end(self, sid: int, push_id: int, index: int) -> tuple:
        """The output of stream `sid`'s begun packet whose queries have run."""
        analyzer = self.analyzers[sid][0]
        try:
            if hasattr(analyzer, "end_push_rows"):  # the rows as tuples already, no table built
                stride_rows, stance_rows = analyzer.end_push_rows()
                if not stride_rows and not stance_rows:
                    return (push_id, index, None, None, None, NOT_SENT)  # most packets
                strides = LiveRows("strides", stride_rows) if stride_rows else None
                stances = LiveRows("stances", stance_rows) if stance_rows else None
            else:
                strides, stances = (LiveRows.of(f) for f in analyzer.end_push())
            # the mountings the messages of these rows are labelled with (service.live.publish)
            pieces = NOT_SENT if strides is None and stances is None else self._mountings(sid, analyzer)
            return (push_id, index, strides, stances, None, pieces)
        except Exception as exc:
            return (push_id, index, None, None, _portable(exc), NOT_SENT)

    def _mountings(self, sid: int, analyzer) -> tuple | str | None:
        """The stream's mountings for an output with rows, UNCHANGED when its last such output sent
        the same (a `LiveMountings` replaces its `pieces_` tuple when they change)."""
        pieces = _pieces(analyzer)
        if sid in self.sent_pieces and self.sent_pieces[sid] is pieces:
            return UNCHANGED
        self.sent_pieces[sid] = pieces
        return pieces


def worker_main(fd: int) -> None:
    """A worker process's life: settings first, then messages until the server's end closes."""
    conn = Connection(fd)
    try:
        analysis_settings, results_dir = conn.recv()
        # the analysis' modules now, not at the first stream: they take ~1-2 s of CPU to import
        # (Polars, SciPy, the compiled kernels' caches), which the first stream's rows waited for
        import strideflow.analytics.live_analyzer  # noqa: F401
        import strideflow.service.live.registry  # noqa: F401
        from strideflow.hardware.heap import settle_collector

        settle_collector()
        _Worker(conn, analysis_settings, results_dir).run()
    except (EOFError, OSError):  # the server closed the socket (stopped, or died)
        pass
    # Nothing of a worker outlives it (its analyzers are rebuilt from the logs): skip the
    # interpreter's teardown of Polars, Numba and NumPy, which took ~0.3 s and held a stopping
    # server that long.
    os._exit(0)


# --- the server side ------------------------------------------------------------------------
DIRECT_MAX_BYTES = 16384  # larger messages (a log's replay) go through the sender thread


class _Unsent(NamedTuple):
    """The rest of a frame the socket took only part of: the sender thread writes it first."""

    rest: bytes


def spawn_child(code: str) -> tuple[subprocess.Popen, socket.socket]:
    """A `python -c code <fd>` child process (WORKER_ENV) and our end of the socket pair whose
    other end is its descriptor `fd` (no fork of a threaded server, see the module doc)."""
    ours, theirs = socket.socketpair()
    with theirs:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env={**os.environ, **WORKER_ENV},
        )
    return process, ours


class _Link:
    """The server's end of one worker process: messages are written at once when the socket takes
    them whole without waiting, else by a sender thread (a busy worker must never block the event
    loop on a full pipe); a reader thread reads the worker's."""

    def __init__(self, pool: AnalysisWorkers, number: int, analysis_settings, results_dir: str):
        self.pool = pool
        self.process, ours = spawn_child(_WORKER_CODE)
        self._sock = ours  # shut down on close, which wakes the reader and ends the worker
        self.conn = Connection(os.dup(ours.fileno()))
        self.streams = 0
        self.alive = True
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._send_lock = threading.Lock()
        self._queued = 1  # messages in the outbox not written yet: while any, the rest queue behind
        self._posted: list = []  # messages `post`ed in this turn of the event loop, not sent yet
        self.outbox.put((analysis_settings, results_dir))  # the worker's first message
        threading.Thread(target=self._send_loop, daemon=True, name=f"live-analysis-send-{number}").start()
        threading.Thread(target=self._read_loop, daemon=True, name=f"live-analysis-read-{number}").start()

    def send(self, message) -> None:
        """Write `message` now if nothing waits before it and the socket takes it whole without
        waiting, else queue it for the sender thread; after the messages `post`ed so far. Handing
        every packet to the thread cost a wake-up each (~0.1 ms of CPU per packet, under load); a
        100 ms packet's message is a few hundred bytes, which the socket's buffer takes unless the
        worker is far behind."""
        with self._send_lock:
            if self._posted:
                message, self._posted = (MANY, [*self._posted, message]), []
            self._write(message)

    def post(self, message, loop: asyncio.AbstractEventLoop) -> None:
        """Send `message` (from `loop`'s thread) with the others posted in the same turn of the
        loop, as one message once the turn's callbacks have run: the streams whose packets were
        stored in one turn cost the worker one read and the server one write."""
        with self._send_lock:
            self._posted.append(message)
            first = len(self._posted) == 1
        if first:
            loop.call_soon(self._send_posted)

    def _send_posted(self) -> None:
        with self._send_lock:
            posted, self._posted = self._posted, []
            if posted:
                self._write(posted[0] if len(posted) == 1 else (MANY, posted))

    def _write(self, message) -> None:
        """`send`'s write (the caller holds the send lock)."""
        data = bytes(ForkingPickler.dumps(message))  # what `Connection.send` writes
        if self._queued == 0 and len(data) <= DIRECT_MAX_BYTES:
            # `Connection`'s framing (its 4-byte length first); the worker reads it with recv()
            frame = struct.pack("!i", len(data)) + data
            try:
                sent = self._sock.send(frame, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return  # closed: the reader sees it and fails what waits on the worker
            if sent == len(frame):
                return
            message = _Unsent(frame[sent:])  # the rest of the frame before anything else
        self._queued += 1
        self.outbox.put(message)

    def _send_loop(self) -> None:
        first = True  # the settings go alone (the worker reads them before its loop)
        while True:
            messages = [self.outbox.get()]
            while not first:  # what queued meanwhile goes in the same pickle and write
                try:
                    messages.append(self.outbox.get_nowait())
                except queue.Empty:
                    break
            first = False
            stop = None in messages
            if stop:
                messages = messages[: messages.index(None)]
            taken = len(messages)
            try:
                if messages and isinstance(messages[0], _Unsent):  # only ever first: nothing after
                    self._sock.sendall(messages.pop(0).rest)  # it was written directly
                if len(messages) == 1:
                    self.conn.send(messages[0])
                elif messages:
                    self.conn.send((MANY, messages))
            except (OSError, ValueError):
                return  # the reader sees the pipe close and fails what waits
            with self._send_lock:
                self._queued -= taken
            if stop:
                return

    def _read_loop(self) -> None:
        try:
            while True:
                self.pool._dispatch(self.conn.recv())
        except (EOFError, OSError):
            pass
        finally:
            self.alive = False
            self.conn.close()
            self.pool._lost(self)

    def close(self) -> None:
        self.begin_close()
        self.wait_closed()

    def begin_close(self) -> None:
        """Tell the worker to end (it exits when it sees its socket close)."""
        self.outbox.put(None)  # the sender stops
        self.alive = False
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # the reader and the worker see the end
        self._sock.close()

    def wait_closed(self) -> None:
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class AnalysisWorkers:
    """`n` worker processes running the live analyzers (see the module doc)."""

    def __init__(self, n: int, analysis_settings, results_dir: str | Path):
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # call id -> (link, future, kind, stream id)
        self._calls: dict[int, tuple[_Link, concurrent.futures.Future, str, int]] = {}
        # push id -> (link, callback, outputs left, the event loop the callback runs on or None)
        self._pushes: dict[int, tuple[_Link, OnOutput, int, asyncio.AbstractEventLoop | None]] = {}
        self._settings = (analysis_settings, str(results_dir))
        self._analyzers: dict[int, RemoteAnalyzer] = {}  # stream id -> its analyzer
        self._closing = False
        self._dead: queue.SimpleQueue = queue.SimpleQueue()  # lost links, for the restarter thread
        self._restarter: threading.Thread | None = None
        self._restarts: deque[float] = deque()  # when replacements were started (monotonic s)
        self.restarts_ = 0  # replacement workers started
        self.links = [_Link(self, i, *self._settings) for i in range(n)]

    def close(self) -> None:
        with self._lock:
            self._closing = True
            links = list(self.links)
        self._dead.put(None)
        # all told first, then waited for: a server stops in one worker's exit time, not n of them
        for link in links:
            link.begin_close()
        for link in links:
            link.wait_closed()
        for analyzer in list(self._analyzers.values()):
            analyzer._notify()

    def assign(self) -> _Link:
        with self._lock:
            live = [link for link in self.links if link.alive] or self.links
            link = min(live, key=lambda x: x.streams)
            link.streams += 1
            return link

    def next_id(self) -> int:
        return next(self._ids)

    def call(self, link: _Link, kind: str, sid: int, *args, on_done=None) -> concurrent.futures.Future:
        """Call `kind` on stream `sid` in the link's worker; `on_done(future)` runs in the reader
        thread as the reply arrives, before any later message of that worker is handled."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if on_done is not None:
            future.add_done_callback(on_done)
        call_id = self.next_id()
        with self._lock:
            if not link.alive:
                future.set_exception(WorkerLost())
                return future
            self._calls[call_id] = (link, future, kind, sid)
        link.send((kind, sid, call_id, *args))
        return future

    def push(
        self,
        link: _Link,
        sid: int,
        packets: list,
        on_output: OnOutput,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Analyse packets of stream `sid`; `on_output` gets each one's rows, in order: on `loop`
        when given (called from its thread; the packets go with the others of its turn, and all
        the outputs of a worker's message reach it in one hand-off), else on a reader thread."""
        push_id = self.next_id()
        with self._lock:
            if not link.alive:
                dead = True
            else:
                dead = False
                self._pushes[push_id] = (link, on_output, len(packets), loop)
        if dead:
            error = WorkerLost()
            for i in range(len(packets)):
                on_output(i, None, None, error, NOT_SENT)
            return
        message = ("push", sid, push_id, [compact_packet(p) for p in packets])
        if loop is None:
            link.send(message)
        else:
            link.post(message, loop)

    def _dispatch(self, message) -> None:
        if message[0] == "reply":
            _, call_id, result, error = message
            with self._lock:
                future = self._calls.pop(call_id, (None, None))[1]
            if future is None:
                return  # a call nobody waits for ("close")
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
            return
        on_loops: dict[asyncio.AbstractEventLoop, list] = {}
        for out in message[1]:
            push_id = out[0]
            with self._lock:
                link, on_output, left, loop = self._pushes[push_id]
                if left > 1:
                    self._pushes[push_id] = (link, on_output, left - 1, loop)
                else:
                    del self._pushes[push_id]
            if loop is None:
                on_output(*out[1:])
            else:
                on_loops.setdefault(loop, []).append((on_output, out[1:]))
        for loop, calls in on_loops.items():
            _call_soon(loop, calls)

    def _lost(self, link: _Link) -> None:
        """A worker's pipe closed: fail what waits on it, blame the loss, and (unless the pool is
        closing) have the restarter replace the worker and rebuild its streams."""
        error = WorkerLost()
        with self._lock:
            calls = [(k, f, kind, sid) for k, (x, f, kind, sid) in self._calls.items() if x is link]
            pushes = [(k, cb, left, loop) for k, (x, cb, left, loop) in self._pushes.items() if x is link]
            for k, *_ in calls:
                del self._calls[k]
            for k, *_ in pushes:
                del self._pushes[k]
            closing = self._closing
            if not closing:
                opening = {sid for _, _, kind, sid in calls if kind == "open"}
                on_link = [a for a in self._analyzers.values() if a.link is link]
                # a stream being rebuilt when the worker died is the likely cause; else all are suspect
                blamed = [a for a in on_link if a.sid in opening] or on_link
                for analyzer in blamed:
                    analyzer.losses += 1
                if self._restarter is None:
                    self._restarter = threading.Thread(
                        target=self._restart_loop, daemon=True, name="live-analysis-restarter"
                    )
                    self._restarter.start()
                self._dead.put(link)
        if not closing:
            log.error(
                "live analysis worker process %d stopped with %d streams; %d analyses waiting on it "
                "failed; starting a replacement",
                link.process.pid,
                len(on_link),
                len(pushes),
            )
        for _, future, _, _ in calls:
            future.set_exception(error)
        for _, on_output, left, loop in pushes:
            # the indices are not known here; the callback counts them
            lost = [(on_output, (-1 - i, None, None, error, NOT_SENT)) for i in range(left)]
            if loop is None:
                _run_outputs(lost)
            else:
                _call_soon(loop, lost)

    def _register(self, analyzer: RemoteAnalyzer) -> None:
        with self._lock:
            self._analyzers[analyzer.sid] = analyzer

    def _unregister(self, analyzer: RemoteAnalyzer) -> None:
        with self._lock:
            self._analyzers.pop(analyzer.sid, None)
            analyzer.link.streams -= 1

    def _restart_loop(self) -> None:
        while True:
            dead = self._dead.get()
            if dead is None:
                return
            try:
                self._replace(dead)
            except Exception:  # the restarter must outlive one failed replacement
                log.exception("replacing a live analysis worker process failed")

    def _replace(self, dead: _Link) -> None:
        """Start a worker in the dead one's slot and rebuild there every stream left on a dead worker."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            dead.process.wait(timeout=5)  # reaped (its exit code logged)
        now = time.monotonic()
        with self._lock:
            if self._closing or dead not in self.links:
                return
            while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
                self._restarts.popleft()
            refused = len(self._restarts) >= MAX_RESTARTS
            if not refused:
                self._restarts.append(now)
            slot = self.links.index(dead)
        if refused:
            log.error(
                "live analysis worker process %d exited (code %s): %d replacements within %.0f s, not "
                "starting another; its streams are stored without analysis until the server restarts",
                dead.process.pid,
                dead.process.returncode,
                MAX_RESTARTS,
                RESTART_WINDOW_S,
            )
            for analyzer in self._orphans():
                analyzer._give_up("no replacement worker")
            return
        new = _Link(self, slot, *self._settings)
        with self._lock:
            if self._closing:
                new.close()
                return
            self.links[slot] = new
            self.restarts_ += 1
        log.warning(
            "live analysis worker process %d exited (code %s); replaced by process %d",
            dead.process.pid,
            dead.process.returncode,
            new.process.pid,
        )
        for analyzer in self._orphans():
            if not new.alive:
                return  # the replacement died too: the restarter comes back for the rest
            if analyzer.losses > MAX_LOSSES:
                analyzer._give_up(f"{analyzer.losses} worker losses while analysing it")
                continue
            analyzer._rebuild(new)

    def _orphans(self) -> list[RemoteAnalyzer]:
        """The open, unfinished analyzers whose worker is dead and that are not given up."""
        with self._lock:
            return [
                a
                for a in self._analyzers.values()
                if a.opened and not a.finished and not a.abandoned and not a.link.alive
            ]


def _run_outputs(calls: list[tuple[OnOutput, tuple]]) -> None:
    for on_output, args in calls:
        on_output(*args)


def _call_soon(loop: asyncio.AbstractEventLoop, calls: list[tuple[OnOutput, tuple]]) -> None:
    """Run the calls in order on `loop` (from another thread); nothing if it has closed (its
    server has stopped: nobody waits for the outputs)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_run_outputs, calls)


def _frames(parts: list) -> list[pl.DataFrame]:
    """Frames and `LiveRows` in order as frames, each run of `LiveRows` of one kind as one frame."""
    out: list[pl.DataFrame] = []
    run: list[tuple] = []
    kind = None
    for part in parts:
        if run and not (isinstance(part, LiveRows) and part.kind == kind):
            out.append(frame_of(kind, run))
            run = []
        if isinstance(part, LiveRows):
            run.extend(part.rows)
            kind = part.kind
        else:
            out.append(part)
    if run:
        out.append(frame_of(kind, run))
    return out


class RemoteAnalyzer:
    """A stream's analyzer running in a worker process, as the server process sees it.

    Attributes
    ----------
    strides_ : pl.DataFrame
        Every stride the worker emitted for this stream (STRIDES_SCHEMA).
    curves_ : pl.DataFrame | None
        The stream's session curves at the last refresh (`refresh`), as the analyzer gives them.
    mountings_ : object | None
        With `pieces_`, the stream's mountings at the last refresh; None when the frame was given.
    """

    def __init__(self, workers: AnalysisWorkers, hello, wal_root: str | Path | None = None):
        self.workers = workers
        self.hello = hello
        self.wal_root = wal_root  # where the stream's log is, to rebuild it after a worker loss
        self.link = workers.assign()
        self.sid = workers.next_id()
        self._emitted: list[pl.DataFrame] = []
        self._merge_lock = threading.Lock()
        self._rebuilt = False  # strides_ may then hold a row twice (one emitted before the loss)
        self.curves_: pl.DataFrame | None = None
        self.mountings_ = None
        self._output_pieces = None  # the mountings the worker's last output with rows carried
        self._closed = False
        # packets sent whose rows have not come back, and the future a connection that must wait
        # for them awaits (`service.live.analysis`; event loop only)
        self.waiting_ = 0
        self.caught_up_: asyncio.Future | None = None
        self.pushed_ = 0  # packets sent to the analysis (the log's first pushed_ packets)
        self._push_lock = threading.Lock()  # a push and a move to another worker, one at a time
        self._changed = threading.Condition()  # notified when the analyzer moves or is given up
        self.opened = False  # its analyzer was built in the worker
        self.finished = False
        self.abandoned = False  # left without analysis after worker losses
        self.losses = 0  # worker losses blamed on this stream
        self.rebuilds_ = 0
        workers._register(self)

    @property
    def strides_(self) -> pl.DataFrame:
        from strideflow.analytics.live_analyzer import _NO_STRIDES

        with self._merge_lock:
            if not self._emitted:
                return _NO_STRIDES
            if len(self._emitted) > 1 or isinstance(self._emitted[0], LiveRows):
                merged = pl.concat(_frames(self._emitted))
                if self._rebuilt:  # a row emitted before the loss and rebuilt from the log: once
                    from strideflow.hardware import schema as S

                    merged = merged.unique(subset=[S.FOOT, S.IC_T], keep="first", maintain_order=True)
                self._emitted[:] = [merged]
            return self._emitted[0]

    def add(self, strides: pl.DataFrame | LiveRows | None) -> None:
        """Strides the worker emitted (kept for the store)."""
        if strides is not None and strides.height:
            with self._merge_lock:
                self._emitted.append(strides)

    def _take_snapshot(self, snapshot) -> None:
        curves, pieces = snapshot
        self.curves_ = curves
        self._set_mountings(pieces)

    def take_mountings(self, pieces) -> None:
        """The stream's mountings as an output of the worker sent them: NOT_SENT (no rows) keeps
        them, UNCHANGED stands for those of its last output that carried them (None: the frame
        was given)."""
        if isinstance(pieces, str):
            if pieces != UNCHANGED:
                return
            pieces = self._output_pieces
        else:
            self._output_pieces = pieces
        self._set_mountings(pieces)

    def _set_mountings(self, pieces) -> None:
        self.mountings_ = None if pieces is None else SimpleNamespace(pieces_=pieces)

    def replay(self, packets: list, closed: bool) -> list[str]:
        """Build the analyzer in its worker from a log's packets (blocking); the failures' texts."""
        with self._push_lock:
            future = self.workers.call(self.link, "open", self.sid, self.hello, list(packets), closed)
            self.pushed_ = len(packets)
        strides, failures, snapshot = future.result()
        self.add(strides)
        self._take_snapshot(snapshot)
        self.opened = True
        self.finished = closed
        return failures

    def push_packets(
        self, packets: list, on_output: OnOutput, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Send packets to the analysis (`AnalysisWorkers.push`)."""
        with self._push_lock:
            self.pushed_ += len(packets)
            self.workers.push(self.link, self.sid, packets, on_output, loop)

    def _rebuild(self, link: _Link) -> bool:
        """Move the analyzer to `link` (a replacement worker) and rebuild it there from the log's
        first `pushed_` packets, sent before any later packet (blocking); whether it worked."""
        from strideflow.hardware.packets import decode_packet
        from strideflow.ingest.wal import read_wal, wal_path

        if self.wal_root is None:
            self._give_up("its log is not known")
            return False
        h = self.hello
        path = wal_path(self.wal_root, h.athlete_id, h.session_id, h.foot, h.device_id)
        while True:
            try:
                payloads = read_wal(path)[1]
                packets = [decode_packet(p) for p in payloads]
            except Exception as exc:
                self._give_up(f"its log cannot be read ({exc})")
                return False
            with self._push_lock:
                if self.pushed_ > len(packets):
                    continue  # packets stored and pushed since the log was read: read it again
                old, self.link = self.link, link
                with self.workers._lock:
                    old.streams -= 1
                    link.streams += 1
                future = self.workers.call(
                    link, "open", self.sid, self.hello, packets[: self.pushed_], False, on_done=self._reopened
                )
                count = self.pushed_
            break
        self._notify()  # a `finish` waiting for the move goes to the new worker, after the rebuild
        try:
            failures = future.result()[1]
        except Exception as exc:
            log.error("rebuilding the live analysis of %s after a worker loss failed: %s", self.hello, exc)
            return False
        self.rebuilds_ += 1
        log.warning(
            "live analysis of %s rebuilt from its log (%d packets) in worker process %d",
            self.hello,
            count,
            link.process.pid,
        )
        if failures:
            log.error("live analysis failed rebuilding %s, %s", self.hello, failures[0])
        return True

    def _reopened(self, future: concurrent.futures.Future) -> None:
        """The rebuild's reply (in the reader thread, before the rows of later packets): its strides
        replace those emitted so far, which the rebuild gives again."""
        if future.exception() is not None:
            return
        strides, _, snapshot = future.result()
        with self._merge_lock:
            self._emitted[:] = [] if strides is None else [strides]
            self._rebuilt = True
        self._take_snapshot(snapshot)

    def _give_up(self, reason: str) -> None:
        self.abandoned = True
        log.error(
            "live analysis of %s stopped: %s; its packets are stored and analysed when the server restarts",
            self.hello,
            reason,
        )
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _moved(self, old: _Link) -> bool:
        """Wait until the analyzer left the lost worker `old`; False if it will not."""
        with self._changed:
            self._changed.wait_for(
                lambda: self.link is not old or self.abandoned or self.workers._closing, REBUILD_WAIT_S
            )
        return self.link is not old and not self.abandoned

    def finish(self):
        """End the stream in its worker (blocking; after a rebuild if the worker was lost); its
        `LiveOutput`."""
        from strideflow.analytics.live_analyzer import _NO_STANCES, _NO_STRIDES, LiveOutput

        while True:
            link = self.link
            try:
                strides, stances, snapshot = self.workers.call(link, "finish", self.sid).result()
                break
            except WorkerLost:
                if not self._moved(link):
                    raise
        self.finished = True
        self.add(strides)
        self._take_snapshot(snapshot)
        return LiveOutput(
            strides if strides is not None else _NO_STRIDES, stances if stances is not None else _NO_STANCES
        )

    def refresh(self) -> concurrent.futures.Future:
        """Fetch the curves and mountings as they are after every packet sent so far."""
        future = self.workers.call(self.link, "snapshot", self.sid)
        future.add_done_callback(lambda f: f.exception() is None and self._take_snapshot(f.result()))
        return future

    def close(self) -> None:
        """Drop the analyzer in its worker."""
        if self._closed:
            return
        self._closed = True
        self.workers._unregister(self)
        if self.link.alive:
            self.link.send(("close", self.sid, self.workers.next_id()))
