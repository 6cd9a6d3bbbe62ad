"""Per-session flags: simple, configurable heuristics on the `sessions` table. Not a diagnosis.

A flag says "this session's typical stride sits beyond a threshold worth a look", nothing more.
Every threshold below is a heuristic default chosen from the ranges reported for healthy
walking and running with shoe-mounted sensors; a coach should set them per athlete or team,
ideally against the athlete's own baseline. A foot needs at least `min_strides` steady strides
before any flag is raised on it, so a few odd strides never trigger one.

The flags table has one row per raised flag: keys (`foot` is null for left/right asymmetry, which
belongs to the session), `activity` (a sessions row is walking or running, so a flag compares a
gait with thresholds for it and asymmetry pairs walking with walking), `flag`, `metric`,
`value` (the session median, or the symmetry index in percent), `threshold`, and a `note` in plain words.

Toe-off pronation depends on the shoe axis: a heading error δ of the mounting moves it by
atan(tan θ · sin δ) at a toe-off pitch θ (docs/frames.md). Where the session's mounting
uncertainty (`mounting_uncertainty_deg`) could have moved the median across the threshold, the
`lateral_roll_off` flag is not raised; a `toe_off_flag_withheld` row says so instead, with the
possible error as its value and the reason in its note. A session whose frame was given rather
than estimated (null uncertainty) is judged at face value.

The pronation flags are withheld the same way where the number cannot carry them: a
`pronation_flag_withheld` row (the face value, the threshold, the reason) replaces a
`low_pronation`, `fast_pronation` or `lateral_roll_off` flag on a foot that does not evert after
contact on most of its strides (median pronation excursion 0: the pattern of a sensor read as the
other foot, `analytics.foot_side`; every sign of pronation is then mirrored), and a `low_pronation`
flag on a foot that does not land on its heel (median foot-strike angle at or below the rearfoot
limit, 8 deg): the threshold's sources are heel strikes, and a flat or forefoot landing starts the
excursion part-way into the loading (`FlagSettings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    FOOT,
    FOOT_STRIKE_ANGLE_DEG,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    MOUNTING_UNCERTAINTY_DEG,
    PRONATION_EXCURSION_DEG,
    SESSION_DATE,
    SESSION_ID,
    STANCE_TIME_S,
    STRIDE_COUNT,
    STRIDE_LENGTH_M,
    STRIKE_REARFOOT_ABOVE_DEG,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    session_iqr,
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
ASYMMETRY_CHANGE = "asymmetry_change"  # against the athlete's own sessions (asymmetry_against_baseline)
TOE_OFF_FLAG_WITHHELD = "toe_off_flag_withheld"
PRONATION_FLAG_WITHHELD = "pronation_flag_withheld"  # a pronation flag the foot's strides cannot carry
FLAGS = (
    LOW_PRONATION,
    FAST_PRONATION,
    LATERAL_ROLL_OFF,
    SHORT_TOE_OFF,
    ASYMMETRY,
    TOE_OFF_FLAG_WITHHELD,
    ASYMMETRY_CHANGE,
    PRONATION_FLAG_WITHHELD,
)

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

    Where each number comes from ("real walks": the healthy walker of imu_sample.csv, both feet,
    and the MS files, analysed in the shoe frame; session medians per foot):

    - `min_strides` (10): steady strides a foot needs before it can be flagged, so a few odd
      strides never decide a median: at 10 strides the median's standard error is ~0.3 IQR
      (1.2533 sigma / sqrt(n), sigma = IQR / 1.349, as in `BaselineAsymmetrySettings`).
    - `low_pronation_excursion_deg` (4 deg): median pronation excursion below this: the foot
      barely everts after contact. Rearfoot eversion excursion is ~5-20 deg in heel-toe running
      (Nigg et al. 1993, Clin Biomech 8:213); the real walks, all heel strikes (median foot-strike
      angle 25-34 deg), give 8.4-15.0 deg; 4 deg is half the lowest. Both sources are heel
      strikes, so the flag is judged only on a foot whose median foot-strike angle is above the
      rearfoot limit (`STRIKE_REARFOOT_ABOVE_DEG`, 8 deg); on a flat or forefoot landing the
      "contact" the excursion starts from is already part-way into the loading and no source
      gives its range (the healthy stair-up walker reads 3.3 deg at a -1.6 deg strike angle).
      There a `pronation_flag_withheld` row says so; compare such a foot with its own baseline.
    - `fast_pronation_velocity_dps` (700 deg/s): median max pronation velocity above this. The
      real walks give 360-430 deg/s (80 Hz low-pass); 700 deg/s is well above that walking
      range and about twice the few hundred deg/s typical of running (peak eversion velocity
      ~300-900 deg/s, Nigg et al. 1993).
    - The pronation flags (`low_pronation`, `fast_pronation`, `lateral_roll_off`) are not judged
      on a foot whose median pronation excursion is 0, i.e. more than half its strides do not
      evert within the excursion window: a loading foot everts after contact on almost every
      stride (50-100 % on the gaitmap feet of known side, `analytics.foot_side`), and the
      one-sensor LORD footprint walks, taken as left because the files name no foot, evert on
      0-15 % because the pod was on the right foot: every pronation sign is mirrored there.
    - `lateral_roll_off_below_deg` (-2 deg): median toe-off pronation below this: the foot leaves
      the ground over its outer edge rather than through the big toe. 0 is the sign boundary of
      the metric (DESIGN.md); the 2 deg margin is the metric's error on simulator truth once the
      shoe axis is right (MAE 1.1-1.4 deg with pods square within 1 deg or an exact calibration,
      benchmarks/README.md), so sensor noise alone does not flag. The error the shoe axis adds
      (2.5 deg MAE at the default +-2 deg pod yaw, more on real mounts) is not in the margin but
      in the withholding: the flag is withheld where the mounting's uncertainty could reach it
      (module docstring, `withhold_sigmas`). The healthy real walks give +7 to +20 deg.
    - `withhold_sigmas` (2): the mounting uncertainty is 1 sigma; the toe-off pronation error
      held against the threshold is atan(tan θ · sin(2 σ)) at the median toe-off angle θ.
    - `short_toe_off_below_deg` (15 deg): median toe-off angle (plantarflexion from foot-flat to
      toe-off) below this: little roll-over and push-off through the toes. Half the lowest median
      of the healthy real recordings: the gaitmap pods at the heel read 55-68 deg (level walks),
      40-51 deg (stairs, ic_stride), the LORD pod of the footprint walks (its place on the shoe
      unknown) 33-40 deg walking and 30-38 deg running: where a pod sits along the shoe sets the
      angle it reads (the forefoot bends at the toes while the rearfoot pitches up), which the
      former 30 deg (half of the heel pods' 55-68) did not allow for: it flagged walk 43's
      running (29.9 deg). A heading error changes this angle only through its cosine (0.1 deg at
      5 deg), and its sign is the same on either foot, so it is never withheld.
    - `asymmetry_metrics` (none by default) and `asymmetry_si_pct` (15 %): |left/right symmetry
      index| of a listed metric above this raises one flag per metric. Off by default because no
      fixed threshold has a source: healthy walkers are asymmetric by amounts that depend on the
      metric and the recording (rearfoot and kinematic left/right differences of 2-3 deg are usual
      in healthy runners, Gait & Posture 2023, PMID 37187155, which on an 8-15 deg excursion is a
      20-40 % index), and the healthy gaitmap recordings here give pronation-excursion indices of
      27 % (imu_sample.csv, 15.0 vs 11.5 deg), 77 % and 39 % (stairs) and -142 % (ic_stride), max
      pronation velocity 17 % to -109 %, stance time -41 % to +5 %. A 15 % flag fired on all of
      them. Left/right symmetry stays in every sessions row (`<metric>_si_pct`, signed angles
      `<metric>_lr_diff_deg`), in the trends (`symmetry_index` per session, so a change against
      the athlete's own earlier sessions shows) and on the dashboard; list metrics here with a
      threshold taken from the athlete's own baseline to flag it.
    """

    min_strides: int = 10
    low_pronation_excursion_deg: float = 4.0
    fast_pronation_velocity_dps: float = 700.0
    lateral_roll_off_below_deg: float = -2.0
    withhold_sigmas: float = 2.0
    short_toe_off_below_deg: float = 15.0
    asymmetry_si_pct: float = 15.0
    asymmetry_metrics: tuple[str, ...] = ()


