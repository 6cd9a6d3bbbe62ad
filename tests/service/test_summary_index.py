"""The API's SQL index of stored results (service.summary_index) and the row-group strides reader
(service.strides_page) against the Parquet truth they are built from.

Results reach the served folder three ways (the team batch, upload jobs, live streams), all
through `analytics.sessions_store.write_session`; the index must answer exactly what the Parquet
partitions say right after any of them, and be rebuildable from them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pydantic_core
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from support.api import upload, wait_job

from strideflow.analytics import partitions
from strideflow.analytics.sessions_store import write_session
from strideflow.analytics.trends import KEY_METRICS, compute_trends
from strideflow.benchmarks.api import synthetic_strides
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    FEET,
    FOOT,
    IC_T,
    NEXT_IC_T,
    PRONATION_EXCURSION_DEG,
    REASON,
    SESSION_ID,
    STANCE_SCHEMA,
    STANCE_TIME_S,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
    VALID,
)
from strideflow.hardware.simulator import write_dataset
from strideflow.service import strides_page, summary_index
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.catalog import sync_results
from strideflow.service.queries import read_session_rows, session_fields
from strideflow.service.routes.athletes import TREND_FIELDS
from strideflow.service.settings import ServiceSettings

TEAM = "t1"
FIRST = dt.date(2026, 3, 2)


# --- strides pages ------------------------------------------------------------------------------
def reference_rows(df: pl.DataFrame, foot, t_from, t_to, valid) -> list[dict]:
    """Every matching stride in page order (foot rank, stride index), as the route answered before."""
    lf = df.lazy()
    if foot is not None:
        lf = lf.filter(pl.col(FOOT) == foot)
    if t_from is not None:
        lf = lf.filter(pl.col(IC_T) >= t_from)
    if t_to is not None:
        lf = lf.filter(pl.col(IC_T) <= t_to)
    if valid is not None:
        lf = lf.filter(pl.col(VALID) == valid)
    rank = pl.col(FOOT).replace_strict({f: i for i, f in enumerate(FEET)}, default=len(FEET))
    cols = [c for c in STRIDES_SCHEMA if c in df.columns]
    return as_rows(lf.sort(rank, STRIDE_INDEX).select(cols).collect())


def as_rows(frame: pl.DataFrame) -> list[dict]:
    """Rows as dicts, NaN as None (as the API answers them)."""
    floats = [c for c, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(pl.col(floats).fill_nan(None)).to_dicts()


def read_page(path: Path, *args) -> tuple[list[dict], list | None, int]:
    """`strides_page.read_page_frame` with its page as rows."""
    page, cursor, n_read = strides_page.read_page_frame(path, *args)
    return as_rows(page), cursor, n_read


def all_pages(path: Path, foot, t_from, t_to, valid, limit) -> tuple[list[dict], int]:
    rows, cursor, pages = [], None, 0
    while True:
        page, cursor, _ = read_page(path, foot, t_from, t_to, valid, cursor, limit)
        assert len(page) <= limit
        rows += page
        pages += 1
        assert pages < 10_000
        if cursor is None:
            return rows, pages


def session_strides(n: int, seed: int, athlete="A1", session="S1") -> pl.DataFrame:
    return synthetic_strides(athlete, session, n, np.random.default_rng(seed)).drop(
        "athlete_id", "session_id"
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 120).map(lambda k: 2 * k),
    seed=st.integers(0, 10_000),
    group_rows=st.sampled_from([1, 7, 64, 256]),
    shuffle=st.booleans(),
    nan_share=st.sampled_from([0.0, 0.2]),
    foot=st.sampled_from([None, "left", "right"]),
    window=st.one_of(st.none(), st.tuples(st.floats(0, 60), st.floats(0, 60))),
    valid=st.sampled_from([None, True, False]),
    limit=st.integers(1, 60),
)
def test_strides_pages_match_the_polars_reference(
    n, seed, group_rows, shuffle, nan_share, foot, window, valid, limit
):
    """Any partition (sorted or not, any row-group size, NaN metrics, NaN times) paged through with
    any filters gives exactly the reference rows, each once, in order."""
    df = session_strides(n, seed)
    rng = np.random.default_rng(seed)
    if nan_share:
        nan = rng.random(df.height) < nan_share
        df = df.with_columns(
            pl.when(pl.lit(nan)).then(float("nan")).otherwise(pl.col(c)).alias(c)
            for c in (PRONATION_EXCURSION_DEG, IC_T)
        )
    if shuffle:
        df = df.sample(fraction=1.0, shuffle=True, seed=seed)
    t_from, t_to = (None, None) if window is None else (min(window), max(window))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(partitions, "STRIDES_ROW_GROUP_ROWS", group_rows)
        path = partitions.write_partition(tmp, partitions.STRIDES, df, "A1", "S1")
        got, _ = all_pages(path, foot, t_from, t_to, valid, limit)
    want = reference_rows(df, foot, t_from, t_to, valid)
    assert len(got) == len(want)
    assert got == want


def test_a_page_reads_only_the_row_groups_it_needs(tmp_path):
    df = session_strides(4000, 3)  # 2000 strides per foot, sorted as write_session stores them
    path = partitions.write_partition(tmp_path, partitions.STRIDES, df, "A1", "S1")
    groups = strides_page.pq.ParquetFile(path).metadata.num_row_groups
    assert groups == 4000 // partitions.STRIDES_ROW_GROUP_ROWS + 1
    left = df.filter(pl.col(FOOT) == "left")
    t0 = float(left[IC_T][700])
    page, cursor, read = read_page(path, "left", t0, t0 + 300.0, None, None, 100)
    assert [r[STRIDE_INDEX] for r in page] == list(range(700, 800))
    assert cursor is not None
    # the page's two groups, and at most the one group holding both feet (its statistics span
    # both feet's times and stride indices, so they cannot rule it out)
    assert read <= 3, f"read {read} of {groups} row groups for one page"
    # right foot, first page: the left foot's 7 groups are skipped by their statistics; its first
    # 48 strides share a group with the left foot's last, the page ends in the next
    page, _, read = read_page(path, "right", None, None, None, None, 50)
    assert [r[STRIDE_INDEX] for r in page] == list(range(50)) and read == 2


def test_a_page_written_by_polars_is_the_json_pydantic_core_writes(tmp_path):
    """The route writes a page's items with polars: the same bytes as pydantic-core writing the
    page's dicts (NaN and null as null, float digits, string escapes, a column the file lacks)."""
    df = session_strides(600, 5)
    odd = pl.Series(['a"b\\c', "\u00e9\u4e2d", "\x01\n\t", None, "\u2028/"] * 120)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(float("nan")).otherwise(pl.col(IC_T)).alias(IC_T),
        pl.when(pl.int_range(pl.len()) % 5 == 0)
        .then(None)
        .otherwise(pl.col(PRONATION_EXCURSION_DEG) * 1e-9)
        .alias(PRONATION_EXCURSION_DEG),
        odd.alias(REASON),
    ).drop(ACTIVITY)
    path = partitions.write_partition(tmp_path, partitions.STRIDES, df, "A1", "S1")
    fields = [c for c in STRIDES_SCHEMA if c not in (ATHLETE_ID, SESSION_ID)]
    cursor = None
    while True:
        rows, nxt, _ = read_page(path, None, None, None, None, cursor, 97)
        frame, nxt_frame, _ = strides_page.read_page_frame(path, None, None, None, None, cursor, 97)
        assert nxt_frame == nxt
        want = pydantic_core.to_json([{c: r.get(c) for c in fields} for r in rows], inf_nan_mode="null")
        got = frame.select(pl.col(c) if c in frame.columns else pl.lit(None).alias(c) for c in fields)
        assert got.write_json().encode() == want
        cursor = nxt
        if cursor is None:
            break


