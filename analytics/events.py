"""Gait events per foot (IC, foot-flat, heel-off, toe-off) and strides from IC to the next IC.

Foot-frame signals (x to the toe, y left, z up; plantarflexion is +gyr_y). The recording is cut
at the zero-velocity (still) periods: each motion between two still periods that moves the foot
(a swing) is a step. Within a step:

- mid-swing: the largest dorsiflexion rate (minimum of gyr_y) in the airborne swing. Usually the
  step's largest; but a forefoot strike lands on the ball of the foot and the heel then drops to
  the ground under load (Lieberman et al. 2010, Nature 463:531), a dorsiflexion that can outpace
  the swing's when the toe-off angle is small (simulated: 223 against 124 deg/s at a 34 deg
  toe-off and a -11 deg strike, which put every IC ~47 ms late). When the step's impact (its
  largest jerk, the landing) is over before the step's largest dorsiflexion rate (the jerk falls
  below `ic_quiet_fraction` of the impact's in between: the foot is on the ground), that rate is
  the heel drop, and mid-swing is the largest dorsiflexion rate before the impact (if it reaches
  `min_swing_dps`; else the jerk was no landing). In heel-strike walking the largest dorsiflexion
  rate comes 0-3 samples after the largest jerk, within the impact (in between, the jerk stays
  above 0.46 of its peak on gaitmap's imu_sample_ic_stride.csv), and mid-swing does not move. A
  step still under way (live, `open_end`) has no impact yet: the largest rate so far;
- toe-off: the peak of the plantarflexion rate (gyr_y) at the push-off, between the end of the
  previous still period and mid-swing; the rotation about the toe stops abruptly when the toe
  leaves the ground. The push-off is where the plantarflexion rate most exceeds the spin rate,
  gyr_y - |gyr_z| (`to_spin_weight` = 1); toe-off is the gyr_y peak whose slope that lies on.
  A turn pivots the foot about the vertical on the loaded forefoot before the toe leaves the
  ground; after the mounting alignment part of that spin shows in gyr_y and can outgrow the
  push-off peak, so spin counts against it. A pivot step (a turn step with too little
  dorsiflexion to have a mid-swing) spins throughout: its toe-off is the largest gyr_y in the
  first half of its motion. This is the terminal-contact feature Falbriard et al. (2018, Front.
  Physiol. 9:610) found the most precise against force plates (the extremum of the pitch angular
  velocity in the second half of a mid-swing to mid-swing cycle), and the simulator's toe-off is
  the instant its plantarflexion rate peaks (within 0.01 ms). toe_off_t lies between samples
  (`to_subsample`): the rate rises over the push-off and falls much faster once the toe is off,
  so the sample of the peak lies before the peak (simulator at 200 Hz: 2.1 ms walking, 0.9 ms
  running on average, 1.1 / 1.4 deg of toe-off angle); the peak is the vertex of a parabola through
  three samples of its rising side only, kept where the samples allow it (else the sample);
- initial contact: the onset of the impact after mid-swing. The impact is the first sample whose
  change of specific force (jerk) reaches `ic_jerk_fraction` of the largest jerk before the next
  still period; IC is the last quiet sample before it (jerk below `ic_quiet_fraction` of the
  impact's). An impact is there for heel, mid- and forefoot strikes alike.

In the stance between two steps: foot-flat is the middle of the still period, or the minimum of
the gyro norm between IC and toe-off when the still period is shorter than `min_foot_flat_s`
(running); heel-off is the last sample before toe-off at which the plantarflexion rate is still
below `heel_off_rate_dps` (the heel starts to rise and pitch to fall).

A stride is one step's IC to the next step's IC. `valid` means a real, whole stride measured
without a fault: it is marked invalid, with a reason, when it is too long (strides merged over a
pause or a missed step) or too short, or when the foot hardly moved (shuffle); later stages add
their own faults (missing signal, gaps, saturation, implausible metrics). A valid stride may still
not be steady walking: its `context` says why, and only strides without one are `steady`, the
strides the statistics are taken over (turning changes foot loading; see `schema.steady_expr`):

- "turn": the heading changes by more than `turn_deg` between its two foot-flats
  (`heading_change_deg`, signed, counter-clockwise positive). Its stride length, swing and toe-off
  are measured as on a straight stride (footprint walks: turn strides' median abs stride length
  error 0.7-4.4 cm), so it is valid and counts as found;
- "gait_start": the row below.

Heading and displacement come from a zero-velocity-aided strapdown integration (or from `q_wxyz`
and `position_m` when given).

Gait initiation: the recording's first step has no IC before it, so no IC-to-IC stride carries its
toe-off. When a still period of at least `min_foot_flat_s` precedes that step, one extra row with
context "gait_start" comes first: ic_t = the start of that (longest) still period of standing,
foot_flat_t = its middle, heel_off_t as for any stance, toe_off_t = the first toe-off, next_ic_t =
the first IC. Its stride length (standing foot-flat to the first foot-flat after the first IC),
swing time and toe-off metrics are measured as on any stride, so it is valid unless it shuffles
(the stride-time limits do not apply: its ic_t is no contact). The metrics that read ic_t are not
real on it and are null there (`schema.NEEDS_IC`: stride and stance time, cadence, speed, duty
factor, foot strike angle and type, pronation excursion, its velocity and time, heel-off ratio,
impact; `analytics.metrics`). Later walking bouts need no such row: the stride that spans a
standing pause (marked "too_long") already carries the bout's first toe-off. The end of the walk
needs none either: the last stride ends at the last IC, and the standing after it has no toe-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np
import polars as pl

from strideflow.analytics.signals import _row_norm, row_norm
from strideflow.fusion.zero_velocity import ZeroVelocityDetector, ZeroVelocitySettings
from strideflow.fusion.zupt import ZuptIntegrator, zero_velocity_aided_orientation
from strideflow.hardware.motion_math import _mask_to_periods
from strideflow.hardware.schema import (
    CONTEXT,
    CONTEXT_GAIT_START,
    CONTEXT_TURN,
    FOOT_FLAT_T,
    HEADING_CHANGE_DEG,
    HEEL_OFF_T,
    IC_T,
    NEXT_IC_T,
    REASON,
    STRIDE_INDEX,
    TOE_OFF_T,
    VALID,
)

# Integer sample indices of the events (added columns of the events table).
IC_IDX = "ic_idx"
FOOT_FLAT_IDX = "foot_flat_idx"
HEEL_OFF_IDX = "heel_off_idx"
TOE_OFF_IDX = "toe_off_idx"
NEXT_IC_IDX = "next_ic_idx"
DISPLACEMENT_M = "displacement_m"  # 3-D foot displacement foot-flat to next foot-flat, m

REASON_TURN = CONTEXT_TURN  # a context since issue 17 (valid, not steady), no longer a reason
REASON_TOO_LONG = "too_long"
REASON_TOO_SHORT = "too_short"
REASON_SHUFFLE = "shuffle"
REASON_NO_ZERO_VELOCITY = "no_zero_velocity"
REASON_GAIT_START = CONTEXT_GAIT_START  # likewise a context

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    STRIDE_INDEX: pl.Int64(),
    IC_T: pl.Float64(),
    FOOT_FLAT_T: pl.Float64(),
    HEEL_OFF_T: pl.Float64(),
    TOE_OFF_T: pl.Float64(),
    NEXT_IC_T: pl.Float64(),
    VALID: pl.Boolean(),
    REASON: pl.String(),
    CONTEXT: pl.String(),
    IC_IDX: pl.Int64(),
    FOOT_FLAT_IDX: pl.Int64(),
    HEEL_OFF_IDX: pl.Int64(),
    TOE_OFF_IDX: pl.Int64(),
    NEXT_IC_IDX: pl.Int64(),
    HEADING_CHANGE_DEG: pl.Float64(),
    DISPLACEMENT_M: pl.Float64(),
}
# The empty events table, built once: a frame from a schema costs ~0.3 ms, and the detector gives
# one per call without an open stride (frames are immutable: sharing it is safe).
_NO_EVENTS = pl.DataFrame(schema=EVENTS_SCHEMA)
_FLOAT_EVENT_COLUMNS = tuple(c for c, d in EVENTS_SCHEMA.items() if d == pl.Float64)
_INT_EVENT_COLUMNS = tuple(c for c, d in EVENTS_SCHEMA.items() if d == pl.Int64)


@dataclass(frozen=True)
class EventColumns:
    """An events table (EVENTS_SCHEMA) as columns: numpy arrays (times in s, indices, `valid`
    bool, heading in deg, displacement in m) and lists (`reason`, `context`: str or None).

    What the detector computes; the live analyzer reads a window's events from it and builds a
    table only of the rows it emits (a table costs ~0.25 ms to build on a window's few rows, and
    reading its columns back as much again). `frame()` is the table `events_` holds.
    """

    columns: dict[str, np.ndarray | list]
    height: int

    def __getitem__(self, name: str) -> np.ndarray | list:
        return self.columns[name]

    def rows(self, idx: np.ndarray | slice) -> EventColumns:
        """The rows `idx` (integer positions or a slice), in that order."""
        if isinstance(idx, slice):
            out = {c: v[idx] for c, v in self.columns.items()}
        else:
            idx = np.asarray(idx, dtype=np.int64)
            out = {
                c: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx.tolist()])
                for c, v in self.columns.items()
            }
        return EventColumns(out, len(out[STRIDE_INDEX]))

    def frame(self) -> pl.DataFrame:
        """The EVENTS_SCHEMA table of these columns."""
        n_rows = self.height
        if n_rows == 0:
            return _NO_EVENTS
        columns = self.columns
        # One Series per dtype, sliced into the columns: a Series costs ~20-40 us to build from
        # numpy whatever its length.
        series = {}
        for dtype, names in ((pl.Float64, _FLOAT_EVENT_COLUMNS), (pl.Int64, _INT_EVENT_COLUMNS)):
            flat = pl.Series("", np.concatenate([columns[c] for c in names]), dtype=dtype)
            series.update((c, flat.slice(i * n_rows, n_rows).alias(c)) for i, c in enumerate(names))
        series[VALID] = pl.Series(VALID, columns[VALID], dtype=pl.Boolean)
        series[REASON] = pl.Series(REASON, columns[REASON], dtype=pl.String)
        series[CONTEXT] = pl.Series(CONTEXT, columns[CONTEXT], dtype=pl.String)
        return pl.DataFrame([series[c] for c in EVENTS_SCHEMA])


_NUMPY_DTYPES = {pl.Float64: np.float64, pl.Int64: np.int64, pl.Boolean: np.bool_}
_NO_EVENT_COLUMNS = EventColumns(
    {c: [] if d == pl.String else np.zeros(0, dtype=_NUMPY_DTYPES[d]) for c, d in EVENTS_SCHEMA.items()}, 0
)


@dataclass(frozen=True)
class EventSettings:
    """Settings of `StrideEventDetector`; times in s, rates in deg/s, so any rate >= 100 Hz works.

    zero_velocity: detector settings used when no zero-velocity mask is given.
    min_swing_dps: a motion is a step only if its peak dorsiflexion rate (-gyr_y) exceeds this.
    min_pivot_dps: ... or if its peak |gyr_z| exceeds this (a pivot step in a turn);
    min_swing_s: ... and it lasts at least this long.
    to_lookback_s: toe-off is searched from this long before the end of the still period.
    to_spin_weight: toe-off is the peak of gyr_y - to_spin_weight * |gyr_z| (deg/s per deg/s).
    to_subsample: toe_off_t lies between samples, at the peak of a parabola through the peak's
        rising side (module docstring); False: at the peak sample.
    ic_jerk_fraction: the impact is found where the jerk first reaches this share of its peak ...
    ic_quiet_fraction: ... and IC is the last sample before it whose jerk is below this share of
        that sample's jerk (the impact's rise takes a few ms; IC is where it starts), searched
        back at most `ic_max_rise_s`.
    ic_lookahead_s: the impact is searched up to this long into the next still period.
    min_foot_flat_s: shorter still periods take foot-flat at the minimum gyro norm instead.
    heel_off_rate_dps: plantarflexion rate that marks the heel lifting.
    turn_deg: stride in context "turn" (valid, not steady) when its heading changes more than this.
    max_stride_s / min_stride_s: stride time outside these is invalid ("too_long"/"too_short").
    min_displacement_m: foot displacement over the stride below this is invalid ("shuffle").
    """

    zero_velocity: ZeroVelocitySettings = field(default_factory=ZeroVelocitySettings)
    min_swing_dps: float = 100.0
    min_pivot_dps: float = 200.0
    min_swing_s: float = 0.10
    to_lookback_s: float = 0.05
    to_spin_weight: float = 1.0
    to_subsample: bool = True
    ic_jerk_fraction: float = 0.65
    ic_quiet_fraction: float = 0.25
    ic_max_rise_s: float = 0.010
    ic_lookahead_s: float = 0.03
    min_foot_flat_s: float = 0.04
    heel_off_rate_dps: float = 15.0
    turn_deg: float = 45.0
    max_stride_s: float = 2.5
    min_stride_s: float = 0.3
    min_displacement_m: float = 0.15


@numba.njit(cache=True)
def _argext(x, lo, hi, find_max):  # pragma: no cover - compiled
    out = np.empty(lo.shape[0], dtype=np.int64)
    for k in range(lo.shape[0]):
        best = lo[k]
        for i in range(lo[k], hi[k]):
            if (x[i] > x[best]) if find_max else (x[i] < x[best]):
                best = i
        out[k] = best
    return out


@numba.njit(cache=True)
def _impact_onset(x, lo, hi, frac, quiet, max_back):  # pragma: no cover - compiled
    """Per window [lo, hi): first index i where x reaches frac * max(x), then back from i (at most
    max_back samples) the last index whose x is below quiet * x[i]: the last quiet sample."""
    out = np.empty(lo.shape[0], dtype=np.int64)
    for k in range(lo.shape[0]):
        peak = -np.inf
        for i in range(lo[k], hi[k]):
            peak = max(peak, x[i])
        first = lo[k]
        for i in range(lo[k], hi[k]):
            if x[i] >= frac * peak:
                first = i
                break
        j = first
        while j > max(lo[k], first - max_back) and x[j] >= quiet * x[first]:
            j -= 1
        out[k] = j
    return out


@numba.njit(cache=True)
def _climb(x, start, lo, hi):  # pragma: no cover - compiled
    """From each start, step to the larger neighbour while it is larger (within [lo, hi)):
    the local maximum of x that start lies on the slope of."""
    out = start.copy()
    for k in range(start.shape[0]):
        i = start[k]
        while True:
            if i + 1 < hi[k] and x[i + 1] > x[i] and (i - 1 < lo[k] or x[i + 1] >= x[i - 1]):
                i += 1
            elif i - 1 >= lo[k] and x[i - 1] > x[i]:
                i -= 1
            else:
                break
        out[k] = i
    return out


@numba.njit(cache=True)
def _last_below_before(x, lo, hi, level):  # pragma: no cover - compiled
    """Last index i in [lo, hi) with x[i] < level, searching back from hi - 1; lo if none."""
    out = np.empty(lo.shape[0], dtype=np.int64)
    for k in range(lo.shape[0]):
        out[k] = lo[k]
        for i in range(hi[k] - 1, lo[k] - 1, -1):
            if x[i] < level:
                out[k] = i
                break
    return out


@numba.njit(cache=True)
def _jerk(acc):  # pragma: no cover - compiled
    """|acc[i] - acc[i-1]| per sample (0 at the first): the backward difference, so sample i is
    the first that shows a change between i-1 and i; squares summed left to right as numpy does."""
    n = acc.shape[0]
    out = np.zeros(n)
    for i in range(1, n):
        dx = acc[i, 0] - acc[i - 1, 0]
        dy = acc[i, 1] - acc[i - 1, 1]
        dz = acc[i, 2] - acc[i - 1, 2]
        out[i] = np.sqrt((dx * dx + dy * dy) + dz * dz)
    return out


@numba.njit(cache=True)
def _longest_periods(periods, lo, hi):  # pragma: no cover - compiled
    """Middle and length (samples) of the longest of `periods` ((K, 2) [start, end)) inside each
    [lo, hi) (lo increasing; a period belongs to the last window starting at or before it, and
    counts if it ends inside; the first of equal lengths wins); without one, the window's middle
    and 0."""
    m = lo.shape[0]
    ff = np.empty(m, dtype=np.int64)
    length = np.zeros(m, dtype=np.int64)
    for k in range(m):
        ff[k] = (lo[k] + max(hi[k] - 1, lo[k])) // 2
    for j in range(periods.shape[0]):
        start, end = periods[j, 0], periods[j, 1]
        a, b = 0, m  # the last window with lo <= start
        while a < b:
            mid = (a + b) // 2
            if lo[mid] <= start:
                a = mid + 1
            else:
                b = mid
        k = a - 1
        if k >= 0 and end <= hi[k] and end - start > length[k]:
            length[k] = end - start
            ff[k] = (start + end - 1) // 2
    return ff, length


def event_sample_settings(settings: EventSettings, sampling_rate_hz: float) -> tuple:
    """The detector settings as `_event_samples` takes them after its arrays and `open_end`:
    thresholds in deg/s and fractions, durations in samples at `sampling_rate_hz`."""
    s, fs = settings, float(sampling_rate_hz)
    return (
        float(s.min_swing_dps),
        float(s.min_pivot_dps),
        float(s.min_swing_s * fs),
        int(round(s.ic_lookahead_s * fs)),
        float(s.ic_quiet_fraction),
        int(round(s.to_lookback_s * fs)),
        float(s.to_spin_weight),
        float(s.ic_jerk_fraction),
        max(int(round(s.ic_max_rise_s * fs)), 1),
        float(s.min_foot_flat_s * fs),
        float(max(s.min_foot_flat_s * fs, 1)),
        float(s.heel_off_rate_dps),
    )


@numba.njit(cache=True)
def _event_samples(
    acc,
    gyr,
    zv,
    open_end,
    min_swing_dps,
    min_pivot_dps,
    min_swing_n,
    ahead,
    quiet,
    back,
    spin_weight,
    jerk_fraction,
    max_rise,
    min_foot_flat_n,
    min_start_flat_n,
    heel_off_dps,
):  # pragma: no cover - compiled
    """`StrideEventDetector.detect`'s sample indices per stride row (IC, foot-flat, heel-off,
    toe-off, next IC, next foot-flat), whether the first row is the gait start and the last an
    open step, and gyr_y: the module docstring's rules in the detector's numpy statements, the
    same integer and float operations in their order (sample counts and thresholds precomputed
    from the settings by the caller)."""
    n = acc.shape[0]
    periods = _mask_to_periods(zv)
    gyr_y = gyr[:, 1].copy()
    abs_z = np.abs(gyr[:, 2])
    # Motions between consecutive still periods; those that are not swings join the stance.
    if periods.shape[0] >= 2:
        m_lo, m_hi = periods[:-1, 1].copy(), periods[1:, 0].copy()
        # A swing dorsiflexes the foot (toes up from toe-off to heel strike): gyr_y goes well below
        # zero; a pivot step on the spot spins about z instead. Stance wobbles and rolling
        # foot-flats do neither.
        dorsiflexion = -gyr_y[_argext(gyr_y, m_lo, m_hi, False)]
        spin = abs_z[_argext(abs_z, m_lo, m_hi, True)]
        swings = dorsiflexion >= min_swing_dps
        is_step = (swings | (spin >= min_pivot_dps)) & ((m_hi - m_lo) >= min_swing_n)
        m_lo, m_hi, pivot = m_lo[is_step], m_hi[is_step], ~swings[is_step]
    else:
        m_lo = np.zeros(0, dtype=np.int64)
        m_hi = np.zeros(0, dtype=np.int64)
        pivot = np.zeros(0, dtype=np.bool_)
    # Open end: the motion after the last still period is a step under way once it is a swing (its
    # IC, the impact, is not in the data: that stride's next IC is a placeholder).
    open_step = (
        open_end
        and m_lo.shape[0] > 0
        and periods.shape[0] > 0
        and periods[-1, 1] < n
        and -gyr_y[periods[-1, 1] :].min() >= min_swing_dps
    )
    if open_step:
        m_lo, m_hi = np.append(m_lo, periods[-1, 1]), np.append(m_hi, n)
        pivot = np.append(pivot, False)
    stance_lo = np.concatenate((np.zeros(1, dtype=np.int64), m_hi))
    stance_hi = np.concatenate((m_lo, np.full(1, n, dtype=np.int64)))
    jerk = _jerk(acc)
    ic_hi = np.minimum(m_hi + ahead, stance_hi[1:])
    # Mid-swing must lie in the airborne swing: when the step's impact is over before the largest
    # dorsiflexion rate (a heel dropping after a forefoot strike), mid-swing is the largest one
    # before the impact, if that is a swing's. An open step has no impact yet.
    mid_swing = _argext(gyr_y, m_lo, m_hi, False)
    impact = _argext(jerk, m_lo, np.maximum(ic_hi, m_lo + 1), True)
    after = impact < mid_swing
    dip = _argext(jerk, impact, np.where(after, mid_swing + 1, impact + 1), False)
    before = _argext(gyr_y, m_lo, np.maximum(impact, m_lo + 1), False)
    landed = after & (jerk[dip] < quiet * jerk[impact]) & (-gyr_y[before] >= min_swing_dps)
    if open_step:
        landed[-1] = False
    mid_swing[landed] = before[landed]
    to_lo = np.maximum(m_lo - back, stance_lo[:-1])
    # A pivot's dorsiflexion minimum is noise, not mid-swing: push-off is in its first half.
    to_hi = np.where(pivot, (m_lo + m_hi) // 2, mid_swing) + 1
    to_hi = np.maximum(to_hi, to_lo + 1)
    push = gyr_y - spin_weight * abs_z
    # The spin-weighted peak picks the push-off; the toe-off is the gyr_y peak it lies on.
    toe_off = _climb(gyr_y, _argext(push, to_lo, to_hi, True), to_lo, to_hi)
    toe_off[pivot] = _argext(gyr_y, to_lo[pivot], to_hi[pivot], True)
    ic = _impact_onset(jerk, mid_swing, np.maximum(ic_hi, mid_swing + 1), jerk_fraction, quiet, max_rise)
    # Strides: step j's IC to step j+1's IC; their stance is stance j+1.
    n_strides = max(ic.shape[0] - 1, 0)
    st_lo, st_hi = stance_lo[1 : n_strides + 1], stance_hi[1 : n_strides + 1]
    ff, ff_len = _longest_periods(periods, st_lo, st_hi)
    short = ff_len < min_foot_flat_n
    if short.any():
        lo = np.minimum(ic[:n_strides][short], toe_off[1:][short])
        ff[short] = _argext(_row_norm(gyr), lo, np.maximum(toe_off[1:][short], lo + 1), False)
    heel_off = _last_below_before(gyr_y, ff, np.maximum(toe_off[1:], ff + 1), heel_off_dps)
    # The last stride has no next foot-flat: measured to the middle of the data's last stance.
    if n_strides:
        next_ff = np.concatenate((ff[1:], np.full(1, -1, dtype=np.int64)))
        next_ff[-1] = min((stance_lo[n_strides + 1] + stance_hi[n_strides + 1]) // 2, n - 1)
    else:
        next_ff = ff
    ic_idx, to_idx, next_ic = ic[:-1], toe_off[1:], ic[1:]
    if open_step:
        next_ic = next_ic.copy()
        next_ic[-1] = n - 1  # placeholders: the open step has no impact yet
        next_ff[-1] = n - 1
    # Gait initiation: the standing before the first step gives the first toe-off a row.
    gait_start = False
    if ic.shape[0]:
        ff0, len0 = _longest_periods(periods, stance_lo[:1], stance_hi[:1])
        if len0[0] >= min_start_flat_n and ff0[0] < toe_off[0]:
            gait_start = True
            start = ff0 - (len0 - 1) // 2  # first sample of that still period
            ho0 = _last_below_before(gyr_y, ff0, toe_off[:1], heel_off_dps)
            if n_strides:
                first_after = ff[:1]
            else:
                first_after = np.full(1, min((stance_lo[1] + stance_hi[1]) // 2, n - 1), dtype=np.int64)
            ic_idx, to_idx = np.concatenate((start, ic_idx)), np.concatenate((toe_off[:1], to_idx))
            next_ic = np.concatenate((ic[:1], next_ic))
            next_ff = np.concatenate((first_after, next_ff))
            ff, heel_off = np.concatenate((ff0, ff)), np.concatenate((ho0, heel_off))
    return ic_idx, ff, heel_off, to_idx, next_ic, next_ff, gait_start, open_step, gyr_y


def _yaw_deg(q_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = q_wxyz.T
    return np.degrees(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def _rising_peak_offset(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Offset (samples, in [-1, 1]) of the continuous peak of `x` from its peak samples `idx`.

    The peak is taken as the vertex of a parabola through three samples of its rising side only:
    through idx-2..idx when that vertex lies in [idx, idx+1], else through idx-3..idx-1 when it lies
    in [idx-1, idx]; 0 where neither does, the samples are missing or not concave."""
    return _rising_peak_kernel(np.ascontiguousarray(x, dtype=float), np.asarray(idx, dtype=np.int64))


