"""Foot label check: a foot everts after contact; read as the other foot it inverts."""

from __future__ import annotations

import polars as pl
import pytest
from support.paths import SHARED_DATA

from strideflow.analytics.foot_side import FootSideCheck
from strideflow.analytics.pipeline import analyze_recording, analyze_samples
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.ingest import read_recording

WALKS = SHARED_DATA / "footprints_walks"


def _swap_foot(samples: pl.DataFrame) -> pl.DataFrame:
    """The same data labelled as the other foot, mirrored as a sensor on that foot would not be."""
    return samples.with_columns(
        pl.when(pl.col("foot") == "left").then(pl.lit("right")).otherwise(pl.lit("left")).alias("foot")
    )


def test_simulated_feet_pass_and_swapped_labels_are_doubted():
    sim = Simulator(SimulationSettings(activity="walk", duration_s=30.0, seed=2)).simulate()
    fs = 200.0
    res = analyze_samples(sim.samples_, fs)
    assert not any("probably on the" in w for w in res.warnings)
    check = FootSideCheck().detect(res.strides, pl.concat(list(res.signals.values())))
    assert not check.checks_["suspect"].any() and (check.checks_["roll_after_ic_deg"] > 0).all()
    swapped = analyze_samples(_swap_foot(sim.samples_), fs)
    doubted = [w for w in swapped.warnings if "probably on the" in w]
    assert len(doubted) == 2, swapped.warnings
    assert any("left foot" in w and "on the right foot" in w for w in doubted)


def test_known_feet_of_the_gaitmap_recordings_are_not_doubted(real_data):
    for name, rate in (("imu_sample.csv", 204.8), ("imu_sample_ms_right.csv", 102.4)):
        res = analyze_recording(read_recording(real_data / name, sampling_rate_hz=rate))
        assert not any("probably on the" in w for w in res.warnings), (name, res.warnings)


@pytest.mark.skipif(not WALKS.is_dir(), reason=f"footprint walks not found at {WALKS}")
def test_the_lord_pod_read_as_left_is_doubted():
    res = analyze_recording(read_recording(WALKS / "SensorConnectData_36.csv"))
    assert any("left foot" in w and "probably on the right foot" in w for w in res.warnings), res.warnings
    right = analyze_recording(read_recording(WALKS / "SensorConnectData_36.csv", foot="right"))
    assert not any("probably on the" in w for w in right.warnings)
    assert right.strides["pronation_excursion_deg"].median() > 4.0
