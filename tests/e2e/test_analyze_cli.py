"""`strideflow analyze` through the installed console script, as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from strideflow.hardware import schema as S

STRIDEFLOW = shutil.which("strideflow", path=str(Path(sys.executable).parent)) or shutil.which("strideflow")


def run(*args: str) -> subprocess.CompletedProcess:
    assert STRIDEFLOW, "the strideflow console script is not installed"
    return subprocess.run(
        [STRIDEFLOW, *args], capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "140"}
    )


@pytest.mark.real_data
def test_analyze_real_recording_writes_tables_and_prints_summary(real_data, tmp_path):
    out = tmp_path / "an"
    p = run("analyze", str(real_data / "imu_sample.csv"), "--rate", "204.8", "--out", str(out))
    assert p.returncode == 0, p.stderr
    strides = pl.read_parquet(out / "strides.parquet")
    sessions = pl.read_parquet(out / "sessions.parquet")
    # the contract's columns in order, then the extra columns (censoring, the mounting's uncertainty,
    # the mounting's id and whether it began with a remount in this session)
    extra = {
        S.PRONATION_EXCURSION_CENSORED: pl.Boolean(),
        S.MOUNTING_UNCERTAINTY_DEG: pl.Float64(),
        S.MOUNTING_ID: pl.String(),
        S.REMOUNT: pl.Boolean(),
    }
    assert strides.schema == pl.Schema({**S.STRIDES_SCHEMA, **extra})
    assert set(strides[S.FOOT]) == {"left", "right"}
    assert sessions.height == 2 and S.session_median(S.PRONATION_EXCURSION_DEG) in sessions.columns
    # The printed summary names the metrics of the issue, per foot, with symmetry.
    for label in (
        "steady strides",
        "cadence",
        "stance time",
        "stride length",
        "pronation excursion",
        "max pronation velocity",
        "toe-off angle",
        "toe-off pronation",
        "L/R sym.",
        "left",
        "right",
    ):
        assert label in p.stdout, label
    assert "flags" in p.stdout
    assert "diagnos" not in p.stdout.replace("not a diagnosis", "")
    # Symmetry: an index in % for positive metrics, a difference in degrees for the signed angles.
    line = {row.split("│")[1].strip(): row for row in p.stdout.splitlines() if row.count("│") > 4}
    assert line["cadence"].rstrip(" │").endswith("%") and line["toe-off pronation"].rstrip(" │").endswith("°")


@pytest.mark.real_data
def test_one_foot_ids_and_format_options(real_data, tmp_path):
    out = tmp_path / "one"
    p = run(
        "analyze",
        str(real_data / "imu_sample.csv"),
        "--rate",
        "204.8",
        "--format",
        "gaitmap",
        "--foot",
        "right",
        "--athlete",
        "ath7",
        "--session",
        "2024-05-01",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    strides = pl.read_parquet(out / "strides.parquet")
    assert set(strides[S.FOOT]) == {"right"}
    assert set(strides[S.ATHLETE_ID]) == {"ath7"} and set(strides[S.SESSION_ID]) == {"2024-05-01"}
    sessions = pl.read_parquet(out / "sessions.parquet")
    assert sessions[S.symmetry_index(S.STRIDE_TIME_S)].null_count() == 1  # no left foot: no symmetry


@pytest.mark.real_data
def test_two_single_foot_files_form_one_session_with_symmetry(real_data, tmp_path):
    out = tmp_path / "ms"
    p = run(
        "analyze",
        str(real_data / "imu_sample_ms_left.csv"),
        str(real_data / "imu_sample_ms_right.csv"),
        "--rate",
        "102.4",
        "--out",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    sessions = pl.read_parquet(out / "sessions.parquet")
    assert sorted(sessions[S.FOOT]) == ["left", "right"]
    assert sessions[S.ATHLETE_ID].n_unique() == 1
    assert sessions[S.symmetry_index(S.STRIDE_TIME_S)].null_count() == 0


def test_bad_file_prints_the_ingest_error_and_exits_non_zero(tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0.0,1,2,3,4,5,6\n0.005,1,2,abc,4,5,6\n")
    p = run("analyze", str(bad), "--out", str(tmp_path / "o"))
    assert p.returncode != 0
    assert "broken.csv" in p.stderr and "Traceback" not in p.stderr + p.stdout
    assert not (tmp_path / "o" / "strides.parquet").exists()


def test_missing_file_is_a_clear_error(tmp_path):
    p = run("analyze", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"))
    assert p.returncode != 0
    assert "nope.csv" in p.stderr + p.stdout and "Traceback" not in p.stderr + p.stdout


def test_help_names_every_option():
    p = run("analyze", "--help")
    assert p.returncode == 0
    for option in ("--out", "--format", "--rate", "--foot", "--athlete", "--session"):
        assert option in p.stdout
