"""True strides: event times and every metric of DESIGN.md's strides table, from the exact motion.

Events come from the timeline (they are what the motion was built from): IC, foot-flat = middle of
the still period, heel-off = end of the still period, toe-off, next IC. Metrics are evaluated from
the noise-free foot motion with the DESIGN.md definitions, on per-stride grids fine enough that
grid error is far below anything measurable at 200 Hz (pronation and push-off windows: 400 points,
impact window: 50 ms at 0.25 ms, < 0.2 % below the peak of a 60 Hz ringing).

impact_g is the peak of the continuous specific force; a 200 Hz sensor samples below it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from strideflow.hardware import schema as S
from strideflow.hardware.simulator.kinematics import FootMotion

WINDOW_POINTS = 400
IMPACT_POINTS = 201

ACTIVITY = "activity"  # extra truth column: walk or run
TURN_REASON = S.CONTEXT_TURN  # a turning stride's `context` (valid, not steady), no longer a reason


def _grid(start: np.ndarray, stop: np.ndarray, points: int) -> np.ndarray:
    """(n, points) evenly spaced times from start to stop per row."""
    return start[:, None] + (stop - start)[:, None] * np.linspace(0.0, 1.0, points)[None, :]


def truth_strides(motion: FootMotion, athlete_id: str, session_id: str) -> pl.DataFrame:
    """The strides table of one foot's true motion (STRIDES_SCHEMA columns, with
    `foot_progression_angle_deg`, plus `activity`)."""
    tl = motion.timeline
    k = np.flatnonzero(tl.gait)
    n = len(k)
    sign = motion.sign
    ic, nic = tl.ic[k], tl.ic[k + 1]
    ffs, ho, to = tl.ffs[k], tl.ho[k], tl.to[k]
    ff_t = 0.5 * (ffs + ho)
    stance = to - ic
    stride = nic - ic

    def pitch_deg(t: np.ndarray) -> np.ndarray:
        return motion.pitch.evaluate(t)[0]

    def pron(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = motion.roll.evaluate(t)
        return sign * r[0], sign * r[1]

    # pronation: max p in [IC, IC + 60 % stance], max dp/dt in [IC, time of max p]
    g = _grid(ic, ic + S.PRONATION_WINDOW_STANCE_FRACTION * stance, WINDOW_POINTS)
    p, dp = pron(g.ravel())
    p, dp = p.reshape(g.shape), dp.reshape(g.shape)
    i_max = np.argmax(p, axis=1)
    rows = np.arange(n)
    t_max = g[rows, i_max]
    p_ic = pron(ic)[0]
    before = np.arange(WINDOW_POINTS)[None, :] <= i_max[:, None]
    max_rate = np.max(np.where(before, dp, -np.inf), axis=1)
    # push-off: peak plantarflexion rate (-d pitch/dt) in [heel-off, toe-off]
    g = _grid(ho, to, WINDOW_POINTS)
    push = (-motion.pitch.evaluate(g.ravel())[1]).reshape(g.shape).max(axis=1)
    # impact: peak |specific force| within 50 ms after IC
    g = _grid(ic, ic + S.IMPACT_WINDOW_S, IMPACT_POINTS)
    acc = motion.evaluate(g.ravel()).acc_mps2
    impact = np.linalg.norm(acc, axis=1).reshape(g.shape).max(axis=1) / S.STANDARD_GRAVITY_MPS2
    # stride length: horizontal sensor displacement between this and the next foot-flat
    nffs, nho = tl.ffs[k + 1], tl.ho[k + 1]
    nff_t = np.where(np.isfinite(nho), 0.5 * (nffs + nho), nffs + 0.05)
    pos = motion.evaluate(np.concatenate([ff_t, nff_t])).pos_m
    step = pos[n:, :2] - pos[:n, :2]
    length = np.hypot(*step.T)
    # toe-out: shoe heading at foot-flat (the yaw spline is the heading of the foot x axis) against
    # the direction of that same displacement, positive outward (left: +yaw, right: -yaw)
    yaw_ff_deg, yaw_next_deg = motion.yaw.evaluate(ff_t)[0], motion.yaw.evaluate(nff_t)[0]
    heading = np.deg2rad(yaw_ff_deg)
    heading_change = (yaw_next_deg - yaw_ff_deg + 180.0) % 360.0 - 180.0
    toe_out = np.rad2deg(np.angle(np.exp(1j * (heading - np.arctan2(step[:, 1], step[:, 0])))))

    pitch_ff = pitch_deg(ff_t)
    strike = pitch_deg(ic - S.STRIKE_LOOKBACK_S) - pitch_ff
    strike_type = np.where(
        strike > S.STRIKE_REARFOOT_ABOVE_DEG,
        "rearfoot",
        np.where(strike >= S.STRIKE_FOREFOOT_BELOW_DEG, "midfoot", "forefoot"),
    )
    turn = tl.turn[k]
    data = {
        S.ATHLETE_ID: [athlete_id] * n,
        S.SESSION_ID: [session_id] * n,
        S.FOOT: [motion.foot] * n,
        S.STRIDE_INDEX: np.arange(n, dtype=np.int64),
        S.IC_T: ic,
        S.FOOT_FLAT_T: ff_t,
        S.HEEL_OFF_T: ho,
        S.TOE_OFF_T: to,
        S.NEXT_IC_T: nic,
        S.STRIDE_TIME_S: stride,
        S.STANCE_TIME_S: stance,
        S.SWING_TIME_S: nic - to,
        S.CADENCE_SPM: 120.0 / stride,
        S.STRIDE_LENGTH_M: length,
        S.SPEED_MPS: length / stride,
        S.FOOT_STRIKE_ANGLE_DEG: strike,
        S.PRONATION_EXCURSION_DEG: p.max(axis=1) - p_ic,
        S.MAX_PRONATION_VELOCITY_DPS: max_rate,
        S.TIME_TO_MAX_PRONATION_S: t_max - ic,
        S.TOE_OFF_PRONATION_DEG: pron(to)[0] - pron(ff_t)[0],
        S.TOE_OFF_ANGLE_DEG: pitch_ff - pitch_deg(to),
        S.PUSH_OFF_RATE_DPS: push,
        S.HEEL_OFF_RATIO: (ho - ic) / stance,
        S.IMPACT_G: impact,
        S.DUTY_FACTOR: stance / stride,
        S.STRIKE_TYPE: strike_type.tolist(),
        # a turning stride is a real stride, measured (valid), but not steady walking (context)
        S.VALID: np.ones(n, dtype=bool),
        S.REASON: [None] * n,
        S.HEADING_CHANGE_DEG: heading_change,
        S.CONTEXT: [TURN_REASON if x else None for x in turn],
        S.STEADY: ~turn,
        S.FOOT_PROGRESSION_ANGLE_DEG: sign * toe_out,
        ACTIVITY: tl.activity[k].tolist(),
    }
    schema = {**S.STRIDES_SCHEMA, S.FOOT_PROGRESSION_ANGLE_DEG: pl.Float64(), ACTIVITY: pl.String()}
    return pl.DataFrame({c: data[c] for c in schema}, schema=schema)