@numba.njit(cache=True)
def _rising_peak_kernel(x, idx):  # pragma: no cover - compiled
    n = x.shape[0]
    out = np.zeros(idx.shape[0])
    for k in range(idx.shape[0]):
        i = idx[k]
        if i < 3 or i + 1 >= n:
            continue
        a, b, c, d = x[i - 3], x[i - 2], x[i - 1], x[i]
        den_late, den_early = b - 2.0 * c + d, a - 2.0 * b + c
        late = 0.5 * (b - d) / den_late if den_late < 0 else np.nan  # vertex from i-1
        early = 0.5 * (a - c) / den_early if den_early < 0 else np.nan  # vertex from i-2
        # a vertex outside the interval its samples allow: the parabola does not describe this peak
        if late >= 1.0 and late <= 2.0:
            out[k] = late - 1.0
        elif early >= 1.0 and early <= 2.0:
            out[k] = early - 2.0
    return out


def stride_reasons(
    s: EventSettings,
    ic_t: np.ndarray,
    next_ic_t: np.ndarray,
    heading_change_deg: np.ndarray,
    displacement_m: np.ndarray,
    gait_start: bool,
) -> tuple[list[str | None], list[str | None]]:
    """Per stride, the first fault it has (`reason`; None: valid): too long, too short, a shuffle;
    and its `context` (None: steady straight): "gait_start" (the first row, when `gait_start`; the
    stride-time limits do not apply to it, its ic_t being no contact), else "turn". Comparisons as
    Polars makes them (NaN above every number), so the table equals the Polars expressions this
    replaced."""
    # row by row in Python floats (the same IEEE arithmetic): on the live windows' few rows a
    # loop costs less than numpy's object arrays
    reason: list[str | None] = []
    context: list[str | None] = []
    rows = zip(
        np.asarray(ic_t, dtype=float).tolist(),
        np.asarray(next_ic_t, dtype=float).tolist(),
        np.asarray(heading_change_deg, dtype=float).tolist(),
        np.asarray(displacement_m, dtype=float).tolist(),
        strict=True,
    )
    for i, (ic, nic, heading, disp) in enumerate(rows):
        first = gait_start and i == 0
        stride_time = nic - ic
        if not first and (stride_time > s.max_stride_s or math.isnan(stride_time)):
            reason.append(REASON_TOO_LONG)
        elif not first and stride_time < s.min_stride_s:
            reason.append(REASON_TOO_SHORT)
        elif disp < s.min_displacement_m:
            reason.append(REASON_SHUFFLE)
        else:
            reason.append(None)
        turn = abs(heading) > s.turn_deg or math.isnan(heading)
        context.append(CONTEXT_GAIT_START if first else CONTEXT_TURN if turn else None)
    return reason, context


