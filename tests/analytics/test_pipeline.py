"""The analysis pipeline end to end on the real recordings (references: hand labels, rotation invariance)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.spatial.transform import Rotation

from strideflow.analytics.flags import FLAGS_SCHEMA
from strideflow.analytics.pipeline import (
    REASON_GAP,
    AnalysisSettings,
    analyze_recording,
    analyze_samples,
)
from strideflow.hardware import schema as S
from strideflow.ingest import read_recording

pytestmark = pytest.mark.real_data
FS = 204.8


@pytest.fixture(scope="module")
def healthy(real_data):
    recording = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=FS)
    return recording, analyze_recording(recording)


def test_tables_follow_the_contract(healthy):
    _, result = healthy
    strides = result.strides
    # the contract's columns in order, then the extra columns (censoring, the mounting's uncertainty,
    # the mounting's id and whether it began with a remount in this session)
    extra = {
        S.PRONATION_EXCURSION_CENSORED: pl.Boolean(),
        S.MOUNTING_UNCERTAINTY_DEG: pl.Float64(),
        S.MOUNTING_ID: pl.String(),
        S.REMOUNT: pl.Boolean(),
    }
    assert strides.schema == pl.Schema({**S.STRIDES_SCHEMA, **extra})
    assert set(strides[S.FOOT]) == {"left", "right"}
    assert result.flags.schema == pl.Schema(FLAGS_SCHEMA)
    assert result.sessions.height == 2
    for m in S.METRICS:
        for name in (S.session_median(m), S.session_iqr(m), S.symmetry_index(m)):
            assert name in result.sessions.columns
    for foot in ("left", "right"):
        assert result.signals[foot].schema == pl.Schema(S.SIGNALS_SCHEMA)
    valid = strides.filter(pl.col(S.VALID))
    # Every metric of a valid stride is there, except on the gait start those that read its ic_t
    # (the start of the standing, no contact), which are null there and only there.
    start = valid[S.CONTEXT].eq_missing(S.CONTEXT_GAIT_START).to_numpy()
    assert start.sum() == 2  # one per foot
    assert valid.filter(~start).select(S.METRICS).null_count().sum_horizontal().item() == 0
    needs_ic = [m for m in S.METRICS if m in S.NEEDS_IC]
    assert valid.filter(start).select(needs_ic).null_count().min_horizontal().item() == 2
    assert (
        valid.filter(start).select(set(S.METRICS) - set(needs_ic)).null_count().sum_horizontal().item() == 0
    )
    # Invalid strides say why; valid ones do not; steady = valid without a context.
    assert (strides[S.REASON].is_null() == strides[S.VALID]).all()
    assert (strides[S.STEADY] == (strides[S.VALID] & strides[S.CONTEXT].is_null())).all()


def test_stride_times_agree_with_the_hand_labels(healthy, real_data):
    _, result = healthy
    labels = pl.read_csv(real_data / "stride_borders_sample.csv")
    for foot, n_labels in (("left", 28), ("right", 30)):
        lab = labels.filter(pl.col("foot") == foot)
        label_time = ((lab["end"] - lab["start"]) / FS).median()
        valid = result.strides.filter((pl.col(S.FOOT) == foot) & pl.col(S.VALID))
        assert valid.height >= 0.9 * n_labels
        # Labelled strides run toe-off to toe-off, ours IC to IC: same cadence on straight walking.
        assert valid[S.STRIDE_TIME_S].median() == pytest.approx(label_time, rel=0.02)
        assert valid[S.CADENCE_SPM].median() == pytest.approx(120.0 / label_time, rel=0.02)


def test_metrics_are_physiologically_plausible_on_healthy_walking(healthy):
    _, result = healthy
    by_foot = {r[S.FOOT]: r for r in result.sessions.iter_rows(named=True)}
    for row in by_foot.values():
        assert 0.55 < row[S.session_median(S.STANCE_TIME_S)] < 0.85
        assert 0.58 < row[S.session_median(S.DUTY_FACTOR)] < 0.70  # walking: stance ~ 60-65 % of the stride
        assert 1.1 < row[S.session_median(S.STRIDE_LENGTH_M)] < 1.7
        assert 15.0 < row[S.session_median(S.FOOT_STRIKE_ANGLE_DEG)] < 40.0  # heel strike
        assert 40.0 < row[S.session_median(S.TOE_OFF_ANGLE_DEG)] < 80.0
        assert 0.0 < row[S.session_median(S.PRONATION_EXCURSION_DEG)] < 20.0
        assert 1.5 < row[S.session_median(S.IMPACT_G)] < 20.0
    # Speed of two 20 m walks at a normal pace.
    speeds = [r[S.session_median(S.SPEED_MPS)] for r in by_foot.values()]
    assert all(1.0 < v < 1.6 for v in speeds)
    strikes = result.strides.filter(pl.col(S.VALID))[S.STRIKE_TYPE]
    assert (strikes == "rearfoot").mean() > 0.9


def test_metrics_do_not_depend_on_how_the_sensor_is_mounted(healthy):
    # Turning the pod on the shoe by right angles (it stays square: one of its axes still along the
    # shoe, hardware.shoe_axis) is undone by the mounting alignment. An arbitrary turn is not: the
    # shoe axis of an askew pod cannot be told from walking (tests/hardware/test_mounting.py covers the
    # equivariant walking heading).
    recording, reference = healthy
    rng = np.random.default_rng(7)
    cube = Rotation.create_group("O")
    rotations = {foot: cube[int(rng.integers(1, len(cube)))] for foot in ("left", "right")}
    parts = []
    for foot in ("left", "right"):
        part = recording.samples.filter(pl.col(S.FOOT) == foot)
        m = rotations[foot].as_matrix()
        acc = part.select(S.ACC).to_numpy() @ m.T
        gyr = part.select(S.GYR).to_numpy() @ m.T
        parts.append(
            part.with_columns(
                *[pl.Series(c, acc[:, i]) for i, c in enumerate(S.ACC)],
                *[pl.Series(c, gyr[:, i]) for i, c in enumerate(S.GYR)],
            )
        )
    rotated = analyze_samples(pl.concat(parts), FS)
    key = [S.FOOT, S.STRIDE_INDEX]
    both = reference.strides.join(rotated.strides, on=key, suffix="_rot")
    assert both.height >= 0.95 * reference.strides.height
    valid = both.filter(pl.col(S.VALID) & pl.col(f"{S.VALID}_rot"))
    for metric, tol in (
        (S.PRONATION_EXCURSION_DEG, 0.3),
        (S.TOE_OFF_ANGLE_DEG, 0.5),
        (S.FOOT_STRIKE_ANGLE_DEG, 0.5),
        (S.STRIDE_LENGTH_M, 0.02),
    ):
        diff = (valid[metric] - valid[f"{metric}_rot"]).abs()
        assert diff.median() < tol, metric


def test_ingest_gaps_invalidate_the_strides_that_span_them(real_data):
    recording = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=FS)
    samples = recording.samples
    # Pretend ingest filled a short gap in the middle of the walk on the left foot.
    gap_t = 10.0
    marked = samples.with_columns(
        ((pl.col(S.FOOT) == "left") & ((pl.col(S.T) - gap_t).abs() < 0.02)).alias(S.INTERPOLATED)
    )
    result = analyze_samples(marked, FS)
    hit = result.strides.filter(
        (pl.col(S.FOOT) == "left") & (pl.col(S.IC_T) <= gap_t) & (pl.col(S.NEXT_IC_T) > gap_t)
    )
    assert hit.height == 1
    assert hit[S.VALID][0] is False and hit[S.REASON][0] == REASON_GAP
    assert result.strides.filter(pl.col(S.REASON) == REASON_GAP).height == 1


@pytest.mark.parametrize(
    ("name", "rate", "feet", "min_strides"),
    [
        # 8 on the right: 10 of its 18 strides swing 3-25 ms (the toe-off placed at the swing's end,
        # the push-off missed), invalid as implausible_swing_time_s
        ("imu_sample_healthy_stair_up.csv", None, ("left", "right"), 8),
        ("imu_sample_healthy_stair_down.csv", None, ("left", "right"), 10),
        ("imu_sample_ms_left.csv", 102.4, ("left",), 40),
        ("imu_sample_ms_right.csv", 102.4, ("right",), 40),
        ("imu_sample_ic_stride.csv", 102.4, ("left", "right"), 14),
    ],
)
def test_other_recordings_run_with_plausible_stride_counts(real_data, name, rate, feet, min_strides):
    recording = read_recording(real_data / name, sampling_rate_hz=rate)
    result = analyze_recording(recording)
    for foot in feet:
        part = result.strides.filter(pl.col(S.FOOT) == foot)
        n_valid = part[S.VALID].sum()
        duration = recording.duration_s
        # At least `min_strides` and no more strides than one per 0.7 s of recording.
        assert min_strides <= n_valid <= duration / 0.7, (foot, n_valid)


def test_settings_choose_the_orientation_method(healthy):
    recording, madgwick = healthy
    levelled = analyze_recording(recording, AnalysisSettings(orientation="zero_velocity"))
    a = madgwick.sessions.sort(S.FOOT)
    b = levelled.sessions.sort(S.FOOT)
    # Two independent orientation estimates agree on the medians to within a degree or so.
    for metric, tol in (
        (S.PRONATION_EXCURSION_DEG, 1.0),
        (S.TOE_OFF_ANGLE_DEG, 3.0),
        (S.FOOT_STRIKE_ANGLE_DEG, 2.0),
    ):
        col = S.session_median(metric)
        assert np.allclose(a[col], b[col], atol=tol), metric
