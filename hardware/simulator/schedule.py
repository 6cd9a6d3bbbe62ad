"""The session plan: standing, walking and running bouts with turns, and each foot's stance timeline.

A foot's timeline is a list of stances. Stance k lands at IC `ic[k]`, is still from `ffs[k]`
(foot-flat start) to `ho[k]` (heel-off) and leaves the ground at `to[k]` (toe-off); swing k runs
from `to[k]` to `ic[k + 1]`. The first stance of a session has no IC (the athlete stands from
t = 0), the last has no heel-off (the athlete stands to the end), and the last stance of every bout
is a standing one whose foot-flat lasts until the next bout starts.

Turns: each straight leg of a bout ends with a 180 deg turn made over three swings (60 deg per
swing). The strides whose swing turns are kept in the truth with valid = false, reason "turn".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strideflow.hardware.schema import FEET
from strideflow.hardware.simulator.params import (
    PRONATION_LATEST_FRACTION,
    PRONATION_SHAPE,
    PUSH_SHAPE_RANGE,
    STRIDE_LIMITS,
    AthleteParams,
    GaitParams,
)

TURN_SWINGS = 3  # a 180 deg turn takes this many swings
TURN_STRIDE_LENGTH_FACTOR = 0.5  # strides while turning are shorter
FIRST_STEP_LENGTH_FACTOR = 0.6  # gait initiation: the first swing from standing is shorter
INITIAL_STAND_S = (2.0, 4.0)
PAUSE_STAND_S = (2.0, 6.0)
BOUT_S = {"walk": (15.0, 45.0), "run": (20.0, 60.0)}
# Shortest session that always holds one bout: the longest initial standing (4 s), 1.5 s at the end,
# two strides to start and land and four strides of gait, at the slowest drawn stride (< 1.3 s).
MIN_SESSION_S = 15.0
LEG_STRIDES = {"walk": (8, 18), "run": (10, 25)}  # strides of a straight leg before a turn

# Per-stride parameters drawn around the foot's mean (names of GaitParams fields)
RELATIVE_VARYING = (
    "pronation_excursion_deg",
    "max_pronation_velocity_dps",
    "toe_off_angle_deg",
    "push_off_shape",
    "impact_g",
    "duty_factor",
    "loading_fraction",
    "heel_off_ratio",
    "swing_inversion_deg",
    "swing_yaw_deg",
    "landing_toe_out_deg",
    "clearance_m",
)
ABSOLUTE_VARYING_DEG = ("strike_angle_deg", "toe_off_pronation_deg", "pronation_recoil_deg")
CONSTANT = (
    "post_toe_off_s",
    "pre_ic_dorsiflexion_deg",
    "pre_ic_s",
    "impact_freq_hz",
    "flat_pronation_deg",
    "impact_gyr_dps",
    "stance_roll_dps",
)
ABSOLUTE_SD_PER_CV_DEG = 40.0  # a CV of 0.025 gives 1 deg stride-to-stride SD on signed angles
# Stride-to-stride SD of the toe-out (foot progression angle), deg: real walkers vary by 1-2 deg.
FPA_STRIDE_SD_DEG = 1.5
# Stride-to-stride SD of the rotation axis at toe-off, deg: the real level walks' per-foot IQR at the
# detected toe-off is 2.7-5.6 deg (SD ~2-4, sampling included; benchmarks/README.md).
TOE_OFF_AXIS_STRIDE_SD_DEG = 2.5


@dataclass(frozen=True)
class Bout:
    """One bout of gait: body stride times, which swings turn, and which foot moves first."""

    activity: str
    start_s: float  # first heel-off of the leading foot
    stride_time_s: np.ndarray  # (n,) body stride times
    turn: np.ndarray  # (n,) bool: swing j (after stance j of each foot) turns
    turn_rad: np.ndarray  # (n,) heading change of swing j
    leading: str


@dataclass
class FootTimeline:
    """Stances of one foot (arrays over stances, see the module docstring) and their parameters."""

    ic: np.ndarray
    ffs: np.ndarray
    ho: np.ndarray
    to: np.ndarray
    gait: np.ndarray  # bool: stride k (ic[k] -> ic[k+1]) is a stride of continuous gait (truth row)
    turn: np.ndarray  # bool: swing k turns
    activity: np.ndarray  # str per stance
    heading_rad: np.ndarray  # walking direction of the stance (the shoe points toe-out of it)
    origin_m: np.ndarray  # (n, 3) world position of the heel contact point at foot-flat
    values: dict[str, np.ndarray]  # per-stance GaitParams values (after variability) + derived
    end_s: float

    @property
    def n(self) -> int:
        """Number of stances."""
        return len(self.ic)


def plan_bouts(
    rng: np.random.Generator, activity: str, duration_s: float, athlete: AthleteParams, turns: bool = True
) -> list[Bout]:
    """Bouts of gait separated by standing, filling `duration_s` (the end is standing)."""
    bouts: list[Bout] = []
    t = float(rng.uniform(*INITIAL_STAND_S))
    previous = None
    while True:
        if activity == "mixed":
            act = (
                "run"
                if previous == "walk"
                else "walk"
                if previous == "run"
                else str(rng.choice(["walk", "run"]))
            )
        else:
            act = activity
        gait = getattr(athlete, act)
        stride = gait.stride_time_s
        lo, hi = BOUT_S[act]
        remaining = duration_s - t - 1.5 - 2 * stride  # room to land and stand a moment at the end
        if remaining < max(4 * stride, 0.25 * lo):
            break
        length = min(float(rng.uniform(lo, hi)), remaining)
        n = max(int(length / stride), 3)
        times = stride * (1.0 + gait.variability_cv * rng.standard_normal(n))
        turn = np.zeros(n, bool)
        turn_rad = np.zeros(n)
        j = int(rng.integers(*LEG_STRIDES[act]))
        while turns and j + TURN_SWINGS < n - 1:
            turn[j : j + TURN_SWINGS] = True
            turn_rad[j : j + TURN_SWINGS] = rng.choice([-1.0, 1.0]) * np.pi / TURN_SWINGS
            j += TURN_SWINGS + int(rng.integers(*LEG_STRIDES[act]))
        bouts.append(Bout(act, t, times, turn, turn_rad, str(rng.choice(FEET))))
        t += float(times.sum()) + 2 * stride + float(rng.uniform(*PAUSE_STAND_S))
        previous = act
    if not bouts:
        needed = t + 1.5 + 2 * stride + max(4 * stride, 0.25 * lo)
        raise ValueError(
            f"a {activity} session of {duration_s:g} s has no room for a bout of gait after its "
            f"{t:.1f} s of standing: this athlete needs at least {needed:.1f} s "
            f"({MIN_SESSION_S:g} s always suffices)"
        )
    return bouts


# Shortest still phase (heel-off - foot-flat start) of a simulated stance, as a fraction of stance.
MIN_STILL_FRACTION = 0.03


def _vary(rng: np.random.Generator, gait: GaitParams, n: int) -> dict[str, np.ndarray]:
    """Per-stride values of a foot's gait parameters, with stride-to-stride variability."""
    cv = gait.variability_cv
    out = {f: getattr(gait, f) * (1.0 + cv * rng.standard_normal(n)) for f in RELATIVE_VARYING}
    sd = ABSOLUTE_SD_PER_CV_DEG * cv
    out |= {f: getattr(gait, f) + sd * rng.standard_normal(n) for f in ABSOLUTE_VARYING_DEG}
    out |= {f: np.full(n, float(getattr(gait, f))) for f in CONSTANT}
    out["pronation_recoil_deg"] = np.abs(out["pronation_recoil_deg"])
    for f, (lo, hi) in STRIDE_LIMITS.items():
        out[f] = np.clip(out[f], lo, hi)
    out["push_off_shape"] = np.clip(out["push_off_shape"], *PUSH_SHAPE_RANGE)
    # Stride-to-stride variation must not put heel-off before the foot is flat: running's still
    # phase is only 8-15 % of stance, and an hour of strides reaches the tails (it did, once).
    out["heel_off_ratio"] = np.maximum(out["heel_off_ratio"], out["loading_fraction"] + MIN_STILL_FRACTION)
    return out


