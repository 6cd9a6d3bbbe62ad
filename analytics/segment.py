"""The analysis of one contiguous segment of one foot, shared by batch and live.

The batch pipeline (`analytics.pipeline`) feeds it each segment of a recording, the live analyzer
(`analytics.live_analyzer`) each window of its stream; so live equals batch by construction:

1. mounting: `estimate_mounting`, the device -> foot rotation with its running fallback;
2. zero velocity (`fusion.zero_velocity`), unless the caller has the flags (live: final flags of
   `fusion.live.ZeroVelocityStream`);
3. orientation: `segment_orientation`, the levelled strapdown (gyro bias from the segment's still
   samples, or a fixed bias) or Madgwick;
4. zero-velocity-aided velocity and position (`fusion.zupt`);
5. stride events (`analytics.events`) and, on demand, the per-sample signals
   (`analytics.signals`) and the stride metrics (`stride_metrics`);
6. stride invalidation: `apply_sample_flags`, the one rule by which strides over gap-filled or
   gyro-saturated samples become invalid.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.analytics.events import EventColumns, StrideEventDetector
from strideflow.analytics.metric_rows import key_columns
from strideflow.analytics.metrics import PreparedStrides, StrideMetrics
from strideflow.analytics.settings import AnalysisError, AnalysisSettings
from strideflow.analytics.signals import signal_arrays, signals_table
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.fusion.zupt import LevelledStrapdown, LevellingSettings, ZuptIntegrator
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.mounting import MountingEstimator
from strideflow.hardware.schema import KEYS, REASON, STEADY, VALID, steady_expr

REASON_GAP = "gap"  # the stride spans samples ingest filled in across a short gap
REASON_SATURATION = "saturation"  # the gyroscope sat at its range during the stride
# A saturated sample counts when its largest |gyr| axis is within this fraction of the largest
# |gyr| of the recording (batch) or of the stream so far (live): accelerometer saturation at impact
# only clips impact_g; the orientation, and so the pronation metrics, suffer only when the
# gyroscope sits at its range.
GYR_AT_RANGE = 0.999
# Reasons in order of precedence: a stride over both kinds of sample says "gap".
SAMPLE_FLAG_REASONS = (REASON_GAP, REASON_SATURATION)

RELAXED_MOUNTING = "mounting aligned with the relaxed (running) stillness settings"
# The levelling of a stream whose gyroscope bias is known (subtracted beforehand).
_FIXED_BIAS_LEVELLING = replace(LevellingSettings(), estimate_gyr_bias=False)


class MountingFailed(AnalysisError):
    """No mounting estimate with either settings; `errors`: the last error of each settings tried."""

    def __init__(self, message: str, errors: tuple[str, ...]):
        super().__init__(message)
        self.errors = errors


def estimate_mounting(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    sampling_rate_hz: float,
    settings: AnalysisSettings,
    where: str,
) -> tuple[Rotation, tuple[str, ...], float]:
    """Device -> foot rotation of one foot, its warnings (the relaxed (running) settings gave it;
    the walking direction stands in for the shoe axis) and the heading uncertainty of its x axis
    (deg, `hardware.shoe_axis`).

    Parameters
    ----------
    acc_mps2, gyr_dps
        (N, 3) device-frame samples of one foot, m/s² and deg/s.
    sampling_rate_hz
        Their rate.
    settings
        `mounting` is tried first, then `mounting_fallback` (unless None). Each settings is tried
        on the first `mounting_window_s` and then, if that fails and there is more, on all the
        data.
    where
        Names the foot in the error message ("athlete A, session S, left foot").

    Raises
    ------
    MountingFailed
        Neither settings found still periods and strides; `errors` holds each one's last error.
    """
    estimator, notes = estimate_mounting_details(acc_mps2, gyr_dps, sampling_rate_hz, settings, where)
    return estimator.rotation_, notes, float(estimator.shoe_axis_.uncertainty_deg_)


def estimate_mounting_details(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    sampling_rate_hz: float,
    settings: AnalysisSettings,
    where: str,
) -> tuple[MountingEstimator, tuple[str, ...]]:
    """`estimate_mounting` giving the fitted `MountingEstimator` itself (with its per-stride
    directions, `analytics.mountings`) and the warnings."""
    n_all = len(acc_mps2)
    window_s = settings.mounting_window_s
    n = n_all if window_s is None else min(n_all, max(1, int(round(window_s * sampling_rate_hz))))
    spans = (n, n_all) if n < n_all else (n_all,)
    attempts = [(settings.mounting, span) for span in spans]
    if settings.mounting_fallback is not None:
        attempts += [(settings.mounting_fallback, span) for span in spans]
    failed: dict[bool, str] = {}  # primary settings? -> its last error (on the most data)
    for mounting, span in attempts:
        primary = mounting is settings.mounting
        try:
            estimator = MountingEstimator(mounting).estimate(
                acc_mps2[:span], gyr_dps[:span], sampling_rate_hz
            )
        except StrideflowError as exc:
            failed[primary] = str(exc)
            continue
        notes = () if primary else (f"{where}: {RELAXED_MOUNTING}",)
        shoe = estimator.shoe_axis_
        if mounting.heading == "auto" and shoe.source_ == "walking":
            notes += (
                f"{where}: the pod is not square on the shoe and no toe-tap calibration was found: the "
                f"walking direction stands in for the shoe axis (uncertainty {shoe.uncertainty_deg_:.0f} "
                "deg), so toe-off pronation is a trend value only (docs/frames.md)",
            )
        ambiguous = shoe.square_disagreement_deg_ > mounting.shoe_axis.square_tolerance_deg
        if shoe.source_ == "square" and ambiguous:
            up = estimator.gravity_dev_ / np.linalg.norm(estimator.gravity_dev_)
            notes += (
                f"{where}: the pod is tilted about two of its own axes (foot-flat up "
                f"({up[0]:+.2f}, {up[1]:+.2f}, {up[2]:+.2f}) in the device frame), so its edges read the "
                f"shoe axis up to {shoe.square_disagreement_deg_:.0f} deg apart: the square-mount heading "
                f"is uncertain by {shoe.uncertainty_deg_:.0f} deg and toe-off flags are withheld where that "
                "could explain them (docs/frames.md; a toe-tap calibration or the device's known mounting "
                "removes it)",
            )
        return estimator, notes
    message = f"{where}: mounting alignment failed: {failed[True]}"
    if False in failed:
        message += f"; relaxed for running: {failed[False]}"
    raise MountingFailed(message, tuple(failed[k] for k in (True, False) if k in failed))


def levelling_settings(settings: AnalysisSettings, fixed_bias: bool = False) -> LevellingSettings:
    """The levelling of `settings`: its lever is the ZUPT's anchor lever (one pod placement for both:
    the sensor's acceleration about the contact out of gravity, its velocity out of the anchor)."""
    lever = settings.zupt.anchor_lever_m
    return _levelling(None if lever is None else tuple(float(x) for x in lever), fixed_bias)


