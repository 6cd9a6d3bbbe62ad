"""The live store appends mid-stream (`service.live.store`): a session stored over many stores
equals it stored at once, a reader sees every stored stride at every step, a store in a new process
(a restart) and a foot that leaves mid-session still end in the same session, and each appending
store writes a bounded number of Parquet files whatever the session's length."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strideflow.analytics import partitions
from strideflow.analytics.live_analyzer import LiveSettings
from strideflow.analytics.partitions import CURVES, FLAGS, PART_FILE, SESSIONS, STRIDES, read_partition
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.service import strides_page
from strideflow.service.live import WAL_DIRNAME
from strideflow.service.live import store as store_module
from strideflow.service.live.store import MERGE_FANOUT, SessionStore

TABLES = (STRIDES, SESSIONS, FLAGS, CURVES)


@pytest.fixture(scope="module")
def walk():
    """(left strides, left curves, left mountings, right likewise) of a simulated 45 s walk run
    through the live analyzer."""
    from support.live import stream

    sim = Simulator(
        SimulationSettings(duration_s=45.0, seed=23, athlete_id="A1", session_id="S1", keep_orientation=False)
    ).simulate()
    out = []
    for foot in ("left", "right"):
        live = stream(sim.samples_, foot, sim.settings.sampling_rate_hz, LiveSettings(), block=200)
        out.append((live.strides_, live.curves_, tuple(live.mountings_.pieces_)))
    return out


def _new_store(root) -> SessionStore:
    st = SessionStore(root / "results", root / WAL_DIRNAME, AnalysisSettings())
    st.session_dates[("A1", "S1")] = "2026-12-04"
    return st


def _store(st: SessionStore, walk, rows: dict[str, int], final: bool) -> None:
    """Store the first rows[foot] strides of each foot in `rows` (the feet streaming here)."""
    parts, curves, mountings = [], [], []
    for foot, (strides, curve, pieces) in zip(("left", "right"), walk, strict=True):
        if foot in rows:
            parts.append(strides.head(rows[foot]))
            curves.append(curve)
            mountings.append((f"pod-{foot}", foot, pieces))
    st._store("A1", "S1", parts, set(rows), curves, mountings, final)


def _tables(root) -> dict[str, pl.DataFrame | None]:
    return {t: read_partition(root / "results", t, "A1", "S1") for t in TABLES}


def _sorted(strides: pl.DataFrame) -> pl.DataFrame:
    return strides.sort(S.FOOT, S.STRIDE_INDEX)


def _page(root, foot: str | None, after: list | None, limit: int) -> tuple[bytes, list | None]:
    folder = partitions.partition_dir(root / "results", STRIDES, "A1", "S1")
    return strides_page.read_items_page(folder / PART_FILE, "A1", "S1", foot, None, None, None, after, limit)


def test_a_session_appended_store_by_store_is_the_one_stored_at_once(walk, tmp_path, monkeypatch):
    """One stride per foot per store: each appending store writes one live part (plus a merge of
    MERGE_FANOUT parts of one size, plus the summaries when due), a reader sees exactly the
    strides a whole store of that moment holds (rows and API pages; checked every third store and
    at the end), and the last store leaves
    the tables of the one-shot store and a single part-0.parquet."""
    written = []
    real_write = pl.DataFrame.write_parquet

    def counting(self, *args, **kwargs):
        written.append(self.height)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", counting)
    n = min(walk[0][0].height, walk[1][0].height)
    assert n > MERGE_FANOUT + 2, "the walk gives enough stores for a merge"
    appending, reference = _new_store(tmp_path / "a"), _new_store(tmp_path / "b")
    folder = partitions.partition_dir(tmp_path / "a" / "results", STRIDES, "A1", "S1")
    for k in range(1, n + 1):
        before, counts = len(written), dict(appending.written_)
        _store(appending, walk, {"left": k, "right": k}, final=False)
        files = len(written) - before
        if k == 1:
            assert appending.written_["whole"] == 1
            continue
        parts = appending.written_["parts"] - counts["parts"]
        merges = appending.written_["merges"] - counts["merges"]
        summaries = appending.written_["summaries"] - counts["summaries"]
        assert parts == 1 and appending.written_["whole"] == 1
        assert files == parts + merges + 3 * summaries  # sessions, flags and curves per summary
        # the parts: the first store's and a base-MERGE_FANOUT count of the appended ones
        live = partitions.chosen_parts(p.name for p in folder.iterdir())
        digits, rest = 0, k - 1
        while rest:
            digits, rest = digits + rest % MERGE_FANOUT, rest // MERGE_FANOUT
        assert len(live) == 1 + digits, live
        if k % 3 and k < n - 1:
            continue
        _store(reference, walk, {"left": k, "right": k}, final=True)
        got = _sorted(read_partition(tmp_path / "a" / "results", STRIDES, "A1", "S1"))
        assert_frame_equal(got, read_partition(tmp_path / "b" / "results", STRIDES, "A1", "S1"))
        for foot, after, limit in ((None, None, 5), ("right", [0, 2], 3), (None, None, 2 * k + 1)):
            assert _page(tmp_path / "a", foot, after, limit) == _page(tmp_path / "b", foot, after, limit)
    assert appending.written_["merges"] >= 1
    # summaries: the first store, each doubling and every 30 s of strides, not one per store
    assert appending.written_["summaries"] < n // 2
    _store(appending, walk, {"left": n, "right": n}, final=True)
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".parquet") == [PART_FILE]
    got, want = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    for table in TABLES:
        assert_frame_equal(got[table], want[table])
    assert (folder / PART_FILE).read_bytes() == (
        partitions.partition_dir(tmp_path / "b" / "results", STRIDES, "A1", "S1") / PART_FILE
    ).read_bytes()


def test_a_restart_and_a_foot_that_leaves_mid_session_end_in_the_same_session(walk, tmp_path):
    """Appending stores, then a new process's store (it reads what is stored of its feet and
    appends after it), then the right foot leaves (its stored rows kept from the live parts), comes
    back and both end: every table equals a one-shot store of the last state."""
    n = min(walk[0][0].height, walk[1][0].height)
    steps = [(k, k) for k in range(1, n // 3)]
    first = _new_store(tmp_path / "a")
    for left, right in steps:
        _store(first, walk, {"left": left, "right": right}, final=False)
    assert first.written_["merges"] >= 1
    restarted = _new_store(tmp_path / "a")  # the same folders, nothing in memory
    k = n // 3
    _store(restarted, walk, {"left": k, "right": k}, final=False)
    assert restarted.written_["whole"] == 0 and restarted.written_["parts"] == 1
    for left in range(k + 1, 2 * n // 3):  # the right foot's stream has left this process
        _store(restarted, walk, {"left": left}, final=False)
    assert restarted.written_["parts"] > 1
    mid = _sorted(read_partition(tmp_path / "a" / "results", STRIDES, "A1", "S1"))
    assert mid.filter(pl.col(S.FOOT) == "right").height == k
    _store(restarted, walk, {"left": n, "right": n - 1}, final=False)
    _store(restarted, walk, {"left": n, "right": n}, final=True)

    at_once = _new_store(tmp_path / "b")
    _store(at_once, walk, {"left": n, "right": n}, final=True)
    got, want = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    for table in TABLES:
        assert_frame_equal(got[table], want[table])


def test_a_reader_takes_the_whole_file_or_the_live_parts_not_held_by_a_merge():
    names = ["part-0-0.parquet", *(f"part-{i}-{i}.parquet" for i in range(1, 10)), "part-1-8.parquet"]
    assert partitions.chosen_parts(names) == ["part-0-0.parquet", "part-1-8.parquet", "part-9-9.parquet"]
    assert partitions.chosen_parts([*names, PART_FILE, "_part-0.items"]) == [PART_FILE]
    assert partitions.chosen_parts(["_part-0.items", ".part-3-3.parquet.x.tmp"]) == []
    assert store_module._level((1, 8)) == 1 and store_module._level((9, 9)) == 0
    assert store_module._level((1, 64)) == 2


def test_two_processes_append_their_own_feet_and_store_whole_after_the_other_stored_theirs(walk, tmp_path):
    """Two stores on one data folder (two server processes), the left foot streaming into one and
    the right into the other: each appends beside the other's parts. When the left stream moves to
    the second process and back, each reads the rows the other stored of it and appends after
    them; the session still ends as the one-shot store."""
    n = min(walk[0][0].height, walk[1][0].height)
    m = n // 3
    a, b = _new_store(tmp_path / "a"), _new_store(tmp_path / "a")
    for k in range(1, m + 1):
        _store(a, walk, {"left": k}, final=False)
        _store(b, walk, {"right": k}, final=False)
    assert (a.written_["whole"], b.written_["whole"]) == (1, 0)  # the first store of the session
    assert (a.written_["parts"], b.written_["parts"]) == (m - 1, m)
    _store(b, walk, {"left": m + 2, "right": m + 2}, final=False)  # the left stream moved to b
    _store(a, walk, {"left": m + 4}, final=False)  # and came back to a
    _store(a, walk, {"left": m + 5}, final=False)
    assert (a.written_["whole"], b.written_["whole"]) == (1, 0)
    mid = _sorted(read_partition(tmp_path / "a" / "results", STRIDES, "A1", "S1"))
    assert mid.group_by(S.FOOT).len().sort(S.FOOT).rows() == [("left", m + 5), ("right", m + 2)]
    _store(b, walk, {"right": n}, final=True)
    _store(a, walk, {"left": n}, final=True)

    at_once = _new_store(tmp_path / "b")
    _store(at_once, walk, {"left": n, "right": n}, final=True)
    got, want = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    for table in TABLES:
        assert_frame_equal(got[table], want[table])


def test_a_foot_whose_stream_ends_mid_session_keeps_its_last_curves(walk, tmp_path):
    """A stream that ends leaves memory after its store; the session's later stores read that
    foot's curves from the partition, so its store must write them, summary due or not."""
    from strideflow.analytics.curves import STRIDE_COUNT

    (ls, lc, lp), (rs, rc, rp) = walk
    st = _new_store(tmp_path)
    both = [("pod-left", "left", lp), ("pod-right", "right", rp)]
    older = lc.with_columns(pl.col(STRIDE_COUNT) - 1)  # the left curves before its last stride
    st._store("A1", "S1", [ls.head(10), rs.head(10)], {"left", "right"}, [older, rc], both, False)
    # the left stream has ended with one more stride (a summary is not due by the append rule)
    st._store("A1", "S1", [ls.head(11), rs.head(11)], {"left", "right"}, [lc, rc], both, False, True)
    # the left stream is gone from memory; the right one streams on, then ends
    right = [("pod-right", "right", rp)]
    st._store("A1", "S1", [rs.head(12)], {"right"}, [rc], right, False)
    st._store("A1", "S1", [rs], {"right"}, [rc], right, True)
    curves = read_partition(tmp_path / "results", CURVES, "A1", "S1")
    stored_left = curves.filter(pl.col(S.FOOT) == "left").get_column(STRIDE_COUNT).to_list()
    assert stored_left == lc.get_column(STRIDE_COUNT).to_list()
    assert (
        read_partition(tmp_path / "results", STRIDES, "A1", "S1").filter(pl.col(S.FOOT) == "left").height
        == 11
    )
