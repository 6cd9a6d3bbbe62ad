"""Behaviour fingerprint: every table of the reference runs equals the stored one, bit for bit.

The runs (the real recordings through `strideflow analyze`, a small simulated dataset with gaps
and a saturated file through the team batch's task and the upload job, live replays through the
live analyzer) are described in tests/reference_runs.py; their tables are stored as Parquet in
tests/data/fingerprint/. A refactor must leave them unchanged. A change that alters behaviour on
purpose (shoe frame, detection, ...) regenerates them, and says so in its commit:

    python tests/reference_runs.py

(needs ../shared/data/gaitmap_example; ~30 s).

Tolerance (`reference_runs.FLOAT_TOLERANCE`): strings, booleans, integers and nulls are compared
exactly; float columns within 1e-12, absolute or relative to the value where it exceeds 1. Why,
per case (a change that reorders float arithmetic on purpose adds its line here):

- issue 14: the mounting estimate's stillness-weighted gyroscope bias is the levelling's
  (`hardware.motion_math.still_gyr_bias`, summed sample after sample) instead of a BLAS dot
  product of its own; every table downstream of the mounting (all of them) moved by at most
  6.8e-13 absolute (max pronation velocity, deg/s); stride events and validity unchanged.
"""

from __future__ import annotations

import polars as pl
import pytest
from reference_runs import FINGERPRINT_DIR, differences, have_real_data, reference_tables

STORED = sorted(p.stem for p in FINGERPRINT_DIR.glob("*.parquet"))
# Tables that hold (or are summarised over) the real recordings.
NEEDS_REAL_DATA = ("analyze", "jobs_", "live_real_")


@pytest.fixture(scope="module")
def current() -> dict[str, pl.DataFrame]:
    return reference_tables()


def test_the_fingerprint_covers_every_entry_path():
    prefixes = {name.split("_")[0] for name in STORED}
    assert {"analyze0", "batch", "jobs", "live"} <= prefixes
    for path in ("batch", "jobs", "live_sim"):
        assert f"{path}_strides" in STORED


@pytest.mark.parametrize("name", STORED)
def test_table_equals_the_stored_fingerprint(name, current):
    if name.startswith(NEEDS_REAL_DATA) and not have_real_data():
        pytest.skip(f"{name} needs the real recordings (../shared/data/gaitmap_example)")
    assert name in current, f"the reference runs no longer make {name}"
    stored = pl.read_parquet(FINGERPRINT_DIR / f"{name}.parquet")
    problems = differences(name, stored, current[name])
    assert not problems, "\n".join(problems)


def test_no_table_is_new_and_unstored(current):
    assert set(current) <= set(STORED)