def items_pages(path: Path, foot, t_from, t_to, valid, limit) -> int:
    """Page through a partition with `read_items_page` and with `read_page_frame` written as the route
    wrote it before the items file: the same bytes and cursors, page by page; returns the pages."""
    cursor, pages = None, 0
    while True:
        frame, want_next, _ = strides_page.read_page_frame(path, foot, t_from, t_to, valid, cursor, limit)
        want = strides_page.item_frame(frame, "A1", "S1").write_json().encode()
        got, got_next = strides_page.read_items_page(
            path, "A1", "S1", foot, t_from, t_to, valid, cursor, limit
        )
        assert got == want
        assert got_next == want_next
        pages += 1
        if want_next is None:
            return pages
        cursor = want_next


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 120).map(lambda k: 2 * k),
    seed=st.integers(0, 10_000),
    group_rows=st.sampled_from([1, 7, 64, 256]),
    shuffle=st.booleans(),
    foot=st.sampled_from([None, "left", "right"]),
    window=st.one_of(st.none(), st.tuples(st.floats(0, 60), st.floats(0, 60))),
    valid=st.sampled_from([None, True, False]),
    limit=st.integers(1, 60),
)
def test_pages_from_the_items_file_are_the_pages_read_from_parquet(
    n, seed, group_rows, shuffle, foot, window, valid, limit
):
    """Any partition (sorted or not, NaN times and metrics, null validity, odd strings) paged through
    with any filters gives the same bytes and cursors from its items file as from its row groups."""
    df = session_strides(max(n, 2), seed).head(n)
    rng = np.random.default_rng(seed)
    nan = pl.lit(rng.random(df.height) < 0.2)
    df = df.with_columns(
        pl.when(nan).then(float("nan")).otherwise(pl.col(IC_T)).alias(IC_T),
        pl.when(nan).then(None).otherwise(pl.col(PRONATION_EXCURSION_DEG)).alias(PRONATION_EXCURSION_DEG),
        pl.when(pl.int_range(pl.len()) % 9 == 0).then(None).otherwise(pl.col(VALID)).alias(VALID),
        pl.when(pl.int_range(pl.len()) % 4 == 0)
        .then(pl.lit('"\\\n\u2028\u00e9'))
        .otherwise(pl.col(REASON))
        .alias(REASON),
    )
    if shuffle:
        df = df.sample(fraction=1.0, shuffle=True, seed=seed)
    t_from, t_to = (None, None) if window is None else (min(window), max(window))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(partitions, "STRIDES_ROW_GROUP_ROWS", group_rows)
        path = partitions.write_partition(tmp, partitions.STRIDES, df, "A1", "S1")
        items_pages(path, foot, t_from, t_to, valid, limit)
        assert (path.parent / strides_page.ITEMS_FILE).is_file()


