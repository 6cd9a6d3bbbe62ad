"""Partitioned result store: atomic writes, hive keys restored, pruning by athlete, id checks."""

from __future__ import annotations

import os

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strideflow.analytics.partitions import (
    STRIDES,
    PartitionError,
    delete_partition,
    has_partition,
    read_partition,
    scan_table,
    write_partition,
)
from strideflow.hardware.schema import ATHLETE_ID, FOOT, SESSION_ID


def _table(athlete: str, session: str, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            ATHLETE_ID: [athlete] * n,
            SESSION_ID: [session] * n,
            FOOT: ["left"] * n,
            "stride_time_s": [1.0 + i / 10 for i in range(n)],
        }
    )


def test_round_trip_and_pruning(tmp_path):
    write_partition(tmp_path, STRIDES, _table("A1", "S1", 3), "A1", "S1")
    write_partition(tmp_path, STRIDES, _table("A1", "S2", 2), "A1", "S2")
    write_partition(tmp_path, STRIDES, _table("B7", "S1", 4), "B7", "S1")
    all_rows = scan_table(tmp_path, STRIDES).collect()
    assert all_rows.height == 9
    only_a = scan_table(tmp_path, STRIDES, athlete_id="A1").collect().sort(SESSION_ID, "stride_time_s")
    expected = pl.concat([_table("A1", "S1", 3), _table("A1", "S2", 2)])
    assert_frame_equal(only_a.select(expected.columns), expected)
    assert_frame_equal(read_partition(tmp_path, STRIDES, "B7", "S1"), _table("B7", "S1", 4))


def test_replace_is_whole_and_leaves_no_temp_files(tmp_path):
    write_partition(tmp_path, STRIDES, _table("A1", "S1", 5), "A1", "S1")
    write_partition(tmp_path, STRIDES, _table("A1", "S1", 2), "A1", "S1")
    assert read_partition(tmp_path, STRIDES, "A1", "S1").height == 2
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    delete_partition(tmp_path, STRIDES, "A1", "S1")
    assert not has_partition(tmp_path, STRIDES, "A1", "S1")
    assert scan_table(tmp_path, STRIDES) is None


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "..", "a b", "x" * 200, ".hidden"])
def test_bad_ids_are_refused_with_the_field_named(tmp_path, bad):
    with pytest.raises(PartitionError, match="athlete_id"):
        write_partition(tmp_path, STRIDES, _table("A1", "S1", 1), bad, "S1")


def test_scan_reads_partitions_written_before_a_column_was_added(tmp_path):
    from strideflow.analytics import partitions

    old = pl.DataFrame({"foot": ["left"], "x": [1.0]})
    new = pl.DataFrame({"foot": ["left"], "x": [2.0], "activity": ["run"]})
    for name, first, second in (("old-first", old, new), ("new-first", new, old)):
        root = tmp_path / name
        partitions.write_partition(root, partitions.SESSIONS, first, "A1", "S1")
        partitions.write_partition(root, partitions.SESSIONS, second, "A1", "S2")
        got = partitions.scan_table(root, partitions.SESSIONS, athlete_id="A1").collect().sort("session_id")
        assert got["x"].to_list() == [first["x"][0], second["x"][0]]
        expected = [f["activity"][0] if "activity" in f.columns else None for f in (first, second)]
        assert got["activity"].to_list() == expected


def test_collect_table_reads_again_when_live_parts_are_merged_away_under_it(tmp_path, monkeypatch):
    """A live session's parts merged into part-0 between the listing and the read (the live store
    merges while the stream goes on): the lazy scan fails on the vanished file, collect_table lists
    again and reads the merged rows."""
    from strideflow.analytics import partitions

    rows = _table("A1", "S1", 4)
    folder = partitions.partition_dir(tmp_path, STRIDES, "A1", "S1")
    folder.mkdir(parents=True)
    rows[:2].drop(ATHLETE_ID, SESSION_ID).write_parquet(folder / partitions.live_part_name(0, 1))
    rows[2:].drop(ATHLETE_ID, SESSION_ID).write_parquet(folder / partitions.live_part_name(2, 3))
    listed = partitions._chosen_files
    merges = []

    def list_then_merge(paths):
        files = listed(paths)
        if not merges:  # the merge lands right after the first listing
            merges.append(write_partition(tmp_path, STRIDES, rows, "A1", "S1"))
        return files

    monkeypatch.setattr(partitions, "_chosen_files", list_then_merge)
    with pytest.raises(FileNotFoundError):
        scan_table(tmp_path, STRIDES).collect()
    merges.clear()
    for name in list(os.listdir(folder)):
        (folder / name).unlink()
    rows[:2].drop(ATHLETE_ID, SESSION_ID).write_parquet(folder / partitions.live_part_name(0, 1))
    rows[2:].drop(ATHLETE_ID, SESSION_ID).write_parquet(folder / partitions.live_part_name(2, 3))
    got = partitions.collect_table(tmp_path, STRIDES, query=lambda lf: lf.sort("stride_time_s"))
    assert len(merges) == 1
    assert_frame_equal(got.select(rows.columns), rows)
