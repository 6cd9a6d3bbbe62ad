"""`strideflow demo` (the README's main job): a simulated team analysed, stored, keyed and served.

The printed `curl` calls are run as printed (URL and key parsed from the output) against
`strideflow serve --data DIR`, and against the demo's own server, and must return the team's
real data.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from strideflow.analytics import partitions
from strideflow.benchmarks.stream import free_port
from strideflow.hardware.schema import ATHLETE_ID, FOOT, PRONATION_EXCURSION_DEG, SESSION_ID, VALID

CLI = [sys.executable, "-c", "from strideflow.service.cli import main; main()"]
SIM = ["--athletes", "2", "--minutes", "0.5", "--sessions", "2", "--workers", "1"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


def _calls(output: str) -> list[tuple[str, str]]:
    """(URL, bearer key) of every printed curl line."""
    calls = []
    for line in output.splitlines():
        if not line.startswith("curl "):
            continue
        words = shlex.split(line)
        header = words[words.index("-H") + 1]
        key = re.fullmatch(r"Authorization: Bearer (\S+)", header).group(1)
        calls.append((words[-1], key))
    return calls


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not come up: {log.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _check_calls(calls: list[tuple[str, str]], data: Path) -> None:
    """Every printed call answers 200 with the stored data."""
    assert len(calls) >= 3
    results = data / "results"
    stored_athletes = {
        p.name.split("=", 1)[1] for p in (results / partitions.STRIDES).glob(f"{ATHLETE_ID}=*")
    }
    seen = set()
    for url, key in calls:
        r = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 200, (url, r.text)
        items = r.json()["items"]
        assert items, f"{url} returned no data"
        path = httpx.URL(url).path
        if path == "/v1/athletes":
            assert {i[ATHLETE_ID] for i in items} == stored_athletes
            seen.add("athletes")
        elif path.endswith("/strides"):
            params = httpx.URL(url).params
            stored = partitions.read_partition(
                results, partitions.STRIDES, params[ATHLETE_ID], path.split("/")[3]
            )
            want = stored.filter(stored[FOOT] == params[FOOT])
            if params.get("valid") == "true":
                want = want.filter(want[VALID])
            want = want.sort("stride_index").head(int(params["limit"]))
            assert all(i[VALID] for i in items) or params.get("valid") != "true"
            assert [i["stride_index"] for i in items] == want["stride_index"].to_list()
            assert [i[PRONATION_EXCURSION_DEG] for i in items] == pytest.approx(
                want[PRONATION_EXCURSION_DEG].to_list()
            )
            seen.add("strides")
        elif path.endswith("/trends"):
            assert all(i["metric"] == PRONATION_EXCURSION_DEG and i["median"] is not None for i in items)
            # two sessions weeks apart per athlete: a change from baseline and a slope per 30 days
            assert {i[SESSION_ID] for i in items} == {"S01", "S02"}
            # each (foot, activity) line is its own trend (a short mixed session may hold one gait
            # only: walking S01 is never compared with running S02): a slope where it has both
            lines: dict[tuple, set] = {}
            for i in items:
                lines.setdefault((i[FOOT], i["activity"]), set()).add(i[SESSION_ID])
            assert all(
                i["slope_per_30d"] is not None
                for i in items
                if i[SESSION_ID] == "S02" and len(lines[(i[FOOT], i["activity"])]) == 2
            )
            seen.add("trends")
        elif path.endswith("/sessions"):
            assert all(i["analysed"] and i["feet"] for i in items)
            assert {i[SESSION_ID] for i in items}
            seen.add("sessions")
    assert {"athletes", "strides", "trends"} <= seen


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("demo") / "data"
    port = free_port()
    out = subprocess.run(
        [*CLI, "demo", "--no-serve", "--data", str(data), "--port", str(port), *SIM],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return data, port, out.stdout


@pytest.mark.slow
def test_demo_prints_calls_that_return_real_data_from_serve(demo_run, tmp_path):
    data, port, stdout = demo_run
    assert "check against the simulator's truth" in stdout
    assert re.search(r"recall\)\s*│\s*(9\d|100)\.\d %", stdout), "the demo lost strides against the truth"
    # the stride from standing has no truth row: counted, it read as a false detection (99.1 %)
    precision = r"precision\)\s*│\s*(99\.[5-9]|100\.0) %"
    assert re.search(precision, stdout), "the demo's detections are not all real"
    calls = _calls(stdout)
    assert all(f"127.0.0.1:{port}/" in url for url, _ in calls)
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        server = subprocess.Popen(
            [*CLI, "serve", "--data", str(data), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", server, log)
            _check_calls(calls, data)
            # the athlete key sees itself only
            athlete_key = next(k for u, k in calls if u.endswith(f"metric={PRONATION_EXCURSION_DEG}"))
            r = httpx.get(
                f"http://127.0.0.1:{port}/v1/athletes", headers={"Authorization": f"Bearer {athlete_key}"}
            )
            assert len(r.json()["items"]) == 1
        finally:
            _stop(server)


@pytest.mark.slow
def test_demo_ends_with_the_service_running_until_ctrl_c(demo_run, tmp_path):
    """Re-run on the same folder (analysed sessions are reused) without --no-serve: it serves."""
    data, _, _ = demo_run
    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [*CLI, "demo", "--data", str(data), "--port", str(port), *SIM],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc, log, timeout_s=300)
            _check_calls(_calls(log.read_text()), data)
        finally:
            code = _stop(proc, signal.SIGINT)
    assert code == 0, log.read_text()[-2000:]


def test_demo_refuses_a_taken_port_before_doing_any_work(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*CLI, "demo", "--data", str(tmp_path / "d"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
    assert out.returncode == 1
    assert f"--port {port}" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "d").exists()