@lru_cache(maxsize=64)
def _levelling(lever_m: tuple[float, float, float] | None, fixed_bias: bool) -> LevellingSettings:
    # cached: the live analyzer asks per window (settings are frozen, so sharing is safe)
    base = _FIXED_BIAS_LEVELLING if fixed_bias else LevellingSettings()
    return replace(base, lever_m=lever_m)


def segment_orientation(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    zero_velocity: np.ndarray,
    sampling_rate_hz: float,
    t_s: np.ndarray,
    settings: AnalysisSettings,
    gyr_bias_dps: np.ndarray | None = None,
) -> np.ndarray:
    """Orientation (N, 4) wxyz of a foot-frame segment, by `settings.orientation`.

    "zero_velocity": `fusion.zupt.LevelledStrapdown` (`levelling_settings`), with the gyroscope bias
    estimated from the segment's still samples, or `gyr_bias_dps` (3,) subtracted when given (live:
    the warm-up's estimate). "madgwick": `fusion.madgwick.Madgwick` over the segment (live runs the streaming
    filter instead and passes its output to `analyze_segment`).
    """
    if settings.orientation == "zero_velocity":
        # the levelling's anchor SD is computed only when read (segment_levelling)
        return _strapdown(acc_mps2, gyr_dps, zero_velocity, sampling_rate_hz, t_s, settings, gyr_bias_dps)[0]
    q, _ = segment_levelling(acc_mps2, gyr_dps, zero_velocity, sampling_rate_hz, t_s, settings, gyr_bias_dps)
    return q


def segment_levelling(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    zero_velocity: np.ndarray,
    sampling_rate_hz: float,
    t_s: np.ndarray,
    settings: AnalysisSettings,
    gyr_bias_dps: np.ndarray | None = None,
) -> tuple[np.ndarray, float | None]:
    """`segment_orientation` and the levelling's `anchor_tilt_sd_deg_` (deg; None for Madgwick)."""
    if settings.orientation == "madgwick":
        madgwick = Madgwick(settings.madgwick).estimate(acc_mps2, gyr_dps, sampling_rate_hz=sampling_rate_hz)
        return madgwick.orientation_, None
    if settings.orientation != "zero_velocity":
        raise ValueError(f"orientation must be 'madgwick' or 'zero_velocity', got {settings.orientation!r}")
    q, strapdown = _strapdown(acc_mps2, gyr_dps, zero_velocity, sampling_rate_hz, t_s, settings, gyr_bias_dps)
    return q, strapdown.anchor_tilt_sd_deg_


