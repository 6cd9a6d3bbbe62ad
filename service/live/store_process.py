"""The live store in its own process: `StoreProcess` (the server's end) and `store_main` (the process).

Why a process: the periodic store (`service.live.store.SessionStore`) labels, concatenates and
summarises every stored session's strides in Python and Polars; in threads of the server process
it held the interpreter lock that the event loop needs for frames, acknowledgements, the hand-off
to the analysis workers and the rows out (~12 % of the server's samples at 200 pods). A store
process per server process owns a `SessionStore` and does all of that there, at a lower CPU
priority (`STORE_NICE`: stored results may lag by a few seconds, acknowledgements and rows may
not). It is started as the analysis workers are (`python -c`, a socket pair: no fork of a
threaded server).

What crosses, per pass (`store_pass`, one at a time, in a thread of the server): for each
session, its streams' strides new since the last hand-off (the store process keeps each stream's
strides and appends them), each stream's curves and mountings as of now, its feet, whether its
streams have ended or one is closing, and its date. A stream's strides only grow, so the rows
handed off before are the head of its strides now, as their keys (foot, IC, stride index) tell;
when they do not (a stream rebuilt differently, a new stream object of the same device) its whole
strides go again. The reply is each session's store error or None; the server marks the failed
sessions for storing again and `stored` gets the others' streams.

Failure: a store that fails is reported and retried at the next pass (its session stays marked).
A store process that dies (or whose socket breaks) is replaced at once and the pass is sent again
whole to the replacement, with every stream's strides (the server holds them all): nothing that
was acknowledged is lost, the sessions are stored whole or appended as after a restart (`_adopt`).
If the replacement fails the pass too, its sessions stay marked and the next pass tries again.

Measured (`bench stream`, K = 128, 2 cores shared with other runs, load 7-18): the store process
took 26-27 % of the CPU outside the analysis workers (its ~1.5 s start-up import included), which
the server process no longer spends; the server's side of a pass is the strides new since the
last one (~0.1 ms per stream to compare the keys, slice and pickle them). On an idle machine at
K = 128 (four alternated pairs, benchmarks/README.md, session 15) it saved no CPU per stride and
the p99 was higher with it in all four, so it is opt-in (`ServiceSettings.live_store_process`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from multiprocessing.connection import Connection
from pathlib import Path

import polars as pl

from strideflow.hardware.heap import settle_collector
from strideflow.service.live.store import MAX_CHUNKS, SessionStore, _starts_with
from strideflow.service.live.workers import _portable, spawn_child

log = logging.getLogger("strideflow.service")

_STORE_CODE = (
    "import sys; from strideflow.service.live.store_process import store_main; store_main(int(sys.argv[1]))"
)
STORE_NICE = 10  # the store process's niceness: below the server and the analysis workers
StreamId = tuple[str, str, str, str]  # athlete, session, device, foot


class StoreLost(RuntimeError):
    """The store process stopped during a pass."""

    def __init__(self):
        super().__init__("the live store process has stopped")


class StoreProcess:
    """The server's end of its store process (see the module doc); `store_pass` blocks."""

    def __init__(
        self, results_dir: str | Path, wal_root: str | Path, analysis_settings, nice: int = STORE_NICE
    ):
        self._settings = (str(results_dir), str(wal_root), analysis_settings, nice)
        self._lock = threading.Lock()  # one pass at a time
        # stream -> (its strides at the last hand-off, as this process had them): what the store
        # process holds of it
        self._sent: dict[StreamId, pl.DataFrame] = {}
        # sessions that left the server's memory since the last pass (`forget`)
        self._gone: set[tuple[str, str]] = set()
        self.process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self.restarts_ = 0
        self.start()

    def start(self) -> None:
        """Start the store process (a replacement forgets what the last one held)."""
        self.process, ours = spawn_child(_STORE_CODE)
        self._conn = Connection(ours.detach())
        self._conn.send(self._settings)
        self._sent.clear()

    def close(self) -> None:
        """End the store process (it exits when its socket closes)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self.process is not None:
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)

    def store_pass(self, jobs: list[tuple], dates: list[str | None]) -> list[Exception | None]:
        """Store the sessions of a pass (`SessionStore._store`'s arguments each, with their
        `dates`) in the store process; each session's error or None. A lost store process is
        replaced and the pass sent again once; then `StoreLost`."""
        with self._lock:
            for _ in range(2):
                if self._conn is None:
                    raise StoreLost()
                message, sent = self._handoff(jobs, dates)
                gone = set(self._gone)  # `forget` may add to it meanwhile (from the event loop)
                try:
                    self._conn.send(("pass", sorted(gone), message))
                    errors = self._conn.recv()
                except (EOFError, OSError):
                    self._replace()
                    continue
                self._gone -= gone
                for key in gone:  # dropped by the store process before this pass's sessions
                    self._drop(*key)
                self._sent.update(sent)
                for job in jobs:
                    if job[6]:  # ended: its streams leave memory after this store
                        self._drop(job[0], job[1])
                return errors
            raise StoreLost()

    def _replace(self) -> None:
        old = self.process
        with contextlib.suppress(OSError):
            self._conn.close()
        if old is not None:
            with contextlib.suppress(OSError):
                old.kill()
            old.wait()
        log.error(
            "live store process %d exited (code %s); starting a replacement",
            old.pid if old else -1,
            old.returncode if old else None,
        )
        self.restarts_ += 1
        self.start()

    def _handoff(self, jobs: list[tuple], dates: list[str | None]) -> tuple[list[tuple], dict]:
        """The pass as it crosses (each stream's strides as (rows held before, rows new)), and what
        the store process holds of each stream once it has it."""
        message, sent = [], {}
        for (athlete, session, parts, feet, curves, mountings, ended, closing), date in zip(
            jobs, dates, strict=True
        ):
            streams = []
            for strides, (device, foot, _) in zip(parts, mountings, strict=True):
                sid = (athlete, session, device, foot)
                held = self._sent.get(sid)
                # the rows held are the head of the strides now (the same frame: nothing new)
                same = held is not None and (held is strides or _starts_with(strides, held))
                base = held.height if same else 0
                streams.append((base, strides.slice(base) if base else strides))
                sent[sid] = strides
            message.append((athlete, session, streams, feet, curves, mountings, ended, closing, date))
        return message, sent

    def forget(self, key: tuple[str, str]) -> None:
        """The session has no stream in this process's memory any more (all stored): the store
        process drops its strides at the next pass."""
        self._gone.add(key)

    def _drop(self, athlete: str, session: str) -> None:
        for sid in [s for s in self._sent if s[:2] == (athlete, session)]:
            del self._sent[sid]


# --- the store process ----------------------------------------------------------------------
class _Server:
    """The store process's `SessionStore` and each stream's strides handed off so far."""

    def __init__(self, store):
        self.store = store
        self.strides: dict[StreamId, pl.DataFrame] = {}

    def run_pass(self, gone: list[tuple[str, str]], message: list[tuple]) -> list[Exception | None]:
        for key in gone:
            self._drop(key)
        jobs = []
        for athlete, session, streams, feet, curves, mountings, ended, closing, date in message:
            parts, present = [], set()
            for (base, rows), (device, foot, _) in zip(streams, mountings, strict=True):
                sid = (athlete, session, device, foot)
                present.add(sid)
                held = self.strides.get(sid)
                if base:
                    if held is None or held.height != base:  # the server's record says otherwise
                        raise RuntimeError(f"live store process: stream {sid} holds no {base} rows")
                    rows = pl.concat([held, rows]) if rows.height else held
                    if rows.n_chunks() > MAX_CHUNKS:  # one chunk per hand-off: slower to read
                        rows = rows.rechunk()
                self.strides[sid] = rows
                parts.append(rows)
            for sid in [s for s in self.strides if s[:2] == (athlete, session) and s not in present]:
                del self.strides[sid]  # a stream no longer in the server's memory
            if date is None:
                self.store.session_dates.pop((athlete, session), None)
            else:
                self.store.session_dates[(athlete, session)] = date
            jobs.append((athlete, session, parts, feet, curves, mountings, ended, closing))
        errors = self.store.store_all(jobs)
        for job in jobs:
            if job[6]:  # ended
                self._drop((job[0], job[1]))
        return [None if e is None else _portable(e) for e in errors]

    def _drop(self, key: tuple[str, str]) -> None:
        for sid in [s for s in self.strides if s[:2] == key]:
            del self.strides[sid]


def store_main(fd: int) -> None:
    """A store process's life: settings first, then passes until the server's end closes."""
    conn = Connection(fd)
    try:
        results_dir, wal_root, analysis_settings, nice = conn.recv()
        if nice:
            os.nice(nice)
        server = _Server(SessionStore(results_dir, wal_root, analysis_settings))
        settle_collector()  # a long-running process, like the analysis workers (hardware.heap)
        while True:
            kind, gone, message = conn.recv()
            assert kind == "pass", kind
            conn.send(server.run_pass(gone, message))
    except (EOFError, OSError):  # the server closed the socket (stopped, or died)
        pass
    # Nothing of the store outlives its process but what it wrote: skip the interpreter's teardown.
    os._exit(0)
