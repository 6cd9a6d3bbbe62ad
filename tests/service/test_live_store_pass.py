"""The periodic store (`SessionStore.flush(once=True)`) stores each session that has new strides
once per pass, also while strides keep arriving during the pass (a warm-up backlog); a flush
without `once` (a stream's end, the server's stop) stores until no session is left (counts)."""

from __future__ import annotations

import asyncio

from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.service.live.store import SessionStore

SESSIONS = [("A1", "S1"), ("A2", "S1"), ("A3", "S1")]


def _store_counting(tmp_path, monkeypatch, refills: int) -> tuple[SessionStore, list]:
    """A store whose writes only count, each marking its session dirty again (new strides arrived
    meanwhile) for its first `refills` stores."""
    store = SessionStore(tmp_path / "results", tmp_path / "wal", AnalysisSettings())
    stored: list[tuple[str, str]] = []

    def count(athlete, session, *args) -> None:
        stored.append((athlete, session))
        if stored.count((athlete, session)) <= refills:
            store.mark((athlete, session))

    monkeypatch.setattr(store, "_store", count)
    for key in SESSIONS:
        store.mark(key)
    return store, stored


def test_the_periodic_store_stores_each_session_once_per_pass(tmp_path, monkeypatch):
    store, stored = _store_counting(tmp_path, monkeypatch, refills=100)
    asyncio.run(store.flush(lambda key: [], once=True))
    assert sorted(stored) == SESSIONS  # once each, although each got new strides meanwhile
    assert store.dirty == set(SESSIONS)  # left for the next pass
    asyncio.run(store.flush(lambda key: [], only={SESSIONS[0]}, once=True))
    assert stored.count(SESSIONS[0]) == 2 and len(stored) == 4


def test_a_flush_without_once_stores_until_no_session_is_left(tmp_path, monkeypatch):
    store, stored = _store_counting(tmp_path, monkeypatch, refills=2)
    asyncio.run(store.flush(lambda key: []))
    assert sorted(stored) == sorted(SESSIONS * 3) and not store.dirty
