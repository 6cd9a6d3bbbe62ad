"""Who may read and write what over HTTP (issue 6): the whole role x route x target matrix.

Two teams, each with an admin, a coach and two athletes with their own keys; every athlete has
a simulated session analysed into the results store and registered. Every route of the app
(taken from the app itself, so a new route is walked automatically, and an unclassified one
fails) is called by every key for every athlete (own, same team, other team, unknown), and
without a key or with a bad one. Expected:

- missing, malformed, unknown or wrong-secret key: 401 (before any other check);
- an id outside the key's view (other team, other athlete for athlete keys): 404 with the same
  body as an id that does not exist, never 200 and never a 403 that confirms it exists;
- writing with a read-only key (coach), or an athlete key for someone else: 403;
- listings hold only the key's own team / athlete; no body names another team's ids.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from strideflow.analytics import partitions
from strideflow.analytics.batch import BatchSettings, run_session, session_jobs
from strideflow.analytics.discovery import find_recordings
from strideflow.hardware.schema import ATHLETE_ID, PRONATION_EXCURSION_DEG, SESSION_ID, STEADY
from strideflow.hardware.simulator import write_dataset

RED, BLUE = "team-red", "team-blue"
ROSTER = {RED: ("ana-red", "bo-red"), BLUE: ("cy-blue", "di-blue")}
TEAM_OF = {a: t for t, athletes in ROSTER.items() for a in athletes}
GHOST = "nobody-at-all"  # an athlete id no team has
SHARED_SESSION = "S01"  # stored for ana-red AND cy-blue: a session id two teams both use
pytestmark = pytest.mark.slow  # ~20 s: four simulated athletes analysed, ~600 requests

BAD_FILE = b"t,acc_x,acc_y\n0,not-a-number,1\n"  # ingest rejects it: 422 for a key allowed to write

# Routes that need no key (dashboard assets hold no data; docs are the public schema).
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/"),
    ("GET", "/static/{name}"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
}
TEAM_LISTS = {("GET", "/v1/athletes"), ("GET", "/v1/streams")}
UPLOADS = {("POST", "/v1/recordings")}
WEBSOCKETS = {("WS", "/v1/stream"), ("WS", "/v1/stream/subscribe")}
# GET routes with exactly one path parameter are classified by its name.
BY_PARAMETER = {"{athlete_id}": "athlete", "{session_id}": "session", "{job_id}": "job"}


def session_of(athlete: str) -> str:
    """The session id stored only for this athlete."""
    return f"{athlete}-s1"


def app_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD left out; websockets as WS."""
    found = set()

    def walk(routes, prefix: str) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:  # FastAPI >= 0.16x keeps included routers as wrappers
                walk(inner.routes, prefix + getattr(r.include_context, "prefix", ""))
            elif getattr(r, "methods", None):
                found.update((m, prefix + r.path) for m in r.methods if m != "HEAD")
            else:
                found.add(("WS", prefix + r.path))

    walk(app.routes, "")
    return found


def classify(method: str, path: str) -> str | None:
    """Kind of a route for the matrix, or None when the test does not know what to expect."""
    key = (method, path)
    if key in PUBLIC:
        return "public"
    if key in TEAM_LISTS:
        return "team_list"
    if key in UPLOADS:
        return "upload"
    if key in WEBSOCKETS:
        return "websocket"
    params = [p for p in path.split("/") if p.startswith("{")]
    if method == "GET" and len(params) == 1 and params[0] in BY_PARAMETER:
        return BY_PARAMETER[params[0]]
    return None


