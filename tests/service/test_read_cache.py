"""Read answers kept until the database changes (`service.db.ReadCache`, issue 19): a repeated
request runs no SQL, and any commit (from any connection or process) or any rewritten partition
changes the next answer to what the stores say, for every key as its role allows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from strideflow.analytics.sessions_store import write_session
from strideflow.benchmarks.api import synthetic_strides
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.catalog import sync_results
from strideflow.service.db import Database, ReadCache
from strideflow.service.settings import ServiceSettings

TEAM = "t1"
FIRST = dt.date(2026, 3, 2)


def write(results: Path, athlete: str, k: int, n: int = 60, seed: int = 0) -> None:
    strides = synthetic_strides(athlete, f"S{k:02d}", n, np.random.default_rng([seed, k]))
    date = (FIRST + dt.timedelta(days=k)).isoformat()
    write_session(results, athlete, f"S{k:02d}", [strides], session_date=date)


class Statements:
    """Counts the SQL statements an engine runs."""

    def __init__(self, db: Database):
        self.n = 0
        event.listen(db.engine, "before_cursor_execute", self._count)

    def _count(self, *_args) -> None:
        self.n += 1

    def during(self, call):
        before = self.n
        answer = call()
        return answer, self.n - before


@pytest.fixture
def served(tmp_path):
    # keys remembered for the whole test: a key's own lookup is not what is counted here
    settings = ServiceSettings(data_dir=tmp_path / "data", key_cache_s=3600)
    results = settings.results_dir
    results.mkdir(parents=True)
    for athlete, sessions in (("B1", (1, 2, 3)), ("B2", (1, 2))):
        for k in sessions:
            write(results, athlete, k)
    app = create_app(settings)
    with TestClient(app) as client:
        db = app.state.db
        sync_results(db, results, TEAM)
        keys = {
            "admin": create_key(db, TEAM, "admin"),
            "coach": create_key(db, TEAM, "coach"),
            "B2": create_key(db, TEAM, "athlete", "B2"),
        }
        yield client, db, settings, {k: {"Authorization": f"Bearer {v}"} for k, v in keys.items()}


def test_repeated_reads_run_no_sql_and_see_every_commit(served):
    client, db, settings, headers = served
    sql = Statements(db)
    kept = db.change_stamp() is not None  # SQLite; a PostgreSQL run keeps nothing

    def repeat(path: str) -> None:
        """A request and its repeat with no commit in between (the app's own start-up writes, the
        stream list and the job dispatcher's, may land between them: then again)."""
        for _ in range(5):
            stamp = db.change_stamp()
            first, n_first = sql.during(lambda: client.get(path, headers=headers["admin"]))
            again, n_again = sql.during(lambda: client.get(path, headers=headers["admin"]))
            assert first.status_code == again.status_code == 200 and again.content == first.content, path
            if db.change_stamp() == stamp:
                assert n_first > 0 and (n_again == 0 if kept else n_again == n_first), path
                return
        raise AssertionError(f"the database changed during every repeat of {path}")

    for path in ("/v1/athletes", "/v1/athletes/B1/sessions", "/v1/athletes/B1/trends"):
        repeat(path)
    repeat("/v1/sessions/S01/strides?athlete_id=B1&limit=5")

    # a commit from another connection (as from another process): the next answer has it
    other = Database(settings.resolved_database_url)
    try:
        other.ensure_session("B1", "S09", FIRST + dt.timedelta(days=30))
    finally:
        other.dispose()
    athletes = client.get("/v1/athletes", headers=headers["admin"]).json()["items"]
    assert {a["athlete_id"]: a["session_count"] for a in athletes} == {"B1": 4, "B2": 2}
    assert athletes[0]["last_session_date"] == (FIRST + dt.timedelta(days=30)).isoformat()
    sessions = client.get("/v1/athletes/B1/sessions", headers=headers["admin"]).json()["items"]
    assert [s["session_id"] for s in sessions] == ["S01", "S02", "S03", "S09"]


def test_a_rewritten_partition_changes_the_next_answer_without_any_commit(served):
    client, db, settings, headers = served
    before = client.get("/v1/athletes/B1/sessions", headers=headers["admin"]).content
    trends = "/v1/athletes/B1/trends?limit=100"
    trends_before = client.get(trends, headers=headers["admin"]).content
    stamp = db.change_stamp()
    # a batch run rewrites a session's partitions behind the service's back
    write(settings.results_dir, "B1", 2, n=40, seed=7)
    assert db.change_stamp() == stamp  # nothing told the database
    after = client.get("/v1/athletes/B1/sessions", headers=headers["admin"])
    assert after.status_code == 200 and after.content != before
    fresh = client.get(trends, headers=headers["admin"])
    assert fresh.status_code == 200 and fresh.content != trends_before
    # and what is kept now is the new answer
    assert client.get("/v1/athletes/B1/sessions", headers=headers["admin"]).content == after.content
    assert client.get(trends, headers=headers["admin"]).content == fresh.content


def test_a_kept_page_is_only_served_to_keys_that_may_see_it(served):
    client, _db, _settings, headers = served
    team = client.get("/v1/athletes", headers=headers["coach"]).json()["items"]
    assert [a["athlete_id"] for a in team] == ["B1", "B2"]
    own = client.get("/v1/athletes", headers=headers["B2"]).json()["items"]
    assert [a["athlete_id"] for a in own] == ["B2"]
    assert client.get("/v1/athletes", headers=headers["admin"]).json()["items"] == team
    for path in ("/v1/athletes/B1/sessions", "/v1/athletes/B1/trends", "/v1/sessions/S03/strides"):
        assert client.get(path, headers=headers["coach"]).status_code == 200
        assert client.get(path, headers=headers["B2"]).status_code == 404, path
    assert client.get("/v1/sessions/S01/strides", headers=headers["B2"]).status_code == 200


def test_nothing_is_kept_without_a_change_stamp():
    cache = ReadCache(max_entries=2)
    cache.put("a", None, b"x")
    assert cache.get("a", None) is None
    cache.put("a", 1, b"x")
    assert cache.get("a", 1) == b"x" and cache.get("a", 2) is None
    cache.put("b", 1, b"y")
    cache.put("c", 1, b"z")  # full: emptied first
    assert cache.get("a", 1) is None and cache.get("c", 1) == b"z"
    small = ReadCache(max_bytes=10)
    small.put("big", 1, b"x" * 11, 11)  # larger than the whole cache: not kept
    small.put("a", 1, b"x" * 6, 6)
    small.put("b", 1, b"y" * 6, 6)  # over the bytes: emptied first
    assert small.get("big", 1) is None and small.get("a", 1) is None and small.get("b", 1) == b"y" * 6
    for url in ("sqlite://", "sqlite:///:memory:"):  # each connection its own database: no stamp
        assert Database(url).change_stamp() is None
