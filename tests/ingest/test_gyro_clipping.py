"""Gyro samples clipped at the device's range, rebuilt across each clipped run (`ingest.clipping`).

Known answers (a clipped smooth pulse, the simulator's exact running gyro clipped at the LORD
pod's 500 deg/s) and properties on arbitrary input; the reader test is in test_device_formats.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strideflow.hardware.profiles import DEFAULT_PROFILE, PROFILES
from strideflow.hardware.schema import GYR
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.hardware.simulator.params import AthleteParams, typical_run
from strideflow.ingest.clipping import CLIP_FRACTION, clipped_runs, rebuild_clipped

RANGE_DPS = PROFILES["lord-3dm-gx5-25"].gyr_range_dps


def lost_and_left_deg(true: np.ndarray, t: np.ndarray, range_dps: float) -> tuple[float, float]:
    """Angle (deg) the clipping lost over all clipped runs, and what is still missing once rebuilt."""
    clipped = np.clip(true, -range_dps, range_dps)
    rebuilt, _ = rebuild_clipped(t, clipped, range_dps)
    dt = np.gradient(t)
    return float(np.sum(np.abs(true - clipped) * dt)), float(np.sum(np.abs(true - rebuilt) * dt))


def test_runs_split_where_the_sign_changes_and_end_at_the_data():
    x = np.array([0.0, 490.0, 500.0, -500.0, -499.0, 3.0, 0.0, 600.0])
    assert clipped_runs(x, 485.0).tolist() == [[1, 3], [3, 5], [7, 8]]
    assert clipped_runs(np.zeros(0), 485.0).shape == (0, 2)


def test_a_clipped_pulse_gets_back_nearly_all_of_its_angle():
    # A sine of 1000 deg/s amplitude (2 Hz, 200 Hz) clipped at 500 deg/s loses 218 deg in all;
    # the cubic across each run gives back all but 15 deg of it, and peaks near 1000.
    t = np.arange(400) / 200.0
    true = 1000.0 * np.sin(2 * np.pi * 2.0 * t)
    lost, left = lost_and_left_deg(true, t, RANGE_DPS)
    assert lost > 400.0
    assert left < 0.1 * lost
    rebuilt, n = rebuild_clipped(t, np.clip(true, -RANGE_DPS, RANGE_DPS), RANGE_DPS)
    # no run touches the ends: every sample at the clip level is rebuilt
    assert n == np.count_nonzero(np.abs(np.clip(true, -RANGE_DPS, RANGE_DPS)) >= CLIP_FRACTION * RANGE_DPS)
    assert 900.0 < rebuilt.max() < 1100.0 and -1100.0 < rebuilt.min() < -900.0


@pytest.mark.parametrize("speed_mps, cadence_spm", [(2.6, 160.0), (3.3, 150.0), (4.0, 165.0)])
def test_the_simulated_running_gyro_clipped_at_the_lord_range_gets_most_of_its_angle_back(
    speed_mps, cadence_spm
):
    # The simulator's exact running foot (noise-free, no ADC) peaks at 1050-1100 deg/s; clipped at
    # the LORD pod's 500 deg/s it loses 12-19 deg per clipped run, and the rebuilt runs keep 11-20 %
    # of that (measured 11, 11, 19 %).
    ideal = replace(DEFAULT_PROFILE, name="ideal-gyro", gyr_scale_error=0.0, gyr_misalignment_deg=0.0)
    gait = replace(typical_run(), speed_mps=speed_mps, cadence_spm=cadence_spm, stance_roll_dps=35.0)
    sim = Simulator(
        SimulationSettings(
            activity="run",
            duration_s=20.0,
            seed=5,
            noise=False,
            adc=False,
            profile=ideal,
            athlete=AthleteParams(run=gait),
        )
    ).simulate()
    left = sim.samples_.filter(pl.col("foot") == "left")
    t = left["t"].to_numpy()
    lost = left_over = 0.0
    for c in GYR:
        a, b = lost_and_left_deg(left[c].to_numpy(), t, RANGE_DPS)
        lost, left_over = lost + a, left_over + b
    assert lost > 300.0
    assert left_over <= 0.25 * lost


@settings(max_examples=200, deadline=None)
@given(
    x=arrays(np.float64, st.integers(0, 60), elements=st.floats(-800.0, 800.0, allow_nan=False)),
    range_dps=st.floats(100.0, 2000.0),
)
def test_only_clipped_runs_change_and_never_shrink(x, range_dps):
    t = np.arange(x.size) / 200.0
    out, n = rebuild_clipped(t, x, range_dps)
    changed = out != x
    at_range = np.abs(x) >= CLIP_FRACTION * range_dps
    assert out.shape == x.shape and np.isfinite(out).all()
    assert not (changed & ~at_range).any()  # samples below the clip level are never touched
    assert n >= np.count_nonzero(changed) and n <= np.count_nonzero(at_range)
    assert (np.abs(out) >= np.abs(x)).all() and (np.sign(out[changed]) == np.sign(x[changed])).all()
    for a, b in clipped_runs(x, CLIP_FRACTION * range_dps):
        if a == 0 or b == x.size:  # a run at either end has no slope to start from: as read
            assert not changed[a:b].any()
