"""The batch on a real `dask scheduler` and two `dask worker` processes gives the local run's output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from strideflow.analytics import partitions
from strideflow.analytics.batch import BatchSettings, TeamBatch
from strideflow.hardware.simulator import write_dataset

pytestmark = pytest.mark.slow


def _dask_command() -> list[str]:
    script = Path(sys.executable).parent / "dask"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dask"]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` on a free loopback port and two single-thread `dask worker` processes."""
    scheduler_file = tmp_path / "scheduler.json"
    env = os.environ | {"POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 - closed after the processes stop
    common = {"stdout": log, "stderr": subprocess.STDOUT, "env": env, "start_new_session": True}
    procs = [
        subprocess.Popen(
            [
                *_dask_command(),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **common,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline:
            assert procs[0].poll() is None, (tmp_path / "dask.log").read_text()
            # the scheduler creates the file before it writes it: wait for a whole document
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
                address = json.loads(scheduler_file.read_text())["address"]
            if address is None:
                time.sleep(0.1)
        assert address is not None, (tmp_path / "dask.log").read_text()
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        *_dask_command(),
                        "worker",
                        "--scheduler-file",
                        str(scheduler_file),
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--no-dashboard",
                    ],
                    **common,
                )
            )
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address, procs
    finally:
        _stop(procs)
        log.close()


def test_external_scheduler_gives_the_local_result(dask_cluster, tmp_path):
    address, procs = dask_cluster
    data = tmp_path / "data"
    write_dataset(data, athletes=2, minutes=0.75, sessions=2, seed=5)
    local = TeamBatch(BatchSettings(workers=2)).run(data, tmp_path / "local")
    remote = TeamBatch(BatchSettings(scheduler=address)).run(data, tmp_path / "remote")
    assert remote.summary_.scheduler == address and remote.summary_.workers == 2
    assert remote.summary_.sessions_done == local.summary_.sessions_done == 4
    # the tasks ran in the worker processes we started, not here
    worker_pids = {r["pid"] for r in remote.results_}
    started = {c.pid for p in procs[1:] for c in _children(p.pid)} | {p.pid for p in procs[1:]}
    assert worker_pids <= started and os.getpid() not in worker_pids
    assert remote.summary_.peak_rss_mb > local.summary_.peak_rss_mb * 0.2
    for table in partitions.TABLES:
        for athlete in ("A001", "A002"):
            for session in ("S01", "S02"):
                a = partitions.read_partition(tmp_path / "local", table, athlete, session)
                b = partitions.read_partition(tmp_path / "remote", table, athlete, session)
                assert (a is None) == (b is None)
                if a is not None:
                    assert_frame_equal(a, b)


def _children(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
