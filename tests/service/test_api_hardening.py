"""Issue 13: what attacking the running service found, each as a regression test.

- a 40-million-row Parquet "bomb" of ~1.5 MB is refused from its metadata (413) with the server's
  memory growing by less than 100 MB; CSV and gzip limits are counted without decoding;
- every id-taking route and the WebSocket hello refuse random bad ids (unicode, separators,
  control characters, '..', very long) with 4xx/4400 and write nothing to disk or the database;
  a bad session row stored by an older version is skipped, not a 422 for the whole list;
- a damaged result partition answers 503 naming the athlete and session; the rest still works;
- /health says nothing team-specific without a key;
- the server drops a client that stops sending its request (read timeout).
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import string
import threading
import time
import urllib.parse

import numpy as np
import polars as pl
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.websockets import WebSocketDisconnect
from support.api import wait_job

from strideflow.analytics import partitions
from strideflow.analytics.sessions_store import write_session
from strideflow.hardware import schema as S
from strideflow.ingest.limits import FileLimits, FileTooLarge, check_file_limits, measure_file
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.db import Athlete, Job, RecordingRow, SessionRow, Team
from strideflow.service.settings import ServiceSettings

MB = 1e6


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def small_csv(seconds: float = 2.0, rate_hz: float = 100.0) -> bytes:
    """A valid generic CSV of a still foot."""
    n = int(seconds * rate_hz)
    rows = [f"{i / rate_hz:.4f},0.1,0.0,9.81,0.5,-0.3,0.2" for i in range(n)]
    return ("t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n" + "\n".join(rows) + "\n").encode()


@pytest.fixture
def service(tmp_path):
    """(client, app, keys) of a fresh app with athlete A1 in team T1."""
    app = create_app(ServiceSettings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        db = app.state.db
        db.ensure_athlete("T1", "A1")
        keys = {"admin": create_key(db, "T1", "admin"), "other": create_key(db, "T2", "admin")}
        yield client, app, keys


# --- 1. decompression bombs ------------------------------------------------------------------------


def write_bomb(path, rows: int = 40_000_000) -> None:
    """The attack's file: `rows` constant samples rows, zstd level 22, one row group (~1.5 MB).

    Every column shares one constant array (strings as a one-entry dictionary), so building it
    costs ~0.5 GB for a moment; stored without the Arrow schema so that readers see plain columns.
    """
    ones = pa.array(np.ones(rows))
    index = pa.array(np.zeros(rows, np.int8))
    keys = [pa.DictionaryArray.from_arrays(index, pa.array([v])) for v in ("A1", "S1", "left")]
    names = [S.ATHLETE_ID, S.SESSION_ID, S.FOOT, S.T, *S.ACC, *S.GYR]
    table = pa.table(keys + [ones] * 7, names=names)
    pq.write_table(
        table, path, compression="zstd", compression_level=22, row_group_size=rows, store_schema=False
    )


class PeakRss:
    """Largest resident memory of this process while the block runs, sampled every 5 ms."""

    def __enter__(self) -> PeakRss:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MB


@pytest.mark.slow
def test_parquet_bomb_is_refused_from_its_metadata_in_bounded_memory(service, tmp_path):
    client, app, keys = service
    bomb = tmp_path / "bomb.parquet"
    write_bomb(bomb)
    assert bomb.stat().st_size < 2 * MB
    body = bomb.read_bytes()
    with PeakRss() as rss:
        r = client.post(
            "/v1/recordings",
            headers=auth(keys["admin"]),
            files={"file": ("bomb.parquet", body)},
            data={"athlete_id": "A1", "session_id": "S1"},
        )
    assert rss.growth_mb < 100, f"server memory grew by {rss.growth_mb:.0f} MB ({r.status_code})"
    assert r.status_code == 413, r.text
    assert "bomb.parquet" in r.json()["detail"] and "40000000 rows" in r.json()["detail"]
    print(f"bomb of {len(body) / MB:.2f} MB refused; peak RSS growth {rss.growth_mb:.1f} MB")
    uploads = app.state.settings.uploads_dir
    assert [p for p in uploads.rglob("*") if p.is_file()] == []
    with app.state.db.session() as s:
        assert s.scalar(select(func.count()).select_from(RecordingRow)) == 0
        assert s.scalar(select(func.count()).select_from(SessionRow)) == 0


def test_parquet_limits_come_from_the_metadata(tmp_path):
    path = tmp_path / "wide.parquet"
    pl.DataFrame({f"c{i}": [1.0, 2.0] for i in range(300)}).write_parquet(path)
    size = measure_file(path)
    assert (size.kind, size.rows, size.columns) == ("parquet", 2, 300)
    with pytest.raises(FileTooLarge, match="300 columns"):
        check_file_limits(path, FileLimits(max_columns=256))
    # decoded bytes: at least rows x in-memory widths even when the encoded pages are tiny
    long = tmp_path / "long.parquet"
    pq.write_table(pa.table({"x": np.zeros(200_000)}), long, use_dictionary=True)  # RLE: tiny pages
    assert pq.ParquetFile(long).metadata.row_group(0).total_byte_size < 10_000
    assert measure_file(long).decoded_bytes == 200_000 * 8
    with pytest.raises(FileTooLarge, match="decodes to 1600000 bytes"):
        check_file_limits(long, FileLimits(max_decoded_bytes=1_000_000))


def test_csv_and_gzip_limits_are_counted_without_decoding(tmp_path):
    csv = tmp_path / "walk.csv"
    csv.write_bytes(small_csv(seconds=10.0))  # 1000 rows, 7 columns
    size = measure_file(csv)
    assert (size.kind, size.rows, size.columns, size.decoded_bytes) == ("csv", 1000, 7, 1000 * 7 * 8)
    with pytest.raises(FileTooLarge, match="walk.csv: 1000 rows"):
        check_file_limits(csv, FileLimits(max_rows=999))
    # a gzip bomb: 50 MB of one repeated line in ~50 kB; inflated in chunks, only up to the limit
    bomb = tmp_path / "bomb.csv.gz"
    line = b"0.0,0.1,0.0,9.81,0.5,-0.3,0.2\n"
    bomb.write_bytes(gzip.compress(b"t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n" + line * 1_700_000))
    assert bomb.stat().st_size < 0.5 * MB
    limits = FileLimits(max_rows=10**9, max_decoded_bytes=4 * 2**20)
    size = measure_file(bomb, limits)
    assert size.kind == "gzip" and size.columns == 7
    assert limits.max_decoded_bytes < size.decoded_bytes <= limits.max_decoded_bytes + 2**20 + 1
    with pytest.raises(FileTooLarge, match="at least"):
        check_file_limits(bomb, limits)


def test_upload_over_the_row_limit_is_413_naming_the_limit(tmp_path):
    app = create_app(ServiceSettings(data_dir=tmp_path / "data", max_upload_rows=100))
    with TestClient(app) as client:
        app.state.db.ensure_athlete("T1", "A1")
        key = create_key(app.state.db, "T1", "admin")
        r = client.post(
            "/v1/recordings",
            headers=auth(key),
            files={"file": ("walk_left.csv", small_csv())},
            data={"athlete_id": "A1", "session_id": "S1"},
        )
    assert r.status_code == 413 and "200 rows" in r.json()["detail"] and "limit is 100" in r.json()["detail"]


# --- 2. ids -----------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
_core = st.text(alphabet=_ALNUM, min_size=1, max_size=12)
# one character outside [A-Za-z0-9_.-]: unicode letters and digits, separators, controls, '/', '\', NUL
_foreign = st.characters(
    blacklist_characters=_ALNUM + "_.-", blacklist_categories=("Cs",), min_codepoint=0, max_codepoint=0x2FFFF
)
BAD_IDS = st.one_of(
    st.tuples(_core, _foreign, _core).map("".join),
    st.tuples(_core, _foreign).map("".join),  # e.g. a trailing newline
    st.tuples(_core, _core).map(lambda t: f"{t[0]}..{t[1]}"),
    _core.map(lambda c: f"{c}.."),
    st.tuples(st.sampled_from("._-"), _core).map("".join),  # must start with a letter or digit
    st.text(alphabet=_ALNUM, min_size=129, max_size=400),
    st.sampled_from(
        ["", ".", "..", "../etc", "a/b", "a\\b", "a\x00b", "Z..", "WSNL\n", "A1\r\n", "é", "Ａ1"]
    ),
)


def _stored(app) -> tuple:
    """Everything an id could have created: files under the data folder and the database rows."""
    data_dir = app.state.settings.data_dir
    files = sorted(
        str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if not p.name.startswith("strideflow.db")
    )
    with app.state.db.session() as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(t)) for t in (Team, Athlete, SessionRow, Job)
        )
    return files, counts


def _id_requests(bad: str) -> list[tuple[str, str, dict]]:
    in_query = [("GET", "/v1/sessions/S1/strides", {"params": {"athlete_id": bad}})]
    if bad in ("", ".", ".."):  # as a path segment these name other routes (URL normalisation)
        return in_query
    q = urllib.parse.quote(bad, safe="")
    return in_query + [
        ("GET", f"/v1/athletes/{q}", {}),
        ("GET", f"/v1/athletes/{q}/sessions", {}),
        ("GET", f"/v1/athletes/{q}/trends", {}),
        ("GET", f"/v1/sessions/{q}", {}),
        ("GET", f"/v1/sessions/{q}/strides", {}),
        ("GET", f"/v1/sessions/{q}/curves", {}),
        ("GET", f"/v1/sessions/{q}/flags", {}),
        ("GET", f"/v1/jobs/{q}", {}),
    ]


@pytest.fixture(scope="module")
def id_service(tmp_path_factory):
    app = create_app(ServiceSettings(data_dir=tmp_path_factory.mktemp("ids") / "data"))
    with TestClient(app) as client:
        app.state.db.ensure_athlete("T1", "A1")
        yield client, app, create_key(app.state.db, "T1", "admin")


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(bad=BAD_IDS)
def test_bad_ids_are_refused_everywhere_and_store_nothing(id_service, bad):
    client, app, key = id_service
    before = _stored(app)
    for athlete, session in ((bad, "S1"), ("A1", bad)):
        r = client.post(
            "/v1/recordings",
            headers=auth(key),
            files={"file": ("walk_left.csv", small_csv())},
            data={"athlete_id": athlete, "session_id": session},
        )
        assert 400 <= r.status_code < 500 and r.status_code != 409, (athlete, session, r.text)
        assert "detail" in r.json()
        hello = {"athlete_id": athlete, "session_id": session, "foot": "left", "device_id": "pod-L"}
        with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
            ws.send_json({**hello, "sampling_rate_hz": 100.0})
            msg = ws.receive_json()
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == msg["code"] == 4400, (athlete, session, msg)
    for method, url, kwargs in _id_requests(bad):
        r = client.request(method, url, headers=auth(key), **kwargs)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
    assert _stored(app) == before


def test_stored_bad_session_row_is_skipped_and_logged_not_a_broken_list(service, caplog):
    """A row an older version stored from a hello with session_id 'Z..' answered 422 for the whole
    list, for every key, also after a restart."""
    client, app, keys = service
    app.state.db.ensure_session("A1", "S1")
    with app.state.db.session() as s:  # as the old code stored it, past every check
        s.add(SessionRow(athlete_id="A1", session_id="Z.."))
        s.add(SessionRow(athlete_id="A1", session_id="WSNL\n"))
    r = client.get("/v1/athletes/A1/sessions", headers=auth(keys["admin"]))
    assert r.status_code == 200, r.text
    assert [i["session_id"] for i in r.json()["items"]] == ["S1"]
    assert any("Z.." in rec.getMessage() for rec in caplog.records if rec.levelname == "WARNING")


# --- 3. damaged partitions, /health ----------------------------------------------------------------


def _strides(athlete: str, session: str, n: int = 6) -> pl.DataFrame:
    rng = np.random.default_rng(len(session))
    rows = []
    for foot in S.FEET:
        for i in range(n):
            rows.append(
                {
                    S.ATHLETE_ID: athlete,
                    S.SESSION_ID: session,
                    S.FOOT: foot,
                    S.STRIDE_INDEX: i,
                    S.IC_T: 1.1 * i,
                    S.NEXT_IC_T: 1.1 * (i + 1),
                    S.STRIDE_TIME_S: 1.1,
                    S.PRONATION_EXCURSION_DEG: float(rng.normal(8.0, 1.0)),
                    S.VALID: True,
                }
            )
    return pl.DataFrame(rows, schema=S.STRIDES_SCHEMA)


def test_damaged_partition_is_503_naming_it_and_the_rest_still_works(service):
    client, app, keys = service
    results = app.state.settings.results_dir
    for session, date in (("S1", "2025-01-01"), ("S2", "2025-01-08")):
        write_session(results, "A1", session, [_strides("A1", session)], session_date=date)
        app.state.db.ensure_session("A1", session)
    for table in (partitions.SESSIONS, partitions.STRIDES):
        part = partitions.partition_dir(results, table, "A1", "S2") / partitions.PART_FILE
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated
    h = auth(keys["admin"])
    r = client.get("/v1/athletes/A1/sessions", headers=h)
    assert r.status_code == 200, r.text
    items = {i["session_id"]: i for i in r.json()["items"]}
    assert items["S1"]["analysed"] and items["S1"]["results_error"] is None
    assert not items["S2"]["analysed"] and items["S2"]["results_error"]
    for url in ("/v1/sessions/S2", "/v1/sessions/S2/strides", "/v1/athletes/A1/trends"):
        r = client.get(url, headers=h, params={"athlete_id": "A1"} if "sessions/" in url else {})
        assert r.status_code == 503, (url, r.text)
        assert "'A1'" in r.json()["detail"] and "'S2'" in r.json()["detail"], r.text
    r = client.get("/v1/sessions/S1/strides", headers=h, params={"athlete_id": "A1"})
    assert r.status_code == 200 and len(r.json()["items"]) == 12


def test_health_shows_nothing_team_specific_without_a_key(service):
    client, app, keys = service
    # stopped before the job is added: a runner still polling could claim it first (seen once under load)
    app.state.jobs.stop()
    with app.state.db.session() as s:
        s.add(SessionRow(athlete_id="A1", session_id="S1"))
        s.flush()
        s.add(Job(id="j" * 32, athlete_id="A1", session_id="S1", status="queued"))
    anonymous = client.get("/health").json()
    assert (
        anonymous["status"] == "ok" and anonymous["jobs_queued"] is None and anonymous["jobs_running"] is None
    )
    assert client.get("/health", headers=auth("sf_invalid")).json()["jobs_queued"] is None
    assert client.get("/health", headers=auth(keys["other"])).json()["jobs_queued"] == 0
    assert client.get("/health", headers=auth(keys["admin"])).json()["jobs_queued"] == 1


# --- 4. read timeout ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_server_drops_a_client_that_stops_sending_its_request(tmp_path, monkeypatch):
    from strideflow.benchmarks.stream import Server

    monkeypatch.setenv("STRIDEFLOW_REQUEST_READ_TIMEOUT_S", "1")  # read by `strideflow serve`'s settings
    with Server(tmp_path / "data") as server:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            assert sock.recv(1024) == b""  # closed by the server, long before the socket timeout
        waited = time.monotonic() - t0
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    print(f"connection closed after {waited:.1f} s (timeout 1 s)")


def _read_to_close(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


@pytest.mark.slow
def test_request_heads_are_bounded_however_they_arrive(tmp_path):
    """llhttp (httptools) bounds no head: the server does, at 64 KiB, whether the head comes in one
    read, never ends, or follows an answered request on the same connection; a body of any size
    after a small head is not a head; pipelined requests are each answered."""
    from strideflow.benchmarks.stream import Server
    from strideflow.service.server import MAX_HEAD_BYTES

    refused = b"HTTP/1.1 400 "
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n"
    with Server(tmp_path / "data") as server:

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", server.port), timeout=30)

        with connect() as sock:  # one read, just under the limit
            sock.sendall(head + b"X-Big: " + b"a" * (MAX_HEAD_BYTES - 200) + b"\r\nConnection: close\r\n\r\n")
            assert _read_to_close(sock).startswith(b"HTTP/1.1 200 ")
        with connect() as sock:  # one read, over it
            sock.sendall(head + b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
            answer = _read_to_close(sock)
            assert answer.startswith(refused) and answer.endswith(b"Invalid HTTP request received."), answer
        with connect() as sock:  # a header that never ends, 8 KiB at a time
            sock.sendall(head + b"X-Big: ")
            sent = 0
            with contextlib.suppress(OSError):  # the server closes while the client still sends
                while sent < 4 * MAX_HEAD_BYTES:
                    sock.sendall(b"a" * 8192)
                    sent += 8192
                    time.sleep(0.005)
            assert _read_to_close(sock).startswith(refused)  # while the head had not ended
        with connect() as sock:  # a small answered request, then a huge head on the same connection
            sock.sendall(head + b"\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            sock.sendall(head + b"X-Big: " + b"a" * (2 * MAX_HEAD_BYTES) + b"\r\n\r\n")
            assert _read_to_close(sock).startswith(refused)
        with connect() as sock:  # a 300 kB body after a small head, in one send: not a head
            body = b"x" * 300_000
            sock.sendall(
                b"POST /v1/recordings HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
            assert sock.recv(65536).startswith(b"HTTP/1.1 401 ")  # no key
        with connect() as sock:  # two pipelined requests in one send
            sock.sendall(head + b"\r\n" + head + b"Connection: close\r\n\r\n")
            assert _read_to_close(sock).count(b"HTTP/1.1 200 ") == 2


# --- 5. one source of results per session ----------------------------------------------------------


@pytest.mark.slow
def test_upload_into_a_batch_session_is_409_or_replaces_only_its_foot(tmp_path):
    """Before: the upload's job replaced the whole session (214 batch strides of both feet became
    30 of the left), and a later `strideflow batch` skipped the session as unchanged."""
    from strideflow.analytics.batch import BatchSettings, TeamBatch
    from strideflow.hardware.simulator import write_dataset
    from strideflow.service.catalog import sync_results

    dataset = tmp_path / "ds"
    write_dataset(dataset, athletes=1, minutes=1.0, seed=7, activity="walk")
    settings = ServiceSettings(data_dir=tmp_path / "data")
    results = settings.results_dir
    first = TeamBatch(BatchSettings(workers=1)).run(dataset, results).summary_
    assert first.sessions_failed == 0
    batch = partitions.read_partition(results, partitions.STRIDES, "A001", "S01")
    assert set(batch[S.FOOT].unique()) == {"left", "right"}
    app = create_app(settings)
    with TestClient(app) as client:
        sync_results(app.state.db, results, "T1")
        h = auth(create_key(app.state.db, "T1", "admin"))
        left = dataset / "A001" / "S01" / "left.parquet"

        def upload(**extra):
            return client.post(
                "/v1/recordings",
                headers=h,
                files={"file": ("left.parquet", left.read_bytes())},
                data={"athlete_id": "A001", "session_id": "S01", "foot": "left", **extra},
            )

        r = upload()
        assert r.status_code == 409 and "team batch" in r.json()["detail"], r.text
        assert "replace=true" in r.json()["detail"]
        assert partitions.read_partition(results, partitions.STRIDES, "A001", "S01").equals(batch)
        r = upload(replace="true")
        assert r.status_code == 202, r.text
        job = wait_job(client, h, r.json()["job_id"], timeout_s=240.0)
        assert job["status"] == "done", job
        assert any("kept the team batch's results of the right foot" in w for w in job["warnings"])
    stored = partitions.read_partition(results, partitions.STRIDES, "A001", "S01")
    cols = [S.FOOT, S.STRIDE_INDEX, S.IC_T, S.PRONATION_EXCURSION_DEG]
    right = pl.col(S.FOOT) == "right"
    assert (
        stored.filter(right)
        .select(cols)
        .sort(S.STRIDE_INDEX)
        .equals(batch.filter(right).select(cols).sort(S.STRIDE_INDEX))
    ), "the batch's right foot is kept as it was"
    assert stored.filter(~right).height > 0  # the left foot now comes from the upload's job
    sessions = partitions.read_partition(results, partitions.SESSIONS, "A001", "S01")
    assert set(sessions[S.FOOT]) == {"left", "right"}
    # The batch neither skips the session silently nor overwrites it: it reports who owns it.
    again = TeamBatch(BatchSettings(workers=1)).run(dataset, results).summary_
    conflicts = [f for f in again.failures if f["error_type"] == "SourceConflict"]
    assert conflicts and all("source: upload" in f["error"] and "S01" in f["error"] for f in conflicts)
    assert partitions.read_partition(results, partitions.STRIDES, "A001", "S01").equals(stored)
