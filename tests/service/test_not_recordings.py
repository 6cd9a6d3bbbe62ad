"""Short, standing-only and non-recording files: one short line each from the CLI (ingest.screen)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.api import png_bytes, standing_csv

from strideflow.ingest import IngestError
from strideflow.ingest.screen import refuse_known_binary

STRIDEFLOW = shutil.which("strideflow", path=str(Path(sys.executable).parent)) or shutil.which("strideflow")


def _analyze(path: Path, *extra: str) -> subprocess.CompletedProcess:
    assert STRIDEFLOW, "the strideflow console script is not installed"
    return subprocess.run(
        [STRIDEFLOW, "analyze", str(path), "--out", str(path.parent / "out"), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "300"},
    )


@pytest.mark.parametrize(
    ("name", "body", "extra", "expected"),
    [
        (
            "standing_left.csv",
            standing_csv(30.0),
            (),
            "no walking found: the foot never left the ground (30 s",
        ),
        ("standing_left.csv", standing_csv(30.0), ("--no-align",), "no walking found"),
        ("short_left.csv", standing_csv(2.0, tap_dps=300.0), (), "too short: 2.0 s of data"),
        ("photo.csv", png_bytes(), (), "photo.csv: not a text recording (PNG image)"),
    ],
    ids=["standing", "standing-no-align", "two-seconds", "png"],
)
def test_one_short_line_and_exit_1(tmp_path, name, body, extra, expected):
    path = tmp_path / name
    path.write_bytes(body)
    p = _analyze(path, *extra)
    assert p.returncode == 1
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert expected in lines[0] and len(lines[0]) < 200
    assert not (tmp_path / "out" / "strides.parquet").exists()


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG image"),
        (b"%PDF-1.7\n", "PDF document"),
        (b"PK\x03\x04\x14\x00", "ZIP"),
    ],
)
def test_known_binary_kinds_are_named(head, kind):
    with pytest.raises(IngestError, match=f"x.csv: not a text recording \\({kind}"):
        refuse_known_binary("x.csv", head + b"\x00" * 64)


def test_text_starting_like_a_weak_signature_is_not_refused():
    refuse_known_binary("BMX.csv", b"BMX,acc_x\n1,2\n")  # "BM" but text: no NUL byte


def test_unit_advice_names_what_the_user_can_do_and_following_it_works(tmp_path):
    import numpy as np
    import polars as pl

    from strideflow.hardware.simulator import SimulationSettings, Simulator

    sim = Simulator(SimulationSettings(activity="walk", duration_s=30.0, seed=2)).simulate()
    left = sim.samples_.filter(pl.col("foot") == "left").select(
        "t", "acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"
    )
    path = tmp_path / "radps_left.csv"
    left.with_columns([pl.col(c) * np.pi / 180 for c in ("gyr_x", "gyr_y", "gyr_z")]).write_csv(path)
    p = _analyze(path)
    assert p.returncode == 1
    message = " ".join(p.stderr.split())
    assert "--units gyr=rad/s" in message and "units=gyr=rad/s" in message and "gyr_x [rad/s]" in message
    assert "gyr_unit=" not in message  # no Python keyword the CLI does not have
    assert _analyze(path, "--units", "gyr=rad/s").returncode == 0
    header = path.read_text().split("\n", 1)
    path.write_text(
        header[0]
        .replace("gyr_x", "gyr_x [rad/s]")
        .replace("gyr_y", "gyr_y [rad/s]")
        .replace("gyr_z", "gyr_z [rad/s]")
        + "\n"
        + header[1]
    )
    assert _analyze(path).returncode == 0