def test_the_items_file_is_rebuilt_when_missing_stale_or_damaged(tmp_path):
    """Items never answer for another file than the partition they were built from: a rewritten
    partition, a damaged, truncated or foreign items file are each rebuilt before the page."""
    items = partitions.partition_dir(tmp_path, partitions.STRIDES, "A1", "S1") / strides_page.ITEMS_FILE
    path = partitions.write_partition(tmp_path, partitions.STRIDES, session_strides(300, 1), "A1", "S1")
    assert not items.exists()
    assert items_pages(path, "left", None, None, None, 40) == 4  # built by the first page
    built = items.read_bytes()
    assert strides_page.ensure_items(tmp_path, "A1", "S1") is False  # fresh: left alone
    # the partition rewritten (as every write does, by os.replace): other strides, same page shape
    path = partitions.write_partition(tmp_path, partitions.STRIDES, session_strides(300, 2), "A1", "S1")
    assert items.read_bytes() == built  # stale until read
    items_pages(path, "left", None, None, None, 40)
    assert items.read_bytes() != built
    fresh = items.read_bytes()
    for damaged in (fresh[:-3], fresh[:100], b"", b"not items at all", fresh + b"{}"):
        items.write_bytes(damaged)
        items_pages(path, None, 5.0, 50.0, None, 17)
        assert items.read_bytes() == fresh
    # another session's items copied in
    other = partitions.write_partition(tmp_path, partitions.STRIDES, session_strides(300, 3), "A1", "S2")
    strides_page.read_items_page(other, "A1", "S2", None, None, None, None, None, 10)
    items.write_bytes((other.parent / strides_page.ITEMS_FILE).read_bytes())
    items_pages(path, "right", None, None, True, 33)
    assert items.read_bytes() == fresh
    # a partition gone (deleted session): no strides, whatever items are left beside it
    partitions.delete_partition(tmp_path, partitions.STRIDES, "A1", "S1")
    assert strides_page.read_items_page(path, "A1", "S1", None, None, None, None, None, 10) == (b"[]", None)
    assert strides_page.refresh_items(tmp_path) == 0


