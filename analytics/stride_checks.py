"""What every strides table gets once its metrics are computed, batch and live alike: the
activity of each stride (`analytics.activity`)."""

from __future__ import annotations

import polars as pl

from strideflow.analytics.activity import with_activity


def finish_strides(strides: pl.LazyFrame) -> pl.LazyFrame:
    """`strides` (metrics computed, `valid`/`reason` set) with `activity`."""
    return with_activity(strides)
