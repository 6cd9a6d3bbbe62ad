"""Column names and dtypes of the tables in DESIGN.md: the one constants module.

Every stage names columns through these constants, never through string literals, so a
rename is one edit here and a breaking change everywhere (which DESIGN.md forbids).
"""

from __future__ import annotations

import polars as pl

# --- keys -------------------------------------------------------------------------------
ATHLETE_ID = "athlete_id"
SESSION_ID = "session_id"
FOOT = "foot"
T = "t"
KEYS = (ATHLETE_ID, SESSION_ID, FOOT)
# Calendar date of a session (ISO yyyy-mm-dd), from the dataset manifest or the upload; trends order by it.
SESSION_DATE = "session_date"
FEET = ("left", "right")

# --- samples ------------------------------------------------------------------------------
ACC = ("acc_x", "acc_y", "acc_z")  # m/s², foot sensor frame
GYR = ("gyr_x", "gyr_y", "gyr_z")  # deg/s, foot sensor frame
MAG = ("mag_x", "mag_y", "mag_z")  # µT, optional
# Added by ingest (DESIGN.md allows added columns):
SEGMENT = "segment"  # int: contiguous piece of a recording; a long gap starts a new segment
INTERPOLATED = "interpolated"  # bool: sample filled in across a short gap
SATURATED = "saturated"  # bool: some axis of this sample sits at the device range

SAMPLES_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    T: pl.Float64(),
    **{c: pl.Float64() for c in ACC},
    **{c: pl.Float64() for c in GYR},
}
SAMPLES_OPTIONAL_SCHEMA: dict[str, pl.DataType] = {
    **{c: pl.Float64() for c in MAG},
    SEGMENT: pl.Int32(),
    INTERPOLATED: pl.Boolean(),
    SATURATED: pl.Boolean(),
}

# --- orientation --------------------------------------------------------------------------
QUAT = ("q_w", "q_x", "q_y", "q_z")  # scalar first, rotates sensor-frame vectors into the world
ORIENTATION_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    T: pl.Float64(),
    **{c: pl.Float64() for c in QUAT},
}

# --- strides ------------------------------------------------------------------------------
STRIDE_INDEX = "stride_index"
IC_T = "ic_t"
FOOT_FLAT_T = "foot_flat_t"
HEEL_OFF_T = "heel_off_t"
TOE_OFF_T = "toe_off_t"
NEXT_IC_T = "next_ic_t"
EVENT_TIMES = (IC_T, FOOT_FLAT_T, HEEL_OFF_T, TOE_OFF_T, NEXT_IC_T)

STRIDE_TIME_S = "stride_time_s"
STANCE_TIME_S = "stance_time_s"
SWING_TIME_S = "swing_time_s"
CADENCE_SPM = "cadence_spm"
STRIDE_LENGTH_M = "stride_length_m"
SPEED_MPS = "speed_mps"
FOOT_STRIKE_ANGLE_DEG = "foot_strike_angle_deg"
STRIKE_TYPE = "strike_type"
PRONATION_EXCURSION_DEG = "pronation_excursion_deg"
MAX_PRONATION_VELOCITY_DPS = "max_pronation_velocity_dps"
TIME_TO_MAX_PRONATION_S = "time_to_max_pronation_s"
TOE_OFF_PRONATION_DEG = "toe_off_pronation_deg"
TOE_OFF_ANGLE_DEG = "toe_off_angle_deg"
PUSH_OFF_RATE_DPS = "push_off_rate_dps"
HEEL_OFF_RATIO = "heel_off_ratio"
IMPACT_G = "impact_g"
DUTY_FACTOR = "duty_factor"
# Toe-out: horizontal angle from the direction of progression (this foot-flat -> next foot-flat)
# to the shoe's x axis at foot-flat, deg, positive outward on both feet (DESIGN.md).
FOOT_PROGRESSION_ANGLE_DEG = "foot_progression_angle_deg"
VALID = "valid"  # a real, whole stride measured without a fault (false with a `reason`)
REASON = "reason"
# Added to DESIGN.md's strides (issue 17): why a valid stride is not steady walking or running, null
# for a steady straight stride: CONTEXT_GAIT_START (the first stride, from standing) or CONTEXT_TURN
# (heading change between its foot-flats above `EventSettings.turn_deg`); the heading change itself
# (deg, signed, counter-clockwise seen from above positive); and `steady`: valid and without a
# context, the strides every statistic (sessions, flags, trends, curves, verdicts) is taken over.
CONTEXT = "context"
CONTEXT_GAIT_START = "gait_start"
CONTEXT_TURN = "turn"
HEADING_CHANGE_DEG = "heading_change_deg"
STEADY = "steady"
# Added to DESIGN.md's strides: walk or run per stride, from its duty factor (`analytics.activity`).
ACTIVITY = "activity"
WALK = "walk"
RUN = "run"
ACTIVITIES = (WALK, RUN)

