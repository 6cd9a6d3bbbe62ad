"""The five real recordings (gaitmap example data) read with their known sample counts and rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.ingest import assert_valid_samples

from strideflow.hardware.schema import ACC, FOOT, GYR, INTERPOLATED, SATURATED, SEGMENT, T
from strideflow.ingest import IngestError, read_recording

# file, rate given (None: the file has a time column), feet, samples per foot, rate after ingest.
# Counts verified with `wc -l` (lines minus header rows) and pandas.
REAL = [
    ("imu_sample.csv", 204.8, ("left", "right"), 7928, 204.8),
    ("imu_sample_healthy_stair_up.csv", None, ("left", "right"), 5130, 204.8),
    ("imu_sample_healthy_stair_down.csv", None, ("left", "right"), 4488, 204.8),
    ("imu_sample_ic_stride.csv", 102.4, ("left", "right"), 4053, 102.4),
    ("imu_sample_ms_left.csv", 102.4, ("left",), 7000, 102.4),
    ("imu_sample_ms_right.csv", 102.4, ("right",), 7000, 102.4),
]


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "rate", "feet", "count", "expected_rate"), REAL)
def test_real_recordings_read_with_known_counts_and_rates(real_data, name, rate, feet, count, expected_rate):
    rec = read_recording(real_data / name, sampling_rate_hz=rate)
    assert rec.feet() == feet
    assert rec.sampling_rate_hz == pytest.approx(expected_rate, rel=1e-12)
    for foot in feet:
        assert rec.samples.filter(rec.samples[FOOT] == foot).height == count
    assert_valid_samples(rec.samples, rec.sampling_rate_hz)
    # clean recordings: nothing repaired, nothing flagged
    assert rec.warnings == ()
    assert rec.samples[SEGMENT].max() == 0
    assert not rec.samples[INTERPOLATED].any()
    assert not rec.samples[SATURATED].any()


@pytest.mark.real_data
def test_gaitmap_values_equal_the_file_and_time_follows_the_rate(real_data):
    rec = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)
    ref = pd.read_csv(real_data / "imu_sample.csv", header=[0, 1], index_col=0)
    for foot in ("left", "right"):
        mine = rec.samples.filter(rec.samples[FOOT] == foot)
        for axis in (*ACC, *GYR):
            np.testing.assert_array_equal(mine[axis].to_numpy(), ref[(f"{foot}_sensor", axis)].to_numpy())
        np.testing.assert_allclose(mine[T].to_numpy(), np.arange(7928) / 204.8, rtol=0, atol=1e-12)


@pytest.mark.real_data
def test_stair_time_column_is_used_and_ids_default_to_the_stem(real_data):
    rec = read_recording(real_data / "imu_sample_healthy_stair_up.csv")
    ref = pd.read_csv(real_data / "imu_sample_healthy_stair_up.csv", header=[0, 1], index_col=0)
    right = rec.samples.filter(rec.samples[FOOT] == "right")
    np.testing.assert_array_equal(right[T].to_numpy(), ref.index.to_numpy() - ref.index[0])
    np.testing.assert_array_equal(right["gyr_y"].to_numpy(), ref[("right_sensor", "gyr_y")].to_numpy())
    assert rec.athlete_id == rec.session_id == "imu_sample_healthy_stair_up"


@pytest.mark.real_data
def test_ms_files_ignore_both_index_columns_and_share_ids(real_data):
    left = read_recording(real_data / "imu_sample_ms_left.csv", sampling_rate_hz=102.4)
    right = read_recording(real_data / "imu_sample_ms_right.csv", sampling_rate_hz=102.4)
    ref = pd.read_csv(real_data / "imu_sample_ms_left.csv", index_col=0)
    np.testing.assert_array_equal(left.samples["acc_z"].to_numpy(), ref["acc_z"].to_numpy())
    # the `index` column (23000...) is a sample counter, not time: t starts at 0
    assert left.samples[T][0] == 0.0
    assert left.session_id == right.session_id == "imu_sample_ms"
    assert "index" not in left.samples.columns


@pytest.mark.real_data
def test_real_files_without_rate_name_the_missing_rate(real_data):
    with pytest.raises(IngestError, match=r"imu_sample\.csv.*sample index.*sampling_rate_hz"):
        read_recording(real_data / "imu_sample.csv")
    with pytest.raises(IngestError, match=r"imu_sample_ms_left\.csv.*no time column.*sampling_rate_hz"):
        read_recording(real_data / "imu_sample_ms_left.csv")


@pytest.mark.real_data
def test_a_wrong_rate_against_the_time_column_is_rejected(real_data):
    with pytest.raises(IngestError, match=r"204\.8 Hz but sampling_rate_hz=100"):
        read_recording(real_data / "imu_sample_healthy_stair_down.csv", sampling_rate_hz=100.0)


@pytest.mark.real_data
def test_foot_selects_one_sensor_of_a_two_foot_file(real_data):
    rec = read_recording(real_data / "imu_sample_ic_stride.csv", sampling_rate_hz=102.4, foot="right")
    assert rec.feet() == ("right",)
    assert [w.kind for w in rec.warnings] == ["ignored_sensor"]
