"""One "analyse a session" (analytics.session_analysis) and one gap rule (ingest.gaps) for every path."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from strideflow.analytics.session_analysis import RecordingFile, analyze_session
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.simulator.dataset import write_dataset
from strideflow.ingest import IngestError
from strideflow.ingest.condition import FootSeries, to_uniform_grid
from strideflow.ingest.errors import WarningLog
from strideflow.ingest.gaps import GapConditioner
from strideflow.ingest.settings import ReadSettings


@pytest.fixture(scope="module")
def session_files(tmp_path_factory):
    """One simulated athlete-session (30 s walking): its left and right file, and a broken file."""
    root = tmp_path_factory.mktemp("session")
    manifest = pl.read_csv(write_dataset(root, athletes=1, minutes=0.5, seed=5))
    paths = {r[S.FOOT]: str(root / r["path"]) for r in manifest.iter_rows(named=True)}
    copy = root / "left_again.parquet"
    shutil.copy(paths["left"], copy)
    broken = root / "broken.csv"
    broken.write_text("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,1,2,3,4,5,abc\n")
    return paths["left"], paths["right"], str(copy), str(broken)


def test_files_of_one_foot_fail_skip_or_stay_as_the_caller_says(session_files):
    left, right, left_again, _ = session_files
    files = [RecordingFile(left), RecordingFile(right), RecordingFile(left_again)]
    settings = AnalysisSettings()
    failed = analyze_session(files, settings, covered_feet="fail")
    assert [a.file.path for a in failed.analyzed] == [left, right]
    (failure,) = failed.failures
    assert (failure.file.path, failure.stage, failure.error_type) == (left_again, "feet", "DuplicateFoot")
    assert "left foot" in failure.error

    skipped = analyze_session(files, settings, covered_feet="skip")
    assert skipped.skipped == (files[2],) and not skipped.failures
    # the same strides either way, and the same as one file at a time
    alone = analyze_session([files[0]], settings).analyzed[0].strides
    assert skipped.analyzed[0].strides.equals(alone)
    assert failed.analyzed[0].strides.equals(alone)
    assert alone.height > 10 and set(alone[S.FOOT]) == {"left"}


def test_a_broken_file_fails_alone_or_stops_the_run(session_files):
    left, _, _, broken = session_files
    files = [RecordingFile(broken, label="broken.csv"), RecordingFile(left)]
    with pytest.raises(IngestError, match="abc"):
        analyze_session(files, AnalysisSettings())
    outcome = analyze_session(files, AnalysisSettings(), catch=StrideflowError)
    (failure,) = outcome.failures
    assert failure.stage == "read" and failure.error_type == "IngestError" and "row 2" in failure.error
    assert [a.file.path for a in outcome.analyzed] == [left]


def test_the_settings_given_are_the_settings_used(session_files):
    left = RecordingFile(session_files[0])
    outcome = analyze_session([left], AnalysisSettings(min_segment_s=1e6))
    assert outcome.analyzed[0].strides.height == 0
    assert any("skipped a piece" in w for w in outcome.warnings)


def test_stream_and_file_gap_rules_agree():
    """The live conditioner and `to_uniform_grid` fill the same short gaps and split at the same
    long ones (same samples, flags and, to rounding, values), whatever the stream's blocks (a
    first block holding gaps too: the conditioner used to skip those)."""
    rate = 100.0
    t = np.arange(3000) / rate
    keep = np.ones(t.size, dtype=bool)
    keep[500:503] = False  # 30 ms: interpolated
    keep[1200:1212] = False  # 120 ms: a new segment
    keep[2000:2001] = False  # one sample missing (a step of 2 intervals): interpolated
    t = t[keep]
    rng = np.random.default_rng(3)
    values = rng.normal(size=(t.size, 6))
    sat = np.zeros(t.size, dtype=bool)
    settings = ReadSettings()

    names = [*S.ACC, *S.GYR]
    series = FootSeries(
        foot="left",
        t=t,
        channels={c: values[:, i] for i, c in enumerate(names)},
        labels={c: c for c in names},
        rows=np.arange(t.size) + 2,
        time_label="t",
        units={},
    )
    grid = to_uniform_grid("x.csv", series, sat, rate, settings, WarningLog("x.csv"))

    for cuts in ([], [7, 501, 1190, 1191, 2500], list(range(1, t.size, 97))):
        conditioner = GapConditioner(rate, settings)
        blocks = [
            conditioner.push(t[a:b], values[a:b], sat[a:b])
            for a, b in zip([0, *cuts], [*cuts, t.size], strict=True)
        ]
        out_t = np.concatenate([b.t for b in blocks])
        new = np.concatenate([b.new_segment for b in blocks])
        filled = np.concatenate([b.interpolated for b in blocks])
        out_v = np.concatenate([b.values for b in blocks])
        assert out_t.size == grid[S.T].size
        np.testing.assert_allclose(out_t, grid[S.T], rtol=0, atol=1e-12)
        assert (filled == grid[S.INTERPOLATED]).all()
        assert (np.cumsum(new) - 1 == grid[S.SEGMENT]).all()
        for i, c in enumerate(names):
            np.testing.assert_allclose(out_v[:, i], grid[c], rtol=0, atol=1e-12)
        assert filled.sum() == 3 + 1 and new.sum() == 2


def test_upload_jobs_analyse_with_the_settings_they_are_given(session_files, tmp_path):
    from strideflow.service.jobs import analyse_session

    left = session_files[0]
    spec = {"id": "r1", "path": left, "filename": "left.parquet", "format": "auto", "sampling_rate_hz": None}
    spec["foot"] = None
    default = analyse_session(str(tmp_path / "a"), "A001", "S01", None, [spec])
    strict = analyse_session(
        str(tmp_path / "b"), "A001", "S01", None, [spec], AnalysisSettings(min_segment_s=1e6)
    )
    assert default["stride_count"] > 10
    assert strict["stride_count"] == 0 and any("skipped a piece" in w for w in strict["warnings"])
