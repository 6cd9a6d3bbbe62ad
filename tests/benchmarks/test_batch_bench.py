"""The team-day batch benchmark on a tiny workload: its rows, units and JSON contract (no timing asserts)."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from strideflow.benchmarks import batch
from strideflow.benchmarks._common import report

TINY = batch.BatchBenchSize(
    athletes=2, minutes=0.3, subset_s=15.0, scaling=(1, 2), scaling_minutes=0.2, gaitmap=False
)
SPEED_ROWS = ("strideflow.pipeline", "strideflow.pipeline_one_core", "ahrs_pandas.pipeline")
UNITS = {
    "strideflow.pipeline": "samples/s",
    "strideflow.pipeline_one_core": "samples/s",
    "ahrs_pandas.pipeline": "samples/s",
    "gaitmap.pipeline": "samples/s",
    "strideflow.realtime_factor": "x",
    "strideflow.wall_s": "s",
    "strideflow.team_day_s": "s",
    "strideflow.peak_rss": "MB",
    "strideflow.peak_rss_1x": "MB",
    "strideflow.peak_rss_10x": "MB",
    "strideflow.peak_rss_growth": "x",
    "strideflow_vs_gaitmap.ratio": "x",
    "strideflow_vs_ahrs_pandas.ratio": "x",
    "strideflow_vs_gaitmap.ratio_one_core": "x",
    "strideflow_vs_ahrs_pandas.ratio_one_core": "x",
    "workload.samples": "samples",
}


@pytest.fixture(scope="module")
def bench_rows(tmp_path_factory) -> list[dict]:
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRIDEFLOW_CACHE", str(cache))
        rows = batch.measure(TINY)
        # The dataset lands in the cache, outside the repository, and is reused on the next call.
        cached = sorted((cache / "bench").iterdir())
        assert any(p.name.startswith("team-2x0.3min-") for p in cached)
        assert batch.dataset(TINY.athletes, TINY.minutes) in cached
    return rows


@pytest.mark.slow
def test_rows_have_the_contract_names_units_and_positive_values(bench_rows, tmp_path):
    by_name = {r["name"]: r for r in bench_rows}
    for name, unit in UNITS.items():
        assert name in by_name, name
        assert by_name[name]["unit"] == unit, name
    for r in bench_rows:
        assert set(r) <= {"name", "value", "unit", "note"}
        if r["value"] is None:
            assert r.get("note"), f"{r['name']} is absent without saying why"
        else:
            assert math.isfinite(r["value"]), r["name"]
    for name in SPEED_ROWS:
        assert by_name[name]["value"] > 0, name
    # gaitmap was not asked for: absent, with the reason, and so are the ratios against it.
    assert by_name["gaitmap.pipeline"]["value"] is None
    assert by_name["strideflow_vs_gaitmap.ratio"]["value"] is None
    assert by_name["strideflow.peak_rss_1x"]["value"] > 0
    assert by_name["strideflow.stage.analyze_s"]["value"] > 0
    # The ratios are the quotients of the rows they name.
    ratio = by_name["strideflow_vs_ahrs_pandas.ratio_one_core"]["value"]
    expected = by_name["strideflow.pipeline_one_core"]["value"] / by_name["ahrs_pandas.pipeline"]["value"]
    assert ratio == pytest.approx(expected)
    # Every sample of the tiny team was analysed: 2 athletes x 0.3 min x 200 Hz x 2 feet.
    assert by_name["workload.samples"]["value"] == 2 * 0.3 * 60 * 200 * 2
    assert "strideflow.failed_recordings" not in by_name

    path = tmp_path / "batch.json"
    doc = report("batch", bench_rows, path)
    loaded = json.loads(path.read_text())
    assert loaded["benchmark"] == "batch" and loaded["rows"] == doc["rows"]
    assert loaded["machine"] and loaded["date"]


@pytest.mark.slow
def test_the_baseline_script_finds_the_strides_strideflow_finds(tmp_path, monkeypatch):
    # The hand-made baseline must do the work it is timed for: a stride count of the same order.
    monkeypatch.setenv("STRIDEFLOW_CACHE", str(tmp_path / "cache"))
    team = batch.dataset(1, 0.3, seed=7)
    files = [(str(p), foot) for p, foot in batch._subset_files(team, 15.0, tmp_path)]
    ours = batch.strideflow_session(files)
    theirs = batch.ahrs_pandas_session(files)
    assert ours["samples"] == theirs["samples"] == pl.read_parquet(files[0][0]).height * 2
    assert ours["strides"] > 10
    assert 0.5 * ours["strides"] <= theirs["strides"] <= 1.5 * ours["strides"]
