"""Per-stride foot metrics of DESIGN.md's `strides` table, as Polars expressions over whole columns.

Inputs are two tables:

- `events`: one row per stride (keys, `stride_index`, the five event times in s, `valid`, `reason`),
  as `analytics.events.StrideEventDetector` gives them with the keys added;
- `signals`: one row per sample in `schema.SIGNALS_SCHEMA` (pitch, pronation and their rates,
  |acc| in g, zero-velocity flag, zero-velocity-aided world position), see `analytics.signals`.

Three vectorised steps, no Python loop over strides:

1. point values at event times (pitch and pronation at IC, foot-flat and toe-off, pitch
   `STRIKE_LOOKBACK_S` before IC, position at this and the next foot-flat) by two `join_asof`
   (backward and forward neighbour) and linear interpolation between the neighbours;
2. window extrema (max pronation after IC, peak pronation velocity up to it, peak plantarflexion
   rate between heel-off and toe-off, peak impact) by assigning each sample to the stride whose IC
   precedes it (`join_asof`) and one `group_by` with filtered aggregations;
3. the remaining metrics as column arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from strideflow.hardware.schema import (
    ACC_NORM_G,
    CADENCE_SPM,
    DUTY_FACTOR,
    EVENT_TIMES,
    FOOT_FLAT_T,
    FOOT_STRIKE_ANGLE_DEG,
    HEEL_OFF_RATIO,
    HEEL_OFF_T,
    IC_T,
    IMPACT_G,
    IMPACT_WINDOW_S,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    METRICS,
    NEXT_IC_T,
    PITCH_DEG,
    PITCH_RATE_DPS,
    POS,
    PRONATION_DEG,
    PRONATION_EXCURSION_DEG,
    PRONATION_RATE_DPS,
    PRONATION_WINDOW_STANCE_FRACTION,
    PUSH_OFF_RATE_DPS,
    REASON,
    SPEED_MPS,
    STANCE_TIME_S,
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
)

# Reasons this module adds to strides the event detector called valid.
REASON_NO_SIGNAL = "no_signal"  # an event time falls outside the signals (gap or recording edge)
REASON_NO_NEXT_FOOT_FLAT = "no_next_foot_flat"  # no foot-flat after next IC: stride length unknown

_STRIDE = (*KEYS, STRIDE_INDEX)
# Half a microsecond: event times are sample times, possibly recomputed as index / rate.
_EPS_S = 5e-7


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
    """

    pronation_window_stance_fraction: float = PRONATION_WINDOW_STANCE_FRACTION
    impact_window_s: float = IMPACT_WINDOW_S
    strike_lookback_s: float = STRIKE_LOOKBACK_S
    rearfoot_above_deg: float = STRIKE_REARFOOT_ABOVE_DEG
    forefoot_below_deg: float = STRIKE_FOREFOOT_BELOW_DEG
    max_interpolation_gap_s: float = 0.05
    max_next_foot_flat_s: float = 1.0


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
    columns = list(columns)
    sig = signals.select(*KEYS, T, *columns).sort(*KEYS, T)
    q = queries.with_row_index("_qrow").with_columns(pl.col(time_column).alias("_tq"))
    known = q.filter(pl.col("_tq").is_not_null()).sort(*KEYS, "_tq")
    before = sig.rename({T: "_t0", **{c: f"_{c}0" for c in columns}})
    after = sig.rename({T: "_t1", **{c: f"_{c}1" for c in columns}})
    joined = known.join_asof(
        before, left_on="_tq", right_on="_t0", by=list(KEYS), strategy="backward", check_sortedness=False
    ).join_asof(
        after, left_on="_tq", right_on="_t1", by=list(KEYS), strategy="forward", check_sortedness=False
    )
    span = pl.col("_t1") - pl.col("_t0")
    # Weight of the later neighbour; on an exact sample time both neighbours are that sample.
    w = pl.when(span > 0).then((pl.col("_tq") - pl.col("_t0")) / span).otherwise(0.0)
    near = ((pl.col("_tq") - pl.col("_t0")) <= max_gap_s + _EPS_S) & (
        (pl.col("_t1") - pl.col("_tq")) <= max_gap_s + _EPS_S
    )
    interpolated = joined.select(
        "_qrow",
        *[
            pl.when(near)
            .then(pl.col(f"_{c}0") + w * (pl.col(f"_{c}1") - pl.col(f"_{c}0")))
            .otherwise(None)
            .alias(f"{c}{suffix}")
            for c in columns
        ],
    )
    return q.join(interpolated, on="_qrow", how="left").sort("_qrow").drop("_qrow", "_tq")


