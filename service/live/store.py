"""Storing live sessions: the sessions with new strides are written every `store_interval_s`.

A store writes a session's STRIDES (every stride of its streams so far), SESSIONS and FLAGS from
them, and CURVES (each analyzer's `curves_`, the mean and SD curves of its steady strides,
resampled by batch's code) with `analytics.sessions_store.write_session`, off the event loop.
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
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

import polars as pl

from strideflow.analytics.batch import SOURCE, STREAM_SOURCE, read_marker, write_marker
from strideflow.analytics.curves import STRIDE_COUNT
from strideflow.analytics.live_mountings import LivePiece, label_strides, used_mountings
from strideflow.analytics.mountings import record_mountings
from strideflow.analytics.partitions import CURVES, PART_FILE, STRIDES, file_stamp, partition_dir
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.sessions_store import write_session
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FOOT,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    REMOUNT,
    SESSION_ID,
    STRIDES_SCHEMA,
)
from strideflow.service.live.registry import LiveStream

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

    def mark(self, key: SessionKey) -> None:
        """The session has strides to store."""
        self.dirty.add(key)

    async def flush(
        self,
        streams_of: Callable[[SessionKey], list[LiveStream]],
        stored: Callable[[Iterable[LiveStream]], None] | None = None,
        only: Collection[SessionKey] | None = None,
    ) -> None:
        """Store every session with new strides (or those of them in `only`); `stored` gets each
        session's streams afterwards."""
        async with self._lock:
            while True:
                due = self.dirty if only is None else self.dirty.intersection(only)
                if not due:
                    break
                athlete, session = next(iter(due))
                self.dirty.discard((athlete, session))
                streams = streams_of((athlete, session))
                parts = [s.strides() for s in streams]
                curves = [getattr(s.analyzer, "curves_", None) for s in streams]
                mountings = [_stream_mountings(s) for s in streams]
                feet = {s.hello.foot for s in streams}
                try:
                    await asyncio.to_thread(self._store, athlete, session, parts, feet, curves, mountings)
                except BaseException:
                    self.dirty.add((athlete, session))
                    raise
                if all(s.ended for s in streams):  # nothing more to store for it in this process
                    self._kept = {k: v for k, v in self._kept.items() if k[1:3] != (athlete, session)}
                    self._labels = {k: v for k, v in self._labels.items() if k[:2] != (athlete, session)}
                if stored is not None:
                    stored(streams)

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
    ) -> None:
        """Write the session from its streams' strides and curves (`curves`: per stream, its
        analyzer's `curves_`, the session curve summary of its foot; None: it keeps none) and
        record the mountings they were measured in (`mountings`: per stream; None: none known)."""
        fd = self._session_lock(athlete, session)
        try:
            self._store_locked(athlete, session, parts, feet, curves, mountings)
        finally:
            os.close(fd)

    def _store_locked(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None,
        mountings: list[StreamMountings] | None = None,
    ) -> None:
        self._used = set()  # the keys of `_kept` this store reads
        if mountings is not None:
            parts = [
                self._labelled(athlete, session, p, device, foot, pieces)
                for p, (device, foot, pieces) in zip(parts, mountings, strict=True)
            ]
        else:
            parts = [_stored_columns(p) for p in parts]
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
        self._wrote(athlete, session, self._used)
        for (device, foot, pieces), part in zip(mountings or (), parts if mountings else (), strict=True):
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
        self, athlete: str, session: str, strides: pl.DataFrame, device: str, foot: str, pieces: tuple
    ) -> pl.DataFrame:
        """A stream's strides labelled with their mountings (`label_strides`) in the stored columns.
        Each row's labels depend on that row and the mountings only, so while the mountings are
        those of the previous store and the strides begin with its rows, only the new rows are
        labelled (a remount relabels them all)."""
        key = (athlete, session, device, foot)
        pieces = tuple(pieces)
        cached = self._labels.get(key)
        out = None
        if cached is not None and cached[0] == pieces:
            old_strides, old_out = cached[1:]
            n = old_strides.height
            if strides.height >= n and strides.slice(0, n).equals(old_strides):
                new = _stored_columns(label_strides(strides.slice(n), pieces, foot, session))
                if new.schema == old_out.schema:
                    out = pl.concat([old_out, new]) if new.height else old_out
        if out is None:
            out = _stored_columns(label_strides(strides, pieces, foot, session))
        self._labels[key] = (pieces, strides, out)
        return out

    def _other_feet(
        self, table: str, athlete: str, session: str, feet: set[str], needs: str | None = None
    ) -> pl.DataFrame | None:
        """The stored rows of `table` whose foot has no stream here, with the key columns (None when
        nothing is stored, or the file lacks the column `needs`). A filtered scan: the session's
        own feet are most rows, and the partition grows with the session, so the row groups of
        those feet are skipped by their statistics instead of read at every store."""
        path = partition_dir(self.results_dir, table, athlete, session) / PART_FILE
        key = (table, athlete, session, tuple(sorted(feet)), needs)
        self._used.add(key)
        signature = _signature(path)
        cached = self._kept.get(key)
        if cached is not None and signature is not None and cached[0] == signature:
            return cached[1]
        self._kept[key] = (None, None)  # until this store has written the partition (`_wrote`)
        if signature is None:
            return None
        scan = pl.scan_parquet(path)
        if needs is not None and needs not in scan.collect_schema().names():
            return None
        rows = scan.filter(~pl.col(FOOT).is_in(sorted(feet))).collect()
        rows = rows.with_columns(pl.lit(athlete).alias(ATHLETE_ID), pl.lit(session).alias(SESSION_ID)).select(
            ATHLETE_ID, SESSION_ID, *rows.columns
        )
        self._kept[key] = (None, rows)
        return rows

    def _wrote(self, athlete: str, session: str, used: set[tuple]) -> None:
        """This store has just rewritten the session's partitions (under the session's lock) with the
        other feet's rows it read (`used`: their keys): the files hold those rows until someone else
        writes them. Rows read for another set of feet are out of date now: dropped."""
        for key, (_, rows) in list(self._kept.items()):
            if key[1:3] != (athlete, session):
                continue
            path = partition_dir(self.results_dir, key[0], athlete, session) / PART_FILE
            signature = _signature(path)
            if key not in used or (rows is None and signature is not None):
                del self._kept[key]  # the file is new or lacked the column: read it next time
            else:
                self._kept[key] = (signature, rows)


def _signature(path: Path) -> tuple[int, int, int] | None:
    """`partitions.file_stamp` of a file, None when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return file_stamp(st)


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
