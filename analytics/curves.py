"""Stride-normalised curves: pronation and pitch resampled over stance and over the whole stride.

For each stride of the `strides` table (valid or not, with its `valid` and `steady` flags) the per-sample
pronation angle and pitch of `analytics.signals` are linearly interpolated at `points` equally
spaced instants of two phases:

- ``"stance"``: initial contact (0 %) to toe-off (100 %);
- ``"stride"``: initial contact (0 %) to the next initial contact (100 %).

The result is a long table (`CURVES_SCHEMA`): keys, `stride_index`, `valid`, `phase`, `pct`,
`pronation_deg` (deg, eversion positive on both feet, DESIGN.md) and `pitch_deg` (deg, toes up
positive). A phase whose event times are unknown, or that reaches outside the recorded signal,
has null angles. `curve_summary` gives mean and standard deviation per foot, phase and percent
over the steady strides (`schema.steady_of`: no turn, no gait start), from which mean +/- SD
curves are drawn.

All strides are resampled in one compiled pass (numpy.interp's arithmetic, both angles at once):
every athlete-session-foot's signal is shifted onto its own stretch of one global, increasing
time axis, so no Python loop runs over strides or feet, and the result is built in its sorted
order instead of being sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import polars as pl

from strideflow.analytics.activity import activity_key_expr
from strideflow.analytics.metrics import key_runs
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    FOOT,
    IC_T,
    KEYS,
    NEXT_IC_T,
    PITCH_DEG,
    PRONATION_DEG,
    SESSION_ID,
    STEADY,
    STRIDE_INDEX,
    TOE_OFF_T,
    VALID,
    T,
    steady_of,
)

PHASE = "phase"
PCT = "pct"  # percent of the phase, 0 at initial contact, 100 at its end
STANCE = "stance"  # IC .. toe-off
STRIDE = "stride"  # IC .. next IC
PHASES = (STANCE, STRIDE)
PHASE_END = {STANCE: TOE_OFF_T, STRIDE: NEXT_IC_T}
ANGLES = (PRONATION_DEG, PITCH_DEG)

CURVES_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    STRIDE_INDEX: pl.Int64(),
    VALID: pl.Boolean(),
    PHASE: pl.String(),
    PCT: pl.Float64(),
    PRONATION_DEG: pl.Float64(),
    PITCH_DEG: pl.Float64(),
    ACTIVITY: pl.String(),  # the stride's walk/run (`analytics.activity`); summaries are per activity
    STEADY: pl.Boolean(),  # the stride's `steady`: summaries are over these
}

STRIDE_COUNT = "stride_count"  # strides with a value at this (foot, phase, pct)


def curve_mean(angle: str) -> str:
    """Column of an angle's mean curve in `curve_summary`, e.g. ``pronation_deg_mean``."""
    return f"{angle}_mean"


def curve_sd(angle: str) -> str:
    """Column of an angle's standard deviation (ddof 1) in `curve_summary`, e.g. ``pitch_deg_sd``."""
    return f"{angle}_sd"


@dataclass(frozen=True)
class CurveSettings:
    """`points`: samples per phase, equally spaced from 0 to 100 % (101 gives 1 % steps)."""

    points: int = 101


def _empty_curves() -> pl.DataFrame:
    return pl.DataFrame(schema=CURVES_SCHEMA)


@numba.njit(cache=True)
def _last_at_or_before(xp, x, j):  # pragma: no cover - compiled
    """Last index i with xp[i] <= x, for xp[0] <= x <= xp[-1]; searched outwards from j (the
    previous answer: queries mostly increase), then by bisection."""
    m = xp.shape[0]
    step = 1
    if xp[j] <= x:
        lo, hi = j, j + 1
        while hi < m and xp[hi] <= x:
            lo = hi
            step *= 2
            hi = lo + step
        hi = min(hi, m)
    else:
        lo, hi = j - 1, j
        while lo > 0 and xp[lo] > x:
            hi = lo
            step *= 2
            lo = hi - step
        lo = max(lo, 0)
    while hi - lo > 1:  # xp[lo] <= x and (hi == m or xp[hi] > x)
        mid = (lo + hi) // 2
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _interp_one(x, xp, fp, j):  # pragma: no cover - compiled
    """numpy.interp's value at x given its interval j, with its rules for exact hits and NaNs."""
    if j == xp.shape[0] - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    value = slope * (x - xp[j]) + fp[j]
    if np.isnan(value):
        value = slope * (x - xp[j + 1]) + fp[j + 1]
        if np.isnan(value) and fp[j] == fp[j + 1]:
            value = fp[j]
    return value