# Numeric metric columns, in DESIGN.md order (strike_type and valid are not numeric).
METRICS = (
    STRIDE_TIME_S,
    STANCE_TIME_S,
    SWING_TIME_S,
    CADENCE_SPM,
    STRIDE_LENGTH_M,
    SPEED_MPS,
    FOOT_STRIKE_ANGLE_DEG,
    PRONATION_EXCURSION_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_PRONATION_DEG,
    TOE_OFF_ANGLE_DEG,
    PUSH_OFF_RATE_DPS,
    HEEL_OFF_RATIO,
    IMPACT_G,
    DUTY_FACTOR,
    FOOT_PROGRESSION_ANGLE_DEG,
)

STRIDES_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    STRIDE_INDEX: pl.Int64(),
    **{c: pl.Float64() for c in EVENT_TIMES},
    **{c: pl.Float64() for c in METRICS},
    STRIKE_TYPE: pl.String(),
    VALID: pl.Boolean(),
    REASON: pl.String(),
    ACTIVITY: pl.String(),
    HEADING_CHANGE_DEG: pl.Float64(),
    CONTEXT: pl.String(),
    STEADY: pl.Boolean(),
}

# Metrics of a stride known at its toe-off (the stance: IC to toe-off); the others need the next IC.
NEEDS_NEXT_IC = (
    NEXT_IC_T,
    STRIDE_TIME_S,
    SWING_TIME_S,
    CADENCE_SPM,
    STRIDE_LENGTH_M,
    SPEED_MPS,
    DUTY_FACTOR,
    FOOT_PROGRESSION_ANGLE_DEG,
    ACTIVITY,
    HEADING_CHANGE_DEG,
    CONTEXT,
    STEADY,
)
STANCE_METRICS = tuple(m for m in METRICS if m not in NEEDS_NEXT_IC)
# The gait-start stride's ic_t is where the standing before it began, not a contact: the metrics that
# read ic_t (or the stance or stride time from it) are null on that row; its stride length, swing and
# toe-off metrics are measured (`analytics.events`).
NEEDS_IC = (
    STRIDE_TIME_S,
    STANCE_TIME_S,
    CADENCE_SPM,
    SPEED_MPS,
    FOOT_STRIKE_ANGLE_DEG,
    STRIKE_TYPE,
    PRONATION_EXCURSION_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    TIME_TO_MAX_PRONATION_S,
    HEEL_OFF_RATIO,
    IMPACT_G,
    DUTY_FACTOR,
)


def steady_expr(valid: pl.Expr | None = None) -> pl.Expr:
    """`steady` from `valid` (default: the column) and `context`: a valid stride without a context."""
    valid = pl.col(VALID) if valid is None else valid
    return valid.fill_null(False) & pl.col(CONTEXT).is_null()


def steady_of(names) -> pl.Expr:
    """The steady flag (bool, never null) of a table with these column names, what the statistics
    select their strides by: `steady_expr` of its `valid` and `context` (so a stride set invalid
    later is never counted), else its `steady` column; a table stored before either existed marked
    turns and gait starts invalid, so there `valid` means the same."""
    if CONTEXT in names:
        return steady_expr()
    return pl.col(STEADY if STEADY in names else VALID).fill_null(False)


# A live stride's provisional row at its toe-off (`analytics.live_analyzer`): the strides columns that do
# not need the next IC; `valid` says only that nothing found so far makes it invalid.
STANCE_SCHEMA: dict[str, pl.DataType] = {
    c: d for c, d in STRIDES_SCHEMA.items() if c not in (STRIDE_INDEX, *NEEDS_NEXT_IC)
}

