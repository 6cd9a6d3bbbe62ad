"""One athlete-session's result tables from its strides, written to the partition store.

`write_session` is the single "session write" of the team batch (`analytics.batch`) and the
service's upload jobs (`service.jobs`): both analyse a session's recordings with
`analytics.session_analysis.analyze_session` (saying which files win and which failures count)
and hand the per-recording strides (and curves) to it. It

1. concatenates the strides parts (`diagonal_relaxed`) and sorts them by `KEYS` and
   `stride_index` (one session: by foot, then stride; `stride_index` is unique per foot because
   each foot comes from one recording and the analyzer numbers a foot's segments consecutively);
2. builds `sessions` and `flags` with `analytics.pipeline.summarize_strides(strides, settings)`;
3. sets `session_date` on every `sessions` row: the given ISO date (yyyy-mm-dd) or null. The
   column is always there, so every `sessions` partition has one schema and a scan over many
   sessions (`partitions.scan_table`) works: polars refuses files whose columns differ;
4. writes each table of `partitions.TABLES` it has (an empty `flags` table is written: it says
   "analysed, nothing flagged") and deletes the partitions of the others (no curves given), so a
   rewritten session never keeps a stale table from an earlier analysis.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from strideflow.analytics import partitions
from strideflow.analytics.partitions import CURVES, FLAGS, SESSIONS, STRIDES
from strideflow.analytics.pipeline import AnalysisSettings, summarize_strides
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import ATHLETE_ID, KEYS, SESSION_DATE, SESSION_ID, STRIDE_INDEX

# STRIDES first: the other tables are derived from it (see write_session).
WRITE_ORDER = (STRIDES, *(t for t in partitions.TABLES if t != STRIDES))


class SessionStoreError(StrideflowError):
    """Input that cannot make a session's tables: no strides, strides of another athlete or
    session, or a session date that is not an ISO date; the message names the part, row and field."""


@dataclass(frozen=True)
class StoredSession:
    """What `write_session` did: `tables` written, by table name; `deleted`, the tables it did not
    have, whose partitions it removed (if there were any); the wall seconds spent building the
    tables (`summarize_s`) and writing/deleting partitions (`write_s`)."""

    tables: dict[str, pl.DataFrame]
    deleted: tuple[str, ...]
    summarize_s: float
    write_s: float

    @property
    def strides(self) -> pl.DataFrame:
        return self.tables[STRIDES]

    @property
    def sessions(self) -> pl.DataFrame:
        return self.tables[SESSIONS]

    @property
    def flags(self) -> pl.DataFrame:
        return self.tables[FLAGS]

    @property
    def curves(self) -> pl.DataFrame | None:
        return self.tables.get(CURVES)


def _check_date(session_date: str | None) -> str | None:
    if session_date is None:
        return None
    try:
        ok = dt.date.fromisoformat(session_date).isoformat() == session_date
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SessionStoreError(f"{SESSION_DATE}={session_date!r} is not an ISO date (yyyy-mm-dd)")
    return session_date


def _check_keys(parts: list[pl.DataFrame], what: str, athlete_id: str, session_id: str) -> None:
    """Key columns a part carries must name the session being written (the path decides, so a
    mismatch would silently file rows under the wrong athlete or session)."""
    for i, part in enumerate(parts):
        for name, value in ((ATHLETE_ID, athlete_id), (SESSION_ID, session_id)):
            if name not in part.columns:
                continue
            wrong = (
                part.select(pl.col(name))
                .with_row_index("row")
                .filter(pl.col(name).ne(value).fill_null(True))
                .head(1)
            )
            if wrong.height:
                raise SessionStoreError(
                    f"{what}[{i}] row {wrong['row'][0]}: {name}={wrong[name][0]!r}, "
                    f"but the session being written is {name}={value!r}"
                )


def write_session(
    root: str | Path,
    athlete_id: str,
    session_id: str,
    strides_parts: list[pl.DataFrame],
    curves_parts: list[pl.DataFrame] | None = None,
    session_date: str | None = None,
    settings: AnalysisSettings = AnalysisSettings(),
) -> StoredSession:
    """Replace one athlete-session's partitions under `root` with tables built from its strides.

    `strides_parts`: `strides` tables (one per recording, at least one); `curves_parts`: the
    session curves per recording (`analytics.curves.session_curves`), None or empty for no
    `curves` table; `session_date`: yyyy-mm-dd or None (null date); `settings`: the sessions and
    flags settings. See the module docstring for what is built.

    Order: STRIDES first, then SESSIONS, FLAGS, CURVES (each written, or deleted when absent).
    Each partition is replaced atomically, the set of them is not. STRIDES goes first because the
    others derive from it: a crash between two writes leaves new strides beside older summaries
    (which `summarize_strides` of the stored strides rebuilds), never summaries of strides that
    were not stored. Both callers redo a session that did not finish: the batch removes its
    done-marker before and writes it after this call; a service job stays `running` and is
    re-queued on restart.
    """
    curves_parts = list(curves_parts or ())
    date = _check_parts(athlete_id, session_id, strides_parts, curves_parts, session_date)

    t0 = time.perf_counter()
    tables = session_tables(strides_parts, curves_parts, date, settings)
    summarize_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    deleted = write_tables(root, athlete_id, session_id, tables)
    return StoredSession(
        tables=tables, deleted=tuple(deleted), summarize_s=summarize_s, write_s=time.perf_counter() - t0
    )


def session_tables(
    strides_parts: list[pl.DataFrame],
    curves_parts: list[pl.DataFrame],
    session_date: str | None,
    settings: AnalysisSettings,
) -> dict[str, pl.DataFrame]:
    """Steps 1-3 of the module docstring: the tables, by name, of one session's checked parts."""
    strides = _strides_table(strides_parts)
    return _tables(strides, *summarize_strides(strides, settings), curves_parts, session_date)