# --- session summaries and trends ---------------------------------------------------------------
def write(results: Path, athlete: str, k: int, n: int = 200, seed: int = 0) -> None:
    """Session k of an athlete through the one session write of batch, jobs and live streams."""
    strides = synthetic_strides(athlete, f"S{k:02d}", n, np.random.default_rng([seed, k]))
    date = (FIRST + dt.timedelta(days=9 * k)).isoformat()
    write_session(results, athlete, f"S{k:02d}", [strides], session_date=date)


def truth_sessions(results: Path, athlete: str, session_ids: list[str]) -> dict[str, dict]:
    rows, damaged = read_session_rows(results, athlete, session_ids)
    assert not damaged
    return {sid: session_fields(rows, sid) for sid in session_ids}


def truth_trends(results: Path, athlete: str, metric: str | None) -> list[dict]:
    df = compute_trends(results, athlete_id=athlete, metric=metric)
    floats = [c for c, t in df.schema.items() if t.is_float()]
    rows = df.with_columns(pl.col(floats).fill_nan(None), pl.col("session_date").cast(pl.String)).to_dicts()
    return [{f: r.get(f) for f in TREND_FIELDS} for r in rows]


def api_sessions(client, headers, athlete) -> dict[str, dict]:
    r = client.get(f"/v1/athletes/{athlete}/sessions", headers=headers)
    assert r.status_code == 200, r.text
    keys = ("analysed", "feet", "symmetry_index_pct", "lr_difference_deg")
    return {s["session_id"]: {k: s[k] for k in keys} for s in r.json()["items"]}


def api_trends(client, headers, athlete, metric=None) -> list[dict]:
    params = {"limit": 1000} | ({"metric": metric} if metric else {})
    r = client.get(f"/v1/athletes/{athlete}/trends", headers=headers, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    return r.json()["items"]


def assert_api_is_truth(client, headers, results: Path, athlete: str) -> None:
    got = api_sessions(client, headers, athlete)
    assert got == truth_sessions(results, athlete, sorted(got))
    for metric in (None, PRONATION_EXCURSION_DEG, STANCE_TIME_S):
        assert api_trends(client, headers, athlete, metric) == truth_trends(results, athlete, metric)


def index_rows(db, model, athlete: str) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.athlete_id == athlete))


