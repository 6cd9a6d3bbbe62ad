"""What every strides table gets once its metrics are computed, batch and live alike: the
activity of each stride (`analytics.activity`), then the plausibility limits per metric
(`analytics.plausibility`), which read the activity (walking has tighter length and speed limits)."""

from __future__ import annotations

import polars as pl

from strideflow.analytics.activity import activity_expr, with_activity
from strideflow.analytics.plausibility import mark_implausible, mark_implausible_stages
from strideflow.hardware.schema import ACTIVITY


def finish_strides(strides: pl.LazyFrame) -> pl.LazyFrame:
    """`strides` (metrics computed, `valid`/`reason` set) with `activity` and the plausibility limits."""
    return mark_implausible(with_activity(strides))


def finish_strides_stages(names: tuple[str, ...]) -> tuple[tuple[pl.Expr, ...], ...]:
    """What `finish_strides` adds to a table with these column names, as the expressions of its
    `with_columns` steps in order (built once per names; `StrideMetrics` reuses them per query).
    They leave the scratch column `_implausible`, which the caller's final select drops."""
    after = names if ACTIVITY in names else (*names, ACTIVITY)
    return ((activity_expr().alias(ACTIVITY),), *mark_implausible_stages(after))
