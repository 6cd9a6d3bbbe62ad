"""Storing live sessions: the sessions with new strides are written every `store_interval_s`.

A store writes a session's STRIDES (every stride of its streams so far), SESSIONS and FLAGS from
them, and CURVES (each analyzer's `curves_`, the mean and SD curves of its valid strides,
resampled by batch's code) with `analytics.sessions_store.write_session`, off the event loop.
Rows (and curves) of feet that have no stream in
this process's memory (the other foot's stream ended earlier, or streams into another server
process) are kept from the stored partition, so storing never loses the other foot. The
read-modify-write of one session is serialised across server processes by an exclusive `flock`
on `<wal_root>/.store-locks/<hash of athlete, session>.lock`.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import polars as pl

from strideflow.analytics.batch import SOURCE, STREAM_SOURCE, read_marker, write_marker
from strideflow.analytics.curves import STRIDE_COUNT
from strideflow.analytics.partitions import CURVES, STRIDES, read_partition
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.sessions_store import write_session
from strideflow.hardware.schema import FOOT, STRIDES_SCHEMA
from strideflow.service.live.registry import LiveStream

SessionKey = tuple[str, str]  # athlete_id, session_id
LOCKS_DIRNAME = ".store-locks"


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

    def mark(self, key: SessionKey) -> None:
        """The session has strides to store."""
        self.dirty.add(key)

    async def flush(
        self,
        streams_of: Callable[[SessionKey], list[LiveStream]],
        stored: Callable[[Iterable[LiveStream]], None] | None = None,
    ) -> None:
        """Store every session with new strides; `stored` gets each session's streams afterwards."""
        async with self._lock:
            while self.dirty:
                athlete, session = self.dirty.pop()
                streams = streams_of((athlete, session))
                parts = [s.strides() for s in streams]
                curves = [getattr(s.analyzer, "curves_", None) for s in streams]
                feet = {s.hello.foot for s in streams}
                try:
                    await asyncio.to_thread(self._store, athlete, session, parts, feet, curves)
                except BaseException:
                    self.dirty.add((athlete, session))
                    raise
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
    ) -> None:
        """Write the session from its streams' strides and curves (`curves`: per stream, its
        analyzer's `curves_`, the session curve summary of its foot; None: it keeps none)."""
        fd = self._session_lock(athlete, session)
        try:
            self._store_locked(athlete, session, parts, feet, curves)
        finally:
            os.close(fd)

    def _store_locked(
        self,
        athlete: str,
        session: str,
        parts: list[pl.DataFrame],
        feet: set[str],
        curves: list[pl.DataFrame | None] | None,
    ) -> None:
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
