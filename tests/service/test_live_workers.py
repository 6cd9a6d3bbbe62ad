"""Live analysis in worker processes (`service.live.workers`, issue 19): the rows, the stored
session and a restart from the log are those of the analysis on the server's own thread."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import polars as pl
import pytest

from strideflow.analytics.partitions import CURVES, STRIDES, read_partition
from strideflow.hardware import schema as S
from strideflow.hardware.devices import SimulatedDevice
from strideflow.hardware.simulator import SimulationSettings
from strideflow.ingest.stream_receiver import StreamHello
from strideflow.service.live import WAL_DIRNAME, LiveHub
from strideflow.service.live.analysis import MAX_IN_FLIGHT
from strideflow.service.live.workers import RemoteAnalyzer

ATHLETE, SESSION, TEAM = "A1", "S1", "T1"


@pytest.fixture(scope="module")
def devices():
    """Two feet of a 40 s simulated walk (the live warm-up is 20 s)."""
    return SimulatedDevice.simulate(SimulationSettings(duration_s=40.0, sampling_rate_hz=200.0, seed=5))


def _hub(root, workers: int) -> LiveHub:
    return LiveHub(root / WAL_DIRNAME, root / "results", analysis_workers=workers, store_interval_s=3600)


async def _stream(hub: LiveHub, devices, packets: slice, end: bool) -> tuple[list[dict], list[dict]]:
    """Send the devices' packets in `packets` (interleaved, 3 per message batch); the subscriber's
    messages and the devices' replies."""
    sub = await hub.subscribe(TEAM)
    replies: list[dict] = []

    async def send(message: dict) -> None:
        replies.append(message)

    owners = {d.device_id: object() for d in devices}
    streams = {}
    for d in devices:
        hello = StreamHello.parse(d.hello(ATHLETE, SESSION))
        streams[d.device_id] = await hub.attach(hello, TEAM, owners[d.device_id])
    seqs = list(range(devices[0].n_packets))[packets]
    for lo in range(0, len(seqs), 3):
        for d in devices:
            batch = [(d.packet(s), time.time()) for s in seqs[lo : lo + 3]]
            await hub.receive(streams[d.device_id], batch, owners[d.device_id], send)
    if end:
        for d in devices:
            await hub.end(streams[d.device_id], owners[d.device_id])
    messages = []
    while not sub.queue.empty():
        messages.append(sub.queue.get_nowait())
    hub.unsubscribe(sub)
    return messages, replies


def _rows(messages: list[dict]) -> list[tuple]:
    """The messages without the server's clock fields, in a stable order."""
    drop = {"published_at", "received_at"}
    rows = [tuple(sorted((k, v) for k, v in m.items() if k not in drop)) for m in messages]
    return sorted(rows, key=repr)


async def _run(root, workers: int, devices, split: int | None = None):
    """Stream everything through a hub (with `split`: stop the hub after that many packets and go on
    in a new hub rebuilt from the logs); the published rows and the stored tables."""
    messages = []
    hub = _hub(root, workers)
    await hub.start()
    try:
        if split is not None:
            got, _ = await _stream(hub, devices, slice(0, split), end=False)
            messages += got
            await hub.stop()
            hub = _hub(root, workers)
            await hub.start()
        got, replies = await _stream(hub, devices, slice(split or 0, None), end=True)
        messages += got
        kinds = {type(s.analyzer) for s in hub.streams.values()}
    finally:
        await hub.stop()
    assert not [r for r in replies if "analysis_error" in r]
    stored = read_partition(root / "results", STRIDES, ATHLETE, SESSION)
    curves = read_partition(root / "results", CURVES, ATHLETE, SESSION)
    return messages, stored, curves, kinds


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(S.FOOT, S.IC_T)


def test_worker_processes_give_the_rows_and_tables_of_the_in_process_analysis(tmp_path, devices):
    thread = asyncio.run(_run(tmp_path / "thread", 0, devices))
    workers = asyncio.run(_run(tmp_path / "workers", 2, devices))
    assert RemoteAnalyzer in workers[3] and RemoteAnalyzer not in thread[3]
    kinds = {m["type"] for m in workers[0]}
    assert kinds == {"stance", "stride"}
    assert len(workers[0]) == len(thread[0]) > 20
    assert _rows(workers[0]) == _rows(thread[0])
    assert _sorted(workers[1]).equals(_sorted(thread[1]))
    assert workers[2].sort(S.FOOT, "phase", "pct").equals(thread[2].sort(S.FOOT, "phase", "pct"))


def test_a_restart_rebuilds_the_worker_analyzers_from_the_logs(tmp_path, devices):
    """Stopped after 26 s of packets (no CLOSE record), a new hub replays the logs in its workers and
    goes on: the stored session is that of one uninterrupted in-process run, and the rows published
    after the restart are the uninterrupted run's rows closed by those packets."""
    whole = asyncio.run(_run(tmp_path / "whole", 0, devices))
    split = asyncio.run(_run(tmp_path / "split", 2, devices, split=260))
    assert _sorted(split[1]).equals(_sorted(whole[1]))
    assert set(_rows(split[0])) <= set(_rows(whole[0]))
    closing = [m for m in whole[0] if m.get("closed_by_seq") is not None and m["closed_by_seq"] >= 260]
    assert set(_rows(closing)) <= set(_rows(split[0]))


def test_a_dead_worker_fails_its_packets_without_losing_them(tmp_path, devices):
    """A worker process killed mid-stream: the packets are still stored and acknowledged, the
    failure is reported once per stream, nothing waits forever."""

    async def go():
        hub = _hub(tmp_path, 1)
        await hub.start()
        try:
            left = devices[:1]
            _, replies = await _stream(hub, left, slice(0, 50), end=False)
            link = hub._workers.links[0]
            os.kill(link.process.pid, signal.SIGKILL)
            link.process.wait(timeout=10)
            _, more = await asyncio.wait_for(_stream(hub, left, slice(50, 80), end=False), timeout=30)
            for _ in range(100):  # the failure is reported when the worker's loss is seen
                if any("analysis_error" in r for r in more):
                    break
                await asyncio.sleep(0.1)
            return replies + more, hub.streams
        finally:
            await hub.stop()

    replies, streams = asyncio.run(go())
    acked = sorted(r["ack"] for r in replies if "ack" in r)
    assert acked == list(range(80))
    errors = [r for r in replies if "analysis_error" in r]
    # the first packet without rows: at most MAX_IN_FLIGHT packets were on their way at the kill
    assert len(errors) == 1 and 50 - MAX_IN_FLIGHT <= errors[0]["seq"] < 80
