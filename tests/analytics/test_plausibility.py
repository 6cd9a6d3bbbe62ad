"""Plausibility limits per stride metric (analytics.plausibility) and the recording-level check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strideflow.analytics.plausibility import (
    LIMITS,
    WALK_RATIO_LIMITS,
    ImplausibleRecordingError,
    RecordingPlausibility,
    implausible_reason_expr,
    mark_implausible,
    reason_for,
)
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator

STRIDEFLOW = shutil.which("strideflow", path=str(Path(sys.executable).parent)) or shutil.which("strideflow")


def _stride(**values) -> dict:
    base = {
        S.CADENCE_SPM: 110.0,
        S.STANCE_TIME_S: 0.65,
        S.STRIDE_LENGTH_M: 1.4,
        S.SPEED_MPS: 1.3,
        S.FOOT_STRIKE_ANGLE_DEG: 20.0,
        S.PRONATION_EXCURSION_DEG: 8.0,
        S.MAX_PRONATION_VELOCITY_DPS: 250.0,
        S.TOE_OFF_PRONATION_DEG: 3.0,
        S.TOE_OFF_ANGLE_DEG: 65.0,
        S.PUSH_OFF_RATE_DPS: -600.0,
        S.HEEL_OFF_RATIO: 0.6,
        S.IMPACT_G: 4.0,
        S.ACTIVITY: "walk",
        S.VALID: True,
        S.REASON: None,
    }
    return {**base, **values}


@pytest.mark.parametrize(
    ("metric", "value"),
    [
        (S.CADENCE_SPM, 20.0),
        (S.STANCE_TIME_S, 2.5),
        (S.STRIDE_LENGTH_M, 3.4),  # beyond a walking stride (a run may reach it)
        (S.TOE_OFF_PRONATION_DEG, -155.9),
        (S.PRONATION_EXCURSION_DEG, 55.0),
        (S.MAX_PRONATION_VELOCITY_DPS, 2500.0),
        (S.IMPACT_G, 80.0),
    ],
)
def test_a_stride_beyond_a_limit_is_invalid_with_its_reason(metric, value):
    strides = pl.DataFrame([_stride(), _stride(**{metric: value})])
    out = mark_implausible(strides.lazy()).collect()
    assert out[S.VALID].to_list() == [True, False]
    assert out[S.REASON].to_list() == [None, reason_for(metric)]


def test_running_strides_may_be_longer_than_walking_ones():
    strides = pl.DataFrame([_stride(**{S.STRIDE_LENGTH_M: 3.4, S.SPEED_MPS: 5.0, S.ACTIVITY: "run"})])
    assert mark_implausible(strides.lazy()).collect()[S.VALID].item()


def test_an_invalid_stride_keeps_its_first_reason():
    strides = pl.DataFrame([_stride(**{S.VALID: False, S.REASON: "turn", S.CADENCE_SPM: 5.0})])
    out = mark_implausible(strides.lazy()).collect()
    assert out[S.REASON].item() == "turn" and not out[S.VALID].item()


@settings(max_examples=60, deadline=None)
@given(
    metric=st.sampled_from(sorted(LIMITS)),
    value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e5, max_value=1e5),
)
def test_reason_is_set_exactly_when_a_value_leaves_its_range(metric, value):
    lo, hi, lo_exclusive = LIMITS[metric]
    row = _stride(**{metric: value, S.ACTIVITY: "run"})
    reason = pl.DataFrame([row]).select(implausible_reason_expr(list(row))).item()
    outside = (lo is not None and (value <= lo if lo_exclusive else value < lo)) or (
        hi is not None and value > hi
    )
    assert (reason == reason_for(metric)) == outside


@pytest.mark.parametrize("activity", ["walk", "run", "mixed"])
def test_simulated_truth_is_always_plausible(activity):
    sim = Simulator(SimulationSettings(activity=activity, duration_s=60, seed=11)).simulate()
    truth = sim.truth_strides_.filter(pl.col(S.VALID))
    assert truth.height > 20
    reasons = truth.select(implausible_reason_expr(truth.columns)).to_series()
    assert reasons.null_count() == truth.height


def test_mostly_implausible_strides_fail_naming_the_rate():
    strides = pl.DataFrame(
        [_stride(**{S.CADENCE_SPM: 54.0, S.STANCE_TIME_S: 1.44})] * 2
        + [_stride(**{S.CADENCE_SPM: 54.0, S.VALID: False, S.REASON: reason_for(S.STRIDE_LENGTH_M)})] * 8
    )
    with pytest.raises(ImplausibleRecordingError, match=r"8 of 10 strides .* --rate"):
        RecordingPlausibility().check(strides, 100.0, "x.csv")
    fine = strides.with_columns(pl.lit(True).alias(S.VALID), pl.lit(None, dtype=pl.String).alias(S.REASON))
    assert RecordingPlausibility().check(fine, 100.0).implausible_fraction_ == 0.0


@pytest.mark.parametrize(
    ("cadence", "length", "activity", "fails"),
    [
        (110.0, 1.4, "walk", None),  # walk ratio 0.0064: a healthy walker's
        (107.0, 0.53, "walk", None),  # stairs: one tread per step (0.0025, the stair files)
        (215.0, 0.31, "walk", "too high"),  # imu_sample.csv analysed at --rate 400 (0.0007)
        (54.0, 2.8, "walk", "too low"),  # a rate set too low (0.026)
        (215.0, 0.31, "run", None),  # the walk ratio is a walking rule
    ],
)
def test_walk_ratio_of_the_walking_strides_reveals_a_wrong_rate(cadence, length, activity, fails):
    """Issue 18: a rate set too high passed every per-stride limit; the median walk ratio (step
    length / cadence) of the walking strides is held against WALK_RATIO_LIMITS, which enclose the
    real walks' per-foot medians 0.0058-0.0079 and the stairs' 0.0025."""
    lo, hi = WALK_RATIO_LIMITS
    assert lo < 0.0025 and 0.0079 < hi
    row = _stride(
        **{S.CADENCE_SPM: cadence, S.STRIDE_LENGTH_M: length, S.SPEED_MPS: 1.0, S.ACTIVITY: activity}
    )
    odd = _stride(**{S.CADENCE_SPM: 110.0, S.STRIDE_LENGTH_M: 0.2})  # one short stride does not decide
    strides = mark_implausible(pl.DataFrame([row] * 9 + [odd]).lazy()).collect()
    assert strides[S.VALID].all()
    if fails is None:
        check = RecordingPlausibility().check(strides, 204.8, "x.csv")
        assert check.implausible_fraction_ == 0.0
        assert (check.walk_ratio_ is None) == (activity == "run")
    else:
        with pytest.raises(ImplausibleRecordingError, match=rf"x.csv: .* walk ratio .* set {fails}") as err:
            RecordingPlausibility().check(strides, 204.8, "x.csv")
        assert "204.8 Hz" in str(err.value) and "--rate" in str(err.value)
    few = RecordingPlausibility().check(strides.head(5), 204.8)
    assert few.walk_ratio_ is None  # too few strides to judge


@pytest.mark.real_data
def test_cli_wrong_rate_fails_with_the_likely_cause(real_data, tmp_path):
    assert STRIDEFLOW, "the strideflow console script is not installed"
    env = {**os.environ, "COLUMNS": "200"}
    path = str(real_data / "imu_sample.csv")
    p = subprocess.run(
        [STRIDEFLOW, "analyze", path, "--rate", "100", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert p.returncode == 1
    message = " ".join(p.stderr.split())
    assert "strides are physically implausible" in message
    assert "sampling rate set too low" in message and "--rate" in message
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "o" / "strides.parquet").exists()
    ok = subprocess.run(
        [STRIDEFLOW, "analyze", path, "--rate", "204.8", "--out", str(tmp_path / "ok")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    strides = pl.read_parquet(tmp_path / "ok" / "strides.parquet")
    assert not strides[S.REASON].drop_nulls().str.starts_with("implausible_").any()


@pytest.mark.real_data
def test_cli_rate_set_too_high_fails_naming_the_rate(real_data, tmp_path):
    """Issue 18: `analyze --rate 400` on the 204.8 Hz file passed every limit (walking at cadence 215
    with 0.31 m strides); the walk ratio catches it and the message names the rate."""
    assert STRIDEFLOW, "the strideflow console script is not installed"
    p = subprocess.run(
        [
            STRIDEFLOW,
            "analyze",
            str(real_data / "imu_sample.csv"),
            "--rate",
            "400",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert p.returncode == 1, p.stderr
    message = " ".join(p.stderr.split())
    assert "not a human walk at 400 Hz" in message and "walk ratio" in message, message
    assert "sampling rate set too high" in message and "slower than 400 Hz" in message, message
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "o" / "strides.parquet").exists()
