"""The live store's reuse between stores (`service.live.store.SessionStore`): the other feet's rows
it read and the strides it labelled are kept only while they are what the files and the streams
hold, so a session stored step by step is the one stored at once."""

from __future__ import annotations

import polars as pl
import pytest

from strideflow.analytics.live_analyzer import LiveSettings
from strideflow.analytics.partitions import CURVES, FLAGS, SESSIONS, STRIDES, read_partition
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.ingest import read_recording
from strideflow.service.live import WAL_DIRNAME
from strideflow.service.live.store import SessionStore


def _tables(root) -> dict[str, pl.DataFrame]:
    out = {}
    for table in (STRIDES, SESSIONS, FLAGS, CURVES):
        try:
            out[table] = read_partition(root, table, "R1", "S1")
        except Exception:  # not written (no curves here)
            out[table] = None
    return out


@pytest.mark.real_data
def test_a_session_stored_step_by_step_equals_it_stored_at_once(real_data, tmp_path):
    """Left streams throughout; right streams, leaves (its stored rows kept from the partition),
    comes back with more strides and leaves again. The last store must keep right's newest stored
    rows (not those read while it was away the first time), and every table equals a store of the
    same last state from scratch."""
    from support.live import stream

    recording = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)
    samples = recording.samples.with_columns(
        pl.lit("R1").alias(S.ATHLETE_ID), pl.lit("S1").alias(S.SESSION_ID)
    )
    live = stream(samples, "left", 204.8, LiveSettings(), block=205)
    pieces = tuple(live.mountings_.pieces_)
    left = live.strides_
    right = left.with_columns(pl.lit("right").alias(S.FOOT))
    n = left.height
    assert n >= 8, "the sample walk gives enough strides to store in steps"
    a, b, c = n // 4, n // 2, 3 * n // 4
    both = {"left", "right"}

    def store(st: SessionStore, left_rows: int, right_rows: int | None) -> None:
        parts = [left.head(left_rows)]
        mountings = [("pod-L", "left", pieces)]
        if right_rows is not None:
            parts.append(right.head(right_rows))
            mountings.append(("pod-R", "right", ()))
        st._store("R1", "S1", parts, both if right_rows is not None else {"left"}, None, mountings)

    stepwise = SessionStore(tmp_path / "a" / "results", tmp_path / "a" / WAL_DIRNAME, AnalysisSettings())
    for left_rows, right_rows in [(a, a), (b, None), (b, b), (c, c), (n, None)]:
        store(stepwise, left_rows, right_rows)
    at_once = SessionStore(tmp_path / "b" / "results", tmp_path / "b" / WAL_DIRNAME, AnalysisSettings())
    store(at_once, c, c)
    store(at_once, n, None)

    got, want = _tables(tmp_path / "a" / "results"), _tables(tmp_path / "b" / "results")
    stored = got[STRIDES]
    assert stored.filter(pl.col(S.FOOT) == "right").height == c  # right's last stored rows, kept
    assert stored.filter(pl.col(S.FOOT) == "left").height == n
    for table, frame in want.items():
        assert (frame is None and got[table] is None) or frame.equals(got[table]), table