def _median_or_null(sessions: pl.DataFrame, metric: str) -> pl.Expr:
    name = session_median(metric)
    return pl.col(name) if name in sessions.columns else pl.lit(None, dtype=pl.Float64)


def _not_everting(sessions: pl.DataFrame) -> pl.Expr:
    """True where most of the foot's strides do not evert after contact (median excursion 0)."""
    return (_median_or_null(sessions, PRONATION_EXCURSION_DEG) <= 0.0).fill_null(False)


def _withheld_note(flag: str, sessions: pl.DataFrame, heel_strikes_only: bool, foot_signed: bool) -> pl.Expr:
    """Why a pronation flag is not judged on a foot (null where it is judged)."""
    if not foot_signed:
        return pl.lit(None, dtype=pl.String)
    excursion = _median_or_null(sessions, PRONATION_EXCURSION_DEG)
    strike = _median_or_null(sessions, FOOT_STRIKE_ANGLE_DEG)
    note = pl.when(_not_everting(sessions)).then(
        pl.format(
            "{} not judged: the foot does not evert after contact on most strides (median pronation "
            "excursion {} deg), the pattern of a sensor read as the other foot, which mirrors every "
            "pronation sign; give the foot explicitly (or check the pod) before reading pronation",
            pl.lit(flag),
            excursion.round(1),
        )
    )
    if heel_strikes_only:
        note = note.when((strike <= STRIKE_REARFOOT_ABOVE_DEG).fill_null(False)).then(
            pl.format(
                "{} not judged: the foot lands flat or on its forefoot (median foot-strike angle {} deg) "
                "and the threshold's sources are heel strikes, whose excursion starts at the heel's "
                "contact; compare with the athlete's own baseline",
                pl.lit(flag),
                strike.round(1),
            )
        )
    return note.otherwise(pl.lit(None, dtype=pl.String))


