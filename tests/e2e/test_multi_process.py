"""Two `strideflow serve` processes on one data folder and one PostgreSQL database.

A device streams into process A while a coach subscribes on process B: B's subscriber gets every
stance and stride row A publishes (PostgreSQL LISTEN/NOTIFY), a subscriber resuming on B with
`since` gets them again from the replay table, the device's stream is refused by B while A holds
it and taken over by B once A lets it go; each process lists the streams the other holds; uploads
sent to both processes are each analysed by exactly one run. Needs a PostgreSQL server:
STRIDEFLOW_TEST_DATABASE_URL (a SQLAlchemy URL such as
postgresql+psycopg://postgres@127.0.0.1:5432/postgres whose user may create databases); each test
creates and drops its own database.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import polars as pl
import pytest

from strideflow.benchmarks.stream import Server
from strideflow.hardware.devices import SimulatedDevice, stream_device
from strideflow.hardware.simulator import SimulationSettings, write_dataset
from strideflow.service.auth import create_key
from strideflow.service.db import DONE, Database, Job

URL = os.environ.get("STRIDEFLOW_TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(
    not URL,
    reason="needs PostgreSQL: set STRIDEFLOW_TEST_DATABASE_URL=postgresql+psycopg://user@host:port/db",
)
TEAM = "T1"


@pytest.fixture
def pg_url():
    if not URL:
        pytest.skip("needs PostgreSQL: set STRIDEFLOW_TEST_DATABASE_URL")
    """A fresh database on the test server (dropped afterwards), as a SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    from strideflow.service.live.publish import psycopg_dsn

    name = f"sf_multi_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(psycopg_dsn(URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(psycopg_dsn(URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def two_servers(tmp_path, pg_url):
    db = Database(pg_url)
    db.create_all()
    for athlete in ("A001", "A002", "LIVE1"):
        db.ensure_athlete(TEAM, athlete)
    keys = {"admin": create_key(db, TEAM, "admin"), "coach": create_key(db, TEAM, "coach")}
    data = tmp_path / "data"
    env = {"STRIDEFLOW_DATABASE_URL": pg_url}
    a = Server(data, log_path=tmp_path / "a.log", env=env).start()
    try:
        b = Server(data, log_path=tmp_path / "b.log", env=env).start()
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b, keys, db
    finally:
        a.stop()
        b.stop()
        db.dispose()


async def _subscribe(url: str, key: str, since: float | None, messages: list, stop: asyncio.Event) -> dict:
    from websockets.asyncio.client import connect

    query = "" if since is None else f"?since={since}"
    async with connect(
        f"{url}/v1/stream/subscribe{query}", additional_headers={"Authorization": f"Bearer {key}"}
    ) as ws:
        subscribed = json.loads(await ws.recv())["subscribed"]
        while not stop.is_set():
            try:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
            except TimeoutError:
                continue
    return subscribed


def _rows(messages: list[dict]) -> set[tuple]:
    return {(m["type"], m["foot"], m["ic_t"]) for m in messages}


@pytest.mark.slow
@needs_pg
def test_rows_streamed_into_one_process_reach_subscribers_of_the_other(two_servers):
    a, b, keys, _ = two_servers
    device = SimulatedDevice.simulate(SimulationSettings(duration_s=40.0, seed=3), feet=("left",))[0]

    async def run():
        live: list[dict] = []
        stop = asyncio.Event()
        listener = asyncio.ensure_future(_subscribe(b.url, keys["coach"], None, live, stop))
        await asyncio.sleep(1.0)
        t0 = time.time()
        report = await stream_device(device, a.url, keys["admin"], "LIVE1", "S1", speed="max", window=64)
        deadline = time.monotonic() + 30
        while sum(m["type"] == "stride" for m in live) < report.end_reply["strides"]:
            assert time.monotonic() < deadline, f"B's subscriber got {len(live)} messages"
            await asyncio.sleep(0.1)
        stop.set()
        await listener
        # A subscriber resuming on B from before the stream gets the same rows from the replay table.
        replayed: list[dict] = []
        stop2 = asyncio.Event()
        resumed = asyncio.ensure_future(_subscribe(b.url, keys["coach"], t0, replayed, stop2))
        await asyncio.sleep(2.0)
        stop2.set()
        return report, live, await resumed, replayed

    report, live, resumed, replayed = asyncio.run(run())
    strides = [m for m in live if m["type"] == "stride"]
    stances = [m for m in live if m["type"] == "stance"]
    assert len(strides) == report.end_reply["strides"] > 5
    assert len(stances) >= len(strides) - 1  # every final row but the last had its stance row first
    assert {m["device_id"] for m in live} == {device.device_id}
    assert {m["athlete_id"] for m in live} == {"LIVE1"}
    assert resumed["replayed"] == len(live) and _rows(replayed) == _rows(live)


