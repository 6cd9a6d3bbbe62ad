"""Issue 15 simulator realism: toe-out, push-off about an oblique MTP axis, impact rocking in the gyro.

The truth must be about the shoe's own axes (DESIGN.md: pronation is the roll of the shoe about its
long axis; the foot progression angle is the shoe axis against the direction of progression).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from strideflow.hardware import schema as S
from strideflow.hardware.frames import pronation_sign, roll_pitch_deg
from strideflow.hardware.profiles import DEFAULT_PROFILE
from strideflow.hardware.simulator import AthleteParams, SimulationSettings, Simulator
from strideflow.hardware.simulator.kinematics import FootMotion
from strideflow.hardware.simulator.params import (
    FPA_RANGE_DEG,
    TOE_OFF_AXIS_ASYMMETRY_DEG,
    TOE_OFF_AXIS_RANGE_DEG,
    sample_athlete,
)
from strideflow.hardware.simulator.schedule import TOE_OFF_AXIS_STRIDE_SD_DEG

IDEAL_GYRO = replace(DEFAULT_PROFILE, name="ideal-gyro", gyr_scale_error=0.0, gyr_misalignment_deg=0.0)


def _exact(activity: str = "walk", **kw) -> Simulator:
    settings = SimulationSettings(
        activity=activity,
        sampling_rate_hz=1000.0,
        seed=11,
        noise=False,
        mounting=False,
        adc=False,
        profile=IDEAL_GYRO,
        **{"duration_s": 40.0, **kw},
    )
    return Simulator(settings).simulate()


@pytest.fixture(scope="module", params=["walk", "run"])
def toed_out(request) -> Simulator:
    """Both shoes toed out 15 deg."""
    return _exact(request.param, toe_out_deg=15.0)


def _foot(df: pl.DataFrame, foot: str) -> pl.DataFrame:
    return df.filter(pl.col(S.FOOT) == foot)


def _heading_deg(q: np.ndarray) -> np.ndarray:
    """Heading of the foot x axis in the world (atan2(R10, R00)), deg."""
    w, x, y, z = q.T
    return np.degrees(np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))


def test_toe_out_truth_is_the_shoe_axis_against_the_progression(toed_out):
    """Truth FPA is +15 deg (outward) on both feet, and is what the quaternions and positions say:
    the shoe x axis' heading at foot-flat against this -> next foot-flat sensor displacement."""
    for foot in S.FEET:
        tr = _foot(toed_out.truth_strides_, foot).filter(pl.col(S.STEADY))
        assert tr.height > 10
        fpa = tr[S.FOOT_PROGRESSION_ANGLE_DEG].to_numpy()
        assert abs(fpa.mean() - 15.0) < 1.0, foot  # 1.5 deg stride-to-stride SD around 15
        assert 0.8 < fpa.std() < 2.5
        orient = _foot(toed_out.truth_orientation_, foot)
        t = orient[S.T].to_numpy()
        q = orient.select(S.QUAT).to_numpy()
        pos = orient.select(S.POS).to_numpy()
        ff = tr[S.FOOT_FLAT_T].to_numpy()
        i = np.searchsorted(t, ff)
        # the next stride's foot-flat ends this one (straight strides of the same bout)
        j = np.searchsorted(t, np.roll(ff, -1))
        step = pos[j, :2] - pos[i, :2]
        heading = _heading_deg(q[i])
        walking = np.degrees(np.arctan2(step[:, 1], step[:, 0]))
        outward = pronation_sign(foot) * ((heading - walking + 180.0) % 360.0 - 180.0)
        chained = np.abs(np.roll(tr[S.IC_T].to_numpy(), -1) - tr[S.NEXT_IC_T].to_numpy()) < 1e-9
        chained[-1] = False
        np.testing.assert_allclose(outward[chained], fpa[chained], atol=0.05)
        # the shoe heading at foot-flat is the stance's walking direction turned outward by the toe-out
        tl = toed_out.timelines_[foot]
        k = np.flatnonzero(tl.gait)[tr[S.STRIDE_INDEX].to_numpy()]
        want = (
            np.degrees(tl.heading_rad[k]) + pronation_sign(foot) * tl.values["foot_progression_angle_deg"][k]
        )
        np.testing.assert_allclose((heading - want + 180.0) % 360.0 - 180.0, 0.0, atol=1e-4)


