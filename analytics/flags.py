"""Per-session flags: simple, configurable heuristics on the `sessions` table. Not a diagnosis.

A flag says "this session's typical stride sits beyond a threshold worth a look", nothing more.
Every threshold below is a heuristic default chosen from the ranges reported for healthy
walking and running with shoe-mounted sensors; a coach should set them per athlete or team,
ideally against the athlete's own baseline. A foot needs at least `min_strides` valid strides
before any flag is raised on it, so a few odd strides never trigger one.

The flags table has one row per raised flag: keys (`foot` is null for left/right asymmetry, which
belongs to the session), `activity` (a sessions row is walking or running, so a flag compares a
gait with thresholds for it and asymmetry pairs walking with walking), `flag`, `metric`,
`value` (the session median, or the symmetry index in percent), `threshold`, and a `note` in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    FOOT,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    SESSION_ID,
    STANCE_TIME_S,
    STRIDE_COUNT,
    STRIDE_LENGTH_M,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    session_median,
    symmetry_index,
)

FLAG = "flag"
METRIC = "metric"
VALUE = "value"
THRESHOLD = "threshold"
NOTE = "note"

LOW_PRONATION = "low_pronation"
FAST_PRONATION = "fast_pronation"
LATERAL_ROLL_OFF = "lateral_roll_off"
SHORT_TOE_OFF = "short_toe_off"
ASYMMETRY = "asymmetry"
FLAGS = (LOW_PRONATION, FAST_PRONATION, LATERAL_ROLL_OFF, SHORT_TOE_OFF, ASYMMETRY)

FLAGS_SCHEMA: dict[str, pl.DataType] = {
    ATHLETE_ID: pl.String(),
    SESSION_ID: pl.String(),
    FOOT: pl.String(),
    FLAG: pl.String(),
    METRIC: pl.String(),
    VALUE: pl.Float64(),
    THRESHOLD: pl.Float64(),
    NOTE: pl.String(),
    ACTIVITY: pl.String(),  # the sessions row's activity: a flag holds for walking or for running
}


@dataclass(frozen=True)
class FlagSettings:
    """Heuristic thresholds (not diagnostic cut-offs), all applied to per-foot session medians.

    - `min_strides`: valid strides a foot needs before it can be flagged.
    - `low_pronation_excursion_deg` (4 deg): median pronation excursion below this: the foot
      barely everts after contact (typical shod walking and running: about 4 to 12 deg).
    - `fast_pronation_velocity_dps` (700 deg/s): median max pronation velocity above this
      (typical running: a few hundred deg/s; walking lower).
    - `lateral_roll_off_below_deg` (-2 deg): median toe-off pronation below this: the foot leaves
      the ground over its outer edge rather than through the big toe (a small margin below 0 so
      orientation noise alone does not flag).
    - `short_toe_off_below_deg` (30 deg): median toe-off angle (plantarflexion from foot-flat to
      toe-off) below this: little roll-over and push-off through the toes.
    - `asymmetry_si_pct` (15 %): |left/right symmetry index| of a metric in `asymmetry_metrics`
      above this (one flag per metric).
    """

    min_strides: int = 10
    low_pronation_excursion_deg: float = 4.0
    fast_pronation_velocity_dps: float = 700.0
    lateral_roll_off_below_deg: float = -2.0
    short_toe_off_below_deg: float = 30.0
    asymmetry_si_pct: float = 15.0
    asymmetry_metrics: tuple[str, ...] = (
        PRONATION_EXCURSION_DEG,
        MAX_PRONATION_VELOCITY_DPS,
        TOE_OFF_ANGLE_DEG,
        STANCE_TIME_S,
        STRIDE_LENGTH_M,
    )


def _per_foot_rule(
    sessions: pl.DataFrame,
    settings: FlagSettings,
    flag: str,
    metric: str,
    threshold: float,
    above: bool,
    note: str,
) -> pl.DataFrame:
    value = pl.col(session_median(metric))
    beyond = value > threshold if above else value < threshold
    return sessions.filter((pl.col(STRIDE_COUNT) >= settings.min_strides) & beyond).select(
        *KEYS,
        pl.col(ACTIVITY),
        pl.lit(flag).alias(FLAG),
        pl.lit(metric).alias(METRIC),
        value.alias(VALUE),
        pl.lit(threshold, dtype=pl.Float64).alias(THRESHOLD),
        pl.lit(note).alias(NOTE),
    )


class SessionFlagger:
    """Raises the heuristic flags of FlagSettings on a `sessions` table."""

    def __init__(self, settings: FlagSettings = FlagSettings()):
        self.settings = settings

    def detect(self, sessions: pl.DataFrame) -> SessionFlagger:
        """Compute `flags_` (FLAGS_SCHEMA, one row per raised flag) from `sessions`."""
        s = self.settings
        if ACTIVITY not in sessions.columns:  # a sessions table from before the split by activity
            sessions = sessions.with_columns(pl.lit(None, dtype=pl.String).alias(ACTIVITY))
        per_foot = [
            _per_foot_rule(
                sessions,
                s,
                LOW_PRONATION,
                PRONATION_EXCURSION_DEG,
                s.low_pronation_excursion_deg,
                False,
                "pronation excursion below the heuristic threshold: little eversion after contact",
            ),
            _per_foot_rule(
                sessions,
                s,
                FAST_PRONATION,
                MAX_PRONATION_VELOCITY_DPS,
                s.fast_pronation_velocity_dps,
                True,
                "max pronation velocity above the heuristic threshold",
            ),
            _per_foot_rule(
                sessions,
                s,
                LATERAL_ROLL_OFF,
                TOE_OFF_PRONATION_DEG,
                s.lateral_roll_off_below_deg,
                False,
                "the foot rolls off over its outer edge rather than through the big toe",
            ),
            _per_foot_rule(
                sessions,
                s,
                SHORT_TOE_OFF,
                TOE_OFF_ANGLE_DEG,
                s.short_toe_off_below_deg,
                False,
                "toe-off angle below the heuristic threshold: little roll-over through the toes",
            ),
        ]
        # Asymmetry belongs to the session: both feet must qualify, then one row per metric.
        counted = (
            sessions.group_by(ATHLETE_ID, SESSION_ID, ACTIVITY)
            .agg(
                (pl.col(STRIDE_COUNT) >= s.min_strides).sum().alias("_feet_ok"),
                *[pl.col(symmetry_index(m)).first() for m in s.asymmetry_metrics],
            )
            .filter(pl.col("_feet_ok") == 2)
        )
        asymmetry = [
            counted.filter(pl.col(symmetry_index(m)).abs() > s.asymmetry_si_pct).select(
                ATHLETE_ID,
                SESSION_ID,
                pl.lit(None, dtype=pl.String).alias(FOOT),
                pl.lit(ASYMMETRY).alias(FLAG),
                pl.lit(m).alias(METRIC),
                pl.col(symmetry_index(m)).alias(VALUE),
                pl.lit(s.asymmetry_si_pct, dtype=pl.Float64).alias(THRESHOLD),
                pl.lit(f"left/right symmetry index of {m} beyond the heuristic ± threshold").alias(NOTE),
                pl.col(ACTIVITY),
            )
            for m in s.asymmetry_metrics
        ]
        frames = [
            f.select([pl.col(c).cast(d) for c, d in FLAGS_SCHEMA.items()]) for f in (*per_foot, *asymmetry)
        ]
        self.flags_ = pl.concat(frames, how="vertical").sort(
            ATHLETE_ID, SESSION_ID, ACTIVITY, FOOT, FLAG, METRIC, nulls_last=True
        )
        return self


def compute_flags(sessions: pl.DataFrame, settings: FlagSettings = FlagSettings()) -> pl.DataFrame:
    """Shorthand for `SessionFlagger(settings).detect(sessions).flags_`."""
    return SessionFlagger(settings).detect(sessions).flags_