# --- heuristics fixed by DESIGN.md ----------------------------------------------------------
STRIKE_REARFOOT_ABOVE_DEG = 8.0  # foot-strike angle > 8 deg: rearfoot
STRIKE_FOREFOOT_BELOW_DEG = -1.6  # < -1.6 deg: forefoot; in between: midfoot
STRIKE_TYPES = ("rearfoot", "midfoot", "forefoot")
# Heading uncertainty (1 sigma, deg) of the mounting's shoe axis (hardware.shoe_axis): an extra strides
# column (the same value on every stride of a foot's recording; null when the frame was given) and a
# sessions column (its largest value over the session's recordings of that foot).
MOUNTING_UNCERTAINTY_DEG = "mounting_uncertainty_deg"
# The mounting a stride was measured in (extra strides column, str; null when the frame was given) and
# whether that mounting began with a remount found in this session (bool). Sessions: `mounting_id` of
# the foot's last mounting in the session, `remount` true when any began with one
# (`analytics.mountings`, docs/frames.md).
MOUNTING_ID = "mounting_id"
REMOUNT = "remount"
# Extra strides column (bool, null when unknown): max pronation sits at the end of its window
# (IC + PRONATION_WINDOW_STANCE_FRACTION of stance), so pronation_excursion_deg is a lower bound.
PRONATION_EXCURSION_CENSORED = "pronation_excursion_censored"
PRONATION_WINDOW_STANCE_FRACTION = 0.60  # max pronation searched in [IC, IC + 60 % of stance]
IMPACT_WINDOW_S = 0.050  # impact_g: peak |acc| within 50 ms after IC
STRIKE_LOOKBACK_S = 0.010  # "pitch just before IC": 10 ms before IC (the impact corrupts IC itself)
STANDARD_GRAVITY_MPS2 = 9.80665

# --- sessions -------------------------------------------------------------------------------
STRIDE_COUNT = "stride_count"


def session_median(metric: str) -> str:
    """Column name of a metric's per-session median in the `sessions` table."""
    return f"{metric}_median"


def session_iqr(metric: str) -> str:
    """Column name of a metric's per-session inter-quartile range in the `sessions` table."""
    return f"{metric}_iqr"


def symmetry_index(metric: str) -> str:
    """Column name of a metric's left/right symmetry index (percent, positive = left larger)."""
    return f"{metric}_si_pct"


def lr_difference(metric: str) -> str:
    """Column name of a signed angle's left-minus-right difference of medians (deg)."""
    return f"{metric}_lr_diff_deg"


# Angles that can be negative or near zero: their left/right symmetry is the difference L - R in
# degrees, not an index (0.9 vs 2.6 deg would read -97 %, a "gross asymmetry" of 1.7 deg).
SIGNED_ANGLE_METRICS = (FOOT_STRIKE_ANGLE_DEG, TOE_OFF_PRONATION_DEG)


# --- signals: per-sample, foot frame, the hand-off from fusion/events to the metrics -----------
# Not a DESIGN.md table; an internal contract between stages (and the simulator's truth).
ROLL_DEG = "roll_deg"  # roll about the foot's x axis relative to level, deg
PITCH_DEG = "pitch_deg"  # toes up positive, deg
PRONATION_DEG = "pronation_deg"  # eversion positive on both feet, deg
PITCH_RATE_DPS = "pitch_rate_dps"  # d(pitch)/dt, deg/s (negative = plantarflexing)
PRONATION_RATE_DPS = "pronation_rate_dps"  # d(pronation)/dt, deg/s
# heading of the foot x axis (shoe axis) in the world, atan2(R10, R00), unwrapped over the foot, deg
HEADING_DEG = "heading_deg"
ACC_NORM_G = "acc_norm_g"  # |specific force| in g
ZERO_VELOCITY = "zero_velocity"  # bool: foot still (zero-velocity / foot-flat sample)
VEL = ("vel_x_mps", "vel_y_mps", "vel_z_mps")  # world frame, zero-velocity aided
POS = ("pos_x_m", "pos_y_m", "pos_z_m")  # world frame, zero-velocity aided
SIGNALS_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    T: pl.Float64(),
    ROLL_DEG: pl.Float64(),
    PITCH_DEG: pl.Float64(),
    PRONATION_DEG: pl.Float64(),
    PITCH_RATE_DPS: pl.Float64(),
    PRONATION_RATE_DPS: pl.Float64(),
    HEADING_DEG: pl.Float64(),
    ACC_NORM_G: pl.Float64(),
    ZERO_VELOCITY: pl.Boolean(),
    **{c: pl.Float64() for c in VEL},
    **{c: pl.Float64() for c in POS},
}