def test_truth_pronation_is_the_roll_about_the_shoe_axis(toed_out):
    """The truth roll/pronation is about the shoe's x axis: what roll_pitch_deg reads from the shoe
    quaternion, and toe-off pronation is the drawn parameter. In a frame whose x is the walking
    direction instead (the shoe turned back by the toe-out), pitch leaks into roll at toe-off by
    about atan(tan(pitch) sin(toe-out)): the error issue 15 is about."""
    for foot in S.FEET:
        sign = pronation_sign(foot)
        orient = _foot(toed_out.truth_orientation_, foot)
        t = orient[S.T].to_numpy()
        q = orient.select(S.QUAT).to_numpy()
        roll, pitch = roll_pitch_deg(q)
        motion = toed_out.motions_[foot]
        tr = _foot(toed_out.truth_strides_, foot).filter(pl.col(S.STEADY))
        to, ff = tr[S.TOE_OFF_T].to_numpy(), tr[S.FOOT_FLAT_T].to_numpy()
        i_to, i_ff = np.searchsorted(t, to), np.searchsorted(t, ff)
        np.testing.assert_allclose(roll[i_to], motion.roll.evaluate(t[i_to])[0], atol=1e-6)
        p_to = sign * (roll[i_to] - roll[i_ff])
        # sampled at 1 kHz next to the exact toe-off time: within the roll change of one ms (the
        # shoe still rolls at toe-off: it turns about the oblique toe-off axis)
        one_ms = np.abs(motion.roll.evaluate(to)[1]) * 1e-3
        assert np.all(np.abs(p_to - tr[S.TOE_OFF_PRONATION_DEG].to_numpy()) <= one_ms + 0.05)
        tl = toed_out.timelines_[foot]
        k = np.flatnonzero(tl.gait)[tr[S.STRIDE_INDEX].to_numpy()]
        np.testing.assert_allclose(
            tr[S.TOE_OFF_PRONATION_DEG].to_numpy(), tl.values["toe_off_pronation_deg"][k], atol=1e-6
        )
        # the walking-direction frame: rotate the body frame by -toe-out (outward) about its z
        delta = np.radians(sign * tl.values["foot_progression_angle_deg"][k])
        from scipy.spatial.transform import Rotation

        from strideflow.hardware.frames import rotation_from_wxyz, wxyz_from_rotation

        walk_frame = rotation_from_wxyz(q[i_to]) * Rotation.from_rotvec(np.outer(-delta, [0, 0, 1]))
        walk_ff = rotation_from_wxyz(q[i_ff]) * Rotation.from_rotvec(np.outer(-delta, [0, 0, 1]))
        r_to, _ = roll_pitch_deg(wxyz_from_rotation(walk_frame))
        r_ff, _ = roll_pitch_deg(wxyz_from_rotation(walk_ff))
        leak = sign * (r_to - r_ff) - p_to
        expected = -np.degrees(np.arctan(np.tan(np.radians(-pitch[i_to])) * np.sin(np.abs(delta))))
        # the leak is inversion-signed (the toes point outward), several degrees at 15 deg toe-out
        assert np.all(leak < -5.0)
        np.testing.assert_allclose(leak, expected, atol=4.0)


