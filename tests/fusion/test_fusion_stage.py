"""The fusion stage: samples table in, orientation table out, each group filtered on its own."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strideflow.benchmarks._common import synthetic_imu
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.mahony import Mahony
from strideflow.fusion.settings import FusionInputError, MadgwickSettings, MahonySettings
from strideflow.fusion.stage import estimate_orientation
from strideflow.hardware.schema import (
    ACC,
    ATHLETE_ID,
    FOOT,
    GYR,
    KEYS,
    MAG,
    ORIENTATION_SCHEMA,
    QUAT,
    SEGMENT,
    SESSION_ID,
    T,
)


def recording(athlete: str, session: str, foot: str, n: int, rate: float, seed: int, mag=False):
    d = synthetic_imu(n, rate, seed=seed)
    cols = {ATHLETE_ID: [athlete] * n, SESSION_ID: [session] * n, FOOT: [foot] * n, T: d["t"] + 3.0}
    cols.update({c: d["acc_mps2"][:, i] for i, c in enumerate(ACC)})
    cols.update({c: d["gyr_dps"][:, i] for i, c in enumerate(GYR)})
    if mag:
        cols.update({c: d["mag_ut"][:, i] for i, c in enumerate(MAG)})
    return pl.DataFrame(cols), d


def quats(df: pl.DataFrame) -> np.ndarray:
    return df.select(QUAT).to_numpy()


def test_each_group_equals_a_single_run_and_schema_holds():
    left, dl = recording("a1", "s1", "left", 500, 200.0, 1)
    right, dr = recording("a1", "s1", "right", 300, 200.0, 2)
    other, do = recording("a2", "s1", "left", 200, 200.0, 3)
    samples = pl.concat([left, right, other])
    out = estimate_orientation(samples, 200.0)
    assert out.schema == pl.Schema(ORIENTATION_SCHEMA)
    assert out.height == samples.height
    assert out.select(KEYS).equals(samples.select(KEYS))
    np.testing.assert_array_equal(out[T].to_numpy(), samples[T].to_numpy())
    for (lo, hi), d in zip([(0, 500), (500, 800), (800, 1000)], [dl, dr, do], strict=True):
        ref = Madgwick().estimate(d["acc_mps2"], d["gyr_dps"], 200.0).orientation_
        np.testing.assert_array_equal(quats(out)[lo:hi], ref)


def test_interleaved_rows_are_grouped_and_segments_restart():
    left, dl = recording("a1", "s1", "left", 400, 100.0, 4)
    right, dr = recording("a1", "s1", "right", 400, 100.0, 5)
    interleaved = pl.concat([left.with_row_index("i"), right.with_row_index("i")]).sort(
        "i", maintain_order=True
    )
    interleaved = interleaved.drop("i").with_columns(
        pl.when(pl.col(T) < 5.0).then(0).otherwise(1).cast(pl.Int32).alias(SEGMENT)
    )
    out = estimate_orientation(interleaved, 100.0, MahonySettings())
    assert SEGMENT in out.columns
    for foot, d in (("left", dl), ("right", dr)):
        got = quats(out.filter(pl.col(FOOT) == foot))
        cut = int(np.searchsorted(d["t"] + 3.0, 5.0))
        first = Mahony().estimate(d["acc_mps2"][:cut], d["gyr_dps"][:cut], 100.0).orientation_
        second = Mahony().estimate(d["acc_mps2"][cut:], d["gyr_dps"][cut:], 100.0).orientation_
        np.testing.assert_array_equal(got, np.concatenate([first, second]))


def test_rates_per_group_time_steps_and_magnetometer():
    a, da = recording("a1", "s1", "left", 300, 102.4, 6, mag=True)
    b, db = recording("a1", "s1", "right", 300, 204.8, 7, mag=True)
    samples = pl.concat([a, b])
    rates = {("a1", "s1", "left"): 102.4, ("a1", "s1", "right"): 204.8}
    out = estimate_orientation(samples, rates, use_magnetometer=True)
    ref = Madgwick().estimate(db["acc_mps2"], db["gyr_dps"], 204.8, mag_ut=db["mag_ut"]).orientation_
    np.testing.assert_array_equal(quats(out)[300:], ref)
    jitter = np.concatenate([[0.0], np.cumsum(np.random.default_rng(1).uniform(0.004, 0.006, 299))])
    irregular = a.with_columns(pl.Series(T, jitter))
    out = estimate_orientation(irregular, 1.0, method="mahony", dt_from_t=True)
    ref = Mahony().estimate(da["acc_mps2"], da["gyr_dps"], dt_s=np.diff(jitter)).orientation_
    np.testing.assert_array_equal(quats(out), ref)


def test_stage_errors_name_the_problem():
    samples, _ = recording("a1", "s1", "left", 50, 100.0, 8)
    with pytest.raises(FusionInputError, match="gyr_y"):
        estimate_orientation(samples.drop("gyr_y"), 100.0)
    bad = samples.with_columns(
        pl.when(pl.int_range(pl.len()) == 17).then(None).otherwise(pl.col("acc_z")).alias("acc_z")
    )
    with pytest.raises(FusionInputError, match="acc_z .* row 17"):
        estimate_orientation(bad, 100.0)
    with pytest.raises(FusionInputError, match="needs MahonySettings"):
        estimate_orientation(samples, 100.0, MadgwickSettings(), method="mahony")
    with pytest.raises(FusionInputError, match="no sampling rate"):
        estimate_orientation(samples, {("x", "y", "left"): 100.0})
    back = samples.with_columns(pl.when(pl.int_range(pl.len()) == 9).then(0.0).otherwise(pl.col(T)).alias(T))
    with pytest.raises(FusionInputError, match="row 9"):
        estimate_orientation(back, 100.0, dt_from_t=True)
    empty = estimate_orientation(samples.head(0), 100.0)
    assert empty.height == 0 and list(empty.columns) == list(ORIENTATION_SCHEMA)
