"""The whole stores of one pass of the live store share one summary (`SessionStore._prepare_whole`,
`sessions_store.session_tables_together`): every file they write is byte for byte the one a store
of that session alone writes, `summarize_strides` runs once for the sessions with both feet, and
flush calls waiting for the store (streams ending together) are served by one pass (counts)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from strideflow.analytics import sessions_store
from strideflow.analytics.flags import FlagSettings
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.service.live import WAL_DIRNAME
from strideflow.service.live.store import SessionStore

# flags raised on the simulated walk too, so that the flags tables are split as well
SETTINGS = AnalysisSettings(flags=FlagSettings(min_strides=1, fast_pronation_velocity_dps=1.0))
# athlete -> (feet streaming, strides per foot): one session with one foot only (summarised alone)
SESSIONS = {
    "A1": (("left", "right"), 12),
    "A2": (("left", "right"), 9),
    "A3": (("left",), 10),
    "A4": (("left", "right"), 11),
}


@pytest.fixture(scope="module")
def walk():
    """foot -> (strides, curves, mountings) of a simulated 40 s walk run through the live analyzer."""
    from support.live import walk_by_foot

    return walk_by_foot(40.0, 5)


def _streams(walk, athlete: str, ended: bool, scale: int = 1) -> list[SimpleNamespace]:
    """The session's streams as the store reads them: strides (`scale` times the session's count),
    curves, mountings, foot, ended."""
    feet, n = SESSIONS[athlete]
    n *= scale
    out = []
    for foot in feet:
        strides, curves, pieces = walk[foot]
        keyed = {S.ATHLETE_ID: pl.lit(athlete)}
        rows = strides.head(n).with_columns(**keyed)
        analyzer = SimpleNamespace(
            curves_=curves.with_columns(**keyed), mountings_=SimpleNamespace(pieces_=pieces)
        )
        out.append(
            SimpleNamespace(
                strides=lambda rows=rows: rows,
                analyzer=analyzer,
                hello=SimpleNamespace(foot=foot, device_id=f"pod-{athlete}-{foot}"),
                ended=ended,
            )
        )
    return out


def _new_store(root: Path) -> SessionStore:
    st = SessionStore(root / "results", root / WAL_DIRNAME, SETTINGS)
    for athlete in SESSIONS:
        st.session_dates[(athlete, "S1")] = "2026-12-04"
    return st


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def summaries(monkeypatch) -> list[int]:
    """The number of sessions in each `summarize_strides` call of the session store."""
    calls: list[int] = []
    real = sessions_store.summarize_strides

    def counting(strides, settings):
        calls.append(strides.get_column(S.ATHLETE_ID).n_unique())
        return real(strides, settings)

    monkeypatch.setattr(sessions_store, "summarize_strides", counting)
    return calls


@pytest.mark.parametrize("ended", [False, True], ids=["first store", "streams ended"])
def test_the_whole_stores_of_a_pass_write_what_each_alone_writes(walk, tmp_path, summaries, ended):
    together, alone = _new_store(tmp_path / "together"), _new_store(tmp_path / "alone")
    for athlete in SESSIONS:
        together.mark((athlete, "S1"))
    asyncio.run(together.flush(lambda key: _streams(walk, key[0], ended), once=True))
    assert summaries == [3, 1]  # the three two-foot sessions together, the one-foot one alone
    assert together.written_["whole"] == len(SESSIONS) and not together.dirty
    summaries.clear()
    for athlete in SESSIONS:
        alone.mark((athlete, "S1"))
        asyncio.run(alone.flush(lambda key: _streams(walk, key[0], ended), only={(athlete, "S1")}))
    assert summaries == [1, 1, 1, 1]
    got, want = _files(tmp_path / "together" / "results"), _files(tmp_path / "alone" / "results")
    assert got.keys() == want.keys() and len(got) > 4 * len(SESSIONS)
    assert [k for k in got if got[k] != want[k]] == []
    flags = pl.read_parquet(next((tmp_path / "together" / "results" / "flags").rglob("*.parquet")))
    assert flags.height > 0  # the flags tables were split, not only the sessions tables


def test_the_summaries_due_in_a_pass_of_appending_stores_are_built_together(walk, tmp_path, summaries):
    """A second pass with twice the strides appends, and its summaries are due (the stored strides
    doubled): built together, every file as each session's own stores write it."""
    together, alone = _new_store(tmp_path / "together"), _new_store(tmp_path / "alone")
    for scale in (1, 2):
        for athlete in SESSIONS:
            together.mark((athlete, "S1"))
        asyncio.run(together.flush(lambda key, scale=scale: _streams(walk, key[0], False, scale), once=True))
    assert together.written_ == {"parts": 4, "merges": 0, "whole": 4, "summaries": 4}
    assert summaries == [3, 1, 3, 1]
    summaries.clear()
    for scale in (1, 2):
        for athlete in SESSIONS:
            alone.mark((athlete, "S1"))
            only = {(athlete, "S1")}
            asyncio.run(alone.flush(lambda key, scale=scale: _streams(walk, key[0], False, scale), only=only))
    assert summaries == [1] * 8 and alone.written_ == together.written_
    got, want = _files(tmp_path / "together" / "results"), _files(tmp_path / "alone" / "results")
    assert got.keys() == want.keys() and [k for k in got if got[k] != want[k]] == []


def test_flush_calls_waiting_for_the_store_are_served_by_one_pass(walk, tmp_path, summaries, monkeypatch):
    """Streams ending together: each end's flush waits for the pass in progress; the next pass
    takes every waiting call's session, and the calls after it find nothing to store."""
    store = _new_store(tmp_path)
    stores: list[str] = []
    real_store = store._store

    def counting(athlete, session, *args):
        stores.append(athlete)
        return real_store(athlete, session, *args)

    monkeypatch.setattr(store, "_store", counting)
    keys = [(athlete, "S1") for athlete in SESSIONS]

    async def ends() -> None:
        await store._lock.acquire()  # a pass in progress
        for key in keys:
            store.mark(key)
        calls = [
            asyncio.ensure_future(store.flush(lambda key: _streams(walk, key[0], True), only={key}))
            for key in keys
        ]
        await asyncio.sleep(0.01)
        store._lock.release()
        await asyncio.gather(*calls)

    asyncio.run(ends())
    assert sorted(stores) == sorted(SESSIONS)  # each session once
    assert summaries == [3, 1] and not store.dirty and not store._wanted
