"""Loading one athlete's report data: from a results root or from recorded files analysed on the spot.

- a results root (`strideflow batch --out`, or the service's `results_dir`) in the
  `analytics.partitions` layout: `load_results(root, athlete_id=, session_id=)`;
- recorded files analysed on the spot: `load_files(paths, ...)`.

Either gives a `ReportData` for one athlete: the shown session (the one asked for, else the
athlete's latest) with its strides, per-foot session rows, flags and stride curves, plus the
session rows and trends of all the athlete's sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from strideflow.analytics.curves import stride_curves
from strideflow.analytics.flags import (
    FLAGS_SCHEMA,
)
from strideflow.analytics.partitions import (
    CURVES,
    FLAGS,
    SESSIONS,
    STRIDES,
    check_id,
    collect_table,
)
from strideflow.analytics.pipeline import AnalysisSettings, analyze_recording, summarize_strides
from strideflow.analytics.trends import TrendSettings, compute_trends, trends_from_sessions
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ATHLETE_ID,
    IC_T,
    KEYS,
    SESSION_DATE,
    SESSION_ID,
    STRIDES_SCHEMA,
)
from strideflow.service.report.plots import (
    TREND_MEDIAN,
)


class ReportError(StrideflowError):
    """A report that cannot be made: unknown athlete/session, empty results, several athletes."""


@dataclass(frozen=True)
class ReportData:
    """Everything one athlete's report shows.

    `strides`, `sessions` (per-foot rows), `flags` and `curves` (None: not stored) belong to the
    shown session `session_id`; `history` holds the sessions rows of all the athlete's sessions
    and `trends` the `analytics.trends` table over them (None: not available).
    """

    athlete_id: str
    session_id: str
    session_date: str | None
    strides: pl.DataFrame
    sessions: pl.DataFrame
    flags: pl.DataFrame
    curves: pl.DataFrame | None
    history: pl.DataFrame
    trends: pl.DataFrame | None
    source: str
    warnings: tuple[str, ...] = ()
    remounts: tuple[str, ...] = ()


def _trends_or_reason(trends: pl.DataFrame) -> tuple[pl.DataFrame | None, str | None]:
    if trends.height == 0 or trends[TREND_MEDIAN].null_count() == trends.height:
        return None, "no trend: the athlete has no session medians"
    return trends, None


def _latest_session(history: pl.DataFrame) -> tuple[str, str | None]:
    """(session_id, session_date) of the latest session: by date when known, else by id."""
    cols = [SESSION_ID] + ([SESSION_DATE] if SESSION_DATE in history.columns else [])
    sessions = history.select(cols).unique()
    if SESSION_DATE in sessions.columns:
        sessions = sessions.with_columns(pl.col(SESSION_DATE).cast(pl.String))
        last = sessions.sort(SESSION_DATE, SESSION_ID, nulls_last=False).row(-1, named=True)
        return last[SESSION_ID], last[SESSION_DATE]
    return sessions.sort(SESSION_ID)[SESSION_ID][-1], None


def _session_date(history: pl.DataFrame, session_id: str) -> str | None:
    if SESSION_DATE not in history.columns:
        return None
    dates = history.filter(pl.col(SESSION_ID) == session_id)[SESSION_DATE].drop_nulls()
    return None if dates.len() == 0 else str(dates[0])[:10]


def _collect(root: Path, table: str, athlete_id: str, session_id: str | None = None) -> pl.DataFrame | None:
    df = collect_table(root, table, athlete_id=athlete_id, session_id=session_id)
    return df if df is not None and df.height else None


def load_results(
    root: str | Path, athlete_id: str | None = None, session_id: str | None = None
) -> ReportData:
    """Report data from a results root: the athlete's session `session_id` (default: latest)."""
    root = Path(root)
    if athlete_id is None and session_id is None:
        raise ReportError("say whose report: --athlete ID and/or --session ID")
    if not (root / SESSIONS).is_dir():
        expected = root / SESSIONS / f"{ATHLETE_ID}=..." / f"{SESSION_ID}=..."
        raise ReportError(f"{root}: no results here (expected {expected})")
    if athlete_id is not None:
        check_id(ATHLETE_ID, athlete_id)
    if session_id is not None:
        check_id(SESSION_ID, session_id)
    if athlete_id is None:
        found = collect_table(
            root, SESSIONS, session_id=session_id, query=lambda lf: lf.select(ATHLETE_ID).unique()
        )
        owners = [] if found is None else sorted(found[ATHLETE_ID].to_list())
        if not owners:
            raise ReportError(f"{root}: no session {session_id!r} in the results")
        if len(owners) > 1:
            raise ReportError(
                f"{root}: session {session_id!r} exists for athletes {', '.join(owners)}; add --athlete"
            )
        athlete_id = owners[0]
    history = _collect(root, SESSIONS, athlete_id)
    if history is None:
        raise ReportError(f"{root}: no results for athlete {athlete_id!r}")
    if session_id is None:
        session_id, date = _latest_session(history)
    else:
        if history.filter(pl.col(SESSION_ID) == session_id).height == 0:
            raise ReportError(f"{root}: athlete {athlete_id!r} has no session {session_id!r}")
        date = _session_date(history, session_id)
    strides = _collect(root, STRIDES, athlete_id, session_id)
    flags = _collect(root, FLAGS, athlete_id, session_id)
    curves = _collect(root, CURVES, athlete_id, session_id)
    warnings = []
    if curves is None:
        warnings.append(f"no curves stored for session {session_id}: stance and stride curves are not shown")
    trends, why = _trends_or_reason(compute_trends(root, athlete_id=athlete_id))
    if why:
        warnings.append(why)
    remounts = _stored_remounts(root, athlete_id, session_id, warnings)
    return ReportData(
        athlete_id=athlete_id,
        session_id=session_id,
        session_date=None if date is None else str(date)[:10],
        strides=pl.DataFrame(schema=STRIDES_SCHEMA) if strides is None else strides,
        sessions=history.filter(pl.col(SESSION_ID) == session_id),
        flags=pl.DataFrame(schema=FLAGS_SCHEMA) if flags is None else flags,
        curves=curves,
        history=history,
        trends=trends,
        source=f"results in {root}",
        warnings=tuple(warnings),
        remounts=remounts,
    )