@pytest.mark.slow
def test_the_index_answers_what_the_partitions_say_after_every_kind_of_write(tmp_path):
    settings_ = ServiceSettings(data_dir=tmp_path / "data")
    results = settings_.results_dir
    results.mkdir(parents=True)
    app = create_app(settings_)
    with TestClient(app) as client:
        db = app.state.db
        headers = {"Authorization": f"Bearer {create_key(db, TEAM, 'admin')}"}

        # 1. the team batch writes into the served folder, then its sessions are registered
        for k in range(1, 5):
            write(results, "B1", k)
        assert sync_results(db, results, TEAM) == 4
        assert index_rows(db, summary_index.SessionSummary, "B1") == 4  # indexed when registered
        assert index_rows(db, summary_index.TrendSeries, "B1") > len(KEY_METRICS)
        assert_api_is_truth(client, headers, results, "B1")

        # 2. a session rewritten in place (a re-run, or a live stream storing its strides so far):
        # nobody tells the index, which must notice on the next read
        before = api_sessions(client, headers, "B1")["S02"]
        write(results, "B1", 2, n=120, seed=99)
        assert api_sessions(client, headers, "B1")["S02"] != before
        assert_api_is_truth(client, headers, results, "B1")

        # 3. a new session appears on disk (batch of a later day) and is registered
        write(results, "B1", 5)
        sync_results(db, results, TEAM)
        assert_api_is_truth(client, headers, results, "B1")

        # 4. the index is only a cache: dropped, it is rebuilt from the partitions; the answer that
        # rebuilt it has the bytes the cached rows give afterwards
        with db.session() as s:
            s.execute(delete(summary_index.SessionSummary))
            s.execute(delete(summary_index.TrendSeries))
        first = client.get("/v1/athletes/B1/sessions", headers=headers)
        assert first.status_code == 200 and index_rows(db, summary_index.SessionSummary, "B1") == 5
        assert client.get("/v1/athletes/B1/sessions", headers=headers).content == first.content
        assert_api_is_truth(client, headers, results, "B1")
        assert summary_index.refresh(db, results) == 0  # the reads above rebuilt everything

        # 5. an upload: the job writes, indexes, and the API shows the new session
        dataset = tmp_path / "sim"
        write_dataset(dataset, athletes=1, minutes=0.3, seed=4, activity="walk")
        db.ensure_athlete(TEAM, "A001")
        r = upload(client, headers, dataset / "A001" / "S01" / "left.parquet", foot="left")
        assert r.status_code == 202, r.text
        assert wait_job(client, headers, r.json()["job_id"])["status"] == "done"
        assert index_rows(db, summary_index.SessionSummary, "A001") == 1
        got = api_sessions(client, headers, "A001")
        assert got["S01"]["analysed"] and got["S01"]["feet"][0]["foot"] == "left"
        assert_api_is_truth(client, headers, results, "A001")

        # 6. a partition removed behind the service's back: not analysed any more, no trend rows
        for table in partitions.TABLES:
            partitions.delete_partition(results, table, "B1", "S05")
        assert api_sessions(client, headers, "B1")["S05"]["analysed"] is False
        assert_api_is_truth(client, headers, results, "B1")


def test_the_service_tests_use_the_database_they_are_given(tmp_path):
    """Under STRIDEFLOW_TEST_DATABASE_URL (.ci/run's PostgreSQL pass) the service's databases are
    really on that server; without it, the embedded SQLite file of the data folder."""
    from conftest import TEST_DATABASE_URL

    from strideflow.service.db import Database

    db = Database(ServiceSettings(data_dir=tmp_path).resolved_database_url)
    try:
        db.create_all()
        db.ensure_athlete(TEAM, "A1")
        assert db.athlete_team("A1") == TEAM
        expected = "postgresql" if TEST_DATABASE_URL else "sqlite"
        assert db.engine.dialect.name == expected
    finally:
        db.dispose()