@pytest.mark.slow
@needs_pg
def test_a_stream_held_by_one_process_is_refused_by_the_other_then_handed_over(two_servers):
    from websockets.asyncio.client import connect

    a, b, keys, _ = two_servers
    device = SimulatedDevice.simulate(SimulationSettings(duration_s=20.0, seed=4), feet=("right",))[0]
    auth = {"Authorization": f"Bearer {keys['admin']}"}
    hello = json.dumps(device.hello("LIVE1", "S2"))

    async def run():
        async with connect(f"{a.url}/v1/stream", additional_headers=auth) as on_a:
            await on_a.send(hello)
            assert json.loads(await on_a.recv())["resume_from"] is None
            await on_a.send(device.packet(0))
            assert json.loads(await on_a.recv()) == {"ack": 0}
            async with connect(f"{b.url}/v1/stream", additional_headers=auth) as on_b:
                await on_b.send(hello)
                refused = json.loads(await on_b.recv())
        # A lets the stream go once its connection is closed and the session stored.
        deadline = time.monotonic() + 20
        while True:
            async with connect(f"{b.url}/v1/stream", additional_headers=auth) as on_b:
                await on_b.send(hello)
                reply = json.loads(await on_b.recv())
                if "resume_from" in reply:
                    await on_b.send(device.packet(1))
                    return refused, reply, json.loads(await on_b.recv())
            assert time.monotonic() < deadline, reply
            await asyncio.sleep(0.2)

    refused, taken, ack = asyncio.run(run())
    assert refused["code"] == 1013 and "another server process" in refused["error"]
    assert taken["resume_from"] == 0 and ack == {"ack": 1}


@pytest.mark.slow
@needs_pg
def test_streams_of_one_athlete_into_both_processes_record_both_mountings(two_servers, tmp_path):
    """Issue 15: the left foot streams into A while the right foot streams into B (one athlete, one
    session): each process's live store records its foot's mounting in the athlete's one mountings
    file, under its lock, and neither update is lost; the stored strides carry both ids."""
    from strideflow.analytics.mountings import read_mountings
    from strideflow.analytics.partitions import STRIDES, read_partition
    from strideflow.hardware.schema import FOOT, MOUNTING_ID

    a, b, keys, _ = two_servers
    devices = SimulatedDevice.simulate(SimulationSettings(duration_s=40.0, seed=6), feet=("left", "right"))

    async def run():
        return await asyncio.gather(
            *[
                stream_device(d, server.url, keys["admin"], "LIVE1", "S3", speed="max", window=64)
                for d, server in zip(devices, (a, b), strict=True)
            ]
        )

    reports = asyncio.run(run())
    results = tmp_path / "data" / "results"
    stored = read_partition(results, STRIDES, "LIVE1", "S3")
    assert stored.height == sum(r.end_reply["strides"] for r in reports)
    mountings = {m.foot: m for m in read_mountings(results, "LIVE1")}
    assert sorted(mountings) == ["left", "right"]
    for foot, device in zip(("left", "right"), devices, strict=True):
        m = mountings[foot]
        assert (m.mounting_id, m.device_id, m.sessions) == (f"{foot}-S3-1", device.device_id, ("S3",))
        rows = stored.filter(pl.col(FOOT) == foot)
        assert set(rows[MOUNTING_ID]) == {m.mounting_id} and m.n_strides == rows.height


