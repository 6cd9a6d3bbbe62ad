"""Flags that do not accuse healthy feet (issue 15 item 6), and the toe-off withholding rule."""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
import pytest
from support.footprints import analysed_walk, needs_walks

from strideflow.analytics.flags import (
    ASYMMETRY,
    ASYMMETRY_CHANGE,
    LATERAL_ROLL_OFF,
    LOW_PRONATION,
    PRONATION_FLAG_WITHHELD,
    SHORT_TOE_OFF,
    TOE_OFF_FLAG_WITHHELD,
    FlagSettings,
    asymmetry_against_baseline,
    compute_flags,
)
from strideflow.analytics.pipeline import AnalysisResult, analyze_recording, summarize_strides
from strideflow.hardware import schema as S
from strideflow.ingest import read_recording

TOE_OFF_FLAGS = {LATERAL_ROLL_OFF, SHORT_TOE_OFF, TOE_OFF_FLAG_WITHHELD}
WITHHELD = {TOE_OFF_FLAG_WITHHELD, PRONATION_FLAG_WITHHELD}


@cache
def _analysed(folder, name: str, rate: float, foot: str | None = None) -> AnalysisResult:
    """A gaitmap recording analysed with the default settings, once per test run (do not change it)."""
    return analyze_recording(read_recording(folder / name, sampling_rate_hz=rate, foot=foot))


def _session(toe_off_pronation: float, toe_off_angle: float, uncertainty: float | None) -> pl.DataFrame:
    row = {
        S.ATHLETE_ID: "A",
        S.SESSION_ID: "S",
        S.FOOT: "left",
        S.STRIDE_COUNT: 30,
        **{S.session_median(m): 10.0 for m in S.METRICS},
        **{S.symmetry_index(m): 0.0 for m in S.METRICS},
        S.MOUNTING_UNCERTAINTY_DEG: uncertainty,
    }
    row[S.session_median(S.TOE_OFF_PRONATION_DEG)] = toe_off_pronation
    row[S.session_median(S.TOE_OFF_ANGLE_DEG)] = toe_off_angle
    row[S.session_median(S.MAX_PRONATION_VELOCITY_DPS)] = 300.0
    return pl.DataFrame([row], schema_overrides={S.MOUNTING_UNCERTAINTY_DEG: pl.Float64})


def test_lateral_roll_off_withheld_when_the_mounting_could_explain_it():
    # 3 deg heading (1 sigma) -> 6 deg at 2 sigma; at a 60 deg toe-off: atan(tan 60 sin 6) = 10.3 deg
    flags = compute_flags(_session(-5.0, 60.0, 3.0))
    assert flags[S.FOOT].to_list() == ["left"]
    row = flags.row(0, named=True)
    assert row["flag"] == TOE_OFF_FLAG_WITHHELD
    assert row["value"] == pytest.approx(
        np.degrees(np.arctan(np.tan(np.radians(60)) * np.sin(np.radians(6))))
    )
    assert "not judged" in row["note"] and "-5.0" in row["note"]


def test_lateral_roll_off_raised_when_beyond_the_possible_error_or_the_frame_was_given():
    assert compute_flags(_session(-15.0, 60.0, 3.0))["flag"].to_list() == [LATERAL_ROLL_OFF]
    assert compute_flags(_session(-5.0, 60.0, None))["flag"].to_list() == [LATERAL_ROLL_OFF]
    assert compute_flags(_session(-5.0, 60.0, 0.5))["flag"].to_list() == [LATERAL_ROLL_OFF]


def test_clear_medial_roll_off_is_neither_flagged_nor_withheld():
    assert compute_flags(_session(12.0, 60.0, 3.0)).height == 0
    # near the threshold but a heading error cannot reach it: nothing
    assert compute_flags(_session(4.0, 30.0, 1.0), FlagSettings()).height == 0