def _flag_rows(
    sessions: pl.DataFrame,
    where: pl.Expr,
    flag: str,
    metric: str,
    value: pl.Expr,
    threshold: float,
    note: pl.Expr,
) -> pl.DataFrame:
    """Flag rows (FLAGS_SCHEMA's columns) of the per-foot `sessions` rows where `where` holds."""
    return sessions.filter(where).select(
        *KEYS,
        pl.col(ACTIVITY),
        pl.lit(flag).alias(FLAG),
        pl.lit(metric).alias(METRIC),
        value.alias(VALUE),
        pl.lit(threshold, dtype=pl.Float64).alias(THRESHOLD),
        note.alias(NOTE),
    )


def _per_foot_rule(
    sessions: pl.DataFrame,
    settings: FlagSettings,
    flag: str,
    metric: str,
    threshold: float,
    above: bool,
    note: str,
    heel_strikes_only: bool = False,
    foot_signed: bool = True,
) -> list[pl.DataFrame]:
    """The flag where the face value crosses `threshold`, or a withheld row where it cannot be judged."""
    value = pl.col(session_median(metric))
    beyond = (value > threshold if above else value < threshold) & (
        pl.col(STRIDE_COUNT) >= settings.min_strides
    )
    withheld = _withheld_note(flag, sessions, heel_strikes_only, foot_signed)
    judged = withheld.is_null()
    return [
        _flag_rows(sessions, beyond & judged, flag, metric, value, threshold, pl.lit(note)),
        _flag_rows(sessions, beyond & ~judged, PRONATION_FLAG_WITHHELD, metric, value, threshold, withheld),
    ]


