"""Live per-stride analysis of one foot's sample stream, equal to the batch pipeline on the same data.

`LiveStrideAnalyzer.push(t, acc, gyr)` takes blocks of any size and returns the strides (the
`strides` table of DESIGN.md) that the block completed. It runs the batch code itself
(`fusion.zero_velocity`, `fusion.zupt`, `analytics.events`, `analytics.signals`,
`analytics.metrics`), on a rolling window that starts at a still period, so a stride it emits has
the same events and metrics as `analyze_recording` on the whole file, as long as the mounting
rotation is the same:

- zero velocity: `fusion.live.ZeroVelocityStream`, flags final once ~1.8 s of context (200 Hz,
  default settings: a swing-guided running anchor lies between two mid-swings up to 1.2 s apart,
  each the largest dorsiflexion rate within +-0.22 s) is known;
- orientation, velocity, position: the batch functions on the window. The window starts where a
  still period starts, which batch levels the orientation on and where the de-drifted velocity is
  zero, so everything after it is what batch computes (heading differs by a constant, which no
  metric reads: stride length is a horizontal norm, turns a heading difference);
- events and metrics: batch's detector and metrics on the window. A stride (IC to next IC) needs
  the next stance's foot-flat for its length, and batch's foot-flat is the middle of the longest
  still period of that stance, which is known only once the stance has ended in a swing.

What closes a stride (k: IC_k to IC_k+1): the end of the still period (foot-flat) that follows
the swing of step k+2 (the swing after the stride's next foot-flat), plus the few samples around
it that the levelling reads: the stride's next foot-flat (batch: the middle of the longest still
period of the next stance) is only known once that stance has ended in a swing, and the
orientation through the swing is de-drifted up to the still period after it. The closing
sample's zero-velocity flag must then be final (`ZeroVelocityStream.margin_`, 1.785 s at 200 Hz,
plus up to `zero_velocity_chunk_s`). Measured at 200 Hz (120 s simulated, 1 s blocks): the
closing sample lies a median 1.55 s (walking) / 0.86 s (running) after the stride's next IC,
and the stride goes out a median 235 samples (1.2 s, including the block) after the closing
sample. `emissions_` records both per stride.

Provisional stance rows (`LiveSettings.stances`, on by default): a stride's pronation and
toe-off metrics are known at its toe-off, a whole swing and foot-flat before the stride closes.
So at each swing start (the dorsiflexion rate passes `events.min_swing_dps` after a push-off:
batch's test for a step; 14-19 samples after the toe-off at 200 Hz on the simulator, 4-14 on
real straight walking, up to 0.3 s on turns) the analyzer runs the same batch code on the window
up to that sample, with the detector's open-end stride (`StrideEventDetector.detect(open_end=True)`),
and emits the stance columns (`schema.STANCE_SCHEMA`) in `new_stances_` / `stances_`, once per
IC. The final stride row with the same `ic_t` replaces it later. Measured (tests/test_live_stance.py,
batch's mounting and bias): every valid final stride had a valid stance row before it (569 of 569
simulated, 56 of 56 real); events equal in 99.3 % (the rest: strides where the final analysis
merged two steps); metrics within `STANCE_TOLERANCE`, the toe-off angles being the ones that move
(forward-only levelling); against the simulator's truth the stance rows' toe-off pronation MAE
is 0.50 deg, the final rows' 0.48. The gap grows with the tilt error the gyro collects per stride,
which the final row spreads linearly in time from mid-stance to the next foot-flat: on the other
real recordings (measured, not guaranteed) toe-off pronation / toe-off angle / pronation
excursion differ by at most 5.3 / 3.2 / 1.4 deg on stairs (2-3 deg of tilt error per stride),
10 / 5.9 / 0.0 deg on the 102.4 Hz imu_sample_ic_stride.csv (4-7 deg) and 22 / 5.1 / 2.2 deg on
the 102.4 Hz recordings of a person with multiple sclerosis (8 deg per
stride; max pronation velocity there moves by up to 264 deg/s when the maximum's time moves).
Neither row is known to be the better one there: the error builds up mostly in the swing, after
the toe-off, which the linear spread does not model; a rotation-weighted spread would be the next
thing to try, in batch too. Cost: about as much again as the final analysis per stride.

Where live differs from batch (measured in tests/test_live_equivalence.py):

- mounting and gyro bias: batch estimates the device -> foot rotation and (for the levelled
  orientation) the gyroscope bias from the whole recording; live from the first `warmup_s`
  (20 s; the mounting retried every `warmup_retry_s` until it succeeds), or takes them fixed
  (`mounting_wxyz` from a device profile, `gyr_bias_dps`), or needs no rotation
  (`analysis.align_mounting=False`). With batch's rotation and bias every stride equals batch:
  same count, events, valid/reason, every metric within 1e-6 (measured <= 5e-13 on simulated
  walking/running and on the real imu_sample.csv). With the 20 s warm-up estimates the strides
  and events are the same (real data: 1 of 64 toe-offs moves, on a turn) and the metrics of
  valid strides move with the estimates: measured <= 0.03 deg / 0.5 deg/s / 1e-5 m on the
  simulator, <= 1.4 deg (toe-off pronation 3 deg) / 9.4 deg/s / 0.003 m on imu_sample.csv;
  guaranteed (tests/test_live_equivalence.py): angles 2 deg, toe-off pronation 5 deg, rates
  15 deg/s, stride length and speed 0.01;
- saturation: batch marks strides with gyro-saturated samples against the recording's largest
  |gyr|; live against the largest seen so far (`saturated` flags per sample, optional);
- buffer: the window is trimmed at each emitted stride's foot-flat; if no stride closes for
  `max_buffer_s` (standing, or no walking) the window is cut there like a recording gap (batch
  would report one `too_long` stride across the pause; live ends the bout and starts a new
  segment, whose first stride is a `gait_start` row).

Bounded memory: the rolling window (about three strides while walking, at most `max_buffer_s`),
the zero-velocity context and, until the mounting is known, the warm-up samples.
Deterministic and independent of block sizes: every decision (zero-velocity chunks, mounting
attempts, windows, cuts) falls at sample counts fixed by the data, never by block boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.analytics.events import (
    FOOT_FLAT_IDX,
    IC_IDX,
    NEXT_IC_IDX,
    REASON_GAIT_START,
    TOE_OFF_IDX,
    StrideEventDetector,
)
from strideflow.analytics.metrics import REASON_NO_SIGNAL, StrideMetrics
from strideflow.analytics.pipeline import (
    REASON_GAP,
    REASON_SATURATION,
    AnalysisSettings,
)
from strideflow.analytics.signals import signals_frame
from strideflow.fusion.live import ZeroVelocityStream
from strideflow.fusion.stream import MadgwickStream
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.fusion.zupt import LevelledStrapdown, LevellingSettings, ZuptIntegrator
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.frames import rotation_from_wxyz
from strideflow.hardware.mounting import MountingEstimator
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FEET,
    FOOT_STRIKE_ANGLE_DEG,
    HEEL_OFF_RATIO,
    IC_T,
    IMPACT_G,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    NEXT_IC_T,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    REASON,
    SESSION_ID,
    SPEED_MPS,
    STANCE_METRICS,
    STANCE_SCHEMA,
    STANCE_TIME_S,
    STRIDE_INDEX,
    STRIDE_LENGTH_M,
    STRIDES_SCHEMA,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    TOE_OFF_T,
    VALID,
)
from strideflow.ingest.settings import ReadSettings

__all__ = ["STANCE_TOLERANCE", "WARMUP_TOLERANCE", "LiveError", "LiveSettings", "LiveStrideAnalyzer"]

# The guaranteed largest difference from batch of each metric of a valid stride when mounting and
# gyro bias come from the 20 s warm-up (units of the column: deg, deg/s, m, m/s, g); measured
# maxima in the module docstring. With batch's rotation and bias every metric is within 1e-6.
WARMUP_TOLERANCE: dict[str, float] = {
    STRIDE_LENGTH_M: 0.01,
    SPEED_MPS: 0.01,
    FOOT_STRIKE_ANGLE_DEG: 2.0,
    PRONATION_EXCURSION_DEG: 2.0,
    TOE_OFF_PRONATION_DEG: 5.0,
    TOE_OFF_ANGLE_DEG: 2.0,
    MAX_PRONATION_VELOCITY_DPS: 15.0,
    PUSH_OFF_RATE_DPS: 15.0,
    IMPACT_G: 1e-6,
}

# The guaranteed largest difference between a stride's provisional stance row and its final row
# when both have the same events (units of the column). The stance row's orientation is levelled
# forward only; the final row spreads the tilt error found at the next foot-flat back over the
# swing, linearly in time, which moves the toe-off angles (real sensors: 2-7 deg of tilt error per
# stride). Measured maxima (module docstring): simulator 0.61 deg toe-off pronation, 0.08 deg
# toe-off angle, 0.37 deg/s push-off rate, <= 0.02 for the rest; real imu_sample.csv 2.6 deg,
# 1.6 deg, 5.2 deg/s, 0.21 deg excursion, 0.16 deg strike angle, and 0.19 s time to max
# pronation (its maximum sits on a plateau, whose argmax the small tilt change can move).
STANCE_TOLERANCE: dict[str, float] = {
    STANCE_TIME_S: 1e-9,
    FOOT_STRIKE_ANGLE_DEG: 0.3,
    PRONATION_EXCURSION_DEG: 0.5,
    MAX_PRONATION_VELOCITY_DPS: 1.0,
    TIME_TO_MAX_PRONATION_S: 0.25,
    TOE_OFF_PRONATION_DEG: 3.0,
    TOE_OFF_ANGLE_DEG: 2.0,
    PUSH_OFF_RATE_DPS: 6.0,
    HEEL_OFF_RATIO: 1e-9,
    IMPACT_G: 1e-6,
}

# Empty results, built once: a frame from a schema costs ~0.3 ms, and most pushes complete nothing.
_NO_STRIDES = pl.DataFrame(schema=STRIDES_SCHEMA)
_NO_STANCES = pl.DataFrame(schema=STANCE_SCHEMA)

_CLOSE_T = "close_t"
_EMITTED_T = "emitted_t"
_LATENCY = "latency_samples"
_TOE_OFF_LATENCY = "toe_off_latency_samples"
STANCE_EMISSIONS_SCHEMA: dict[str, pl.DataType] = {
    IC_T: pl.Float64(),
    TOE_OFF_T: pl.Float64(),
    _EMITTED_T: pl.Float64(),
    _TOE_OFF_LATENCY: pl.Int64(),
}
EMISSIONS_SCHEMA: dict[str, pl.DataType] = {
    STRIDE_INDEX: pl.Int64(),
    NEXT_IC_T: pl.Float64(),
    _CLOSE_T: pl.Float64(),
    _EMITTED_T: pl.Float64(),
    _LATENCY: pl.Int64(),
}


class LiveError(StrideflowError):
    """A block that cannot be analysed (wrong shape, non-finite value, time not increasing)."""


@dataclass(frozen=True)
class LiveSettings:
    """Settings of `LiveStrideAnalyzer` (times in s).

    analysis: the batch settings the strides must agree with (events, metrics, zero velocity,
        orientation "zero_velocity" or "madgwick", align_mounting, min_segment_s).
    mounting_wxyz: fixed device -> foot rotation (scalar-first quaternion, e.g. a device profile's
        `mounting_wxyz`); None estimates it from the warm-up (if `analysis.align_mounting`).
    gyr_bias_dps: fixed foot-frame gyroscope bias the levelled orientation subtracts; None
        estimates it from the warm-up's still samples as `fusion.zupt.LevelledStrapdown` does
        (batch: from all still samples of the segment).
    warmup_s: samples collected before the first mounting and bias estimate (nothing is emitted
        before; the mounting needs `analysis.mounting.min_strides` strides). No warm-up when
        both are fixed (or not used: no alignment and Madgwick orientation).
    warmup_retry_s: when the mounting estimate fails (standing, no walking yet) it is tried
        again after this many more seconds, on all samples so far (at most `max_buffer_s`, the
        oldest dropped beyond that, with a warning).
    max_buffer_s: longest window kept without a stride closing; beyond it the bout is cut.
    zero_velocity_chunk_s: zero-velocity flags are finalised in chunks of this length.
    zero_velocity_margin_s: context on each side for final zero-velocity flags; None derives
        it from `analysis.zero_velocity` (1.785 s at 200 Hz by default).
    read: gap rules of ingest: a step over `gap_min_intervals` intervals is a gap; up to
        `max_interpolated_gap_s` of missing time is filled by linear interpolation (samples
        flagged, strides over them invalid "gap"), longer starts a new segment.
    stances: also emit each stride's provisional stance row as soon as its toe-off is known
        (`new_stances_`); False saves that analysis.
    """

    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    mounting_wxyz: tuple[float, float, float, float] | None = None
    gyr_bias_dps: tuple[float, float, float] | None = None
    warmup_s: float = 20.0
    warmup_retry_s: float = 10.0
    max_buffer_s: float = 60.0
    zero_velocity_chunk_s: float = 0.2
    zero_velocity_margin_s: float | None = None
    read: ReadSettings = field(default_factory=ReadSettings)
    stances: bool = True


class _Columns:
    """Growable, trimmable columns of equal length indexed by a global sample number."""

    def __init__(self, **widths: int) -> None:
        self._widths = widths
        self._cap = 1024
        self._data = {k: self._alloc(k, self._cap) for k in widths}
        self.start = 0  # global index of the first kept sample
        self._off = 0  # its position in the arrays
        self.stop = 0  # global index one past the last sample

    def _alloc(self, name: str, cap: int) -> np.ndarray:
        w = self._widths[name]
        dtype = bool if name.startswith("is_") else float
        return np.zeros((cap, w) if w > 1 else cap, dtype=dtype)

    def append(self, **cols: np.ndarray) -> None:
        n = len(next(iter(cols.values())))
        used = self.stop - self.start
        if self._off + used + n > self._cap:
            cap = max(self._cap, 2 * (used + n))
            for k, old in self._data.items():
                new = self._alloc(k, cap)
                new[:used] = old[self._off : self._off + used]
                self._data[k] = new
            self._cap, self._off = cap, 0
        a = self._off + used
        for k, v in cols.items():
            self._data[k][a : a + n] = v
        self.stop += n

    def view(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Rows [lo, hi) by global index (a view: copy before keeping)."""
        return self._data[name][self._off + lo - self.start : self._off + hi - self.start]

    def trim(self, lo: int) -> None:
        """Forget rows before global index lo."""
        lo = min(max(lo, self.start), self.stop)
        self._off += lo - self.start
        self.start = lo


