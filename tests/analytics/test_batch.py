"""Team batch: discovery, per-session Dask tasks, partitioned output, failures and resuming."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from strideflow.analytics import partitions
from strideflow.analytics.batch import STATE_DIR, BatchSettings, TeamBatch, marker_path
from strideflow.analytics.discovery import DiscoveryError, find_recordings
from strideflow.analytics.mountings import DEFAULT_DEVICE, prior_mountings, read_mountings
from strideflow.analytics.pipeline import RecordingAnalyzer, summarize_strides
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FOOT,
    KEYS,
    MOUNTING_ID,
    PRONATION_EXCURSION_DEG,
    SESSION_DATE,
    SESSION_ID,
    STRIDE_INDEX,
    symmetry_index,
)
from strideflow.hardware.simulator import write_dataset
from strideflow.ingest import read_recording

TABLES = (partitions.STRIDES, partitions.SESSIONS, partitions.FLAGS, partitions.CURVES)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 athletes x 2 sessions x 1 min walking, both feet, with a manifest."""
    out = tmp_path_factory.mktemp("team")
    write_dataset(out, athletes=3, minutes=1.0, sessions=2, seed=11)
    return out


@pytest.fixture(scope="module")
def scheduler_address():
    """A local cluster of two worker processes shared by the tests that pass `scheduler=`."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def clean_run(dataset, tmp_path_factory):
    """The default path: a local cluster started by the batch itself."""
    out = tmp_path_factory.mktemp("clean")
    batch = TeamBatch(BatchSettings(workers=2)).run(dataset, out)
    return out, batch


def _sessions(dataset: Path) -> list[tuple[str, str]]:
    rec = find_recordings(dataset)
    return sorted(set(zip(rec[ATHLETE_ID], rec[SESSION_ID], strict=True)))


def _tree(out: Path) -> dict[str, int]:
    """mtime (ns) of every partition and marker file."""
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in out.rglob("*")
        if p.is_file() and (p.suffix in (".parquet", ".json")) and p.name != "run_summary.json"
    }


def _assert_same_output(a: Path, b: Path, sessions: list[tuple[str, str]]) -> None:
    for table in TABLES:
        for athlete, session in sessions:
            left = partitions.read_partition(a, table, athlete, session)
            right = partitions.read_partition(b, table, athlete, session)
            assert (left is None) == (right is None), (table, athlete, session)
            if left is not None:
                assert_frame_equal(left, right)


def test_batch_equals_analysis_of_each_session(dataset, clean_run):
    out, batch = clean_run
    manifest = pl.read_csv(dataset / "manifest.csv")
    recordings = find_recordings(dataset)
    assert recordings.height == 12
    for (athlete, session), files in recordings.group_by(ATHLETE_ID, SESSION_ID):
        recs = [read_recording(p, foot=f) for p, f in zip(files["path"], files[FOOT], strict=True)]
        # the batch measures a session in the mounting kept from the athlete's earlier sessions
        prior = prior_mountings(read_mountings(out, athlete), DEFAULT_DEVICE, session)
        results = [
            RecordingAnalyzer().analyze(r.samples, r.sampling_rate_hz, mountings=prior).result_ for r in recs
        ]
        expected = pl.concat([r.strides for r in results]).sort(*KEYS, STRIDE_INDEX)
        assert expected.height > 40
        got = partitions.read_partition(out, partitions.STRIDES, athlete, session)
        assert_frame_equal(got, expected)
        sessions, flags = summarize_strides(expected)
        date = manifest.filter((pl.col(ATHLETE_ID) == athlete) & (pl.col(SESSION_ID) == session))[
            SESSION_DATE
        ][0]
        got_sessions = partitions.read_partition(out, partitions.SESSIONS, athlete, session)
        assert got_sessions[SESSION_DATE].to_list() == [date, date]
        assert_frame_equal(got_sessions.drop(SESSION_DATE), sessions)
        assert_frame_equal(partitions.read_partition(out, partitions.FLAGS, athlete, session), flags)
        # hive layout: the keys live in the path only
        part = out / "strides" / f"athlete_id={athlete}" / f"session_id={session}" / "part-0.parquet"
        assert part.is_file()
        assert ATHLETE_ID not in pl.read_parquet_schema(part)
    s = batch.summary_
    assert (s.recordings_total, s.recordings_done, s.recordings_skipped, s.recordings_failed) == (
        12,
        12,
        0,
        0,
    )
    assert (s.sessions_total, s.sessions_done, s.failures) == (6, 6, ())
    assert s.samples == sum(pl.read_parquet(p).height for p in recordings["path"])
    assert s.recording_s == pytest.approx(6 * 60.0, rel=1e-3)  # both feet of a session count once
    assert s.samples_per_s == pytest.approx(s.samples / s.wall_s)
    assert s.peak_rss_mb > 100
    assert {"hash", "read", "analyze", "write"} <= set(s.stage_s)
    assert json.loads((out / "run_summary.json").read_text()) == json.loads(json.dumps(s.to_dict()))
    # the workers this run started keep polars to threads_per_worker threads
    assert {r["polars_threads"] for r in batch.results_} == {1}
    assert len({r["pid"] for r in batch.results_}) >= 1


def test_rerun_skips_everything_and_touches_nothing(dataset, clean_run, scheduler_address, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(clean_run[0], out)
    before = _tree(out)
    s = TeamBatch(BatchSettings(scheduler=scheduler_address)).run(dataset, out).summary_
    assert (s.recordings_skipped, s.recordings_done, s.sessions_skipped) == (12, 0, 6)
    assert s.samples == 0
    assert _tree(out) == before


def test_changed_file_redoes_only_its_session(dataset, clean_run, scheduler_address, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(dataset, data)
    shutil.copytree(clean_run[0], out)
    before = _tree(out)
    changed = data / "A002" / "S01" / "left.parquet"
    samples = pl.read_parquet(changed)
    samples.head(samples.height - 400).write_parquet(changed)  # 2 s shorter
    batch = TeamBatch(BatchSettings(scheduler=scheduler_address)).run(data, out)
    s = batch.summary_
    assert (s.sessions_done, s.sessions_skipped, s.recordings_done, s.recordings_skipped) == (1, 5, 2, 10)
    after = _tree(out)
    redone = {k for k in before if after[k] != before[k]}
    # the session's partitions and marker, and the athlete's mountings file (its S01 strides)
    assert redone and all("A002" in k and ("S01" in k or k.startswith("_mountings/")) for k in redone)
    assert "strides/athlete_id=A002/session_id=S01/part-0.parquet" in redone
    # S02 was measured in the mounting S01 began, so S01 analysed again keeps it
    prior = prior_mountings(read_mountings(out, "A002"), DEFAULT_DEVICE, "S01")
    assert set(prior) == {"left", "right"}
    expected = pl.concat(
        [
            RecordingAnalyzer().analyze(r.samples, r.sampling_rate_hz, mountings=prior).result_.strides
            for r in (read_recording(changed), read_recording(changed.with_stem("right")))
        ]
    ).sort(*KEYS, STRIDE_INDEX)
    assert_frame_equal(partitions.read_partition(out, partitions.STRIDES, "A002", "S01"), expected)


def test_folder_layout_and_a_broken_file(dataset, clean_run, scheduler_address, tmp_path):
    from strideflow.service.cli import _register, app

    layout = tmp_path / "layout"
    (layout / "ath1" / "2025-02-03").mkdir(parents=True)
    for foot in ("left", "right"):
        shutil.copy(
            dataset / "A001" / "S01" / f"{foot}.parquet", layout / "ath1" / "2025-02-03" / f"{foot}.parquet"
        )
    (layout / "ath2" / "s1").mkdir(parents=True)
    shutil.copy(dataset / "A002" / "S01" / "left.parquet", layout / "ath2" / "s1" / "LEFT.parquet")
    pl.read_parquet(dataset / "A002" / "S01" / "right.parquet").select(
        "t", "acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"
    ).write_csv(layout / "ath2" / "s1" / "right.csv")
    (layout / "ath3" / "s1").mkdir(parents=True)
    (layout / "ath3" / "s1" / "left.csv").write_text(
        "t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,1,2,3,4,5,6\n0.01,1,abc,3,4,5,6\n"
    )
    (layout / "ath3" / "s1" / "notes.md").write_text("ignored")
    shutil.copy(dataset / "truth_strides.parquet", layout / "truth_strides.parquet")  # top level: ignored
    (layout / "ath4" / "s1").mkdir(parents=True)
    both = [pl.read_parquet(dataset / "A003" / "S01" / f"{foot}.parquet") for foot in ("left", "right")]
    pl.concat(both).write_parquet(layout / "ath4" / "s1" / "both.parquet")  # one file, both feet

    rec = find_recordings(layout)
    assert rec.select(ATHLETE_ID, SESSION_ID, FOOT, SESSION_DATE, "format").rows() == [
        ("ath1", "2025-02-03", "left", "2025-02-03", "auto"),
        ("ath1", "2025-02-03", "right", "2025-02-03", "auto"),
        ("ath2", "s1", "left", None, "auto"),
        ("ath2", "s1", "right", None, "auto"),
        ("ath3", "s1", "left", None, "auto"),
        ("ath4", "s1", None, None, "auto"),
    ]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in rec["path"])

    out = tmp_path / "out"
    _register()
    result = CliRunner().invoke(
        app, ["batch", str(layout), "--out", str(out), "--scheduler", scheduler_address]
    )
    assert result.exit_code == 1, result.output
    assert "ath3" in result.output and "IngestError" in result.output and "left.csv" in result.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert (summary["recordings_total"], summary["recordings_done"], summary["recordings_failed"]) == (
        6,
        5,
        1,
    )
    (failure,) = summary["failures"]
    assert failure[ATHLETE_ID] == "ath3" and failure["paths"] == [
        str((layout / "ath3" / "s1" / "left.csv").resolve())
    ]
    assert failure["error_type"] == "IngestError"
    assert "left.csv, row 3, column acc_y" in failure["error"]
    assert partitions.has_partition(out, partitions.STRIDES, "ath2", "s1")
    assert not partitions.has_partition(out, partitions.STRIDES, "ath3", "s1")
    assert not marker_path(out, "ath3", "s1").exists()
    ath2 = partitions.read_partition(out, partitions.SESSIONS, "ath2", "s1")
    assert sorted(ath2[FOOT]) == ["left", "right"] and ath2[SESSION_DATE].is_null().all()
    ath4 = partitions.read_partition(out, partitions.SESSIONS, "ath4", "s1")
    assert sorted(ath4[FOOT]) == ["left", "right"]
    assert ath4[symmetry_index(PRONATION_EXCURSION_DEG)].is_not_null().all()
    clean = partitions.read_partition(clean_run[0], partitions.STRIDES, "A003", "S01")
    # (the mounting id names the session that began it: "left-s1-1" there, "left-S01-1" here)
    assert_frame_equal(
        partitions.read_partition(out, partitions.STRIDES, "ath4", "s1").drop(
            ATHLETE_ID, SESSION_ID, MOUNTING_ID
        ),
        clean.drop(ATHLETE_ID, SESSION_ID, MOUNTING_ID),
    )
    trends = pl.read_parquet(out / "trends.parquet")
    assert set(trends[ATHLETE_ID]) == {"ath1", "ath2", "ath4"}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("path,athlete_id,session_id,foot\nA001/S01/left.parquet,A 1,S01,left\n", "line 2"),
        (
            "path,athlete_id,session_id,foot\nA001/S01/left.parquet,A001,S01,left\nnope.parquet,A001,S01,right\n",
            "line 3",
        ),
        ("path,athlete_id,session_id,foot\nA001/S01/left.parquet,A001,S01,middle\n", "middle"),
        (
            "path,athlete_id,session_id,foot\nA001/S01/left.parquet,A001,S01,left\nA001/S01/right.parquet,A001,S01,left\n",
            "already has a file for the left foot",
        ),
        (
            "path,athlete_id,session_id,foot\nA001/S01/left.parquet,A001,S01,\nA001/S01/right.parquet,A001,S01,right\n",
            "both feet",
        ),
        ("path,athlete_id,foot\nA001/S01/left.parquet,A001,left\n", "missing column(s) session_id"),
        (
            "path,athlete_id,session_id,session_date\nA001/S01/left.parquet,A001,S01,03/02/2025\n",
            "not an ISO date",
        ),
    ],
)
def test_manifest_errors_name_the_line(dataset, tmp_path, manifest, message):
    for foot in ("left", "right"):
        (tmp_path / "A001" / "S01").mkdir(parents=True, exist_ok=True)
        shutil.copy(
            dataset / "A001" / "S01" / f"{foot}.parquet", tmp_path / "A001" / "S01" / f"{foot}.parquet"
        )
    (tmp_path / "manifest.csv").write_text(manifest)
    with pytest.raises(DiscoveryError, match="manifest.csv") as info:
        find_recordings(tmp_path)
    assert message in str(info.value)


def test_layout_errors_name_the_path(tmp_path):
    (tmp_path / "ath1" / "s1").mkdir(parents=True)
    (tmp_path / "ath1" / "s1" / "middle.csv").write_text("t\n")
    with pytest.raises(DiscoveryError, match=r"middle\.csv.*cannot tell the foot"):
        find_recordings(tmp_path)
    (tmp_path / "ath1" / "s1" / "middle.csv").unlink()
    (tmp_path / "bad id!" / "s1").mkdir(parents=True)
    (tmp_path / "bad id!" / "s1" / "left.csv").write_text("t\n")
    with pytest.raises(DiscoveryError, match=r"bad id!.*athlete_id="):
        find_recordings(tmp_path)
    with pytest.raises(DiscoveryError, match="does not exist"):
        find_recordings(tmp_path / "nowhere")
    shutil.rmtree(tmp_path / "bad id!")
    with pytest.raises(DiscoveryError, match="no recordings"):
        find_recordings(tmp_path)


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "strideflow"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from strideflow.service.cli import main; main()"]


@pytest.mark.slow
def test_killed_run_leaves_whole_partitions_and_rerun_completes(
    dataset, clean_run, scheduler_address, tmp_path
):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*_cli(), "batch", str(dataset), "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the Dask workers too
    )
    markers = out / STATE_DIR
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(markers.glob("*/*.json")):
                break
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_at_kill = len(list(markers.glob("*/*.json")))
    assert 1 <= done_at_kill < 6, "the run was not killed mid-way"
    for part in out.rglob("part-0.parquet"):
        pl.read_parquet(part)  # every partition present is whole
    s = TeamBatch(BatchSettings(scheduler=scheduler_address)).run(dataset, out).summary_
    assert s.sessions_skipped == done_at_kill and s.sessions_done == 6 - done_at_kill and not s.failures
    _assert_same_output(out, clean_run[0], _sessions(dataset))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_leftovers_of_a_killed_write_are_cleaned(dataset, clean_run, scheduler_address, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(clean_run[0], out)
    part_dir = partitions.partition_dir(out, partitions.STRIDES, "A003", "S02")
    (part_dir / ".part-0.parquet.deadbeef.tmp").write_bytes(b"PAR1 half a file")
    # a stale partition from other data, written before the kill, and the marker gone with it
    partitions.write_partition(out, partitions.STRIDES, pl.DataFrame({FOOT: ["left"]}), "A003", "S02")
    marker_path(out, "A003", "S02").unlink()
    s = TeamBatch(BatchSettings(scheduler=scheduler_address)).run(dataset, out).summary_
    assert (s.sessions_done, s.sessions_skipped) == (1, 5)
    assert not list(part_dir.glob("*.tmp"))
    _assert_same_output(out, clean_run[0], _sessions(dataset))


def test_bad_scheduler_address_is_a_clear_error(dataset, tmp_path):
    from strideflow.analytics.batch import BatchError

    with pytest.raises(BatchError, match="cannot connect to the Dask scheduler"):
        TeamBatch(BatchSettings(scheduler="tcp://127.0.0.1:9", connect_timeout_s=2.0)).run(
            dataset, tmp_path / "out"
        )