def foot_timeline(
    rng: np.random.Generator, bouts: list[Bout], athlete: AthleteParams, foot: str, duration_s: float
) -> FootTimeline:
    """Stance times, headings, positions and per-stance parameters of one foot over all bouts."""
    geo_pivot = {"rearfoot": 0.0, "midfoot": athlete.midfoot_x_m, "forefoot": athlete.mtp_x_m}
    ic, ffs, ho, to, gait_ok, turn, act, heading, step = ([0.0], [0.0], [], [], [], [], [], [], [])
    ic[0] = np.nan
    rows: list[dict[str, np.ndarray]] = []
    psi = 0.0
    first = _vary(rng, athlete.gait("walk", foot), 1)  # the initial standing stance
    rows.append(first)
    act.append("walk")
    heading.append(psi)
    for bout in bouts:
        gait = athlete.gait(bout.activity, foot)
        n = len(bout.stride_time_s)
        v = _vary(rng, gait, n)
        T = bout.stride_time_s
        lead = foot == bout.leading
        stance = v["duty_factor"] * T
        swing = T - stance
        push = (1.0 - v["heel_off_ratio"]) * stance
        first_ic = bout.start_s + push[0] + swing[0]
        if not lead:
            first_ic += (0.5 + (athlete.phase_offset if foot == "right" else -athlete.phase_offset)) * T[0]
        ics = first_ic + np.concatenate([[0.0], np.cumsum(T[:-1])])
        # the previous (standing) stance leaves the ground for this bout's first swing
        ho.append(ics[0] - swing[0] - push[0])
        to.append(ics[0] - swing[0])
        step.append(FIRST_STEP_LENGTH_FACTOR * gait.speed_mps * T[0])
        turn.append(False)
        gait_ok.append(False)
        ic.extend(ics)
        ffs.extend(ics + v["loading_fraction"] * stance)
        ho.extend(ics[:-1] + v["heel_off_ratio"][:-1] * stance[:-1])
        to.extend(ics[:-1] + stance[:-1])
        turn.extend(bout.turn[:-1])
        gait_ok.extend([True] * (n - 1))
        for j in range(n):
            heading.append(psi)
            if j < n - 1:
                psi += bout.turn_rad[j]
        length = gait.speed_mps * T * np.where(bout.turn, TURN_STRIDE_LENGTH_FACTOR, 1.0)
        step.extend(length[:-1])
        rows.append(v)
        act.extend([bout.activity] * n)
    ho.append(np.nan)
    to.append(np.nan)
    turn.append(False)
    gait_ok.append(False)
    step.append(0.0)
    values = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    activity = np.array(act)
    ic_a, ffs_a = np.array(ic, float), np.array(ffs, float)
    n_st = len(ic_a)
    # Pronation timing: peak rate V at 35 % of the rise, max at time_to_max = shape * E / V, which
    # must come before the foot is flat; V is raised where it would not.
    loading_s = np.where(np.isnan(ic_a), np.inf, ffs_a - ic_a)
    latest_s = PRONATION_LATEST_FRACTION * loading_s
    v_hi = STRIDE_LIMITS["max_pronation_velocity_dps"][1]
    e = np.minimum(values["pronation_excursion_deg"], v_hi * latest_s / PRONATION_SHAPE)
    vmax = np.clip(values["max_pronation_velocity_dps"], PRONATION_SHAPE * e / latest_s, v_hi)
    values["pronation_excursion_deg"] = e
    values["max_pronation_velocity_dps"] = vmax
    values["time_to_max_pronation_s"] = PRONATION_SHAPE * e / vmax
    strike = np.where(
        values["strike_angle_deg"] > 8.0,
        "rearfoot",
        np.where(values["strike_angle_deg"] >= -1.6, "midfoot", "forefoot"),
    )
    values["pivot_x_m"] = np.array([geo_pivot[s] for s in strike])
    # positions of the heel contact point at each foot-flat, stepping along the mean heading of each swing
    heading_a = np.array(heading)
    side = 0.1 if foot == "left" else -0.1
    mid = np.concatenate([(heading_a[:-1] + heading_a[1:]) / 2.0, [heading_a[-1]]])
    step_a = np.array(step, float)
    d = np.stack([step_a * np.cos(mid), step_a * np.sin(mid), np.zeros(n_st)], axis=1)
    origin = np.vstack([[0.0, side, 0.0], np.array([0.0, side, 0.0]) + np.cumsum(d[:-1], axis=0)])
    # toe-out and toe-off axis of each stance (drawn last: the draws above are what they were before)
    values["foot_progression_angle_deg"] = athlete.foot_progression_angle(
        foot
    ) + FPA_STRIDE_SD_DEG * rng.standard_normal(n_st)
    values["toe_off_axis_deg"] = athlete.toe_off_axis(
        foot
    ) + TOE_OFF_AXIS_STRIDE_SD_DEG * rng.standard_normal(n_st)
    return FootTimeline(
        ic=ic_a,
        ffs=ffs_a,
        ho=np.array(ho, float),
        to=np.array(to, float),
        gait=np.array(gait_ok, bool),
        turn=np.array(turn, bool),
        activity=activity,
        heading_rad=heading_a,
        origin_m=origin,
        values=values,
        end_s=duration_s,
    )