class StrideEventDetector:
    """Detect IC, foot-flat, heel-off and toe-off of one foot and assemble IC-to-IC strides.

    Parameters
    ----------
    settings
        `EventSettings` (durations in s, rates in deg/s, turn in deg, lengths in m).

    Attributes
    ----------
    events_ : pl.DataFrame
        EVENTS_SCHEMA, one row per stride, event times in s, `valid`, `reason` and `context`.
    open_stride_ : pl.DataFrame
        With `open_end`: the stride whose swing the data ends in (one row, else empty).
    event_columns_, open_stride_columns_ : EventColumns
        The same as columns (the tables are built from them when read).
    zero_velocity_, q_wxyz_, position_m_ : np.ndarray
        (N,) bool still samples, (N, 4) orientation (w x y z) and (N, 3) world position (m) used.

    Notes
    -----
    Mid-swing as the largest dorsiflexion rate follows the stride segmentation of Rampp et al.
    (2015, IEEE Trans. Biomed. Eng.), taken before the landing's impact when a forefoot strike's
    heel drop outpaces the swing (module docstring); the event rules (spin-weighted push-off, jerk-onset IC,
    heel-off rate, the gait-start row) and the validity rules are strideflow's own heuristics
    (module docstring).
    """

    def __init__(self, settings: EventSettings | None = None) -> None:
        self.settings = settings if settings is not None else EventSettings()

    def detect(
        self,
        acc_mps2: np.ndarray,
        gyr_dps: np.ndarray,
        sampling_rate_hz: float,
        foot: str = "left",
        zero_velocity: np.ndarray | None = None,
        pitch_deg: np.ndarray | None = None,
        t_s: np.ndarray | None = None,
        q_wxyz: np.ndarray | None = None,
        position_m: np.ndarray | None = None,
        open_end: bool = False,
    ):
        """Detect from (N, 3) acc (m/s²) and gyr (deg/s), foot frame.

        Times in s from `t_s` (or sample index / rate). `pitch_deg` is accepted for callers that
        have it; heel-off uses the plantarflexion rate, which is its derivative. `position_m`
        (N, 3, m): the world position of `fusion.zupt.ZuptIntegrator` with default settings for
        these `acc`, `q_wxyz` and `zero_velocity`, when the caller already has it (the pipeline
        does); otherwise it is integrated here.

        `open_end` (live analysis): the data may end inside a swing, which counts as a step once
        its dorsiflexion rate exceeds `min_swing_dps` (batch's step test, so its toe-off peak lies
        before the data's end). `open_stride_` is then the stride whose toe-off starts that swing,
        as a one-row EVENTS_SCHEMA table (else empty): IC, foot-flat, heel-off and toe-off by the
        same rules as every stride, `next_ic_t` = the last sample (a placeholder: its IC has not
        happened), heading and displacement NaN, invalid only when already too long. `events_`
        then holds the other strides; the one before the open stride ends its length at the open
        stride's foot-flat instead of the middle of the data's last stance.
        """
        s = self.settings
        if foot not in ("left", "right"):
            raise ValueError(f"foot must be 'left' or 'right', got {foot!r}")
        acc = np.ascontiguousarray(acc_mps2, dtype=float)
        gyr = np.ascontiguousarray(gyr_dps, dtype=float)
        n = acc.shape[0]
        if acc.shape != (n, 3) or gyr.shape != (n, 3):
            raise ValueError(f"acc and gyr must both be (N, 3), got {acc.shape} and {gyr.shape}")
        fs = float(sampling_rate_hz)
        t = np.arange(n) / fs if t_s is None else np.asarray(t_s, dtype=float)

        if zero_velocity is None:
            zv = ZeroVelocityDetector(s.zero_velocity).detect(acc, gyr, fs).zero_velocity_
        else:
            zv = np.asarray(zero_velocity, dtype=bool)
        q = zero_velocity_aided_orientation(acc, gyr, zv, fs, t) if q_wxyz is None else np.asarray(q_wxyz)
        if position_m is not None:
            position = np.asarray(position_m, dtype=float)
            if position.shape != (n, 3):
                raise ValueError(f"position_m must be (N, 3) with N = {n}, got {position.shape}")
        elif n:
            position = ZuptIntegrator().estimate(acc, q, zv, fs, t, gyr_dps=gyr).position_m_
        else:
            position = np.zeros((0, 3))
        self.zero_velocity_ = zv
        self.q_wxyz_ = q
        self.position_m_ = position

        # the rules below in one compiled pass (`_event_samples`): as numpy, ~70 calls on the few
        # steps of a live window cost more than the kernels on its samples
        ic_idx, ff, heel_off, to_idx, next_ic, next_ff, gait_start, open_step, gyr_y = _event_samples(
            acc, gyr, np.ascontiguousarray(zv), bool(open_end), *event_sample_settings(s, fs)
        )
        rows = (ic_idx, ff, heel_off, to_idx, next_ic, next_ff)
        to_offset = _rising_peak_offset(gyr_y, to_idx) if s.to_subsample else np.zeros(len(to_idx))
        self._frames: dict[str, pl.DataFrame] = {}
        self._event_columns: EventColumns | None = None
        self.open_stride_columns_ = _NO_EVENT_COLUMNS
        if not open_step:
            self._event_columns = self._columns(t, *rows, q, position, gait_start, to_offset)
            return self
        self.open_stride_columns_ = self._open_row(t, rows, gait_start, to_offset)
        # The other strides' columns when read: the live stance windows read only the open one.
        self._deferred = (t.copy(), rows, q, position, gait_start, to_offset)
        return self

    @property
    def event_columns_(self) -> EventColumns:
        """The strides' columns (`events_`; with `open_end` not the open stride)."""
        if self._event_columns is None:
            t, rows, q, position, gait_start, to_offset = self._deferred
            events = self._columns(t, *rows, q, position, gait_start, to_offset)
            self._event_columns = events.rows(slice(0, events.height - 1))
        return self._event_columns

    def _open_row(self, t, rows, gait_start: bool, to_offset) -> EventColumns:
        """The open stride's row (the last of `rows`) as `_columns` gives it, with what an open
        stride knows: only one already too long is invalid, only the gait start has a context
        before its next foot-flat, and no heading change or displacement yet."""
        ic_idx, ff, heel_off, to_idx, next_ic, _ = (np.asarray(r)[-1:] for r in rows)
        n_rows = len(rows[0])
        columns = self._time_columns(t, ic_idx, ff, heel_off, to_idx, next_ic, to_offset[-1:], n_rows - 1)
        start_row = gait_start and n_rows == 1
        too_long = not start_row and bool(
            columns[NEXT_IC_T][0] - columns[IC_T][0] > self.settings.max_stride_s
        )
        columns |= {
            HEADING_CHANGE_DEG: np.array([np.nan]),
            DISPLACEMENT_M: np.array([np.nan]),
            REASON: [REASON_TOO_LONG if too_long else None],
            CONTEXT: [CONTEXT_GAIT_START if start_row else None],
            VALID: np.array([not too_long]),
        }
        return EventColumns(columns, 1)

    # The tables are built when read: the live analyzer reads the columns.
    @property
    def events_(self) -> pl.DataFrame:
        """EVENTS_SCHEMA, one row per stride (`event_columns_` as a table)."""
        if "events" not in self._frames:
            self._frames["events"] = self.event_columns_.frame()
        return self._frames["events"]

    @property
    def open_stride_(self) -> pl.DataFrame:
        """With `open_end`: the stride whose swing the data ends in (one row, else empty)."""
        if "open" not in self._frames:
            self._frames["open"] = self.open_stride_columns_.frame()
        return self._frames["open"]

    @staticmethod
    def _time_columns(t, ic_idx, ff, heel_off, toe_off, next_ic, to_offset, first: int) -> dict:
        """The rows' stride index (numbered from `first`), event times (s; toe-off at its sample plus
        `to_offset` samples) and event sample indices."""
        return {
            STRIDE_INDEX: np.arange(first, first + len(ic_idx), dtype=np.int64),
            IC_T: t[ic_idx],
            FOOT_FLAT_T: t[ff],
            HEEL_OFF_T: t[heel_off],
            TOE_OFF_T: np.interp(toe_off + to_offset, np.arange(len(t)), t),
            NEXT_IC_T: t[next_ic],
            IC_IDX: ic_idx.astype(np.int64),
            FOOT_FLAT_IDX: ff.astype(np.int64),
            HEEL_OFF_IDX: heel_off.astype(np.int64),
            TOE_OFF_IDX: toe_off.astype(np.int64),
            NEXT_IC_IDX: next_ic.astype(np.int64),
        }

    def _columns(
        self, t, ic_idx, ff, heel_off, toe_off, next_ic, next_ff, q, position, gait_start, to_offset
    ) -> EventColumns:
        """One row per stride from per-row sample indices; the first is a gait start if flagged.
        `to_offset`: toe-off's offset from its sample (samples)."""
        s = self.settings
        n_rows = len(ic_idx)
        if n_rows == 0:
            return _NO_EVENT_COLUMNS
        # Yaw is only read at foot-flats (foot level, far from gimbal lock); wrap to [-180, 180).
        heading = (_yaw_deg(q[next_ff]) - _yaw_deg(q[ff]) + 180.0) % 360.0 - 180.0
        disp = row_norm(position[next_ff] - position[ff])  # np.linalg.norm's floats, compiled
        columns = self._time_columns(t, ic_idx, ff, heel_off, toe_off, next_ic, to_offset, 0)
        columns |= {HEADING_CHANGE_DEG: heading, DISPLACEMENT_M: disp}
        reason, context = stride_reasons(s, columns[IC_T], columns[NEXT_IC_T], heading, disp, gait_start)
        columns[REASON] = reason
        columns[CONTEXT] = context
        columns[VALID] = np.array([r is None for r in reason], dtype=bool)
        return EventColumns(columns, n_rows)
