"""Flags that do not accuse healthy feet (issue 15 item 6), and the toe-off withholding rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strideflow.analytics.flags import (
    LATERAL_ROLL_OFF,
    SHORT_TOE_OFF,
    TOE_OFF_FLAG_WITHHELD,
    FlagSettings,
    compute_flags,
)
from strideflow.analytics.pipeline import analyze_recording
from strideflow.hardware import schema as S
from strideflow.ingest import read_recording

TOE_OFF_FLAGS = {LATERAL_ROLL_OFF, SHORT_TOE_OFF, TOE_OFF_FLAG_WITHHELD}


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
    result = analyze_recording(read_recording(real_data / name, sampling_rate_hz=rate, foot=foot))
    assert not set(result.flags["flag"]) & TOE_OFF_FLAGS, result.flags
    sessions = result.sessions
    assert (sessions[S.session_median(S.TOE_OFF_PRONATION_DEG)] > 0).all()
    # the session carries the mounting's uncertainty: the square-mount tolerance, 3 deg
    assert sessions[S.MOUNTING_UNCERTAINTY_DEG].to_list() == [3.0] * sessions.height
