"""Longitudinal trends: each athlete's per-session medians against their own baseline, over time.

Input: the `sessions` partitions under a results root (`analytics.partitions`, as `strideflow
batch` writes them), read with a lazy Polars scan filtered on `athlete_id`, so only that
athlete's partition files are opened. Output: one row per (athlete_id, metric, foot, session),
sorted by athlete, metric, foot, activity, date, with the columns of `TRENDS_SCHEMA`:

- `activity` (walk/run, the sessions row's): each trend line, baseline and slope is per activity,
  so a walking session after running ones is compared with earlier walking, never with running;

- `session_date` (Date): the session's `session_date`; sessions are ordered by it, then by
  `session_id` (sessions without a date come last, in `session_id` order);
- `median`: the session's median of the metric over that foot's steady strides (`<metric>_median`
  of the sessions table), in the metric's unit;
- `baseline`: the mean of `median` over the athlete-foot's first `baseline_sessions` sessions (in
  the order above) that have a median; fewer if fewer exist;
- `change_from_baseline` = `median - baseline` (metric unit); `change_pct` = `100 *
  change_from_baseline / |baseline|` (null when the baseline is 0);
- `days`: days since the athlete-foot's first dated session with a median;
- `slope_per_30d`: 30 x the ordinary least-squares slope of `median` against `days`, over the
  athlete-foot's sessions up to and including this one (metric unit per 30 days); null while
  fewer than 2 dated sessions with a median exist, or when they all fall on the same day;
- `symmetry_index`: the session's left/right symmetry index of the metric
  (`<metric>_si_pct`, percent, positive = left larger), the same on both foot rows; null for the
  signed angles, whose symmetry is
- `lr_difference_deg`: left minus right median in degrees (`<metric>_lr_diff_deg`; signed angles only);
- `stride_count`: steady strides behind the median.

Rows whose `median` is null (a foot without steady strides) are kept with null change and the
slope so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from strideflow.analytics import partitions
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    CADENCE_SPM,
    FOOT,
    FOOT_PROGRESSION_ANGLE_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    METRICS,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    SESSION_DATE,
    SESSION_ID,
    STANCE_TIME_S,
    STRIDE_COUNT,
    STRIDE_LENGTH_M,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    lr_difference,
    session_median,
    symmetry_index,
)

METRIC = "metric"
MEDIAN = "median"
BASELINE = "baseline"
CHANGE_FROM_BASELINE = "change_from_baseline"
CHANGE_PCT = "change_pct"
DAYS = "days"
SLOPE_PER_30D = "slope_per_30d"
SYMMETRY_INDEX = "symmetry_index"
LR_DIFFERENCE_DEG = "lr_difference_deg"
KEY_METRICS = (
    PRONATION_EXCURSION_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    TOE_OFF_PRONATION_DEG,
    TOE_OFF_ANGLE_DEG,
    PUSH_OFF_RATE_DPS,
    CADENCE_SPM,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    FOOT_PROGRESSION_ANGLE_DEG,
)
TRENDS_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    METRIC: pl.String(),
    FOOT: pl.String(),
    SESSION_ID: pl.String(),
    SESSION_DATE: pl.Date(),
    MEDIAN: pl.Float64(),
    BASELINE: pl.Float64(),
    CHANGE_FROM_BASELINE: pl.Float64(),
    CHANGE_PCT: pl.Float64(),
    DAYS: pl.Float64(),
    SLOPE_PER_30D: pl.Float64(),
    SYMMETRY_INDEX: pl.Float64(),
    LR_DIFFERENCE_DEG: pl.Float64(),
    STRIDE_COUNT: pl.Int64(),
    ACTIVITY: pl.String(),
}
_GROUP = [ATHLETE_ID, METRIC, FOOT, ACTIVITY]


class TrendError(StrideflowError):
    """A trend request that names an unknown metric or an invalid setting."""


@dataclass(frozen=True)
class TrendSettings:
    """`baseline_sessions`: how many of an athlete's first sessions make the baseline (>= 1).

    `metrics`: the metrics computed when no single one is asked for (default: the pronation,
    toe-off and basic gait metrics of `KEY_METRICS`).
    """

    baseline_sessions: int = 3
    metrics: tuple[str, ...] = KEY_METRICS


def empty_trends() -> pl.DataFrame:
    """A trends table without rows."""
    return pl.DataFrame(schema=TRENDS_SCHEMA)


def _long(sessions: pl.LazyFrame, metrics: list[str]) -> pl.LazyFrame:
    """One row per athlete, session, foot and metric: the session median and symmetry index."""
    names = sessions.collect_schema().names()
    date = pl.col(SESSION_DATE) if SESSION_DATE in names else pl.lit(None, dtype=pl.String)
    count = pl.col(STRIDE_COUNT) if STRIDE_COUNT in names else pl.lit(None, dtype=pl.Int64)
    activity = pl.col(ACTIVITY) if ACTIVITY in names else pl.lit(None, dtype=pl.String)
    parts = []
    for m in metrics:
        si = pl.col(symmetry_index(m)) if symmetry_index(m) in names else pl.lit(None)
        diff = pl.col(lr_difference(m)) if lr_difference(m) in names else pl.lit(None)
        parts.append(
            sessions.select(
                pl.col(ATHLETE_ID),
                pl.lit(m).alias(METRIC),
                pl.col(FOOT),
                pl.col(SESSION_ID),
                date.cast(pl.String).str.to_date("%Y-%m-%d", strict=False).alias(SESSION_DATE),
                pl.col(session_median(m)).cast(pl.Float64).alias(MEDIAN),
                si.cast(pl.Float64).alias(SYMMETRY_INDEX),
                diff.cast(pl.Float64).alias(LR_DIFFERENCE_DEG),
                count.cast(pl.Int64).alias(STRIDE_COUNT),
                activity.cast(pl.String).alias(ACTIVITY),
            )
        )
    return pl.concat(parts, how="vertical")


def _trend_columns(long: pl.LazyFrame, baseline_sessions: int) -> pl.LazyFrame:
    """Baseline, change and the expanding least-squares slope, per athlete, metric and foot."""
    has = pl.col(MEDIAN).is_not_null()
    rank = has.cast(pl.Int64).cum_sum().over(_GROUP)  # 1-based index among sessions with a median
    in_baseline = has & (rank <= baseline_sessions)
    baseline = pl.col(MEDIAN).filter(in_baseline).mean().over(_GROUP)
    first_day = pl.col(SESSION_DATE).filter(has).min().over(_GROUP)
    days = (pl.col(SESSION_DATE) - first_day).dt.total_days().cast(pl.Float64)
    usable = has & pl.col(DAYS).is_not_null()
    x = pl.when(usable).then(pl.col(DAYS)).otherwise(0.0)
    y = pl.when(usable).then(pl.col(MEDIAN)).otherwise(0.0)
    sums = {"_n": usable.cast(pl.Float64), "_sx": x, "_sy": y, "_sxx": x * x, "_sxy": x * y}
    n, sx, sy, sxx, sxy = (pl.col(c) for c in sums)
    denominator = n * sxx - sx * sx
    slope = (n * sxy - sx * sy) / denominator
    return (
        long.sort(*_GROUP, SESSION_DATE, SESSION_ID, nulls_last=True)
        .with_columns(baseline.alias(BASELINE), days.alias(DAYS))
        .with_columns([e.cum_sum().over(_GROUP).alias(name) for name, e in sums.items()])
        .with_columns(
            (pl.col(MEDIAN) - pl.col(BASELINE)).alias(CHANGE_FROM_BASELINE),
            pl.when((n >= 2) & (denominator > 0)).then(30.0 * slope).otherwise(None).alias(SLOPE_PER_30D),
        )
        .with_columns(
            pl.when(pl.col(BASELINE) != 0)
            .then(100.0 * pl.col(CHANGE_FROM_BASELINE) / pl.col(BASELINE).abs())
            .otherwise(None)
            .alias(CHANGE_PCT)
        )
        .select(list(TRENDS_SCHEMA))
    )


def trends_from_sessions(
    sessions: pl.LazyFrame | pl.DataFrame, metrics: tuple[str, ...] | list[str], baseline_sessions: int = 3
) -> pl.LazyFrame:
    """The trends of a sessions table (keys, `session_date`, `<metric>_median`, `<metric>_si_pct`)."""
    if baseline_sessions < 1:
        raise TrendError(f"baseline_sessions must be >= 1, got {baseline_sessions}")
    lf = sessions.lazy()
    names = lf.collect_schema().names()
    present = [m for m in metrics if session_median(m) in names]
    if not present:
        return empty_trends().lazy()
    return _trend_columns(_long(lf, present), baseline_sessions)


class TrendCalculator:
    """Trends of the stored `sessions` table; see the module docstring for every definition.

    Parameters
    ----------
    settings
        `TrendSettings`: baseline length (sessions) and the metrics (each in its own unit).

    Attributes
    ----------
    trends_ : pl.DataFrame
        TRENDS_SCHEMA, one row per athlete, metric, foot and session (changes in the metric's
        unit, `slope_per_30d` in unit per 30 days, `change_pct` in %).
    plan_ : pl.LazyFrame | None
        The lazy query that gave `trends_` (None when there was nothing to read).

    Notes
    -----
    strideflow's own definitions (baseline mean, ordinary least-squares slope), module docstring.
    """

    def __init__(self, settings: TrendSettings = TrendSettings()):
        self.settings = settings

    def compute(
        self, results_root: str | Path, athlete_id: str | None = None, metric: str | None = None
    ) -> TrendCalculator:
        """Fill `trends_` for one athlete (or all) and one metric (or `settings.metrics`)."""
        if metric is not None and metric not in METRICS:
            raise TrendError(
                f"metric={metric!r} is not a numeric stride metric; use one of {', '.join(METRICS)}"
            )
        unknown = [m for m in self.settings.metrics if m not in METRICS]
        if unknown:
            raise TrendError(f"TrendSettings.metrics has unknown metric(s) {', '.join(unknown)}")
        if athlete_id is not None:
            partitions.check_id(ATHLETE_ID, athlete_id)
        self.plan_ = None
        lf = partitions.scan_table(results_root, partitions.SESSIONS, athlete_id=athlete_id)
        if lf is None:
            self.trends_ = empty_trends()
            return self
        metrics = [metric] if metric is not None else list(self.settings.metrics)
        if metric is not None and session_median(metric) not in lf.collect_schema().names():
            raise TrendError(f"the stored sessions table has no {session_median(metric)} column")
        self.plan_ = trends_from_sessions(lf, metrics, self.settings.baseline_sessions)
        self.trends_ = self.plan_.collect()
        return self


def compute_trends(
    results_root: str | Path,
    athlete_id: str | None = None,
    metric: str | None = None,
    settings: TrendSettings = TrendSettings(),
) -> pl.DataFrame:
    """Shorthand for `TrendCalculator(settings).compute(results_root, athlete_id, metric).trends_`."""
    return TrendCalculator(settings).compute(results_root, athlete_id, metric).trends_