def _strapdown(acc_mps2, gyr_dps, zero_velocity, sampling_rate_hz, t_s, settings, gyr_bias_dps):
    """The levelled strapdown's orientation and the fitted `LevelledStrapdown`."""
    if gyr_bias_dps is None:
        strapdown = LevelledStrapdown(levelling_settings(settings)).estimate(
            acc_mps2, gyr_dps, zero_velocity, sampling_rate_hz, t_s
        )
    else:
        strapdown = LevelledStrapdown(levelling_settings(settings, fixed_bias=True)).estimate(
            acc_mps2, gyr_dps - gyr_bias_dps, zero_velocity, sampling_rate_hz, t_s
        )
    return strapdown.orientation_, strapdown


def _no_clock(stage: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class Segment:
    """One analysed segment: foot-frame inputs and what each stage gave.

    `keys` (athlete, session, foot); `t` (N,) s, `acc` / `gyr` (N, 3) m/s², deg/s;
    `zero_velocity` (N,) bool; `q_wxyz` (N, 4); `velocity_mps` / `position_m` (N, 3), world frame
    (zeros when the segment was analysed without integration); `events` (EVENTS_SCHEMA, no keys)
    and `open_stride` (the live analyzer's stride under way, one row or empty), tables of the
    detector's `event_columns` and `open_columns` built when read.
    """

    keys: tuple[str, str, str]
    sampling_rate_hz: float
    t: np.ndarray
    acc: np.ndarray
    gyr: np.ndarray
    zero_velocity: np.ndarray
    q_wxyz: np.ndarray
    velocity_mps: np.ndarray
    position_m: np.ndarray
    detector: StrideEventDetector
    open_end: bool
    settings: AnalysisSettings
    _signals: pl.DataFrame | None = field(default=None, repr=False)
    _signal_arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def events(self) -> pl.DataFrame:
        return self.detector.events_

    @property
    def event_columns(self) -> EventColumns:
        return self.detector.event_columns_

    @property
    def open_stride(self) -> pl.DataFrame:
        return self.detector.open_stride_ if self.open_end else self.detector.events_.clear()

    @property
    def open_columns(self) -> EventColumns:
        return self.detector.open_stride_columns_ if self.open_end else self.detector.event_columns_.rows([])

    def signals(self) -> pl.DataFrame:
        """The per-sample signals table (SIGNALS_SCHEMA) of the segment (built once: the strides and
        the live analyzer's curves both read it)."""
        if self._signals is None:
            self._signals = self._build_signals()
        return self._signals

    def signal_arrays(self) -> dict[str, np.ndarray]:
        """The signals table's columns but the keys as numpy arrays (`analytics.signals.signal_arrays`,
        built once): what the live analyzer's metrics and curves read, without the table."""
        if self._signal_arrays is None:
            self._signal_arrays = self._arrays()
        return self._signal_arrays

    def _arrays(self) -> dict[str, np.ndarray]:
        return signal_arrays(
            self.keys[2],
            self.t,
            self.acc,
            self.gyr,
            self.q_wxyz,
            zero_velocity=self.zero_velocity,
            velocity_mps=self.velocity_mps,
            position_m=self.position_m,
            settings=self.settings.signals,
        )

    def _build_signals(self) -> pl.DataFrame:
        # the arrays are kept only when the live path asked for them (batch keeps the table alone)
        arrays = self._signal_arrays if self._signal_arrays is not None else self._arrays()
        return signals_table(tuple(self.keys), arrays)

    def strides(self, events: pl.DataFrame) -> pl.DataFrame:
        """Stride metrics (STRIDES_SCHEMA) of some of the segment's events (keys added)."""
        return stride_metrics(self._keyed(events), self.signals(), self.settings)

    def prepare_strides(
        self, events: pl.DataFrame | EventColumns, rows: np.ndarray | None = None
    ) -> PreparedStrides:
        """`strides(events)` up to its Polars query (`analytics.metrics.evaluate_prepared` runs it),
        from the signals as arrays; only of the events' `rows` when given (increasing row numbers;
        their values are those of the whole table). `events`: a table or the detector's columns
        (the same result, without the table)."""
        metrics = StrideMetrics(self.settings.metrics)
        if isinstance(events, EventColumns):
            return metrics.prepare_columns(events, self.keys, self.signal_arrays(), rows)
        return metrics.prepare_arrays(self._keyed(events), self.keys, self.signal_arrays(), rows)

    def _keyed(self, events: pl.DataFrame) -> pl.DataFrame:
        keys = list(key_columns(tuple(self.keys), events.height))
        # hstack, not a query: the live analyzer calls this per stride on a few rows
        return events.with_columns(keys) if set(KEYS) & set(events.columns) else events.hstack(keys)


def analyze_segment(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    t_s: np.ndarray,
    sampling_rate_hz: float,
    keys: tuple[str, str, str],
    settings: AnalysisSettings,
    *,
    zero_velocity: np.ndarray | None = None,
    q_wxyz: np.ndarray | None = None,
    integrate: bool = True,
    open_end: bool = False,
    anchor_tilt_sd_deg: float | None = None,
    clock=_no_clock,
) -> Segment:
    """Zero velocity, orientation, velocity and position, and stride events of one segment.

    Parameters
    ----------
    acc_mps2, gyr_dps
        (N, 3) foot-frame samples, C-contiguous float64, m/s² and deg/s.
    t_s
        (N,) sample times, s.
    sampling_rate_hz
        Rate of the (uniform) samples.
    keys
        (athlete_id, session_id, foot).
    settings
        The analysis settings (zero velocity, orientation, zupt, events, signals, metrics).
    zero_velocity, q_wxyz
        Flags (N,) and orientation (N, 4) the caller already has (live: the stream's final
        flags; the levelled orientation with its fixed bias or the streaming Madgwick); computed
        with `settings` when None.
    integrate
        False skips the velocity and position (zeros): the live stance rows read no metric of them.
    open_end
        The data may end in a swing (`StrideEventDetector.detect(open_end=True)`).
    anchor_tilt_sd_deg
        The levelling's anchor SD (deg) for `ZuptSettings.tilt_fit_prior_deg="levelling"` when
        `q_wxyz` is given (live: the warm-up's or a fixed one); else the segment's own levelling's.
    clock
        Callable giving a context manager per stage name (the pipeline's stage timer).
    """
    s = settings
    fs = float(sampling_rate_hz)
    with clock("zero_velocity"):
        if zero_velocity is None:
            zero_velocity = ZeroVelocityDetector(s.zero_velocity).detect(acc_mps2, gyr_dps, fs).zero_velocity_
    anchor_tilt_sd = anchor_tilt_sd_deg
    with clock("orientation"):
        if q_wxyz is None:
            q_wxyz, anchor_tilt_sd = segment_levelling(acc_mps2, gyr_dps, zero_velocity, fs, t_s, s)
    with clock("integration"):
        if integrate:
            zupt = ZuptIntegrator(s.zupt).estimate(
                acc_mps2, q_wxyz, zero_velocity, fs, t_s, gyr_dps=gyr_dps, anchor_tilt_sd_deg=anchor_tilt_sd
            )
            velocity, position = zupt.velocity_mps_, zupt.position_m_
        else:
            velocity = position = np.zeros((len(t_s), 3))
    with clock("events"):
        detector = StrideEventDetector(s.events).detect(
            acc_mps2,
            gyr_dps,
            fs,
            foot=keys[2],
            zero_velocity=zero_velocity,
            t_s=t_s,
            q_wxyz=q_wxyz,
            position_m=position,
            open_end=open_end,
        )
    return Segment(
        keys=keys,
        sampling_rate_hz=fs,
        t=t_s,
        acc=acc_mps2,
        gyr=gyr_dps,
        zero_velocity=zero_velocity,
        q_wxyz=q_wxyz,
        velocity_mps=velocity,
        position_m=position,
        detector=detector,
        open_end=open_end,
        settings=s,
    )


def stride_metrics(events: pl.DataFrame, signals: pl.DataFrame, settings: AnalysisSettings) -> pl.DataFrame:
    """The strides table (STRIDES_SCHEMA) of keyed events on their signals (`analytics.metrics`)."""
    return StrideMetrics(settings.metrics).estimate(events, signals).strides_


def apply_sample_flags(strides: pl.DataFrame, flags: dict[str, pl.Expr | pl.Series]) -> pl.DataFrame:
    """Valid strides over flagged samples become invalid, with the reason of the flag.

    `flags`: per reason of SAMPLE_FLAG_REASONS (any subset), a boolean per stride row: it spans a
    sample of that kind (gap-filled; gyroscope at its range, see GYR_AT_RANGE). The first reason
    in SAMPLE_FLAG_REASONS order wins; strides already invalid keep their reason.
    """
    reason = pl.lit(None, dtype=pl.String)
    for r in reversed(SAMPLE_FLAG_REASONS):
        if r in flags:
            reason = pl.when(flags[r]).then(pl.lit(r)).otherwise(reason)
    valid = pl.col(VALID) & reason.is_null()
    steady = (steady_expr(valid).alias(STEADY),) if STEADY in strides.columns else ()
    return strides.with_columns(
        pl.when(pl.col(VALID) & reason.is_not_null()).then(reason).otherwise(pl.col(REASON)).alias(REASON),
        valid.alias(VALID),
        *steady,
    )