@dataclass(frozen=True)
class Who:
    name: str
    key: str
    team: str
    role: str
    athlete: str | None = None

    def sees(self, athlete: str) -> bool:
        if TEAM_OF.get(athlete) != self.team:
            return False
        return self.role != "athlete" or self.athlete == athlete

    def foreign_ids(self) -> set[str]:
        """Ids this key must never read in a response unless it sent them itself."""
        out = {t for t in ROSTER if t != self.team}
        for a in TEAM_OF:
            if not self.sees(a):
                out |= {a, session_of(a)}
        return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A running app (TestClient) with two teams' analysed data, their keys and job ids."""
    from strideflow.service.app import create_app
    from strideflow.service.auth import create_key
    from strideflow.service.db import DONE, Database, Job
    from strideflow.service.settings import ServiceSettings

    root = tmp_path_factory.mktemp("roles")
    dataset = root / "dataset"
    write_dataset(dataset, athletes=4, minutes=0.5, seed=11, activity="walk")
    settings = ServiceSettings(data_dir=root / "data", job_workers=1)
    results = settings.results_dir
    names = dict(zip(("A001", "A002", "A003", "A004"), TEAM_OF, strict=True))
    for job in session_jobs(find_recordings(dataset), results, BatchSettings(workers=1)):
        athlete = names[job.athlete_id]
        job = dataclasses.replace(job, athlete_id=athlete, session_id=session_of(athlete))
        assert run_session(job)["status"] == "done"
    for athlete in ("ana-red", "cy-blue"):  # the same session id in both teams
        for table in partitions.TABLES:
            src = partitions.partition_dir(results, table, athlete, session_of(athlete))
            if src.is_dir():
                shutil.copytree(src, partitions.partition_dir(results, table, athlete, SHARED_SESSION))

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.create_all()
    keys: list[Who] = []
    jobs: dict[str, str] = {}
    for team, athletes in ROSTER.items():
        keys.append(Who(f"{team}/admin", create_key(db, team, "admin"), team, "admin"))
        keys.append(Who(f"{team}/coach", create_key(db, team, "coach"), team, "coach"))
        for a in athletes:
            db.ensure_athlete(team, a)
            db.ensure_session(a, session_of(a))
            keys.append(Who(f"{team}/{a}", create_key(db, team, "athlete", a), team, "athlete", a))
            jobs[a] = uuid.uuid4().hex
            with db.session() as s:
                s.add(Job(id=jobs[a], athlete_id=a, session_id=session_of(a), status=DONE, stride_count=1))
    for a in ("ana-red", "cy-blue"):
        db.ensure_session(a, SHARED_SESSION)
    db.dispose()
    jobs[GHOST] = uuid.uuid4().hex
    upload = next((dataset / "A001").rglob("left.parquet")).read_bytes()

    app = create_app(settings)
    with TestClient(app) as client:
        yield {"client": client, "app": app, "keys": keys, "jobs": jobs, "upload": upload, "root": root}


def _auth(key: str | None) -> dict:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def _requests(kind: str, path: str, athlete: str, jobs: dict) -> list[tuple[str, str, dict, str]]:
    """(method, url, httpx kwargs, id named in the request) for one route and target athlete."""
    if kind == "athlete":
        return [("GET", path.replace("{athlete_id}", athlete), {}, athlete)]
    if kind == "session":
        url = path.replace("{session_id}", session_of(athlete))
        shared = path.replace("{session_id}", SHARED_SESSION)
        out = [
            ("GET", url, {}, session_of(athlete)),
            ("GET", url, {"params": {ATHLETE_ID: athlete}}, athlete),
        ]
        if athlete in ("ana-red", "cy-blue", GHOST):
            out.append(("GET", shared, {"params": {ATHLETE_ID: athlete}}, athlete))
        return out
    if kind == "job":
        return [("GET", path.replace("{job_id}", jobs[athlete]), {}, jobs[athlete])]
    if kind == "upload":
        form = {ATHLETE_ID: athlete, SESSION_ID: "upload-1", "foot": "left"}
        files = {"file": ("left.csv", BAD_FILE, "text/csv")}
        return [("POST", path, {"data": form, "files": files}, athlete)]
    raise AssertionError(kind)


def _expected(who: Who, kind: str, athlete: str) -> int:
    if kind == "upload":
        if who.role == "coach" or (who.role == "athlete" and athlete != who.athlete):
            return 403  # read-only key, or an athlete key writing for someone else
        if not who.sees(athlete):
            # another team's athlete, or an id nobody registered: the same 404, so no probing
            return 404
        return 422  # allowed to write; the file itself is rejected by ingest
    return 200 if who.sees(athlete) else 404


def test_every_route_is_classified(world):
    routes = app_routes(world["app"])
    unknown = sorted(r for r in routes if classify(*r) is None)
    assert not unknown, f"routes the role matrix does not know how to check: {unknown}"
    schema = world["client"].get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert documented <= routes
    # the matrix must cover the DESIGN.md routes at least
    for needed in ("/v1/athletes", "/v1/athletes/{athlete_id}/sessions", "/v1/sessions/{session_id}/strides"):
        assert ("GET", needed) in routes