def _rotate_rows(v: np.ndarray, m: np.ndarray) -> np.ndarray:
    """`v @ m.T` with elementwise arithmetic, so every row gets the same bits whatever the block size.

    A matrix product's rounding depends on how many rows it is given (BLAS blocking), which made
    one-sample blocks differ from larger ones in the last bit.
    """
    return v[:, 0:1] * m[:, 0] + v[:, 1:2] * m[:, 1] + v[:, 2:3] * m[:, 2]


class LiveStrideAnalyzer:
    """Per-stride metrics of one athlete-session-foot stream as it arrives (see the module doc).

    `push(t_s, acc_mps2, gyr_dps)` returns the strides completed by the block (STRIDES_SCHEMA,
    `stride_index` continuing from 0 as in batch); `finish()` those that the end of the stream
    closes. Attributes: `strides_` (all emitted), `samples_seen_` (samples pushed),
    `mounting_` (device -> foot Rotation, None until known), `emissions_` (per stride: closing
    time, time of the newest sample when it went out, and `latency_samples_` between the two),
    `warnings_` (plain words).
    """

    def __init__(
        self,
        athlete_id: str,
        session_id: str,
        foot: str,
        sampling_rate_hz: float,
        settings: LiveSettings = LiveSettings(),
    ) -> None:
        if foot not in FEET:
            raise LiveError(f"foot must be one of {', '.join(FEET)}, got {foot!r}")
        for name, value in ((ATHLETE_ID, athlete_id), (SESSION_ID, session_id)):
            if not isinstance(value, str) or not value:
                raise LiveError(f"{name} must be a non-empty string, got {value!r}")
        try:
            fs = float(sampling_rate_hz)
        except (TypeError, ValueError):
            fs = float("nan")
        if not (math.isfinite(fs) and fs > 0):
            raise LiveError(f"sampling_rate_hz must be a positive number, got {sampling_rate_hz!r}")
        a = settings.analysis
        if a.orientation not in ("zero_velocity", "madgwick"):
            raise LiveError(f"orientation must be 'zero_velocity' or 'madgwick', got {a.orientation!r}")
        if a.gyr_delay_s != 0.0:
            raise LiveError(
                f"gyr_delay_s is not supported by the live analysis (batch only), got {a.gyr_delay_s!r}"
            )
        self.athlete_id, self.session_id, self.foot = athlete_id, session_id, foot
        self.sampling_rate_hz = fs
        self.settings = settings
        self._n = lambda seconds: max(int(round(seconds * fs)), 1)
        self._zv_margin = (
            None if settings.zero_velocity_margin_s is None else self._n(settings.zero_velocity_margin_s)
        )

        self.samples_seen_ = 0
        self.warnings_: list[str] = []
        self._emitted: list[pl.DataFrame] = []
        self._emissions: list[dict] = []
        self._n_emitted = 0
        self._stances: list[pl.DataFrame] = []
        self._stance_emissions: list[dict] = []
        self.new_stances_ = _NO_STANCES
        self._armed = False  # a plantarflexion (push-off) was seen since the last swing trigger
        self._stance_ic = -1  # global index of the IC of the last stance emitted
        # conditioning (device frame): last raw sample, for gaps
        self._last_t: float | None = None
        self._last_acc = np.zeros(3)
        self._last_gyr = np.zeros(3)
        self._gyr_abs_max = 0.0
        # mounting
        if settings.mounting_wxyz is not None:
            self.mounting_: Rotation | None = rotation_from_wxyz(np.asarray(settings.mounting_wxyz, float))
        elif not a.align_mounting:
            self.mounting_ = Rotation.identity()
        else:
            self.mounting_ = None
        self._matrix = None if self.mounting_ is None else self.mounting_.as_matrix()
        levelled = a.orientation == "zero_velocity"
        if settings.gyr_bias_dps is not None or not levelled:
            self.gyr_bias_dps_: np.ndarray | None = np.asarray(
                settings.gyr_bias_dps if levelled else (0.0, 0.0, 0.0), dtype=float
            ).reshape(3)
        else:
            self.gyr_bias_dps_ = None
        # The batch levelling with the bias taken out beforehand (same arithmetic as inside).
        self._levelling = replace(LevellingSettings(), estimate_gyr_bias=False)
        # Samples of context around a still period that the levelling reads (its gravity margin
        # and the change of specific force to the neighbouring samples).
        margin_s = getattr(self._levelling, "gravity_margin_s", 0.0) if levelled else 0.0
        self._ctx = int(round(margin_s * fs)) + 2
        self._ready = self.mounting_ is not None and self.gyr_bias_dps_ is not None
        self._warm = _Columns(t=1, acc=3, gyr=3, is_gap=1, is_sat=1, is_new=1)
        self._next_attempt = self._n(settings.warmup_s)
        # foot-frame window
        self._buf = _Columns(t=1, acc=3, gyr=3, q=4, is_gap=1, is_sat=1, is_zv=1)
        self._zv_done = 0
        self._seg0: int | None = None  # global index of the current segment's first sample
        self._finished = False

    # --- public ----------------------------------------------------------------------------
    @property
    def strides_(self) -> pl.DataFrame:
        """Every stride emitted so far (STRIDES_SCHEMA)."""
        if not self._emitted:
            return _NO_STRIDES
        if len(self._emitted) > 1:
            self._emitted = [pl.concat(self._emitted)]
        return self._emitted[0]

    @property
    def emissions_(self) -> pl.DataFrame:
        """Per emitted stride: stride_index, next_ic_t, close_t, emitted_t, latency_samples."""
        return pl.DataFrame(self._emissions, schema=EMISSIONS_SCHEMA)

    @property
    def stances_(self) -> pl.DataFrame:
        """Every provisional stance row emitted so far (STANCE_SCHEMA)."""
        if not self._stances:
            return _NO_STANCES
        if len(self._stances) > 1:
            self._stances = [pl.concat(self._stances)]
        return self._stances[0]

    @property
    def stance_emissions_(self) -> pl.DataFrame:
        """Per stance row: ic_t, toe_off_t, emitted_t (newest sample then), toe_off_latency_samples."""
        return pl.DataFrame(self._stance_emissions, schema=STANCE_EMISSIONS_SCHEMA)

    @property
    def latency_samples_(self) -> np.ndarray:
        """Per emitted stride, samples received after its closing sample before it went out."""
        return np.array([e[_LATENCY] for e in self._emissions], dtype=np.int64)

    def push(
        self, t_s: np.ndarray, acc_mps2: np.ndarray, gyr_dps: np.ndarray, *, saturated=None
    ) -> pl.DataFrame:
        """Feed a block of n samples: t (n,) s, acc (n, 3) m/s², gyr (n, 3) deg/s, device or foot frame.

        `saturated` (n,) bool optionally marks samples at the device's range. Returns the
        strides this block completed.
        """
        if self._finished:
            raise LiveError("push after finish(): this analyzer's stream has ended")
        t, acc, gyr, sat = self._checked(t_s, acc_mps2, gyr_dps, saturated)
        start = len(self._emissions)
        self.new_stances_ = _NO_STANCES
        if len(t):
            self.samples_seen_ += len(t)
            self._condition(t, acc, gyr, sat)
        return self._collect(start)

    def finish(self) -> pl.DataFrame:
        """End the stream: emit the strides its end closes (as batch does at a recording's end)."""
        if self._finished:
            return _NO_STRIDES
        self._finished = True
        self.new_stances_ = _NO_STANCES
        start = len(self._emissions)
        if not self._ready and self._warm.stop > self._warm.start:
            self._attempt_warmup(final=True)
        if self._ready and self._seg0 is not None:
            self._end_segment()
        return self._collect(start)

    # --- input -----------------------------------------------------------------------------
    def _checked(self, t_s, acc_mps2, gyr_dps, saturated):
        t = np.asarray(t_s, dtype=float).reshape(-1)
        n = len(t)
        out = [t]
        for name, value in (("acc_mps2", acc_mps2), ("gyr_dps", gyr_dps)):
            v = np.asarray(value, dtype=float)
            if v.shape != (n, 3):
                raise LiveError(f"{name} must have shape ({n}, 3) to match t_s, got {v.shape}")
            out.append(v)
        for name, v in zip(("t_s", "acc_mps2", "gyr_dps"), out, strict=True):
            bad = ~np.isfinite(v.reshape(n, -1)).all(axis=1)
            if bad.any():
                i = int(np.argmax(bad))
                raise LiveError(f"{name}, block row {i}: not a finite number ({v[i].tolist()})")
        prev = np.concatenate([[-np.inf if self._last_t is None else self._last_t], t[:-1]])
        back = t <= prev
        if back.any():
            i = int(np.argmax(back))
            raise LiveError(
                f"t_s, block row {i}: {t[i]:.9g} s is not after the previous sample ({prev[i]:.9g} s)"
            )
        sat = np.zeros(n, dtype=bool) if saturated is None else np.asarray(saturated, dtype=bool).reshape(-1)
        if sat.shape != (n,):
            raise LiveError(f"saturated must have shape ({n},) to match t_s, got {sat.shape}")
        return t, out[1], out[2], sat

    def _condition(self, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray, sat: np.ndarray) -> None:
        """Gaps as ingest treats them: short ones interpolated (flagged), long ones new segments."""
        r = self.settings.read
        interval = 1.0 / self.sampling_rate_hz
        is_new = np.zeros(len(t), dtype=bool)
        is_gap = np.zeros(len(t), dtype=bool)
        if self._last_t is None:
            is_new[0] = True
        else:
            steps = np.diff(np.concatenate([[self._last_t], t]))
            gap_at = np.flatnonzero(steps > r.gap_min_intervals * interval)
            pieces_t, pieces_a, pieces_g, pieces_s, pieces_new, pieces_gap = [], [], [], [], [], []
            lo = 0
            prev_t, prev_a, prev_g = self._last_t, self._last_acc, self._last_gyr
            for i in gap_at:
                missing = steps[i] - interval
                for lst, arr in zip(
                    (pieces_t, pieces_a, pieces_g, pieces_s, pieces_new, pieces_gap),
                    (t, acc, gyr, sat, is_new, is_gap),
                    strict=True,
                ):
                    lst.append(arr[lo:i])
                if i > 0:
                    prev_t, prev_a, prev_g = t[i - 1], acc[i - 1], gyr[i - 1]
                if missing > r.max_interpolated_gap_s:
                    is_new[i] = True
                    self.warnings_.append(
                        f"gap of {missing:.4g} s after t = {prev_t:.6g} s: "
                        "the stream continues in a new segment"
                    )
                else:
                    k = int(round(steps[i] * self.sampling_rate_hz)) - 1
                    if k > 0:
                        w = (np.arange(1, k + 1) / (k + 1))[:, None]
                        pieces_t.append(prev_t + (t[i] - prev_t) * w[:, 0])
                        pieces_a.append(prev_a + (acc[i] - prev_a) * w)
                        pieces_g.append(prev_g + (gyr[i] - prev_g) * w)
                        pieces_s.append(np.zeros(k, dtype=bool))
                        pieces_new.append(np.zeros(k, dtype=bool))
                        pieces_gap.append(np.ones(k, dtype=bool))
                    self.warnings_.append(
                        f"gap of {missing:.4g} s after t = {prev_t:.6g} s: {k} sample(s) linearly "
                        "interpolated, strides over them invalid"
                    )
                lo = i
            if len(gap_at):
                for lst, arr in zip(
                    (pieces_t, pieces_a, pieces_g, pieces_s, pieces_new, pieces_gap),
                    (t, acc, gyr, sat, is_new, is_gap),
                    strict=True,
                ):
                    lst.append(arr[lo:])
                t, acc, gyr = np.concatenate(pieces_t), np.concatenate(pieces_a), np.concatenate(pieces_g)
                sat, is_new = np.concatenate(pieces_s), np.concatenate(pieces_new)
                is_gap = np.concatenate(pieces_gap)
        self._last_t, self._last_acc, self._last_gyr = float(t[-1]), acc[-1].copy(), gyr[-1].copy()
        # Saturation counts where the gyro sits at the largest |gyr| seen so far (batch: in the
        # whole recording), in the device frame as batch reads it.
        gyr_abs = np.abs(gyr).max(axis=1)
        running = np.maximum.accumulate(np.maximum(gyr_abs, self._gyr_abs_max))
        self._gyr_abs_max = float(running[-1])
        at_range = sat & (gyr_abs >= running * 0.999)
        if not self._ready:
            self._warm_up(t, acc, gyr, is_gap, at_range, is_new)
        else:
            self._feed(t, acc, gyr, is_gap, at_range, is_new)

    # --- mounting --------------------------------------------------------------------------
    def _warm_up(self, t, acc, gyr, is_gap, is_sat, is_new) -> None:
        """Collect device-frame samples until mounting and bias are estimated; then feed them all."""
        w = self._warm
        i = 0
        while i < len(t) and not self._ready:
            take = min(len(t) - i, self._next_attempt - (w.stop - w.start))
            sl = slice(i, i + take)
            w.append(
                t=t[sl], acc=acc[sl], gyr=gyr[sl], is_gap=is_gap[sl], is_sat=is_sat[sl], is_new=is_new[sl]
            )
            i += take
            if w.stop - w.start >= self._next_attempt:
                self._attempt_warmup(final=False)
        if i < len(t):
            sl = slice(i, None)
            self._feed(t[sl], acc[sl], gyr[sl], is_gap[sl], is_sat[sl], is_new[sl])

    def _attempt_warmup(self, final: bool) -> None:
        """Estimate what is not fixed (mounting, then gyro bias) from the warm-up samples."""
        s, w = self.settings, self._warm
        where = f"athlete {self.athlete_id}, session {self.session_id}, {self.foot} foot"
        acc, gyr = w.view("acc", w.start, w.stop), w.view("gyr", w.start, w.stop)
        if self.mounting_ is None:
            a = s.analysis
            errors = []
            for ms in (a.mounting, a.mounting_fallback):
                if ms is None:
                    continue
                try:
                    self.mounting_ = MountingEstimator(ms).estimate(acc, gyr, self.sampling_rate_hz).rotation_
                    break
                except StrideflowError as exc:
                    errors.append(str(exc))
            if self.mounting_ is None:
                if final:
                    self.warnings_.append(
                        f"{where}: mounting alignment failed, no strides: {'; '.join(errors)}"
                    )
                    return
                self._next_attempt += self._n(s.warmup_retry_s)
                excess = self._next_attempt - self._n(s.max_buffer_s)
                if excess > 0:
                    self.warnings_.append(
                        f"{where}: no mounting estimate in {s.max_buffer_s:g} s ({errors[0]}); "
                        f"dropped the oldest {excess} samples"
                    )
                    w.trim(w.start + excess)
                    w.view("is_new", w.start, w.start + 1)[:] = True
                    self._next_attempt -= excess
                return
            if errors:
                self.warnings_.append(
                    f"{where}: mounting aligned with the relaxed (running) stillness settings"
                )
            self._matrix = self.mounting_.as_matrix()
        if self.gyr_bias_dps_ is None:
            acc_f, gyr_f = _rotate_rows(acc, self._matrix), _rotate_rows(gyr, self._matrix)
            zv = ZeroVelocityDetector(s.analysis.zero_velocity).detect(acc_f, gyr_f, self.sampling_rate_hz)
            self.gyr_bias_dps_ = (
                LevelledStrapdown()
                .estimate(
                    acc_f, gyr_f, zv.zero_velocity_, self.sampling_rate_hz, w.view("t", w.start, w.stop)
                )
                .gyr_bias_dps_
            )
        self._ready = True
        rows = {
            k: w.view(k, w.start, w.stop).copy() for k in ("t", "acc", "gyr", "is_gap", "is_sat", "is_new")
        }
        w.trim(w.stop)
        self._feed(rows["t"], rows["acc"], rows["gyr"], rows["is_gap"], rows["is_sat"], rows["is_new"])

    # --- foot-frame path -------------------------------------------------------------------
    def _feed(self, t, acc, gyr, is_gap, is_sat, is_new) -> None:
        """Rotate into the foot frame and run the window; a new segment first ends the old one."""
        m = self._matrix
        acc, gyr = _rotate_rows(acc, m), _rotate_rows(gyr, m)
        bounds = np.concatenate([np.flatnonzero(is_new), [len(t)]])
        if bounds[0] != 0:
            bounds = np.concatenate([[0], bounds])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if hi <= lo:
                continue
            if is_new[lo]:
                if self._seg0 is not None:
                    self._end_segment()
                self._start_segment()
            self._append(t[lo:hi], acc[lo:hi], gyr[lo:hi], is_gap[lo:hi], is_sat[lo:hi])

    def _start_segment(self) -> None:
        a = self.settings.analysis
        self._seg0 = self._buf.stop
        self._buf.trim(self._buf.stop)
        self._zv_done = self._seg0
        self._anchor = self._seg0
        self._ends: list[int] = []  # still-period ends waiting for their context to be final
        self._last_ic = -1
        self._armed = False
        self._zv = ZeroVelocityStream(
            self.sampling_rate_hz, a.zero_velocity, self.settings.zero_velocity_chunk_s, self._zv_margin
        )
        self._madgwick = (
            MadgwickStream(a.madgwick, sampling_rate_hz=self.sampling_rate_hz)
            if a.orientation == "madgwick"
            else None
        )

    def _append(self, t, acc, gyr, is_gap, is_sat) -> None:
        """Append samples in pieces of at most one zero-velocity chunk, so each step is data-fixed."""
        chunk = self._zv.chunk_
        for lo in range(0, len(t), chunk):
            sl = slice(lo, lo + chunk)
            q = (
                self._madgwick.update(acc[sl], gyr[sl])
                if self._madgwick is not None
                else np.zeros((len(t[sl]), 4))
            )
            self._buf.append(t=t[sl], acc=acc[sl], gyr=gyr[sl], q=q, is_gap=is_gap[sl], is_sat=is_sat[sl])
            first, seg = self._buf.stop - len(t[sl]), self._seg0
            starts = self._scan_swing(gyr[sl, 1]) if self.settings.stances else []
            # Zero velocity in pieces that end at each swing start, then that stance: strides
            # closed by earlier samples go out first, as they would sample by sample.
            a = 0
            for end, swing in [*((e, True) for e in starts), (len(t[sl]), False)]:
                if end > a:
                    flags = self._zv.push(acc[sl][a:end], gyr[sl][a:end])
                    if len(flags):
                        self._new_flags(flags)
                    if self._seg0 != seg:  # cut: the piece's rest was fed again to the new segment
                        break
                if swing:
                    self._stance(first + end)
                a = end

    def _new_flags(self, flags: np.ndarray) -> None:
        """Store final zero-velocity flags, run a window at each still period that starts among them."""
        lo = self._zv_done
        self._buf.view("is_zv", lo, lo + len(flags))[:] = flags
        self._zv_done = lo + len(flags)
        first = max(lo, self._seg0 + 1)
        if first < self._zv_done:
            zv = self._buf.view("is_zv", first - 1, self._zv_done)
            # a still period ends at p1 (zv[p1 - 1] and not zv[p1]): everything before it is final
            ends = np.flatnonzero(~zv[1:] & zv[:-1]) + first
            self._ends.extend(int(p1) for p1 in ends)
        min_n = self.settings.analysis.min_segment_s * self.sampling_rate_hz
        while self._ends and self._ends[0] + self._ctx <= self._zv_done:
            p1 = self._ends.pop(0)
            if p1 - self._seg0 >= min_n:
                self._window(p1 + self._ctx, final=False, close=p1)
        if self._zv_done - self._anchor > self._n(self.settings.max_buffer_s):
            self._cut()

    def _cut(self) -> None:
        """No stride closed for max_buffer_s: end the segment at the final flags, continue anew."""
        b = self._buf
        cut = self._zv_done
        rest = {k: b.view(k, cut, b.stop).copy() for k in ("t", "acc", "gyr", "q", "is_gap", "is_sat")}
        where = float(b.view("t", cut - 1, cut)[0])
        self.warnings_.append(
            f"no stride closed for {self.settings.max_buffer_s:g} s before t = {where:.6g} s: "
            "the bout is cut there as at a recording gap"
        )
        b.stop = cut  # drop the unflagged tail; it is fed again to the new segment
        self._window(cut, final=True, close=cut - 1)
        self._start_segment()
        if len(rest["t"]):
            self._append(rest["t"], rest["acc"], rest["gyr"], rest["is_gap"], rest["is_sat"])

    def _end_segment(self) -> None:
        """The segment's end is known: final flags to its end, then every remaining stride."""
        flags = self._zv.finish()
        if len(flags):
            lo = self._zv_done
            self._buf.view("is_zv", lo, lo + len(flags))[:] = flags
            self._zv_done = lo + len(flags)
        n_seg = self._buf.stop - self._seg0
        if n_seg < self.settings.analysis.min_segment_s * self.sampling_rate_hz:
            self.warnings_.append(
                f"athlete {self.athlete_id}, session {self.session_id}, {self.foot} foot: skipped a "
                f"segment of {n_seg / self.sampling_rate_hz:.1f} s "
                f"(< {self.settings.analysis.min_segment_s} s)"
            )
        elif self._buf.stop > self._anchor:
            self._window(self._buf.stop, final=True, close=self._buf.stop - 1)
        self._seg0 = None

    # --- the window ------------------------------------------------------------------------
    def _window(self, stop: int, final: bool, close: int) -> None:
        """Batch events on [anchor, stop); emit the strides in it that later data cannot change."""
        s = self.settings.analysis
        fs = self.sampling_rate_hz
        # Context before the still period: batch levels on its samples +- a margin, weighted
        # by the change of specific force from the sample before.
        a0 = max(self._anchor - self._ctx, self._seg0)
        b = self._buf
        zv = b.view("is_zv", a0, stop).copy()
        t, acc, gyr, q = self._arrays(a0, stop, zv)
        ev = (
            StrideEventDetector(s.events)
            .detect(acc, gyr, fs, foot=self.foot, zero_velocity=zv, t_s=t, q_wxyz=q)
            .events_
        )
        if ev.height == 0:
            return
        ic = ev[IC_IDX].to_numpy() + a0
        ff = ev[FOOT_FLAT_IDX].to_numpy()
        emit = ic > self._last_ic
        if a0 != self._seg0:
            emit &= (ev[REASON] != REASON_GAIT_START).fill_null(True).to_numpy()
        if not final:
            emit[-1] = False
        if not emit.any():
            return
        zupt = ZuptIntegrator(s.zupt).estimate(acc, q, zv, fs, t, gyr_dps=gyr)
        strides = self._metrics(ev, t, acc, gyr, q, zv, zupt.velocity_mps_, zupt.position_m_)
        chosen = ev.select(STRIDE_INDEX, IC_IDX, NEXT_IC_IDX).filter(pl.Series(emit))
        out = chosen.join(strides, on=STRIDE_INDEX, how="left").sort(IC_IDX)
        out = self._flag_samples(out, a0)
        k = out.height
        out = out.with_columns(pl.Series(STRIDE_INDEX, np.arange(self._n_emitted, self._n_emitted + k)))
        out = out.select([pl.col(c).cast(d) for c, d in STRIDES_SCHEMA.items()])
        self._emitted.append(out)
        close_t = float(b.view("t", close, close + 1)[0])
        for idx, nic in zip(out[STRIDE_INDEX].to_list(), out[NEXT_IC_T].to_list(), strict=True):
            self._emissions.append(
                {
                    STRIDE_INDEX: idx,
                    NEXT_IC_T: nic,
                    _CLOSE_T: close_t,
                    "_close": close,
                    _EMITTED_T: None,
                    _LATENCY: None,
                }
            )
        self._n_emitted += k
        last = np.flatnonzero(emit)[-1]
        self._last_ic = int(ic[last])
        # Next window: from the start of the still period at or before the last emitted foot-flat
        # (the next stride's swing comes after it).
        starts = np.flatnonzero(zv & ~np.concatenate([[False], zv[:-1]]))
        before = starts[(starts <= ff[last]) & (starts + a0 > self._anchor)]
        if len(before):
            self._anchor = a0 + int(before[-1])
            b.trim(max(self._anchor - self._ctx, self._seg0))

    # --- provisional stance rows -----------------------------------------------------------
    def _scan_swing(self, gyr_y: np.ndarray) -> list[int]:
        """Ends (offsets one past) of the samples of gyr_y (deg/s) at which a swing starts.

        A swing starts where the dorsiflexion rate first passes `min_swing_dps` after a push-off
        (a positive gyr_y): batch's test for a step. The toe-off (the push-off's peak) lies before
        it: 14-19 samples at 200 Hz on the simulator, 4-14 on real walking.
        """
        starts: list[int] = []
        level = -self.settings.analysis.events.min_swing_dps
        for i in np.flatnonzero((gyr_y > 0.0) | (gyr_y < level)):
            if gyr_y[i] > 0.0:
                self._armed = True
            elif self._armed:
                self._armed = False
                starts.append(int(i) + 1)
        return starts

    def _stance(self, stop: int) -> None:
        """Provisional row of the stride whose toe-off started the swing that sample stop - 1 is in.

        The batch code on the window up to that sample (the zero-velocity stream has been fed up to
        it, whatever the block sizes): the flags not final yet are its provisional ones
        (`ZeroVelocityStream.peek`), the orientation is levelled at the still periods so far (the
        correction that the next still period will spread back over this swing is not known yet)
        and the detector's open-end stride gives the events. Only metrics of the stance are kept
        (STANCE_SCHEMA); the final stride row follows once it closes (see the module doc).
        """
        s = self.settings.analysis
        fs = self.sampling_rate_hz
        b = self._buf
        # The zero-velocity stream must have been fed exactly up to `stop` (not so after a cut).
        if not self._ready or self._seg0 is None or self._seg0 + self._zv.samples_seen_ != stop:
            return
        a0 = max(self._anchor - self._ctx, self._seg0, b.start)
        if stop - a0 < 3:
            return
        zv = b.view("is_zv", a0, stop).copy()
        tail = self._zv.peek()  # flags of [_zv_done, stop)
        skip = max(a0 - self._zv_done, 0)
        zv[max(self._zv_done - a0, 0) :] = tail[skip:]
        t, acc, gyr, q = self._arrays(a0, stop, zv)
        still = np.zeros((len(t), 3))  # no position or velocity: no stance metric reads them
        row = (
            StrideEventDetector(s.events)
            .detect(
                acc,
                gyr,
                fs,
                foot=self.foot,
                zero_velocity=zv,
                t_s=t,
                q_wxyz=q,
                position_m=still,
                open_end=True,
            )
            .open_stride_
        )
        if row.height == 0:
            return
        ic, to = int(row[IC_IDX][0]) + a0, int(row[TOE_OFF_IDX][0]) + a0
        if ic <= max(self._stance_ic, self._last_ic):
            return
        m = self._metrics(row, t, acc, gyr, q, zv, still, still)
        # The metrics' own validity also wants the next foot-flat, which a stance cannot have.
        missing = any(v is None or not math.isfinite(v) for v in m.select(STANCE_METRICS).row(0))
        reason = row[REASON][0] or (REASON_NO_SIGNAL if missing else None)
        m = m.with_columns(
            pl.lit(reason is None).alias(VALID),
            pl.lit(reason, dtype=pl.String).alias(REASON),
            row[IC_IDX],
            row[NEXT_IC_IDX],
        )
        out = self._flag_samples(m, a0).select(list(STANCE_SCHEMA))
        self._stances.append(out)
        self.new_stances_ = pl.concat([self.new_stances_, out]) if self.new_stances_.height else out
        self._stance_ic = ic
        newest = float(b.view("t", b.stop - 1, b.stop)[0])
        self._stance_emissions.append(
            {
                IC_T: float(row[IC_T][0]),
                TOE_OFF_T: float(row[TOE_OFF_T][0]),
                _EMITTED_T: newest,
                _TOE_OFF_LATENCY: b.stop - 1 - to,
            }
        )

    def _arrays(self, a0: int, stop: int, zv: np.ndarray) -> tuple[np.ndarray, ...]:
        """t, acc, gyr (contiguous) and orientation (wxyz) of window rows [a0, stop) with flags zv."""
        b = self._buf
        t = b.view("t", a0, stop)
        acc = np.ascontiguousarray(b.view("acc", a0, stop))
        gyr = np.ascontiguousarray(b.view("gyr", a0, stop))
        if self._madgwick is not None:
            return t, acc, gyr, b.view("q", a0, stop).copy()
        levelled = LevelledStrapdown(self._levelling).estimate(
            acc, gyr - self.gyr_bias_dps_, zv, self.sampling_rate_hz, t
        )
        return t, acc, gyr, levelled.orientation_

    def _metrics(self, events, t, acc, gyr, q, zv, velocity_mps, position_m) -> pl.DataFrame:
        """The batch metrics of a window's events (keys added) on its signals (STRIDES_SCHEMA)."""
        s = self.settings.analysis
        keys = (self.athlete_id, self.session_id, self.foot)
        sig = signals_frame(
            keys,
            t,
            acc,
            gyr,
            q,
            zero_velocity=zv,
            velocity_mps=velocity_mps,
            position_m=position_m,
            settings=s.signals,
        )
        keyed = events.with_columns(pl.lit(k).alias(c) for c, k in zip(KEYS, keys, strict=True))
        return StrideMetrics(s.metrics).estimate(keyed, sig).strides_

    def _flag_samples(self, out: pl.DataFrame, a0: int) -> pl.DataFrame:
        """Rows over interpolated or gyro-saturated samples between their IC_IDX and NEXT_IC_IDX
        (window indices) are invalid ("gap", "saturation")."""
        b = self._buf
        lo, hi = out[IC_IDX].to_numpy() + a0, out[NEXT_IC_IDX].to_numpy() + a0
        reasons = []
        for name in ("is_gap", "is_sat"):
            c = np.concatenate([[0], np.cumsum(b.view(name, a0, b.stop))])
            reasons.append((c[np.clip(hi, a0, b.stop) - a0] - c[np.clip(lo, a0, b.stop) - a0]) > 0)
        gap, sat = reasons
        reason = np.where(gap, REASON_GAP, np.where(sat, REASON_SATURATION, None))
        r = pl.Series("_flag", reason, dtype=pl.String)
        return out.with_columns(r).with_columns(
            pl.when(pl.col(VALID) & pl.col("_flag").is_not_null())
            .then(pl.col("_flag"))
            .otherwise(pl.col(REASON))
            .alias(REASON),
            (pl.col(VALID) & pl.col("_flag").is_null()).alias(VALID),
        )

    def _collect(self, start: int) -> pl.DataFrame:
        """Strides emitted since emission number `start`, with their latency filled in."""
        newest = self._last_t
        for e in self._emissions[start:]:
            e[_EMITTED_T] = newest
            e[_LATENCY] = (
                int(round((newest - e[_CLOSE_T]) * self.sampling_rate_hz)) if newest is not None else 0
            )
        for e in self._emissions[start:]:
            e.pop("_close", None)
        if len(self._emissions) == start:
            return _NO_STRIDES
        k = len(self._emissions) - start
        return self.strides_.tail(k)
