"""Gyro-accelerometer delay: estimated from the ZUPT velocity residual, known answers on the simulator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from strideflow.analytics.pipeline import AnalysisSettings, analyze_samples
from strideflow.fusion.sensor_delay import GyroDelayEstimator, delay_gyro
from strideflow.hardware.profiles import DEFAULT_PROFILE
from strideflow.hardware.simulator import SimulationSettings, Simulator

FS = 200.0


def _left(activity: str, delay_s: float, seed: int) -> pl.DataFrame:
    # Gain errors of an uncalibrated gyro (on by default since issue 15) shift the ZUPT residual as a
    # delay does (a 2 % gain looks like ~5 ms); the delay's own recovery is checked without them.
    profile = replace(DEFAULT_PROFILE, gyr_delay_s=delay_s, gyr_scale_error=0.0, gyr_misalignment_deg=0.0)
    sim = Simulator(
        SimulationSettings(
            activity=activity, duration_s=40.0, seed=seed, profile=profile, sampling_rate_hz=FS
        )
    ).simulate()
    return sim.samples_.filter(pl.col("foot") == "left")


def _xyz(part: pl.DataFrame, prefix: str) -> np.ndarray:
    return part.select(f"{prefix}_x", f"{prefix}_y", f"{prefix}_z").to_numpy()


def test_delay_gyro_reads_the_channel_later():
    t = np.arange(100) / FS
    gyr = np.column_stack([t, 2 * t, -t])
    out = delay_gyro(gyr, t, 0.0125)
    assert np.allclose(out[:-3], gyr[:-3] + np.array([1.0, 2.0, -1.0]) * 0.0125)
    assert np.array_equal(delay_gyro(gyr, t, 0.0), gyr)


@pytest.mark.parametrize(
    ("activity", "delay_s", "seed"), [("walk", 0.005, 3), ("run", -0.003, 4), ("walk", 0.0, 5)]
)
def test_simulated_gyro_delay_is_recovered_within_a_millisecond(activity, delay_s, seed):
    part = _left(activity, delay_s, seed)
    est = GyroDelayEstimator().estimate(_xyz(part, "acc"), _xyz(part, "gyr"), FS)
    assert est.identified_, est.contrast_
    assert abs(est.delay_s_ - delay_s) <= 0.001, est.delay_s_


def test_pipeline_estimates_reports_and_undoes_the_delay():
    part = _left("walk", 0.006, 6)
    res = analyze_samples(part, FS, AnalysisSettings(gyr_delay_s="estimate"))
    assert abs(res.gyr_delay_s["left"] - 0.006) <= 0.001
    assert any("gyro lags the accelerometer by +6" in w or "by +5" in w for w in res.warnings), res.warnings
    plain = analyze_samples(part, FS)
    assert plain.gyr_delay_s["left"] == 0.0
    # Undoing the delay makes the strides longer again (the simulated delay shortens them).
    assert res.strides["stride_length_m"].median() > plain.strides["stride_length_m"].median()


def test_live_analysis_refuses_a_gyro_delay_it_would_not_apply():
    from strideflow.analytics.live_analyzer import LiveError, LiveSettings, LiveStrideAnalyzer

    with pytest.raises(LiveError, match="gyr_delay_s"):
        LiveStrideAnalyzer(
            "a", "s", "left", FS, LiveSettings(analysis=AnalysisSettings(gyr_delay_s="estimate"))
        )
