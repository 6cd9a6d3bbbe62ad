"""Analysis of one recording: samples -> strides, sessions and flags.

(Over ~500 lines: the per-foot loop over mountings, segments and summaries is one recipe that reads
best top to bottom; the segment analysis itself is `analytics.segment`.)

Per athlete-session-foot:

1. mounting alignment: the device -> foot-frame rotation estimated from the foot's own data
   (`analytics.segment.estimate_mounting`, over `hardware.mounting`), or taken as identity when
   the data is declared aligned;

then per contiguous segment (ingest starts a new segment at a long gap), the segment analysis the
live analyzer runs on its windows too (`analytics.segment.analyze_segment`):

2. zero-velocity (foot-flat) detection (`fusion.zero_velocity`);
3. orientation: the zero-velocity-levelled gyro strapdown of `fusion.zupt` (default) or Madgwick
   (`fusion.madgwick`), see `AnalysisSettings.orientation`;
4. zero-velocity-aided integration to world velocity and position (`fusion.zupt`);
5. stride events (`analytics.events`, given step 4's position for the stride displacements)
   and the per-sample signals (`analytics.signals`);

and finally, over all feet at once:

6. stride metrics (`analytics.metrics`); strides that contain interpolated (gap-filled) or
   gyroscope-saturated samples are marked invalid with reason "gap" / "saturation"
   (`analytics.segment.apply_sample_flags`);
7. the sessions table with symmetry (`analytics.sessions`) and flags (`analytics.flags`).

`AnalysisSettings` lives in `analytics.settings` (re-exported here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.analytics.flags import SessionFlagger
from strideflow.analytics.foot_side import FootSideCheck
from strideflow.analytics.metrics import key_runs
from strideflow.analytics.mountings import FIRST, Mounting, MountingTracker
from strideflow.analytics.plausibility import check_recording
from strideflow.analytics.segment import (
    GYR_AT_RANGE,
    REASON_GAP,
    REASON_SATURATION,
    analyze_segment,
    apply_sample_flags,
    stride_metrics,
)
from strideflow.analytics.sessions import SessionAggregator
from strideflow.analytics.settings import RUNNING_MOUNTING, AnalysisError, AnalysisSettings
from strideflow.fusion.sensor_delay import GyroDelayEstimator, delay_gyro
from strideflow.hardware.mounting import rotate_to_foot
from strideflow.hardware.schema import (
    ACC,
    FOOT,
    GYR,
    IC_T,
    INTERPOLATED,
    KEYS,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    NEXT_IC_T,
    REMOUNT,
    SATURATED,
    SEGMENT,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
    T,
)
from strideflow.ingest.screen import screen_samples

__all__ = [
    "REASON_GAP",
    "REASON_SATURATION",
    "RUNNING_MOUNTING",
    "AnalysisError",
    "AnalysisResult",
    "AnalysisSettings",
    "RecordingAnalyzer",
    "analyze_recording",
    "analyze_samples",
    "summarize_strides",
]


@dataclass(frozen=True)
class AnalysisResult:
    """What the analysis of one recording gives.

    `strides` (STRIDES_SCHEMA), `sessions` and `flags` tables; `signals` and `events` per foot
    (the per-sample signals table and the detector's events with keys, for plots and debugging);
    `mounting` per foot (device -> foot rotation used); `mounting_uncertainty_deg` per foot (the
    1-sigma uncertainty of its heading, the shoe axis, deg; absent when the frame was not
    estimated); `warnings` in plain words; `gyr_delay_s` per foot, the gyro delay undone (s;
    `AnalysisSettings.gyr_delay_s`); `mountings` per foot, the mountings used in time order
    (`analytics.mountings.Mounting`: more than one after a remount within the recording; the
    first is the prior passed in when it fitted), and `remounts`, one line per remount.
    """

    strides: pl.DataFrame
    sessions: pl.DataFrame
    flags: pl.DataFrame
    signals: dict[str, pl.DataFrame]
    events: dict[str, pl.DataFrame]
    mounting: dict[str, Rotation]
    sampling_rate_hz: float
    warnings: tuple[str, ...] = ()
    mounting_uncertainty_deg: dict[str, float] = field(default_factory=dict)
    gyr_delay_s: dict[str, float] = field(default_factory=dict)
    mountings: dict[str, list[Mounting]] = field(default_factory=dict)
    remounts: tuple[str, ...] = ()


def with_mountings(
    strides: pl.DataFrame, mountings: Mapping[str, list[Mounting]], session_of: dict
) -> pl.DataFrame:
    """`strides` with `mounting_id` (the mounting in use at the stride's IC) and `remount` (that
    mounting began with a remount in this session); null for a foot whose frame was given."""
    mounting_id = pl.lit(None, dtype=pl.String)
    remount = pl.lit(None, dtype=pl.Boolean)
    for foot, pieces in mountings.items():
        for m in pieces:
            here = (pl.col(FOOT) == foot) & (
                pl.col(IC_T) >= m.start_t_s if m is not pieces[0] else pl.lit(True)
            )
            began = m.started != FIRST and m.first_session_id == session_of.get(foot)
            mounting_id = pl.when(here).then(pl.lit(m.mounting_id)).otherwise(mounting_id)
            remount = pl.when(here).then(pl.lit(began)).otherwise(remount)
    return strides.with_columns(mounting_id.alias(MOUNTING_ID), remount.alias(REMOUNT))


def with_mounting_uncertainty(strides: pl.DataFrame, uncertainty_deg: dict[str, float]) -> pl.DataFrame:
    """`strides` with the column `mounting_uncertainty_deg`: the heading uncertainty of the foot's
    mounting (deg), null for a foot whose frame was given rather than estimated."""
    value = pl.lit(None, dtype=pl.Float64)
    for foot, deg in uncertainty_deg.items():
        value = pl.when(pl.col(FOOT) == foot).then(pl.lit(float(deg))).otherwise(value)
    return strides.with_columns(value.cast(pl.Float64).alias(MOUNTING_UNCERTAINTY_DEG))


def _empty_strides() -> pl.DataFrame:
    return pl.DataFrame(schema=STRIDES_SCHEMA)


def _sample_flag_reasons(strides: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """Mark strides that contain gap-filled or gyro-saturated samples invalid (vectorised): the
    samples of each stride found by time, then the one rule, `segment.apply_sample_flags`."""
    present = [c for c in (INTERPOLATED, SATURATED) if c in samples.columns]
    if strides.height == 0 or not present:
        return strides
    # Nearly every recording has neither kind of sample: skip the per-foot gyro maxima then.
    if not any(samples.select(pl.col(c).fill_null(False).any() for c in present).row(0)):
        return strides
    marks = []
    if INTERPOLATED in samples.columns:
        marks.append((pl.col(INTERPOLATED).fill_null(False), REASON_GAP))
    if SATURATED in samples.columns:
        gyr_abs = pl.max_horizontal(*[pl.col(c).abs() for c in GYR])
        gyr_at_range = gyr_abs >= gyr_abs.max().over(list(KEYS)) * GYR_AT_RANGE
        marks.append((pl.col(SATURATED).fill_null(False) & gyr_at_range, REASON_SATURATION))
    if not marks or strides.height == 0:
        return strides
    flagged = samples.select(*KEYS, T, *[m.alias(reason) for m, reason in marks])
    bounds = (
        strides.select(*KEYS, STRIDE_INDEX, IC_T, NEXT_IC_T)
        .filter(pl.col(IC_T).is_not_null())
        .sort(*KEYS, IC_T)
    )
    hits = (
        flagged.filter(pl.any_horizontal(*[pl.col(r) for _, r in marks]))
        .sort(*KEYS, T)
        .join_asof(
            bounds, left_on=T, right_on=IC_T, by=list(KEYS), strategy="backward", check_sortedness=False
        )
        .filter(pl.col(STRIDE_INDEX).is_not_null() & (pl.col(T) < pl.col(NEXT_IC_T)))
        .group_by(*KEYS, STRIDE_INDEX)
        .agg([pl.col(r).any().alias(f"_{r}") for _, r in marks])
    )
    if hits.height == 0:
        return strides
    out = strides.join(hits, on=[*KEYS, STRIDE_INDEX], how="left")
    flags = {r: pl.col(f"_{r}").fill_null(False) for _, r in marks}
    return apply_sample_flags(out, flags).select(strides.columns)


STAGES = (
    "prepare",
    "mounting",
    "zero_velocity",
    "orientation",
    "integration",
    "events",
    "signals",
    "metrics",
    "sessions",
)
"""Keys of `RecordingAnalyzer.timings_s_`: `prepare` (grouping and sorting the samples), then one
per pipeline step; `integration` is the zero-velocity-aided velocity and position."""


class _StageClock:
    """Wall seconds spent per stage (perf_counter), summed over feet and segments."""

    def __init__(self) -> None:
        self.seconds_ = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds_[stage] += time.perf_counter() - t0


def _key_order(key: tuple) -> tuple:
    # Polars sorts nulls first; Python cannot compare None with str.
    return tuple((v is not None, v) for v in key)


def _foot_parts(samples: pl.DataFrame) -> list[tuple[tuple, pl.DataFrame]]:
    """(athlete, session, foot) and its rows in time order, in key order: what `sort(*KEYS, T)`
    grouped gives, without sorting the whole table by its string keys."""
    if samples.height == 0:
        return []
    runs = key_runs(samples)
    if runs.select(pl.struct(KEYS).is_duplicated().any()).item():
        parts = samples.partition_by(KEYS, maintain_order=True, as_dict=True)
    else:  # each foot's rows are contiguous (ingest's order): zero-copy slices
        parts = {(a, s, f): samples.slice(lo, hi - lo) for a, s, f, lo, hi in runs.iter_rows()}
    out = []
    for key in sorted(parts, key=_key_order):
        part = parts[key]
        if not part.get_column(T).is_sorted():
            part = part.sort(T, maintain_order=True)
        out.append((key, part))
    return out


def _xyz(part: pl.DataFrame, columns: tuple[str, str, str]) -> np.ndarray:
    """Three float columns as one C-contiguous (N, 3) float64 array (null -> NaN), one copy."""
    out = np.empty((part.height, 3))
    for i, name in enumerate(columns):
        out[:, i] = part.get_column(name).cast(pl.Float64).to_numpy()
    return out


def _segment_bounds(part: pl.DataFrame) -> list[tuple[int, int]] | None:
    """[lo, hi) row ranges of the segments, in order; None when the segment column is not in
    contiguous non-decreasing runs (then the rows are grouped by value instead)."""
    if SEGMENT not in part.columns:
        return [(0, part.height)]
    column = part.get_column(SEGMENT)
    if column.null_count() or not column.is_sorted():
        return None
    starts = np.flatnonzero(np.diff(column.to_numpy())) + 1
    edges = [0, *starts.tolist(), part.height]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _cut_segments(segments: list, cuts: list[int]) -> list:
    """The segments (slices, or arrays of rows in ascending order) cut at the rows in `cuts`: no
    segment spans a remount, whose samples before and after are in different mountings."""
    if not cuts:
        return segments
    out = []
    edges = [0, *cuts, np.iinfo(np.int64).max]
    for rows in segments:
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if isinstance(rows, slice):
                a, b = max(rows.start, lo), min(rows.stop, hi)
                if a < b:
                    out.append(slice(a, b))
            else:
                part = rows[(rows >= lo) & (rows < hi)]
                if len(part):
                    out.append(part)
    return out


class RecordingAnalyzer:
    """Runs the whole analysis on a `samples` table (one or more athlete-session-feet).

    Parameters
    ----------
    settings
        `AnalysisSettings`: the settings of every stage (units in their fields).

    Attributes
    ----------
    result_ : AnalysisResult
        Strides, sessions and flags tables; per foot the signals, events and mountings; warnings.
    timings_s_ : dict[str, float]
        Wall seconds per stage of STAGES.

    Notes
    -----
    The chain of the module docstring; each stage's class cites its own source.
    """

    def __init__(self, settings: AnalysisSettings = AnalysisSettings()):
        self.settings = settings

    def analyze(
        self,
        samples: pl.DataFrame,
        sampling_rate_hz: float,
        summarize: bool = True,
        mountings: Mapping[str, Mounting] | None = None,
    ) -> RecordingAnalyzer:
        """Analyse `samples` (samples schema, m/s² and deg/s) taken at `sampling_rate_hz`.

        `samples` in the samples schema, device or foot frame. `summarize=False` leaves the
        result's `sessions` and `flags` empty (with their columns), for callers that summarise
        the strides of several recordings together (`summarize_strides`), as the team batch does.
        `mountings`: per foot, the prior mounting of that foot's device (the athlete's stored one,
        `analytics.mountings`), used unchanged unless a remount is detected.
        """
        s = self.settings
        fs = float(sampling_rate_hz)
        clock = _StageClock()
        warnings: list[str] = []
        signals: dict[str, list[pl.DataFrame]] = {}
        events: dict[str, list[pl.DataFrame]] = {}
        mounting: dict[str, Rotation] = {}
        uncertainty: dict[str, float] = {}
        gyr_delay: dict[str, float] = {}
        used: dict[str, list[Mounting]] = {}
        session_of: dict[str, str] = {}
        remounts: list[str] = []
        with clock("prepare"):
            parts = _foot_parts(samples)
        for (athlete, session, foot), part in parts:
            where = f"athlete {athlete}, session {session}, {foot} foot"
            screen_samples(part, fs, where)  # too short or standing only: one line, before alignment
            with clock("prepare"):
                acc_all, gyr_all = _xyz(part, ACC), _xyz(part, GYR)
                t_all = np.array(part.get_column(T).cast(pl.Float64).to_numpy())  # writable copy
            cuts: list[int] = []  # rows where a new mounting begins (a remount within the recording)
            with clock("mounting"):
                if s.align_mounting:
                    tracker = MountingTracker(s).estimate(
                        acc_all,
                        gyr_all,
                        t_all,
                        fs,
                        (athlete, session, foot),
                        where,
                        (mountings or {}).get(foot),
                    )
                    warnings.extend(tracker.warnings_)
                    remounts.extend(tracker.remounts_)
                    pieces = tracker.pieces_
                    used[foot] = [p.mounting for p in pieces]
                    session_of[foot] = session
                    unc = [p.mounting.uncertainty_deg for p in pieces]
                    if all(u is not None for u in unc):
                        uncertainty[foot] = float(max(unc))
                    cuts = [p.start_row for p in pieces[1:]]
                    rotation = pieces[0].mounting.rotation
                    # the numbers apply_mounting gives, on the arrays the stages below read
                    acc_rot, gyr_rot = np.empty_like(acc_all), np.empty_like(gyr_all)
                    for p in pieces:
                        rows = slice(p.start_row, p.stop_row)
                        acc_rot[rows] = rotate_to_foot(p.mounting.rotation, acc_all[rows])
                        gyr_rot[rows] = rotate_to_foot(p.mounting.rotation, gyr_all[rows])
                    acc_all, gyr_all = acc_rot, gyr_rot
                else:
                    rotation = Rotation.identity()
            mounting[foot] = rotation
            with clock("prepare"):
                gyr_delay[foot] = self._gyr_delay(acc_all, gyr_all, t_all, fs, where, warnings)
                if gyr_delay[foot] != 0.0:
                    gyr_all = np.ascontiguousarray(delay_gyro(gyr_all, t_all, gyr_delay[foot]))
            with clock("prepare"):
                bounds = _segment_bounds(part)
                if bounds is None:
                    numbered = part.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), SEGMENT)
                    groups = numbered.partition_by(SEGMENT, maintain_order=True)
                    segments = [g.get_column("_row").to_numpy() for g in groups]
                else:
                    segments = [slice(lo, hi) for lo, hi in bounds]
                segments = _cut_segments(segments, cuts)
            stride_offset = 0
            for rows in segments:
                acc, gyr, t = acc_all[rows], gyr_all[rows], t_all[rows]
                if len(t) < s.min_segment_s * fs:
                    warnings.append(
                        f"{where}: skipped a piece of {len(t) / fs:.2f} s between gaps "
                        f"(shorter than {s.min_segment_s:g} s, too short for a stride)"
                    )
                    continue
                seg = analyze_segment(acc, gyr, t, fs, (athlete, session, foot), s, clock=clock)
                with clock("signals"):
                    sig = seg.signals()
                ev = seg.events
                ev = ev.with_columns(
                    pl.col(STRIDE_INDEX) + stride_offset,
                    pl.lit(athlete, dtype=pl.String).alias(KEYS[0]),
                    pl.lit(session, dtype=pl.String).alias(KEYS[1]),
                    pl.lit(foot, dtype=pl.String).alias(FOOT),
                )
                stride_offset += ev.height
                signals.setdefault(foot, []).append(sig)
                events.setdefault(foot, []).append(ev)
        all_signals = {f: pl.concat(v) for f, v in signals.items()}
        all_events = {f: pl.concat(v) for f, v in events.items()}
        with clock("metrics"):
            if all_events:
                strides = stride_metrics(
                    pl.concat(list(all_events.values()), how="diagonal_relaxed"),
                    pl.concat(list(all_signals.values())),
                    s,
                )
                strides = _sample_flag_reasons(strides, samples)
                strides = with_mounting_uncertainty(strides, uncertainty)
                strides = with_mountings(strides, used, session_of)
                if s.foot_side is not None:
                    side = FootSideCheck(s.foot_side).detect(strides, pl.concat(list(all_signals.values())))
                    warnings.extend(side.warnings_)
                check_recording(strides, fs)  # mostly implausible strides: read wrongly, fail
            else:
                strides = _empty_strides()
        if strides.height == 0:
            warnings.append("no strides detected")
        with clock("sessions"):
            sessions, flags = summarize_strides(strides, s) if summarize else _empty_summary(s)
        self.result_ = AnalysisResult(
            strides=strides,
            sessions=sessions,
            flags=flags,
            signals=all_signals,
            events=all_events,
            mounting=mounting,
            sampling_rate_hz=fs,
            warnings=tuple(warnings),
            mounting_uncertainty_deg=uncertainty,
            gyr_delay_s=gyr_delay,
            mountings=used,
            remounts=tuple(remounts),
        )
        self.timings_s_ = clock.seconds_
        return self

    def _gyr_delay(
        self, acc: np.ndarray, gyr: np.ndarray, t: np.ndarray, fs: float, where: str, warnings: list[str]
    ) -> float:
        """The gyro delay (s) to undo on one foot: the setting, or estimated and reported."""
        s = self.settings
        if s.gyr_delay_s != "estimate":
            return float(s.gyr_delay_s)
        est = GyroDelayEstimator(s.gyr_delay, s.zero_velocity, s.zupt).estimate(acc, gyr, fs, t - t[0])
        if not np.isfinite(est.delay_s_):
            warnings.append(f"{where}: gyro delay not estimated ({est.gaps_} strides, too few)")
            return 0.0
        found = f"{1000 * est.delay_s_:+.1f} ms (ZUPT residual contrast {est.contrast_:.1f})"
        if not est.identified_:
            warnings.append(f"{where}: gyro delay not identifiable (best {found}); none applied")
            return 0.0
        warnings.append(f"{where}: gyro lags the accelerometer by {found}; undone")
        return est.delay_s_


_EMPTY_SUMMARY: dict[AnalysisSettings, tuple[pl.DataFrame, pl.DataFrame]] = {}


def _empty_summary(settings: AnalysisSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sessions, flags) of no strides; built once per settings (it costs as much as a real one)."""
    try:
        cached = _EMPTY_SUMMARY.get(settings)
    except TypeError:  # settings holding an unhashable value
        return summarize_strides(_empty_strides(), settings)
    if cached is None:
        cached = _EMPTY_SUMMARY[settings] = summarize_strides(_empty_strides(), settings)
    return cached[0].clone(), cached[1].clone()  # a caller may change its frames in place