@pytest.mark.slow
@needs_pg
def test_each_process_lists_the_streams_the_other_holds(two_servers):
    from websockets.asyncio.client import connect

    a, b, keys, db = two_servers
    other_athlete = create_key(db, TEAM, "athlete", "A001")
    device = SimulatedDevice.simulate(SimulationSettings(duration_s=20.0, seed=5), feet=("left",))[0]
    auth = {"Authorization": f"Bearer {keys['admin']}"}

    def listing(server, key: str) -> list[dict]:
        r = httpx.get(
            f"http://127.0.0.1:{server.port}/v1/streams",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()["items"]

    async def until(server, key: str, done, what: str) -> list[dict]:
        deadline = time.monotonic() + 20
        while True:
            items = await asyncio.to_thread(listing, server, key)
            if done(items):
                return items
            assert time.monotonic() < deadline, f"{what}: {items}"
            await asyncio.sleep(0.3)

    async def run():
        async with connect(f"{a.url}/v1/stream", additional_headers=auth) as on_a:
            await on_a.send(json.dumps(device.hello("LIVE1", "S3")))
            assert json.loads(await on_a.recv())["resume_from"] is None
            for seq in range(3):
                await on_a.send(device.packet(seq))
                assert json.loads(await on_a.recv()) == {"ack": seq}
            seen_by_b = await until(
                b, keys["coach"], lambda items: items and items[0]["last_seq"] == 2, "B lists A's stream"
            )
            seen_by_a = await asyncio.to_thread(listing, a, keys["coach"])
            hidden = await asyncio.to_thread(listing, b, other_athlete)
        # A lets the stream go once the connection is closed and the session stored: no one holds it.
        gone = await until(b, keys["coach"], lambda items: not items, "B stops listing the released stream")
        return seen_by_b, seen_by_a, hidden, gone

    seen_by_b, seen_by_a, hidden, gone = asyncio.run(run())
    key = ("LIVE1", "S3", "left", device.device_id)
    assert [(i["athlete_id"], i["session_id"], i["foot"], i["device_id"]) for i in seen_by_b] == [key]
    assert [(i["athlete_id"], i["session_id"], i["foot"], i["device_id"]) for i in seen_by_a] == [key]
    ours, theirs = seen_by_a[0], seen_by_b[0]
    assert theirs["connected"] and not theirs["ended"]
    assert theirs["samples"] == ours["samples"] == sum(device.packet_sizes[:3])
    assert theirs["sampling_rate_hz"] == ours["sampling_rate_hz"] == device.sampling_rate_hz
    assert hidden == [] and gone == []


@pytest.mark.slow
@needs_pg
def test_uploads_to_both_processes_run_each_job_once(two_servers, tmp_path):
    a, b, keys, db = two_servers
    sim = tmp_path / "sim"
    write_dataset(sim, athletes=2, minutes=2.0, seed=7, activity="walk")
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    jobs = []
    uploads = [(athlete, foot) for athlete in ("A001", "A002") for foot in ("left", "right")]
    for i, (athlete, foot) in enumerate(uploads):
        server = (a, b)[i % 2]
        path = sim / athlete / "S01" / f"{foot}.parquet"
        r = httpx.post(
            f"http://127.0.0.1:{server.port}/v1/recordings",
            headers=headers,
            files={"file": (path.name, path.read_bytes())},
            data={"athlete_id": athlete, "session_id": "S01", "foot": foot},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        jobs.append(r.json()["job_id"])
    deadline = time.monotonic() + 240
    while True:
        with db.session() as s:
            rows = [s.get(Job, j) for j in jobs]
            s.expunge_all()
        if all(r.status in (DONE, "failed") for r in rows):
            break
        assert time.monotonic() < deadline, [(r.id, r.status) for r in rows]
        time.sleep(0.3)
    assert [r.status for r in rows] == [DONE] * len(jobs), [r.error for r in rows]
    # Claimed once each: one attempt, by one of the two server processes.
    assert [r.attempts for r in rows] == [1] * len(jobs)
    assert all(r.claimed_by for r in rows)
    with httpx.Client(base_url=f"http://127.0.0.1:{b.port}", headers=headers, timeout=60) as client:
        for athlete in ("A001", "A002"):
            page = client.get(f"/v1/athletes/{athlete}/sessions").json()
            assert [s["session_id"] for s in page["items"]] == ["S01"], page


def test_workers_on_the_embedded_store_exit_2_naming_postgresql(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "STRIDEFLOW_DATABASE_URL"}
    cmd = [sys.executable, "-c", "from strideflow.service.cli import main; main()"]
    args = ["serve", "--data", str(tmp_path), "--workers", "2"]
    result = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "needs a PostgreSQL store" in result.stderr and "STRIDEFLOW_DATABASE_URL" in result.stderr


@pytest.mark.skipif(
    bool(URL), reason="the PostgreSQL pass (conftest) gives every data folder a PostgreSQL store"
)
def test_a_second_server_on_an_sqlite_folder_is_refused(tmp_path):
    from fastapi.testclient import TestClient

    from strideflow.service.app import SharedStoreError, create_app
    from strideflow.service.instances import Instance
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=tmp_path)
    with TestClient(create_app(settings)) as first:
        assert first.get("/health").status_code == 200
        with pytest.raises(SharedStoreError, match="PostgreSQL"):
            with TestClient(create_app(settings)):
                pass
        assert first.get("/health").status_code == 200
    with TestClient(create_app(settings)) as again:  # the first one's lock went with it
        assert again.get("/health").status_code == 200
    assert Instance(tmp_path).others() == []


def test_a_dead_server_process_is_seen_dead_at_once_and_only_its_jobs_are_requeued(tmp_path):
    from strideflow.service.db import QUEUED, RUNNING
    from strideflow.service.instances import Instance
    from strideflow.service.jobs import requeue_unfinished

    code = (
        "import sys, time; from strideflow.service.instances import Instance; "
        f"i = Instance({str(tmp_path)!r}).acquire(); print(i.id, flush=True); time.sleep(600)"
    )
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        other_id = other.stdout.readline().strip()
        me = Instance(tmp_path).acquire()
        assert me.is_alive(other_id) and me.others() == [other_id]
        db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        db.create_all()
        db.ensure_athlete("T1", "A1")
        db.ensure_session("A1", "S1")
        with db.session() as s:
            for job_id, owner in (("mine", me.id), ("theirs", other_id), ("nobody", None)):
                s.add(Job(id=job_id, athlete_id="A1", session_id="S1", status=RUNNING, claimed_by=owner))
        assert requeue_unfinished(db, 3, me.is_alive) == 1  # the job of no live process
        other.kill()
        other.wait()
        assert not me.is_alive(other_id) and me.others() == []
        assert requeue_unfinished(db, 3, me.is_alive) == 1  # the dead process's job
        with db.session() as s:
            states = {j: s.get(Job, j).status for j in ("mine", "theirs", "nobody")}
        assert states == {"mine": RUNNING, "theirs": QUEUED, "nobody": QUEUED}
        me.release()
        db.dispose()
    finally:
        other.kill()
        other.wait()
