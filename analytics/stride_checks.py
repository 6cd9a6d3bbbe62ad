"""What every strides table gets once its metrics are computed, batch and live alike: the
activity of each stride (`analytics.activity`), then the plausibility limits per metric
(`analytics.plausibility`), which read the activity (walking has tighter length and speed limits)."""

from __future__ import annotations

import polars as pl

from strideflow.analytics.activity import with_activity
from strideflow.analytics.plausibility import mark_implausible


def finish_strides(strides: pl.LazyFrame) -> pl.LazyFrame:
    """`strides` (metrics computed, `valid`/`reason` set) with `activity` and the plausibility limits."""
    return mark_implausible(with_activity(strides))
