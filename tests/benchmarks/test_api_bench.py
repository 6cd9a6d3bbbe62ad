"""`strideflow bench api`: the synthetic store follows the strides contract, is registered and
served, and the load driver reports every route with no errors (on a tiny store, briefly)."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest

from strideflow.analytics import partitions
from strideflow.benchmarks import api
from strideflow.hardware.schema import (
    CADENCE_SPM,
    DUTY_FACTOR,
    FOOT,
    IC_T,
    NEXT_IC_T,
    SESSION_DATE,
    SPEED_MPS,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    STRIDE_TIME_S,
    STRIDES_SCHEMA,
    SWING_TIME_S,
    TOE_OFF_T,
)
from strideflow.service.cli.bench import available_benchmarks

TINY = api.StoreSpec(athletes=3, sessions=2, strides_per_session=40, seed=1)


def test_api_is_a_registered_benchmark():
    assert "api" in available_benchmarks()


def test_synthetic_strides_follow_the_design_definitions():
    df = api.synthetic_strides("B0001", "S01", 200, np.random.default_rng(0))
    assert df.schema == pl.Schema(STRIDES_SCHEMA)
    assert df.height == 200 and df[FOOT].value_counts().height == 2
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(df[STRIDE_TIME_S], df[NEXT_IC_T] - df[IC_T], **close)
    np.testing.assert_allclose(df[STANCE_TIME_S], df[TOE_OFF_T] - df[IC_T], **close)
    np.testing.assert_allclose(df[SWING_TIME_S], df[NEXT_IC_T] - df[TOE_OFF_T], **close)
    np.testing.assert_allclose(df[CADENCE_SPM], 120 / df[STRIDE_TIME_S], **close)
    np.testing.assert_allclose(df[SPEED_MPS], df[STRIDE_LENGTH_M] / df[STRIDE_TIME_S], **close)
    np.testing.assert_allclose(df[DUTY_FACTOR], df[STANCE_TIME_S] / df[STRIDE_TIME_S], **close)
    for _, foot in df.group_by(FOOT):  # strides of a foot follow each other: next IC is the next row's IC
        np.testing.assert_allclose(foot[NEXT_IC_T][:-1], foot[IC_T][1:], **close)


def test_store_is_written_registered_and_cached(tmp_path):
    from strideflow.service.db import Database, SessionRow
    from strideflow.service.settings import ServiceSettings

    data, info = api.build_store(tmp_path / "store", TINY)
    assert info["build_s"] > 0
    results = data / "results"
    stored = partitions.scan_table(results, partitions.STRIDES).collect()
    assert stored.height == TINY.strides
    sessions = partitions.scan_table(results, partitions.SESSIONS).collect()
    assert sessions.height == TINY.athletes * TINY.sessions * 2  # per foot
    assert sessions[SESSION_DATE].null_count() == 0
    db = Database(ServiceSettings(data_dir=data).resolved_database_url)
    with db.session() as s:
        assert s.query(SessionRow).count() == TINY.athletes * TINY.sessions
    db.dispose()
    again = api.build_store(tmp_path / "store", TINY)[1]
    assert again["build_s"] == 0.0 and again["admin_key"] == info["admin_key"]


@pytest.mark.slow
def test_load_run_reports_every_route_without_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("STRIDEFLOW_BENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(api, "QUICK", TINY)
    monkeypatch.setattr(api, "QUICK_DURATION_S", 0.5)
    rows = {r["name"]: r for r in api.run(quick=True)}
    assert rows["store.strides"]["value"] == TINY.strides
    for route in api.route_requests(TINY):
        assert rows[f"{route}.errors"]["value"] == 0, rows[f"{route}.errors"]
        assert rows[f"{route}.requests_per_s"]["value"] > 0
        assert 0 < rows[f"{route}.p50_ms"]["value"] <= rows[f"{route}.p99_ms"]["value"]
        assert rows[f"{route}.p50_ms"]["unit"] == "ms"
    json.dumps(list(rows.values()))  # the report is JSON-serialisable


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("STRIDEFLOW_TEST_DATABASE_URL"),
    reason="needs a PostgreSQL server: STRIDEFLOW_TEST_DATABASE_URL=postgresql+psycopg://... (.ci/run)",
)
def test_two_server_processes_on_postgresql(tmp_path, monkeypatch):
    monkeypatch.setenv("STRIDEFLOW_BENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("STRIDEFLOW_BENCH_PROCESSES", "2")
    monkeypatch.setenv("STRIDEFLOW_BENCH_DATABASE_URL", os.environ["STRIDEFLOW_TEST_DATABASE_URL"])
    monkeypatch.setattr(api, "QUICK", TINY)
    monkeypatch.setattr(api, "QUICK_DURATION_S", 0.5)
    rows = {r["name"]: r for r in api.run(quick=True)}
    for route in api.route_requests(TINY):
        assert f"{route}.errors" not in rows  # only the process count asked for
        assert rows[f"p2.{route}.errors"]["value"] == 0, rows[f"p2.{route}.errors"]
        assert rows[f"p2.{route}.requests_per_s"]["value"] > 0
        assert rows[f"p2.{route}.server_cpu_ms"]["value"] > 0
        assert rows[f"p2.{route}.database_cpu_ms"]["value"] > 0  # the backends of this run were found