def test_push_off_starts_about_the_oblique_mtp_axis():
    """Just after heel-off the shoe turns about an axis alpha = 90 - mtp_break_angle from the
    medio-lateral one, its lateral end behind (the heel rise inverts the shoe), on both feet."""
    athlete = AthleteParams(mtp_break_angle_deg=60.0)
    sim = _exact("walk", athlete=athlete, impact_gyro=False)
    for foot in S.FEET:
        smp = _foot(sim.samples_, foot)
        t, w = smp[S.T].to_numpy(), smp.select(S.GYR).to_numpy()
        tr = _foot(sim.truth_strides_, foot).filter(pl.col(S.STEADY))
        ho, to = tr[S.HEEL_OFF_T].to_numpy(), tr[S.TOE_OFF_T].to_numpy()
        angles = []
        for a, b in zip(ho, to, strict=True):
            # the first 30 % of the push-off: before the roll-off onto the first MTP starts
            win = (t > a) & (t < a + 0.3 * (b - a)) & (t < a + 0.1)
            ww = w[win]
            angles.append(np.degrees(np.arctan2(-pronation_sign(foot) * ww[:, 0], ww[:, 1])).mean())
        # heel-off here comes after the pronation window, so the roll-off starts at heel-off and
        # adds its own (medial) rate: the axis is oblique by nearly alpha = 30 deg early on
        assert 15.0 < np.median(angles) < 31.0, (foot, np.median(angles))


@pytest.mark.parametrize("activity", ["walk", "run"])
@pytest.mark.parametrize(("axis_deg", "asymmetry_deg"), [(21.0, -8.0), (-4.0, 10.0), (0.0, 0.0)])
def test_push_off_ends_about_the_drawn_oblique_axis(activity, axis_deg, asymmetry_deg):
    """At the true toe-off the shoe turns about an axis in the sole plane that is the stance's drawn
    toe-off axis (deg from the shoe's y axis, + everting while plantarflexing), scattered by
    stride around the athlete's toe_off_axis for that foot: the default is the healthy
    imu_sample.csv walker (+17 left, +25 right). The truth toe-off pronation stays the drawn
    parameter, and the gyro samples next to toe-off show the same axis."""
    athlete = AthleteParams(toe_off_axis_deg=axis_deg, toe_off_axis_asymmetry_deg=asymmetry_deg)
    sim = _exact(activity, athlete=athlete, impact_gyro=False, duration_s=20.0)
    for foot in S.FEET:
        sign = pronation_sign(foot)
        want = axis_deg + (0.5 if foot == "left" else -0.5) * asymmetry_deg
        assert athlete.toe_off_axis(foot) == want
        tr = _foot(sim.truth_strides_, foot).filter(pl.col(S.STEADY))
        assert tr.height > 8
        to = tr[S.TOE_OFF_T].to_numpy()
        w = sim.motions_[foot].evaluate(to).gyr_dps
        angle = np.degrees(np.arctan2(sign * w[:, 0], w[:, 1]))
        tl = sim.timelines_[foot]
        k = np.flatnonzero(tl.gait)[tr[S.STRIDE_INDEX].to_numpy()]
        drawn = tl.values["toe_off_axis_deg"][k]
        np.testing.assert_allclose(angle, drawn, atol=1e-6)
        every = tl.values["toe_off_axis_deg"]  # every stance of the foot, around the athlete's own
        sd = TOE_OFF_AXIS_STRIDE_SD_DEG
        assert abs(np.mean(every) - want) < 4.0 * sd / np.sqrt(len(every))
        assert 0.5 * sd < np.std(every) < 2.0 * sd
        # the shoe really plantarflexes there (a defined axis)
        assert np.all(w[:, 1] > 100.0)
        np.testing.assert_allclose(
            tr[S.TOE_OFF_PRONATION_DEG].to_numpy(), tl.values["toe_off_pronation_deg"][k], atol=1e-6
        )
        # 1 kHz gyro samples nearest toe-off (the pod's own yaw on the shoe is off here: mounting=False)
        smp = _foot(sim.samples_, foot)
        t, g = smp[S.T].to_numpy(), smp.select(S.GYR).to_numpy()
        i = np.clip(np.searchsorted(t, to), 1, len(t) - 1)
        i -= (to - t[i - 1]) < (t[i] - to)
        sampled = np.degrees(np.arctan2(sign * g[i, 0], g[i, 1]))
        assert np.all(np.abs(sampled - drawn) < 1.0), (foot, sampled - drawn)