def _window_extrema(signals: pl.DataFrame, strides: pl.DataFrame, settings: MetricSettings) -> pl.DataFrame:
    """Per stride: max pronation and its time, peak pronation velocity, push-off rate, impact."""
    bounds = strides.select(*_STRIDE, *EVENT_TIMES).filter(pl.col(IC_T).is_not_null()).sort(*KEYS, IC_T)
    sig = signals.select(*KEYS, T, PRONATION_DEG, PRONATION_RATE_DPS, PITCH_RATE_DPS, ACC_NORM_G).sort(
        *KEYS, T
    )
    # Each sample belongs to the stride whose IC is the latest at or before it (tolerating the
    # rounding of event times), and only while it lies before that stride's next IC.
    assigned = (
        sig.with_columns((pl.col(T) + _EPS_S).alias("_t_join"))
        .join_asof(
            bounds,
            left_on="_t_join",
            right_on=IC_T,
            by=list(KEYS),
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col(STRIDE_INDEX).is_not_null() & (pl.col(T) < pl.col(NEXT_IC_T) - _EPS_S))
    )
    t = pl.col(T)
    ic = pl.col(IC_T)
    stance = pl.col(TOE_OFF_T) - ic
    in_pronation = (t >= ic - _EPS_S) & (
        t <= ic + settings.pronation_window_stance_fraction * stance + _EPS_S
    )
    p_window = pl.col(PRONATION_DEG).filter(in_pronation)
    t_max_p = t.filter(in_pronation).gather(p_window.arg_max()).first()
    in_push_off = (t >= pl.col(HEEL_OFF_T) - _EPS_S) & (t <= pl.col(TOE_OFF_T) + _EPS_S)
    in_impact = (t >= ic - _EPS_S) & (t <= ic + settings.impact_window_s + _EPS_S)
    return assigned.group_by(*_STRIDE).agg(
        p_window.max().alias("_p_max"),
        t_max_p.alias("_t_max_p"),
        pl.col(PRONATION_RATE_DPS).filter((t >= ic - _EPS_S) & (t <= t_max_p + _EPS_S)).max().alias("_v_max"),
        # Plantarflexion is a falling pitch (toes going down): its rate is -d(pitch)/dt.
        (-pl.col(PITCH_RATE_DPS)).filter(in_push_off).max().alias("_push_off"),
        pl.col(ACC_NORM_G).filter(in_impact).max().alias("_impact"),
    )


def _next_foot_flat(signals: pl.DataFrame, strides: pl.DataFrame, settings: MetricSettings) -> pl.DataFrame:
    """Time of the foot-flat that ends each stride (the next stride's, or the first still sample)."""
    ordered = strides.select(*_STRIDE, IC_T, FOOT_FLAT_T, NEXT_IC_T).sort(*KEYS, IC_T)
    following = ordered.with_columns(
        pl.col(IC_T).shift(-1).over(list(KEYS)).alias("_following_ic"),
        pl.col(FOOT_FLAT_T).shift(-1).over(list(KEYS)).alias("_following_ff"),
    )
    still = (
        signals.filter(pl.col(ZERO_VELOCITY))
        .select(*KEYS, pl.col(T).alias("_still_t"))
        .sort(*KEYS, "_still_t")
    )
    with_still = (
        following.filter(pl.col(NEXT_IC_T).is_not_null())
        .sort(*KEYS, NEXT_IC_T)
        .join_asof(
            still,
            left_on=NEXT_IC_T,
            right_on="_still_t",
            by=list(KEYS),
            strategy="forward",
            tolerance=settings.max_next_foot_flat_s,
            check_sortedness=False,
        )
    )
    chained = (pl.col("_following_ic") - pl.col(NEXT_IC_T)).abs() <= _EPS_S * 4
    return with_still.select(
        *_STRIDE,
        pl.when(chained & pl.col("_following_ff").is_not_null())
        .then(pl.col("_following_ff"))
        .otherwise(pl.col("_still_t"))
        .alias("_next_ff_t"),
    )


