"""Analysis of one recording: samples -> strides, sessions and flags.

Per athlete-session-foot:

1. mounting alignment: the device -> foot-frame rotation estimated from the foot's own data
   (`hardware.mounting`), or taken as identity when the data is declared aligned;

then per contiguous segment (ingest starts a new segment at a long gap):

2. zero-velocity (foot-flat) detection (`fusion.zero_velocity`);
3. orientation: the zero-velocity-levelled gyro strapdown of `fusion.zupt` (default) or Madgwick
   (`fusion.madgwick`), see `AnalysisSettings.orientation`;
4. zero-velocity-aided integration to world velocity and position (`fusion.zupt`);
5. stride events (`analytics.events`, given step 4's position for the stride displacements)
   and the per-sample signals (`analytics.signals`);

and finally, over all feet at once:

6. stride metrics (`analytics.metrics`); strides that contain interpolated (gap-filled) or
   gyroscope-saturated samples are marked invalid with reason "gap" / "saturation";
7. the sessions table with symmetry (`analytics.sessions`) and flags (`analytics.flags`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.analytics.events import EventSettings, StrideEventDetector
from strideflow.analytics.flags import FlagSettings, SessionFlagger
from strideflow.analytics.metrics import MetricSettings, StrideMetrics, key_runs
from strideflow.analytics.plausibility import check_recording
from strideflow.analytics.sessions import SessionAggregator, SessionSettings
from strideflow.analytics.signals import SignalSettings, signals_frame
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.settings import AccelerationRejection, MadgwickSettings
from strideflow.fusion.zero_velocity import ZeroVelocityDetector, ZeroVelocitySettings
from strideflow.fusion.zupt import ZuptIntegrator, ZuptSettings, zero_velocity_aided_orientation
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.mounting import MountingEstimator, MountingSettings, rotate_to_foot
from strideflow.hardware.schema import (
    ACC,
    FOOT,
    GYR,
    IC_T,
    INTERPOLATED,
    KEYS,
    NEXT_IC_T,
    REASON,
    SATURATED,
    SEGMENT,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
    VALID,
    T,
)
from strideflow.ingest.screen import screen_samples

REASON_GAP = "gap"  # the stride spans samples ingest filled in across a short gap
REASON_SATURATION = "saturation"  # the gyroscope sat at its range during the stride


# Stillness relaxed for running, whose foot-flats are a few tens of ms long and still roll.
RUNNING_MOUNTING = MountingSettings(
    still_window_s=0.03, still_gyr_dps=100.0, still_acc_tol_mps2=3.0, still_acc_std_mps2=4.0
)


class AnalysisError(StrideflowError):
    """A recording that cannot be analysed (e.g. too short for any stride), with the reason."""


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the analysis of a recording depends on, stage by stage.

    - `align_mounting`: estimate each foot's mounting rotation from its data (True), or trust that
      the samples already are in the foot frame (False).
    - `orientation`: "zero_velocity" (default: gyro strapdown levelled on every foot-flat by
      `fusion.zupt.zero_velocity_aided_orientation`) or "madgwick" (the AHRS filter with the
      `madgwick` settings, impact rejection on: accelerometer ignored while | |a| - g | > 0.1 g).
      Measured on simulator truth (benchmarks/accuracy.py): within a stride the metrics are angle
      differences over a few hundred ms, where integrating the gyro is nearly exact, while
      Madgwick's accelerometer step pulls roll during push-off (toe-off pronation error 7-16 deg
      mean absolute with Madgwick against 0.3-1 deg levelled).
    - `mounting_fallback`: tried when `mounting` finds no still periods or strides (running:
      foot-flats of a few tens of ms that still roll); None raises instead.
    - `mounting_window_s`: the mounting is estimated from each foot's first this many seconds
      (the whole recording if that fails, or if None). The rotation is constant, and more data
      does not help: on 16 hour-long simulated feet the error against the true mounting was the
      same from 300 s as from 3600 s (0.15-0.69 deg, differences <= 0.03 deg) at a twentieth of
      the cost.
    - `min_segment_s`: segments shorter than this are skipped (too short for a stride).
    """

    align_mounting: bool = True
    mounting: MountingSettings = field(default_factory=MountingSettings)
    mounting_fallback: MountingSettings | None = field(default_factory=lambda: RUNNING_MOUNTING)
    mounting_window_s: float | None = 300.0
    orientation: Literal["madgwick", "zero_velocity"] = "zero_velocity"
    madgwick: MadgwickSettings = field(
        default_factory=lambda: MadgwickSettings(acc_rejection=AccelerationRejection())
    )
    zero_velocity: ZeroVelocitySettings = field(default_factory=ZeroVelocitySettings)
    zupt: ZuptSettings = field(default_factory=ZuptSettings)
    events: EventSettings = field(default_factory=EventSettings)
    signals: SignalSettings = field(default_factory=SignalSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    flags: FlagSettings = field(default_factory=FlagSettings)
    min_segment_s: float = 2.0


@dataclass(frozen=True)
class AnalysisResult:
    """What the analysis of one recording gives.

    `strides` (STRIDES_SCHEMA), `sessions` and `flags` tables; `signals` and `events` per foot
    (the per-sample signals table and the detector's events with keys, for plots and debugging);
    `mounting` per foot (device -> foot rotation used); `warnings` in plain words.
    """

    strides: pl.DataFrame
    sessions: pl.DataFrame
    flags: pl.DataFrame
    signals: dict[str, pl.DataFrame]
    events: dict[str, pl.DataFrame]
    mounting: dict[str, Rotation]
    sampling_rate_hz: float
    warnings: tuple[str, ...] = ()


def _empty_strides() -> pl.DataFrame:
    return pl.DataFrame(schema=STRIDES_SCHEMA)


def _sample_flag_reasons(strides: pl.DataFrame, samples: pl.DataFrame) -> pl.DataFrame:
    """Mark strides that contain gap-filled or gyro-saturated samples invalid (vectorised)."""
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
        # Accelerometer saturation at impact only clips impact_g; the orientation and so the
        # pronation metrics suffer only when the gyroscope sits at its range.
        gyr_abs = pl.max_horizontal(*[pl.col(c).abs() for c in GYR])
        gyr_at_range = gyr_abs >= gyr_abs.max().over(list(KEYS)) * 0.999
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
    reason = pl.lit(None, dtype=pl.String)
    for _, r in reversed(marks):
        reason = pl.when(pl.col(f"_{r}").fill_null(False)).then(pl.lit(r)).otherwise(reason)
    return out.with_columns(
        pl.when(pl.col(VALID) & reason.is_not_null()).then(reason).otherwise(pl.col(REASON)).alias(REASON),
        (pl.col(VALID) & reason.is_null()).alias(VALID),
    ).select(strides.columns)


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


class RecordingAnalyzer:
    """Runs the whole analysis on a `samples` table (one or more athlete-session-feet)."""

    def __init__(self, settings: AnalysisSettings = AnalysisSettings()):
        self.settings = settings

    def analyze(
        self, samples: pl.DataFrame, sampling_rate_hz: float, summarize: bool = True
    ) -> RecordingAnalyzer:
        """Fill `result_` (AnalysisResult) and `timings_s_` (wall seconds per stage of STAGES).

        `samples` in the samples schema, device or foot frame. `summarize=False` leaves the
        result's `sessions` and `flags` empty (with their columns), for callers that summarise
        the strides of several recordings together (`summarize_strides`), as the team batch does.
        """
        s = self.settings
        fs = float(sampling_rate_hz)
        clock = _StageClock()
        warnings: list[str] = []
        signals: dict[str, list[pl.DataFrame]] = {}
        events: dict[str, list[pl.DataFrame]] = {}
        mounting: dict[str, Rotation] = {}
        with clock("prepare"):
            parts = _foot_parts(samples)
        for (athlete, session, foot), part in parts:
            where = f"athlete {athlete}, session {session}, {foot} foot"
            screen_samples(part, fs, where)  # too short or standing only: one line, before alignment
            with clock("prepare"):
                acc_all, gyr_all = _xyz(part, ACC), _xyz(part, GYR)
                t_all = np.array(part.get_column(T).cast(pl.Float64).to_numpy())  # writable copy
            with clock("mounting"):
                if s.align_mounting:
                    rotation = self._mounting(acc_all, gyr_all, fs, where, warnings)
                    # the numbers apply_mounting gives, on the arrays the stages below read
                    acc_all, gyr_all = rotate_to_foot(rotation, acc_all), rotate_to_foot(rotation, gyr_all)
                else:
                    rotation = Rotation.identity()
            mounting[foot] = rotation
            with clock("prepare"):
                bounds = _segment_bounds(part)
                if bounds is None:
                    numbered = part.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), SEGMENT)
                    groups = numbered.partition_by(SEGMENT, maintain_order=True)
                    segments = [g.get_column("_row").to_numpy() for g in groups]
                else:
                    segments = [slice(lo, hi) for lo, hi in bounds]
            stride_offset = 0
            for rows in segments:
                acc, gyr, t = acc_all[rows], gyr_all[rows], t_all[rows]
                if len(t) < s.min_segment_s * fs:
                    warnings.append(
                        f"{where}: skipped a piece of {len(t) / fs:.2f} s between gaps "
                        f"(shorter than {s.min_segment_s:g} s, too short for a stride)"
                    )
                    continue
                sig, ev = self._segment(acc, gyr, t, fs, (athlete, session, foot), clock)
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
                strides = (
                    StrideMetrics(s.metrics)
                    .estimate(
                        pl.concat(list(all_events.values()), how="diagonal_relaxed"),
                        pl.concat(list(all_signals.values())),
                    )
                    .strides_
                )
                strides = _sample_flag_reasons(strides, samples)
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
        )
        self.timings_s_ = clock.seconds_
        return self

    def _mounting(
        self, acc: np.ndarray, gyr: np.ndarray, fs: float, where: str, warnings: list[str]
    ) -> Rotation:
        """Device -> foot rotation of one foot, with the running fallback settings if needed.

        Each settings is tried on the first `mounting_window_s` and then, if that fails, on all
        the data, before the next settings is tried.
        """
        window_s = self.settings.mounting_window_s
        n = len(acc) if window_s is None else min(len(acc), max(1, int(round(window_s * fs))))
        spans = (n, len(acc)) if n < len(acc) else (len(acc),)
        attempts = [(self.settings.mounting, span) for span in spans]
        if self.settings.mounting_fallback is not None:
            attempts += [(self.settings.mounting_fallback, span) for span in spans]
        failed: dict[bool, str] = {}  # primary settings? -> its last error (on the most data)
        for settings, span in attempts:
            primary = settings is self.settings.mounting
            try:
                rotation = MountingEstimator(settings).estimate(acc[:span], gyr[:span], fs).rotation_
            except StrideflowError as exc:
                failed[primary] = str(exc)
                continue
            if not primary:
                warnings.append(f"{where}: mounting aligned with the relaxed (running) stillness settings")
            return rotation
        message = f"{where}: mounting alignment failed: {failed[True]}"
        if False in failed:
            message += f"; relaxed for running: {failed[False]}"
        raise AnalysisError(message)

    def _segment(
        self,
        acc: np.ndarray,
        gyr: np.ndarray,
        t: np.ndarray,
        fs: float,
        keys: tuple[str, str, str],
        clock: _StageClock,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Signals and events of one contiguous segment: foot-frame (N, 3) acc (m/s²) and gyr
        (deg/s), C-contiguous float64, and t (N,) in s."""
        s = self.settings
        foot = keys[2]
        with clock("zero_velocity"):
            zv = ZeroVelocityDetector(s.zero_velocity).detect(acc, gyr, fs).zero_velocity_
        with clock("orientation"):
            if s.orientation == "madgwick":
                q = Madgwick(s.madgwick).estimate(acc, gyr, sampling_rate_hz=fs).orientation_
            elif s.orientation == "zero_velocity":
                q = zero_velocity_aided_orientation(acc, gyr, zv, fs, t)
            else:
                raise ValueError(f"orientation must be 'madgwick' or 'zero_velocity', got {s.orientation!r}")
        with clock("integration"):
            zupt = ZuptIntegrator(s.zupt).estimate(acc, q, zv, fs, t)
        with clock("events"):
            # The integration above is the one the detector would repeat for its displacements.
            det = StrideEventDetector(s.events).detect(
                acc, gyr, fs, foot=foot, zero_velocity=zv, t_s=t, q_wxyz=q, position_m=zupt.position_m_
            )
        with clock("signals"):
            sig = signals_frame(
                keys,
                t,
                acc,
                gyr,
                q,
                zero_velocity=zv,
                velocity_mps=zupt.velocity_mps_,
                position_m=zupt.position_m_,
                settings=s.signals,
            )
        return sig, det.events_


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
    )