class OneStridePerPacketAnalyzer:
    """Live analyzer double: every packet of 10 samples closes one stride (ic_t its first sample,
    pronation excursion the mean gyr_x), so what the hub stores is known packet by packet."""

    def __init__(self, hello):
        self.keys = {ATHLETE_ID: hello.athlete_id, SESSION_ID: hello.session_id, FOOT: hello.foot}
        self.n = 0
        self.strides_ = pl.DataFrame(schema=STRIDES_SCHEMA)

    def push(self, block):
        from strideflow.analytics.live_analyzer import LiveOutput

        t = np.asarray(block.t_s)
        row = {**self.keys, STRIDE_INDEX: self.n, IC_T: float(t[0]), NEXT_IC_T: float(t[-1]), VALID: True}
        row[PRONATION_EXCURSION_DEG] = float(np.mean(np.asarray(block.gyr_dps)[:, 0]))
        self.n += 1
        new = pl.DataFrame([row], schema=STRIDES_SCHEMA)
        self.strides_ = pl.concat([self.strides_, new])
        return LiveOutput(new, pl.DataFrame(schema=STANCE_SCHEMA))

    def finish(self):
        from strideflow.analytics.live_analyzer import LiveOutput

        return LiveOutput(pl.DataFrame(schema=STRIDES_SCHEMA), pl.DataFrame(schema=STANCE_SCHEMA))


def live_app(data_dir: Path):
    """The service app whose live hub (set before its first use) runs the analyzer double."""
    from strideflow.service.live import WAL_DIRNAME, LiveHub

    app = create_app(ServiceSettings(data_dir=data_dir))
    app.state.live = LiveHub(
        data_dir / WAL_DIRNAME,
        data_dir / "results",
        analyzer_factory=OneStridePerPacketAnalyzer,
        store_interval_s=0.05,
    )
    return app


def stored_strides(results: Path, athlete: str, session: str) -> int:
    """Rows of a strides partition that a live hub may be replacing or appending to: read from the
    open files that hold them (`partitions.open_parts`: `part-0.parquet` or the live parts)."""
    folder = partitions.partition_dir(results, partitions.STRIDES, athlete, session)
    with contextlib.ExitStack() as stack:
        return sum(
            strides_page.pq.ParquetFile(fh).metadata.num_rows for fh in partitions.open_parts(folder, stack)
        )


def eventually(check, timeout_s: float = 30.0) -> None:
    """Run `check` until it passes (its last AssertionError or IndexError after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except (AssertionError, IndexError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def live_packet(seq: int) -> bytes:
    from strideflow.hardware.packets import encode_packet

    counts = np.zeros((10, 6), np.int16)
    counts[:, 2] = 2048
    counts[:, 3] = seq  # gyr_x: a known value per stride
    return encode_packet("pod-L", "left", seq, int(seq * 10 / 100.0 * 1e6), counts, 204.8, 16.0)


def test_a_live_stream_s_stored_results_are_what_the_api_answers(tmp_path):
    """A live stream rewrites its session's partitions as strides close (and at its end); the
    session list and trends follow each rewrite without being told."""
    results = tmp_path / "results"
    app = live_app(tmp_path)
    with TestClient(app) as client:
        db = app.state.db
        headers = {"Authorization": f"Bearer {create_key(db, TEAM, 'admin')}"}
        db.ensure_athlete(TEAM, "A1")
        hello = {"athlete_id": "A1", "session_id": "S1", "foot": "left", "device_id": "pod-L"}
        counts = []
        with client.websocket_connect("/v1/stream", headers=headers) as ws:
            ws.send_json({**hello, "sampling_rate_hz": 100.0})
            ws.receive_json()
            for seq in range(12):
                ws.send_bytes(live_packet(seq))
                assert ws.receive_json() == {"ack": seq}
                if seq % 4 == 3:
                    deadline = time.monotonic() + 30
                    while True:  # the hub stores every 0.05 s
                        if stored_strides(results, "A1", "S1") >= seq + 1:
                            break
                        assert time.monotonic() < deadline, "the live hub did not store its strides"
                        time.sleep(0.05)
                    # the hub writes the strides partition, then the sessions one: the API follows
                    # the files once both are written (read between the two, they disagree)
                    eventually(lambda: assert_api_is_truth(client, headers, results, "A1"))
                    counts.append(api_sessions(client, headers, "A1")["S1"]["feet"][0]["stride_count_all"])
            ws.send_json({"end": True})
            assert ws.receive_json()["ended"] is True
        assert_api_is_truth(client, headers, results, "A1")
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
