"""Plausibility limits per stride metric: a stride beyond one is marked invalid with a reason.

A stride the detector and the metrics called valid is re-checked against the physiological range
of each metric; the first limit it breaks (in `LIMITS` order) becomes its reason,
``implausible_<metric>``. The limits are wide on purpose: they catch numbers no human foot makes
(a wrong sampling rate, gyroscope units, a sensor that came loose), not unusual athletes.

Limits (plausible range; why, with the source):

- `cadence_spm` 30-300 steps/min: slow walking ~60-80; elite sprinters reach ~4.5-5 steps/s
  (Weyand et al. 2000, J Appl Physiol 89:1991-1999).
- `stance_time_s` 0.07-2.0 s: top-speed sprint contact ~0.08-0.1 s (Weyand et al. 2000); very
  slow walking stance ~1-1.5 s.
- `swing_time_s` >= 0.1 s: swing takes ~0.35-0.45 s walking and ~0.33-0.37 s in sprinters at any
  speed (Weyand et al. 2000); a swing of a few milliseconds is a toe-off placed at the end of the
  swing (on `imu_sample_healthy_stair_up.csv` 12 strides read 3-25 ms swings, stance ~0.97 s and
  toe-off angles of 0.4-7 deg, the push-off missed; every other real stride swings >= 0.28 s).
  A misplaced event, not a recording read wrongly: `RecordingPlausibility` does not count it
  (`EVENT_LIMITS`), so such a stride is dropped without failing the recording.
- `stride_length_m` < 6 m, walking < 3 m: sprint strides reach ~5 m (two steps of ~2.5 m); race
  walkers' strides are ~2.5 m.
- `speed_mps` < 13 m/s, walking < 4.6 m/s: the fastest sprint ~12.4 m/s; the race-walking 20 km
  world record is ~4.4 m/s.
- `foot_strike_angle_deg` -45-60 deg: walking heel strike ~20-30 deg, running rearfoot up to ~30,
  forefoot to ~-15 (Altman & Davis 2012, Gait Posture 35:298-300).
- `pronation_excursion_deg` 0-40 deg: rearfoot eversion excursion is ~5-20 deg (Nigg et al. 1993,
  Clin Biomech 8:213) and shoe roll stays below ~30. 0 (no eversion within the window) is kept:
  real feet show it (10 of 73 strides of gaitmap's `imu_sample_ms_left.csv`).
- `max_pronation_velocity_dps` -2000-2000 deg/s: peak eversion velocity in running ~300-900 deg/s
  (Nigg 1993); negative only where the excursion is 0 (then it is the rate at contact).
- `toe_off_pronation_deg` -45-45 deg: the shoe's roll at push-off relative to foot-flat is a few
  tens of degrees at most.
- `toe_off_angle_deg` -20-120 deg: toe-off plantarflexion ~60-70 deg walking, up to ~100 running.
- `push_off_rate_dps` -2500-2500 deg/s: the pitch rate in push-off stays below ~1500 deg/s.
- `heel_off_ratio` 0-1: by definition (heel-off lies within stance).
- `impact_g` < 50 g: shoe-mounted peaks are ~3-15 g; more is a knock on the sensor.

A recording whose strides are mostly implausible (`RecordingPlausibility`) is not "valid with a few
odd strides" but read wrongly; the analysis then fails with the likely cause (the sampling rate
given with `--rate`, or gyroscope units) instead of publishing the numbers.

The recording is also judged as a whole by its walking strides' **walk ratio**, step length /
cadence = (`stride_length_m` / 2) / `cadence_spm` (m per step/min): the median over the steady
(valid, neither turning nor the gait start) walking strides of a foot must lie within
`WALK_RATIO_LIMITS` (0.0015-0.02). Healthy adults keep it near 0.006 whatever their speed
(Sekiya & Nagasaki 1998, Gait Posture 7:225-227, "walk ratio"); the real walks here give
per-foot medians 0.0058-0.0079 (imu_sample.csv, imu_sample_ic_stride.csv, both MS files, the 14
footprints walks) and the stair recordings, whose horizontal stride is one tread, 0.0025-0.0028.
A rate set too high shrinks it by about the cube of the error (time shrinks, so cadence rises and
the integrated length falls with time squared): `analyze --rate 400` on the 204.8 Hz imu_sample.csv
walks at cadence 215 with 0.31 m strides, walk ratio 0.0007, which every per-stride limit lets
through (race walkers reach ~210 steps/min). It is a recording-level test, not a per-stride limit,
because single strides on stairs or at a turn legitimately go below it (0.001 on the stair files).
It catches a rate about 1.6 times too high or more on level walking (0.006 / 1.6^3 = 0.0015).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ACTIVITY,
    CADENCE_SPM,
    FOOT_STRIKE_ANGLE_DEG,
    HEEL_OFF_RATIO,
    IMPACT_G,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    REASON,
    SPEED_MPS,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    SWING_TIME_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    VALID,
    WALK,
    steady_of,
)

# metric -> (lowest plausible, highest plausible, lower bound exclusive); None: no limit that side.
LIMITS: dict[str, tuple[float | None, float | None, bool]] = {
    CADENCE_SPM: (30.0, 300.0, False),
    STANCE_TIME_S: (0.07, 2.0, False),
    SWING_TIME_S: (0.1, None, False),
    STRIDE_LENGTH_M: (None, 6.0, False),
    SPEED_MPS: (None, 13.0, False),
    PRONATION_EXCURSION_DEG: (0.0, 40.0, False),
    MAX_PRONATION_VELOCITY_DPS: (-2000.0, 2000.0, False),
    TOE_OFF_PRONATION_DEG: (-45.0, 45.0, False),
    FOOT_STRIKE_ANGLE_DEG: (-45.0, 60.0, False),
    TOE_OFF_ANGLE_DEG: (-20.0, 120.0, False),
    PUSH_OFF_RATE_DPS: (-2500.0, 2500.0, False),
    HEEL_OFF_RATIO: (0.0, 1.0, False),
    IMPACT_G: (None, 50.0, False),
}
# Limits that catch a misplaced gait event rather than a wrong rate or unit (module docstring).
EVENT_LIMITS = frozenset({SWING_TIME_S})
# Tighter limits for walking strides (activity "walk"): race walkers' strides and speeds.
WALK_LIMITS: dict[str, float] = {STRIDE_LENGTH_M: 3.0, SPEED_MPS: 4.6}
# Median walk ratio of a foot's steady walking strides, m per step/min (module docstring).
WALK_RATIO_LIMITS = (0.0015, 0.02)


def reason_for(metric: str) -> str:
    """The `reason` of a stride beyond `metric`'s limits, e.g. ``implausible_cadence_spm``."""
    return f"implausible_{metric}"