def test_role_route_matrix(world):
    client, jobs = world["client"], world["jobs"]
    routes = sorted(
        r for r in app_routes(world["app"]) if classify(*r) in ("athlete", "session", "job", "upload")
    )
    assert len(routes) >= 8
    failures = []
    checked = 0
    for who in world["keys"]:
        foreign = who.foreign_ids()
        for method, path in routes:
            kind = classify(method, path)
            ghost_bodies: dict[tuple, str] = {}
            for athlete in (GHOST, *TEAM_OF):  # GHOST first: its 404 body is the reference
                for m, url, kwargs, named in _requests(kind, path, athlete, jobs):
                    r = client.request(m, url, headers=_auth(who.key), **kwargs)
                    checked += 1
                    want = _expected(who, kind, athlete)
                    where = f"{who.name} {m} {url} {kwargs.get('params', '')} target={athlete}"
                    if r.status_code != want:
                        failures.append(f"{where}: {r.status_code} (want {want}) {r.text[:200]}")
                        continue
                    sent = {named, athlete, session_of(athlete)}
                    leaked = {i for i in foreign - sent if i in r.text}
                    if leaked:
                        failures.append(f"{where}: body names foreign ids {sorted(leaked)}: {r.text[:200]}")
                    if r.status_code >= 400:
                        assert r.headers["content-type"].startswith("application/json"), where
                        assert isinstance(r.json()["detail"], str) and r.json()["detail"], where
                    shape = (m, path, SHARED_SESSION in url, tuple(kwargs.get("params", {})))
                    body = r.text.replace(named, "{id}")
                    if athlete == GHOST:
                        ghost_bodies[shape] = body
                    elif r.status_code == 404 and want == 404 and kind != "upload":
                        reference = ghost_bodies.get(shape)
                        if body != reference:
                            failures.append(
                                f"{where}: 404 differs from an unknown id's: {body} vs {reference}"
                            )
                    if r.status_code == 200:
                        body_json = r.json()
                        items = body_json.get("items", [body_json])
                        owners = {i[ATHLETE_ID] for i in items if ATHLETE_ID in i}
                        if not owners <= {athlete}:
                            failures.append(f"{where}: answers rows of {sorted(owners)}")
    assert not failures, f"{len(failures)} of {checked} requests wrong:\n" + "\n".join(failures[:40])