REAL = [
    ("imu_sample.csv", 204.8, None),
    ("imu_sample_ms_left.csv", 102.4, "left"),
    ("imu_sample_ms_right.csv", 102.4, "right"),
]


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "rate", "foot"), REAL)
def test_no_toe_off_flag_on_the_real_walks(real_data, name, rate, foot):
    """Healthy imu_sample.csv (both feet) and the MS files: toe-off pronation +7 to +20 deg in the
    shoe frame (-11 / -6 deg, both flagged lateral_roll_off, with the walking direction as x)."""
    result = _analysed(real_data, name, rate, foot)
    assert not set(result.flags["flag"]) & TOE_OFF_FLAGS, result.flags
    sessions = result.sessions
    assert (sessions[S.session_median(S.TOE_OFF_PRONATION_DEG)] > 0).all()
    # the session carries the mounting's uncertainty: the square-mount tolerance, 3 deg, with the
    # pod's own square ambiguity in quadrature (0.0-1.2 deg on these pods, tilted about one axis)
    assert sessions[S.MOUNTING_UNCERTAINTY_DEG].is_between(3.0, 3.3).all(), sessions


@pytest.mark.real_data
def test_a_pod_tilted_about_two_axes_withholds_the_toe_off_flags(real_data):
    """imu_sample_ic_stride.csv (healthy, both feet; pods pitched ~40 deg and rolled on the shoe):
    with the square-mount tolerance alone (3 deg) the right foot was flagged lateral_roll_off at
    -34.5 deg. Its pods' edges read the shoe axis 11 / 24 deg apart (left / right), so the
    uncertainty is at least that, the toe-off flags are withheld, and the warnings say why."""
    name = "imu_sample_ic_stride.csv"
    result = _analysed(real_data, name, 102.4)
    flags = result.flags.filter(pl.col("flag").is_in(TOE_OFF_FLAGS))
    assert LATERAL_ROLL_OFF not in set(flags["flag"]) and SHORT_TOE_OFF not in set(flags["flag"]), flags
    sessions = result.sessions
    for foot, least in (("left", 10.0), ("right", 20.0)):
        unc = sessions.filter(pl.col(S.FOOT) == foot)[S.MOUNTING_UNCERTAINTY_DEG]
        assert (unc > least).all(), (foot, unc)
        # the uncertainty the sessions carry is the one the withheld rows state
        row = flags.filter(pl.col(S.FOOT) == foot).row(0, named=True)
        assert row["flag"] == TOE_OFF_FLAG_WITHHELD
        assert f"a {2 * unc[0]:.1f} deg shoe-axis heading error" in row["note"]
        assert any(f"{foot} foot: the pod is tilted about two of its own axes" in w for w in result.warnings)


HEALTHY_PAIRS = [
    ("imu_sample.csv", 204.8),
    ("imu_sample_healthy_stair_up.csv", 204.8),
    ("imu_sample_healthy_stair_down.csv", 204.8),
    ("imu_sample_ic_stride.csv", 102.4),
]


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "rate"), HEALTHY_PAIRS)
def test_healthy_left_right_differences_raise_no_flag_by_default(real_data, name, rate):
    """Issue 18: the unsourced 15 % symmetry-index flag fired on every healthy two-foot recording
    (imu_sample.csv: pronation excursion 27 %, max pronation velocity 17 %). The indices stay in the
    sessions row; a flag is raised only for metrics a user lists (their own threshold)."""
    result = _analysed(real_data, name, rate)
    assert ASYMMETRY not in set(result.flags["flag"]), result.flags
    si = result.sessions[S.symmetry_index(S.PRONATION_EXCURSION_DEG)].abs().max()
    assert si > 15.0  # the healthy asymmetry the old default flagged is still reported
    listed = compute_flags(result.sessions, FlagSettings(asymmetry_metrics=(S.PRONATION_EXCURSION_DEG,)))
    # both feet need 10 valid strides (stair up's right foot keeps 8 with a plausible swing)
    feet_ok = result.sessions.group_by(S.ACTIVITY).agg((pl.col(S.STRIDE_COUNT) >= 10).sum().alias("n"))
    both = (feet_ok["n"] == 2).any()
    assert set(listed.filter(pl.col("flag") == ASYMMETRY)["metric"]) == (
        {S.PRONATION_EXCURSION_DEG} if both else set()
    )