class StrideMetrics:
    """Every metric column of the `strides` table from stride events and per-sample signals."""

    def __init__(self, settings: MetricSettings = MetricSettings()):
        self.settings = settings

    def estimate(self, events: pl.DataFrame, signals: pl.DataFrame) -> StrideMetrics:
        """Compute `strides_` (STRIDES_SCHEMA columns, in that order, sorted by keys and IC)."""
        s = self.settings
        events = events.select(
            *[pl.col(k).cast(pl.String) for k in KEYS],
            pl.col(STRIDE_INDEX).cast(pl.Int64),
            *[pl.col(c).cast(pl.Float64) for c in EVENT_TIMES],
            pl.col(VALID).cast(pl.Boolean),
            pl.col(REASON).cast(pl.String),
        )
        signals = signals.with_columns(*[pl.col(k).cast(pl.String) for k in KEYS])
        gap = s.max_interpolation_gap_s
        angles = (PITCH_DEG, PRONATION_DEG)
        pts = events.with_columns((pl.col(IC_T) - s.strike_lookback_s).alias("_before_ic_t"))
        pts = values_at(signals, pts, IC_T, angles, suffix="_ic", max_gap_s=gap)
        pts = values_at(signals, pts, "_before_ic_t", (PITCH_DEG,), suffix="_before_ic", max_gap_s=gap)
        pts = values_at(signals, pts, FOOT_FLAT_T, (*angles, *POS[:2]), suffix="_ff", max_gap_s=gap)
        pts = values_at(signals, pts, TOE_OFF_T, angles, suffix="_to", max_gap_s=gap)
        pts = pts.join(_next_foot_flat(signals, events, s), on=list(_STRIDE), how="left")
        pts = values_at(signals, pts, "_next_ff_t", POS[:2], suffix="_next_ff", max_gap_s=gap)
        pts = pts.join(_window_extrema(signals, events, s), on=list(_STRIDE), how="left")

        ic, ff, to, nic = (pl.col(c) for c in (IC_T, FOOT_FLAT_T, TOE_OFF_T, NEXT_IC_T))
        stride_time = nic - ic
        stance = to - ic
        dx = pl.col(f"{POS[0]}_next_ff") - pl.col(f"{POS[0]}_ff")
        dy = pl.col(f"{POS[1]}_next_ff") - pl.col(f"{POS[1]}_ff")
        strike_angle = pl.col(f"{PITCH_DEG}_before_ic") - pl.col(f"{PITCH_DEG}_ff")
        out = pts.with_columns(
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
        ).with_columns(
            (pl.col(STRIDE_LENGTH_M) / pl.col(STRIDE_TIME_S)).alias(SPEED_MPS),
            strike_type_expr(pl.col(FOOT_STRIKE_ANGLE_DEG), s).alias(STRIKE_TYPE),
        )
        # A stride the detector called valid stays valid only if every metric could be computed.
        missing_angle = pl.any_horizontal(
            *[
                pl.col(m).is_null() | pl.col(m).is_nan()
                for m in METRICS
                if m not in (STRIDE_LENGTH_M, SPEED_MPS)
            ]
        )
        missing_length = pl.col(STRIDE_LENGTH_M).is_null() | pl.col(STRIDE_LENGTH_M).is_nan()
        new_reason = (
            pl.when(missing_angle)
            .then(pl.lit(REASON_NO_SIGNAL))
            .when(missing_length)
            .then(pl.lit(REASON_NO_NEXT_FOOT_FLAT))
            .otherwise(None)
        )
        out = out.with_columns(
            pl.when(pl.col(VALID) & new_reason.is_not_null())
            .then(new_reason)
            .otherwise(pl.col(REASON))
            .alias(REASON),
            (pl.col(VALID) & new_reason.is_null()).alias(VALID),
        )
        self.strides_ = (
            out.select([pl.col(c).cast(dtype) for c, dtype in STRIDES_SCHEMA.items()])
            .with_columns(pl.col(VALID).fill_null(False))
            .sort(*KEYS, IC_T)
        )
        return self


def compute_strides(
    events: pl.DataFrame, signals: pl.DataFrame, settings: MetricSettings = MetricSettings()
) -> pl.DataFrame:
    """Shorthand for `StrideMetrics(settings).estimate(events, signals).strides_`."""
    return StrideMetrics(settings).estimate(events, signals).strides_