def test_missing_or_bad_key_is_401_before_anything_else(world):
    client, jobs = world["client"], world["jobs"]
    admin = next(w for w in world["keys"] if w.role == "admin")
    key_id = admin.key.split("_")[1]
    bad_keys = {
        "none": None,
        "not ours": "hello",
        "malformed": "sf_",
        "unknown id": f"sf_{uuid.uuid4().hex}_secret",
        "wrong secret": f"sf_{key_id}_{'x' * 43}",
    }
    failures = []
    for method, path in sorted(app_routes(world["app"])):
        kind = classify(method, path)
        if kind in ("public", "websocket"):
            continue
        targets = ["ana-red", "cy-blue", GHOST] if kind != "team_list" else ["ana-red"]
        for athlete in targets:
            reqs = [("GET", path, {}, "")] if kind == "team_list" else _requests(kind, path, athlete, jobs)
            for m, url, kwargs, _ in reqs:
                for label, key in bad_keys.items():
                    r = client.request(m, url, headers=_auth(key), **kwargs)
                    if r.status_code != 401 or "bearer" not in r.headers.get("www-authenticate", "").lower():
                        failures.append(f"{label} key {m} {url}: {r.status_code} {r.text[:120]}")
                    elif any(i in r.text for i in ("cy-blue", "ana-red", BLUE, RED, key_id)):
                        failures.append(f"{label} key {m} {url}: 401 body names ids: {r.text}")
    # a garbage form does not get a 422 ahead of the missing key either
    r = client.post("/v1/recordings", data={ATHLETE_ID: "../etc"})
    if r.status_code != 401:
        failures.append(f"no key, invalid upload form: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)


def test_public_routes_need_no_key(world):
    client = world["client"]
    for method, path in sorted(app_routes(world["app"])):
        if classify(method, path) != "public":
            continue
        url = path.replace("{name}", "dashboard.js")
        r = client.request(method, url)
        assert r.status_code == 200, f"{method} {url}: {r.status_code}"
        assert "ana-red" not in r.text and "cy-blue" not in r.text, url


def test_listings_hold_only_what_the_key_may_see(world):
    client = world["client"]
    for who in world["keys"]:
        r = client.get("/v1/athletes", headers=_auth(who.key))
        assert r.status_code == 200, who.name
        ids = {i[ATHLETE_ID] for i in r.json()["items"]}
        assert ids == {a for a in TEAM_OF if who.sees(a)}, who.name
        for a in ids:
            h = _auth(who.key)
            sessions = client.get(f"/v1/athletes/{a}/sessions", headers=h).json()["items"]
            assert sessions and {s[ATHLETE_ID] for s in sessions} == {a}, (who.name, a)
            assert session_of(a) in {s[SESSION_ID] for s in sessions}
            assert all(s["analysed"] for s in sessions)
            trends = client.get(
                f"/v1/athletes/{a}/trends", headers=h, params={"metric": PRONATION_EXCURSION_DEG}
            )
            items = trends.json()["items"]
            assert items and {t[ATHLETE_ID] for t in items} == {a}, (who.name, a, trends.text[:200])
            strides = client.get(f"/v1/sessions/{session_of(a)}/strides", headers=h, params={"limit": 1000})
            rows = strides.json()["items"]
            stored = partitions.read_partition(
                world["root"] / "data" / "results", partitions.STRIDES, a, session_of(a)
            )
            assert len(rows) == stored.height > 20, (who.name, a)
            assert {(s[ATHLETE_ID], s[SESSION_ID]) for s in rows} == {(a, session_of(a))}
            valid = [s[PRONATION_EXCURSION_DEG] for s in rows if s[STEADY]]
            assert valid and all(v is not None and 0 < v < 40 for v in valid)
            flags = client.get(f"/v1/sessions/{session_of(a)}/flags", headers=h).json()["items"]
            assert {f[ATHLETE_ID] for f in flags} <= {a}


def test_a_session_id_used_by_two_teams_resolves_to_the_own_team(world):
    """Without athlete_id the shared id must answer the own team's session, not a 422 'ambiguous'
    (which would confirm that another team uses it)."""
    client = world["client"]
    for who in world["keys"]:
        r = client.get(f"/v1/sessions/{SHARED_SESSION}", headers=_auth(who.key))
        own = [a for a in ("ana-red", "cy-blue") if who.sees(a)]
        if own:
            assert r.status_code == 200, (who.name, r.text)
            assert r.json()[ATHLETE_ID] == own[0]
        else:
            assert r.status_code == 404, (who.name, r.text)
        assert not any(i in r.text for i in who.foreign_ids()), (who.name, r.text)


def test_real_upload_and_its_job_follow_the_same_rules(world):
    client = world["client"]
    keys = {w.name: w for w in world["keys"]}
    form = {ATHLETE_ID: "bo-red", SESSION_ID: "upload-real", "foot": "left"}
    files = {"file": ("left.parquet", world["upload"], "application/octet-stream")}
    r = client.post("/v1/recordings", headers=_auth(keys["team-red/admin"].key), data=form, files=files)
    assert r.status_code == 202, r.text
    job = r.json()["job_id"]
    # an athlete key uploading its own bytes again: the same job (idempotent), allowed
    r2 = client.post("/v1/recordings", headers=_auth(keys["team-red/bo-red"].key), data=form, files=files)
    assert r2.status_code == 202 and r2.json()["job_id"] == job
    for who in world["keys"]:
        r = client.get(f"/v1/jobs/{job}", headers=_auth(who.key))
        assert r.status_code == (200 if who.sees("bo-red") else 404), (who.name, r.text)
        if r.status_code == 404:
            assert "bo-red" not in r.text and "upload-real" not in r.text
    # the new session is listed for the team, not for the other one
    for who in world["keys"]:
        r = client.get("/v1/athletes/bo-red/sessions", headers=_auth(who.key))
        if who.sees("bo-red"):
            assert "upload-real" in {s[SESSION_ID] for s in r.json()["items"]}
        else:
            assert r.status_code == 404


def _ws_close(client, url: str, key: str | None, hello: dict | None) -> tuple[int, str]:
    """Close code and error text of a websocket the server refuses."""
    with client.websocket_connect(url, headers=_auth(key)) as ws:
        if hello is not None:
            ws.send_json(hello)
        elif key is None:  # without a header the server waits for the key in the first message
            ws.send_json({"athlete_id": "ana-red"})
        message = ws.receive_json()
        assert "error" in message, message
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return closed.value.code, message["error"]


def test_websockets_refuse_missing_keys_and_foreign_athletes(world):
    client = world["client"]
    keys = {w.name: w for w in world["keys"]}
    hello = {
        ATHLETE_ID: "ana-red",
        SESSION_ID: "live-1",
        "foot": "left",
        "device_id": "dev1",
        "sampling_rate_hz": 200.0,
    }
    for key in (None, "sf_bad"):
        assert _ws_close(client, "/v1/stream", key, hello)[0] == 4401
        assert _ws_close(client, "/v1/stream/subscribe", key, None)[0] == 4401
    assert _ws_close(client, "/v1/stream", keys["team-red/coach"].key, hello)[0] == 4403
    assert _ws_close(client, "/v1/stream", keys["team-red/bo-red"].key, hello)[0] == 4403
    code, text = _ws_close(client, "/v1/stream", keys["team-blue/admin"].key, hello)
    assert code == 4403 and RED not in text
    # subscribing to another team's athlete looks exactly like subscribing to an unknown one
    blue = keys["team-blue/admin"].key
    other = _ws_close(client, "/v1/stream/subscribe?athlete_id=ana-red", blue, None)
    ghost = _ws_close(client, f"/v1/stream/subscribe?athlete_id={GHOST}", blue, None)
    assert other[0] == ghost[0] == 4403
    assert other[1].replace("ana-red", "{id}") == ghost[1].replace(GHOST, "{id}")
    athlete = keys["team-red/ana-red"].key
    assert _ws_close(client, "/v1/stream/subscribe?athlete_id=bo-red", athlete, None)[0] == 4403
