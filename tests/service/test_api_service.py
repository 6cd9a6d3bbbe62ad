"""The HTTP service through FastAPI's TestClient: uploads become jobs, results are served by key.

One simulated session (both feet, 1 minute) is uploaded once per module; the tests then check
the job against analysing the same files directly, idempotent re-upload, pagination, filters,
and the 4xx answers (401, 403, 404, 413, 422) with messages naming the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from support.api import ATHLETE, DATE, SESSION, png_bytes, standing_csv, upload, wait_job

from strideflow.analytics import partitions
from strideflow.analytics.pipeline import analyze_samples
from strideflow.hardware.schema import FOOT, IC_T, SESSION_DATE, STRIDE_INDEX, VALID
from strideflow.hardware.simulator import write_dataset
from strideflow.ingest import read_recording
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.catalog import sync_results
from strideflow.service.settings import ServiceSettings


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    write_dataset(out, athletes=1, minutes=1.0, seed=11, activity="walk")
    return out


@pytest.fixture(scope="module")
def service(tmp_path_factory, dataset):
    """A running app with one uploaded, analysed session; yields (client, admin headers, job ids, app)."""
    settings = ServiceSettings(data_dir=tmp_path_factory.mktemp("data"), page_size_max=50)
    app = create_app(settings)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {create_key(app.state.db, 'team1', 'admin')}"}
        app.state.db.ensure_athlete("team1", ATHLETE)  # uploads are for registered athletes only
        jobs = {}
        for foot in ("left", "right"):
            r = upload(
                client, headers, dataset / ATHLETE / SESSION / f"{foot}.parquet", foot=foot, session_date=DATE
            )
            assert r.status_code == 202, r.text
            jobs[foot] = r.json()["job_id"]
        results = {foot: wait_job(client, headers, job) for foot, job in jobs.items()}
        yield client, headers, jobs, results, app


@pytest.fixture(scope="module")
def direct(dataset) -> pl.DataFrame:
    """Strides from analysing the same two files directly, as the job should."""
    parts = []
    for foot in ("left", "right"):
        rec = read_recording(
            dataset / ATHLETE / SESSION / f"{foot}.parquet", foot=foot, athlete_id=ATHLETE, session_id=SESSION
        )
        parts.append(analyze_samples(rec.samples, rec.sampling_rate_hz).strides)
    return pl.concat(parts).sort(FOOT, STRIDE_INDEX)


def all_strides(client, headers, **params) -> list[dict]:
    items, cursor = [], None
    for _ in range(1000):
        q = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get(f"/v1/sessions/{SESSION}/strides", headers=headers, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination does not end")


def test_job_analyses_the_session_like_a_direct_run(service, direct):
    client, headers, jobs, results, app = service
    assert all(j["status"] == "done" for j in results.values()), results
    # The job of the second upload saw both recordings (or a later run did): both feet are stored.
    stored = partitions.read_partition(app.state.settings.results_dir, partitions.STRIDES, ATHLETE, SESSION)
    assert stored is not None
    assert stored.height == direct.height > 40
    got = stored.sort(FOOT, STRIDE_INDEX)
    assert got.select(FOOT, STRIDE_INDEX).equals(direct.select(FOOT, STRIDE_INDEX))
    assert got[IC_T].to_list() == pytest.approx(direct[IC_T].to_list())
    sessions = partitions.read_partition(
        app.state.settings.results_dir, partitions.SESSIONS, ATHLETE, SESSION
    )
    assert sorted(sessions[FOOT].to_list()) == ["left", "right"]
    assert sessions[SESSION_DATE].cast(pl.String).to_list() == [DATE, DATE]


def test_strides_route_serves_every_stride_once_across_pages(service, direct):
    client, headers, *_ = service
    whole = all_strides(client, headers, limit=50)
    paged = all_strides(client, headers, limit=7)
    assert len(whole) == len(paged) == direct.height
    keys = [(s["foot"], s["stride_index"]) for s in paged]
    assert len(set(keys)) == len(keys)
    assert paged == whole  # same stable order whatever the page size
    assert keys == sorted(keys, key=lambda k: (k[0] != "left", k[1]))
    assert {s["athlete_id"] for s in paged} == {ATHLETE}


def test_foot_time_and_validity_filters(service, direct):
    client, headers, *_ = service
    right = all_strides(client, headers, foot="right")
    assert len(right) == direct.filter(pl.col(FOOT) == "right").height
    assert {s["foot"] for s in right} == {"right"}
    t_from, t_to = 10.0, 30.0
    window = all_strides(client, headers, foot="left", t_from=t_from, t_to=t_to, limit=5)
    expected = direct.filter((pl.col(FOOT) == "left") & pl.col(IC_T).is_between(t_from, t_to))
    assert [s["stride_index"] for s in window] == expected[STRIDE_INDEX].to_list()
    assert len(window) > 5  # several pages
    valid = all_strides(client, headers, valid=True)
    assert len(valid) == direct.filter(pl.col(VALID)).height
    r = client.get(f"/v1/sessions/{SESSION}/strides", headers=headers, params={"t_from": 5, "t_to": 1})
    assert r.status_code == 422 and "t_from" in r.json()["detail"]


def test_reupload_same_bytes_is_idempotent(service, dataset, direct):
    client, headers, jobs, _, app = service
    path = dataset / ATHLETE / SESSION / "left.parquet"
    r = upload(client, headers, path, foot="left", session_date=DATE)
    assert r.status_code == 202
    assert r.json()["job_id"] == jobs["left"]
    stored = partitions.read_partition(app.state.settings.results_dir, partitions.STRIDES, ATHLETE, SESSION)
    assert stored.height == direct.height


def test_lists_of_athletes_and_sessions(service):
    client, headers, *_ = service
    athletes = client.get("/v1/athletes", headers=headers).json()
    assert athletes == {
        "items": [{"athlete_id": ATHLETE, "session_count": 1, "last_session_date": DATE}],
        "next_cursor": None,
    }
    sessions = client.get(f"/v1/athletes/{ATHLETE}/sessions", headers=headers).json()
    (item,) = sessions["items"]
    assert item["session_id"] == SESSION and item["analysed"] is True and item["session_date"] == DATE
    feet = {f["foot"]: f for f in item["feet"]}
    assert set(feet) == {"left", "right"}
    assert feet["left"]["median"]["pronation_excursion_deg"] > 0
    one = client.get(f"/v1/sessions/{SESSION}", headers=headers).json()
    assert one["feet"] == item["feet"]


def test_missing_or_bad_key_is_401(service):
    client, *_ = service
    for headers in ({}, {"Authorization": "Bearer sf_nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/v1/athletes", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "key" in r.json()["detail"]
    assert client.get("/health").status_code == 200


def test_bad_file_is_422_naming_the_ingest_problem(service):
    client, headers, *_ = service
    bad = b"t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z\n0,0,0,9.8,0,0,0\n0.01,0,0,9.8,abc,0,0\n"
    r = client.post(
        "/v1/recordings",
        headers=headers,
        files={"file": ("walk_left.csv", bad)},
        data={"athlete_id": ATHLETE, "session_id": "S99"},
    )
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("walk_left.csv") and "row 3" in detail and "gyr_x" in detail
    # Nothing of a rejected upload is kept.
    assert client.get("/v1/sessions/S99", headers=headers).status_code == 404


def test_form_validation_names_the_field(service, dataset):
    client, headers, *_ = service
    path = dataset / ATHLETE / SESSION / "left.parquet"
    r = client.post(
        "/v1/recordings", headers=headers, files={"file": (path.name, b"x")}, data={"session_id": "S1"}
    )
    assert r.status_code == 422 and "athlete_id" in r.json()["detail"]
    r = upload(client, headers, path, foot="middle")
    assert r.status_code == 422 and "foot" in r.json()["detail"]
    r = upload(client, headers, path, athlete_id="../etc")
    assert r.status_code == 422 and "athlete_id" in r.json()["detail"]
    r = client.get("/v1/athletes", headers=headers, params={"limit": 51})
    assert r.status_code == 422 and "limit" in r.json()["detail"]
    r = client.get("/v1/athletes", headers=headers, params={"cursor": "garbage"})
    assert r.status_code == 422 and "cursor" in r.json()["detail"]
    r = client.get(f"/v1/athletes/{ATHLETE}/trends", headers=headers, params={"metric": "speed"})
    assert r.status_code == 422 and "pronation_excursion_deg" in r.json()["detail"]


def test_unknown_ids_are_404(service):
    client, headers, *_ = service
    assert client.get("/v1/jobs/0123", headers=headers).status_code == 404
    assert client.get("/v1/athletes/nobody/sessions", headers=headers).status_code == 404
    assert client.get("/v1/sessions/nothing/strides", headers=headers).status_code == 404


def test_roles_decide_who_uploads_and_sees(service, dataset):
    client, _, jobs, _, app = service
    db = app.state.db
    coach = {"Authorization": f"Bearer {create_key(db, 'team1', 'coach')}"}
    own = {"Authorization": f"Bearer {create_key(db, 'team1', 'athlete', ATHLETE)}"}
    other_team = {"Authorization": f"Bearer {create_key(db, 'team2', 'admin')}"}
    path = dataset / ATHLETE / SESSION / "left.parquet"
    assert upload(client, coach, path).status_code == 403
    assert upload(client, own, path, athlete_id="B777").status_code == 403
    # An athlete key may upload its own recordings (here the same bytes: the same job).
    r = upload(client, own, path, foot="left", session_date=DATE)
    assert r.status_code == 202 and r.json()["job_id"] == jobs["left"]
    assert client.get(f"/v1/sessions/{SESSION}/strides", headers=coach).status_code == 200
    assert client.get(f"/v1/sessions/{SESSION}/strides", headers=own).status_code == 200
    r = client.get(f"/v1/athletes/{ATHLETE}/sessions", headers=other_team)
    assert r.status_code == 404 and r.json()["detail"] == f"athlete {ATHLETE!r} not found"
    assert client.get("/v1/athletes", headers=other_team).json()["items"] == []
    # Another team's athlete id and an id nobody registered answer the same 404: no probing.
    taken, unknown = upload(client, other_team, path), upload(client, other_team, path, athlete_id="N0BODY")
    assert taken.status_code == unknown.status_code == 404
    assert taken.json()["detail"].replace(ATHLETE, "X") == unknown.json()["detail"].replace("N0BODY", "X")


def test_upload_over_the_size_limit_is_413(tmp_path, dataset):
    app = create_app(ServiceSettings(data_dir=tmp_path, max_upload_bytes=1000))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {create_key(app.state.db, 't', 'admin')}"}
        for athlete_id in (ATHLETE, "a"):
            app.state.db.ensure_athlete("t", athlete_id)
        path = dataset / ATHLETE / SESSION / "left.parquet"
        r = upload(client, headers, path)
        assert r.status_code == 413 and "file" in r.json()["detail"]
        # Just over the file limit but within the form overhead: caught while copying.
        r = client.post(
            "/v1/recordings",
            headers=headers,
            files={"file": ("x.csv", b"0" * 1001)},
            data={"athlete_id": "a", "session_id": "s"},
        )
        assert r.status_code == 413
        assert not any((tmp_path / "uploads").rglob("x.csv"))


def test_sync_results_registers_batch_output(tmp_path):
    settings = ServiceSettings(data_dir=tmp_path)
    strides = pl.DataFrame({FOOT: ["left"], STRIDE_INDEX: [0], IC_T: [1.0]})
    sessions = pl.DataFrame({FOOT: ["left"], SESSION_DATE: [pl.Series([DATE]).str.to_date()[0]]})
    for a, s in (("B1", "S1"), ("B1", "S2"), ("B2", "S1")):
        partitions.write_partition(settings.results_dir, partitions.STRIDES, strides, a, s)
        partitions.write_partition(settings.results_dir, partitions.SESSIONS, sessions, a, s)
    app = create_app(settings)
    with TestClient(app) as client:
        db = app.state.db
        assert sync_results(db, settings.results_dir, "teamB", athletes={"B1"}) == 2
        assert sync_results(db, settings.results_dir, "teamB") == 1  # only B2's session is new
        assert sync_results(db, settings.results_dir, "teamB") == 0
        headers = {"Authorization": f"Bearer {create_key(db, 'teamB', 'coach')}"}
        body = client.get("/v1/athletes", headers=headers, params={"limit": 1}).json()
        assert body["items"][0] == {"athlete_id": "B1", "session_count": 2, "last_session_date": DATE}
        body = client.get("/v1/athletes", headers=headers, params={"cursor": body["next_cursor"]}).json()
        assert [i["athlete_id"] for i in body["items"]] == ["B2"] and body["next_cursor"] is None
        r = client.get("/v1/sessions/S1/strides", headers=headers)
        assert r.status_code == 422 and "athlete_id" in r.json()["detail"]
        r = client.get("/v1/sessions/S1/strides", headers=headers, params={"athlete_id": "B2"})
        assert [s["ic_t"] for s in r.json()["items"]] == [1.0]


def test_trends_route_known_answer(tmp_path):
    """Medians 5, 6, 8 deg on days 0, 10, 20: baseline 19/3, slope 3.0 then 4.5 deg per 30 days."""
    settings = ServiceSettings(data_dir=tmp_path)
    median = "pronation_excursion_deg_median"
    for sid, date, value in (("S1", "2025-03-01", 5.0), ("S2", "2025-03-11", 6.0), ("S3", "2025-03-21", 8.0)):
        sessions = pl.DataFrame({FOOT: ["left"], SESSION_DATE: [date], median: [value], "stride_count": [30]})
        partitions.write_partition(settings.results_dir, partitions.SESSIONS, sessions, "C1", sid)
    app = create_app(settings)
    with TestClient(app) as client:
        assert sync_results(app.state.db, settings.results_dir, "teamC") == 3
        headers = {"Authorization": f"Bearer {create_key(app.state.db, 'teamC', 'athlete', 'C1')}"}
        params = {"metric": "pronation_excursion_deg", "foot": "left", "limit": 2}
        first = client.get("/v1/athletes/C1/trends", headers=headers, params=params).json()
        rest = client.get(
            "/v1/athletes/C1/trends", headers=headers, params={**params, "cursor": first["next_cursor"]}
        ).json()
        rows = first["items"] + rest["items"]
        assert rest["next_cursor"] is None
        assert [r["session_id"] for r in rows] == ["S1", "S2", "S3"]
        assert [r["median"] for r in rows] == [5.0, 6.0, 8.0]
        assert rows[2]["baseline"] == pytest.approx(19 / 3)
        assert rows[2]["change_from_baseline"] == pytest.approx(8 - 19 / 3)
        assert rows[1]["slope_per_30d"] == pytest.approx(3.0)
        assert rows[2]["slope_per_30d"] == pytest.approx(4.5)
        sessions = client.get("/v1/athletes/C1/sessions", headers=headers).json()["items"]
        assert [s["session_date"] for s in sessions] == ["2025-03-01", "2025-03-11", "2025-03-21"]
        other = {"Authorization": f"Bearer {create_key(app.state.db, 'teamC', 'athlete', 'C2')}"}
        assert client.get("/v1/athletes/C1/trends", headers=other).status_code == 404


def test_keys_cli_prints_a_working_key_and_stores_only_its_hash(tmp_path):
    from typer.testing import CliRunner

    from strideflow.service.auth import AuthError, Role, authenticate
    from strideflow.service.cli import _register
    from strideflow.service.cli import app as cli
    from strideflow.service.db import Database

    _register()
    args = ["keys", "create", "--data", str(tmp_path), "--team", "t9", "--role", "athlete", "--athlete", "X1"]
    r = CliRunner().invoke(cli, [*args, "--init"])
    assert r.exit_code == 0, r.output
    key = r.output.strip().splitlines()[-1]
    db = Database(ServiceSettings(data_dir=tmp_path).resolved_database_url)
    principal = authenticate(db, key)
    assert (principal.role, principal.team_id, principal.athlete_id) == (Role.athlete, "t9", "X1")
    assert authenticate(db, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    db.dispose()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("strideflow.db*"))
    secret = key.split("_", 2)[2]  # after "sf_<key id>_"; the secret itself may hold "_"
    assert key.encode() not in stored and secret.encode() not in stored
    r = CliRunner().invoke(
        cli, ["keys", "create", "--data", str(tmp_path), "--team", "t9", "--role", "athlete"]
    )
    assert isinstance(r.exception, AuthError) and "--athlete" in str(r.exception)


def test_athletes_cli_registers_athletes_and_refuses_another_teams_id(tmp_path):
    from typer.testing import CliRunner

    from strideflow.service.cli import _register
    from strideflow.service.cli import app as cli
    from strideflow.service.db import Database, DatabaseError

    _register()
    args = ["athletes", "add", "P1", "P2", "--data", str(tmp_path), "--team", "t1"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    db = Database(ServiceSettings(data_dir=tmp_path).resolved_database_url)
    assert (db.athlete_team("P1"), db.athlete_team("P2"), db.athlete_team("P3")) == ("t1", "t1", None)
    db.dispose()
    r = CliRunner().invoke(cli, ["athletes", "add", "P2", "--data", str(tmp_path), "--team", "t2"])
    assert isinstance(r.exception, DatabaseError) and "P2" in str(r.exception)


def test_failed_job_reports_the_error_and_does_not_block_the_session(service, dataset, direct):
    client, headers, *_ = service
    session = "S60"
    r = client.post(
        "/v1/recordings",
        headers=headers,
        files={"file": ("standing_left.csv", standing_csv(tap_dps=300.0))},
        data={"athlete_id": ATHLETE, "session_id": session},
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, headers, r.json()["job_id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("standing_left.csv: ") and "no walking" in job["error"]
    assert "uploads" not in job["error"]  # the stored path is not shown
    # A good recording of the other foot in the same session still gets analysed.
    right = dataset / ATHLETE / SESSION / "right.parquet"
    r = upload(client, headers, right, session_id=session, foot="right")
    job = wait_job(client, headers, r.json()["job_id"])
    assert job["status"] == "done", job
    assert job["stride_count"] == direct.filter(pl.col(FOOT) == "right").height
    assert any(w.startswith("not analysed: standing_left.csv") for w in job["warnings"])


def test_a_session_is_either_uploaded_or_streamed(service, dataset):
    """A job replaces a session's partitions and a live stream stores its own: the two never mix.
    A stream into an uploaded session is refused (4409), and an upload into a streamed one (409)."""
    from starlette.websockets import WebSocketDisconnect

    from strideflow.hardware.packets import encode_packet

    client, headers, _, _, app = service
    hello = {"athlete_id": ATHLETE, "session_id": SESSION, "foot": "left", "device_id": "pod-1"}
    hello["sampling_rate_hz"] = 100.0
    with client.websocket_connect("/v1/stream", headers=headers) as ws:
        ws.send_json(hello)
        msg = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4409 and "has uploaded recordings" in msg["error"], msg

    live_session = "LIVE-ONLY"
    with client.websocket_connect("/v1/stream", headers=headers) as ws:
        ws.send_json({**hello, "session_id": live_session})
        assert ws.receive_json()["resume_from"] is None
        counts = np.zeros((10, 6), np.int16)
        counts[:, 2] = 2048
        ws.send_bytes(encode_packet("pod-1", "left", 0, 0, counts, 204.8, 16.0))
        assert ws.receive_json() == {"ack": 0}
    r = upload(client, headers, dataset / ATHLETE / SESSION / "left.parquet", session_id=live_session)
    assert r.status_code == 409 and "streamed live" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        (
            "standing_left.csv",
            standing_csv(30.0),
            "no walking found: the foot never left the ground (30 s standing",
        ),
        ("short_left.csv", standing_csv(2.0, tap_dps=300.0), "too short: 2.0 s of data"),
        ("photo_left.csv", png_bytes(), "not a text recording (PNG image)"),
    ],
    ids=["standing", "two-seconds", "png"],
)
def test_non_recordings_are_refused_before_a_job_exists(service, name, body, expected):
    client, headers, *_ = service
    session = f"S7{len(name)}"
    r = client.post(
        "/v1/recordings",
        headers=headers,
        files={"file": (name, body)},
        data={"athlete_id": ATHLETE, "session_id": session},
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith(f"{name}: ") and expected in detail and "\n" not in detail
    listed = client.get(f"/v1/athletes/{ATHLETE}/sessions", headers=headers).json()["items"]
    assert session not in [s["session_id"] for s in listed]


def test_flags_route_adds_asymmetry_against_the_athlete_baseline(tmp_path):
    """Issue 18: the flags of a session include `asymmetry_change` when its left/right index leaves
    the athlete's own baseline (first 3 sessions), computed from the stored sessions at request time."""
    from strideflow.analytics.flags import FLAGS_SCHEMA

    settings = ServiceSettings(data_dir=tmp_path)
    m = "pronation_excursion_deg"
    days = (
        ("S1", "2025-03-01", 15.0, 11.5),
        ("S2", "2025-03-08", 14.5, 11.6),
        ("S3", "2025-03-15", 15.2, 11.3),
    )
    for sid, date, left, right in (*days, ("S4", "2025-03-22", 11.0, 14.0)):
        sessions = pl.DataFrame(
            {
                FOOT: ["left", "right"],
                "activity": ["walk", "walk"],
                SESSION_DATE: [date, date],
                f"{m}_median": [left, right],
                f"{m}_iqr": [1.0, 1.0],
                "stride_count": [30, 30],
            }
        )
        partitions.write_partition(settings.results_dir, partitions.SESSIONS, sessions, "D1", sid)
        partitions.write_partition(
            settings.results_dir, partitions.FLAGS, pl.DataFrame(schema=FLAGS_SCHEMA), "D1", sid
        )
    app = create_app(settings)
    with TestClient(app) as client:
        assert sync_results(app.state.db, settings.results_dir, "teamD") == 4
        headers = {"Authorization": f"Bearer {create_key(app.state.db, 'teamD', 'coach')}"}
        for sid in ("S1", "S2", "S3"):
            r = client.get(f"/v1/sessions/{sid}/flags", headers=headers, params={"athlete_id": "D1"})
            assert r.status_code == 200 and r.json()["items"] == [], r.json()
        items = client.get("/v1/sessions/S4/flags", headers=headers, params={"athlete_id": "D1"}).json()[
            "items"
        ]
        assert [(i["flag"], i["metric"], i["foot"], i["activity"]) for i in items] == [
            ("asymmetry_change", m, None, "walk")
        ]
        assert items[0]["value"] == pytest.approx(-24.0)
        assert "own baseline" in items[0]["text"] and "baseline +" in items[0]["text"]