def test_drawn_toe_off_axes_span_the_measured_range():
    """Drawn athletes' toe-off axes per foot cover the range measured on the real level walks
    (-10..+25 deg), with left and right differing as on both real walkers (8-10 deg)."""
    rng = np.random.default_rng(3)
    drawn = [sample_athlete(rng) for _ in range(300)]
    axes = np.array([[a.toe_off_axis(f) for f in S.FEET] for a in drawn])
    lo = TOE_OFF_AXIS_RANGE_DEG[0] + 0.5 * TOE_OFF_AXIS_ASYMMETRY_DEG[0]
    hi = TOE_OFF_AXIS_RANGE_DEG[1] + 0.5 * TOE_OFF_AXIS_ASYMMETRY_DEG[1]
    assert lo == -10.0 and hi == 25.0
    assert lo <= axes.min() < lo + 3.0 and hi - 3.0 < axes.max() <= hi
    assert np.abs(axes[:, 0] - axes[:, 1]).max() > 8.0


def test_impact_rocking_reaches_the_gyro_at_the_set_rate():
    """After each IC the gyro carries a decaying oscillation whose peak is the gait's impact_gyr_dps
    (deg/s) over the shoe's own rate; the shoe motion (truth) does not contain it."""
    for activity, rate in (("walk", 8.0), ("run", 30.0)):
        sim = _exact(activity, athlete=AthleteParams(), duration_s=30.0)
        for foot in S.FEET:
            tl = sim.timelines_[foot]
            shoe = FootMotion(tl, sim.athlete_, foot, impact_gyro=False)
            smp = _foot(sim.samples_, foot)
            t, w = smp[S.T].to_numpy(), smp.select(S.GYR).to_numpy()
            extra = np.linalg.norm(w - shoe.evaluate(t).gyr_dps, axis=1)
            tr = _foot(sim.truth_strides_, foot)
            ic = tr[S.IC_T].to_numpy()
            peaks = np.array([extra[(t >= a) & (t < a + 0.1)].max() for a in ic])
            assert np.all(np.abs(peaks - rate) < 0.05 * rate), (activity, foot, peaks.min(), peaks.max())
            late = np.ones(len(t), bool)
            for a in tl.ic[np.isfinite(tl.ic)]:
                late &= ~((t >= a) & (t < a + 0.3))
            assert extra[late].max() < 1e-9
    quiet = _exact("run", athlete=AthleteParams(), duration_s=20.0, impact_gyro=False)
    shoe = quiet.motions_["left"]
    smp = _foot(quiet.samples_, "left")
    np.testing.assert_allclose(smp.select(S.GYR).to_numpy(), shoe.evaluate(smp[S.T].to_numpy()).gyr_dps)


def test_drawn_athletes_toe_out_within_the_range():
    rng = np.random.default_rng(0)
    drawn = [sample_athlete(rng) for _ in range(200)]
    fpa = np.array([a.foot_progression_angle(f) for a in drawn for f in S.FEET])
    lo, hi = FPA_RANGE_DEG
    assert lo - 1.0 <= fpa.min() and fpa.max() <= hi + 1.0
    assert fpa.std() > 4.0  # spread over the range, not one value
    breaks = np.array([a.mtp_break_angle_deg for a in drawn])
    assert 50.0 <= breaks.min() and breaks.max() <= 65.0
    walk = np.array([a.walk.impact_gyr_dps for a in drawn])
    run = np.array([a.run.impact_gyr_dps for a in drawn])
    assert walk.max() <= 15.0 and run.min() >= 15.0


def test_toe_out_zero_puts_the_shoe_along_the_walking_direction():
    sim = _exact("walk", toe_out_deg=0.0, duration_s=25.0)
    tr = sim.truth_strides_.filter(pl.col(S.STEADY))
    fpa = tr[S.FOOT_PROGRESSION_ANGLE_DEG].to_numpy()
    assert abs(fpa.mean()) < 0.6 and fpa.std() < 2.5
