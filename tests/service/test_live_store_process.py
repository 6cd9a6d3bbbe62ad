"""The live store in its own process (`service.live.store_process`): a two-foot session with a
remount stored pass by pass through the process is, file for file and byte for byte, what the
in-process store writes, with only the new strides handed off after the first pass; a killed
store process is replaced and the pass stored whole again; a stream's end stores its session at
once (its streams then leave memory, and the store process drops them at the next pass) and the
hub's `stop()` stores every pending session before the process ends."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from strideflow.analytics.live_mountings import LivePiece
from strideflow.analytics.partitions import SESSIONS, STRIDES, read_partition
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.service.live import WAL_DIRNAME
from strideflow.service.live.hub import LiveHub
from strideflow.service.live.store import SessionStore
from strideflow.service.live.store_process import StoreProcess

DATE = "2026-12-04"


@pytest.fixture(scope="module")
def walk():
    """foot -> (strides, curves, mountings) of a simulated 40 s walk run through the live analyzer."""
    from support.live import walk_by_foot

    return walk_by_foot(40.0, 5)


def _remounted(strides: pl.DataFrame, pieces: tuple) -> tuple:
    """The pieces with a remount within the recording at the middle stride's IC."""
    t = float(strides.get_column(S.IC_T)[strides.height // 2])
    first = pieces[-1].mounting
    second = replace(
        first,
        mounting_id=f"{first.foot}-S1-2",
        started="remount_within_recording",
        reason="remounted mid-session",
        start_t_s=t,
    )
    return (*pieces, LivePiece(second, switch_t_s=t))


class _Stream:
    """A stream as the store and the hub read it: its strides so far, curves, mountings."""

    def __init__(self, athlete: str, foot: str, strides, curves, pieces):
        self.hello = SimpleNamespace(athlete_id=athlete, session_id="S1", foot=foot, device_id=f"pod-{foot}")
        self.rows, self.pieces = strides, pieces
        self.n = 0
        self.analyzer = SimpleNamespace(curves_=curves, mountings_=SimpleNamespace(pieces_=pieces))
        self.ended = False
        self.owner = None
        self.closed = False
        self.last_packet_at = time.time()

    @property
    def key(self):
        return (self.hello.athlete_id, "S1", self.hello.foot, self.hello.device_id)

    def strides(self) -> pl.DataFrame:
        return self.rows.head(self.n)

    def close(self) -> None:
        self.closed = True


def _streams(walk, athlete: str = "A1") -> list[_Stream]:
    keyed = {S.ATHLETE_ID: pl.lit(athlete)}
    return [
        _Stream(athlete, foot, strides.with_columns(**keyed), curves.with_columns(**keyed), pieces)
        for foot, (strides, curves, pieces) in walk.items()
    ]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _new_store(root: Path, process: bool) -> SessionStore:
    store = SessionStore(root / "results", root / WAL_DIRNAME, AnalysisSettings())
    store.session_dates[("A1", "S1")] = DATE
    if process:
        store.process = StoreProcess(store.results_dir, root / WAL_DIRNAME, AnalysisSettings())
    return store


def _passes(walk) -> list[tuple[int, bool, bool]]:
    """(strides per foot, remounted, ended) of each pass: growing, a remount on the left from the
    fourth pass, then the end."""
    n = min(strides.height for strides, _, _ in walk.values())
    counts = [3, 5, 8, 11, 15, n - 2, n]
    return [(c, i >= 3, i == len(counts) - 1) for i, c in enumerate(counts)]


def _store_pass(store: SessionStore, streams: list[_Stream], count: int, remounted: bool, ended: bool):
    for s in streams:
        s.n, s.ended = count, ended
        remount = remounted and s.hello.foot == "left"
        s.analyzer.mountings_.pieces_ = _remounted(s.rows, s.pieces) if remount else s.pieces
    store.mark(("A1", "S1"))
    asyncio.run(store.flush(lambda key: streams if key == ("A1", "S1") else [], once=True))


def test_the_store_process_writes_what_the_in_process_store_writes(walk, tmp_path, monkeypatch):
    here, there = _new_store(tmp_path / "here", False), _new_store(tmp_path / "there", True)
    bases: list[list[int]] = []
    real = StoreProcess._handoff

    def handoff(self, jobs, dates):
        message, sent = real(self, jobs, dates)
        bases.append([base for job in message for base, _ in job[2]])
        return message, sent

    monkeypatch.setattr(StoreProcess, "_handoff", handoff)
    ours, theirs = _streams(walk), _streams(walk)
    try:
        for count, remounted, ended in _passes(walk):
            _store_pass(here, ours, count, remounted, ended)
            _store_pass(there, theirs, count, remounted, ended)
            assert _files(tmp_path / "there" / "results") == _files(tmp_path / "here" / "results")
            assert not there.dirty
    finally:
        there.process.close()
    stored = read_partition(tmp_path / "there" / "results", STRIDES, "A1", "S1")
    assert stored.get_column(S.MOUNTING_ID).n_unique() == 3  # the right foot's and the left's two
    assert stored.get_column(S.REMOUNT).any()
    # after the first pass only the new strides crossed
    counts = [c for c, _, _ in _passes(walk)]
    assert bases == [[0, 0]] + [[c, c] for c in counts[:-1]]


def test_a_killed_store_process_is_replaced_and_loses_nothing(walk, tmp_path):
    here, there = _new_store(tmp_path / "here", False), _new_store(tmp_path / "there", True)
    ours, theirs = _streams(walk), _streams(walk)
    passes = _passes(walk)
    try:
        for i, (count, remounted, ended) in enumerate(passes):
            if i in (2, len(passes) - 1):  # mid-session, and before the last store
                pid = there.process.process.pid
                os.kill(pid, signal.SIGKILL)
                there.process.process.wait()
            _store_pass(here, ours, count, remounted, ended)
            _store_pass(there, theirs, count, remounted, ended)
            assert _files(tmp_path / "there" / "results") == _files(tmp_path / "here" / "results")
        assert there.process.restarts_ == 2 and there.process.process.pid != pid
    finally:
        there.process.close()


def test_an_end_stores_at_once_and_stop_stores_what_is_pending(walk, tmp_path):
    # no periodic pass meanwhile: the end and the stop store
    hub = LiveHub(tmp_path / WAL_DIRNAME, tmp_path / "results", store_interval_s=3600.0, store_process=True)
    results = tmp_path / "results"

    async def run():
        await hub.start()
        store_process = hub.store.process
        process = store_process.process
        ending, going_on = _streams(walk, "A1"), _streams(walk, "A2")
        for s in (*ending, *going_on):
            s.n = 12
            hub.streams[s.key] = s
        for s in ending:
            s.ended = True
        hub.store.mark(("A1", "S1"))
        hub.store.mark(("A2", "S1"))
        await hub.flush(only={("A1", "S1")})  # what `end` does once the analysis has finished
        assert read_partition(results, STRIDES, "A1", "S1").height == 24
        assert read_partition(results, SESSIONS, "A1", "S1") is not None
        assert all(s.closed and s.key not in hub.streams for s in ending)  # stored, then let go
        assert store_process._gone == {("A1", "S1")}  # the store process drops it at the next pass
        await hub.stop()
        assert process.poll() is not None and hub.store.process is None
        assert not store_process._gone and not any(k[:2] == ("A1", "S1") for k in store_process._sent)
        assert read_partition(results, STRIDES, "A2", "S1").height == 24

    asyncio.run(run())


@pytest.mark.parametrize(
    ("workers", "setting", "expected"),
    [(2, False, False), (0, False, False), (2, True, True), (0, True, True)],
)
def test_the_setting_chooses_the_store_process(tmp_path, workers, setting, expected):
    from strideflow.service.app import create_app
    from strideflow.service.queries import hub_of
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(
        data_dir=tmp_path / "data", live_analysis_workers=workers, live_store_process=setting
    )
    assert hub_of(create_app(settings)).store_process is expected  # not started: no process yet
