"""Gait parameters of a simulated athlete, how they are drawn, and how they drift over sessions.

All angles in deg, rates in deg/s, times in s, lengths in m. Pronation p is eversion-positive on
both feet (DESIGN.md); pitch is positive toes up. The values are the means of one foot for one
activity; the schedule adds stride-to-stride variability around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

ACTIVITIES = ("walk", "run")

# Ratio (peak pronation rate x time to max pronation / excursion) of the loading roll profile.
# The profile is two quintic Hermite pieces meeting at the peak rate; they stay monotone only for
# a ratio in [1.875, 2.5] (see kinematics.py), so time to max pronation follows from E and V.
PRONATION_SHAPE = 2.2
# Max pronation is reached by this fraction of the IC -> foot-flat time at the latest; the rest is
# the recoil to the foot-flat roll. A faster pronation velocity is used when needed to fit.
PRONATION_LATEST_FRACTION = 0.8


@dataclass(frozen=True)
class GaitParams:
    """Mean gait of one foot for one activity. Defaults: a healthy rearfoot walker.

    The defaults are fitted to the healthy gaitmap example recording (imu_sample.csv, 110.6 strides
    of 2 steps per minute): stance 0.70 s, swing 0.39 s, heel rocker 0.12 s, heel-off at 67 % of
    stance, toe-off angle 58 deg, push-off peak about 520 deg/s, swing pitch range about 85 deg.
    """

    activity: str = "walk"
    cadence_spm: float = 110.6  # steps per minute (a stride is two steps)
    speed_mps: float = 1.35
    duty_factor: float = 0.645  # stance / stride
    loading_fraction: float = 0.17  # (foot-flat start - IC) / stance
    heel_off_ratio: float = 0.66  # (heel-off - IC) / stance; the foot is still in between
    strike_angle_deg: float = 20.0  # pitch at IC relative to foot-flat (> 8 rearfoot, < -1.6 forefoot)
    pronation_excursion_deg: float = 8.0  # max p after IC minus p at IC
    max_pronation_velocity_dps: float = 480.0  # peak dp/dt between IC and max pronation
    pronation_recoil_deg: float = 1.0  # max p minus p at foot-flat
    flat_pronation_deg: float = 0.0  # p while the sole is flat on the ground (0: level, as the foot frame)
    toe_off_pronation_deg: float = 3.0  # p at toe-off minus p at foot-flat (> 0 medial roll-off)
    toe_off_angle_deg: float = 58.0  # pitch at foot-flat minus pitch at toe-off
    # Peak push-off rate x push-off time (heel-off to toe-off) / toe-off angle, in PUSH_SHAPE_RANGE:
    # how late in the push-off the foot plantarflexes. 2.05 is the gaitmap heel pods' walker; the LORD
    # footprint walkers plantarflex late, ~3.1 (their peak rate per degree of toe-off angle and the
    # time half of it takes; benchmarks/README.md, issue 17), their running strides ~2.1.
    push_off_shape: float = 2.05
    post_toe_off_s: float = 0.03  # plantarflexion goes on this long after toe-off, decelerating
    pre_ic_dorsiflexion_deg: float = 3.0  # peak swing pitch above the IC pitch (heel strike only)
    pre_ic_s: float = 0.02  # that peak comes this long before IC
    swing_inversion_deg: float = 9.0  # p at mid-swing below p at IC
    swing_yaw_deg: float = 15.0  # toe-out swing of the heading at mid-swing
    landing_toe_out_deg: float = 5.0  # heading toe-out at IC, turned back in by max pronation
    impact_g: float = 16.0  # peak acceleration of the IC impact ringing, g
    impact_freq_hz: float = 40.0  # ringing frequency of the impact
    impact_gyr_dps: float = 8.0  # peak angular rate of the pod's impact ringing (reaches the gyro), deg/s
    clearance_m: float = 0.06  # extra lift of the sole during swing
    # Plantarflexion rate the foot keeps from foot-flat to heel-off, rolling over the sole from the
    # landing contact to the ball of the foot, deg/s. 0: a still foot-flat. Real running-like
    # strides (LORD footprint walks, issue 17) never stand still: the gyro norm stays above
    # 28-45 deg/s (quartiles of its stance minimum) and the 15 ms SHOE statistic above 2.4-4.7.
    stance_roll_dps: float = 0.0
    variability_cv: float = 0.025  # stride-to-stride coefficient of variation

    @property
    def stride_time_s(self) -> float:
        """Mean stride time (IC to IC of the same foot), s."""
        return 120.0 / self.cadence_spm

    @property
    def stride_length_m(self) -> float:
        """Mean stride length, m."""
        return self.speed_mps * self.stride_time_s

    @property
    def strike_type(self) -> str:
        """rearfoot / midfoot / forefoot from the strike angle (DESIGN.md thresholds)."""
        if self.strike_angle_deg > 8.0:
            return "rearfoot"
        return "midfoot" if self.strike_angle_deg >= -1.6 else "forefoot"


# Fields that differ between the left and right foot by the athlete's asymmetry (multiplicative)
ASYMMETRIC_FIELDS = (
    "pronation_excursion_deg",
    "max_pronation_velocity_dps",
    "toe_off_angle_deg",
    "impact_g",
)
# Fields that shift additively between the feet (deg): signed quantities
ASYMMETRIC_SHIFT_FIELDS = ("toe_off_pronation_deg",)
# Fields that drift over sessions (re-training), additive per session fraction
DRIFT_FIELDS = (
    "pronation_excursion_deg",
    "max_pronation_velocity_dps",
    "toe_off_pronation_deg",
    "toe_off_angle_deg",
    "cadence_spm",
)


@dataclass(frozen=True)
class AthleteParams:
    """One athlete: walking and running gait, foot geometry and left/right asymmetry.

    asymmetry: left/right difference as a fraction (left = mean x (1 + a/2), right x (1 - a/2));
    asymmetry_shift_deg: toe-off pronation left minus right, deg.
    Foot geometry (foot frame, origin at the heel contact point on the sole, x forward, y left):
    mtp_x_m is the ball of the foot; the sensor sits at sensor_*_m, laterally (y mirrored on the right).

    foot_progression_angle_deg: toe-out, the heading of the shoe's long axis (the foot frame x) at
    foot-flat outward of the walking direction, deg, positive outward on both feet (DESIGN.md);
    left = this + fpa_asymmetry_deg / 2, right = this - fpa_asymmetry_deg / 2. The default 15 deg
    is the healthy imu_sample.csv walker (walking direction 14 and 16 deg outward of the shoe axis).
    mtp_break_angle_deg: angle between the metatarsal break line (the oblique MTP axis the heel
    rises about) and the shoe's long axis, deg; 90 would be a medio-lateral (transverse) axis.
    Isman & Inman (1969, Bull. Prosthet. Res. 10-11: 97-129) measured 62 deg on average (range
    54-73 deg); Bojsen-Moller (1979, J. Anat. 129: 165-176) describes push-off starting about this
    oblique axis (MTP 2-5, "low gear") and ending about the transverse axis through MTP 1-2
    ("high gear"). The simulator uses that sequence, see kinematics.py.
    toe_off_axis_deg: angle of the shoe's rotation axis at toe-off from its medio-lateral (y) axis in
    the sole plane, deg, positive when the shoe everts while it plantarflexes (it rolls off over the
    big toe); left = this + toe_off_axis_asymmetry_deg / 2, right = this - .../2. The default is the
    healthy imu_sample.csv walker (left +17, right +25 deg, measured at the detected toe-off in the
    file's shoe frame); the push-off ends about this axis instead of the transverse one.
    tap_axis_deg: heading of the axis the shoe turns about in a heel-down toe tap (the simulated
    field calibration, `simulator.calibration`) from the shoe's y axis in the sole plane, deg,
    + when its lateral end lies behind (the ankle axis' sense); left = this +
    tap_axis_asymmetry_deg / 2, right = this - .../2. Drawn by `sample_tap_axis` (default: its mean).
    """

    walk: GaitParams = field(default_factory=GaitParams)
    run: GaitParams = field(default_factory=lambda: typical_run())
    asymmetry: float = 0.0
    asymmetry_shift_deg: float = 0.0
    phase_offset: float = 0.0  # right IC at (0.5 + offset) of the left stride after the left IC
    mtp_x_m: float = 0.18
    midfoot_x_m: float = 0.10
    sensor_x_m: float = 0.07
    sensor_y_m: float = 0.045  # lateral: +y on the left foot, -y on the right
    sensor_z_m: float = 0.05
    foot_progression_angle_deg: float = 15.0
    fpa_asymmetry_deg: float = 0.0
    mtp_break_angle_deg: float = 60.0
    toe_off_axis_deg: float = 21.0
    toe_off_axis_asymmetry_deg: float = -8.0
    tap_axis_deg: float = 1.0
    tap_axis_asymmetry_deg: float = 0.0

    def foot_progression_angle(self, foot: str) -> float:
        """Mean toe-out of one foot, deg (positive outward)."""
        side = 0.5 if foot == "left" else -0.5
        return self.foot_progression_angle_deg + side * self.fpa_asymmetry_deg

    def toe_off_axis(self, foot: str) -> float:
        """Angle of one foot's rotation axis at toe-off from the shoe's y axis, deg (+ everting)."""
        side = 0.5 if foot == "left" else -0.5
        return self.toe_off_axis_deg + side * self.toe_off_axis_asymmetry_deg

    def tap_axis(self, foot: str) -> float:
        """Heading of one foot's toe-tap axis from the shoe's y axis, deg (+ lateral end backward)."""
        side = 0.5 if foot == "left" else -0.5
        return self.tap_axis_deg + side * self.tap_axis_asymmetry_deg

    def gait(self, activity: str, foot: str) -> GaitParams:
        """Mean gait of one foot for one activity, with the asymmetry applied."""
        base = self.walk if activity == "walk" else self.run
        side = 0.5 if foot == "left" else -0.5
        changes = {f: getattr(base, f) * (1.0 + side * self.asymmetry) for f in ASYMMETRIC_FIELDS}
        changes.update(
            {f: getattr(base, f) + side * self.asymmetry_shift_deg for f in ASYMMETRIC_SHIFT_FIELDS}
        )
        return replace(base, **changes)

    def drifted(self, drift: dict[str, dict[str, float]], fraction: float) -> AthleteParams:
        """These parameters moved by `fraction` (0..1) of the total additive `drift[activity][field]`."""
        return replace(
            self,
            **{
                a: replace(
                    getattr(self, a),
                    **{f: getattr(getattr(self, a), f) + fraction * d for f, d in drift.get(a, {}).items()},
                )
                for a in ACTIVITIES
            },
        )

    def as_rows(self, foot: str) -> list[dict[str, float | str]]:
        """One flat dict per activity of this foot's parameters (for a truth table)."""
        rows = []
        for a in ACTIVITIES:
            g = self.gait(a, foot)
            rows.append({f.name: getattr(g, f.name) for f in fields(g)} | {"strike_type": g.strike_type})
        return rows


def typical_run() -> GaitParams:
    """A typical recreational runner, rearfoot strike (defaults of AthleteParams.run)."""
    return GaitParams(
        activity="run",
        cadence_spm=168.0,
        speed_mps=3.2,
        duty_factor=0.37,
        loading_fraction=0.36,
        heel_off_ratio=0.48,
        strike_angle_deg=14.0,
        pronation_excursion_deg=11.0,
        max_pronation_velocity_dps=550.0,
        pronation_recoil_deg=1.5,
        toe_off_pronation_deg=2.0,
        toe_off_angle_deg=68.0,
        push_off_shape=2.1,
        post_toe_off_s=0.05,
        pre_ic_dorsiflexion_deg=2.0,
        pre_ic_s=0.015,
        swing_inversion_deg=10.0,
        swing_yaw_deg=12.0,
        landing_toe_out_deg=4.0,
        # Within RUN_RANGES. The fast (2.4 m/s) real footprint strides measure 8.8 g (median of the
        # 32 valid running strides whose footprint stride is >= 2 m; 9.3 g over the 25 the analysis
        # measured at >= 2 m before the pod's lever) with a LORD pod on the instep; the former 18 g
        # read 17 g at that pace, 10 g read 11.1 g (tests/hardware/test_simulator_running_realism.py).
        impact_g=9.0,
        impact_freq_hz=50.0,
        impact_gyr_dps=30.0,
        clearance_m=0.11,
        variability_cv=0.03,
    )


# The push-off the LORD footprint pod reads (issue 17; benchmarks/README.md, session 9): toe-off
# angles of 30-38 deg walking and running alike (the gaitmap heel pods: 61 deg walking), and its
# walkers' late push-off (half the toe-off angle in the last 42-48 ms; peak rate 1 / 78 ms per
# degree), which `push_off_shape` 3.1 reproduces through the pipeline (46 ms, 1 / 82 ms).
LORD_POD_TOE_OFF_RANGE_DEG = (30.0, 38.0)
LORD_WALK_PUSH_OFF_SHAPE = 3.1

# Limits of `GaitParams.push_off_shape` (per stride too): below 1.9 the peak rate would come before
# toe-off; above 2.45 the push-off takes a second, late piece (kinematics.py), valid up to 4.0.
PUSH_SHAPE_RANGE = (1.9, 4.0)

# Ranges the athlete parameters are drawn from (uniform unless noted). Truth metrics land in
# roughly the same ranges; tests check them against these.
WALK_RANGES: dict[str, tuple[float, float]] = {
    "speed_mps": (1.1, 1.6),
    "duty_factor": (0.60, 0.66),
    "loading_fraction": (0.14, 0.20),
    "heel_off_ratio": (0.58, 0.70),
    "pronation_excursion_deg": (3.0, 12.0),
    "max_pronation_velocity_dps": (120.0, 500.0),
    "pronation_recoil_deg": (0.0, 2.0),
    "toe_off_pronation_deg": (-6.0, 8.0),
    "toe_off_angle_deg": (45.0, 68.0),
    # The heel pods' walkers. The LORD walkers' late push-off (~3.1) comes with their 30-38 deg toe-off
    # angle; drawn with the angles above it gives up to ~1000 deg/s walking push-off rates (real
    # walkers: 430-500; benchmarks/README.md, issue 17), so it waits for a pod-position feature.
    "push_off_shape": (1.95, 2.35),
    "post_toe_off_s": (0.025, 0.035),
    "swing_inversion_deg": (4.0, 12.0),
    "swing_yaw_deg": (6.0, 18.0),
    "landing_toe_out_deg": (2.0, 7.0),
    "impact_g": (4.0, 13.0),
    "impact_freq_hz": (30.0, 50.0),
    "clearance_m": (0.04, 0.08),
    "variability_cv": (0.015, 0.035),
}
RUN_RANGES: dict[str, tuple[float, float]] = {
    "speed_mps": (2.5, 4.5),
    "duty_factor": (0.33, 0.42),
    "loading_fraction": (0.30, 0.40),
    "pronation_excursion_deg": (5.0, 20.0),
    "max_pronation_velocity_dps": (300.0, 850.0),
    "pronation_recoil_deg": (0.0, 3.0),
    "toe_off_pronation_deg": (-8.0, 8.0),
    "toe_off_angle_deg": (55.0, 80.0),
    "push_off_shape": (1.95, 2.35),
    "post_toe_off_s": (0.045, 0.06),
    "swing_inversion_deg": (5.0, 14.0),
    "swing_yaw_deg": (5.0, 15.0),
    "landing_toe_out_deg": (1.0, 6.0),
    "impact_g": (9.0, 15.0),
    "impact_freq_hz": (40.0, 60.0),
    "clearance_m": (0.08, 0.15),
    "variability_cv": (0.02, 0.04),
}
# Peak angular rate of the pod's impact ringing, deg/s (drawn after everything else, so that
# adding it left the other draws of a seed unchanged): a few deg/s walking, tens running.
IMPACT_GYR_RANGES = {"walk": (3.0, 15.0), "run": (15.0, 60.0)}
# Toe-out (foot progression angle) of a drawn athlete, deg: the 0-20 deg issue 15 asks for, which
# covers most healthy walkers (toe-out of several degrees is typical); left minus right within
# FPA_ASYMMETRY_DEG.
FPA_RANGE_DEG = (0.0, 20.0)
FPA_ASYMMETRY_DEG = (-2.0, 2.0)
MTP_BREAK_RANGE_DEG = (50.0, 65.0)  # the oblique MTP axis to the long axis (Isman & Inman: 54-73)
# Rotation axis at toe-off from the shoe's y axis in the sole plane, deg (+: everting while
# plantarflexing), athlete mean and left minus right. Measured at the detected toe-off on the level
# walks of shared/ in their given shoe frame (benchmarks/README.md): healthy imu_sample.csv +17 / +25
# (left / right), the MS walker +0 / -10; per foot these draws span -10..+25 deg. The size is that of
# the MTP break line's obliquity (Isman & Inman: 90 - 62 = 28 deg on average), but its sense is the
# measured one: healthy feet evert as they roll off over the big toe, where the break line inverts.
TOE_OFF_AXIS_RANGE_DEG = (-5.0, 20.0)
TOE_OFF_AXIS_ASYMMETRY_DEG = (-10.0, 10.0)
# Heading of the toe-tap calibration's axis from the shoe's y, deg (+ lateral end backward): normal
# over athletes with this mean and SD, left minus right uniform within +- the asymmetry. A reasoned
# assumption, not a measurement (simulator.calibration): the ankle's axis is ~6 deg off the
# medio-lateral (Inman 1976), and the loaded heel keeps the shoe on its own axis for most of that.
TAP_AXIS_MEAN_DEG = 1.0
TAP_AXIS_SD_DEG = 1.0
TAP_AXIS_ASYMMETRY_DEG = 1.0
# Foot-strike angle ranges per pattern, deg (DESIGN.md thresholds: > 8 rearfoot, < -1.6 forefoot)
STRIKE_RANGES = {"rearfoot": (11.0, 24.0), "midfoot": (0.0, 6.0), "forefoot": (-12.0, -4.0)}
STRIKE_ODDS = {"walk": (0.9, 0.1, 0.0), "run": (0.45, 0.35, 0.20)}  # rearfoot, midfoot, forefoot
# Limits of any single stride (after variability): the configured metric ranges
STRIDE_LIMITS = {
    "pronation_excursion_deg": (2.0, 20.0),
    "max_pronation_velocity_dps": (100.0, 900.0),
}


def sample_gait(rng: np.random.Generator, activity: str) -> GaitParams:
    """Draw one athlete's mean gait for an activity."""
    ranges = WALK_RANGES if activity == "walk" else RUN_RANGES
    values = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()}
    if activity == "walk":
        values["cadence_spm"] = float(np.clip(rng.normal(112.0, 6.0), 96.0, 128.0))
    else:
        values["cadence_spm"] = float(np.clip(rng.normal(168.0, 8.0), 150.0, 190.0))
        # the still foot-flat of running is short: 8-15 % of stance
        values["heel_off_ratio"] = values["loading_fraction"] + float(rng.uniform(0.08, 0.15))
    pattern = str(rng.choice(list(STRIKE_RANGES), p=STRIKE_ODDS[activity]))
    values["strike_angle_deg"] = float(rng.uniform(*STRIKE_RANGES[pattern]))
    if pattern != "rearfoot":
        values["pre_ic_dorsiflexion_deg"] = 1.0
        values["impact_g"] *= 0.7  # a forefoot landing is softer
    # Faster pronation goes with larger excursion
    e_lo, e_hi = ranges["pronation_excursion_deg"]
    v_lo, v_hi = ranges["max_pronation_velocity_dps"]
    e_frac = (values["pronation_excursion_deg"] - e_lo) / (e_hi - e_lo)
    v_frac = float(np.clip(0.6 * e_frac + 0.4 * rng.uniform(), 0.0, 1.0))
    values["max_pronation_velocity_dps"] = v_lo + v_frac * (v_hi - v_lo)
    return GaitParams(activity=activity, **values)


def sample_athlete(rng: np.random.Generator) -> AthleteParams:
    """Draw one athlete: walking and running gait, foot size, sensor place and asymmetry."""
    walk = sample_gait(rng, "walk")
    run = sample_gait(rng, "run")
    scale = float(rng.uniform(0.9, 1.1))  # foot size
    athlete = AthleteParams(
        walk=walk,
        run=run,
        asymmetry=float(rng.uniform(-0.10, 0.10)),
        asymmetry_shift_deg=float(rng.uniform(-2.0, 2.0)),
        phase_offset=float(rng.uniform(-0.01, 0.01)),
        mtp_x_m=0.18 * scale,
        midfoot_x_m=0.10 * scale,
        sensor_x_m=float(rng.uniform(0.04, 0.09)) * scale,
        sensor_y_m=float(rng.uniform(0.035, 0.05)),
        sensor_z_m=float(rng.uniform(0.03, 0.06)),
    )
    # Drawn last, so a seed's other parameters are what they were before these existed.
    return replace(
        athlete,
        walk=replace(walk, impact_gyr_dps=float(rng.uniform(*IMPACT_GYR_RANGES["walk"]))),
        run=replace(run, impact_gyr_dps=float(rng.uniform(*IMPACT_GYR_RANGES["run"]))),
        foot_progression_angle_deg=float(rng.uniform(*FPA_RANGE_DEG)),
        fpa_asymmetry_deg=float(rng.uniform(*FPA_ASYMMETRY_DEG)),
        mtp_break_angle_deg=float(rng.uniform(*MTP_BREAK_RANGE_DEG)),
        toe_off_axis_deg=float(rng.uniform(*TOE_OFF_AXIS_RANGE_DEG)),
        toe_off_axis_asymmetry_deg=float(rng.uniform(*TOE_OFF_AXIS_ASYMMETRY_DEG)),
    )


def sample_tap_axis(rng: np.random.Generator, athlete: AthleteParams) -> AthleteParams:
    """The athlete with a drawn toe-tap axis (`AthleteParams.tap_axis_deg`, its asymmetry)."""
    return replace(
        athlete,
        tap_axis_deg=float(rng.normal(TAP_AXIS_MEAN_DEG, TAP_AXIS_SD_DEG)),
        tap_axis_asymmetry_deg=float(rng.uniform(-TAP_AXIS_ASYMMETRY_DEG, TAP_AXIS_ASYMMETRY_DEG)),
    )


def sample_drift(rng: np.random.Generator, params: AthleteParams) -> dict[str, dict[str, float]]:
    """Total additive change of the drifting fields over an athlete's sessions (re-training trend)."""
    drift: dict[str, dict[str, float]] = {}
    for a in ACTIVITIES:
        g = getattr(params, a)
        drift[a] = {
            "pronation_excursion_deg": g.pronation_excursion_deg * float(rng.uniform(-0.3, 0.3)),
            "max_pronation_velocity_dps": g.max_pronation_velocity_dps * float(rng.uniform(-0.25, 0.25)),
            "toe_off_pronation_deg": float(rng.uniform(-3.0, 3.0)),
            "toe_off_angle_deg": float(rng.uniform(-5.0, 5.0)),
            "cadence_spm": g.cadence_spm * float(rng.uniform(-0.03, 0.03)),
        }
    return drift
