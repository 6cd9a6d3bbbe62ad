"""Roll and pitch against simulator truth on the product's orientation path (issue 3 targets).

Targets: RMSE at foot-flat <= 1 deg and over whole stances <= 2 deg (walking and running, noise,
bias, mounting error, mounting estimated from the data); running with impacts >= 10 g: roll and
pitch within 1.5 deg of truth at every foot-flat. The full 50-athlete run is
`strideflow bench orientation`; here 8 athletes x 30 s per scenario.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.benchmarks._common import SIMULATOR_ANALYSIS
from strideflow.benchmarks.orientation import (
    CONFIGS,
    IMPACT_TARGET_G,
    PRODUCT,
    TARGET_MAX_ABS_FOOT_FLAT_IMPACT_DEG,
    TARGET_RMSE_FOOT_FLAT_DEG,
    TARGET_RMSE_STANCE_DEG,
    OrientationAccuracy,
    OrientationAccuracySettings,
    measured_impacts_g,
    product_config,
    rows_from,
    simulate,
    stride_errors,
    summarize,
)
from strideflow.hardware import schema as S

ANGLES = (S.ROLL_DEG, S.PITCH_DEG)
ZERO_VELOCITY = next(c for c in CONFIGS if c.name == "zero_velocity")
MADGWICK_REJECTION = next(c for c in CONFIGS if c.name == "madgwick_rejection")
PRODUCT_DEFAULT = product_config(SIMULATOR_ANALYSIS)


@pytest.fixture(scope="module")
def accuracy() -> OrientationAccuracy:
    wanted = (PRODUCT_DEFAULT, ZERO_VELOCITY, MADGWICK_REJECTION)
    configs = tuple({c.name: c for c in wanted if c.name != PRODUCT}.values())
    settings = OrientationAccuracySettings(athletes=8, duration_s=30.0, configs=configs, true_mounting=False)
    return OrientationAccuracy(settings).estimate()


def _stat(summary: pl.DataFrame, config: str, scenario: str, angle: str, stat: str) -> float:
    r = summary.filter((pl.col("config") == config) & (pl.col("scenario") == scenario))
    assert r.height == 1, (config, scenario)
    return float(r[f"{angle}.{stat}"][0])


def _target_failures(summary: pl.DataFrame, config: str) -> list[str]:
    """Every issue-3 target this configuration misses, with the measured value."""
    misses = []
    for scenario in ("walk", "run"):
        for a in ANGLES:
            for stat, limit in (
                ("rmse_foot_flat", TARGET_RMSE_FOOT_FLAT_DEG),
                ("rmse_stance", TARGET_RMSE_STANCE_DEG),
            ):
                value = _stat(summary, config, scenario, a, stat)
                if not value <= limit:
                    misses.append(f"{scenario} {a} {stat} {value:.2f} > {limit}")
    for a in ANGLES:
        # every sample of every true foot-flat, not only the one at foot_flat_t
        for stat in ("max_abs_at_foot_flat_t", "max_abs_foot_flat"):
            value = _stat(summary, config, "run_10g", a, stat)
            if not value <= TARGET_MAX_ABS_FOOT_FLAT_IMPACT_DEG:
                misses.append(f"run_10g {a} {stat} {value:.2f} > {TARGET_MAX_ABS_FOOT_FLAT_IMPACT_DEG}")
    return misses


def test_impacts_reach_10g_in_every_stride(accuracy):
    """The impact scenario really has >= 10 g in the sampled data the filters see, at every IC."""
    impacts = accuracy.impacts_.filter(pl.col("scenario") == "run_10g")[S.IMPACT_G].drop_nans()
    assert impacts.len() > 150
    assert impacts.min() >= IMPACT_TARGET_G
    # the natural running scenario is softer on some strides: the 10 g case is a real extra load
    assert accuracy.impacts_.filter(pl.col("scenario") == "run")[S.IMPACT_G].min() < impacts.min()


def test_enough_foot_flats_were_measured(accuracy):
    s = accuracy.summary_
    for scenario, least in (("walk", 150), ("run", 300), ("run_10g", 300)):
        r = s.filter((pl.col("config") == PRODUCT) & (pl.col("scenario") == scenario))
        assert r["athletes"][0] == 8
        assert r["foot_flats"][0] >= least, scenario


def test_benchmark_recomputes_the_product_path_exactly(accuracy):
    """The configuration named as the product default gives the pipeline's own roll and pitch."""
    e = accuracy.errors_
    cols = [c for c in e.columns if c.startswith(ANGLES)]
    keys = ["scenario", "athlete", S.FOOT, "stride_index"]
    product = e.filter(pl.col("config") == PRODUCT).sort(keys).select(cols).to_numpy()
    same = e.filter(pl.col("config") == PRODUCT_DEFAULT.name).sort(keys).select(cols).to_numpy()
    np.testing.assert_allclose(same, product, rtol=0, atol=1e-9, equal_nan=True)


