"""The `sessions` table: per athlete-session-foot-activity aggregates of the steady strides, and symmetry.

One row per (athlete_id, session_id, foot, activity) present in the strides (`activity`: walk or
run, `analytics.activity`; a stride of unknown activity counts under its foot's usual one), so a
session holding both gaits has a walking and a running row per foot, with

- `stride_count`: number of steady strides (`schema.steady_of`: valid, neither the gait start
  nor a turn; the aggregates use only these: turning changes foot loading, and the gait start
  has no contact at its start); `stride_count_valid`: every valid stride (measured without a
  fault, turns and the gait start included); `stride_count_all`: every detected stride;
- `<metric>_median` and `<metric>_iqr` (75th minus 25th percentile, linear interpolation) of each
  numeric metric, null when the foot has no steady stride;
- `<metric>_si_pct`: the left/right symmetry index of the two feet's medians in that
  athlete-session-activity (walking left against walking right),
  DESIGN.md's ``SI = 200 (L - R) / (L + R)`` percent, positive = left larger, the same value on
  both foot rows; null when a foot is missing. Only for the positive-valued metrics: for the
  signed angles of `SIGNED_ANGLE_METRICS` (foot-strike angle, toe-off pronation) an index of two
  small angles explodes (0.9 vs 2.6 deg is -97 %), so their `_si_pct` is null and
- `<metric>_lr_diff_deg` gives their symmetry as ``L - R`` in degrees instead.
- `mounting_uncertainty_deg`: the largest heading uncertainty of the foot's mounting over the
  session's strides (deg, `hardware.shoe_axis`); null when the frame was given, not estimated.
- `mounting_id`: the foot's mounting at its last stride of the session; `remount`: a mounting of
  the foot began with a remount in this session (`analytics.mountings`); null when not known.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from strideflow.analytics.activity import activity_expr, activity_key_expr
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    FOOT,
    IC_T,
    KEYS,
    METRICS,
    MOUNTING_ID,
    MOUNTING_UNCERTAINTY_DEG,
    REMOUNT,
    SESSION_ID,
    SIGNED_ANGLE_METRICS,
    STRIDE_COUNT,
    VALID,
    lr_difference,
    session_iqr,
    session_median,
    steady_of,
    symmetry_index,
)

STRIDE_COUNT_ALL = "stride_count_all"
STRIDE_COUNT_VALID = "stride_count_valid"


@dataclass(frozen=True)
class SessionSettings:
    """Which numeric stride metrics are aggregated (default: every one of schema.METRICS)."""

    metrics: tuple[str, ...] = METRICS


def symmetry_index_expr(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """200 (L - R) / (|L| + |R|) in percent; null where either side is null or both are zero.

    For the positive-valued metrics it is used on, |L| + |R| = L + R (DESIGN.md's formula); the
    absolute values only keep it bounded should a metric's median ever be negative.
    """
    denominator = left.abs() + right.abs()
    return pl.when(denominator > 0).then(200.0 * (left - right) / denominator).otherwise(None)


def symmetry_columns(metrics: tuple[str, ...] | list[str]) -> list[str]:
    """The sessions table's symmetry columns of `metrics`, in order: `_si_pct`, then `_lr_diff_deg`."""
    return [symmetry_index(m) for m in metrics] + [
        lr_difference(m) for m in metrics if m in SIGNED_ANGLE_METRICS
    ]


def symmetry_text(row: dict, metric: str) -> str:
    """A sessions row's left/right symmetry of `metric` for people: `+4.2 %`, `-1.7°` or `-`."""
    if metric in SIGNED_ANGLE_METRICS:
        value = row.get(lr_difference(metric))
        return "-" if value is None else f"{value:+.1f}°"
    value = row.get(symmetry_index(metric))
    return "-" if value is None else f"{value:+.1f} %"


class SessionAggregator:
    """Aggregates a `strides` table into the `sessions` table (one row per athlete-session-foot).

    Parameters
    ----------
    settings
        `SessionSettings`: which stride metrics are aggregated (each keeps its unit).

    Attributes
    ----------
    sessions_ : pl.DataFrame
        SESSIONS_SCHEMA: per athlete-session-foot-activity statistics of the steady strides and the
        left/right symmetry.

    Notes
    -----
    Median and IQR per metric (module docstring); the symmetry index is DESIGN.md's
    200 (L - R) / (L + R) % (Robinson, Herzog & Nigg 1987), L - R in deg for signed angles.
    """

    def __init__(self, settings: SessionSettings = SessionSettings()):
        self.settings = settings

    def aggregate(self, strides: pl.DataFrame) -> SessionAggregator:
        """Compute `sessions_` from `strides` (only steady strides enter the statistics)."""
        metrics = self.settings.metrics
        steady = steady_of(strides.columns)
        if MOUNTING_UNCERTAINTY_DEG not in strides.columns:
            strides = strides.with_columns(pl.lit(None, dtype=pl.Float64).alias(MOUNTING_UNCERTAINTY_DEG))
        if MOUNTING_ID not in strides.columns:
            strides = strides.with_columns(pl.lit(None, dtype=pl.String).alias(MOUNTING_ID))
        if REMOUNT not in strides.columns:
            strides = strides.with_columns(pl.lit(None, dtype=pl.Boolean).alias(REMOUNT))
        if ACTIVITY not in strides.columns:  # strides stored before the column existed
            strides = strides.with_columns(activity_expr().alias(ACTIVITY))
        strides = strides.with_columns(activity_key_expr(strides.columns).alias(ACTIVITY))
        # the latest mounting of a session in time order; tables without stride times (hand-made
        # ones) keep their row order
        last_mounting = pl.col(MOUNTING_ID)
        if IC_T in strides.columns:
            last_mounting = last_mounting.sort_by(IC_T)
        pair = [ATHLETE_ID, SESSION_ID, ACTIVITY]
        per_foot = (
            strides.group_by(*KEYS, ACTIVITY)
            .agg(
                steady.sum().cast(pl.Int64).alias(STRIDE_COUNT),
                pl.len().cast(pl.Int64).alias(STRIDE_COUNT_ALL),
                pl.col(VALID).fill_null(False).sum().cast(pl.Int64).alias(STRIDE_COUNT_VALID),
                pl.col(MOUNTING_UNCERTAINTY_DEG).max().cast(pl.Float64),
                last_mounting.drop_nulls().last().cast(pl.String),
                pl.col(REMOUNT).any(ignore_nulls=False).cast(pl.Boolean),
                *[pl.col(m).filter(steady).median().alias(session_median(m)) for m in metrics],
                *[
                    (
                        pl.col(m).filter(steady).quantile(0.75, "linear")
                        - pl.col(m).filter(steady).quantile(0.25, "linear")
                    ).alias(session_iqr(m))
                    for m in metrics
                ],
            )
            .with_columns([pl.col(session_median(m)).cast(pl.Float64) for m in metrics])
        )
        medians = [session_median(m) for m in metrics]
        left = per_foot.filter(pl.col(FOOT) == "left").select(
            *pair, *[pl.col(c).alias(f"{c}__l") for c in medians]
        )
        right = per_foot.filter(pl.col(FOOT) == "right").select(
            *pair, *[pl.col(c).alias(f"{c}__r") for c in medians]
        )
        pairs = left.join(right, on=pair, how="full", coalesce=True, nulls_equal=True).select(
            *pair,
            *[
                (
                    pl.lit(None, dtype=pl.Float64)
                    if m in SIGNED_ANGLE_METRICS
                    else symmetry_index_expr(
                        pl.col(f"{session_median(m)}__l"), pl.col(f"{session_median(m)}__r")
                    )
                ).alias(symmetry_index(m))
                for m in metrics
            ],
            *[
                (pl.col(f"{session_median(m)}__l") - pl.col(f"{session_median(m)}__r")).alias(
                    lr_difference(m)
                )
                for m in metrics
                if m in SIGNED_ANGLE_METRICS
            ],
        )
        self.sessions_ = (
            per_foot.join(pairs, on=pair, how="left", nulls_equal=True)
            .select(
                *KEYS,
                ACTIVITY,
                STRIDE_COUNT,
                STRIDE_COUNT_ALL,
                STRIDE_COUNT_VALID,
                *medians,
                *[session_iqr(m) for m in metrics],
                *[pl.col(c).cast(pl.Float64) for c in symmetry_columns(metrics)],
                MOUNTING_UNCERTAINTY_DEG,
                MOUNTING_ID,
                REMOUNT,
            )
            .sort(*KEYS, ACTIVITY, nulls_last=True)
        )
        return self


def compute_sessions(strides: pl.DataFrame, settings: SessionSettings = SessionSettings()) -> pl.DataFrame:
    """Shorthand for `SessionAggregator(settings).aggregate(strides).sessions_`."""
    return SessionAggregator(settings).aggregate(strides).sessions_