def _beyond(metric: str, names: list[str]) -> pl.Expr:
    lo, hi, lo_exclusive = LIMITS[metric]
    value = pl.col(metric)
    out = pl.lit(False)
    if lo is not None:
        out = out | ((value <= lo) if lo_exclusive else (value < lo))
    if hi is not None:
        out = out | (value > hi)
    if metric in WALK_LIMITS and ACTIVITY in names:
        out = out | ((pl.col(ACTIVITY) == WALK) & (value > WALK_LIMITS[metric]))
    return out.fill_null(False)


def implausible_reason_expr(names: list[str]) -> pl.Expr:
    """The first limit a stride breaks, as its reason (String), null where none is broken."""
    # One flat coalesce, not a nested when/otherwise chain: Polars evaluates every branch of the
    # chain at each level, which cost ~2 ms per query on the live analyzer's few-row tables.
    broken = [pl.when(_beyond(m, names)).then(pl.lit(reason_for(m))) for m in LIMITS if m in names]
    return pl.coalesce(*broken, pl.lit(None, dtype=pl.String))


_IMPLAUSIBLE = "_implausible"  # scratch column: the reason is computed once, then read twice


def mark_implausible(strides: pl.LazyFrame) -> pl.LazyFrame:
    """`strides` with valid strides beyond a limit set invalid with reason ``implausible_<metric>``."""
    for stage in mark_implausible_stages(tuple(strides.collect_schema().names())):
        strides = strides.with_columns(*stage)
    return strides.drop(_IMPLAUSIBLE)