def toe_off_pronation_error_deg(heading_error_deg: pl.Expr, toe_off_angle_deg: pl.Expr) -> pl.Expr:
    """Toe-off pronation error (deg) from a shoe-axis heading error (deg) at a toe-off pitch (deg):
    atan(tan θ · sin δ), the share of the pitch that a heading error δ puts into the roll."""
    tan_pitch = toe_off_angle_deg.abs().radians().tan()
    return (tan_pitch * heading_error_deg.abs().radians().sin()).arctan().degrees()


def _toe_off_pronation_rules(sessions: pl.DataFrame, s: FlagSettings) -> list[pl.DataFrame]:
    """The lateral roll-off flag where the mounting is good enough, a withheld row where it is not."""
    if MOUNTING_UNCERTAINTY_DEG not in sessions.columns:
        sessions = sessions.with_columns(pl.lit(None, dtype=pl.Float64).alias(MOUNTING_UNCERTAINTY_DEG))
    value = pl.col(session_median(TOE_OFF_PRONATION_DEG))
    angle = pl.col(session_median(TOE_OFF_ANGLE_DEG))
    heading = s.withhold_sigmas * pl.col(MOUNTING_UNCERTAINTY_DEG)
    error = toe_off_pronation_error_deg(heading, angle).fill_null(0.0)
    threshold = s.lateral_roll_off_below_deg
    enough = pl.col(STRIDE_COUNT) >= s.min_strides
    certain = value + error < threshold
    mirrored = _not_everting(sessions)
    metric = TOE_OFF_PRONATION_DEG
    raised = _flag_rows(
        sessions,
        enough & certain & ~mirrored,
        LATERAL_ROLL_OFF,
        metric,
        value,
        threshold,
        pl.lit("the foot rolls off over its outer edge rather than through the big toe"),
    )
    # Only a flag the face value would raise is withheld; a foot clear of the threshold gets no row.
    mirrored_row = _flag_rows(
        sessions,
        enough & certain & mirrored,
        PRONATION_FLAG_WITHHELD,
        metric,
        value,
        threshold,
        _withheld_note(LATERAL_ROLL_OFF, sessions, False, True),
    )
    withheld = _flag_rows(
        sessions,
        enough & (value < threshold) & ~certain,
        TOE_OFF_FLAG_WITHHELD,
        metric,
        error,
        threshold,
        pl.format(
            "lateral_roll_off not judged: toe-off pronation {} deg could be off by up to {} deg "
            "(a {} deg shoe-axis heading error, {} x the mounting uncertainty, at a toe-off angle "
            "of {} deg), enough to explain its crossing the threshold",
            value.round(1),
            error.round(1),
            heading.round(1),
            pl.lit(f"{s.withhold_sigmas:g}"),
            angle.round(0),
        ),
    )
    return [raised, mirrored_row, withheld]


