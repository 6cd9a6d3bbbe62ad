"""Storing live sessions: the sessions with new strides are written every `store_interval_s`.

A whole store writes a session's STRIDES (every stride of its streams so far), SESSIONS and FLAGS
from them, and CURVES (each analyzer's `curves_`, the mean and SD curves of its steady strides,
resampled by batch's code) with `analytics.sessions_store.write_session`, off the event loop: in
threads of the server process, or, when `process` is set, in the server's store process
(`service.live.store_process`, which runs `store_all` on a `SessionStore` of its own).

Mid-stream, a store appends instead (issue 19 item 2: a whole store rewrote the session, so its
cost grew with the session's length): the strides stored since the previous store of the session
go to a new live part `part-<n>-<n>.parquet` of the STRIDES partition (`analytics.partitions`;
the first append renames the whole store's `part-0.parquet` to `part-0-0.parquet`), and whenever
the newest `MERGE_FANOUT` parts each hold as many stores as the others (1, 8, 64, ...), they are
merged into one part, so a session of S stores has at most ~7 log8(S) parts and each row is
rewritten ~log8(S) times (twice in 20 minutes). The summaries (SESSIONS, FLAGS, CURVES and the
mountings record, which need every stride) are rebuilt by one rule: at the session's first
store in this process, whenever its stored strides have doubled since the last summary, once the
newest stored stride's IC is `SUMMARY_EVERY_S` (30 s) past the last summary's, and at every
whole store; so SESSIONS may lag the strides by up to ~35 s mid-stream (~5 s before). A store
appends while the partition holds what this process's last store left of its streams' feet
(`_can_append`); otherwise it reads the stored rows of those feet and appends after them when
they are the streams' first strides as labelled now (`_adopt`: a restart, a stream back from
another process, another foot joining). It is whole for the session's first store, when stored
rows differ (a remount relabels a stream's stored strides), and when every stream of the session
has ended: that last store writes `part-0.parquet` (then removes the live parts), so the stored
session is the one a whole store of the same strides writes, byte for byte.

Measured (`_store` driven with a 20-minute simulated two-foot session, one store per 5 s of it,
`benchmarks/README.md`, under load 11-19): CPU per 5 s store in the session's second minute 29-32
ms rewriting the session (3.8-4.2 ms per stride), 8-10 ms appending (1.1-1.3 ms); in its 20th
minute 48-56 ms (6.3-7.4 ms per stride) against 11-16 ms (1.5-2.0 ms). The first minute costs
~20 ms per store (the first whole store, summaries at each doubling).
(Chosen over keeping live strides in the SQL store: the partitions stay the one truth that batch,
Dask and the API read, with nothing to copy when the session ends.)

Rows (and curves) of feet that have no stream in
this process's memory (the other foot's stream ended earlier, or streams into another server
process) are kept from the stored partition, so storing never loses the other foot. The
read-modify-write of one session is serialised across server processes by an exclusive `flock`
on `<wal_root>/.store-locks/<hash of athlete, session>.lock`.

Mountings (issue 15): each stream's strides get batch's mounting columns (`mounting_uncertainty_deg`,
`mounting_id`, `remount`, `analytics.live_mountings.label_strides`), so the session's sessions and
flags rows (the toe-off flags withheld where the mounting's uncertainty could reach the threshold)
come from `write_session` as in batch; then the mountings the streams used are recorded with
`analytics.mountings.record_mountings`, the upload jobs' and the batch's own call, which holds the
athlete's mountings lock across processes.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from strideflow.analytics.batch import SOURCE, STREAM_SOURCE, read_marker, write_marker
from strideflow.analytics.curves import STRIDE_COUNT
from strideflow.analytics.live_mountings import LivePiece, label_strides, used_mountings
from strideflow.analytics.mountings import record_mountings
from strideflow.analytics.partitions import (
    CURVES,
    PART_FILE,
    STRIDES,
    STRIDES_ROW_GROUP_ROWS,
    chosen_parts,
    file_stamp,
    live_part_name,
    live_part_range,
    part_files,
    partition_dir,
)
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.sessions_store import (
    session_tables,
    session_tables_together,
    write_session,
    write_tables,
)
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FEET,
    FOOT,
    IC_T,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    REMOUNT,
    SESSION_ID,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
)
from strideflow.ingest.durable import fsync_dir, write_atomic
from strideflow.service.live.registry import LiveStream

if TYPE_CHECKING:
    from strideflow.service.live.store_process import StoreProcess

SessionKey = tuple[str, str]  # athlete_id, session_id
LOCKS_DIRNAME = ".store-locks"
# the extra strides columns batch writes that a live session stores too (analytics.pipeline)
MOUNTING_COLUMNS = {
    MOUNTING_UNCERTAINTY_DEG: pl.Float64(),
    MOUNTING_ID: pl.String(),
    REMOUNT: pl.Boolean(),
}
STORED_SCHEMA = {**STRIDES_SCHEMA, **MOUNTING_COLUMNS}
# per stream: (device_id, foot, its mountings so far; empty when its frame was given)
StreamMountings = tuple[str, str, tuple[LivePiece, ...]]
log = logging.getLogger("strideflow.service")
SUMMARY_EVERY_S = 30.0  # stride time (s of IC) after which an appending store rebuilds the summaries
MERGE_FANOUT = 8  # live parts of the same number of stores merged into one
MAX_CHUNKS = 32
# the periodic store's slots: each session is stored in one of them, every `STORE_SLOTS`-th pass
STORE_SLOTS = 5


@dataclass
class _Appending:
    """What this process stored of a session, so that its next store may append: the feet of its
    streams, the rows stored per stream (device, foot), the stored rows and newest IC (s) at the
    last summary, and the strides partition's files as the store left them (`_signature`)."""

    feet: frozenset
    stored: dict[tuple[str, str], int] = field(default_factory=dict)
    summary_rows: int = 0
    summary_ic_s: float = -np.inf
    files: tuple | None = None