def _stored_remounts(root: Path, athlete_id: str, session_id: str, warnings: list[str]) -> tuple[str, ...]:
    """One line per remount begun in the session, from the athlete's stored mountings."""
    from strideflow.analytics.mountings import FIRST, read_mountings

    try:
        stored = read_mountings(root, athlete_id)
    except StrideflowError as exc:
        warnings.append(f"mountings not shown: {exc}")
        return ()
    return tuple(
        f"Remount, {m.foot} foot (device {m.device_id}): new mounting {m.mounting_id}, {m.reason}"
        for m in stored
        if m.first_session_id == session_id and m.started != FIRST
    )


def load_files(
    paths: Sequence[str | Path],
    *,
    sampling_rate_hz: float | None = None,
    file_format: str = "auto",
    athlete_id: str | None = None,
    session_id: str | None = None,
    settings: AnalysisSettings = AnalysisSettings(),
) -> ReportData:
    """Report data from recorded files analysed now (ids as `strideflow analyze` gives them)."""
    from strideflow.ingest import read_recording

    if not paths:
        raise ReportError("no files given")
    strides_parts, curve_parts, warnings, remounts = [], [], [], []
    for path in paths:
        recording = read_recording(
            Path(path),
            format=file_format,
            sampling_rate_hz=sampling_rate_hz,
            athlete_id=athlete_id,
            session_id=session_id,
        )
        result = analyze_recording(recording, settings)
        warnings.extend(f"{Path(path).name}: {w}" for w in result.warnings if w not in result.remounts)
        remounts.extend(f"{Path(path).name}: {r}" for r in result.remounts)
        strides_parts.append(result.strides)
        curve_parts.append(stride_curves(result))
    strides = pl.concat(strides_parts).sort(*KEYS, IC_T)
    athletes = sorted(strides[ATHLETE_ID].unique().to_list())
    if len(athletes) != 1:
        raise ReportError(
            f"a report covers one athlete, but the files hold {', '.join(athletes) or 'no strides'}; "
            "pass one athlete's files or name them with --athlete"
        )
    athlete = athletes[0]
    curves = pl.concat(curve_parts)
    sessions, flags = summarize_strides(strides, settings)
    shown = sessions.sort(SESSION_ID)[SESSION_ID][-1]
    trends, why = _trends_or_reason(trends_from_sessions(sessions, TrendSettings().metrics).collect())
    if why:
        warnings.append(why)
    return ReportData(
        athlete_id=athlete,
        session_id=shown,
        session_date=None,
        strides=strides.filter(pl.col(SESSION_ID) == shown),
        sessions=sessions.filter(pl.col(SESSION_ID) == shown),
        flags=flags.filter(pl.col(SESSION_ID) == shown),
        curves=curves.filter(pl.col(SESSION_ID) == shown),
        history=sessions,
        trends=trends,
        source=f"{len(paths)} file(s): " + ", ".join(Path(*Path(p).parts[-3:]).as_posix() for p in paths),
        warnings=tuple(warnings),
        remounts=tuple(remounts),
    )
