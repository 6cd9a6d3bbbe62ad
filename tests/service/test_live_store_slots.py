"""The periodic store's slots (`SessionStore.due`, `LiveHub._flush_loop`): sessions take the
`STORE_SLOTS` slots in turn as they come, each periodic pass stores one slot's sessions, so each
session is stored once per `store_interval_s` and sessions started together are not stored in one
pass (counts); `serve` sets the thread switch interval."""

from __future__ import annotations

import asyncio
import sys

from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.service.live import WAL_DIRNAME
from strideflow.service.live.hub import LiveHub
from strideflow.service.live.store import STORE_SLOTS, SessionStore
from strideflow.service.server import switch_interval
from strideflow.service.settings import ServiceSettings

SESSIONS = [(f"A{i}", "S1") for i in range(12)]


def test_sessions_take_the_slots_in_turn(tmp_path):
    store = SessionStore(tmp_path / "results", tmp_path / "wal", AnalysisSettings())
    for key in SESSIONS:
        store.mark(key)
    slots = [store.due(s) for s in range(STORE_SLOTS)]
    assert set().union(*slots) == set(SESSIONS) and sum(map(len, slots)) == len(SESSIONS)  # disjoint
    assert max(map(len, slots)) - min(map(len, slots)) <= 1
    assert store.due(STORE_SLOTS) == slots[0]
    store.mark(SESSIONS[0])  # marked again: the same slot
    assert store.due(0) == slots[0]


def test_the_periodic_store_stores_one_slot_per_pass(tmp_path, monkeypatch):
    """Every session has new strides at every pass: each pass stores one slot's sessions, and in
    STORE_SLOTS passes every session is stored once."""
    hub = LiveHub(tmp_path / WAL_DIRNAME, tmp_path / "results", store_interval_s=0.05)
    passes: list[list] = []

    async def store_pass(keys, pending, streams_of, stored):
        passes.append(keys)
        for key in keys:
            hub.store.dirty.discard(key)
            if pending is not None:
                pending.discard(key)
        for key in SESSIONS:  # new strides meanwhile
            hub.store.mark(key)

    monkeypatch.setattr(hub.store, "_pass", store_pass)

    async def run():
        for key in SESSIONS:
            hub.store.mark(key)
        loop = asyncio.create_task(hub._flush_loop())
        while len(passes) < 2 * STORE_SLOTS:
            await asyncio.sleep(0.01)
        loop.cancel()

    asyncio.run(run())
    per_session = {key: sum(key in keys for keys in passes[:STORE_SLOTS]) for key in SESSIONS}
    assert per_session == dict.fromkeys(SESSIONS, 1)
    assert max(len(keys) for keys in passes) <= -(-len(SESSIONS) // STORE_SLOTS)
    assert [set(k) for k in passes[STORE_SLOTS : 2 * STORE_SLOTS]] == [set(k) for k in passes[:STORE_SLOTS]]


def test_serve_sets_the_switch_interval():
    before = sys.getswitchinterval()
    try:
        switch_interval(ServiceSettings(switch_interval_s=0.001))
        assert sys.getswitchinterval() == 0.001
    finally:
        sys.setswitchinterval(before)
