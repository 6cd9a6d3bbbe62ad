"""Every session has a date: the file's own start, else the upload or stream day, or the one given;
uploaded and streamed sessions carry dates and activities through the API."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from fastapi.testclient import TestClient
from support.api import upload, wait_job
from support.formats import physilog_file

from strideflow.benchmarks.stream import Server, create_api_key
from strideflow.hardware.devices import SimulatedDevice, stream_device
from strideflow.hardware.simulator import SimulationSettings, write_dataset
from strideflow.ingest import read_recording
from strideflow.ingest.start_time import recording_start
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.settings import ServiceSettings


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            b"Gait Up - Physilog data export\nCreated on: 2024-03-05 10:12:00\n",
            dt.datetime(2024, 3, 5, 10, 12),
        ),
        (b"Start time: 05.03.2024 08:00:00\nt,acc_x\n0,1\n", dt.datetime(2024, 3, 5, 8, 0)),
        (b"Time,acc_x\n1709626320.5,0.1\n", dt.datetime(2024, 3, 5, 8, 12, 0, 500000, tzinfo=dt.UTC)),
        (b"Time,acc_x\n1709626320500000000,0.1\n", dt.datetime(2024, 3, 5, 8, 12, 0, 500000, tzinfo=dt.UTC)),
        (b"timestamp,acc_x\n2024-03-05T08:12:00Z,0.1\n", dt.datetime(2024, 3, 5, 8, 12, tzinfo=dt.UTC)),
        (b"t,acc_x\n0.0,0.1\n0.01,0.2\n", None),  # relative time: no start
        (b"sensor,left_sensor\naxis,acc_x\n0,0.88\n", None),  # gaitmap layout: an index
        (b"Date,acc_x\n0,1\n", None),  # a column named Date is no date
    ],
    ids=["physilog", "start-time-line", "epoch-s", "epoch-ns", "iso", "relative", "gaitmap", "date-column"],
)
def test_recording_start_known_answers(head, expected):
    assert recording_start(head) == expected


def test_physilog_recording_exposes_its_start(tmp_path):
    rec = read_recording(physilog_file(tmp_path))
    assert rec.start_time == dt.datetime(2024, 3, 5, 10, 12)


def test_gaitmap_file_has_no_start(real_data):
    assert read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8).start_time is None


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    write_dataset(out, athletes=1, minutes=0.5, seed=4, activity="walk")
    return out


def test_upload_without_date_is_dated_by_the_upload_day_and_carries_activity(tmp_path, dataset):
    app = create_app(ServiceSettings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {create_key(app.state.db, 'team1', 'admin')}"}
        app.state.db.ensure_athlete("team1", "A001")
        before = dt.datetime.now(dt.UTC).date()
        jobs = [
            upload(client, headers, dataset / "A001" / "S01" / f"{foot}.parquet", foot=foot, session_id="U1")
            for foot in ("left", "right")
        ]
        given = upload(
            client, headers, dataset / "A001" / "S01" / "left.parquet", foot="left", session_id="U0",
            session_date="2024-01-02",
        )  # fmt: skip
        for r in (*jobs, given):
            assert r.status_code == 202, r.text
            assert wait_job(client, headers, r.json()["job_id"])["status"] == "done"
        after = dt.datetime.now(dt.UTC).date()
        sessions = client.get("/v1/athletes/A001/sessions", headers=headers).json()["items"]
        by_id = {s["session_id"]: s for s in sessions}
        assert by_id["U0"]["session_date"] == "2024-01-02"
        assert before.isoformat() <= by_id["U1"]["session_date"] <= after.isoformat()
        assert [s["session_id"] for s in sessions] == ["U0", "U1"]  # date order
        assert {f["activity"] for f in by_id["U1"]["feet"]} == {"walk"}
        trends = client.get(
            "/v1/athletes/A001/trends", headers=headers, params={"metric": "cadence_spm"}
        ).json()["items"]
        assert trends and all(t["session_date"] is not None and t["activity"] == "walk" for t in trends)
        assert {t["session_id"]: t["session_date"] for t in trends}["U0"] == "2024-01-02"


def test_streamed_session_carries_the_hello_date_and_activity(tmp_path):
    key = create_api_key(tmp_path, "T1", "admin", athletes=("A1",))
    device = SimulatedDevice.simulate(SimulationSettings(duration_s=40.0, seed=6), feet=("left",))[0]
    with Server(tmp_path) as server:
        report = asyncio.run(
            stream_device(device, server.url, key, "A1", "L1", speed="max", session_date="2025-02-03")
        )
        assert report.samples_acked == device.n_samples
        base = server.url.replace("ws://", "http://")
        headers = {"Authorization": f"Bearer {key}"}
        sessions = httpx.get(f"{base}/v1/athletes/A1/sessions", headers=headers).json()["items"]
        trends = httpx.get(
            f"{base}/v1/athletes/A1/trends", headers=headers, params={"metric": "cadence_spm"}
        ).json()["items"]
    assert [(s["session_id"], s["session_date"]) for s in sessions] == [("L1", "2025-02-03")]
    assert {f["activity"] for f in sessions[0]["feet"]} == {"walk"}
    assert [(t["session_id"], t["session_date"], t["activity"]) for t in trends] == [
        ("L1", "2025-02-03", "walk")
    ]