class SessionStore:
    """Which sessions have unstored strides, and storing them."""

    def __init__(self, results_dir: str | Path, wal_root: str | Path, analysis_settings: AnalysisSettings):
        self.results_dir = Path(results_dir)
        self.locks_dir = Path(wal_root) / LOCKS_DIRNAME
        self.analysis_settings = analysis_settings
        # (athlete, session) -> yyyy-mm-dd stored with the session's tables (set by the stream route)
        self.session_dates: dict[SessionKey, str] = {}
        self.dirty: set[SessionKey] = set()
        self._lock = asyncio.Lock()
        # (table, athlete, session, feet, needs) -> (signature of the partition file, its rows of other
        # feet): a partition this store wrote itself keeps the rows it read before, so they are not
        # scanned again at every store (the signature changes when anyone else rewrites the file)
        self._kept: dict[tuple, tuple[tuple | None, pl.DataFrame | None]] = {}
        # (athlete, session, device, foot) -> (mountings, strides, labelled strides) of the last store
        self._labels: dict[tuple, tuple[tuple, pl.DataFrame, pl.DataFrame]] = {}
        self._used: set[tuple] = set()
        # (athlete, session) -> what its last store wrote, while its next one may append
        self._appending: dict[SessionKey, _Appending] = {}
        self.written_: dict[str, int] = {"parts": 0, "merges": 0, "whole": 0, "summaries": 0}
        # sessions that flush calls waiting for the store want stored (counted per call)
        self._wanted: Counter[SessionKey] = Counter()
        # (athlete, session) -> (labelled strides, curves, date, tables) built by `_prepare_whole`
        self._ahead: dict[SessionKey, tuple] = {}
        # (athlete, session, device, foot) -> (labels entry it followed, strides, mountings, labelled)
        # labelled ahead of a store (`_labelled` with keep False)
        self._early: dict[tuple, tuple] = {}
        # (athlete, session) -> its slot of the periodic store (`due`), given in turn as sessions come
        self._slots: dict[SessionKey, int] = {}
        self._next_slot = 0
        # the store process that writes the sessions (`service.live.store_process`); None: this one
        self.process: StoreProcess | None = None

    def mark(self, key: SessionKey) -> None:
        """The session has strides to store."""
        self.dirty.add(key)
        if key not in self._slots:
            self._slots[key] = self._next_slot
            self._next_slot = (self._next_slot + 1) % STORE_SLOTS

    def due(self, slot: int) -> set[SessionKey]:
        """The sessions with new strides whose slot of the periodic store is `slot` (of STORE_SLOTS).

        Sessions are given the slots in turn as they come, so that the periodic store, which
        `LiveHub` runs every `store_interval_s / STORE_SLOTS` for one slot, stores each session
        every `store_interval_s` and about a fifth of them at a time. With every session in one
        pass, 100 sessions started together (a team's session) made one burst of ~2 s of the
        server process's interpreter every 5 s, and the event loop (frames, acks, rows) waited
        behind it (benchmarks/README.md, session 14)."""
        return {key for key in self.dirty if self._slots.get(key, slot) % STORE_SLOTS == slot % STORE_SLOTS}

    async def flush(
        self,
        streams_of: Callable[[SessionKey], list[LiveStream]],
        stored: Callable[[Iterable[LiveStream]], None] | None = None,
        only: Collection[SessionKey] | None = None,
        once: bool = False,
    ) -> None:
        """Store every session with new strides (or those of them in `only`); `stored` gets each
        session's streams afterwards. Until none is left, or with `once` each session that has new
        strides at the call once: the periodic store, which otherwise never ends while streams
        deliver strides faster than it stores them (a warm-up backlog), storing a session every
        few milliseconds instead of every `store_interval_s`.

        A pass takes every due session at once, and with them the sessions that other calls waiting
        for the store want (streams ending together each store their own session): the whole
        stores of a pass share one summary (`_prepare_whole`), whose fixed cost was ~40 % of a whole
        store; a waiting call whose sessions a pass stored finds nothing left to do."""
        if only is not None:
            self._wanted.update(set(only))
        try:
            async with self._lock:
                await self._flush_locked(streams_of, stored, only, once)
        finally:
            if only is not None:
                self._wanted.subtract(set(only))
                self._wanted = +self._wanted

    async def _flush_locked(
        self,
        streams_of: Callable[[SessionKey], list[LiveStream]],
        stored: Callable[[Iterable[LiveStream]], None] | None,
        only: Collection[SessionKey] | None,
        once: bool,
    ) -> None:
        own = None if only is None else set(only)
        pending = None if not once else (set(self.dirty) if own is None else self.dirty.intersection(own))
        adopted: set[SessionKey] = set()  # other calls' sessions this call stored, each once
        while True:
            due = self.dirty if own is None else self.dirty.intersection(own)
            if pending is not None:
                due = due & pending
            if own is not None:
                others = {k for k, n in self._wanted.items() if n > (k in own)}
                others = self.dirty.intersection(others) - adopted
                adopted |= others
                due = due | others
            if not due:
                break
            try:
                await self._pass(sorted(due), pending, streams_of, stored)
            finally:
                self._ahead.clear()
                self._early.clear()

    async def _pass(
        self,
        keys: list[SessionKey],
        pending: set[SessionKey] | None,
        streams_of: Callable[[SessionKey], list[LiveStream]],
        stored: Callable[[Iterable[LiveStream]], None] | None,
    ) -> None:
        """Store the sessions `keys` once each: their streams' strides, curves and mountings as of
        now, the whole stores' tables built together, then each session's store; the sessions taken
        whose store did not complete are marked dirty again."""
        jobs: list[tuple] = []
        done = 0
        try:
            for key in keys:
                if pending is not None:
                    pending.discard(key)
                self.dirty.discard(key)
                jobs.append((key, None, None))
                streams = streams_of(key)
                ended = all(s.ended for s in streams)  # nothing more to store for it in this process
                # a stream that ended leaves memory after this store: its foot's summaries and
                # curves must be written now, as later stores read them from the partitions
                closing = any(s.ended for s in streams)
                args = (
                    *key,
                    [s.strides() for s in streams],
                    {s.hello.foot for s in streams},
                    [getattr(s.analyzer, "curves_", None) for s in streams],
                    [_stream_mountings(s) for s in streams],
                    ended,
                    closing,
                )
                jobs[-1] = (key, streams, args)
                # a stream analysed in a worker process concatenates the rows it got since the last
                # store: one session per turn of the event loop, not a whole pass's in one
                await asyncio.sleep(0)
            if self.process is not None:
                dates = [self.session_dates.get(key) for key, _, _ in jobs]
                errors = await asyncio.to_thread(self.process.store_pass, [a for _, _, a in jobs], dates)
                failed = None
                for (key, streams, args), error in zip(jobs, errors, strict=True):
                    done += 1
                    if error is not None:
                        self.dirty.add(key)
                        failed = failed or error
                        continue
                    self._stored(key, streams, args[6], stored)
                if failed is not None:
                    raise failed
                return
            if len(jobs) > 1:
                await asyncio.to_thread(self._prepare_whole, [args for _, _, args in jobs])
            for key, streams, args in jobs:
                await asyncio.to_thread(self._store, *args)
                done += 1
                if args[6]:  # ended
                    self.forget(key)
                self._stored(key, streams, args[6], stored)
        except BaseException:
            self.dirty.update(key for key, _, _ in jobs[done:])
            raise

    def _stored(
        self,
        key: SessionKey,
        streams: list[LiveStream],
        ended: bool,
        stored: Callable[[Iterable[LiveStream]], None] | None,
    ) -> None:
        """The session's store has succeeded: an ended session gives up its slot, `stored` gets its
        streams."""
        if ended and key not in self.dirty:
            self._slots.pop(key, None)
        if stored is not None:
            stored(streams)

    def forget(self, key: SessionKey) -> None:
        """Drop what was kept for the session's next stores (its streams have all ended)."""
        self._kept = {k: v for k, v in self._kept.items() if k[1:3] != key}
        self._labels = {k: v for k, v in self._labels.items() if k[:2] != key}

    def store_all(self, jobs: list[tuple]) -> list[Exception | None]:
        """Store the sessions of a pass (`_store`'s arguments each) one after the other, the whole
        stores' tables built together; per session, its store's error or None. What a store process
        runs for a pass (`service.live.store_process`)."""
        errors: list[Exception | None] = []
        try:
            if len(jobs) > 1:
                self._prepare_whole(jobs)
            for args in jobs:
                try:
                    self._store(*args)
                except Exception as exc:
                    log.exception("storing live session %s/%s failed", *args[:2])
                    errors.append(exc)
                    continue
                errors.append(None)
                if args[6]:  # ended
                    self.forget((args[0], args[1]))
        finally:
            self._ahead.clear()
            self._early.clear()
        return errors

    def _prepare_whole(self, jobs: list[tuple]) -> None:
        """The tables of the sessions of a pass that will be stored whole (their first store here,
        or a stream has ended) or whose appending store will rebuild the summaries (`_summary_due`),
        with both feet streaming, built together (`session_tables_together`) for `_store_locked`
        and `_summarize`, which use them when their strides are these. With both feet here no
        stored rows of other feet join them, so nothing of this needs the session's lock; a store
        that turns out otherwise, or whose strides differ, builds its own."""
        chosen = []
        for athlete, session, parts, feet, curves, mountings, final, closing in jobs:
            key = (athlete, session)
            if mountings is None or not set(FEET) <= feet:
                continue
            state = self._appending.get(key)
            whole = final or closing or state is None
            if not whole and any((device, foot) not in state.stored for device, foot, _ in mountings):
                continue  # other streams than the last store's: `_store` decides, reading the partition
            labelled = [
                self._labelled(athlete, session, p, device, foot, pieces, keep=False)
                for p, (device, foot, pieces) in zip(parts, mountings, strict=True)
            ]
            if not whole:
                new = [
                    out.slice(state.stored[(d, f)])
                    for out, (d, f, _) in zip(labelled, mountings, strict=True)
                ]
                if _summary_due(state, pl.concat(new), sum(out.height for out in labelled)) is None:
                    continue
            curve_parts = [c for c in curves or () if c is not None]
            chosen.append((key, labelled, curve_parts, self.session_dates.get(key)))
        if len(chosen) < 2:
            return
        try:
            tables = session_tables_together(
                [(*key, labelled, curve_parts, date) for key, labelled, curve_parts, date in chosen],
                self.analysis_settings,
            )
        except Exception:  # each store builds its own tables then, and reports its own error
            log.exception("building the tables of a live store pass together failed")
            return
        for (key, labelled, curve_parts, date), built in zip(chosen, tables, strict=True):
            self._ahead[key] = (labelled, curve_parts, date, built)

    def _session_lock(self, athlete: str, session: str) -> int:
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(f"{athlete}\0{session}".encode()).hexdigest()[:32]
        fd = os.open(self.locks_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _store(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None = None,
        mountings: list[StreamMountings] | None = None,
        final: bool = True,
        closing: bool = False,
    ) -> None:
        """Write the session from its streams' strides and curves (`curves`: per stream, its
        analyzer's `curves_`, the session curve summary of its foot; None: it keeps none) and
        record the mountings they were measured in (`mountings`: per stream; None: none known).
        `final` False: more strides may follow, so the store may append (module docstring);
        `closing`: a stream has ended (its foot's summaries are then stored whole, as at `final`)."""
        key = (athlete, session)
        fd = self._session_lock(athlete, session)
        try:
            # taken out until this store has succeeded: after a failure the next store is whole
            state = self._appending.pop(key, None)
            if (
                not final
                and not closing
                and mountings is not None
                and not self._can_append(athlete, session, state, parts, feet, mountings)
            ):
                state = self._adopt(athlete, session, parts, feet, mountings)
            if not final and not closing and state is not None:
                self._append(athlete, session, state, parts, feet, curves, mountings)
            else:
                state = self._store_locked(athlete, session, parts, feet, curves, mountings)
                self.written_["whole"] += 1
            if not final and state is not None:
                self._appending[key] = state
        finally:
            os.close(fd)

    def _can_append(
        self,
        athlete: str,
        session: str,
        state: _Appending | None,
        parts: list[pl.DataFrame],
        feet: set[str],
        mountings: list[StreamMountings],
    ) -> bool:
        """Whether the streams are those of the last store, each labelled in the same mountings then
        and with its stored strides first (a stream's strides only grow; their keys tell a history
        rebuilt differently), and the partition still holds live parts or the whole store's file."""
        if state is None or frozenset(feet) != state.feet or len(parts) != len(state.stored):
            return False
        for strides, (device, foot, pieces) in zip(parts, mountings, strict=True):
            n = state.stored.get((device, foot))
            cached = self._labels.get((athlete, session, device, foot))
            if n is None or cached is None or cached[0] != tuple(pieces) or cached[1].height != n:
                return False
            if not _starts_with(strides, cached[1]):
                return False
        return self._untouched(partition_dir(self.results_dir, STRIDES, athlete, session), state)

    def _adopt(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        mountings: list[StreamMountings],
    ) -> _Appending | None:
        """What may be appended to when this process has no state of its own for the session (a
        restart, a stream that came from another process, another set of feet): the stored rows of
        its streams' feet, when each stream's are its first strides as labelled now; else None
        (the store is whole). Reads those feet's rows once."""
        folder = partition_dir(self.results_dir, STRIDES, athlete, session)
        files = part_files(folder)
        if not files:
            return None  # the session's first store is whole (its marker, its summaries)
        labelled = [
            self._labelled(athlete, session, p, device, foot, pieces)
            for p, (device, foot, pieces) in zip(parts, mountings, strict=True)
        ]
        stored_rows = pl.scan_parquet(files).filter(pl.col(FOOT).is_in(sorted(feet))).collect()
        state = _Appending(feet=frozenset(feet), files=_signature(folder))
        for out, (device, foot, _) in zip(labelled, mountings, strict=True):
            mine = stored_rows.filter(pl.col(FOOT) == foot).sort(STRIDE_INDEX)
            columns = [c for c in out.columns if c not in (ATHLETE_ID, SESSION_ID)]
            if mine.columns != columns or not out.head(mine.height).select(columns).equals(mine):
                return None
            state.stored[(device, foot)] = mine.height
        return state

    def _untouched(self, folder: Path, state: _Appending) -> bool:
        """Whether the strides partition still holds what this process stored of its feet: every file
        it left is there, and the files another process added since (its streams of other feet)
        hold none of these feet. Else (the stream stored by another process meanwhile, the
        partition deleted) the store is whole."""
        files = _signature(folder)
        if files is None or state.files is None:
            return False
        if files == state.files:
            return True
        now, then = dict(files), dict(state.files)
        if any(now.get(name) != stamp for name, stamp in then.items()):
            return False
        feet = sorted(state.feet)
        for name in now.keys() - then.keys():
            rows = pl.scan_parquet(folder / name).filter(pl.col(FOOT).is_in(feet)).select(pl.len())
            if rows.collect().item():
                return False
        return True

    def _append(
        self,
        athlete: str,
        session: str,
        state: _Appending,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None,
        mountings: list[StreamMountings],
    ) -> None:
        """Store the strides new since the last store as a live part (merging parts as they come),
        and the summaries when they are due (module docstring)."""
        labelled = [
            self._labelled(athlete, session, p, device, foot, pieces)
            for p, (device, foot, pieces) in zip(parts, mountings, strict=True)
        ]
        new = [
            out.slice(state.stored[(device, foot)])
            for out, (device, foot, _) in zip(labelled, mountings, strict=True)
        ]
        rows = pl.concat(new) if new else None
        if rows is None or rows.height == 0:
            return
        folder = partition_dir(self.results_dir, STRIDES, athlete, session)
        before = _signature(folder)
        names = os.listdir(folder)
        if PART_FILE in names:  # the whole store's file becomes the first live part
            for name in names:  # live parts beside it are what it holds (a store killed meanwhile)
                if live_part_range(name) is not None:
                    (folder / name).unlink()
            os.rename(folder / PART_FILE, folder / live_part_name(0, 0))
            names = [live_part_name(0, 0)]
        last = max(r[1] for n in chosen_parts(names) if (r := live_part_range(n)) is not None)
        _write_part(folder / live_part_name(last + 1, last + 1), rows.sort(FOOT, STRIDE_INDEX))
        self.written_["parts"] += 1
        self._merge(folder)
        state.files = _signature(folder)
        self._appended(athlete, session, before, state.files)
        for out, (device, foot, _) in zip(labelled, mountings, strict=True):
            state.stored[(device, foot)] = out.height
        total = sum(state.stored.values())
        newest = _summary_due(state, rows, total)
        if newest is not None:
            self._summarize(athlete, session, labelled, feet, curves, mountings)
            state.summary_rows, state.summary_ic_s = total, newest

    def _merge(self, folder: Path) -> None:
        """Merge the newest MERGE_FANOUT live parts into one while they hold as many stores each
        (the first part, the whole store's, is never merged: it is rewritten at the end)."""
        while True:
            parts = [(r, n) for n in chosen_parts(os.listdir(folder)) if (r := live_part_range(n))[0] > 0]
            tail = parts[-MERGE_FANOUT:]
            if len(tail) < MERGE_FANOUT or len({_level(r) for r, _ in tail}) != 1:
                return
            merged = pl.concat([pl.read_parquet(folder / n) for _, n in tail], how="diagonal_relaxed")
            # written before the parts it holds go: a reader lists one or the others (`part_files`)
            _write_part(folder / live_part_name(tail[0][0][0], tail[-1][0][1]), merged)
            for _, name in tail:
                (folder / name).unlink()
            fsync_dir(folder)
            self.written_["merges"] += 1

    def _summarize(
        self,
        athlete: str,
        session: str,
        labelled: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None,
        mountings: list[StreamMountings],
    ) -> None:
        """Rewrite the session's SESSIONS, FLAGS and CURVES from all its strides (the streams' and the
        stored ones of other feet), as a whole store does, and record the mountings."""
        self._used = set()
        strides, curve_parts = self._with_other_feet(athlete, session, labelled, feet, curves)
        date = self.session_dates.get((athlete, session))
        ahead = self._ahead.pop((athlete, session), None)
        if ahead is not None and _same_input(ahead, labelled, curve_parts, date, strides):
            tables = ahead[3]
        else:
            tables = session_tables([strides], curve_parts, date, self.analysis_settings)
        write_tables(self.results_dir, athlete, session, tables, skip=(STRIDES,))
        self._wrote(athlete, session, self._used)
        self._record_mountings(athlete, session, labelled, mountings)
        self.written_["summaries"] += 1

    def _store_locked(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None,
        mountings: list[StreamMountings] | None = None,
    ) -> _Appending | None:
        """A whole store; what a next store may append to (None: nothing was stored, or the streams'
        mountings are not known)."""
        self._used = set()  # the keys of `_kept` this store reads
        if mountings is not None:
            parts = [
                self._labelled(athlete, session, p, device, foot, pieces)
                for p, (device, foot, pieces) in zip(parts, mountings, strict=True)
            ]
        else:
            parts = [_stored_columns(p) for p in parts]
        strides, curve_parts = self._with_other_feet(athlete, session, parts, feet, curves)
        if strides is None:
            return None
        if read_marker(self.results_dir, athlete, session) is None:
            # One source per session: a team batch run into these results leaves this session alone.
            write_marker(self.results_dir, athlete, session, {SOURCE: STREAM_SOURCE})
        date = self.session_dates.get((athlete, session))
        ahead = self._ahead.pop((athlete, session), None)
        if ahead is not None and _same_input(ahead, parts, curve_parts, date, strides):
            write_tables(self.results_dir, athlete, session, ahead[3])
        else:
            write_session(
                self.results_dir,
                athlete,
                session,
                [strides],
                curves_parts=curve_parts,
                session_date=date,
                settings=self.analysis_settings,
            )
        self._wrote(athlete, session, self._used)
        if mountings is None:
            return None
        self._record_mountings(athlete, session, parts, mountings)
        ic = pl.concat(parts).get_column(IC_T).drop_nulls() if parts else pl.Series([], dtype=pl.Float64)
        return _Appending(
            feet=frozenset(feet),
            stored={(device, foot): p.height for p, (device, foot, _) in zip(parts, mountings, strict=True)},
            summary_rows=sum(p.height for p in parts),
            summary_ic_s=float(ic.max()) if ic.len() else -np.inf,
            files=_signature(partition_dir(self.results_dir, STRIDES, athlete, session)),
        )

    def _with_other_feet(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None,
    ) -> tuple[pl.DataFrame | None, list[pl.DataFrame]]:
        """(the streams' labelled strides with the stored rows of the feet without a stream here,
        None if there are none; the curves parts likewise)."""
        strides = pl.concat(parts) if parts else None
        kept = self._other_feet(STRIDES, athlete, session, feet)
        curve_parts = [c for c in curves or () if c is not None]
        if curve_parts:
            # as the strides: the stored curves of feet without a stream in memory are kept
            kept_curves = self._other_feet(CURVES, athlete, session, feet, needs=STRIDE_COUNT)
            if kept_curves is not None and kept_curves.height:
                curve_parts.append(kept_curves)
        if kept is not None and kept.height:
            kept = kept.select([c for c in STORED_SCHEMA if c in kept.columns]).cast(
                {c: t for c, t in STORED_SCHEMA.items() if c in kept.columns}
            )
            strides = kept if strides is None else pl.concat([strides, kept], how="diagonal_relaxed")
        return strides, curve_parts

    def _record_mountings(
        self, athlete: str, session: str, parts: list[pl.DataFrame], mountings: list[StreamMountings]
    ) -> None:
        """Record the mountings the streams' labelled strides (`parts`) were measured in."""
        for (device, foot, pieces), part in zip(mountings, parts, strict=True):
            if not pieces:
                continue  # a given frame: no mounting to keep
            try:
                record_mountings(
                    self.results_dir, athlete, session, device, used_mountings(part, pieces, foot)
                )
            except StrideflowError:
                # the session's strides are stored; the next store records them again
                log.exception("recording the mountings of live session %s/%s failed", athlete, session)

    def _labelled(
        self,
        athlete: str,
        session: str,
        strides: pl.DataFrame,
        device: str,
        foot: str,
        pieces: tuple,
        keep: bool = True,
    ) -> pl.DataFrame:
        """A stream's strides labelled with their mountings (`label_strides`) in the stored columns.
        Each row's labels depend on that row and the mountings only, so while the mountings are
        those of the previous store and the strides begin with its rows (`_starts_with`), only the
        new rows are labelled (a remount relabels them all). `keep` False (`_prepare_whole`, ahead
        of the store): the result is not the previous store's yet (`_can_append` reads that), and
        is what the store's own call returns while that entry and these strides are the same."""
        key = (athlete, session, device, foot)
        pieces = tuple(pieces)
        cached = self._labels.get(key)
        early = self._early.pop(key, None) if keep else None
        if early is not None and early[0] is cached and early[1] is strides and early[2] == pieces:
            out = early[3]
        else:
            out = None
            if cached is not None and cached[0] == pieces:
                old_strides, old_out = cached[1:]
                n = old_strides.height
                if _starts_with(strides, old_strides):
                    new = _stored_columns(label_strides(strides.slice(n), pieces, foot, session))
                    if new.schema == old_out.schema:
                        out = pl.concat([old_out, new]) if new.height else old_out
                        if out.n_chunks() > MAX_CHUNKS:  # one chunk per store otherwise: slower to read
                            out = out.rechunk()
            if out is None:
                out = _stored_columns(label_strides(strides, pieces, foot, session))
        if keep:
            self._labels[key] = (pieces, strides, out)
        else:
            self._early[key] = (cached, strides, pieces, out)
        return out

    def _other_feet(
        self, table: str, athlete: str, session: str, feet: set[str], needs: str | None = None
    ) -> pl.DataFrame | None:
        """The stored rows of `table` whose foot has no stream here, with the key columns (None when
        nothing is stored, or the file lacks the column `needs`). A filtered scan: the session's
        own feet are most rows, and the partition grows with the session, so the row groups of
        those feet are skipped by their statistics instead of read at every store."""
        folder = partition_dir(self.results_dir, table, athlete, session)
        key = (table, athlete, session, tuple(sorted(feet)), needs)
        self._used.add(key)
        signature = _signature(folder)
        cached = self._kept.get(key)
        if cached is not None and signature is not None and cached[0] == signature:
            return cached[1]
        self._kept[key] = (None, None)  # until this store has written the partition (`_wrote`)
        if signature is None:
            return None
        scan = pl.scan_parquet(part_files(folder))
        if needs is not None and needs not in scan.collect_schema().names():
            return None
        rows = scan.filter(~pl.col(FOOT).is_in(sorted(feet))).collect()
        rows = rows.with_columns(pl.lit(athlete).alias(ATHLETE_ID), pl.lit(session).alias(SESSION_ID)).select(
            ATHLETE_ID, SESSION_ID, *rows.columns
        )
        self._kept[key] = (None, rows)
        return rows

    def _appended(self, athlete: str, session: str, before: tuple | None, after: tuple | None) -> None:
        """This store appended rows of its own feet to the session's strides (and merged parts, which
        moves rows, not changes them): other feet's rows read from the files as they were `before`
        are still theirs `after`."""
        for key, (signature, rows) in list(self._kept.items()):
            if key[0] == STRIDES and key[1:3] == (athlete, session) and signature == before:
                self._kept[key] = (after, rows)

    def _wrote(self, athlete: str, session: str, used: set[tuple]) -> None:
        """This store has just rewritten the session's partitions (under the session's lock) with the
        other feet's rows it read (`used`: their keys): the files hold those rows until someone else
        writes them. Rows read for another set of feet are out of date now: dropped."""
        for key, (_, rows) in list(self._kept.items()):
            if key[1:3] != (athlete, session):
                continue
            signature = _signature(partition_dir(self.results_dir, key[0], athlete, session))
            if key not in used or (rows is None and signature is not None):
                del self._kept[key]  # the file is new or lacked the column: read it next time
            else:
                self._kept[key] = (signature, rows)


def _summary_due(state: _Appending, rows: pl.DataFrame, total: int) -> float | None:
    """The newest IC (s) when an appending store of `rows` (new strides; `total` stored with them)
    rebuilds the summaries (module docstring), else None."""
    if rows.height == 0:
        return None
    ic = rows.get_column(IC_T).drop_nulls()
    newest = max(state.summary_ic_s, float(ic.max())) if ic.len() else state.summary_ic_s
    if total >= 2 * state.summary_rows or newest - state.summary_ic_s >= SUMMARY_EVERY_S:
        return newest
    return None


def _same_input(
    ahead: tuple, parts: list[pl.DataFrame], curve_parts: list[pl.DataFrame], date: str | None, strides
) -> bool:
    """Whether the tables `_prepare_whole` built are those of this whole store: the same labelled
    strides (the very frames), no stored rows of other feet added, the same curves and date."""
    labelled, curves, ahead_date, _ = ahead
    return (
        len(labelled) == len(parts)
        and all(a is b for a, b in zip(labelled, parts, strict=True))
        and strides.height == sum(p.height for p in parts)
        and len(curves) == len(curve_parts)
        and all(a is b for a, b in zip(curves, curve_parts, strict=True))
        and ahead_date == date
    )


def _signature(folder: Path) -> tuple | None:
    """`partitions.file_stamp` of each of a partition's files (`part_files`), None when it has none
    (called under the session's lock: nobody else changes them meanwhile)."""
    stamps = tuple((p.name, file_stamp(p.stat())) for p in part_files(folder))
    return stamps or None


def _starts_with(strides: pl.DataFrame, stored: pl.DataFrame) -> bool:
    """Whether a stream's strides begin with the strides of an earlier store (their foot, IC and
    stride index)."""
    n = stored.height
    if strides.height < n:
        return False
    head = strides.slice(0, n)
    return all(head.get_column(c).equals(stored.get_column(c)) for c in (FOOT, IC_T, STRIDE_INDEX))


def _level(first_last: tuple[int, int]) -> int:
    """How many times a live part's stores were merged: log MERGE_FANOUT of their number."""
    count, level = first_last[1] - first_last[0] + 1, 0
    while count >= MERGE_FANOUT:
        count //= MERGE_FANOUT
        level += 1
    return level


def _write_part(path: Path, rows: pl.DataFrame) -> None:
    """A live part: rows in the stored columns without the key columns (in the folder's names), as
    `partitions.write_partition` writes a partition."""
    body = rows.drop([c for c in (ATHLETE_ID, SESSION_ID) if c in rows.columns])
    write_atomic(
        path,
        lambda fh: body.write_parquet(
            fh, compression="lz4", statistics=True, row_group_size=STRIDES_ROW_GROUP_ROWS
        ),
    )


def _stream_mountings(stream: LiveStream) -> StreamMountings:
    """(device, foot, the stream's mountings so far): a snapshot, as its strides are taken."""
    watch = getattr(stream.analyzer, "mountings_", None)
    return (stream.hello.device_id, stream.hello.foot, watch.pieces_ if watch is not None else ())


def _stored_columns(strides: pl.DataFrame) -> pl.DataFrame:
    """A stream's strides in the stored columns (the mounting columns null where they are missing)."""
    missing = [
        pl.lit(None, dtype=t).alias(c) for c, t in MOUNTING_COLUMNS.items() if c not in strides.columns
    ]
    return strides.with_columns(missing).select(list(STORED_SCHEMA))