# Flags argued real on a healthy recording (file, foot, flag); none so far (docs/frames.md).
REAL_FINDINGS: set[tuple[str, str, str]] = set()


def _raised(name: str, flags: pl.DataFrame) -> set[tuple[str, str, str]]:
    return {(name, r[S.FOOT], r["flag"]) for r in flags.iter_rows(named=True) if r["flag"] not in WITHHELD}


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "rate"), HEALTHY_PAIRS)
def test_no_flag_accuses_a_healthy_gaitmap_foot(real_data, name, rate):
    """Issue 15 item 6, every flag: the healthy gaitmap walkers (level walks, stairs) raise none.
    Before: stair up low_pronation on both feet (3.3 / 1.5 deg at -1.6 / -1.7 deg strike angles) and
    short_toe_off on the right (6.4 deg: 12 strides with a 3-25 ms swing, the toe-off placed at the
    swing's end), ic_stride low_pronation on the left (2.0 deg at a -2.9 deg strike angle). What
    the flags cannot judge is withheld with the reason, never silently dropped."""
    flags = _analysed(real_data, name, rate).flags
    assert _raised(name, flags) <= REAL_FINDINGS, flags
    pronation = flags.filter(pl.col("flag") == PRONATION_FLAG_WITHHELD)
    for row in pronation.iter_rows(named=True):
        assert row["metric"] == S.PRONATION_EXCURSION_DEG and row["value"] < row["threshold"], row
        assert "lands flat or on its forefoot" in row["note"], row
    if name == "imu_sample_healthy_stair_up.csv":
        assert set(pronation[S.FOOT]) == {"left"}  # the right foot keeps too few plausible strides
        strides = _analysed(real_data, name, rate).strides
        assert (strides.filter(S.VALID)[S.SWING_TIME_S] >= 0.1).all()
        assert strides.filter(pl.col(S.REASON) == "implausible_swing_time_s").height >= 10


@pytest.mark.real_data
@needs_walks
@pytest.mark.parametrize("trial", [31, 32, 33, 34, 35, 36, 42, 43, 44, 45])
def test_no_flag_accuses_a_footprint_walk(trial):
    """The ten LORD footprint walks (one healthy walker; the files name no foot, read as left, the
    pod was on the right): before, low_pronation on every walk and activity (median excursion
    0.0 deg: the foot inverts after contact when read as the left). Now the pronation flags are
    withheld there, saying the foot label is doubted; toe-off flags are withheld by the mounting."""
    _, strides = analysed_walk(trial)
    _, flags = summarize_strides(strides)
    assert _raised(f"walk {trial}", flags) <= REAL_FINDINGS, flags
    low = flags.filter(pl.col("metric") == S.PRONATION_EXCURSION_DEG)
    assert set(low["flag"]) == {PRONATION_FLAG_WITHHELD}
    assert all("does not evert after contact" in n for n in low["note"]), low["note"]


def test_pronation_flags_are_withheld_where_the_foot_cannot_carry_them():
    """The withholding rules on a synthetic foot: a non-everting foot's pronation flags and a flat
    landing's low_pronation become withheld rows (value, threshold, reason); a heel strike with the
    same excursion is flagged; the toe-off angle is judged on any foot."""

    def flags_of(excursion: float, strike: float, toe_off_pronation: float = 5.0, angle: float = 60.0):
        row = _session(toe_off_pronation, angle, None)
        return compute_flags(
            row.with_columns(
                pl.lit(excursion).alias(S.session_median(S.PRONATION_EXCURSION_DEG)),
                pl.lit(strike).alias(S.session_median(S.FOOT_STRIKE_ANGLE_DEG)),
            )
        )

    assert flags_of(2.0, 20.0)["flag"].to_list() == [LOW_PRONATION]
    flat = flags_of(2.0, 3.0).row(0, named=True)
    assert (flat["flag"], flat["value"], flat["threshold"]) == (PRONATION_FLAG_WITHHELD, 2.0, 4.0)
    assert "lands flat" in flat["note"] and "3.0 deg" in flat["note"]
    mirrored = flags_of(0.0, 20.0, toe_off_pronation=-15.0, angle=10.0)
    assert sorted(mirrored.select("flag", "metric").rows()) == [
        (PRONATION_FLAG_WITHHELD, S.PRONATION_EXCURSION_DEG),
        (PRONATION_FLAG_WITHHELD, S.TOE_OFF_PRONATION_DEG),
        (SHORT_TOE_OFF, S.TOE_OFF_ANGLE_DEG),
    ]
    notes = mirrored.filter(pl.col("flag") == PRONATION_FLAG_WITHHELD)["note"]
    assert all("does not evert after contact" in n for n in notes), notes