@numba.njit(cache=True)
def _interp_pair(x, xp, fp_a, fp_b):  # pragma: no cover - compiled
    """`numpy.interp(x, xp, fp)` for two value arrays at once (the same floats: same interval,
    slope and rounding), NaN where x is not finite; xp increasing."""
    n = x.shape[0]
    out_a = np.full(n, np.nan)
    out_b = np.full(n, np.nan)
    m = xp.shape[0]
    j = 0
    for i in range(n):
        v = x[i]
        if not np.isfinite(v) or m == 0:
            continue
        if v < xp[0]:
            out_a[i], out_b[i] = fp_a[0], fp_b[0]
        elif v > xp[m - 1]:
            out_a[i], out_b[i] = fp_a[m - 1], fp_b[m - 1]
        else:
            j = _last_at_or_before(xp, v, j)
            out_a[i] = _interp_one(v, xp, fp_a, j)
            out_b[i] = _interp_one(v, xp, fp_b, j)
    return out_a, out_b


def _time_ordered(sig: pl.DataFrame, runs: pl.DataFrame) -> bool:
    """Each athlete-session-foot's rows are one contiguous run whose time strictly increases."""
    if runs.height > 1 and runs.select(pl.struct(KEYS).is_duplicated().any()).item():
        return False
    t = sig.get_column(T).to_numpy()
    rising = np.diff(t) > 0
    rising[runs.get_column("lo").to_numpy()[1:] - 1] = True  # each run starts its own clock
    return bool(rising.all())


