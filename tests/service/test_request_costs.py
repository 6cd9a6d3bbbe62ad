"""What the API skips per request (issue 19) without changing what it answers: a valid key is
remembered for `key_cache_s` (a revoked key stops within it), an athlete's team is remembered (it
never changes), and an answer's head and body leave in one write."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from fastapi.testclient import TestClient

from strideflow.service import auth
from strideflow.service.app import create_app
from strideflow.service.auth import KeyCache, Principal, Role, create_key, list_keys, revoke_key
from strideflow.service.server import CoalescingTransport
from strideflow.service.settings import ServiceSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(auth.time, "monotonic", fake)
    return fake


def _revoke(db, team: str) -> None:
    (info,) = list_keys(db, team)
    revoke_key(db, info.key_id)


@pytest.mark.parametrize("ttl_s", [1.0, 0.0])
def test_a_revoked_key_stops_within_the_cache_time(tmp_path, clock, ttl_s):
    app = create_app(ServiceSettings(data_dir=tmp_path, key_cache_s=ttl_s))
    with TestClient(app) as client:
        db = app.state.db
        db.ensure_athlete("team1", "A001")
        headers = {"Authorization": f"Bearer {create_key(db, 'team1', 'coach')}"}
        assert client.get("/v1/athletes", headers=headers).status_code == 200
        _revoke(db, "team1")
        clock.now += 0.5 * ttl_s
        still = client.get("/v1/athletes", headers=headers).status_code
        assert still == (200 if ttl_s > 0 else 401)
        clock.now += 0.5 * ttl_s + 1e-3
        answer = client.get("/v1/athletes", headers=headers)
        assert answer.status_code == 401 and answer.json()["detail"] == "invalid API key"
        # and it stays refused: a refused key is never remembered
        assert client.get("/v1/athletes", headers=headers).status_code == 401


def test_unknown_and_wrong_secret_keys_are_never_remembered(tmp_path, clock):
    app = create_app(ServiceSettings(data_dir=tmp_path))
    with TestClient(app) as client:
        key = create_key(app.state.db, "team1", "admin")
        wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
        for _ in range(2):
            assert client.get("/v1/athletes", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        assert client.get("/v1/athletes", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert client.get("/v1/athletes", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401


def test_key_cache_expires_and_stays_bounded(clock):
    cache = KeyCache(ttl_s=2.0, max_keys=3)
    p = Principal(key_id="k" * 32, role=Role.coach, team_id="t")
    cache.put("sf_a", p)
    assert cache.get("sf_a") == p and cache.get("sf_b") is None
    clock.now += 2.0
    assert cache.get("sf_a") is None
    for name in ("sf_1", "sf_2", "sf_3", "sf_4"):
        cache.put(name, p)
    assert len(cache._entries) <= 3 and cache.get("sf_4") == p


def test_an_athletes_team_is_remembered_but_unknown_ids_are_asked_again(tmp_path):
    app = create_app(ServiceSettings(data_dir=tmp_path))
    with TestClient(app):
        db = app.state.db
        assert db.athlete_team("A001") is None
        db.ensure_athlete("team1", "A001")  # registered after a miss: seen at once
        assert db.athlete_team("A001") == "team1"
        assert db.athlete_team("A001") == "team1"


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_loop_turn_leave_as_one_in_order():
    async def scenario():
        raw = RecordingTransport()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"")
        t.write(b'{"items":[]}')
        assert raw.writes == [] and t.get_write_buffer_size() == 31
        await asyncio.sleep(0)
        assert raw.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"items":[]}']
        t.write(b"next")
        t.close()  # pending bytes go out before the close
        assert raw.writes[-1] == b"next" and raw.closed
        assert t.get_extra_info("peername") == ("127.0.0.1", 1)

        raw2 = RecordingTransport()
        t2 = CoalescingTransport(raw2, asyncio.get_running_loop())
        t2.write(b"dropped")
        t2.abort()
        await asyncio.sleep(0)
        assert raw2.writes == [] and raw2.aborted

    asyncio.run(scenario())


def test_the_athletes_list_reads_covering_indexes_also_made_in_an_older_database(tmp_path):
    """The athletes list (count and last date of each athlete's sessions) is answered from two
    covering indexes in id order, with no table rows read and no sort; a database made before they
    existed gets them when the service opens it, and answers the same."""
    from sqlalchemy import inspect, text

    from strideflow.service.db import Database
    from strideflow.service.routes.athletes import _athletes, _athletes_statement

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    db.create_all()
    for athlete, sessions in (("A2", ["S1", "S2"]), ("A1", ["S1"]), ("A3", [])):
        db.ensure_athlete("T1", athlete)
        for k, session in enumerate(sessions):
            db.ensure_session(athlete, session, session_date=dt.date(2026, 1, 1 + k))
    principal = Principal(key_id="k" * 32, role=Role.coach, team_id="T1")
    expected = _athletes(db, principal, None, 10)
    indexes = {"ix_athletes_team_id_id", "ix_sessions_athlete_id_date"}
    with db.engine.begin() as conn:
        for name in indexes:
            conn.execute(text(f"DROP INDEX {name}"))
    db.create_all()
    made = {ix["name"] for table in ("athletes", "sessions") for ix in inspect(db.engine).get_indexes(table)}
    assert indexes <= made
    compiled = _athletes_statement(False, False, False).compile(dialect=db.engine.dialect)
    params = compiled.construct_params({"team_id": "T1", "limit": 11})
    with db.engine.connect() as conn:
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(params[n] for n in compiled.positiontup)
        ).all()
    steps = " | ".join(row[-1] for row in plan)
    assert (
        "COVERING INDEX ix_athletes_team_id_id" in steps
        and "COVERING INDEX ix_sessions_athlete_id_date" in steps
    )
    assert "TEMP B-TREE" not in steps, steps
    assert _athletes(db, principal, None, 10) == expected
    assert [(a["athlete_id"], a["session_count"]) for a in expected] == [("A1", 1), ("A2", 2), ("A3", 0)]
    assert expected[1]["last_session_date"] == dt.date(2026, 1, 2)
    db.dispose()
