"""The `sessions` table: per athlete-session-foot aggregates of the valid strides, and symmetry.

One row per (athlete_id, session_id, foot) present in the strides, with

- `stride_count`: number of valid strides (the aggregates use only these); `stride_count_all`:
  every detected stride, valid or not;
- `<metric>_median` and `<metric>_iqr` (75th minus 25th percentile, linear interpolation) of each
  numeric metric, null when the foot has no valid stride;
- `<metric>_si_pct`: the left/right symmetry index of the two feet's medians in that athlete-session,
  ``SI = 200 (L - R) / (|L| + |R|)`` percent, positive = left larger, the same value on both foot
  rows; null when a foot is missing. For metrics that are positive (all but the signed angles
  foot-strike and toe-off pronation) this is exactly DESIGN.md's ``200 (L - R) / (L + R)``; the
  absolute values keep the index bounded (±200 %) when a signed metric crosses zero;
- `mounting_uncertainty_deg`: the largest heading uncertainty of the foot's mounting over the
  session's strides (deg, `hardware.shoe_axis`); null when the frame was given, not estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from strideflow.hardware.schema import (
    ATHLETE_ID,
    FOOT,
    KEYS,
    METRICS,
    MOUNTING_UNCERTAINTY_DEG,
    SESSION_ID,
    STRIDE_COUNT,
    VALID,
    session_iqr,
    session_median,
    symmetry_index,
)

STRIDE_COUNT_ALL = "stride_count_all"


@dataclass(frozen=True)
class SessionSettings:
    """Which numeric stride metrics are aggregated (default: every one of schema.METRICS)."""

    metrics: tuple[str, ...] = METRICS


def symmetry_index_expr(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """200 (L - R) / (|L| + |R|) in percent; null where either side is null or both are zero."""
    denominator = left.abs() + right.abs()
    return pl.when(denominator > 0).then(200.0 * (left - right) / denominator).otherwise(None)


class SessionAggregator:
    """Aggregates a `strides` table into the `sessions` table (one row per athlete-session-foot)."""

    def __init__(self, settings: SessionSettings = SessionSettings()):
        self.settings = settings

    def aggregate(self, strides: pl.DataFrame) -> SessionAggregator:
        """Compute `sessions_` from `strides` (only `valid` strides enter the statistics)."""
        metrics = self.settings.metrics
        valid = pl.col(VALID).fill_null(False)
        if MOUNTING_UNCERTAINTY_DEG not in strides.columns:
            strides = strides.with_columns(pl.lit(None, dtype=pl.Float64).alias(MOUNTING_UNCERTAINTY_DEG))
        per_foot = (
            strides.group_by(*KEYS)
            .agg(
                valid.sum().cast(pl.Int64).alias(STRIDE_COUNT),
                pl.len().cast(pl.Int64).alias(STRIDE_COUNT_ALL),
                pl.col(MOUNTING_UNCERTAINTY_DEG).max().cast(pl.Float64),
                *[pl.col(m).filter(valid).median().alias(session_median(m)) for m in metrics],
                *[
                    (
                        pl.col(m).filter(valid).quantile(0.75, "linear")
                        - pl.col(m).filter(valid).quantile(0.25, "linear")
                    ).alias(session_iqr(m))
                    for m in metrics
                ],
            )
            .with_columns([pl.col(session_median(m)).cast(pl.Float64) for m in metrics])
        )
        medians = [session_median(m) for m in metrics]
        left = per_foot.filter(pl.col(FOOT) == "left").select(
            ATHLETE_ID, SESSION_ID, *[pl.col(c).alias(f"{c}__l") for c in medians]
        )
        right = per_foot.filter(pl.col(FOOT) == "right").select(
            ATHLETE_ID, SESSION_ID, *[pl.col(c).alias(f"{c}__r") for c in medians]
        )
        pairs = left.join(right, on=[ATHLETE_ID, SESSION_ID], how="full", coalesce=True).select(
            ATHLETE_ID,
            SESSION_ID,
            *[
                symmetry_index_expr(
                    pl.col(f"{session_median(m)}__l"), pl.col(f"{session_median(m)}__r")
                ).alias(symmetry_index(m))
                for m in metrics
            ],
        )
        self.sessions_ = (
            per_foot.join(pairs, on=[ATHLETE_ID, SESSION_ID], how="left")
            .select(
                *KEYS,
                STRIDE_COUNT,
                STRIDE_COUNT_ALL,
                *medians,
                *[session_iqr(m) for m in metrics],
                *[pl.col(symmetry_index(m)).cast(pl.Float64) for m in metrics],
                MOUNTING_UNCERTAINTY_DEG,
            )
            .sort(*KEYS)
        )
        return self


def compute_sessions(strides: pl.DataFrame, settings: SessionSettings = SessionSettings()) -> pl.DataFrame:
    """Shorthand for `SessionAggregator(settings).aggregate(strides).sessions_`."""
    return SessionAggregator(settings).aggregate(strides).sessions_