def _resample_arrays(
    ic: np.ndarray,
    ends: list[np.ndarray],
    t0: np.ndarray,
    t1: np.ndarray,
    offset: np.ndarray,
    frac: np.ndarray,
    t_global: np.ndarray,
    values: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """{angle: (stride, phase, pct)} of strides with IC times `ic` (n,) and per phase its end times
    (n,), each stride's signal spanning [t0, t1] (s) and shifted by `offset` onto `t_global`, the
    increasing time axis of `values` (NaN where a phase is unknown or leaves its signal)."""
    n, points = ic.size, frac.size
    ic, t0, t1, offset = (np.asarray(x, dtype=float)[:, None] for x in (ic, t0, t1, offset))
    # (stride, phase, pct) query instants on the global axis; NaN where a phase has no value.
    query = np.empty((n, len(ends), points))
    for k, end in enumerate(ends):
        end = np.asarray(end, dtype=float)[:, None]
        local = ic + frac[None, :] * (end - ic)
        # Instants outside this foot's own signal would read a neighbouring stretch: leave null.
        inside = (local >= t0) & (local <= t1) & (end > ic)
        query[:, k, :] = np.where(inside, local - t0 + offset, np.nan)
    resampled = _interp_pair(
        query.ravel(),
        np.ascontiguousarray(t_global, dtype=float),
        *[np.ascontiguousarray(values[a], dtype=float) for a in ANGLES],
    )
    return {a: out.reshape(n, len(ends), points) for a, out in zip(ANGLES, resampled, strict=True)}


class StrideCurves:
    """Resamples pronation and pitch of every stride over stance and over the stride.

    Parameters
    ----------
    settings
        `CurveSettings`: samples per phase (0 to 100 %).

    Attributes
    ----------
    curves_ : pl.DataFrame
        CURVES_SCHEMA, angles in deg at each percent of stance and of the stride (`compute`).
    summary_ : pl.DataFrame
        Per-foot mean and SD curves of the steady strides, deg (`summarize`).

    Notes
    -----
    Time normalisation to 0-100 % of the gait cycle by linear interpolation, as is usual for gait
    curves; the running mean/SD uses Chan et al.'s pairwise update (`CurveAccumulator`).
    """

    def __init__(self, settings: CurveSettings = CurveSettings()):
        self.settings = settings

    def compute(self, strides: pl.DataFrame, signals: pl.DataFrame) -> StrideCurves:
        """Fill `curves_` (CURVES_SCHEMA) from a `strides` table and the matching per-sample signals.

        `signals` holds keys, `t` (s), `pronation_deg` and `pitch_deg` for every athlete-session-foot
        of `strides` (other columns are ignored).
        """
        resampled = self._resample(strides, signals)
        if resampled is None:
            self.curves_ = _empty_curves()
            return self
        base, phases, frac, angles = resampled
        n, points = base.height, frac.size
        per_row = len(phases) * points
        angle_columns = [pl.Series(a, angles[a].ravel(), dtype=pl.Float64, nan_to_null=True) for a in ANGLES]
        phase_index = np.tile(np.repeat(np.arange(len(phases)), points), n)
        self.curves_ = pl.DataFrame(
            [
                *base.select(*KEYS, STRIDE_INDEX, VALID, ACTIVITY, STEADY).gather(
                    np.repeat(np.arange(n), per_row)
                ),
                pl.Series(PHASE, phases, dtype=pl.String).gather(phase_index),
                pl.Series(PCT, np.tile(np.round(frac * 100.0, 9), n * len(phases)), dtype=pl.Float64),
                *angle_columns,
            ]
        ).select([pl.col(c).cast(d) for c, d in CURVES_SCHEMA.items()])
        return self

    def summarize(self, strides: pl.DataFrame, signals: pl.DataFrame) -> StrideCurves:
        """Fill `summary_`: what `curve_summary(curves_)` gives (steady strides, by foot), computed
        from the resampled arrays without building the long per-stride table (a team batch stores
        only this: the per-stride table is as long as the samples). The same code
        (`CurveAccumulator`) summarises a live stream stride by stride."""
        self.summary_ = CurveAccumulator(self.settings).add(strides, signals).summary_
        return self

    def _resample(self, strides: pl.DataFrame, signals: pl.DataFrame):
        """(strides in output order, phases, pct fractions, {angle: (stride, phase, pct) array}),
        or None when there is nothing to resample."""
        points = int(self.settings.points)
        if points < 2:
            raise ValueError(f"points must be at least 2, got {points}")
        if strides.height == 0 or signals.height == 0:
            return None
        sig = signals.select(
            *KEYS, pl.col(T).cast(pl.Float64), *[pl.col(a).cast(pl.Float64) for a in ANGLES]
        ).filter(pl.col(T).is_not_null() & pl.col(T).is_not_nan())
        runs = key_runs(sig)
        if not _time_ordered(sig, runs):
            sig = sig.sort(*KEYS, T, maintain_order=True)
            runs = key_runs(sig)
        t = sig.get_column(T).to_numpy()
        # One stretch of a global time axis per athlete-session-foot, in key order, separated by
        # more than any recording's duration, so that one np.interp serves every foot.
        groups = runs.sort(*KEYS, maintain_order=True)
        lo = groups.get_column("lo").to_numpy()
        hi = groups.get_column("hi").to_numpy()
        t0_g, t1_g = t[lo], t[hi - 1]
        span = float((t1_g - t0_g).max()) + 1.0 if groups.height else 1.0
        offset_g = np.arange(groups.height, dtype=float) * span
        rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)] or [np.zeros(0, int)])
        if np.array_equal(rows, np.arange(t.size)):
            rows = slice(None)  # already in key order: no copy
        length = hi - lo
        t_global = (t[rows] - np.repeat(t0_g, length)) + np.repeat(offset_g, length)
        values = {a: sig.get_column(a).fill_null(np.nan).to_numpy()[rows] for a in ANGLES}
        groups = groups.select(
            *KEYS,
            pl.Series("_t0", t0_g, dtype=pl.Float64),
            pl.Series("_t1", t1_g, dtype=pl.Float64),
            pl.Series("_offset", offset_g, dtype=pl.Float64),
        )

        # Strides in the output's order, each with its phases in name order: no sort of the result.
        base = (
            strides.select(
                *KEYS,
                pl.col(STRIDE_INDEX).cast(pl.Int64),
                pl.col(VALID).cast(pl.Boolean),
                steady_of(strides.columns).alias(STEADY),
                (
                    activity_key_expr(strides.columns)
                    if ACTIVITY in strides.columns
                    else pl.lit(None, dtype=pl.String)
                ).alias(ACTIVITY),
                pl.col(IC_T).cast(pl.Float64),
                pl.col(TOE_OFF_T).cast(pl.Float64),
                pl.col(NEXT_IC_T).cast(pl.Float64),
            )
            .sort(*KEYS, STRIDE_INDEX, maintain_order=True)
            .join(groups, on=list(KEYS), how="left", maintain_order="left")
        )
        frac = np.linspace(0.0, 1.0, points)
        phases = sorted(PHASES)
        column = {c: base[c].fill_null(np.nan).to_numpy() for c in ("_t0", "_t1", "_offset", IC_T)}
        ends = [base[PHASE_END[phase]].fill_null(np.nan).to_numpy() for phase in phases]
        angles = _resample_arrays(
            column[IC_T], ends, column["_t0"], column["_t1"], column["_offset"], frac, t_global, values
        )
        return base, phases, frac, angles


