"""Running stances with no still sample, on the simulator (what the fast real footprint strides showed).

On the fast LORD footprint walks the foot rolls through a 0.2-0.3 s stance without one still
sample, and the real running swing is about a quarter longer than the simulator's default. The
simulator makes such a stance when heel-off comes at the end of loading (no still interval
between them) and a longer swing at a lower cadence; the truth is exact, so the swing-guided
anchors of `fusion.zero_velocity` and the integration through a rolling stance are checked
against it here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from scipy.integrate import cumulative_trapezoid
from scipy.spatial.transform import Rotation

from strideflow.analytics.pipeline import analyze_samples
from strideflow.analytics.settings import AnalysisSettings
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.hardware import schema as S
from strideflow.hardware.frames import rotation_from_wxyz
from strideflow.hardware.profiles import DEFAULT_PROFILE
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.hardware.simulator.params import AthleteParams, typical_run

FS = 200.0


@pytest.mark.parametrize("cadence_spm", [168.0, 150.0])  # 150: swing 0.46 -> 0.52 s
def test_every_rolling_running_stance_gets_an_anchor_and_strides_keep_their_length(cadence_spm):
    run = replace(typical_run(), loading_fraction=0.42, heel_off_ratio=0.42, cadence_spm=cadence_spm)
    sim = Simulator(
        SimulationSettings(activity="run", duration_s=30.0, seed=3, athlete=AthleteParams(run=run))
    ).simulate()
    left = sim.samples_.filter(pl.col("foot") == "left")
    acc = left.select("acc_x", "acc_y", "acc_z").to_numpy()
    gyr = left.select("gyr_x", "gyr_y", "gyr_z").to_numpy()
    zv = ZeroVelocityDetector().detect(acc, gyr, FS)
    truth = sim.truth_strides_.filter(pl.col("foot") == "left")
    if cadence_spm == 168.0:
        # most stances have no sample that the threshold or its relaxed fallback call still
        assert len(zv.swing_anchors_) >= 0.5 * truth.height
    strides = analyze_samples(sim.samples_, FS).strides.filter(pl.col("foot") == "left")
    assert not strides["reason"].is_in(["too_long", "too_short"]).any()
    assert strides["valid"].sum() >= truth["valid"].sum()
    found = strides.filter(pl.col("valid"))["stride_length_m"].to_numpy()
    true = truth.filter(pl.col("valid"))["stride_length_m"].to_numpy()
    assert abs(np.median(found) / np.median(true) - 1.0) <= 0.01


# A rolling running stance (`GaitParams.stance_roll_dps`): the real fast footprint strides never
# stand still (stance minimum of the gyro norm 28-45 deg/s, 15 ms SHOE statistic 2.4-4.7); a jog at
# their pace (2.4 m/s, 136 spm) rolling at 35 deg/s from foot-flat to heel-off.
ROLL_DPS = 35.0


def rolling_run(roll_dps: float = ROLL_DPS):
    return replace(typical_run(), speed_mps=2.4, cadence_spm=136.0, stance_roll_dps=roll_dps)


@pytest.fixture(scope="module")
def rolling_exact():
    # noise-free, unmounted, unquantised, a perfect gyro at 1 kHz: the signals are the exact motion
    ideal = replace(DEFAULT_PROFILE, name="ideal-gyro", gyr_scale_error=0.0, gyr_misalignment_deg=0.0)
    settings = SimulationSettings(
        activity="run",
        duration_s=20.0,
        sampling_rate_hz=1000.0,
        seed=5,
        noise=False,
        mounting=False,
        adc=False,
        profile=ideal,
        athlete=AthleteParams(run=rolling_run()),
    )
    return Simulator(settings).simulate()


def test_a_rolling_stance_is_exact_motion(rolling_exact):
    dt = 1.0 / rolling_exact.settings.sampling_rate_hz
    for foot in ("left", "right"):
        smp = rolling_exact.samples_.filter(pl.col("foot") == foot)
        orient = rolling_exact.truth_orientation_.filter(pl.col("foot") == foot)
        t = smp["t"].to_numpy()
        rot = rotation_from_wxyz(orient.select(S.QUAT).to_numpy())
        # gyro = body rate of the true orientation (finite differences of the true quaternions)
        w = smp.select(S.GYR).to_numpy()
        w_fd = np.rad2deg((rot[:-1].inv() * rot[1:]).as_rotvec()) / dt
        w_mid = rolling_exact.motions_[foot].evaluate(0.5 * (t[:-1] + t[1:])).gyr_dps
        assert np.median(np.abs(w_fd - w_mid)) < 0.01 and np.percentile(np.abs(w_fd - w_mid), 99.9) < 0.5
        # ... and integrates to it from each IC to the next within 0.1 deg
        truth = rolling_exact.truth_strides_.filter(pl.col("foot") == foot)
        i0 = np.searchsorted(t, truth["ic_t"].to_numpy())
        i1 = np.searchsorted(t, truth["next_ic_t"].to_numpy())
        q = rot[i0]
        wr = np.deg2rad(w)
        for j in range(int((i1 - i0).max())):
            a, b = wr[np.minimum(i0 + j, len(t) - 1)], wr[np.minimum(i0 + j + 1, len(t) - 1)]
            step = 0.5 * (a + b) * dt + np.cross(a, b) * dt * dt / 12.0  # with the coning term
            step[i0 + j >= i1] = 0.0
            q = q * Rotation.from_rotvec(step)
        assert np.rad2deg((q.inv() * rot[i1]).magnitude()).max() < 0.1
        pos = orient.select(S.POS).to_numpy()
        vel = orient.select(S.VEL).to_numpy()
        # velocity is the derivative of position (the moving contact keeps it continuous; the
        # central difference is off by up to 0.013 m/s in the 50 Hz impact ringing, rolling or not)
        fd = (pos[2:] - pos[:-2]) / (t[2:] - t[:-2])[:, None]
        assert np.abs(fd - vel[1:-1]).max() < 0.02
        # the specific force, rotated to the world and less gravity, integrates twice from one
        # foot-flat (moving now: from its true velocity) to the next to the true displacement
        a_world = rot.apply(np.array(smp.select(S.ACC).to_numpy()))
        a_world[:, 2] -= S.STANDARD_GRAVITY_MPS2
        ff = np.searchsorted(t, truth["foot_flat_t"].to_numpy())
        errors = []
        for i0, i1 in zip(ff[:-1], ff[1:], strict=True):
            if t[i1] - t[i0] > 1.5 * truth["stride_time_s"].median():
                continue
            v = vel[i0] + cumulative_trapezoid(a_world[i0 : i1 + 1], t[i0 : i1 + 1], axis=0, initial=0.0)
            p = cumulative_trapezoid(v, t[i0 : i1 + 1], axis=0, initial=0.0)
            errors.append(np.linalg.norm(p[-1] - (pos[i1] - pos[i0])))
            assert np.linalg.norm(v[-1] - vel[i1]) < 0.01
        assert len(errors) > 10 and max(errors) < 0.01
        # no still sample in a stance: the foot turns at >= 0.9 x the roll rate from foot-flat to
        # heel-off, and the sensor moves
        tl = rolling_exact.timelines_[foot]
        gyr_norm = np.linalg.norm(smp.select("gyr_x", "gyr_y", "gyr_z").to_numpy(), axis=1)
        flat = np.zeros(t.size, dtype=bool)
        for a, b in zip(tl.ffs[1:], tl.ho[1:], strict=True):
            if np.isfinite(b):
                flat |= (t >= a) & (t <= b)
        assert flat.sum() > 200
        assert gyr_norm[flat].min() >= 0.9 * ROLL_DPS
        assert np.linalg.norm(vel[flat], axis=1).min() > 0.01  # m/s


def test_rolling_running_stances_are_found_and_measured():
    sim = Simulator(
        SimulationSettings(
            activity="run", duration_s=30.0, seed=4, athlete=AthleteParams(run=rolling_run()), mounting=False
        )
    ).simulate()
    left = sim.samples_.filter(pl.col("foot") == "left")
    acc = left.select("acc_x", "acc_y", "acc_z").to_numpy()
    gyr = left.select("gyr_x", "gyr_y", "gyr_z").to_numpy()
    zv = ZeroVelocityDetector().detect(acc, gyr, FS)
    truth = sim.truth_strides_.filter(pl.col("foot") == "left")
    # like the real fast strides: neither the threshold nor its relaxed fallback finds a still sample
    assert len(zv.swing_anchors_) >= 0.8 * truth.height
    strides = analyze_samples(sim.samples_, FS, AnalysisSettings(align_mounting=False)).strides
    strides = strides.filter(pl.col("foot") == "left")
    assert not strides["reason"].is_in(["too_long", "too_short"]).any()
    assert strides["valid"].sum() >= truth["valid"].sum()
    found = strides.filter(pl.col("valid"))["stride_length_m"].to_numpy()
    true = truth.filter(pl.col("valid"))["stride_length_m"].to_numpy()
    # the still foot-flat of the same run is measured to 0.2 %; rolling costs ~1 % (bench: median
    # abs 0.5 -> 1.9 cm): what the simulator now shows of the real fast strides' error
    assert abs(np.median(found) / np.median(true) - 1.0) <= 0.02


def test_the_pod_lever_gives_a_rolling_anchor_its_velocity_and_its_gravity():
    # Zero velocity imposed on a rolling anchor drops the sensor's speed there (|w| x its height
    # above the contact, ~4 cm/s) times the stride time: strides ~2 cm short; and the gravity read
    # around it carries the sensor's acceleration about the contact (a x r: degrees of tilt, one
    # stride long and the next short). Given the lever, the anchor gets w x r and the levelling
    # takes a x r + w x (w x r) out of gravity (`fusion.zupt.POD_LEVER_M`, the default).
    from strideflow.fusion.zupt import ZuptSettings

    athlete = AthleteParams(run=rolling_run())
    sim = Simulator(
        SimulationSettings(activity="run", duration_s=40.0, seed=4, athlete=athlete, mounting=False)
    ).simulate()
    truth = sim.truth_strides_.filter(pl.col("foot") == "left")

    def errors_m(lever) -> np.ndarray:
        # the lever alone: without the stance tilt fit, which takes part of the anchor error too
        zupt = ZuptSettings(anchor_lever_m=lever, tilt_fit_sd_mps=None)
        settings = AnalysisSettings(align_mounting=False, zupt=zupt)
        found = analyze_samples(sim.samples_, FS, settings).strides.filter(pl.col("foot") == "left")
        true_to = truth["toe_off_t"].to_numpy()
        j = np.abs(found["toe_off_t"].to_numpy()[:, None] - true_to[None, :]).argmin(axis=1)
        ok = (np.abs(found["toe_off_t"].to_numpy() - true_to[j]) < 0.06) & found["valid"].to_numpy()
        ok &= truth["valid"].to_numpy()[j]
        assert ok.sum() >= 12
        return found["stride_length_m"].to_numpy()[ok] - truth["stride_length_m"].to_numpy()[j][ok]

    without, with_lever = errors_m(None), errors_m((0.0, 0.0, athlete.sensor_z_m))
    # measured: bias -2.7 / +0.5 cm, median abs 3.5 / 0.7 cm (the anchor part alone, round three:
    # median abs 5.1 -> 4.0 cm; the spread was the levelling's)
    assert np.mean(without) < -0.015
    assert abs(np.mean(with_lever)) < 0.3 * abs(np.mean(without))
    assert np.median(np.abs(with_lever)) < 0.3 * np.median(np.abs(without))
