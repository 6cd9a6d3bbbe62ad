"""The footprint walks (../shared/data/footprints_walks), each read and analysed once per test run."""

from __future__ import annotations

from functools import cache

import polars as pl
import pytest

from strideflow.analytics.pipeline import analyze_recording
from strideflow.ingest import Recording, read_recording
from support.paths import SHARED_DATA

WALKS = SHARED_DATA / "footprints_walks"
MISSING = f"footprint walks not found at {WALKS} (../shared/data/footprints_walks)"
needs_walks = pytest.mark.skipif(not WALKS.is_dir(), reason=MISSING)


@cache
def analysed_walk(trial: int) -> tuple[Recording, pl.DataFrame]:
    """One walk as the SensorConnect reader reads it, and its strides with the default settings
    (callers must not change either)."""
    rec = read_recording(WALKS / f"SensorConnectData_{trial}.csv")
    return rec, analyze_recording(rec).strides