def summarize_strides(
    strides: pl.DataFrame, settings: AnalysisSettings = AnalysisSettings()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(sessions, flags) of a strides table, e.g. the strides of several recordings together."""
    sessions = SessionAggregator(settings.sessions).aggregate(strides).sessions_
    return sessions, SessionFlagger(settings.flags).detect(sessions).flags_


def analyze_samples(
    samples: pl.DataFrame, sampling_rate_hz: float, settings: AnalysisSettings = AnalysisSettings()
) -> AnalysisResult:
    """Analyse a `samples` table: shorthand for `RecordingAnalyzer(settings).analyze(...).result_`."""
    return RecordingAnalyzer(settings).analyze(samples, sampling_rate_hz).result_


def analyze_recording(recording, settings: AnalysisSettings = AnalysisSettings()) -> AnalysisResult:
    """Analyse an ingested `Recording` (`.samples`, `.sampling_rate_hz`, `.warnings`)."""
    screen_samples(recording.samples, recording.sampling_rate_hz, getattr(recording, "source", "recording"))
    result = analyze_samples(recording.samples, recording.sampling_rate_hz, settings)
    ingest_warnings = tuple(str(w) for w in getattr(recording, "warnings", ()))
    if not ingest_warnings:
        return result
    return AnalysisResult(
        strides=result.strides,
        sessions=result.sessions,
        flags=result.flags,
        signals=result.signals,
        events=result.events,
        mounting=result.mounting,
        sampling_rate_hz=result.sampling_rate_hz,
        warnings=ingest_warnings + result.warnings,
        mounting_uncertainty_deg=result.mounting_uncertainty_deg,
        gyr_delay_s=result.gyr_delay_s,
        mountings=result.mountings,
        remounts=result.remounts,
    )
