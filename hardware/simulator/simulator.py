"""Simulator: one athlete-session of both feet, with the exact truth it was made from."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.hardware import schema as S
from strideflow.hardware.frames import pronation_deg, roll_pitch_deg
from strideflow.hardware.profiles import DEFAULT_PROFILE, DeviceProfile
from strideflow.hardware.simulator.calibration import (
    TAPS,
    CalibrationMotion,
    CalibrationPlan,
    plan_calibration,
)
from strideflow.hardware.simulator.imu import SensorErrors, delay_channel, draw_errors, draw_mounting, measure
from strideflow.hardware.simulator.kinematics import MOUNT_TIME_CONSTANT_S, FootMotion, MotionSample
from strideflow.hardware.simulator.params import AthleteParams, GaitParams, sample_athlete, sample_tap_axis
from strideflow.hardware.simulator.schedule import FootTimeline, foot_timeline, plan_bouts
from strideflow.hardware.simulator.truth import truth_strides

ACTIVITY_CHOICES = ("walk", "run", "mixed")
CHUNK_SAMPLES = 100_000
SATURATION_REASON = "saturation"


@dataclass(frozen=True)
class SimulationSettings:
    """What to simulate.

    activity: walk, run, or mixed (walking and running bouts alternate, separated by standing).
    duration_s: session length, s (15 s, `schedule.MIN_SESSION_S`, always holds one bout of gait;
        shorter ones that hold none are refused by name); sampling_rate_hz: output rate, Hz.
    seed: int or sequence of ints (numpy SeedSequence entropy); same seed, same output.
    noise: white noise plus per-session gyro and acc biases (from `profile`).
    mounting: random mounting rotation per foot, `mount_style`; False: the device frame is the
        foot frame.
    mount_style: "square" (default: the pod along the shoe on its lateral upper, rolled 5-20 deg
        by the upper's slope, pitched +-5 deg, turned +-2 deg, `imu.draw_mounting`) or "askew"
        (2-15 deg about every axis, yaw included: a pod turned on its mount).
    adc: quantise with the profile's LSB and clip at its range (saturation).
    athlete: the gait to simulate; None draws one from the seed.
    mounting_rotations: fixed foot -> device rotations per foot (overrides `mounting`).
    turns: 180 deg turns inside bouts (turning strides are invalid in the truth).
    keep_orientation: build `truth_orientation_` (large; batch generation skips it).
    toe_out_deg: None: each foot's toe-out (foot progression angle) is the athlete's own (drawn
        0-20 deg, or `AthleteParams.foot_progression_angle_deg`); a number: both feet toe out by
        this (deg, + outward; 0 puts the shoe's axis along the walking direction, as the simulator
        did before toe-out existed). Strides vary around it by 1.5 deg (SD) either way.
    gyr_gains: fixed gyro gain matrices per foot (device reading = gain @ rate), e.g. the same pods
        in several sessions; None: drawn per session from `profile`.
    impact_gyro: the pod rocks after each IC (`GaitParams.impact_gyr_dps`), which reaches the gyro;
        False: the impact rings in the accelerometer only.
    calibration: a toe-tap field calibration before the session (`simulator.calibration`: standing,
        heel-down toe taps of the left foot, then of the right, standing; 10-16 s), which
        `hardware.shoe_axis.ToeTapCalibration` looks for. Its seconds come before `duration_s`
        (the session that follows is the one simulated without it, shifted); truth times are the
        recording's. The taps turn the shoe about an axis `AthleteParams.tap_axis_deg` off its y
        axis (drawn per athlete when `athlete` is None, from a stream of its own, so the session
        is the same as without the calibration).
    tap_axis_deg: None: the athlete's tap axis; a number: both feet's taps turn about an axis this
        far off the shoe's y axis (deg, + lateral end backward), e.g. to find where a calibration
        stops being good enough.
    calibration_taps: taps per foot.
    mount_compliance_s2: 0 (default): the pod is rigid on the shoe; > 0: it sits on a compliant
        mount and tilts against the shoe by -kappa times the shoe's angular acceleration (s²; at
        most 2 deg, `kinematics.MOUNT_MAX_TILT_RAD`; `kinematics.MOUNT_COMPLIANCE_S2` = 7e-4 is the
        level of the real fast footprint walks), lagged by `mount_time_constant_s` (`kinematics`
        module doc).
    Gyro gain and cross-axis errors come from `profile` (`gyr_scale_error`, `gyr_misalignment_deg`;
    1 % and 0.5 deg by default, drawn per device and session); a profile with zeros turns them off.
    """

    activity: str = "walk"
    duration_s: float = 60.0
    sampling_rate_hz: float = 200.0
    seed: int | Sequence[int] = 0
    noise: bool = True
    mounting: bool = True
    mount_style: str = "square"
    adc: bool = True
    profile: DeviceProfile = DEFAULT_PROFILE
    athlete_id: str = "A001"
    session_id: str = "S01"
    athlete: AthleteParams | None = None
    mounting_rotations: Mapping[str, Rotation] | None = None
    turns: bool = True
    keep_orientation: bool = True
    toe_out_deg: float | None = None
    impact_gyro: bool = True
    gyr_gains: Mapping[str, np.ndarray] | None = None
    calibration: bool = False
    tap_axis_deg: float | None = None
    calibration_taps: int = TAPS
    mount_compliance_s2: float = 0.0
    mount_time_constant_s: float = MOUNT_TIME_CONSTANT_S


class Simulator:
    """Shoe IMUs on both feet of one athlete for one session, with the true motion and strides.

    Parameters
    ----------
    settings
        `SimulationSettings` (activity, duration in s, rate in Hz, seed, noise and mounting options).

    Attributes
    ----------
    samples_: samples table (both feet, device frame, SAMPLES_SCHEMA columns, m/s² and deg/s);
    truth_strides_: strides table of the true motion (STRIDES_SCHEMA columns plus
        `foot_progression_angle_deg` and `activity`), turning strides valid with context "turn"
        (not steady), strides with a clipped sample invalid, "saturation";
    truth_orientation_: per sample keys, t, q_w..q_z (foot frame -> world; the pod's impact rocking,
        at most ~0.25 deg for ~0.1 s after IC, is in it, not in the truth strides), roll_deg, pitch_deg,
        pronation_deg, vel_*_mps and pos_*_m of the sensor point in the world;
    mounting_: foot -> scipy Rotation, v_device = mounting_[foot].apply(v_foot);
    params_: foot -> {activity: GaitParams} mean gait used; athlete_: the AthleteParams;
    motions_: foot -> FootMotion (the exact motion, evaluable at any time, in the session's own time:
        the recording's minus `calibration_s_`); errors_: foot -> SensorErrors;
    calibration_s_: seconds of toe-tap calibration before the session (0.0 without one);
    calibration_: foot -> CalibrationPlan (tap times in s, amplitudes, each tap's axis in the shoe
        frame) when there is a calibration, else empty.

    Notes
    -----
    strideflow's own motion model (`hardware.simulator.kinematics`), not a published simulator.
    """

    def __init__(self, settings: SimulationSettings | None = None) -> None:
        self.settings = settings if settings is not None else SimulationSettings()

    def simulate(self) -> Simulator:
        """Generate samples and truth."""
        s = self.settings
        if s.activity not in ACTIVITY_CHOICES:
            raise ValueError(f"activity must be one of {ACTIVITY_CHOICES}, got {s.activity!r}")
        # the eighth stream is the calibration's: the first seven are what they were before it
        seeds = np.random.SeedSequence(s.seed).spawn(8)
        rng = [np.random.default_rng(x) for x in seeds]
        athlete = s.athlete if s.athlete is not None else sample_athlete(rng[0])
        if s.toe_out_deg is not None:
            athlete = dataclasses.replace(
                athlete, foot_progression_angle_deg=float(s.toe_out_deg), fpa_asymmetry_deg=0.0
            )
        bouts = plan_bouts(rng[1], s.activity, s.duration_s, athlete, turns=s.turns)
        self.calibration_: dict[str, CalibrationPlan] = {}
        n_cal = 0
        if s.calibration:
            if s.athlete is None:
                athlete = sample_tap_axis(rng[7], athlete)
            if s.tap_axis_deg is not None:
                athlete = dataclasses.replace(
                    athlete, tap_axis_deg=float(s.tap_axis_deg), tap_axis_asymmetry_deg=0.0
                )
            cal_s, self.calibration_ = plan_calibration(
                rng[7], {foot: athlete.tap_axis(foot) for foot in S.FEET}, s.calibration_taps
            )
            n_cal = int(np.ceil(cal_s * s.sampling_rate_hz))
        self.calibration_s_ = n_cal / s.sampling_rate_hz
        n_session = int(np.floor(s.duration_s * s.sampling_rate_hz))
        n = n_cal + n_session
        t = np.arange(n) / s.sampling_rate_hz
        samples, strides, orient = [], [], []
        self.mounting_: dict[str, Rotation] = {}
        self.params_: dict[str, dict[str, GaitParams]] = {}
        self.motions_: dict[str, FootMotion] = {}
        self.timelines_: dict[str, FootTimeline] = {}
        self.errors_: dict[str, SensorErrors] = {}
        for i, foot in enumerate(S.FEET):
            tl = foot_timeline(rng[2 + i], bouts, athlete, foot, s.duration_s)
            motion = FootMotion(
                tl,
                athlete,
                foot,
                impact_gyro=s.impact_gyro,
                mount_compliance_s2=s.mount_compliance_s2,
                mount_time_constant_s=s.mount_time_constant_s,
            )
            sensor_rng = rng[4 + i]
            if s.mounting_rotations is not None:
                mount = s.mounting_rotations[foot]
            else:
                mount = draw_mounting(sensor_rng, foot, s.mount_style) if s.mounting else None
            gain = None if s.gyr_gains is None else s.gyr_gains[foot]
            errors = draw_errors(sensor_rng, s.profile, mount, gain)
            m = _evaluate_in_chunks(motion, np.arange(n_session) / s.sampling_rate_hz, s.keep_orientation)
            if n_cal:
                m = _after_calibration(motion, self.calibration_[foot], m, t, n_cal, s.keep_orientation)
            gyr_true = delay_channel(m.gyr_dps, s.sampling_rate_hz, s.profile.gyr_delay_s)
            gyr, acc, saturated = measure(gyr_true, m.acc_mps2, errors, s.profile, sensor_rng, s.noise, s.adc)
            keys = {S.ATHLETE_ID: s.athlete_id, S.SESSION_ID: s.session_id, S.FOOT: foot}
            samples.append(
                pl.DataFrame(
                    {
                        **{k: np.full(n, v, dtype=object) for k, v in keys.items()},
                        S.T: t,
                        **{c: acc[:, j] for j, c in enumerate(S.ACC)},
                        **{c: gyr[:, j] for j, c in enumerate(S.GYR)},
                    },
                    schema=S.SAMPLES_SCHEMA,
                )
            )
            truth = truth_strides(motion, s.athlete_id, s.session_id)
            if n_cal:
                truth = truth.with_columns(pl.col(c) + self.calibration_s_ for c in S.EVENT_TIMES)
            strides.append(_mark_saturation(truth, t, saturated))
            if s.keep_orientation:
                roll, pitch = roll_pitch_deg(m.quat_wxyz)
                orient.append(
                    pl.DataFrame(
                        {
                            **{k: np.full(n, v, dtype=object) for k, v in keys.items()},
                            S.T: t,
                            **{c: m.quat_wxyz[:, j] for j, c in enumerate(S.QUAT)},
                            S.ROLL_DEG: roll,
                            S.PITCH_DEG: pitch,
                            S.PRONATION_DEG: pronation_deg(roll, foot),
                            **{c: m.vel_mps[:, j] for j, c in enumerate(S.VEL)},
                            **{c: m.pos_m[:, j] for j, c in enumerate(S.POS)},
                        },
                        schema={
                            **S.ORIENTATION_SCHEMA,
                            S.ROLL_DEG: pl.Float64(),
                            S.PITCH_DEG: pl.Float64(),
                            S.PRONATION_DEG: pl.Float64(),
                            **{c: pl.Float64() for c in (*S.VEL, *S.POS)},
                        },
                    )
                )
            self.mounting_[foot] = errors.mounting
            self.params_[foot] = {a: athlete.gait(a, foot) for a in ("walk", "run")}
            self.motions_[foot] = motion
            self.timelines_[foot] = tl
            self.errors_[foot] = errors
        self.athlete_ = athlete
        self.samples_ = pl.concat(samples)
        self.truth_strides_ = pl.concat(strides)
        self.truth_orientation_ = pl.concat(orient) if orient else None
        return self


def _evaluate_in_chunks(motion: FootMotion, t: np.ndarray, orientation: bool) -> MotionSample:
    """motion.evaluate over t in pieces, to bound memory on long sessions (keeps what is used)."""
    parts = [motion.evaluate(t[i : i + CHUNK_SAMPLES]) for i in range(0, len(t), CHUNK_SAMPLES)]
    if not orientation:
        parts = [
            MotionSample(p.t, p.theta, p.theta, p.theta, p.rates, p.quat_wxyz[:0], p.gyr_dps, p.acc_mps2,
                         p.pos_m[:0], p.vel_mps[:0])
            for p in parts
        ]  # fmt: skip
    return MotionSample(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(MotionSample))
    )


def _after_calibration(
    motion: FootMotion,
    plan: CalibrationPlan,
    session: MotionSample,
    t: np.ndarray,
    n_cal: int,
    orientation: bool,
) -> MotionSample:
    """The calibration's motion over t[:n_cal], from the pose the session starts in, then the
    session's (its times shifted by the calibration's length)."""
    start = motion.evaluate(np.zeros(1))
    cal = CalibrationMotion(plan, start.quat_wxyz[0], start.pos_m[0], motion.r_sensor).evaluate(t[:n_cal])
    parts = []
    for f in dataclasses.fields(MotionSample):
        a, b = getattr(cal, f.name), getattr(session, f.name)
        if f.name == "t":
            parts.append(t)
        elif not orientation and f.name in ("quat_wxyz", "pos_m", "vel_mps"):
            parts.append(b)
        else:
            parts.append(np.concatenate([a, b]))
    return MotionSample(*parts)


def _mark_saturation(truth: pl.DataFrame, t: np.ndarray, saturated: np.ndarray) -> pl.DataFrame:
    """Valid strides containing a clipped sample become invalid with reason 'saturation'."""
    if not saturated.any() or truth.height == 0:
        return truth
    cum = np.concatenate([[0], np.cumsum(saturated)])
    lo = np.searchsorted(t, truth[S.IC_T].to_numpy())
    hi = np.searchsorted(t, truth[S.NEXT_IC_T].to_numpy())
    clipped = pl.Series((cum[hi] - cum[lo]) > 0)
    return truth.with_columns(
        pl.when(pl.col(S.VALID) & clipped).then(False).otherwise(pl.col(S.VALID)).alias(S.VALID),
        (pl.col(S.STEADY) & ~clipped).alias(S.STEADY),
        pl.when(pl.col(S.VALID) & clipped)
        .then(pl.lit(SATURATION_REASON))
        .otherwise(pl.col(S.REASON))
        .alias(S.REASON),
    )