@lru_cache(maxsize=16)
def mark_implausible_stages(names: tuple[str, ...]) -> tuple[tuple[pl.Expr, ...], ...]:
    """The `with_columns` steps of `mark_implausible` for a table with these column names; they
    leave a scratch column `_implausible` for the caller to drop.

    Built once per set of names: the live analyzer evaluates them on a few rows per stride, where
    building the expressions cost as much as the query."""
    new = pl.col(_IMPLAUSIBLE)
    return (
        (implausible_reason_expr(list(names)).alias(_IMPLAUSIBLE),),
        (
            pl.when(pl.col(VALID) & new.is_not_null()).then(new).otherwise(pl.col(REASON)).alias(REASON),
            (pl.col(VALID) & new.is_null()).alias(VALID),
        ),
    )


class ImplausibleRecordingError(StrideflowError):
    """Most strides of a recording are beyond the plausibility limits: it was read wrongly."""


@dataclass(frozen=True)
class PlausibilitySettings:
    """`max_implausible_fraction`: a recording fails when more of its strides than this (among
    those valid before the limits) are implausible; `min_strides`: only checked from this many."""

    max_implausible_fraction: float = 0.5
    min_strides: int = 6


class RecordingPlausibility:
    """Fails a recording whose strides are mostly implausible, or whose walking strides' median walk
    ratio is outside `WALK_RATIO_LIMITS` (module docstring), naming the likely cause.

    Parameters
    ----------
    settings
        `PlausibilitySettings`: largest implausible share (0..1) and the minimum strides to judge.

    Attributes
    ----------
    implausible_fraction_ : float | None
        0..1, None when too few strides to judge.
    walk_ratio_ : float | None
        Median of the steady walking strides, m per (step/min); None with fewer than `min_strides`.

    Notes
    -----
    The per-metric limits and their sources are in the module docstring; the recording-level rule
    is strideflow's own heuristic.
    """

    def __init__(self, settings: PlausibilitySettings = PlausibilitySettings()):
        self.settings = settings

    def check(self, strides: pl.DataFrame, sampling_rate_hz: float, where: str = "") -> RecordingPlausibility:
        """Raise ImplausibleRecordingError if too many strides are implausible; else set
        `implausible_fraction_` (0..1, or None when too few strides to judge)."""
        reasons = strides.get_column(REASON) if REASON in strides.columns else pl.Series(dtype=pl.String)
        misplaced_event = reasons.is_in([reason_for(m) for m in EVENT_LIMITS])
        implausible = (reasons.str.starts_with("implausible_") & ~misplaced_event).fill_null(False)
        valid = strides.get_column(VALID).fill_null(False)
        judged = int((valid | implausible).sum()) if strides.height else 0
        self.implausible_fraction_ = None
        self.walk_ratio_ = None
        if judged < self.settings.min_strides:
            return self
        n_bad = int(implausible.sum())
        self.implausible_fraction_ = n_bad / judged
        cadence = strides.get_column(CADENCE_SPM).median() if CADENCE_SPM in strides.columns else None
        stance = strides.get_column(STANCE_TIME_S).median() if STANCE_TIME_S in strides.columns else None
        timing = ""
        if cadence is not None and stance is not None:
            timing = f" (median cadence {cadence:.0f} steps/min, stance {stance:.2f} s)"
        prefix = f"{where}: " if where else ""
        if self.implausible_fraction_ <= self.settings.max_implausible_fraction:
            self._check_walk_ratio(strides, sampling_rate_hz, prefix)
            return self
        top = reasons.filter(implausible).value_counts(sort=True).row(0)[0].removeprefix("implausible_")
        raise ImplausibleRecordingError(
            f"{prefix}{n_bad} of {judged} strides are physically implausible (most often {top}) at "
            f"{sampling_rate_hz:g} Hz{timing}. Likely cause: {_likely_cause(cadence, sampling_rate_hz)}."
        )

    def _check_walk_ratio(self, strides: pl.DataFrame, sampling_rate_hz: float, prefix: str):
        """Fail when the steady walking strides' median walk ratio is outside WALK_RATIO_LIMITS;
        sets `walk_ratio_` (m per step/min, None when fewer than `min_strides` walking strides)."""
        self.walk_ratio_ = None
        if not {ACTIVITY, STRIDE_LENGTH_M, CADENCE_SPM} <= set(strides.columns):
            return
        # steady strides: a turn's shorter stride is not the walk ratio (issue 17)
        walking = strides.filter(steady_of(strides.columns) & (pl.col(ACTIVITY) == WALK))
        if walking.height < self.settings.min_strides:
            return
        ratio = walking.select(((pl.col(STRIDE_LENGTH_M) / 2.0) / pl.col(CADENCE_SPM)).median()).item()
        if ratio is None:
            return
        self.walk_ratio_ = float(ratio)
        lo, hi = WALK_RATIO_LIMITS
        if lo <= ratio <= hi:
            return
        cadence = walking.get_column(CADENCE_SPM).median()
        length = walking.get_column(STRIDE_LENGTH_M).median()
        # Too small: fast, short strides, time compressed (rate too high); too large: the reverse.
        side, device = ("high", "slower") if ratio < lo else ("low", "faster")
        cause = (
            f"a sampling rate set too {side}: the device likely recorded {device} than "
            f"{sampling_rate_hz:g} Hz; give its true rate with --rate (upload field sampling_rate_hz)"
        )
        raise ImplausibleRecordingError(
            f"{prefix}the walking strides are not a human walk at {sampling_rate_hz:g} Hz: median cadence "
            f"{cadence:.0f} steps/min with {length:.2f} m strides, a walk ratio (step length / cadence) of "
            f"{ratio:.4f} m per step/min where people walk with {lo:g}-{hi:g} (about 0.006). "
            f"Likely cause: {cause}."
        )


