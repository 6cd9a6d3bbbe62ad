"""Per-stride foot metrics of DESIGN.md's `strides` table, as Polars expressions over whole columns.

(Over ~500 lines: the three vectorised steps share the index arithmetic over the same arrays and
end in one lazy query; split, each would need the others' intermediates.)

Inputs are two tables:

- `events`: one row per stride (keys, `stride_index`, the five event times in s, `valid`, `reason`),
  as `analytics.events.StrideEventDetector` gives them with the keys added;
- `signals`: one row per sample in `schema.SIGNALS_SCHEMA` (pitch, pronation and their rates,
  |acc| in g, zero-velocity flag, zero-velocity-aided world position), see `analytics.signals`.

Three vectorised steps, no Python loop over strides:

1. point values at event times (pitch and pronation at IC, foot-flat and toe-off, pitch
   `STRIKE_LOOKBACK_S` before IC, position at this and the next foot-flat, the shoe's heading at
   foot-flat for the foot progression angle): the backward and
   forward neighbour samples by binary search within each foot's time-ordered rows, then linear
   interpolation between them (index arithmetic on whole columns);
2. window extrema (max pronation after IC, peak pronation velocity up to it, peak plantarflexion
   rate between heel-off and toe-off, peak impact): each sample belongs to the stride whose IC
   precedes it, so a stride owns one contiguous run of rows, found by binary search; one compiled
   pass over the rows takes the maxima;
3. the metrics as Polars expressions over the columns of steps 1 and 2, in one query.

The bookkeeping around step 3 (which foot each stride belongs to, which stride follows it, the
casts of the inputs) is numpy index arithmetic, and step 3 is one lazy query: each Polars query
has a fixed cost however few rows it has, and the live analyzer (`analytics.live_analyzer`) calls
`estimate` twice per stride on windows of 2-3 strides (timings: benchmarks/README.md). Joins and sorts
remain only where the input needs them: several feet in the signals, signals out of order, or
strides not already in (keys, IC) order. The signals are put in (keys, time) order once (a no-op
for the pipeline's own tables), where the as-of joins this replaces sorted them for every lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numba
import numpy as np
import polars as pl
from scipy.signal import butter, sosfilt_zi

from strideflow.analytics.events import EventColumns
from strideflow.analytics.metric_rows import PreparedEvents, evaluate_rows
from strideflow.analytics.stride_checks import finish_strides_stages
from strideflow.hardware.schema import (
    ACC_NORM_G,
    CADENCE_SPM,
    CONTEXT,
    CONTEXT_GAIT_START,
    DUTY_FACTOR,
    EVENT_TIMES,
    FOOT,
    FOOT_FLAT_T,
    FOOT_PROGRESSION_ANGLE_DEG,
    FOOT_STRIKE_ANGLE_DEG,
    HEADING_CHANGE_DEG,
    HEADING_DEG,
    HEEL_OFF_RATIO,
    HEEL_OFF_T,
    IC_T,
    IMPACT_G,
    IMPACT_WINDOW_S,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    METRICS,
    NEEDS_IC,
    NEXT_IC_T,
    PITCH_DEG,
    PITCH_RATE_DPS,
    POS,
    PRONATION_DEG,
    PRONATION_EXCURSION_CENSORED,
    PRONATION_EXCURSION_DEG,
    PRONATION_RATE_DPS,
    PRONATION_WINDOW_STANCE_FRACTION,
    PUSH_OFF_RATE_DPS,
    REASON,
    SPEED_MPS,
    STANCE_TIME_S,
    STEADY,
    STRIDE_INDEX,
    STRIDE_LENGTH_M,
    STRIDE_TIME_S,
    STRIDES_SCHEMA,
    STRIKE_FOREFOOT_BELOW_DEG,
    STRIKE_LOOKBACK_S,
    STRIKE_REARFOOT_ABOVE_DEG,
    STRIKE_TYPE,
    SWING_TIME_S,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    TOE_OFF_T,
    VALID,
    ZERO_VELOCITY,
    T,
    steady_expr,
)

# Reasons this module adds to strides the event detector called valid.
REASON_NO_SIGNAL = "no_signal"  # an event time falls outside the signals (gap or recording edge)
REASON_NO_NEXT_FOOT_FLAT = "no_next_foot_flat"  # no foot-flat after next IC: stride length unknown

_STRIDE = (*KEYS, STRIDE_INDEX)
# Half a microsecond: event times are sample times, possibly recomputed as index / rate.
_EPS_S = 5e-7
PRONATION_VELOCITY_CUTOFF_HZ = 80.0


@dataclass(frozen=True)
class MetricSettings:
    """Windows and thresholds of the metric definitions (defaults are DESIGN.md's).

    - `pronation_window_stance_fraction`: max pronation is searched in [IC, IC + this x stance].
    - `impact_window_s`: impact_g is the peak |acc| (g) within this many seconds after IC.
    - `strike_lookback_s`: "pitch just before IC" is taken this many seconds before IC.
    - `rearfoot_above_deg` / `forefoot_below_deg`: strike-type limits on the foot-strike angle, deg.
    - `max_interpolation_gap_s`: a point value is only interpolated between samples at most this far
      from the queried time; beyond, the value is null and the stride is marked invalid.
    - `max_next_foot_flat_s`: for the last stride of a bout (no following stride), the next foot-flat
      is the first zero-velocity sample at most this long after the next IC.
    - `pronation_velocity_cutoff_hz` (80 Hz, at most 0.4 x the sampling rate),
      `pronation_velocity_order` (4): max pronation velocity is the peak of the pronation rate
      after a zero-phase Butterworth low-pass (`scipy.signal.sosfiltfilt`, forward and backward:
      the magnitude response is squared, -6 dB at the cut-off, 8th-order roll-off); None: the raw
      rate. On the real walks the heel-strike transient is a one- or two-sample swing of the rate
      with alternating sign at IC (|acc| 13-18 g; near the 102 Hz Nyquist rate of 204.8 Hz), while
      the foot slap's eversion is one lobe of 30-40 ms. On imu_sample.csv the raw peak of the right
      foot sits on the transient (440 deg/s, 10 ms after IC); low-passed it sits on the lobe (363
      deg/s, 24 ms; left 437 -> 431 deg/s, on the lobe either way). The cut-off is as high as that
      allows because the metric depends on it and the eversion pulses are short: on imu_sample.csv
      (left) 431 / 401 / 339 / 276 deg/s at 80 / 50 / 30 / 15 Hz, no plateau; on simulator truth
      (issue-15 simulator, true events, pulses of 20-60 ms) MAPE 2.7 % walking / 1.5 % running at
      80 Hz, raw 2.8 / 1.6 %, 50 Hz 4.1 / 1.9 %, and at 50 or 60 Hz the session-to-session changes
      of a simulated drift shrink by 40-50 % (tests/analytics/test_trends.py failed there). Sinclair et al.,
      J Hum Kinet 39:25-36 (2013) report the same sensitivity of frontal-plane derivatives to the
      cut-off in running kinematics: compare values only at one stated cut-off.
    - `pronation_velocity_lead_s`: the filter sees the rate from this long before IC (the
      terminal swing), so the IC transient is smoothed rather than mirrored by the filter's
      edge padding.
    - `censored_tolerance_samples`: `pronation_excursion_censored` is true when max pronation
      lies within this many samples of the end of its window (IC + 60 % of stance): pronation
      was still rising, so the excursion is a lower bound.
    """

    pronation_window_stance_fraction: float = PRONATION_WINDOW_STANCE_FRACTION
    impact_window_s: float = IMPACT_WINDOW_S
    strike_lookback_s: float = STRIKE_LOOKBACK_S
    rearfoot_above_deg: float = STRIKE_REARFOOT_ABOVE_DEG
    forefoot_below_deg: float = STRIKE_FOREFOOT_BELOW_DEG
    max_interpolation_gap_s: float = 0.05
    max_next_foot_flat_s: float = 1.0
    pronation_velocity_cutoff_hz: float | None = PRONATION_VELOCITY_CUTOFF_HZ
    pronation_velocity_order: int = 4
    pronation_velocity_lead_s: float = 0.1
    censored_tolerance_samples: int = 1


def strike_type_expr(angle: pl.Expr, settings: MetricSettings = MetricSettings()) -> pl.Expr:
    """rearfoot / midfoot / forefoot from a foot-strike angle expression (deg); null stays null."""
    return (
        pl.when(angle.is_null() | angle.is_nan())
        .then(pl.lit(None, dtype=pl.String))
        .when(angle > settings.rearfoot_above_deg)
        .then(pl.lit("rearfoot"))
        .when(angle < settings.forefoot_below_deg)
        .then(pl.lit("forefoot"))
        .otherwise(pl.lit("midfoot"))
    )


@numba.njit(cache=True)
def _first_index(t, a, b, x, strict, hint):  # pragma: no cover - compiled
    """First index i in the sorted run t[a:b] with t[i] > x (strict) or t[i] >= x (else); b if
    none. Searched outwards from `hint` (the previous answer; queries come mostly in increasing
    time), then by bisection, so a run of increasing queries costs a few steps each."""
    lo, hi = a, b
    if a <= hint <= b:
        step = 1
        if hint < b and (t[hint] <= x if strict else t[hint] < x):  # the answer lies after hint
            lo = hint + 1
            while True:
                probe = hint + step
                if probe >= b:
                    break
                if t[probe] <= x if strict else t[probe] < x:
                    lo = probe + 1
                    step *= 2
                else:
                    hi = probe
                    break
        else:  # the answer is hint or before it
            hi = hint
            while True:
                probe = hint - step
                if probe < a:
                    break
                if t[probe] <= x if strict else t[probe] < x:
                    lo = probe + 1
                    break
                hi = probe
                step *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if t[mid] <= x if strict else t[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _neighbours(t, lo, hi, tq):  # pragma: no cover - compiled
    """Per query k, within the sorted run t[lo[k]:hi[k]]: the last index with t <= tq[k] and the
    first index with t >= tq[k] (-1 when there is none, the run is empty or tq[k] is NaN)."""
    m = tq.shape[0]
    before = np.full(m, -1, dtype=np.int64)
    after = np.full(m, -1, dtype=np.int64)
    hint_lo, hint_hi = -1, -1  # the last query's answers, reused within the same run
    for k in range(m):
        a, b, x = lo[k], hi[k], tq[k]
        if a < 0 or a >= b or np.isnan(x):
            continue
        same_run = a == hint_lo
        first_ge = _first_index(t, a, b, x, False, hint_hi if same_run else -1)
        if first_ge < b:
            after[k] = first_ge
        first_gt = _first_index(t, a, b, x, True, first_ge)
        if first_gt > a:
            before[k] = first_gt - 1
        hint_lo, hint_hi = a, first_ge
    return before, after


@numba.njit(cache=True)
def _window_kernel(
    t, p, p_rate, pitch_rate, acc_norm, start, stop, ic, heel_off, toe_off, fraction, impact_s, eps
):  # pragma: no cover - compiled
    """Per stride over its samples [start, stop): max pronation and its (first) time, max pronation
    rate up to that time, peak plantarflexion rate in push-off, peak |acc|; NaN when empty.

    The comparisons are written as `_window_extrema_reference` states them (same float operations)."""
    m = start.shape[0]
    out = np.full((m, 5), np.nan)
    for k in range(m):
        lo_ic = ic[k] - eps
        hi_p = ic[k] + fraction * (toe_off[k] - ic[k]) + eps
        lo_push = heel_off[k] - eps
        hi_push = toe_off[k] + eps
        hi_impact = ic[k] + impact_s + eps
        p_max = np.nan
        t_max = np.nan
        push = np.nan
        impact = np.nan
        # NaN (a null in the table) never wins a maximum, as polars ignores nulls.
        for i in range(start[k], stop[k]):
            ti = t[i]
            v = p[i]
            if ti >= lo_ic and ti <= hi_p and v == v and not (v <= p_max):
                p_max = v
                t_max = ti
            v = -pitch_rate[i]
            if ti >= lo_push and ti <= hi_push and v == v and not (v <= push):
                push = v
            v = acc_norm[i]
            if ti >= lo_ic and ti <= hi_impact and v == v and not (v <= impact):
                impact = v
        v_max = np.nan
        hi_v = t_max + eps
        for i in range(start[k], stop[k]):
            ti = t[i]
            v = p_rate[i]
            if ti >= lo_ic and ti <= hi_v and v == v and not (v <= v_max):
                v_max = v
        out[k, 0] = p_max
        out[k, 1] = t_max
        out[k, 2] = v_max
        out[k, 3] = push
        out[k, 4] = impact
    return out


_LO = "_sig_lo"
_HI = "_sig_hi"
_RUN = "_sig_run"


def key_runs(frame: pl.DataFrame, lo: str = "lo", hi: str = "hi") -> pl.DataFrame:
    """One row per run of consecutive rows with equal (athlete, session, foot), in row order:
    the keys and the run's [lo, hi) row range. A key appears once when its rows are contiguous."""
    n = frame.height
    if n == 0:
        return pl.DataFrame(schema={**{k: frame.schema[k] for k in KEYS}, lo: pl.Int64, hi: pl.Int64})
    keys = [frame.get_column(k) for k in KEYS]
    if all(c[0] == c[-1] for c in keys) and all(c.n_unique() == 1 for c in keys):
        # One foot (the live analyzer's windows): no Polars query for a per-row comparison.
        starts = np.zeros(1, dtype=np.int64)
        first = pl.DataFrame([c.slice(0, 1) for c in keys])
    else:
        change = frame.select(
            pl.any_horizontal(*[pl.col(k).ne_missing(pl.col(k).shift(1)) for k in KEYS]).alias("_c")
        ).to_series()
        starts = np.flatnonzero(change.to_numpy())
        if starts.size == 0 or starts[0] != 0:
            starts = np.concatenate([[0], starts])
        first = pl.DataFrame(keys)[starts]
    return first.hstack(
        [
            pl.Series(lo, starts, dtype=pl.Int64),
            pl.Series(hi, np.append(starts[1:], n), dtype=pl.Int64),
        ]
    )


def _null_mask(column: pl.Series) -> np.ndarray:
    """True where `column` is null (NaN is not null); a Polars operation only if there are nulls."""
    if column.null_count() == 0:
        return np.zeros(column.len(), dtype=bool)
    return column.is_null().to_numpy()


class _IndexedSignals:
    """Signals in (keys, time) order, with each athlete-session-foot's [lo, hi) row range.

    Built once per `estimate`; point values and windows are then index arithmetic on its columns
    (binary search within a foot's rows) instead of as-of joins.
    """

    def __init__(self, signals: pl.DataFrame):
        frame = signals
        runs = self._runs(frame)
        if not self._ordered(frame, runs):
            frame = frame.sort(*KEYS, T, maintain_order=True)
            runs = self._runs(frame)
        self.frame: pl.DataFrame | None = frame
        self.runs = runs
        self.one_key: tuple[str, ...] | None = None
        self.t = frame.get_column(T).cast(pl.Float64).to_numpy() if frame.height else np.zeros(0)
        self._columns: dict[str, np.ndarray] = {}

    @classmethod
    def of_arrays(cls, keys: tuple[str, str, str], arrays: dict[str, np.ndarray]) -> _IndexedSignals:
        """One foot's signals as numpy columns (`analytics.signals.signal_arrays`: float64 with NaN
        for null, the zero-velocity flag bool), without a table: the live analyzer's windows.
        Rows out of time order are put in order (stably, as the table's sort does)."""
        t = np.asarray(arrays[T], dtype=float)
        order = None
        if t.size > 1 and not bool(np.all(np.diff(t) > 0)):
            order = np.argsort(t, kind="stable")
        self = cls.__new__(cls)
        self.frame = None
        self.one_key = tuple(keys)
        self.runs = None
        self.t = t if order is None else t[order]
        self._columns = {
            name: (values if order is None else values[order]) for name, values in arrays.items() if name != T
        }
        self._columns[T] = self.t
        return self

    @staticmethod
    def _runs(frame: pl.DataFrame) -> pl.DataFrame:
        """KEYS with `_sig_lo`, `_sig_hi` of every run of equal keys, in row order."""
        return key_runs(frame, _LO, _HI)

    @staticmethod
    def _ordered(frame: pl.DataFrame, runs: pl.DataFrame) -> bool:
        """Each key appears in one run and time increases within it."""
        if runs.height > 1 and runs.select(pl.struct(KEYS).is_duplicated().any()).item():
            return False
        t = frame.get_column(T).to_numpy()
        if t.size < 2:
            return True
        rising = np.diff(t) > 0
        rising[runs.get_column(_LO).to_numpy()[1:] - 1] = True  # a new run may restart the clock
        return bool(rising.all())

    def flags(self, name: str) -> np.ndarray:
        """A boolean column as numpy (null -> False)."""
        if self.frame is None:
            return self._columns[name]
        column = self.frame.get_column(name)
        return (column.fill_null(False) if column.null_count() else column).to_numpy()

    def column(self, name: str) -> np.ndarray:
        """A float column as numpy (null -> NaN), cached."""
        if name not in self._columns:
            self._columns[name] = (
                self.frame.get_column(name).cast(pl.Float64).to_numpy().astype(float, copy=False)
            )
        return self._columns[name]

    def bounds(self, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of `rows`: [lo, hi) signal row range of its athlete-session-foot and the number
        of that run in `runs` (-1, -1, -1 when absent; null keys match nothing, as in a join)."""
        m = rows.height
        if self.one_key is not None:
            # One foot as arrays (the live analyzer's windows): compare the keys directly.
            if not self.t.size:
                none = np.full(m, -1, dtype=np.int64)
                return none.copy(), none.copy(), none
            match = np.ones(m, dtype=bool)
            for k, value in zip(KEYS, self.one_key, strict=True):
                column = rows.get_column(k)
                if m and column.null_count() == 0 and column.min() == column.max():
                    # one value throughout (the windows' case): no object array per key
                    match &= column.min() == value
                else:
                    match &= column.to_numpy() == value
            run = np.where(match, 0, -1).astype(np.int64)
            lo = np.where(run >= 0, 0, -1).astype(np.int64)
            return lo, np.where(run >= 0, self.t.size, -1).astype(np.int64), run
        runs = self.runs
        same_types = all(rows.schema[k] == runs.schema[k] == pl.String for k in KEYS)
        if runs.height == 1 and same_types:
            # One foot in the signals (the live analyzer's case): compare the keys directly.
            match = np.ones(m, dtype=bool)
            for k in KEYS:
                value = runs.get_column(k)[0]
                if value is None:
                    match[:] = False
                else:
                    match &= rows.get_column(k).to_numpy() == value
            run = np.where(match, 0, -1).astype(np.int64)
        elif runs.height == 0:
            run = np.full(m, -1, dtype=np.int64)
        else:
            numbered = runs.select(KEYS).hstack([pl.Series(_RUN, np.arange(runs.height), dtype=pl.Int64)])
            found = (
                rows.lazy()
                .select(KEYS)
                .join(numbered.lazy(), on=list(KEYS), how="left", maintain_order="left")
                .collect()
            )
            run = found.get_column(_RUN).fill_null(-1).to_numpy().astype(np.int64)
        if runs.height == 0:
            return run.copy(), run.copy(), run
        found_lo = runs.get_column(_LO).to_numpy().astype(np.int64)
        found_hi = runs.get_column(_HI).to_numpy().astype(np.int64)
        lo = np.where(run >= 0, found_lo[np.maximum(run, 0)], -1)
        hi = np.where(run >= 0, found_hi[np.maximum(run, 0)], -1)
        return lo, hi, run


def _interpolate(
    index: _IndexedSignals,
    lo: np.ndarray,
    hi: np.ndarray,
    tq: np.ndarray,
    columns: list[str] | tuple[str, ...],
    max_gap_s: float,
) -> list[np.ndarray]:
    """Columns linearly interpolated at the query times tq; NaN where `values_at` says null."""
    if index.t.size == 0:
        return [np.full(tq.size, np.nan) for _ in columns]
    return _interpolate_with(index, _interpolation(index.t, lo, hi, tq, max_gap_s), columns)


def _interpolation(
    t: np.ndarray, lo: np.ndarray, hi: np.ndarray, tq: np.ndarray, max_gap_s: float
) -> tuple[np.ndarray, ...]:
    """`_interpolate`'s neighbours (before, after), weights and `near` of each query time (t not
    empty); each query's own, whatever else is asked with it."""
    return _interpolation_kernel(
        t,
        np.asarray(lo, dtype=np.int64),
        np.asarray(hi, dtype=np.int64),
        np.asarray(tq, dtype=float),
        max_gap_s + _EPS_S,
    )


@numba.njit(cache=True)
def _interpolation_kernel(t, lo, hi, tq, limit):  # pragma: no cover - compiled
    """`_interpolation` in one pass (the numpy statement's operations: a query costs ~10 numpy
    calls on a few rows otherwise)."""
    before, after = _neighbours(t, lo, hi, tq)
    m = tq.shape[0]
    b = np.zeros(m, dtype=np.int64)
    a = np.zeros(m, dtype=np.int64)
    w = np.zeros(m)
    near = np.zeros(m, dtype=np.bool_)
    for k in range(m):
        found = before[k] >= 0 and after[k] >= 0
        if found:
            b[k], a[k] = before[k], after[k]
        t0, t1 = t[b[k]], t[a[k]]
        span = t1 - t0
        # Weight of the later neighbour; on an exact sample time both neighbours are that sample.
        if span > 0:
            w[k] = (tq[k] - t0) / span
        near[k] = found and (tq[k] - t0) <= limit and (t1 - tq[k]) <= limit
    return b, a, w, near


@numba.njit(cache=True)
def _lerp(x, b, a, w, near):  # pragma: no cover - compiled
    """x linearly interpolated between rows b and a with weights w of a, NaN where not `near`
    (`np.where(near, v0 + w * (v1 - v0), nan)`)."""
    out = np.empty(b.shape[0])
    for k in range(b.shape[0]):
        if near[k]:
            v0 = x[b[k]]
            out[k] = v0 + w[k] * (x[a[k]] - v0)
        else:
            out[k] = np.nan
    return out


def _interpolate_with(
    index: _IndexedSignals, weights: tuple[np.ndarray, ...], columns: list[str] | tuple[str, ...]
) -> list[np.ndarray]:
    b, a, w, near = weights
    return [_lerp(index.column(c), b, a, w, near) for c in columns]


def _query_times(queries: pl.DataFrame, time_column: str) -> np.ndarray:
    column = queries.get_column(time_column)
    if column.dtype != pl.Float64:
        column = column.cast(pl.Float64)
    return column.to_numpy().astype(float, copy=False)


def values_at(
    signals: pl.DataFrame,
    queries: pl.DataFrame,
    time_column: str,
    columns: tuple[str, ...] | list[str],
    *,
    suffix: str,
    max_gap_s: float = 0.05,
) -> pl.DataFrame:
    """`queries` with `columns` of `signals` linearly interpolated at `queries[time_column]`.

    Matching is per (athlete, session, foot). The new columns are named `<column><suffix>`; a value
    is null where the query time is null, before the first or after the last sample, or further than
    `max_gap_s` from a neighbouring sample.
    """
    index = _IndexedSignals(signals.select(*KEYS, T, *columns))
    lo, hi, _ = index.bounds(queries)
    values = _interpolate(index, lo, hi, _query_times(queries, time_column), columns, max_gap_s)
    return queries.with_columns(
        pl.Series(f"{c}{suffix}", v, dtype=pl.Float64, nan_to_null=True)
        for c, v in zip(columns, values, strict=True)
    )


@dataclass(frozen=True)
class _Strides:
    """The events table's columns as numpy, per row: event times in s (null -> NaN), which of them
    are null, and each row's signal rows [lo, hi) and run number (-1 when its foot has none)."""

    times: dict[str, np.ndarray]
    null: dict[str, np.ndarray]
    lo: np.ndarray
    hi: np.ndarray
    run: np.ndarray

    @classmethod
    def of(cls, events: pl.DataFrame, index: _IndexedSignals) -> _Strides:
        lo, hi, run = index.bounds(events)
        return cls(
            times={c: _query_times(events, c) for c in EVENT_TIMES},
            null={c: _null_mask(events.get_column(c)) for c in EVENT_TIMES},
            lo=lo,
            hi=hi,
            run=run,
        )

    def following(self, order: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per row of `order`: `values` of the next row of `order` if it is the same foot, else NaN
        (what `shift(-1).over(KEYS)` gives after sorting by foot; NaN for rows of no foot)."""
        out = np.full(order.size, np.nan)
        if order.size > 1:
            run = self.run[order]
            same = (run[1:] == run[:-1]) & (run[:-1] >= 0)
            out[:-1] = np.where(same, values[order[1:]], np.nan)
        return out


def _window_extrema(
    index: _IndexedSignals, strides: _Strides, settings: MetricSettings, wanted: np.ndarray | None = None
) -> list[np.ndarray]:
    """Per stride (in `strides` order): max pronation and its time, peak pronation velocity, push-off
    rate, impact (NaN when undefined). `wanted` (bool per stride): the filtered velocity and the
    censoring only of these (the others' are NaN; the rest is vectorised, the low-pass per stride).

    Each sample belongs to the stride whose IC is the latest at or before it (tolerating the
    rounding of event times), and only while it lies before that stride's next IC.
    """
    ic_all = strides.times[IC_T]
    result = np.full((ic_all.size, 6), np.nan)
    # Strides with an IC, by foot and IC (stable; NaN last as Polars sorts it); the foot order
    # itself does not matter, only which stride follows which.
    rows = np.flatnonzero(~strides.null[IC_T])
    rows = rows[np.lexsort((ic_all[rows], strides.run[rows]))]
    if rows.size and index.t.size:
        t = index.t
        t_join = t + _EPS_S
        lo, hi = strides.lo[rows], strides.hi[rows]
        ic = ic_all[rows]
        following = strides.following(rows, ic_all)
        next_ic = strides.times[NEXT_IC_T][rows]
        # First sample of the stride, first of the following stride, first at or after next IC.
        start = _neighbours(t_join, lo, hi, ic)[1]
        start = np.where(start < 0, hi, start)
        stop_following = _neighbours(t_join, lo, hi, following)[1]
        stop_following = np.where((stop_following < 0) | np.isnan(following), hi, stop_following)
        stop_next = _neighbours(t, lo, hi, next_ic - _EPS_S)[1]
        stop_next = np.where(stop_next < 0, hi, stop_next)
        stop_next = np.where(np.isnan(next_ic), start, stop_next)
        stop = np.maximum(np.minimum(stop_following, stop_next), start)
        result[rows, :5] = _window_kernel(
            t,
            index.column(PRONATION_DEG),
            index.column(PRONATION_RATE_DPS),
            index.column(PITCH_RATE_DPS),
            index.column(ACC_NORM_G),
            np.where(lo < 0, 0, start).astype(np.int64),
            np.where(lo < 0, 0, stop).astype(np.int64),
            ic,
            strides.times[HEEL_OFF_T][rows],
            strides.times[TOE_OFF_T][rows],
            float(settings.pronation_window_stance_fraction),
            float(settings.impact_window_s),
            _EPS_S,
        )
        p_rate = index.column(PRONATION_RATE_DPS)
        start_rows = np.where(lo < 0, 0, start).astype(np.int64)
        stop_rows = np.where(lo < 0, 0, stop).astype(np.int64)
        velocity, censored = _filtered_velocity_and_censoring(
            t,
            p_rate,
            np.maximum(lo, 0),
            start_rows,
            stop_rows,
            ic,
            strides.times[TOE_OFF_T][rows],
            result[rows, 1],
            settings,
            None if wanted is None else wanted[rows],
        )
        if settings.pronation_velocity_cutoff_hz is not None:
            result[rows, 2] = velocity
        result[rows, 5] = censored
    return [result[:, i] for i in range(6)]


def _filtered_velocity_and_censoring(
    t: np.ndarray,
    p_rate: np.ndarray,
    run_lo: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    ic: np.ndarray,
    toe_off: np.ndarray,
    t_max_p: np.ndarray,
    settings: MetricSettings,
    wanted: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per stride: the peak of the low-passed pronation rate in [IC, time of max pronation] (NaN
    when undefined) and whether max pronation sits at its window's end (1.0, 0.0, NaN unknown).

    scipy filters each stride's own samples (from `pronation_velocity_lead_s` before IC to the
    stride's end), so a stride's value does not depend on what else is in the table (the live
    analyzer's windows give the batch's numbers); one call per stride, tens of microseconds each.
    """
    m = start.size
    velocity = np.full(m, np.nan)
    censored = np.full(m, np.nan)
    fraction = settings.pronation_window_stance_fraction
    for k in range(m):
        a, b, tm = int(start[k]), int(stop[k]), t_max_p[k]
        if b <= a or not np.isfinite(tm) or (wanted is not None and not wanted[k]):
            continue
        window_end = ic[k] + fraction * (toe_off[k] - ic[k]) + _EPS_S
        last = a + int(np.searchsorted(t[a:b], window_end, side="right")) - 1
        peak = a + int(np.searchsorted(t[a:b], tm + _EPS_S, side="right"))  # one past max pronation
        censored[k] = float(last >= a and peak - 1 >= last - settings.censored_tolerance_samples)
        if settings.pronation_velocity_cutoff_hz is None:
            continue
        if b - a < 2:
            continue
        fs = 1.0 / _median_step(t, a, b)
        lead = max(int(run_lo[k]), a - int(round(settings.pronation_velocity_lead_s * fs)))
        rate = p_rate[lead:b]
        finite = np.isfinite(rate)
        if not finite[a - lead : peak - lead].any():
            continue
        if not finite.all():  # the rate is null only where pitch passes 80 deg (gimbal lock)
            idx = np.arange(rate.size)
            rate = np.interp(idx, idx[finite], rate[finite])
        cutoff = settings.pronation_velocity_cutoff_hz
        sos, zi, pad = _butter_sos(settings.pronation_velocity_order, min(cutoff, 0.4 * fs), fs)
        if rate.size <= pad:
            velocity[k] = float(np.max(rate[a - lead : peak - lead]))
            continue
        smooth = zero_phase_filter(sos, zi, pad, rate)
        velocity[k] = float(np.max(smooth[a - lead : peak - lead]))
    return velocity, censored


@numba.njit(cache=True)
def _median_step(t, a, b):  # pragma: no cover - compiled
    """`np.median(np.diff(t[a:b]))` (b - a >= 2; no NaN): the middle step, or the mean of the two
    middle ones as numpy takes it ((x + y) / 2)."""
    d = np.sort(t[a + 1 : b] - t[a : b - 1])
    h = d.shape[0] // 2
    return d[h] if d.shape[0] % 2 else (d[h - 1] + d[h]) / 2.0


@lru_cache(maxsize=32)
def _butter_sos(order: int, cutoff_hz: float, fs: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Second-order sections of a Butterworth low-pass (scipy), their steady-state initial
    conditions (`scipy.signal.sosfilt_zi`) and the edge padding `scipy.signal.sosfiltfilt` uses
    (samples); cached per rate."""
    sos = butter(order, cutoff_hz, fs=fs, output="sos")
    taps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return sos, sosfilt_zi(sos), 3 * taps


def zero_phase_filter(sos: np.ndarray, zi: np.ndarray, pad: int, x: np.ndarray) -> np.ndarray:
    """`scipy.signal.sosfiltfilt(sos, x)` of a 1-D x (len(x) > pad), step for step, with the
    initial conditions `zi` = `sosfilt_zi(sos)` given: scipy solves for them at every call, which
    was half the cost of a stride's filtered velocity (the live analyzer filters per stride).

    Odd extension by `pad` samples at both ends, forward pass from the steady state scaled by
    the first sample, backward pass likewise, extension cut off."""
    ext = np.concatenate((2 * x[:1] - x[pad:0:-1], x, 2 * x[-1:] - x[-2 : -(pad + 2) : -1]))
    return _forward_backward(sos, zi, ext)[pad:-pad]


@numba.njit(cache=True)
def _sos_pass(sos, zi, x, out, backward):  # pragma: no cover - compiled
    """`scipy.signal.sosfilt(sos, x, zi=zi * x[0])` into out (x and out read and written from the
    end when `backward`): scipy's direct form II transposed, its operations in its order."""
    n = x.shape[0]
    m = sos.shape[0]
    first = n - 1 if backward else 0
    z = np.empty((m, 2))
    for s in range(m):
        z[s, 0] = zi[s, 0] * x[first]
        z[s, 1] = zi[s, 1] * x[first]
    for k in range(n):
        i = n - 1 - k if backward else k
        cur = x[i]
        for s in range(m):
            new = sos[s, 0] * cur + z[s, 0]
            z[s, 0] = sos[s, 1] * cur - sos[s, 4] * new + z[s, 1]
            z[s, 1] = sos[s, 2] * cur - sos[s, 5] * new
            cur = new
        out[i] = cur


@numba.njit(cache=True)
def _forward_backward(sos, zi, x):  # pragma: no cover - compiled
    """The forward pass from the steady state scaled by the first sample, then the backward pass
    likewise from the last (`zero_phase_filter`'s two `sosfilt` calls: scipy's checks and axis
    moves cost ten times the filtering on a stride's samples)."""
    forward = np.empty(x.shape[0])
    _sos_pass(sos, zi, x, forward, False)
    out = np.empty(x.shape[0])
    _sos_pass(sos, zi, forward, out, True)
    return out


def _next_foot_flat(index: _IndexedSignals, strides: _Strides, settings: MetricSettings) -> np.ndarray:
    """Time of the foot-flat that ends each stride (s, NaN when none), in `strides` order: the
    following stride's foot-flat when it starts at this stride's next IC, else the first still
    sample at most `max_next_foot_flat_s` after next IC."""
    ic_all, ff_all = strides.times[IC_T], strides.times[FOOT_FLAT_T]
    # By foot, then IC with nulls first and NaN last (Polars' order), stable.
    rows = np.lexsort((ic_all, ~strides.null[IC_T], strides.run))
    following_ic = strides.following(rows, ic_all)
    following_ff = strides.following(rows, ff_all)
    has_following_ff = ~np.isnan(strides.following(rows, np.where(strides.null[FOOT_FLAT_T], np.nan, 0.0)))
    nic = strides.times[NEXT_IC_T][rows]
    still_t = np.full(rows.size, np.nan)
    if index.t.size and rows.size:
        zv = index.flags(ZERO_VELOCITY)
        t_still = index.t[zv]
        # Row ranges of each foot inside the still samples.
        before = np.concatenate([[0], np.cumsum(zv)])
        lo, hi = strides.lo[rows], strides.hi[rows]
        s_lo = np.where(lo < 0, -1, before[np.maximum(lo, 0)])
        s_hi = np.where(lo < 0, -1, before[np.maximum(hi, 0)])
        first = _neighbours(t_still, s_lo, s_hi, nic)[1]
        ok = first >= 0
        found = np.where(ok, t_still[np.where(ok, first, 0)] if t_still.size else np.nan, np.nan)
        still_t = np.where(ok & (found - nic <= settings.max_next_foot_flat_s), found, np.nan)
    with np.errstate(invalid="ignore"):
        chained = np.abs(following_ic - nic) <= _EPS_S * 4
    out = np.full(ic_all.size, np.nan)
    out[rows] = np.where(chained & has_following_ff, following_ff, still_t)
    return out


_EXTREMA = ("_p_max", "_t_max_p", "_v_max", "_push_off", "_impact", "_censored")


def _series(name: str, values: np.ndarray) -> pl.Series:
    """A Float64 column whose NaN (undefined) are nulls."""
    return pl.Series(name, values, dtype=pl.Float64, nan_to_null=True)


def _cast_columns(frame: pl.DataFrame, dtypes: dict[str, pl.DataType | None]) -> pl.DataFrame:
    """`frame`'s columns in `dtypes` order, each cast to its dtype (None: as it is), built column by
    column (no Polars query: on the live analyzer's tables of a few rows the per-query overhead
    is the whole cost)."""
    columns = []
    for name, dtype in dtypes.items():
        column = frame.get_column(name)
        columns.append(column if dtype is None or column.dtype == dtype else column.cast(dtype))
    return pl.DataFrame(columns)


def _one_value(column: pl.Series) -> bool:
    """Every value of `column` is the same (or null throughout): `n_unique() <= 1` without the Polars
    query `n_unique` runs (most of the check's cost on the live analyzer's few rows)."""
    if column.len() <= 1:
        return True
    nulls = column.null_count()
    if nulls:
        return nulls == column.len()
    # equal smallest and largest value (aggregations, no query: ~0.5 us against ~9 us for `==`)
    return column.min() == column.max()


def _in_key_time_order(events: pl.DataFrame, strides: _Strides) -> bool:
    """Rows already sorted by (keys, IC) with no ties: one foot, IC strictly increasing, no null."""
    ic = strides.times[IC_T]
    if strides.null[IC_T].any() or not all(_one_value(events.get_column(k)) for k in KEYS):
        return False
    return ic.size < 2 or bool(np.all(np.diff(ic) > 0))


@lru_cache(maxsize=8)
def _definitions(s: MetricSettings, names: tuple[str, ...]) -> tuple[tuple[pl.Expr, ...], ...]:
    """The `with_columns` steps of `StrideMetrics.estimate`'s query for a table with these column
    names: the metric definitions, then `finish_strides`. Built once per settings: the live
    analyzer runs the query on a few rows per stride, where building the expressions cost as
    much as running them."""
    ic, ff, to, nic = (pl.col(c) for c in (IC_T, FOOT_FLAT_T, TOE_OFF_T, NEXT_IC_T))
    stride_time = nic - ic
    stance = to - ic
    dx = pl.col(f"{POS[0]}_next_ff") - pl.col(f"{POS[0]}_ff")
    dy = pl.col(f"{POS[1]}_next_ff") - pl.col(f"{POS[1]}_ff")
    strike_angle = pl.col(f"{PITCH_DEG}_before_ic") - pl.col(f"{PITCH_DEG}_ff")
    # toe-out: shoe heading at foot-flat minus the direction of this stride's displacement,
    # wrapped to (-180, 180], positive outward: +yaw on the left foot, -yaw on the right
    off_axis = pl.col(f"{HEADING_DEG}_ff").radians() - pl.arctan2(dy, dx)
    outward = pl.when(pl.col(FOOT) == "left").then(1.0).when(pl.col(FOOT) == "right").then(-1.0)
    toe_out = outward * pl.arctan2(off_axis.sin(), off_axis.cos()).degrees()
    # A stride the detector called valid stays valid only if every metric could be computed (on the
    # gait start, those that do not read its ic_t, which is no contact: the others become null).
    gait_start = (pl.col(CONTEXT) == CONTEXT_GAIT_START).fill_null(False)
    checked = [m for m in METRICS if m not in (STRIDE_LENGTH_M, SPEED_MPS, FOOT_PROGRESSION_ANGLE_DEG)]
    missing_angle = pl.any_horizontal(
        *[pl.col(m).is_null() | pl.col(m).is_nan() for m in checked if m not in NEEDS_IC]
    ) | (
        ~gait_start
        & pl.any_horizontal(*[pl.col(m).is_null() | pl.col(m).is_nan() for m in checked if m in NEEDS_IC])
    )
    missing_length = pl.col(STRIDE_LENGTH_M).is_null() | pl.col(STRIDE_LENGTH_M).is_nan()
    new_reason = (
        pl.when(missing_angle)
        .then(pl.lit(REASON_NO_SIGNAL))
        .when(missing_length)
        .then(pl.lit(REASON_NO_NEXT_FOOT_FLAT))
        .otherwise(None)
    )
    metrics = (
        stride_time.alias(STRIDE_TIME_S),
        stance.alias(STANCE_TIME_S),
        (nic - to).alias(SWING_TIME_S),
        (120.0 / stride_time).alias(CADENCE_SPM),
        (dx.pow(2) + dy.pow(2)).sqrt().alias(STRIDE_LENGTH_M),
        strike_angle.alias(FOOT_STRIKE_ANGLE_DEG),
        (pl.col("_p_max") - pl.col(f"{PRONATION_DEG}_ic")).alias(PRONATION_EXCURSION_DEG),
        pl.col("_v_max").alias(MAX_PRONATION_VELOCITY_DPS),
        (pl.col("_t_max_p") - ic).alias(TIME_TO_MAX_PRONATION_S),
        (pl.col(f"{PRONATION_DEG}_to") - pl.col(f"{PRONATION_DEG}_ff")).alias(TOE_OFF_PRONATION_DEG),
        (pl.col(f"{PITCH_DEG}_ff") - pl.col(f"{PITCH_DEG}_to")).alias(TOE_OFF_ANGLE_DEG),
        pl.col("_push_off").alias(PUSH_OFF_RATE_DPS),
        ((pl.col(HEEL_OFF_T) - ic) / stance).alias(HEEL_OFF_RATIO),
        pl.col("_impact").alias(IMPACT_G),
        (stance / stride_time).alias(DUTY_FACTOR),
        toe_out.alias(FOOT_PROGRESSION_ANGLE_DEG),
    )
    derived = (
        (pl.col(STRIDE_LENGTH_M) / pl.col(STRIDE_TIME_S)).alias(SPEED_MPS),
        strike_type_expr(pl.col(FOOT_STRIKE_ANGLE_DEG), s).alias(STRIKE_TYPE),
    )
    # computed once into a scratch column, read twice (the final select drops it)
    new = pl.col("_new_reason")
    validity = (
        pl.when(pl.col(VALID) & new.is_not_null()).then(new).otherwise(pl.col(REASON)).alias(REASON),
        (pl.col(VALID) & new.is_null()).alias(VALID),
    )
    # the gait start's metrics that read its ic_t (module docstring of analytics.events)
    not_measured = tuple(
        pl.when(gait_start).then(None).otherwise(pl.col(m)).alias(m) for m in (*NEEDS_IC, "_censored")
    )
    stages = (metrics, derived, (new_reason.alias("_new_reason"),), validity, not_measured)
    after = list(names)
    for stage in stages:
        after += [n for n in (e.meta.output_name() for e in stage) if n not in after]
    return (*stages, *finish_strides_stages(tuple(after)), (steady_expr().alias(STEADY),))


_FINAL_SELECT = (
    *[pl.col(c).cast(dtype) for c, dtype in STRIDES_SCHEMA.items()],
    pl.when(pl.col("_censored").is_not_nan())
    .then(pl.col("_censored") > 0.5)
    .alias(PRONATION_EXCURSION_CENSORED),
)
# Events tables without these (hand-made ones) get them as nulls: no heading known, no context.
_OPTIONAL_EVENT_COLUMNS = {HEADING_CHANGE_DEG: pl.Float64, CONTEXT: pl.String}


class StrideMetrics:
    """Every metric column of the `strides` table from stride events and per-sample signals.

    Parameters
    ----------
    settings
        `MetricSettings` (windows in s or stance fractions, strike limits in deg, low-pass in Hz).

    Attributes
    ----------
    strides_ : pl.DataFrame
        STRIDES_SCHEMA columns in that order (units in the names: s, m, deg, deg/s, g), then
        `pronation_excursion_censored`; sorted by keys and IC.

    Notes
    -----
    The metric definitions are DESIGN.md's. Stride length from the zero-velocity-aided position
    between consecutive foot-flats is the usual foot-worn IMU approach (e.g. Mariani et al. 2010,
    J. Biomech.); the strike type from the foot-strike angle follows Altman & Davis (2012, Gait
    Posture); the low-pass of the pronation rate is discussed at `MetricSettings`.
    """

    def __init__(self, settings: MetricSettings = MetricSettings()):
        self.settings = settings

    def estimate(self, events: pl.DataFrame, signals: pl.DataFrame) -> StrideMetrics:
        """Compute `strides_` from `events` (events table, times in s) and `signals` (SIGNALS_SCHEMA)."""
        self.strides_ = evaluate_prepared([self.prepare(events, signals)], self.settings)[0]
        return self

    def prepare(self, events: pl.DataFrame, signals: pl.DataFrame) -> PreparedStrides:
        """The numpy half of `estimate`: the events with every point value and window extremum the
        definitions read. `evaluate_prepared` runs the definitions' Polars query on many of these at
        once (the live service batches the strides of all streams due together: on a few rows the
        query's fixed cost is the whole cost)."""
        index = _IndexedSignals(
            _cast_columns(
                signals,
                {
                    **dict.fromkeys(KEYS, pl.String),
                    **dict.fromkeys((T, PITCH_DEG, PRONATION_DEG, *POS[:2], PRONATION_RATE_DPS, HEADING_DEG)),
                    **dict.fromkeys((PITCH_RATE_DPS, ACC_NORM_G, ZERO_VELOCITY)),
                },
            )
        )
        return self._prepare(events, index)

    def prepare_arrays(
        self,
        events: pl.DataFrame,
        keys: tuple[str, str, str],
        arrays: dict[str, np.ndarray],
        rows: np.ndarray | None = None,
    ) -> PreparedStrides:
        """`prepare` on one foot's signals given as numpy columns (`analytics.signals.signal_arrays`
        of the foot `keys` = (athlete, session, foot)) instead of a signals table: the same result,
        without building and reading back the table (the live analyzer, per window).

        `rows` (increasing row numbers of `events`): prepare only these rows, with the values they
        have in the whole table (a stride's metrics read the stride after it)."""
        return self._prepare(events, _IndexedSignals.of_arrays(keys, arrays), rows)

    def _prepare(
        self, events: pl.DataFrame, index: _IndexedSignals, rows: np.ndarray | None = None
    ) -> PreparedStrides:
        missing = [c for c in _OPTIONAL_EVENT_COLUMNS if c not in events.columns]
        if missing:
            events = events.with_columns(
                pl.lit(None, dtype=_OPTIONAL_EVENT_COLUMNS[c]).alias(c) for c in missing
            )
        events = _cast_columns(
            events,
            {
                **dict.fromkeys(KEYS, pl.String),
                STRIDE_INDEX: pl.Int64,
                **dict.fromkeys(EVENT_TIMES, pl.Float64),
                VALID: pl.Boolean,
                REASON: pl.String,
                **_OPTIONAL_EVENT_COLUMNS,
            },
        )
        rows, wanted = _checked_rows(rows, events.height)
        strides = _Strides.of(events, index)
        values = self._values(index, strides, wanted)
        in_order = _in_key_time_order(events, strides)  # then so is any increasing subset
        if rows is not None and rows.size < events.height:
            contiguous = rows.size and rows[-1] - rows[0] == rows.size - 1
            events = events.slice(int(rows[0]), rows.size) if contiguous else events[rows]
            values = {name: v[rows] for name, v in values.items()}
        return PreparedStrides(events, values, in_order)

    def prepare_columns(
        self,
        events: EventColumns,
        keys: tuple[str, str, str],
        arrays: dict[str, np.ndarray],
        rows: np.ndarray | None = None,
    ) -> PreparedStrides:
        """`prepare_arrays` of the keys' events given as the detector's columns
        (`analytics.events.EventColumns`) instead of a table: the same result; the one table
        built is that of the prepared rows (the live analyzer, per window)."""
        m = events.height
        rows, wanted = _checked_rows(rows, m)
        # the live windows in one compiled pass, else the general path
        values = _one_foot_values(arrays, events, self.settings, wanted)
        if values is None:
            values = self._column_values(events, keys, arrays, wanted)
        ic = np.asarray(events[IC_T], dtype=float)
        in_order = ic.size < 2 or bool(np.all(np.diff(ic) > 0))
        if rows is not None and rows.size < m:
            events = events.rows(rows)
            values = {name: v[rows] for name, v in values.items()}
        return PreparedStrides(PreparedEvents(events, keys), values, in_order)

    def _column_values(
        self,
        events: EventColumns,
        keys: tuple[str, str, str],
        arrays: dict[str, np.ndarray],
        wanted: np.ndarray | None,
    ) -> dict[str, np.ndarray]:
        """`_values` of one foot's event columns on its signal arrays, through the indexed signals."""
        m = events.height
        index = _IndexedSignals.of_arrays(keys, arrays)
        # what `_Strides.of` reads from a table of one foot's events (no null event time)
        inside = index.t.size > 0
        strides = _Strides(
            times={c: np.asarray(events[c], dtype=float) for c in EVENT_TIMES},
            null={c: np.zeros(m, dtype=bool) for c in EVENT_TIMES},
            lo=np.full(m, 0 if inside else -1, dtype=np.int64),
            hi=np.full(m, index.t.size if inside else -1, dtype=np.int64),
            run=np.full(m, 0 if inside else -1, dtype=np.int64),
        )
        return self._values(index, strides, wanted)

    def _values(
        self, index: _IndexedSignals, strides: _Strides, wanted: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Per event row: every point value and window extremum the definitions read (NaN where
        undefined); the filtered velocity only of the `wanted` rows (bool per row; None: all)."""
        s = self.settings
        gap = s.max_interpolation_gap_s
        lo, hi, times = strides.lo, strides.hi, strides.times
        values: dict[str, np.ndarray] = {}

        def at(queries: list[tuple[np.ndarray, str, tuple[str, ...]]]) -> None:
            # every query time's neighbours in one search (each row's own: nothing mixes)
            m = lo.size
            if index.t.size == 0 or m == 0:
                for tq, suffix, columns in queries:
                    found = _interpolate(index, lo, hi, tq, columns, gap)
                    values.update((f"{c}{suffix}", v) for c, v in zip(columns, found, strict=True))
                return
            k = len(queries)
            both = _interpolation(
                index.t, np.tile(lo, k), np.tile(hi, k), np.concatenate([q[0] for q in queries]), gap
            )
            for i, (_, suffix, columns) in enumerate(queries):
                part = tuple(x[i * m : (i + 1) * m] for x in both)
                found = _interpolate_with(index, part, columns)
                values.update((f"{c}{suffix}", v) for c, v in zip(columns, found, strict=True))

        # 1. point values at event times and 2. window extrema, by index arithmetic in numpy;
        extrema = _window_extrema(index, strides, s, wanted)
        at(
            [
                (times[IC_T], "_ic", (PITCH_DEG, PRONATION_DEG)),
                (times[IC_T] - s.strike_lookback_s, "_before_ic", (PITCH_DEG,)),
                (times[FOOT_FLAT_T], "_ff", (PITCH_DEG, PRONATION_DEG, HEADING_DEG, *POS[:2])),
                (times[TOE_OFF_T], "_to", (PITCH_DEG, PRONATION_DEG)),
                (_next_foot_flat(index, strides, s), "_next_ff", tuple(POS[:2])),
            ]
        )
        values.update(zip(_EXTREMA, extrema, strict=True))
        return values


# The point values `StrideMetrics._values` asks for, in its order: (event time or query, suffix,
# signal columns); "before_ic" is IC less `strike_lookback_s`, "next_ff" `_next_foot_flat`.
_POINT_QUERIES = (
    ("ic", "_ic", (PITCH_DEG, PRONATION_DEG)),
    ("before_ic", "_before_ic", (PITCH_DEG,)),
    ("ff", "_ff", (PITCH_DEG, PRONATION_DEG, HEADING_DEG, *POS[:2])),
    ("to", "_to", (PITCH_DEG, PRONATION_DEG)),
    ("next_ff", "_next_ff", tuple(POS[:2])),
)
_POINT_NAMES = tuple(f"{c}{suffix}" for _, suffix, columns in _POINT_QUERIES for c in columns)


@numba.njit(cache=True)
def _lower_bound(t, n, x, shift):  # pragma: no cover - compiled
    """First i < n with t[i] + shift >= x (n if none): `_first_index` on the rising t + shift."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if t[mid] + shift < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _point_value(t, x, column, limit):  # pragma: no cover - compiled
    """`_interpolation_kernel` and `_lerp` of one query time x over the whole rising t (one foot):
    the same neighbours, weight, `near` test and interpolation, NaN where not near."""
    n = t.shape[0]
    if np.isnan(x):
        return np.nan
    after = _lower_bound(t, n, x, 0.0)
    first_gt = after
    while first_gt < n and t[first_gt] <= x:  # rising t: at most the sample equal to x
        first_gt += 1
    if after >= n or first_gt <= 0:
        return np.nan
    b, a = first_gt - 1, after
    t0, t1 = t[b], t[a]
    span = t1 - t0
    w = (x - t0) / span if span > 0 else 0.0
    if not ((x - t0) <= limit and (t1 - x) <= limit):
        return np.nan
    v0 = column[b]
    return v0 + w * (column[a] - v0)


@numba.njit(cache=True)
def _one_foot_kernel(
    t,
    zv,
    pitch,
    pronation,
    heading,
    pos_x,
    pos_y,
    p_rate,
    pitch_rate,
    acc_norm,
    ic_all,
    ff_all,
    heel_off,
    toe_off,
    next_ic,
    fraction,
    impact_s,
    lookback_s,
    limit,
    max_next_ff_s,
    eps,
):  # pragma: no cover - compiled
    """`StrideMetrics._values` of one foot's events (no null event time) on its signals as
    arrays with rising t, but the filtered velocity and the censoring: the strides in IC order
    (stable, NaN last, as `_window_extrema` and `_next_foot_flat` sort them), each stride's
    sample run [start, stop), the window extrema (m, 5) in event row order and the point values
    (12, m) in `_POINT_NAMES` order; the statements' operations in their order."""
    n = t.shape[0]
    m = ic_all.shape[0]
    rows = np.arange(m)
    for i in range(1, m):  # insertion sort: stable, NaN after every number
        r = rows[i]
        v = ic_all[r]
        j = i - 1
        while j >= 0 and (np.isnan(ic_all[rows[j]]) and not np.isnan(v) or ic_all[rows[j]] > v):
            rows[j + 1] = rows[j]
            j -= 1
        rows[j + 1] = r
    following_ic = np.full(m, np.nan)
    following_ff = np.full(m, np.nan)
    for k in range(m - 1):
        following_ic[k] = ic_all[rows[k + 1]]
        following_ff[k] = ff_all[rows[k + 1]]
    # 2. window extrema
    start = np.empty(m, dtype=np.int64)
    stop = np.empty(m, dtype=np.int64)
    ic = np.empty(m)
    for k in range(m):
        r = rows[k]
        x = ic_all[r]
        ic[k] = x
        s0 = n if np.isnan(x) else _lower_bound(t, n, x, eps)
        f = following_ic[k]
        s1 = n if np.isnan(f) else _lower_bound(t, n, f, eps)
        nic = next_ic[r]
        if np.isnan(nic):
            s2 = s0
        else:
            s2 = _lower_bound(t, n, nic - eps, 0.0)
        start[k] = s0
        stop[k] = max(min(s1, s2), s0)
    ho = np.empty(m)
    to = np.empty(m)
    for k in range(m):
        ho[k] = heel_off[rows[k]]
        to[k] = toe_off[rows[k]]
    sorted_extrema = _window_kernel(
        t, pronation, p_rate, pitch_rate, acc_norm, start, stop, ic, ho, to, fraction, impact_s, eps
    )
    extrema = np.empty((m, 5))
    for k in range(m):
        extrema[rows[k]] = sorted_extrema[k]
    # next foot-flat: the following stride's when it starts at next IC, else the first still
    # sample at or after next IC, at most max_next_ff_s later
    n_still = 0
    for i in range(n):
        if zv[i]:
            n_still += 1
    t_still = np.empty(n_still)
    j = 0
    for i in range(n):
        if zv[i]:
            t_still[j] = t[i]
            j += 1
    next_ff = np.empty(m)
    for k in range(m):
        r = rows[k]
        nic = next_ic[r]
        still = np.nan
        if n_still > 0 and not np.isnan(nic):
            first = _lower_bound(t_still, n_still, nic, 0.0)
            if first < n_still:
                found = t_still[first]
                if found - nic <= max_next_ff_s:
                    still = found
        chained = abs(following_ic[k] - nic) <= eps * 4
        next_ff[r] = following_ff[k] if chained and k < m - 1 else still
    # 1. point values
    points = np.empty((12, m))
    for r in range(m):
        x = ic_all[r]
        points[0, r] = _point_value(t, x, pitch, limit)
        points[1, r] = _point_value(t, x, pronation, limit)
        points[2, r] = _point_value(t, x - lookback_s, pitch, limit)
        x = ff_all[r]
        points[3, r] = _point_value(t, x, pitch, limit)
        points[4, r] = _point_value(t, x, pronation, limit)
        points[5, r] = _point_value(t, x, heading, limit)
        points[6, r] = _point_value(t, x, pos_x, limit)
        points[7, r] = _point_value(t, x, pos_y, limit)
        x = toe_off[r]
        points[8, r] = _point_value(t, x, pitch, limit)
        points[9, r] = _point_value(t, x, pronation, limit)
        x = next_ff[r]
        points[10, r] = _point_value(t, x, pos_x, limit)
        points[11, r] = _point_value(t, x, pos_y, limit)
    return rows, start, stop, extrema, points


def _one_foot_values(
    arrays: dict[str, np.ndarray], events: EventColumns, s: MetricSettings, wanted: np.ndarray | None
) -> dict[str, np.ndarray] | None:
    """`StrideMetrics._values` of one foot's event columns on its signal arrays in one compiled pass
    (`_one_foot_kernel`) and the per-stride low-pass of `_filtered_velocity_and_censoring`: the same
    values, in the same names, order and layout. None when the signals are empty, out of time
    order, or there are no events (the general path handles those)."""
    t = arrays[T]
    m = events.height
    if m == 0 or t.size == 0 or not _rising(t):
        return None
    times = {c: np.asarray(events[c], dtype=float) for c in EVENT_TIMES}
    rows, start, stop, extrema, points = _one_foot_kernel(
        t,
        arrays[ZERO_VELOCITY],
        arrays[PITCH_DEG],
        arrays[PRONATION_DEG],
        arrays[HEADING_DEG],
        arrays[POS[0]],
        arrays[POS[1]],
        arrays[PRONATION_RATE_DPS],
        arrays[PITCH_RATE_DPS],
        arrays[ACC_NORM_G],
        times[IC_T],
        times[FOOT_FLAT_T],
        times[HEEL_OFF_T],
        times[TOE_OFF_T],
        times[NEXT_IC_T],
        float(s.pronation_window_stance_fraction),
        float(s.impact_window_s),
        float(s.strike_lookback_s),
        s.max_interpolation_gap_s + _EPS_S,
        float(s.max_next_foot_flat_s),
        _EPS_S,
    )
    result = np.full((m, 6), np.nan)
    result[:, :5] = extrema
    velocity, censored = _filtered_velocity_and_censoring(
        t,
        arrays[PRONATION_RATE_DPS],
        np.zeros(m, dtype=np.int64),
        start,
        stop,
        times[IC_T][rows],
        times[TOE_OFF_T][rows],
        result[rows, 1],
        s,
        None if wanted is None else wanted[rows],
    )
    if s.pronation_velocity_cutoff_hz is not None:
        result[rows, 2] = velocity
    result[rows, 5] = censored
    values = dict(zip(_POINT_NAMES, points, strict=True))
    values.update((name, result[:, i]) for i, name in enumerate(_EXTREMA))
    return values


@numba.njit(cache=True)
def _rising(t):  # pragma: no cover - compiled
    """Every step of t is positive (`np.all(np.diff(t) > 0)`)."""
    for i in range(1, t.shape[0]):
        if not t[i] - t[i - 1] > 0:
            return False
    return True


def _checked_rows(rows: np.ndarray | None, height: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """`rows` as int64 (increasing, else ValueError) and as a bool mask over `height` rows."""
    if rows is None:
        return None, None
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size > 1 and not bool(np.all(np.diff(rows) > 0)):
        raise ValueError(f"rows must be increasing row numbers, got {rows.tolist()}")
    wanted = np.zeros(height, dtype=bool)
    wanted[rows] = True
    return rows, wanted


@dataclass(frozen=True)
class PreparedStrides:
    """`StrideMetrics.prepare`'s result: the events (`events`, cast; a table, or `PreparedEvents`
    columns from `prepare_columns`), the values the definitions read per row (`values`: numpy,
    NaN where undefined), and whether the rows are already in (keys, IC) order (`in_order`). The
    values become columns only in `evaluate_prepared`, once for all tables evaluated together."""

    events: pl.DataFrame | PreparedEvents
    values: dict[str, np.ndarray]
    in_order: bool

    @property
    def frame(self) -> pl.DataFrame:
        """The events as a table."""
        return self.events if isinstance(self.events, pl.DataFrame) else self.events.frame()

    @property
    def table(self) -> pl.DataFrame:
        """The events with the values as Float64 columns (NaN -> null): what the query reads."""
        # one Series for all the values, sliced into the columns: a Series costs ~20-40 us to
        # build from numpy whatever its length (the live analyzer's tables have 1-3 rows)
        events = self.frame
        k = events.height
        names = list(self.values)
        if not names:
            return events
        flat = _series("", np.concatenate([self.values[name] for name in names]))
        return events.hstack([flat.slice(i * k, k).alias(name) for i, name in enumerate(names)])


def _metric_query(table: pl.DataFrame, s: MetricSettings) -> pl.DataFrame:
    """DESIGN.md's definitions as Polars expressions, evaluated in one query (row by row: each row's
    result depends on that row only)."""
    query = table.lazy()
    for stage in _definitions(s, tuple(table.columns)):
        query = query.with_columns(*stage)
    # Unoptimised: the plan is already lean (scratch columns instead of common subexpressions),
    # and planning was a third of the query's cost on the live analyzer's few rows.
    return (
        query.select(*_FINAL_SELECT)
        .with_columns(pl.col(VALID).fill_null(False))
        .collect(optimizations=pl.QueryOptFlags.none())
    )


# Up to this many rows the definitions run in numpy (`analytics.metric_rows`, the same rows):
# a Polars query's fixed cost (~2 ms) is the whole cost on the live analyzer's few rows, while
# the numpy path's cost grows with the rows (its string columns are Python lists).
_NUMPY_MAX_ROWS = 64


def evaluate_prepared(
    prepared: list[PreparedStrides], settings: MetricSettings = MetricSettings()
) -> list[pl.DataFrame]:
    """The strides tables (STRIDES_SCHEMA, then `pronation_excursion_censored`; each sorted by keys
    and IC) of `StrideMetrics.prepare` results, in their order, from one evaluation over all of
    them (tables whose columns differ get one each): in numpy up to `_NUMPY_MAX_ROWS` rows, else
    one Polars query."""
    out: list[pl.DataFrame | None] = [None] * len(prepared)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault((tuple(p.events.schema.items()), tuple(p.values)), []).append(i)
    for members in groups.values():
        parts = [prepared[i] for i in members]
        # Each table's columns built on its own, then concatenated: a query over columns built
        # in one piece gave some rows' speed an ulp apart (Polars' kernels are not always
        # independent of how the input was assembled), and the rows must not depend on the batch.
        if sum(p.events.height for p in parts) <= _NUMPY_MAX_ROWS:
            result = evaluate_rows(parts, settings)
        else:
            tables = [p.table for p in parts]
            table = tables[0] if len(tables) == 1 else pl.concat(tables, rechunk=False)
            result = _metric_query(table, settings)
        offset = 0
        for i, p in zip(members, parts, strict=True):
            part = result.slice(offset, p.events.height) if len(parts) > 1 else result
            offset += p.events.height
            out[i] = part if p.in_order else part.sort(*KEYS, IC_T)
    return out


def compute_strides(
    events: pl.DataFrame, signals: pl.DataFrame, settings: MetricSettings = MetricSettings()
) -> pl.DataFrame:
    """Shorthand for `StrideMetrics(settings).estimate(events, signals).strides_`."""
    return StrideMetrics(settings).estimate(events, signals).strides_
