"""Foot progression angle (toe-out): the shoe's x axis at foot-flat against the direction of progression,
positive outward on both feet (DESIGN.md), per stride, in sessions and trends."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from support.paths import SHARED_DATA

from strideflow.analytics.metrics import compute_strides
from strideflow.analytics.pipeline import AnalysisSettings, analyze_samples
from strideflow.analytics.sessions import SessionAggregator
from strideflow.analytics.trends import KEY_METRICS
from strideflow.hardware import schema as S
from strideflow.hardware.mounting import apply_mounting
from strideflow.hardware.simulator import SimulationSettings, Simulator

IMU_SAMPLE = SHARED_DATA / "gaitmap_example" / "imu_sample.csv"


def _signals(foot: str, heading_deg: float, direction_deg: float, n_strides: int = 4) -> tuple:
    """Straight walking along `direction_deg` with the shoe pointing at `heading_deg` (world, deg):
    still foot-flats of 0.3 s, 1.2 m strides; events and signals tables."""
    rate = 100.0
    stride_s = 1.0
    t = np.arange(0.0, (n_strides + 2) * stride_s, 1.0 / rate)
    ics = 0.5 + np.arange(n_strides + 1) * stride_s
    still = np.zeros(t.size, bool)
    for ic in ics:
        still |= (t >= ic + 0.1) & (t <= ic + 0.4)
    # the sensor moves 1.2 m along the direction between foot-flats
    s = np.interp(
        t, np.concatenate([[ic + 0.4, ic + 1.1] for ic in ics]), np.repeat(np.arange(ics.size), 2) * 1.2
    )
    d = np.radians(direction_deg)
    n = t.size
    signals = pl.DataFrame(
        {
            S.ATHLETE_ID: "a",
            S.SESSION_ID: "s",
            S.FOOT: foot,
            S.T: t,
            S.ROLL_DEG: 0.0,
            S.PITCH_DEG: 0.0,
            S.PRONATION_DEG: 0.0,
            S.PITCH_RATE_DPS: 0.0,
            S.PRONATION_RATE_DPS: 0.0,
            S.HEADING_DEG: np.full(n, heading_deg),
            S.ACC_NORM_G: 1.0,
            S.ZERO_VELOCITY: still,
            S.VEL[0]: 0.0,
            S.VEL[1]: 0.0,
            S.VEL[2]: 0.0,
            S.POS[0]: s * np.cos(d),
            S.POS[1]: s * np.sin(d),
            S.POS[2]: 0.0,
        }
    ).select([pl.col(c).cast(d) for c, d in S.SIGNALS_SCHEMA.items()])
    starts = ics[:-1]
    events = pl.DataFrame(
        {
            S.ATHLETE_ID: "a",
            S.SESSION_ID: "s",
            S.FOOT: foot,
            S.STRIDE_INDEX: np.arange(starts.size),
            S.IC_T: starts,
            S.FOOT_FLAT_T: starts + 0.25,
            S.HEEL_OFF_T: starts + 0.4,
            S.TOE_OFF_T: starts + 0.6,
            S.NEXT_IC_T: starts + stride_s,
            S.VALID: True,
            S.REASON: None,
        }
    )
    return events, signals


@pytest.mark.parametrize("direction_deg", [0.0, 100.0, -170.0])
def test_known_answer_sign_per_foot_and_wrap(direction_deg):
    """Shoe turned 12 deg counter-clockwise of the progression: left foot toed out (+12), right foot
    toed in (-12); in any walking direction, also across +-180 deg."""
    for foot, want in (("left", 12.0), ("right", -12.0)):
        events, signals = _signals(foot, direction_deg + 12.0, direction_deg)
        got = compute_strides(events, signals)
        fpa = got[S.FOOT_PROGRESSION_ANGLE_DEG].to_numpy()
        assert got.height == 4
        np.testing.assert_allclose(fpa[:-1], want, atol=1e-9)
        assert got[S.VALID][:-1].all()


def test_no_next_foot_flat_leaves_it_null_like_stride_length():
    events, signals = _signals("left", 5.0, 0.0)
    got = compute_strides(events.tail(1), signals.filter(pl.col(S.T) < 4.55))
    assert got[S.STRIDE_LENGTH_M].null_count() == 1
    assert got[S.FOOT_PROGRESSION_ANGLE_DEG].null_count() == 1


@pytest.fixture(scope="module")
def toed_out_15() -> tuple[Simulator, pl.DataFrame]:
    """A simulated athlete walking with both shoes toed out 15 deg, analysed in the shoe frame (the
    simulator's known mounting undone; the walking-direction alignment would zero the toe-out)."""
    sim = Simulator(
        SimulationSettings(
            activity="walk", duration_s=40.0, seed=21, toe_out_deg=15.0, keep_orientation=False
        )
    ).simulate()
    samples = apply_mounting(sim.samples_, {f: r.inv() for f, r in sim.mounting_.items()})
    result = analyze_samples(samples, sim.settings.sampling_rate_hz, AnalysisSettings(align_mounting=False))
    return sim, result.strides


def test_simulated_shoe_toed_out_15_deg_reads_15_on_both_feet(toed_out_15):
    sim, strides = toed_out_15
    for foot in S.FEET:
        got = strides.filter(pl.col(S.STEADY) & (pl.col(S.FOOT) == foot))[S.FOOT_PROGRESSION_ANGLE_DEG]
        assert got.len() >= 10
        assert abs(got.median() - 15.0) <= 2.0, (foot, got.median())
        assert (got > 0).all()  # outward on both feet


def test_sessions_and_trends_carry_it(toed_out_15):
    _, strides = toed_out_15
    sessions = SessionAggregator().aggregate(strides).sessions_
    assert S.session_median(S.FOOT_PROGRESSION_ANGLE_DEG) in sessions.columns
    assert S.session_iqr(S.FOOT_PROGRESSION_ANGLE_DEG) in sessions.columns
    medians = sessions[S.session_median(S.FOOT_PROGRESSION_ANGLE_DEG)].to_numpy()
    assert np.all(np.abs(medians - 15.0) <= 2.0)
    assert S.FOOT_PROGRESSION_ANGLE_DEG in KEY_METRICS


@pytest.mark.skipif(not IMU_SAMPLE.exists(), reason=f"real recording not present: {IMU_SAMPLE}")
def test_imu_sample_walks_outward_of_the_shoe_axis():
    """imu_sample.csv is given in the shoe frame (data README). Analysed without the walking-direction
    alignment, the walking direction lies outward of the shoe axis on both feet (issue 15: 14-16 deg;
    measured 12.3 left, 15.6 right), and by what the mounting estimator finds independently: the
    heading of its walking-direction x against the file's x levelled by the smallest rotation
    (12.6 and 14.9 deg, from dead-reckoned strides rather than the ZUPT track)."""
    from scipy.spatial.transform import Rotation

    from strideflow.hardware.mounting import MountingEstimator, MountingSettings
    from strideflow.ingest.recording import read_recording

    rec = read_recording(IMU_SAMPLE, sampling_rate_hz=204.8)
    result = analyze_samples(rec.samples, rec.sampling_rate_hz, AnalysisSettings(align_mounting=False))
    # the default analysis estimates the shoe axis: the same toe-out as the file's own (shoe) frame
    default = analyze_samples(rec.samples, rec.sampling_rate_hz)
    for foot in S.FEET:
        got = result.strides.filter(pl.col(S.VALID) & (pl.col(S.FOOT) == foot))[S.FOOT_PROGRESSION_ANGLE_DEG]
        assert got.len() >= 20
        assert 11.0 <= got.median() <= 17.0, (foot, got.median())
        part = rec.samples.filter(pl.col(S.FOOT) == foot)
        # the walking-direction heading (the default is the shoe axis, hardware.shoe_axis)
        est = MountingEstimator(MountingSettings(heading="walking")).estimate(
            part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy(), rec.sampling_rate_hz
        )
        up = est.rotation_.inv().apply([0.0, 0.0, 1.0])
        level, _ = Rotation.align_vectors([[0.0, 0.0, 1.0]], [up])
        shoe_x = (est.rotation_ * level.inv()).apply([1.0, 0.0, 0.0])
        outward = (1.0 if foot == "left" else -1.0) * np.degrees(np.arctan2(shoe_x[1], shoe_x[0]))
        assert abs(got.median() - outward) <= 1.5, (foot, got.median(), outward)
        estimated = default.strides.filter(pl.col(S.VALID) & (pl.col(S.FOOT) == foot))
        assert abs(estimated[S.FOOT_PROGRESSION_ANGLE_DEG].median() - got.median()) <= 1.0


def test_cli_toe_out_switch(tmp_path):
    from typer.testing import CliRunner

    from strideflow.service.cli import _register, app

    _register()
    out = tmp_path / "sim"
    args = ["simulate", "--athletes", "1", "--minutes", "0.4", "--out", str(out), "--seed", "4"]
    bad = CliRunner().invoke(app, [*args, "--toe-out", "90"])
    assert bad.exit_code != 0 and "--toe-out" in f"{bad.output}{bad.exception}"
    res = CliRunner().invoke(app, [*args, "--toe-out", "-5"])
    assert res.exit_code == 0, res.output
    truth = pl.read_parquet(out / "truth_strides.parquet").filter(pl.col(S.VALID))
    for foot in S.FEET:
        fpa = truth.filter(pl.col(S.FOOT) == foot)[S.FOOT_PROGRESSION_ANGLE_DEG]
        assert abs(fpa.median() + 5.0) < 1.5  # toed in 5 deg on both feet