class CurveAccumulator:
    """Mean and SD curves of steady strides per foot and activity, from strides added in any portions.

    `add(strides, signals)` resamples the strides as `StrideCurves` does and merges their valid
    strides into running counts, means and sums of squared deviations per (foot, activity, phase,
    pct) (Chan et al.'s pairwise update, "Algorithms for computing the sample variance", 1983), so a
    live stream keeps a few kilobytes per foot and activity instead of every stride's curve.
    `summary_` is then the `curve_summary` table of all strides added so far (what the batch
    stores as a session's `curves`); one `add` of a whole session is `StrideCurves.summarize`.

    Attributes
    ----------
    summary_
        Columns foot, activity, phase, pct, stride_count, `<angle>_mean`, `<angle>_sd` (deg, ddof 1).
    strides_added_
        Strides added (valid or not).
    """

    def __init__(self, settings: CurveSettings = CurveSettings()):
        self.settings = settings
        self.strides_added_ = 0
        # (foot, activity or "") -> {angle: (count, mean, m2)}, each (phases, points)
        self._groups: dict[tuple[str, str], dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self._phases = sorted(PHASES)
        self._frac = np.linspace(0.0, 1.0, int(settings.points))

    def add(self, strides: pl.DataFrame, signals: pl.DataFrame) -> CurveAccumulator:
        """Merge the steady strides of a `strides` table, resampled on their per-sample `signals`
        (keys, `t` s, `pronation_deg`, `pitch_deg`, covering each stride from IC to next IC)."""
        resampled = StrideCurves(self.settings)._resample(strides, signals)
        self.strides_added_ += strides.height
        if resampled is None:
            return self
        base, _, _, angles = resampled
        feet = base.get_column(FOOT).to_numpy()
        kinds = base.get_column(ACTIVITY).fill_null("").to_numpy()
        steady = base.get_column(STEADY).to_numpy()
        self._merge(feet, kinds, steady, angles)
        return self

    def add_foot(
        self,
        foot: str,
        activity: np.ndarray,
        steady: np.ndarray,
        event_times: dict[str, np.ndarray],
        t_s: np.ndarray,
        pronation_deg: np.ndarray,
        pitch_deg: np.ndarray,
    ) -> CurveAccumulator:
        """`add` for strides of one foot given as arrays, without polars (a live window's few strides):
        per stride its `activity` (str or None), `steady` (valid, no turn or gait
        start), and `event_times` {ic_t, toe_off_t, next_ic_t} (s, NaN unknown); the foot's signal
        `t_s` (increasing, s) with its pronation and pitch (deg). The same resampling
        (`_resample_arrays`) and merge as `add`."""
        t = np.asarray(t_s, dtype=float)
        n = len(steady)
        self.strides_added_ += n
        if n == 0 or t.size == 0:
            return self
        t0 = np.full(n, t[0])
        angles = _resample_arrays(
            np.asarray(event_times[IC_T], dtype=float),
            [np.asarray(event_times[PHASE_END[p]], dtype=float) for p in self._phases],
            t0,
            np.full(n, t[-1]),
            np.zeros(n),
            self._frac,
            t - t[0],
            {PRONATION_DEG: pronation_deg, PITCH_DEG: pitch_deg},
        )
        kinds = np.array(["" if k is None else k for k in activity], dtype=object)
        self._merge(np.full(n, foot, dtype=object), kinds, np.asarray(steady, dtype=bool), angles)
        return self

    def _merge(self, feet: np.ndarray, kinds: np.ndarray, steady: np.ndarray, angles: dict) -> None:
        """Merge the steady strides' resampled curves into the running moments per foot and activity."""
        for foot, kind in sorted(set(zip(feet[steady].tolist(), kinds[steady].tolist(), strict=True))):
            sel = steady & (feet == foot) & (kinds == kind)
            group = self._groups.get((foot, kind))
            merged = {}
            for a in ANGLES:
                block = angles[a][sel]  # (strides, phases, points)
                finite = np.isfinite(block)
                k = finite.sum(axis=0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = np.where(finite, block, 0.0).sum(axis=0) / k
                    dev = np.where(finite, block - mean[None], 0.0)
                m2 = (dev * dev).sum(axis=0)
                if group is not None:
                    k, mean, m2 = _merge_moments(*group[a], k, mean, m2)
                merged[a] = (k, mean, m2)
            self._groups[(foot, kind)] = merged

    @property
    def summary_(self) -> pl.DataFrame:
        parts = []
        frac = self._frac
        for (foot, kind), group in sorted(self._groups.items()):
            count = group[PRONATION_DEG][0]
            columns = {}
            for a in ANGLES:
                k, mean, m2 = group[a]
                with np.errstate(invalid="ignore", divide="ignore"):
                    sd = np.sqrt(m2 / (k - 1))
                columns[curve_mean(a)] = np.where(k > 0, mean, np.nan).ravel()
                columns[curve_sd(a)] = np.where(k > 1, sd, np.nan).ravel()
            # NaN -> null as the Series are built (a `fill_nan` query per call cost ~0.3 ms)
            parts.append(
                pl.DataFrame(
                    [
                        pl.Series(FOOT, [foot] * count.size, dtype=pl.String),
                        pl.Series(ACTIVITY, [kind or None] * count.size, dtype=pl.String),
                        pl.Series(PHASE, np.repeat(self._phases, frac.size)),
                        pl.Series(PCT, np.tile(np.round(frac * 100.0, 9), len(self._phases))),
                        pl.Series(STRIDE_COUNT, count.ravel().astype(np.int64)),
                        *[pl.Series(c, columns[c], nan_to_null=True) for c in map(curve_mean, ANGLES)],
                        *[pl.Series(c, columns[c], nan_to_null=True) for c in map(curve_sd, ANGLES)],
                    ]
                )
            )
        return pl.concat(parts) if parts else curve_summary(_empty_curves())


def _merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Count, mean and sum of squared deviations of two sets from each one's (elementwise)."""
    n = n_a + n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = mean_b - mean_a
        mean = np.where(n_a == 0, mean_b, np.where(n_b == 0, mean_a, mean_a + delta * (n_b / n)))
        m2 = np.where(n_a == 0, m2_b, np.where(n_b == 0, m2_a, m2_a + m2_b + delta * delta * (n_a * n_b / n)))
    return n, mean, m2


def stride_curves(result, points: int = 101) -> pl.DataFrame:
    """Curves (CURVES_SCHEMA) of every stride of an `AnalysisResult` (its strides and signals)."""
    signals = [s for s in result.signals.values() if s.height]
    if not signals:
        return _empty_curves()
    return (
        StrideCurves(CurveSettings(points=points))
        .compute(result.strides, pl.concat(signals, how="diagonal_relaxed"))
        .curves_
    )


def session_curves(result, points: int = 101) -> pl.DataFrame:
    """`curve_summary(stride_curves(result, points))` (mean and SD per foot, phase and pct over the
    steady strides), computed without the long per-stride table: what the team batch and the
    service store as the `curves` table of a session."""
    signals = [s for s in result.signals.values() if s.height]
    if not signals:
        return curve_summary(_empty_curves())
    return (
        StrideCurves(CurveSettings(points=points))
        .summarize(result.strides, pl.concat(signals, how="diagonal_relaxed"))
        .summary_
    )


def curve_summary(
    curves: pl.DataFrame, by: Sequence[str] = (FOOT, ACTIVITY), valid_only: bool = True
) -> pl.DataFrame:
    """Mean and SD (deg, ddof 1) of each angle per `by` columns (default: foot and activity, so
    walking and running strides never share a band), phase and pct.

    Only steady strides (`schema.steady_of`) enter unless `valid_only` is False. Columns: `by`,
    `phase`, `pct`, `stride_count`, then `<angle>_mean` and `<angle>_sd` for pronation and pitch.
    """
    by = [c for c in by if c in curves.columns]
    data = curves.filter(steady_of(curves.columns)) if valid_only else curves
    return (
        data.group_by(*by, PHASE, PCT)
        .agg(
            pl.col(PRONATION_DEG).count().cast(pl.Int64).alias(STRIDE_COUNT),
            *[pl.col(a).mean().alias(curve_mean(a)) for a in ANGLES],
            *[pl.col(a).std(ddof=1).alias(curve_sd(a)) for a in ANGLES],
        )
        .sort(*by, PHASE, PCT, nulls_last=True)
    )