def _likely_cause(cadence: float | None, sampling_rate_hz: float) -> str:
    """The likely cause of implausible strides, in words with what to do, from their median cadence."""
    # Human strides last 0.6-1.6 s: far outside, time itself is scaled, i.e. the rate is wrong.
    stride_s = None if cadence is None or cadence <= 0 else 120.0 / cadence
    if stride_s is not None and stride_s > 1.6:
        cause = (
            f"a sampling rate set too low: the strides last {stride_s:.1f} s, so the device likely "
            f"recorded faster than {sampling_rate_hz:g} Hz; give its true rate with --rate (upload "
            "field sampling_rate_hz)"
        )
    elif stride_s is not None and stride_s < 0.6:
        cause = (
            f"a sampling rate set too high: the strides last {stride_s:.2f} s, so the device likely "
            f"recorded slower than {sampling_rate_hz:g} Hz; give its true rate with --rate (upload "
            "field sampling_rate_hz)"
        )
    else:
        cause = (
            "a wrong sampling rate (check --rate / the upload field sampling_rate_hz against the "
            "device's) or gyroscope units (--units gyr=rad/s, upload field units)"
        )
    return cause


def check_recording(strides: pl.DataFrame, sampling_rate_hz: float) -> None:
    """`RecordingPlausibility().check` on each athlete-session-foot of `strides` (named in the error)."""
    if strides.height == 0:
        return
    for (athlete, session, foot), part in strides.partition_by(list(KEYS), as_dict=True).items():
        where = f"athlete {athlete}, session {session}, {foot} foot"
        RecordingPlausibility().check(part, sampling_rate_hz, where)
