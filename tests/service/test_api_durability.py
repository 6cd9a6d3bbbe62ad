"""A job interrupted by SIGKILL of the whole server finishes after restart, with no duplicated strides.

The server runs as `strideflow serve` in its own process group; the test uploads a session,
waits until its job is `running`, kills the group (server and analysis worker) with SIGKILL,
checks the database still says `running`, restarts the server on the same data folder and waits
for the job: its strides must equal analysing the files directly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from strideflow.analytics import partitions
from strideflow.analytics.pipeline import analyze_samples
from strideflow.hardware.schema import FOOT, IC_T, STRIDE_INDEX
from strideflow.hardware.simulator import write_dataset
from strideflow.ingest import read_recording
from strideflow.service.auth import create_key
from strideflow.service.db import Database, Job
from strideflow.service.settings import ServiceSettings

STRIDEFLOW = Path(sys.executable).with_name("strideflow")
ATHLETE, SESSION = "A001", "S01"


class Server:
    """`strideflow serve --port 0` in a new process group; `url` parsed from uvicorn's log."""

    def __init__(self, data: Path, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [str(STRIDEFLOW), "serve", "--port", "0", "--data", str(data)],
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = self._wait_url()

    def _wait_url(self, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.findall(r"Uvicorn running on (http://[\d.]+:\d+)", self.log.read_text())
            if found:
                return found[-1]
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill_group(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill_group()
        # No worker may outlive the server.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_sigkill_during_job_then_restart_finishes_without_duplicates(tmp_path):
    sim = tmp_path / "sim"
    write_dataset(sim, athletes=1, minutes=20.0, seed=5, activity="walk")
    files = {foot: sim / ATHLETE / SESSION / f"{foot}.parquet" for foot in ("left", "right")}
    data = tmp_path / "data"
    settings = ServiceSettings(data_dir=data)
    data.mkdir()
    db = Database(settings.resolved_database_url)
    db.create_all()
    headers = {"Authorization": f"Bearer {create_key(db, 'team', 'admin')}"}
    db.ensure_athlete("team", ATHLETE)
    server = Server(data, tmp_path / "server1.log")
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            jobs = []
            for foot, path in files.items():
                r = client.post(
                    "/v1/recordings",
                    files={"file": (path.name, path.read_bytes())},
                    data={"athlete_id": ATHLETE, "session_id": SESSION, "foot": foot},
                )
                assert r.status_code == 202, r.text
                jobs.append(r.json()["job_id"])
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{jobs[0]}").json()["status"] != "running":
                assert time.monotonic() < deadline, "job never started"
                time.sleep(0.02)
        server.kill_group()
    finally:
        server.stop()
    with db.session() as s:
        states = {j: s.get(Job, j).status for j in jobs}
    assert "running" in states.values(), states  # killed mid-job, not after it

    server = Server(data, tmp_path / "server2.log")
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            deadline = time.monotonic() + 240
            for job in jobs:
                while (body := client.get(f"/v1/jobs/{job}").json())["status"] not in ("done", "failed"):
                    assert time.monotonic() < deadline, f"job not finished after restart: {body}"
                    time.sleep(0.2)
                assert body["status"] == "done", body
            items, cursor = [], None
            while True:
                params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
                page = client.get(f"/v1/sessions/{SESSION}/strides", params=params).json()
                items += page["items"]
                if (cursor := page["next_cursor"]) is None:
                    break
    finally:
        server.stop()
    assert "re-queued 1 job" in (tmp_path / "server2.log").read_text()

    direct = []
    for foot, path in files.items():
        rec = read_recording(path, foot=foot, athlete_id=ATHLETE, session_id=SESSION)
        direct.append(analyze_samples(rec.samples, rec.sampling_rate_hz).strides)
    expected = pl.concat(direct).sort(FOOT, STRIDE_INDEX)
    served = pl.DataFrame(items)
    assert served.height == expected.height > 1000
    assert served.select(FOOT, STRIDE_INDEX).n_unique() == served.height
    assert served.select(FOOT, STRIDE_INDEX).equals(expected.select(FOOT, STRIDE_INDEX))
    assert served[IC_T].to_list() == pytest.approx(expected[IC_T].to_list())
    stored = partitions.read_partition(settings.results_dir, partitions.STRIDES, ATHLETE, SESSION)
    assert stored.height == expected.height