def _check_parts(
    athlete_id: str,
    session_id: str,
    strides_parts: list[pl.DataFrame],
    curves_parts: list[pl.DataFrame],
    session_date: str | None,
) -> str | None:
    """What `write_session` checks of a session's keys, date and parts; the date."""
    partitions.check_id(ATHLETE_ID, athlete_id)
    partitions.check_id(SESSION_ID, session_id)
    date = _check_date(session_date)
    if not strides_parts:
        raise SessionStoreError(f"athlete {athlete_id}, session {session_id}: no strides to write")
    _check_keys(strides_parts, "strides_parts", athlete_id, session_id)
    _check_keys(curves_parts, "curves_parts", athlete_id, session_id)
    return date


def _strides_table(strides_parts: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(strides_parts, how="diagonal_relaxed").sort(*KEYS, STRIDE_INDEX)


def _tables(
    strides: pl.DataFrame,
    sessions: pl.DataFrame,
    flags: pl.DataFrame,
    curves_parts: list[pl.DataFrame],
    session_date: str | None,
) -> dict[str, pl.DataFrame]:
    """The tables, by name, of one session's strides, its summary rows and flags, and curves."""
    sessions = sessions.with_columns(pl.lit(session_date, dtype=pl.String).alias(SESSION_DATE))
    tables = {STRIDES: strides, SESSIONS: sessions, FLAGS: flags}
    if curves_parts:
        tables[CURVES] = pl.concat(curves_parts, how="diagonal_relaxed")
    return tables


def session_tables_together(
    sessions: list[tuple[str, str, list[pl.DataFrame], list[pl.DataFrame], str | None]],
    settings: AnalysisSettings,
) -> list[dict[str, pl.DataFrame]]:
    """`session_tables` of several sessions (athlete, session, strides parts, curves parts, date),
    checked as `write_session` checks them, in the given order. The sessions and flags rows are
    grouped by athlete and session, so a session's rows are those it gets alone; the sessions whose
    strides share a schema are summarised in one `summarize_strides` call, whose fixed cost (~10 ms
    of Polars planning on a few rows) is then paid once for all of them (the live store's whole
    stores of one pass)."""
    out: list[dict[str, pl.DataFrame] | None] = [None] * len(sessions)
    groups: dict[tuple, list[int]] = {}
    strides_of: list[pl.DataFrame] = []
    seen: set[tuple[str, str]] = set()
    for i, (athlete_id, session_id, strides_parts, curves_parts, session_date) in enumerate(sessions):
        _check_parts(athlete_id, session_id, strides_parts, curves_parts, session_date)
        strides = _strides_table(strides_parts)
        strides_of.append(strides)
        # an empty table's summary is made alone (its dtypes come from no rows), as is a session given twice
        if strides.height and (athlete_id, session_id) not in seen:
            seen.add((athlete_id, session_id))
            groups.setdefault(tuple(strides.schema.items()), []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        together = pl.concat([strides_of[i] for i in members])
        summary_sessions, summary_flags = summarize_strides(together, settings)
        rows = summary_sessions.partition_by(ATHLETE_ID, SESSION_ID, as_dict=True)
        flags = summary_flags.partition_by(ATHLETE_ID, SESSION_ID, as_dict=True)
        for i in members:
            athlete_id, session_id, _, curves_parts, session_date = sessions[i]
            key = (athlete_id, session_id)
            own_flags = flags[key] if key in flags else summary_flags.clear()
            out[i] = _tables(strides_of[i], rows[key], own_flags, curves_parts, session_date)
    # the rest summarised alone, from the strides table made above (`session_tables`' steps)
    return [
        tables if tables is not None else _tables(strides, *summarize_strides(strides, settings), s[3], s[4])
        for tables, strides, s in zip(out, strides_of, sessions, strict=True)
    ]


def write_tables(
    root: str | Path, athlete_id: str, session_id: str, tables: dict[str, pl.DataFrame], skip: tuple = ()
) -> list[str]:
    """Step 4: write `tables` in WRITE_ORDER and delete the other tables' partitions, except the
    tables in `skip` (left as stored); returns the tables deleted."""
    deleted = []
    for table in WRITE_ORDER:
        if table in skip:
            continue
        if table in tables:
            partitions.write_partition(root, table, tables[table], athlete_id, session_id)
        else:
            partitions.delete_partition(root, table, athlete_id, session_id)
            deleted.append(table)
    return deleted
