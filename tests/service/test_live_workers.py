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
from strideflow.service.live.workers import MAX_LOSSES, RemoteAnalyzer

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


def _kill(link) -> None:
    os.kill(link.process.pid, signal.SIGKILL)
    link.process.wait(timeout=10)


async def _until(check, what: str, timeout_s: float = 60.0) -> None:
    """Wait (without a timed assert on speed: the bound only stops a hung test) until `check()`."""
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_a_dead_worker_is_replaced_and_its_streams_rebuilt_from_the_logs(tmp_path, devices):
    """A worker process killed mid-stream is replaced; the streams it held are rebuilt there from
    their logs (the packets that failed while it was down included), rows of later packets arrive
    again, and the stored session is that of one uninterrupted in-process run."""
    whole = asyncio.run(_run(tmp_path / "whole", 0, devices))

    async def go():
        hub = _hub(tmp_path / "killed", 1)
        await hub.start()
        try:
            first, replies = await _stream(hub, devices, slice(0, 260), end=False)
            pool = hub._workers
            dead = pool.links[0]
            _kill(dead)
            # packets stored while the worker is down (their analysis fails, they are kept)
            down, more = await _stream(hub, devices, slice(260, 270), end=False)
            analyzers = [s.analyzer for s in hub.streams.values()]
            await _until(lambda: all(a.rebuilds_ == 1 for a in analyzers), "both streams rebuilt")
            assert pool.links[0] is not dead and pool.links[0].alive and pool.restarts_ == 1
            after, rest = await _stream(hub, devices, slice(270, None), end=True)
            return first + down, after, replies + more + rest
        finally:
            await hub.stop()

    before, after, replies = asyncio.run(go())
    stored = read_partition(tmp_path / "killed" / "results", STRIDES, ATHLETE, SESSION)
    assert stored.height > 20 and _sorted(stored).equals(_sorted(whole[1]))
    # every packet stored and acknowledged, the loss reported once per stream
    assert sorted(r["ack"] for r in replies if "ack" in r) == sorted(list(range(devices[0].n_packets)) * 2)
    assert 1 <= len([r for r in replies if "analysis_error" in r]) <= 2
    # rows resume: the rows of packets sent after the rebuild are the uninterrupted run's
    resumed = [m for m in after if m.get("closed_by") == "packet"]
    assert {m["type"] for m in resumed} == {"stance", "stride"}
    assert min(m["closed_by_seq"] for m in resumed) >= 270
    assert set(_rows(resumed)) <= set(_rows(whole[0]))
    assert len(before) + len(after) <= len(whole[0])


def test_a_stream_whose_worker_keeps_dying_is_given_up_after_max_losses(tmp_path, devices):
    """Each loss of the worker holding a stream counts against it: after MAX_LOSSES rebuilds the
    next loss leaves it without analysis (no endless restarts), the pool keeps a live worker, and
    its packets are still stored and acknowledged."""

    async def go():
        hub = _hub(tmp_path, 1)
        await hub.start()
        try:
            left = devices[:1]
            _, replies = await _stream(hub, left, slice(0, 30), end=False)
            pool = hub._workers
            (analyzer,) = [s.analyzer for s in hub.streams.values()]
            for loss in range(1, MAX_LOSSES + 2):
                dead = pool.links[0]
                _kill(dead)
                if loss <= MAX_LOSSES:
                    await _until(lambda n=loss: analyzer.rebuilds_ == n, f"rebuild {loss}")
                    assert analyzer.link.alive and not analyzer.abandoned
            await _until(lambda: analyzer.abandoned, "the stream given up")
            await _until(lambda: pool.links[0].alive, "a replacement worker")
            _, more = await _stream(hub, left, slice(30, 60), end=False)
            return replies + more, pool.restarts_, analyzer
        finally:
            await hub.stop()

    replies, restarts, analyzer = asyncio.run(go())
    assert restarts == MAX_LOSSES + 1 and analyzer.rebuilds_ == MAX_LOSSES
    assert analyzer.losses == MAX_LOSSES + 1
    assert sorted(r["ack"] for r in replies if "ack" in r) == list(range(60))
    assert len([r for r in replies if "analysis_error" in r]) == 1
