"""Device formats and column/unit mappings through the upload route and the batch manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from support.api import wait_job
from support.paths import SHARED_DATA

from strideflow.analytics.discovery import DiscoveryError, find_recordings
from strideflow.hardware.schema import ACC, GYR, STANDARD_GRAVITY_MPS2
from strideflow.hardware.simulator import write_dataset
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.settings import ServiceSettings

ATHLETE = "A001"
HEADER = ["Zeit", "Beschl. vorne", "Beschl. links", "Beschl. oben", "Dreh vorne", "Dreh links", "Dreh oben"]
MAPPING = ",".join(f"{k}={v}" for k, v in zip(("t", *ACC, *GYR), HEADER, strict=True))
WALKS = SHARED_DATA / "footprints_walks"


@pytest.fixture(scope="module")
def odd_file(tmp_path_factory) -> Path:
    """A simulated left-foot walk written with an unknown header, acc in g and gyro in rad/s."""
    out = tmp_path_factory.mktemp("sim")
    write_dataset(out, athletes=1, minutes=0.5, seed=5, activity="walk")
    s = pl.read_parquet(out / ATHLETE / "S01" / "left.parquet")
    table = pl.DataFrame(
        {
            HEADER[0]: s["t"],
            **{h: s[c] / STANDARD_GRAVITY_MPS2 for h, c in zip(HEADER[1:4], ACC, strict=True)},
            **{h: np.radians(s[c].to_numpy()) for h, c in zip(HEADER[4:], GYR, strict=True)},
        }
    )
    path = out / "messung.csv"
    table.write_csv(path)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    app = create_app(ServiceSettings(data_dir=tmp_path_factory.mktemp("data")))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {create_key(app.state.db, 'team1', 'admin')}"}
        app.state.db.ensure_athlete("team1", ATHLETE)
        yield client, headers


def post(client, headers, path: Path, **fields):
    data = {"athlete_id": ATHLETE, **fields}
    return client.post(
        "/v1/recordings", headers=headers, files={"file": (path.name, path.read_bytes())}, data=data
    )


def test_upload_with_mapping_is_analysed(service, odd_file):
    client, headers = service
    r = post(
        client, headers, odd_file, session_id="M1", foot="left", columns=MAPPING, units="acc=g,gyr=rad/s"
    )
    assert r.status_code == 202, r.text
    job = wait_job(client, headers, r.json()["job_id"])
    assert job["status"] == "done", job
    strides = client.get("/v1/sessions/M1/strides", headers=headers, params={"athlete_id": ATHLETE}).json()
    assert len(strides["items"]) > 10


def test_upload_without_mapping_is_422_naming_the_columns_seen(service, odd_file):
    client, headers = service
    r = post(client, headers, odd_file, session_id="M2", foot="left")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("messung.csv") and "Columns seen: 'Zeit', 'Beschl. vorne'" in detail
    r = post(client, headers, odd_file, session_id="M2", foot="left", columns="acc_q=Zeit")
    assert r.status_code == 422 and "unknown channel 'acc_q'" in r.json()["detail"]
    r = post(client, headers, odd_file, session_id="M2", format="matlab")
    assert r.status_code == 422 and "format" in str(r.json()["detail"])


@pytest.mark.skipif(not WALKS.is_dir(), reason=f"footprint walks not found at {WALKS}")
def test_upload_of_a_device_export_is_detected(service):
    client, headers = service
    r = post(client, headers, WALKS / "SensorConnectData_34.csv", session_id="L34", foot="right")
    assert r.status_code == 202, r.text
    assert wait_job(client, headers, r.json()["job_id"])["status"] == "done"


def test_manifest_format_columns_and_units(tmp_path, odd_file):
    (tmp_path / "a.csv").write_bytes(odd_file.read_bytes())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "path,athlete_id,session_id,foot,format,columns,units\n"
        f'a.csv,{ATHLETE},S1,left,csv,"{MAPPING}","acc=g,gyr=rad/s"\n'
    )
    rec = find_recordings(tmp_path).row(0, named=True)
    assert (rec["format"], rec["columns"], rec["units"]) == ("csv", MAPPING, "acc=g,gyr=rad/s")
    manifest.write_text(f'path,athlete_id,session_id,columns\na.csv,{ATHLETE},S1,"acc_x=A,acc_x=B"\n')
    with pytest.raises(DiscoveryError, match=r"line 2: --columns: acc_x given twice"):
        find_recordings(tmp_path)


def test_batch_reads_mapped_and_device_files_from_the_manifest(tmp_path, odd_file):
    from strideflow.analytics import partitions
    from strideflow.analytics.batch import BatchSettings, run_batch

    data = tmp_path / "data"
    data.mkdir()
    (data / "odd.csv").write_bytes(odd_file.read_bytes())
    rows = [f'odd.csv,{ATHLETE},S1,left,csv,"{MAPPING}","acc=g,gyr=rad/s"']
    if WALKS.is_dir():
        rows.append(f"{WALKS / 'SensorConnectData_34.csv'},{ATHLETE},L34,right,lord,,")
    (data / "manifest.csv").write_text(
        "path,athlete_id,session_id,foot,format,columns,units\n" + "\n".join(rows) + "\n"
    )
    out = tmp_path / "out"
    summary = run_batch(data, out, BatchSettings(workers=1))
    assert summary.recordings_failed == 0, summary.failures
    assert summary.recordings_done == len(rows)
    strides = partitions.read_partition(out, "strides", ATHLETE, "S1")
    assert strides is not None and strides.height > 10


def test_an_older_database_gains_the_read_options_column(tmp_path):
    import sqlite3

    from strideflow.service.db import Database

    path = tmp_path / "old.db"
    Database(f"sqlite:///{path}").create_all()
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE recordings DROP COLUMN read_options")  # as a database made before it
    con.commit()
    con.close()
    db = Database(f"sqlite:///{path}")
    db.create_all()
    db.create_all()  # idempotent
    con = sqlite3.connect(path)
    assert "read_options" in [r[1] for r in con.execute("PRAGMA table_info(recordings)")]
    con.close()
