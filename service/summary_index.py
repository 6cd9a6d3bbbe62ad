"""SQL index of the stored results the API lists: per-session summaries and per-athlete trend series.

The Parquet partitions (`analytics.partitions`) stay the source of truth, written by the team
batch, upload jobs and live streams alike. This module keeps, in the service database, what the
sessions and trends routes answer from them, so a request reads a few rows instead of opening a
Parquet file per session:

- `session_summaries`: per athlete-session, the `SessionOut` fields derived from its `sessions`
  partition (feet with medians and IQRs, symmetry, left-right differences) as JSON;
- `trend_series`: per athlete and metric, the rows of `analytics.trends.compute_trends` as JSON.

Every row carries the signature (mtime in ns, size, inode) of the partition file(s) it was built
from. A reader stats those files (microseconds; no file is opened) and rebuilds any row whose
signature differs, so the index can never serve results older than the files, whichever program
wrote them, and deleting its rows (or the tables) only costs the next reads a rebuild. Partitions
are replaced with `os.replace` (a new inode), so every rewrite changes the signature. The
signature is taken before the file is read: a write racing with a rebuild leaves a row whose
signature is already out of date, rebuilt by the next read.

`refresh` builds the rows of many athletes ahead of the first request (after `strideflow batch`
results are registered, or after an upload job finished).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path

import polars as pl
import pydantic_core
from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.exc import IntegrityError

from strideflow.analytics import partitions
from strideflow.analytics.trends import METRIC, TrendSettings, trends_from_sessions
from strideflow.hardware.ids import check_id, is_valid_id
from strideflow.hardware.schema import ATHLETE_ID, METRICS, SESSION_ID, session_median
from strideflow.service.db import Database, SessionSummary, TrendSeries, utcnow

log = logging.getLogger("strideflow.service")

NO_FILE = "-"  # signature of a partition that is not stored
# Part of every signature: bump when what a row holds changes (e.g. a new SessionOut field), so
# rows an older version wrote are rebuilt on their next read.
INDEX_VERSION = 1


def file_signature(path: str | Path) -> str:
    """mtime (ns), size and inode of a file (and the index's format version), or NO_FILE if it
    does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return NO_FILE
    mtime_ns, size, inode = partitions.file_stamp(st)
    return f"v{INDEX_VERSION}:{mtime_ns}:{size}:{inode}"


def session_signatures(results_dir: Path, athlete_id: str, session_ids: Iterable[str]) -> dict[str, str]:
    """{session_id: signature of its `sessions` partition} of sessions of one athlete (valid ids).

    Paths as text, the athlete's id checked once: a page of sessions is stat'ed per request, and
    pathlib with an id check per file (`partitions.partition_dir`) cost ~8x the `stat` itself."""
    base = os.path.join(results_dir, partitions.SESSIONS, f"{ATHLETE_ID}={check_id(ATHLETE_ID, athlete_id)}")
    part = partitions.PART_FILE
    return {sid: file_signature(f"{base}/{SESSION_ID}={sid}/{part}") for sid in session_ids}


def athlete_signature(results_dir: Path, athlete_id: str) -> str:
    """Signature of all of an athlete's `sessions` partitions: `session=signature` per stored session."""
    base = os.path.join(results_dir, partitions.SESSIONS, f"{ATHLETE_ID}={athlete_id}")
    try:
        names = sorted(e.name for e in os.scandir(base) if e.name.startswith(f"{SESSION_ID}="))
    except FileNotFoundError:
        return ""
    parts = []
    for name in names:
        sig = file_signature(f"{base}/{name}/{partitions.PART_FILE}")
        if sig != NO_FILE:
            parts.append(f"{name.split('=', 1)[1]}={sig}")
    return ";".join(parts)


def _upsert(db: Database, model, key: dict, values: dict) -> None:
    """Insert or update one index row (a concurrent insert of the same key wins, then is updated)."""
    for _ in range(2):
        with db.session() as s:
            row = s.get(model, tuple(key.values()))
            if row is None:
                s.add(model(**key, **values, indexed=utcnow()))
                try:
                    s.flush()
                    return
                except IntegrityError:
                    s.rollback()
                    continue
            for name, value in values.items():
                setattr(row, name, value)
            row.indexed = utcnow()
            return


# --- session summaries ------------------------------------------------------------------------
def build_summary(results: pl.DataFrame | None, session_id: str) -> dict:
    """The SessionOut fields of one session from rows of its `sessions` table (None: not analysed)."""
    from strideflow.service.queries import session_fields

    return session_fields(results, session_id)


def cached_summaries(
    db: Database, results_dir: Path, athlete_id: str, session_ids: list[str]
) -> tuple[dict[str, dict], dict[str, str]]:
    """({session_id: summary} of the sessions whose index row matches their partition,
    {session_id: current signature} of the others, to be rebuilt). No file is opened."""
    ids = [sid for sid in session_ids if is_valid_id(sid)]
    if not ids:
        return {}, {}
    current = session_signatures(results_dir, athlete_id, ids)
    stmt = select(SessionSummary.session_id, SessionSummary.signature, SessionSummary.summary).where(
        SessionSummary.athlete_id == athlete_id, SessionSummary.session_id.in_(ids)
    )
    with db.reader.connect() as conn:
        rows = conn.execute(stmt).all()
    found = {sid: summary for sid, sig, summary in rows if current.get(sid) == sig}
    return found, {sid: sig for sid, sig in current.items() if sid not in found}


def cached_summary_texts(
    db: Database, results_dir: Path, athlete_id: str, session_ids: list[str]
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """`cached_summaries` with each summary as its stored JSON text (a JSON object), for a route
    that writes it into its answer as it is instead of parsing it and writing it again; and third
    {session_id: current signature} of every session asked (with a valid id)."""
    ids = [sid for sid in session_ids if is_valid_id(sid)]
    if not ids:
        return {}, {}, {}
    current = session_signatures(results_dir, athlete_id, ids)
    with db.reader.connect() as conn:
        rows = conn.execute(_SUMMARY_TEXTS, {"athlete_id": athlete_id, "ids": ids}).all()
    found = {sid: text for sid, sig, text in rows if current.get(sid) == sig}
    return found, {sid: sig for sid, sig in current.items() if sid not in found}, current


_SUMMARY_TEXTS = select(
    SessionSummary.session_id, SessionSummary.signature, cast(SessionSummary.summary, Text)
).where(
    SessionSummary.athlete_id == bindparam("athlete_id"),
    SessionSummary.session_id.in_(bindparam("ids", expanding=True)),
)


def rebuild_summaries(
    db: Database, results_dir: Path, athlete_id: str, stale: dict[str, str]
) -> tuple[dict[str, dict], dict[str, str]]:
    """Build and store the summaries of `stale` ({session_id: signature taken before reading}) from
    their partitions (one parallel read); returns ({session_id: summary}, {session_id: problem})
    with the sessions whose partition cannot be read (not indexed; logged) in the second."""
    from strideflow.service.queries import read_session_rows

    if not stale:
        return {}, {}
    results, damaged = read_session_rows(results_dir, athlete_id, list(stale))
    out = {}
    for sid, signature in stale.items():
        if sid in damaged:
            continue
        out[sid] = build_summary(results, sid)
        key = {"athlete_id": athlete_id, "session_id": sid}
        _upsert(db, SessionSummary, key, {"signature": signature, "summary": out[sid]})
    return out, damaged


def session_summaries(
    db: Database, results_dir: Path, athlete_id: str, session_ids: list[str]
) -> tuple[dict[str, dict], dict[str, str]]:
    """{session_id: summary} of these sessions of one athlete, and {session_id: problem} of those
    whose stored partition cannot be read: `cached_summaries`, then `rebuild_summaries`."""
    found, stale = cached_summaries(db, results_dir, athlete_id, session_ids)
    more, damaged = rebuild_summaries(db, results_dir, athlete_id, stale)
    return found | more, damaged


# --- trend series -----------------------------------------------------------------------------
def _trend_rows(results_dir: Path, athlete_id: str) -> dict[str, list[dict] | None]:
    """{metric: rows} of compute_trends over the athlete's stored sessions for every metric: [] if
    no session is stored, None for a metric the stored sessions table has no column of."""
    # the athlete's sessions rows (one per session and foot) read once: a live store can merge
    # parts away under a lazy scan
    sessions = partitions.collect_table(results_dir, partitions.SESSIONS, athlete_id=athlete_id)
    if sessions is None:
        return {m: [] for m in METRICS}
    lf = sessions.lazy()
    names = sessions.columns
    present = [m for m in METRICS if session_median(m) in names]
    out: dict[str, list[dict] | None] = {m: ([] if m in present else None) for m in METRICS}
    if not present:
        return out
    df = trends_from_sessions(lf, present, TrendSettings().baseline_sessions).collect()
    # NaN and inf as null, as the response model writes them
    finite = [
        pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c, t in df.schema.items() if t.is_float()
    ]
    df = df.with_columns(finite)
    for r in json.loads(df.write_json()):  # dates as ISO strings
        out[r[METRIC]].append(r)
    return out


MISS = object()  # cached_trend_points: the index has no up-to-date rows


def _wanted(metric: str | None) -> list[str]:
    return [metric] if metric is not None else sorted(TrendSettings().metrics)


def _select(found: dict, metric: str | None) -> list[dict] | None:
    if metric is not None and found.get(metric) is None:
        return None  # a metric the stored sessions lack: compute_trends names the problem
    return [p for m in _wanted(metric) for p in (found.get(m) or ())]


def cached_trend_points(db: Database, results_dir: Path, athlete_id: str, metric: str | None):
    """(rows or None as `trend_points` answers them, or MISS if the index is not up to date;
    the athlete's current signature). No file is opened."""
    metrics = _wanted(metric)
    current = athlete_signature(results_dir, athlete_id)
    with db.reader.connect() as conn:
        rows = conn.execute(_TREND_SERIES, {"athlete_id": athlete_id, "metrics": list(metrics)}).all()
    # pydantic-core reads the stored text in a fifth of the time json.loads (the JSON column's own
    # result processing) takes (0.02 against 0.11 ms for one metric of ten sessions)
    found = {m: pydantic_core.from_json(text) for m, sig, text in rows if sig == current}
    if len(found) < len(metrics):
        return MISS, current
    return _select(found, metric), current


_TREND_SERIES = select(TrendSeries.metric, TrendSeries.signature, cast(TrendSeries.points, Text)).where(
    TrendSeries.athlete_id == bindparam("athlete_id"),
    TrendSeries.metric.in_(bindparam("metrics", expanding=True)),
)


def trend_points(
    db: Database, results_dir: Path, athlete_id: str, metric: str | None, signature: str | None = None
) -> list[dict] | None:
    """The trend rows of one metric (None: `TrendSettings().metrics`) in compute_trends' order, or
    None when they must come from compute_trends itself (a metric the stored sessions lack, or
    partitions that cannot be read: its errors are the route's answer). `signature`: the one
    `cached_trend_points` just found out of date (else it is looked up)."""
    if signature is None:
        points, signature = cached_trend_points(db, results_dir, athlete_id, metric)
        if points is not MISS:
            return points
    found = index_trends(db, results_dir, athlete_id, signature)
    return None if found is None else _select(found, metric)


def index_trends(
    db: Database, results_dir: Path, athlete_id: str, signature: str | None = None
) -> dict[str, list[dict] | None] | None:
    """Rebuild the athlete's trend series from its partitions; {metric: rows}, None if unreadable."""
    if signature is None:
        signature = athlete_signature(results_dir, athlete_id)
    by_metric = None
    for _ in range(2):  # the second time: a partition that was being replaced while it was read
        try:
            by_metric = _trend_rows(results_dir, athlete_id)
            break
        except Exception:  # noqa: BLE001 - a damaged partition: the route's own path names it
            continue
    if by_metric is None:
        return None
    for m, points in by_metric.items():
        key = {"athlete_id": athlete_id, "metric": m}
        _upsert(db, TrendSeries, key, {"signature": signature, "points": points})
    return by_metric


# --- bulk -------------------------------------------------------------------------------------
def stored_athletes(results_dir: Path) -> list[str]:
    base = Path(results_dir) / partitions.SESSIONS
    if not base.is_dir():
        return []
    return sorted(
        e.name.split("=", 1)[1]
        for e in os.scandir(base)
        if e.name.startswith(f"{ATHLETE_ID}=") and is_valid_id(e.name.split("=", 1)[1])
    )


def refresh(db: Database, results_dir: str | Path, athletes: Collection[str] | None = None) -> int:
    """Bring the index of these athletes (None: every stored athlete) up to date; returns how many
    session summaries were rebuilt. Rows already matching their partitions are left alone."""
    results_dir = Path(results_dir)
    rebuilt = 0
    for athlete_id in athletes if athletes is not None else stored_athletes(results_dir):
        base = results_dir / partitions.SESSIONS / f"{ATHLETE_ID}={athlete_id}"
        sessions = _session_ids(base)
        with db.session() as s:
            known = dict(
                s.execute(
                    select(SessionSummary.session_id, SessionSummary.signature).where(
                        SessionSummary.athlete_id == athlete_id
                    )
                ).all()
            )
        current = session_signatures(results_dir, athlete_id, sessions)
        stale = [sid for sid in sessions if known.get(sid) != current[sid]]
        session_summaries(db, results_dir, athlete_id, stale)
        rebuilt += len(stale)
        trend_points(db, results_dir, athlete_id, None)
    return rebuilt


def _session_ids(base: Path) -> Iterable[str]:
    try:
        names = [e.name for e in os.scandir(base)]
    except FileNotFoundError:
        return []
    ids = (n.split("=", 1)[1] for n in names if n.startswith(f"{SESSION_ID}="))
    return sorted(sid for sid in ids if is_valid_id(sid))