class SessionFlagger:
    """Raises the heuristic flags of FlagSettings on a `sessions` table.

    Parameters
    ----------
    settings
        `FlagSettings` (thresholds in the metric's unit: deg, deg/s, s, symmetry index in %; the
        minimum number of steady strides per foot).

    Attributes
    ----------
    flags_ : pl.DataFrame
        FLAGS_SCHEMA, one row per raised (or withheld toe-off) flag.

    Notes
    -----
    strideflow's own heuristics, not a diagnosis: thresholds are defaults chosen from ranges
    reported for healthy gait (module docstring); asymmetry is judged on DESIGN.md's symmetry
    index 200 (L - R) / (L + R) % (Robinson, Herzog & Nigg 1987), from `analytics.sessions`.
    """

    def __init__(self, settings: FlagSettings = FlagSettings()):
        self.settings = settings

    def detect(self, sessions: pl.DataFrame) -> SessionFlagger:
        """Compute `flags_` (FLAGS_SCHEMA, one row per raised flag) from `sessions`."""
        s = self.settings
        if ACTIVITY not in sessions.columns:  # a sessions table from before the split by activity
            sessions = sessions.with_columns(pl.lit(None, dtype=pl.String).alias(ACTIVITY))
        per_foot = [
            *_per_foot_rule(
                sessions,
                s,
                LOW_PRONATION,
                PRONATION_EXCURSION_DEG,
                s.low_pronation_excursion_deg,
                False,
                "pronation excursion below the heuristic threshold: little eversion after contact",
                heel_strikes_only=True,
            ),
            *_per_foot_rule(
                sessions,
                s,
                FAST_PRONATION,
                MAX_PRONATION_VELOCITY_DPS,
                s.fast_pronation_velocity_dps,
                True,
                "max pronation velocity above the heuristic threshold",
            ),
            *_toe_off_pronation_rules(sessions, s),
            *_per_foot_rule(
                sessions,
                s,
                SHORT_TOE_OFF,
                TOE_OFF_ANGLE_DEG,
                s.short_toe_off_below_deg,
                False,
                "toe-off angle below the heuristic threshold: little roll-over through the toes",
                foot_signed=False,  # the toe-off angle reads the same on either foot
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


SESSION_ORDER = "_order"


@dataclass(frozen=True)
class BaselineAsymmetrySettings:
    """Left/right asymmetry judged against the athlete's own baseline (no population threshold).

    - `metrics`: the positive-valued metrics whose symmetry index is followed.
    - `baseline_sessions` (3): the athlete's first sessions of the same activity (by date, then id)
      that make the baseline, as the trends' baseline (`analytics.trends`); at least 2 are needed
      for their spread, and a session inside the baseline is never flagged.
    - `sds` (2): a session is flagged when its index differs from the baseline mean by more than
      `sds` standard deviations of that difference, ~95 % two-sided for a normal error: the
      variance is the baseline sessions' own spread (sample variance, ddof 1) plus this session's
      sampling error of the index, propagated from each foot's median, whose standard error is
      1.2533 sigma / sqrt(n) with sigma = IQR / 1.349 for a normal sample.
    - `min_strides` (10): steady strides each foot needs, in the session and in each baseline session.
    """

    metrics: tuple[str, ...] = (
        PRONATION_EXCURSION_DEG,
        MAX_PRONATION_VELOCITY_DPS,
        TOE_OFF_ANGLE_DEG,
        STANCE_TIME_S,
        STRIDE_LENGTH_M,
    )
    baseline_sessions: int = 3
    sds: float = 2.0
    min_strides: int = 10


def _si_and_error(sessions: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Per session and activity (both feet with enough strides): the symmetry index of `metric`
    (percent) and its standard error from the feet's medians, IQRs and stride counts."""
    med, iqr = session_median(metric), session_iqr(metric)
    se = 1.2533 * (pl.col(iqr) / 1.349) / pl.col(STRIDE_COUNT).cast(pl.Float64).sqrt()
    per_foot = sessions.select(
        SESSION_ID, ACTIVITY, SESSION_ORDER, FOOT, STRIDE_COUNT, pl.col(med).alias("_m"), se.alias("_se")
    )
    left = per_foot.filter(pl.col(FOOT) == "left")
    right = per_foot.filter(pl.col(FOOT) == "right").select(
        SESSION_ID,
        ACTIVITY,
        pl.col(STRIDE_COUNT).alias("_nr"),
        pl.col("_m").alias("_mr"),
        pl.col("_se").alias("_ser"),
    )
    both = left.join(right, on=[SESSION_ID, ACTIVITY], how="inner", nulls_equal=True)
    total = pl.col("_m") + pl.col("_mr")
    # SI = 200 (L - R) / (L + R): dSI/dL = 400 R / (L + R)^2, dSI/dR = -400 L / (L + R)^2
    error = (
        400.0
        * ((pl.col("_mr") * pl.col("_se")) ** 2 + (pl.col("_m") * pl.col("_ser")) ** 2).sqrt()
        / total**2
    )
    return both.select(
        SESSION_ID,
        ACTIVITY,
        SESSION_ORDER,
        pl.min_horizontal(STRIDE_COUNT, "_nr").alias("_n"),
        (200.0 * (pl.col("_m") - pl.col("_mr")) / total).alias("_si"),
        error.alias("_si_se"),
    )


def asymmetry_against_baseline(
    sessions: pl.DataFrame, session_id: str, settings: BaselineAsymmetrySettings = BaselineAsymmetrySettings()
) -> pl.DataFrame:
    """`asymmetry_change` flags (FLAGS_SCHEMA) of one session of one athlete, from that athlete's
    `sessions` rows of every session (`session_date`, keys, medians, IQRs, stride counts): a
    metric's left/right symmetry index beyond the athlete's own baseline (see
    `BaselineAsymmetrySettings`). `value` is the session's index, `threshold` the limit of its
    distance from the baseline mean (percent points); the note gives the baseline."""
    s = settings
    if sessions.height == 0 or session_id not in set(sessions[SESSION_ID].to_list()):
        return pl.DataFrame(schema=FLAGS_SCHEMA)
    names = sessions.columns
    date = pl.col(SESSION_DATE) if SESSION_DATE in names else pl.lit(None, dtype=pl.String)
    activity = pl.col(ACTIVITY) if ACTIVITY in names else pl.lit(None, dtype=pl.String)
    order = (
        sessions.select(SESSION_ID, date.alias("_d"))
        .unique(SESSION_ID)
        .sort("_d", SESSION_ID, nulls_last=True)
        .with_row_index(SESSION_ORDER)
        .select(SESSION_ID, SESSION_ORDER)
    )
    table = sessions.with_columns(activity.alias(ACTIVITY)).join(order, on=SESSION_ID)
    athlete = sessions[ATHLETE_ID][0] if ATHLETE_ID in names else None
    rows = []
    for metric in s.metrics:
        if session_median(metric) not in names or session_iqr(metric) not in names:
            continue
        si = _si_and_error(table, metric).filter(pl.col("_n") >= s.min_strides).sort(SESSION_ORDER)
        for (kind,), part in si.partition_by(ACTIVITY, as_dict=True).items():
            base = part.head(s.baseline_sessions)
            target = part.filter(pl.col(SESSION_ID) == session_id)
            if base.height < 2 or target.height == 0 or session_id in base[SESSION_ID].to_list():
                continue
            mean, sd = float(base["_si"].mean()), float(base["_si"].std(ddof=1))
            value, error = float(target["_si"][0]), float(target["_si_se"][0] or 0.0)
            limit = s.sds * math.sqrt(sd**2 + error**2)
            if not (math.isfinite(value) and math.isfinite(limit)) or abs(value - mean) <= limit:
                continue
            rows.append(
                {
                    ATHLETE_ID: athlete,
                    SESSION_ID: session_id,
                    FOOT: None,
                    FLAG: ASYMMETRY_CHANGE,
                    METRIC: metric,
                    VALUE: value,
                    THRESHOLD: limit,
                    NOTE: (
                        f"left/right symmetry index of {metric} {value:+.1f} % against the athlete's "
                        f"baseline {mean:+.1f} ± {sd:.1f} % (first {base.height} {kind or ''} sessions): "
                        f"{abs(value - mean):.1f} points off, beyond {s.sds:g} standard deviations "
                        f"({limit:.1f})"
                    ).replace("  ", " "),
                    ACTIVITY: kind,
                }
            )
    return pl.DataFrame(rows, schema=FLAGS_SCHEMA)