def _history(rows: list[tuple]) -> pl.DataFrame:
    """Sessions rows of athlete A: (session, date, activity, left median, right median) of pronation
    excursion, 30 strides and IQR 1 deg per foot."""
    m = S.PRONATION_EXCURSION_DEG
    out = []
    for session, date, activity, left, right in rows:
        for foot, value in (("left", left), ("right", right)):
            out.append(
                {
                    S.ATHLETE_ID: "A",
                    S.SESSION_ID: session,
                    S.FOOT: foot,
                    S.ACTIVITY: activity,
                    S.SESSION_DATE: date,
                    S.STRIDE_COUNT: 30,
                    S.session_median(m): value,
                    S.session_iqr(m): 1.0,
                }
            )
    return pl.DataFrame(out)


def test_asymmetry_is_judged_against_the_athlete_own_baseline():
    """Issue 18: an athlete whose left foot always pronates more is not flagged for it; a session
    whose index leaves their own baseline (first 3 sessions, mean +- 2 SD of the difference, with
    the session's own sampling error) is, and walking is compared with walking only."""
    history = _history(
        [
            ("S1", "2025-01-01", "walk", 15.0, 11.5),  # imu_sample-like: +26 %
            ("S2", "2025-01-08", "walk", 14.5, 11.6),
            ("S3", "2025-01-15", "walk", 15.2, 11.3),
            ("S5", "2025-01-22", "walk", 15.1, 11.4),  # as usual: no flag
            ("S4", "2025-01-29", "walk", 11.0, 14.0),  # reversed: flagged (ids out of date order)
            ("R1", "2025-01-30", "run", 11.0, 14.0),  # a run has no running baseline yet
        ]
    )
    si = [200 * (a - b) / (a + b) for a, b in ((15.0, 11.5), (14.5, 11.6), (15.2, 11.3))]
    for session in ("S1", "S2", "S3", "S5", "R1"):
        assert asymmetry_against_baseline(history, session).height == 0, session
    flags = asymmetry_against_baseline(history, "S4")
    assert flags.height == 1
    row = flags.row(0, named=True)
    assert (row["flag"], row["metric"], row[S.FOOT], row[S.ACTIVITY]) == (
        ASYMMETRY_CHANGE,
        S.PRONATION_EXCURSION_DEG,
        None,
        "walk",
    )
    assert row["value"] == pytest.approx(200 * (11.0 - 14.0) / 25.0)
    sd = float(np.std(si, ddof=1))
    assert row["threshold"] > 2 * sd  # the session's own sampling error widens it
    assert f"baseline {np.mean(si):+.1f}" in row["note"]
    # Too few strides in the session: not judged.
    few = history.with_columns(
        pl.when(pl.col(S.SESSION_ID) == "S4").then(5).otherwise(pl.col(S.STRIDE_COUNT)).alias(S.STRIDE_COUNT)
    )
    assert asymmetry_against_baseline(few, "S4").height == 0
    # One baseline session has no spread: nothing to judge against.
    assert (
        asymmetry_against_baseline(history.filter(pl.col(S.SESSION_ID).is_in(["S1", "S4"])), "S4").height == 0
    )
    assert asymmetry_against_baseline(history, "nope").height == 0