def test_product_meets_the_rmse_targets(accuracy):
    """The product's path (whatever AnalysisSettings selects): RMSE targets met walking and running."""
    s = accuracy.summary_
    for scenario in ("walk", "run", "run_10g"):
        for a in ANGLES:
            assert _stat(s, PRODUCT, scenario, a, "rmse_foot_flat") <= TARGET_RMSE_FOOT_FLAT_DEG
            assert _stat(s, PRODUCT, scenario, a, "rmse_stance") <= TARGET_RMSE_STANCE_DEG
            # the foot-flat level comes from gravity, so no systematic tilt is left
            assert abs(_stat(s, PRODUCT, scenario, a, "bias_foot_flat")) <= 0.5


def test_zero_velocity_levelling_beats_the_accelerometer_filters(accuracy):
    """Why the product levels on foot-flats: Madgwick with impact rejection (ahrs gain) drifts by degrees."""
    s = accuracy.summary_
    for scenario in ("walk", "run"):
        for a in ANGLES:
            zv = _stat(s, "zero_velocity", scenario, a, "rmse_foot_flat")
            assert _stat(s, "madgwick_rejection", scenario, a, "rmse_foot_flat") > 3.0 * zv


def test_product_keeps_every_impact_foot_flat_within_1_5_deg(accuracy):
    """Issue 3: with >= 10 g impacts, roll and pitch at every foot-flat within 1.5 deg of truth (and the
    RMSE targets walking and running)."""
    assert _target_failures(accuracy.summary_, PRODUCT) == []


def test_errors_are_measured_against_truth_not_against_themselves():
    """A known, uncorrected tilt shows up at foot-flat: mounting not aligned, 2 deg roll error expected.

    With `align_mounting=False` on data whose device frame is the foot frame rolled by a known angle,
    the foot-flat roll error of the gravity-levelled path is that angle (sign: the device frame is
    rotated by +angle about x, so a level foot reads roll -angle).
    """
    from dataclasses import replace

    from scipy.spatial.transform import Rotation

    from strideflow.hardware.simulator import SimulationSettings, Simulator

    angle = 3.0
    rot = Rotation.from_euler("x", angle, degrees=True)
    sim = Simulator(
        SimulationSettings(
            activity="walk", duration_s=20.0, seed=(3, 1), mounting_rotations={"left": rot, "right": rot}
        )
    ).simulate()
    analysis = replace(AnalysisSettings(), align_mounting=False)
    errors = stride_errors(sim, (ZERO_VELOCITY,), analysis).with_columns(
        pl.lit("estimated").alias("mounting"), pl.lit("walk").alias("scenario"), pl.lit(3).alias("athlete")
    )
    s = summarize(errors)
    assert _stat(s, "zero_velocity", "walk", S.ROLL_DEG, "bias_foot_flat") == pytest.approx(-angle, abs=0.3)
    assert abs(_stat(s, "zero_velocity", "walk", S.PITCH_DEG, "bias_foot_flat")) < 0.3
    rows = rows_from(s, pl.DataFrame({"scenario": [], S.IMPACT_G: []}), ZERO_VELOCITY)
    names = {r["name"] for r in rows}
    assert "zero_velocity.walk.roll_deg.rmse_foot_flat" in names


def test_the_impact_scenario_changes_only_the_impact():
    """run_10g is the same runner as run (same gait, mounting, biases), only with harder impacts."""
    a, b = simulate(2, "run", 20.0), simulate(2, "run_10g", 20.0)
    assert a.athlete_.run.cadence_spm == b.athlete_.run.cadence_spm
    assert b.athlete_.run.impact_g >= 12.0
    for foot in S.FEET:
        assert np.allclose(a.mounting_[foot].as_quat(), b.mounting_[foot].as_quat())


def test_impact_ringing_into_a_short_foot_flat_does_not_tilt_it():
    """Regression: athlete 1 of the full benchmark, right foot, 18 g impacts ringing at ~40 Hz into
    foot-flats of 4-5 samples. A ringing peak inside the foot-flat had tilted two of them by 1.86 and
    1.52 deg in pitch (the anchor took gravity mostly from that peak); every foot-flat of the
    session must stay within 1.5 deg, every sample of it."""
    sim = simulate(1, "run_10g", 60.0)
    ic = sim.truth_strides_.filter(pl.col(S.FOOT) == "right")
    assert ic.height > 60
    impacts = measured_impacts_g(sim.samples_, sim.truth_strides_)[S.IMPACT_G].drop_nans()
    assert impacts.min() >= IMPACT_TARGET_G
    e = stride_errors(sim, ()).filter((pl.col("config") == PRODUCT) & (pl.col("n_flat") > 0))
    assert e.height > 120
    for a in ANGLES:
        worst = e[f"{a}_max_abs_flat"].max()
        assert worst <= TARGET_MAX_ABS_FOOT_FLAT_IMPACT_DEG, (a, worst)
