"""WS /v1/stream and /v1/stream/subscribe in process: auth, acks after the log, duplicates, gaps, resume,
per-stride push with role checks, results stored, state rebuilt from the log by a new app.

The stride analyzer here is a test double (one "stride" per 100 samples, its metric the mean of
gyr_x over them), so these tests check the transport and bookkeeping exactly; the real live
analysis is checked end to end in test_stream_e2e.py.
"""

from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager

import numpy as np
import polars as pl
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from strideflow.analytics.batch import SOURCE, STREAM_SOURCE, read_marker
from strideflow.analytics.live_analyzer import LiveOutput
from strideflow.analytics.partitions import SESSIONS, STRIDES, read_partition
from strideflow.hardware import schema as S
from strideflow.hardware.packets import encode_packet
from strideflow.ingest.wal import read_wal, wal_path
from strideflow.service.auth import create_key
from strideflow.service.db import Database
from strideflow.service.live import WAL_DIRNAME, LiveHub
from strideflow.service.routes import stream as stream_routes
from strideflow.service.routes import streams as streams_routes
from strideflow.service.settings import ServiceSettings

FS = 100.0
N_PER_PACKET = 10
STRIDE_SAMPLES = 100


class CountingAnalyzer:
    """Test double: closes a "stride" every STRIDE_SAMPLES samples; push returns the new ones.

    Half way through each, its provisional "stance" row (ic_t, its metric so far) is in
    the stances push returns, as `analytics.live_analyzer.LiveStrideAnalyzer` gives it at a toe-off.
    """

    def __init__(self, hello):
        self.keys = (hello.athlete_id, hello.session_id, hello.foot)
        self.t: list[float] = []
        self.gx: list[float] = []
        self.strides_ = pl.DataFrame(schema=S.STRIDES_SCHEMA)
        self._new_stances = pl.DataFrame(schema=S.STANCE_SCHEMA)

    def _row(self, i: int) -> dict:
        t = self.t[i * STRIDE_SAMPLES : (i + 1) * STRIDE_SAMPLES]
        g = self.gx[i * STRIDE_SAMPLES : (i + 1) * STRIDE_SAMPLES]
        return {
            S.ATHLETE_ID: self.keys[0],
            S.SESSION_ID: self.keys[1],
            S.FOOT: self.keys[2],
            S.STRIDE_INDEX: i,
            S.IC_T: t[0],
            S.NEXT_IC_T: t[-1],
            S.PRONATION_EXCURSION_DEG: float(np.mean(g)),
            S.VALID: True,
        }

    def push(self, block):
        t_s, gyr_dps = block.t_s, block.gyr_dps
        done = len(self.t) // STRIDE_SAMPLES
        half = (len(self.t) + STRIDE_SAMPLES // 2) // STRIDE_SAMPLES
        self.t.extend(np.asarray(t_s).tolist())
        self.gx.extend(np.asarray(gyr_dps)[:, 0].tolist())
        rows = [self._row(i) for i in range(done, len(self.t) // STRIDE_SAMPLES)]
        new = pl.DataFrame(rows, schema=S.STRIDES_SCHEMA) if rows else pl.DataFrame(schema=S.STRIDES_SCHEMA)
        self.strides_ = pl.concat([self.strides_, new])
        halves = range(half, (len(self.t) + STRIDE_SAMPLES // 2) // STRIDE_SAMPLES)
        stances = [
            {
                **{k: v for k, v in self._row(i).items() if k in S.STANCE_SCHEMA},
                S.PRONATION_EXCURSION_DEG: float(
                    np.mean(self.gx[i * STRIDE_SAMPLES :][: STRIDE_SAMPLES // 2])
                ),
            }
            for i in halves
        ]
        self._new_stances = pl.DataFrame(stances, schema=S.STANCE_SCHEMA)
        return LiveOutput(new, self._new_stances)

    def finish(self):
        return LiveOutput(pl.DataFrame(schema=S.STRIDES_SCHEMA), pl.DataFrame(schema=S.STANCE_SCHEMA))


def make_app(data_dir) -> FastAPI:
    settings = ServiceSettings(data_dir=data_dir)

    @asynccontextmanager
    async def lifespan(app):
        settings.results_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        db.create_all()
        app.state.db = db
        yield
        db.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.settings = settings
    app.state.live = LiveHub(
        settings.data_dir / WAL_DIRNAME,
        settings.results_dir,
        analyzer_factory=CountingAnalyzer,
        store_interval_s=0.05,
    )
    app.include_router(stream_routes.router)
    app.include_router(streams_routes.router)
    return app


@pytest.fixture
def service(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app) as client:
        db = app.state.db
        keys = {
            "admin": create_key(db, "T1", "admin"),
            "coach": create_key(db, "T1", "coach"),
            "a1": create_key(db, "T1", "athlete", "A1"),
            "other_admin": create_key(db, "T2", "admin"),
        }
        for team, athlete in (("T1", "A2"), ("T2", "B1")):  # streams only for registered athletes
            db.ensure_athlete(team, athlete)
        yield client, keys, tmp_path


def packet(seq: int, foot: str = "left", device: str = "pod-L") -> bytes:
    counts = np.zeros((N_PER_PACKET, 6), np.int16)
    counts[:, 3] = seq  # gyr_x counts: the packet's number, so each stride's mean is known
    counts[:, 2] = 2048
    return encode_packet(device, foot, seq, int(seq * N_PER_PACKET / FS * 1e6), counts, 204.8, 16.0)


def hello(**kw) -> dict:
    return {
        "athlete_id": "A1",
        "session_id": "S1",
        "foot": "left",
        "device_id": "pod-L",
        "sampling_rate_hz": FS,
        **kw,
    }


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def closed_with(ws) -> tuple[int, dict]:
    msg = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as exc:
        ws.receive_json()
    return exc.value.code, msg


@pytest.mark.parametrize(
    ("key", "change", "code", "text"),
    [
        (None, {}, 4401, "missing API key"),
        ("sf_nope", {}, 4401, "invalid API key"),
        ("coach", {}, 4403, "read-only"),
        ("a1", {"athlete_id": "A2"}, 4403, "only their own"),
        ("other_admin", {}, 4403, "not an athlete of this key's team"),
        ("admin", {"foot": "middle"}, 4400, "column foot"),
        ("admin", {"sampling_rate_hz": None}, 4400, "column sampling_rate_hz"),
    ],
)
def test_refusals_close_with_a_code_and_a_message(service, key, change, code, text):
    client, keys, _ = service
    headers = auth(keys.get(key, key)) if key else {}
    # Make A1 exist in team T1 first, so the other team's admin cannot claim it.
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        ws.receive_json()
    with client.websocket_connect("/v1/stream", headers=headers) as ws:
        ws.send_json(hello(**change))
        got_code, msg = closed_with(ws)
    assert got_code == code and msg["code"] == code
    assert text in msg["error"]


def test_key_in_first_message_and_full_stream_cycle(service):
    client, keys, data_dir = service
    with client.websocket_connect("/v1/stream/subscribe", headers=auth(keys["coach"])) as coach_sub:
        subscribed = coach_sub.receive_json()["subscribed"]
        assert subscribed.pop("server_time") == pytest.approx(time.time(), abs=60)
        assert subscribed == {"team_id": "T1", "athlete_id": None}
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_json({"key": keys["a1"]})
            ws.send_json(hello())
            assert ws.receive_json() == {"resume_from": None, "gaps": [], "ended": False}
            for seq in range(12):
                ws.send_bytes(packet(seq))
                assert ws.receive_json() == {"ack": seq}
            ws.send_bytes(packet(11))
            assert ws.receive_json() == {"ack": 11, "duplicate": True}
            ws.send_bytes(packet(15))
            assert ws.receive_json() == {"gap": [12, 14]}
            assert ws.receive_json() == {"ack": 15}
            ws.send_bytes(packet(13))
            assert ws.receive_json() == {"late": 13}
            ws.send_bytes(packet(16)[:-2])
            assert "truncated" in ws.receive_json()["rejected"]
            ws.send_bytes(packet(16, device="pod-X"))
            assert "pod-X" in ws.receive_json()["rejected"]
            ws.send_json({"end": True})
            ended = ws.receive_json()
        assert ended == {"ended": True, "last_seq": 15, "samples": 130, "strides": 1}
        stance = coach_sub.receive_json()
        pushed = coach_sub.receive_json()
    # The provisional stance row comes first (packet 4 completes its first half), then the stride.
    assert stance["type"] == "stance" and stance[S.IC_T] == pushed[S.IC_T] and stance["closed_by_seq"] == 4
    assert S.STRIDE_INDEX not in stance and S.NEXT_IC_T not in stance
    assert stance[S.PRONATION_EXCURSION_DEG] == pytest.approx(np.mean(np.arange(5)) / 16.0)
    assert pushed["type"] == "stride" and pushed[S.ATHLETE_ID] == "A1" and pushed[S.STRIDE_INDEX] == 0
    # Stride 0 holds packets 0-9, each 10 samples of gyr_x = seq counts (16 counts per deg/s).
    assert pushed[S.PRONATION_EXCURSION_DEG] == pytest.approx(np.mean(np.arange(10)) / 16.0)
    assert pushed["closed_by_seq"] == 9 and pushed["received_at"] <= pushed["published_at"]
    meta, packets, closed = read_wal(wal_path(data_dir / WAL_DIRNAME, "A1", "S1", "left", "pod-L"))
    assert closed and meta["device_id"] == "pod-L"
    assert [int.from_bytes(p[24:28], "little") for p in packets] == [*range(12), 15]
    stored = read_partition(data_dir / "results", STRIDES, "A1", "S1")
    assert stored.height == 1 and stored[S.PRONATION_EXCURSION_DEG][0] == pytest.approx(4.5 / 16.0)
    assert read_partition(data_dir / "results", SESSIONS, "A1", "S1") is not None


def test_subscribers_see_only_what_their_key_may_see(service):
    client, keys, _ = service
    with (
        client.websocket_connect("/v1/stream/subscribe", headers=auth(keys["a1"])) as a1_sub,
        client.websocket_connect("/v1/stream/subscribe", headers=auth(keys["other_admin"])) as t2_sub,
    ):
        a1_sub.receive_json()
        t2_sub.receive_json()
        for athlete, key in (("A2", keys["admin"]), ("A1", keys["admin"])):
            with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
                ws.send_json(hello(athlete_id=athlete))
                ws.receive_json()
                for seq in range(10):
                    ws.send_bytes(packet(seq))
                    ws.receive_json()
        got = a1_sub.receive_json()  # A2's stride came first but is not A1's: A1 sees only its own
        assert got[S.ATHLETE_ID] == "A1"
        with client.websocket_connect("/v1/stream", headers=auth(keys["other_admin"])) as ws:
            ws.send_json(hello(athlete_id="B1", device_id="pod-B"))
            ws.receive_json()
            for seq in range(10):
                ws.send_bytes(packet(seq, device="pod-B"))
                ws.receive_json()
        assert t2_sub.receive_json()[S.ATHLETE_ID] == "B1"  # team 2 never saw team 1's strides
    with client.websocket_connect(
        "/v1/stream/subscribe?athlete_id=A1", headers=auth(keys["other_admin"])
    ) as ws:
        code, msg = closed_with(ws)
    assert code == 4403


def test_second_device_for_the_same_foot_is_refused(service):
    client, keys, _ = service
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        ws.receive_json()
        with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws2:
            ws2.send_json(hello(device_id="pod-2"))
            code, msg = closed_with(ws2)
    assert code == 4409 and "pod-L" in msg["error"]


def test_new_app_resumes_from_the_log_and_rebuilds_the_analysis(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app) as client:
        key = create_key(app.state.db, "T1", "admin")
        app.state.db.ensure_athlete("T1", "A1")
        with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
            ws.send_json(hello())
            ws.receive_json()
            for seq in range(15):
                ws.send_bytes(packet(seq))
                ws.receive_json()
    # A fresh process: nothing in memory, only the data folder.
    app = make_app(tmp_path)
    with TestClient(app) as client:
        # Startup replayed the unfinished log: its stride is stored before any device returns.
        assert read_partition(tmp_path / "results", STRIDES, "A1", "S1").height == 1
        with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
            ws.send_json(hello())
            assert ws.receive_json()["resume_from"] == 14
            ws.send_bytes(packet(14))
            assert ws.receive_json() == {"ack": 14, "duplicate": True}
            for seq in range(15, 20):
                ws.send_bytes(packet(seq))
                ws.receive_json()
            ws.send_json({"end": True})
            assert ws.receive_json()["strides"] == 2
    stored = read_partition(tmp_path / "results", STRIDES, "A1", "S1")
    assert stored[S.PRONATION_EXCURSION_DEG].to_list() == pytest.approx([4.5 / 16, 14.5 / 16])


def test_reconnect_takes_over_and_the_old_connection_is_closed(service):
    client, keys, _ = service
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as old:
        old.send_json(hello())
        old.receive_json()
        old.send_bytes(packet(0))
        assert old.receive_json() == {"ack": 0}
        with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as new:
            new.send_json(hello())
            assert new.receive_json()["resume_from"] == 0
            old.send_bytes(packet(1))
            code, msg = closed_with(old)
            assert code == 4409 and "took over" in msg["error"]
            new.send_bytes(packet(1))
            assert new.receive_json() == {"ack": 1}


def _stream_without_end(client, key: str, n_packets: int = 15) -> None:
    with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
        ws.send_json(hello())
        ws.receive_json()
        for seq in range(n_packets):
            ws.send_bytes(packet(seq))
            ws.receive_json()


def test_idle_stream_is_ended_stored_and_not_replayed_again(tmp_path):
    app = make_app(tmp_path)
    log = wal_path(tmp_path / WAL_DIRNAME, "A1", "S1", "left", "pod-L")
    with TestClient(app) as client:
        key = create_key(app.state.db, "T1", "admin")
        app.state.db.ensure_athlete("T1", "A1")
        with client.websocket_connect("/v1/stream/subscribe", headers=auth(key)) as sub:
            sub.receive_json()
            _stream_without_end(client, key)
            hub = app.state.live
            timeout = hub.idle_timeout_s
            assert client.portal.call(hub.expire_idle, time.time() + timeout - 5) == 0  # not idle yet
            assert not read_wal(log)[2]
            assert client.portal.call(hub.expire_idle, time.time() + timeout + 5) == 1
            assert [sub.receive_json()["type"] for _ in range(2)] == ["stance", "stride"]
        assert read_wal(log)[2], "the idle stream's log is closed"
        assert read_partition(tmp_path / "results", STRIDES, "A1", "S1").height == 1
        with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
            ws.send_json(hello())
            refused = ws.receive_json()  # the device must start a new session
            assert refused["code"] == 4410 and "has ended" in refused["error"], refused
    with TestClient(make_app(tmp_path)) as client:
        assert client.app.state.live.streams == {}  # nothing replayed at start any more


def test_log_left_open_longer_than_the_timeout_is_ended_at_start(tmp_path):
    app = make_app(tmp_path)
    log = wal_path(tmp_path / WAL_DIRNAME, "A1", "S1", "left", "pod-L")
    with TestClient(app) as client:
        key = create_key(app.state.db, "T1", "admin")
        app.state.db.ensure_athlete("T1", "A1")
        _stream_without_end(client, key)
    assert not read_wal(log)[2]
    old = time.time() - app.state.live.idle_timeout_s - 60  # the server was down that long
    os.utime(log, (old, old))
    with TestClient(make_app(tmp_path)):
        pass
    assert read_wal(log)[2]
    assert read_partition(tmp_path / "results", STRIDES, "A1", "S1").height == 1


def test_resuming_subscriber_gets_what_it_missed_and_only_what_its_key_may_see(service):
    client, keys, _ = service
    with client.websocket_connect("/v1/stream/subscribe", headers=auth(keys["coach"])) as first:
        first.receive_json()
        for athlete in ("A1", "A2"):
            with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
                ws.send_json(hello(athlete_id=athlete))
                ws.receive_json()
                for seq in range(10):
                    ws.send_bytes(packet(seq))
                    ws.receive_json()
        live = [first.receive_json() for _ in range(4)]  # stance + stride of A1, then of A2
    assert [(m["type"], m[S.ATHLETE_ID]) for m in live] == [
        ("stance", "A1"),
        ("stride", "A1"),
        ("stance", "A2"),
        ("stride", "A2"),
    ]
    # Reconnect after the first message: the rest is replayed, the first again (at least once).
    since = live[0]["published_at"]
    with client.websocket_connect(f"/v1/stream/subscribe?since={since}", headers=auth(keys["coach"])) as ws:
        assert ws.receive_json()["subscribed"]["replayed"] == 4
        assert [ws.receive_json() for _ in range(4)] == live
    with client.websocket_connect(
        f"/v1/stream/subscribe?since={live[-1]['published_at']}", headers=auth(keys["a1"])
    ) as ws:
        got = ws.receive_json()["subscribed"]
        assert got.pop("server_time") >= live[-1]["published_at"]
        assert got == {"team_id": "T1", "athlete_id": "A1", "replayed": 0}
    with client.websocket_connect("/v1/stream/subscribe?since=0", headers=auth(keys["a1"])) as ws:
        assert ws.receive_json()["subscribed"]["replayed"] == 2  # its own two, not A2's
        assert {ws.receive_json()[S.ATHLETE_ID] for _ in range(2)} == {"A1"}
    with client.websocket_connect("/v1/stream/subscribe?since=0", headers=auth(keys["other_admin"])) as ws:
        assert ws.receive_json()["subscribed"]["replayed"] == 0  # another team's strides never
    with pytest.raises(WebSocketDisconnect) as refused:  # not a time: refused at the handshake
        with client.websocket_connect("/v1/stream/subscribe?since=nan", headers=auth(keys["coach"])):
            pass
    assert refused.value.code == 1008


def test_streams_list_shows_the_keys_team_streams_only(service):
    client, keys, _ = service
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        ws.receive_json()
        for seq in range(12):
            ws.send_bytes(packet(seq))
            ws.receive_json()
        listed = client.get("/v1/streams", headers=auth(keys["coach"])).json()
        assert listed["next_cursor"] is None
        (item,) = listed["items"]
        assert item["connected"] is True and item["ended"] is False
        assert (item["athlete_id"], item["session_id"], item["foot"], item["device_id"]) == (
            "A1",
            "S1",
            "left",
            "pod-L",
        )
        assert item["last_seq"] == 11 and item["samples"] == 12 * N_PER_PACKET and item["strides"] == 1
        assert 0 <= item["idle_s"] < 30
        mine = client.get("/v1/streams", headers=auth(keys["a1"])).json()["items"]
        assert [m["device_id"] for m in mine] == ["pod-L"]
        assert client.get("/v1/streams", headers=auth(keys["other_admin"])).json()["items"] == []
        assert client.get("/v1/streams").status_code == 401
        ws.send_json({"end": True})
        ws.receive_json()
    # ended, stored and evicted: no longer held
    assert client.get("/v1/streams", headers=auth(keys["coach"])).json()["items"] == []


def test_first_stream_into_a_session_with_batch_results_is_refused(service):
    """Results a batch run (or upload job) stored for a session are not overwritten by a stream."""
    from strideflow.analytics.partitions import write_partition

    client, keys, data_dir = service
    row = {S.ATHLETE_ID: "A1", S.SESSION_ID: "S9", S.FOOT: "right", S.STRIDE_INDEX: 0, S.VALID: True}
    write_partition(data_dir / "results", STRIDES, pl.DataFrame([row], schema=S.STRIDES_SCHEMA), "A1", "S9")
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello(session_id="S9"))
        code, msg = closed_with(ws)
    assert code == 4409 and "already has results from a team batch run" in msg["error"]
    assert read_partition(data_dir / "results", STRIDES, "A1", "S9").height == 1
    # A session that already has a live stream takes the other foot's device too.
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello(session_id="S10"))
        ws.receive_json()
        for seq in range(10):
            ws.send_bytes(packet(seq))
            ws.receive_json()
        ws.send_json({"end": True})
        ws.receive_json()
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello(session_id="S10", foot="right", device_id="pod-R"))
        assert ws.receive_json()["resume_from"] is None


# --- issue 13: hardening found by attacking the running service ------------------------------------


def test_stream_into_an_ended_session_is_refused_at_the_hello_and_nothing_is_acked(service):
    """LIVE3: a stream that ended, streamed again with fewer (or more) packets. Before, the hello
    answered `ended: true` with `resume_from`, the client skipped every packet up to it and printed
    them all acknowledged (or waited forever for acks of packets the server rejected)."""
    client, keys, data_dir = service
    log = wal_path(data_dir / WAL_DIRNAME, "A1", "S1", "left", "pod-L")
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        ws.receive_json()
        for seq in range(30):
            ws.send_bytes(packet(seq))
            assert ws.receive_json() == {"ack": seq}
        ws.send_json({"end": True})
        assert ws.receive_json()["ended"] is True
    stored = read_wal(log)
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        code, msg = closed_with(ws)  # refused before any packet: none can be acknowledged
    assert code == msg["code"] == 4410, msg
    assert "has ended" in msg["error"] and "new session" in msg["error"], msg
    assert read_wal(log) == stored  # nothing appended
    # the stored session is marked as the stream's, so a team batch run leaves it alone
    assert read_marker(data_dir / "results", "A1", "S1") == {SOURCE: STREAM_SOURCE}
    # the other foot of the same session is a stream of its own and still welcome
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello(foot="right", device_id="pod-R"))
        assert ws.receive_json()["resume_from"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sampling_rate_hz": 5e-324}, "sampling_rate_hz"),
        ({"sampling_rate_hz": 1e300}, "sampling_rate_hz"),
        ({"session_id": "Z.."}, "session_id"),
        ({"session_id": "WSNL\n"}, "session_id"),
        ({"athlete_id": "A1\n"}, "athlete_id"),
        ({"device_id": "pod..L"}, "device_id"),
        ({"profile": ["not", "a", "name"]}, "profile"),
    ],
)
def test_out_of_range_hello_is_refused_and_stores_nothing(service, change, field):
    client, keys, data_dir = service
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello(**change))
        code, msg = closed_with(ws)
    assert code == msg["code"] == 4400 and f"column {field}" in msg["error"], msg
    assert not (data_dir / WAL_DIRNAME).exists() or not any((data_dir / WAL_DIRNAME).rglob("*.wal"))
    with client.app.state.db.session() as s:
        from strideflow.service.db import SessionRow

        assert s.query(SessionRow).count() == 0  # the session row is written only for an accepted hello


def test_deeply_nested_hello_is_refused_cleanly(service, caplog):
    client, keys, _ = service
    nested = "[" * 100_000 + "]" * 100_000
    for headers, text in ((auth(keys["admin"]), nested), ({}, '{"key": ' + nested + "}")):
        with client.websocket_connect("/v1/stream", headers=headers) as ws:
            ws.send_text(text)
            code, msg = closed_with(ws)
        assert code == msg["code"] == 4400, msg
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize(
    ("seq", "t_us", "text"),
    [
        (2, 2**64 - 1, "device time"),  # timestamp 2^64 - 1 µs
        (2**32 - 1, int(0.2e6), "skips"),  # sequence 2^32 - 1 would make every later packet "old"
        (2, 0, "goes back"),  # before the previous packet's end
    ],
)
def test_out_of_range_packet_closes_the_stream_and_is_not_stored(service, seq, t_us, text):
    client, keys, data_dir = service
    counts = np.zeros((N_PER_PACKET, 6), np.int16)
    counts[:, 2] = 2048
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        ws.receive_json()
        for good in range(2):
            ws.send_bytes(packet(good))
            assert ws.receive_json() == {"ack": good}
        ws.send_bytes(encode_packet("pod-L", "left", seq, t_us, counts, 204.8, 16.0))
        code, msg = closed_with(ws)
    assert code == msg["code"] == 4400 and text in msg["error"] and f"packet {seq}" in msg["error"], msg
    _, packets, _ = read_wal(wal_path(data_dir / WAL_DIRNAME, "A1", "S1", "left", "pod-L"))
    assert len(packets) == 2
    with client.websocket_connect("/v1/stream", headers=auth(keys["admin"])) as ws:
        ws.send_json(hello())
        assert ws.receive_json()["resume_from"] == 1  # the stream goes on from what was stored
        ws.send_bytes(packet(2))
        assert ws.receive_json() == {"ack": 2}


class FailingAnalyzer(CountingAnalyzer):
    """Test double whose analysis raises on every packet after the first two."""

    def push(self, block):
        if len(self.t) >= 2 * N_PER_PACKET:
            raise FloatingPointError("analysis cannot go on")
        return super().push(block)


def test_analysis_failure_is_reported_to_the_client_and_logged_once(tmp_path, caplog):
    app = make_app(tmp_path)
    app.state.live.analyzer_factory = FailingAnalyzer
    with TestClient(app) as client:
        key = create_key(app.state.db, "T1", "admin")
        app.state.db.ensure_athlete("T1", "A1")
        replies = []
        with client.websocket_connect("/v1/stream", headers=auth(key)) as ws:
            ws.send_json(hello())
            ws.receive_json()
            for seq in range(10):
                ws.send_bytes(packet(seq))
                replies.append(ws.receive_json())
            ws.send_json({"end": True})
            while "ended" not in (reply := ws.receive_json()):
                replies.append(reply)
    assert [r["ack"] for r in replies if "ack" in r] == list(range(10))  # every packet stored
    errors = [r for r in replies if "analysis_error" in r]
    assert len(errors) == 1 and errors[0]["seq"] == 2 and "FloatingPointError" in errors[0]["analysis_error"]
    failures = [r for r in caplog.records if "live analysis failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]


def test_store_keeps_the_curves_of_a_foot_no_longer_in_memory(tmp_path):
    """Issue 18: the hub stores each stream's curves with its strides; a foot whose stream has left
    memory keeps its stored strides and curves when the other foot's stream stores again."""
    from strideflow.analytics.curves import STRIDE_COUNT, session_curves
    from strideflow.analytics.partitions import CURVES
    from strideflow.analytics.pipeline import analyze_samples
    from strideflow.hardware.simulator import SimulationSettings, Simulator

    sim = Simulator(SimulationSettings(duration_s=25.0, seed=2, athlete_id="A1", session_id="S1")).simulate()
    result = analyze_samples(sim.samples_, sim.settings.sampling_rate_hz)
    curves = session_curves(result)
    by_foot = {
        f: (result.strides.filter(pl.col(S.FOOT) == f), curves.filter(pl.col(S.FOOT) == f)) for f in S.FEET
    }
    hub = LiveHub(tmp_path / WAL_DIRNAME, tmp_path / "results")
    try:
        hub._store("A1", "S1", [by_foot["left"][0]], {"left"}, [by_foot["left"][1]])
        hub._store("A1", "S1", [by_foot["right"][0]], {"right"}, [by_foot["right"][1]])
    finally:
        hub._analysis_pool.shutdown(wait=False)
    stored = read_partition(tmp_path / "results", CURVES, "A1", "S1")
    assert sorted(stored[S.FOOT].unique()) == ["left", "right"]
    got = stored.drop(S.ATHLETE_ID, S.SESSION_ID).sort(S.FOOT, "phase", "pct")
    assert got.select(S.FOOT, "phase", "pct", STRIDE_COUNT).equals(
        curves.sort(S.FOOT, "phase", "pct").select(S.FOOT, "phase", "pct", STRIDE_COUNT)
    )
    assert read_partition(tmp_path / "results", STRIDES, "A1", "S1").height == result.strides.height
