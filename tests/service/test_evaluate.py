"""`strideflow evaluate`: agreement statistics on known answers, matching, clock fit, order alignment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.paths import SHARED_DATA

from strideflow.analytics.evaluation import agreement, align_by_order, fit_clock, icc_a1
from strideflow.service.report.evaluate import (
    EvaluationError,
    agreement_table,
    evaluate_pair,
    load_reference,
    parse_mapping,
)

DATA = SHARED_DATA
STRIDEFLOW = shutil.which("strideflow", path=str(Path(sys.executable).parent)) or shutil.which("strideflow")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [STRIDEFLOW, *args], capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"}
    )


# --- known answers ---------------------------------------------------------------------------


def test_bias_sd_loa_by_hand():
    # differences 1, 2, 3, 4: mean 2.5, SD sqrt(5/3), LoA 2.5 -/+ 1.96 * 1.2910
    s = agreement(np.array([2.0, 4.0, 6.0, 8.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert s["n"] == 4
    assert s["bias"] == pytest.approx(2.5)
    assert s["sd"] == pytest.approx(np.sqrt(5.0 / 3.0))
    assert s["loa_low"] == pytest.approx(2.5 - 1.96 * np.sqrt(5.0 / 3.0))
    assert s["loa_high"] == pytest.approx(2.5 + 1.96 * np.sqrt(5.0 / 3.0))
    assert s["median_abs_error"] == pytest.approx(2.5) and s["mae"] == pytest.approx(2.5)
    # two-way ANOVA by hand: MSR = 7.5, MSC = 12.5, MSE = 2.5 / 3
    # ICC(2,1) = (7.5 - 5/6) / (7.5 + 5/6 + 2 (12.5 - 5/6) / 4) = 8 / 17
    assert s["icc"] == pytest.approx(8.0 / 17.0)


def test_icc_shrout_fleiss_table():
    # Shrout & Fleiss (1979), Table 2: 6 targets, 4 judges; ICC(2,1) = 0.29, and its 95 % CI
    # by McGraw & Wong's formula is 0.019 to 0.761.
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    icc, lo, hi = icc_a1(x)
    assert icc == pytest.approx(0.2898, abs=5e-4)
    assert lo == pytest.approx(0.019, abs=1e-3)
    assert hi == pytest.approx(0.761, abs=1e-3)


def test_icc_perfect_and_nan_pairs():
    v = np.array([1.0, 1.5, 1.2, 1.9, 1.4])
    assert icc_a1(np.column_stack([v, v]))[0] == pytest.approx(1.0)
    s = agreement(np.array([1.0, np.nan, 3.0, 2.0]), np.array([1.1, 2.0, np.nan, 2.2]))
    assert s["n"] == 2 and s["bias"] == pytest.approx(-0.15)
    # a constant offset between methods lowers ICC(2,1) (absolute agreement), not the consistency
    icc_shifted = icc_a1(np.column_stack([v + 0.5, v]))[0]
    assert icc_shifted < 0.6


def test_fit_clock_recovers_offset_and_drift():
    rng = np.random.default_rng(3)
    ref = np.cumsum(rng.uniform(1.0, 1.2, 60))
    det = 2.5 + (1 + 200e-6) * ref + rng.normal(0, 0.004, ref.size)
    det = np.concatenate([det[5:], [det[-1] + 0.55]])  # 5 missed, one extra
    fit = fit_clock(det, ref, tolerance_s=0.05)
    assert fit.offset_s == pytest.approx(2.5, abs=0.01)
    assert fit.drift * 1e6 == pytest.approx(200, abs=60)
    assert fit.n_pairs == 55


def test_align_by_order_finds_the_shift():
    ref = np.array([0.6, 1.4, 1.5, 1.3, 1.45, 1.6, 0.8])
    det = np.array([1.5, 1.31, 1.44, 1.62])  # starts at reference stride 2
    assert align_by_order(det, ref)[0] == 2
    assert align_by_order(ref[1:], ref)[0] == 1


# --- references and matching ----------------------------------------------------------------


def strides_table(ic: np.ndarray, lengths: np.ndarray, foot: str = "left", valid=None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "athlete_id": "a",
            "session_id": "s",
            "foot": foot,
            "stride_index": np.arange(ic.size),
            "ic_t": ic,
            "next_ic_t": ic + 1.1,
            "stride_time_s": np.full(ic.size, 1.1),
            "stride_length_m": lengths,
            "valid": np.ones(ic.size, bool) if valid is None else valid,
        }
    )


def test_event_reference_in_samples_with_mapping(tmp_path):
    ref = tmp_path / "borders.csv"
    ref.write_text("s_id,foot,start,end\n0,left,100,210\n1,left,210,322\n2,right,150,262\n")
    r = load_reference(
        ref, columns=parse_mapping("ic_t=start,next_ic_t=end,foot=foot"), time_unit="samples", rate_hz=100.0
    )
    assert r.kind == "events"
    assert r.table["ic_t"].to_list() == pytest.approx([1.0, 2.1, 1.5])
    assert r.table["stride_time_s"].to_list() == pytest.approx([1.1, 1.12, 1.12])
    det = pl.concat(
        [
            strides_table(np.array([1.02, 2.08, 3.3]), np.ones(3)),
            strides_table(np.array([1.49]), np.ones(1), foot="right"),
        ]
    )
    result = evaluate_pair(det, r, "g", tolerance_s=0.05)
    d = result.detection
    assert (d["n_matched"], d["n_reference"], d["n_detected"]) == (3, 3, 4)
    assert d["recall"] == 1.0 and d["precision"] == 0.75
    stats = (
        agreement_table(result.pairs, result.metrics).filter(pl.col("metric") == "ic_t").row(0, named=True)
    )
    assert stats["bias"] == pytest.approx((0.02 - 0.02 - 0.01) / 3)
    assert np.isnan(stats["icc"])  # not reported for clock times


def test_reference_errors_name_the_file_and_field(tmp_path):
    ref = tmp_path / "r.csv"
    ref.write_text("start,foot\n100,middle\n")
    with pytest.raises(EvaluationError, match="no such column"):
        load_reference(ref, columns={"ic_t": "begin"})
    with pytest.raises(EvaluationError, match=r"row 2, column foot: 'middle' is not left or right"):
        load_reference(ref, columns={"ic_t": "start"})
    with pytest.raises(EvaluationError, match="need --ref-rate"):
        load_reference(ref, columns={"ic_t": "start"}, time_unit="samples")
    with pytest.raises(EvaluationError, match="is not a strides column"):
        parse_mapping("start_time=start")
    ref.write_text("a,b\n1,2\n")
    with pytest.raises(EvaluationError, match="no event time or per-stride value"):
        load_reference(ref)


def test_footprints_reference_and_order_alignment(tmp_path):
    ref = tmp_path / "footprints_01.csv"
    xy = np.array([[0, 0], [0.6, 0.0], [2.0, 0.0], [3.2, 0.0], [4.9, 0.0], [6.2, 0.0]])
    ref.write_text(
        "# expID=1 numberOfStrides=5 tile_edge_length_m=0.6\nstride_number,x_m,y_m\n"
        + "".join(f"{i},{x},{y}\n" for i, (x, y) in enumerate(xy))
    )
    r = load_reference(ref)
    assert r.kind == "footprints" and not r.notes
    lengths = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    # detection misses the first (from standing) stride; its third stride is invalid
    det = strides_table(
        np.arange(4.0), lengths[1:] + np.array([0.05, -0.05, 0.5, 0.0]), valid=np.array([1, 1, 0, 1], bool)
    )
    result = evaluate_pair(det, r, "walk")
    assert result.detection["alignment_shift"] == 1
    assert result.pairs["reference_row"].to_list() == [1, 2, 4]
    assert result.detection["recall"] == pytest.approx(3 / 5)
    stats = agreement_table(result.pairs, result.metrics).row(0, named=True)
    assert stats["bias"] == pytest.approx(0.0, abs=1e-12) and stats["n"] == 3


# --- the CLI on real data ----------------------------------------------------------------------

GAITMAP = DATA / "gaitmap_example"
WALKS = DATA / "footprints_walks"


@pytest.mark.skipif(not GAITMAP.is_dir(), reason=f"gaitmap example data not found at {GAITMAP}")
def test_cli_ic_against_motion_capture(tmp_path):
    out = tmp_path / "ev"
    p = run(
        "evaluate", str(GAITMAP / "imu_sample_ic_stride.csv"), "--rate", "102.4",
        "--reference", str(GAITMAP / "stride_borders_sample_ic_stride.csv"),
        "--ref-columns", "ic_t=start,next_ic_t=end,foot=foot",
        "--ref-time-unit", "samples", "--ref-rate", "102.4",
        "--out", str(out),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    summary = json.loads((out / "evaluation.json").read_text())
    det = summary["detection"][0]
    assert det["n_reference"] == 14 and det["recall"] >= 0.9
    ic = next(r for r in summary["agreement"] if r["metric"] == "ic_t")
    assert abs(ic["bias"]) < 0.03 and ic["median_abs_error"] < 0.03  # IC within a few samples of mocap
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<script" not in html
    for name in ("matches", "agreement", "detection"):
        assert (out / f"{name}.parquet").is_file() and (out / f"{name}.csv").is_file()


@pytest.mark.skipif(not WALKS.is_dir(), reason=f"footprint walks not found at {WALKS}")
def test_cli_footprint_walk_and_strides_table_input(tmp_path):
    out = tmp_path / "an"
    p = run("analyze", str(WALKS / "SensorConnectData_31.csv"), "--out", str(out))
    assert p.returncode == 0, p.stderr
    p = run(
        "evaluate", str(out / "strides.parquet"), "--reference", str(WALKS / "footprints_31.csv"),
        "--out", str(tmp_path / "ev"),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    det = summary["detection"][0]
    assert det["kind"] == "footprints" and det["n_reference"] == 33
    assert det["recall"] > 0.8  # 27 of 33: the rest are the gait start and the U-turn strides
    sl = summary["agreement"][0]
    # metres; measured 0.009 (benchmarks/README.md, real data, round five), 0.03 before issue 17
    assert sl["metric"] == "stride_length_m" and sl["median_abs_error"] < 0.02


def test_cli_bad_reference_is_a_clear_error(tmp_path):
    ref = tmp_path / "r.csv"
    ref.write_text("a,b\n1,2\n")
    strides = tmp_path / "strides.parquet"
    strides_table(np.arange(3.0), np.ones(3)).write_parquet(strides)
    p = run("evaluate", str(strides), "--reference", str(ref), "--out", str(tmp_path / "o"))
    assert p.returncode == 1 and "no event time or per-stride value" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout
