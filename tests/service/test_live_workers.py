"""Live analysis in worker processes (`service.live.workers`, issue 19): the rows, the stored
session and a restart from the log are those of the analysis on the server's own thread."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import struct
import threading
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strideflow.analytics.partitions import CURVES, STRIDES, read_partition
from strideflow.hardware import schema as S
from strideflow.hardware.devices import SimulatedDevice
from strideflow.hardware.packets import decode_packet
from strideflow.hardware.simulator import SimulationSettings
from strideflow.ingest.stream_receiver import StreamHello, packet_block
from strideflow.service.live import WAL_DIRNAME, LiveHub
from strideflow.service.live.analysis import MAX_IN_FLIGHT
from strideflow.service.live.workers import (
    MAX_LOSSES,
    LiveRows,
    RemoteAnalyzer,
    compact_block,
    compact_packet,
)

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


_VALUES = {
    pl.Float64: st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -0.0, float("nan"), 5e-324]),
    ),
    pl.Int64: st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    pl.Boolean: st.one_of(st.none(), st.booleans()),
    pl.String: st.one_of(st.none(), st.text(max_size=8)),
}


def _rows_of(schema: dict) -> st.SearchStrategy:
    return st.lists(st.tuples(*(_VALUES[type(d)] for d in schema.values())), min_size=1, max_size=4)


def _bits(df: pl.DataFrame) -> list:
    """Every value of every column, floats as their bits (NaN, -0.0 and null told apart)."""
    out = []
    for s in df.iter_columns():
        if s.dtype == pl.Float64:
            out.append([None if v is None else struct.pack("<d", v) for v in s.to_list()])
        else:
            out.append(s.to_list())
    return [df.schema, out]


def _dict_bits(rows: list[dict]) -> list[dict]:
    return [{k: struct.pack("<d", v) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


@settings(max_examples=60, deadline=None)
@given(stride_rows=_rows_of(S.STRIDES_SCHEMA), stance_rows=_rows_of(S.STANCE_SCHEMA))
def test_rows_sent_back_as_tuples_make_the_same_frames_bit_for_bit(stride_rows, stance_rows):
    """`LiveRows`: a worker's strides and stance rows travel as tuples and come back as the frame
    they were, value for value (NaN, -0.0, null, infinities), for the messages and the store."""
    assert {type(d) for d in S.STRIDES_SCHEMA.values()} <= set(_VALUES)  # a new dtype needs values here
    strides = pl.DataFrame(stride_rows, schema=S.STRIDES_SCHEMA, orient="row")
    stances = pl.DataFrame(stance_rows, schema=S.STANCE_SCHEMA, orient="row")
    for df, kind in ((strides, "strides"), (stances, "stances")):
        rows = pickle.loads(pickle.dumps(LiveRows.of(df)))
        assert isinstance(rows, LiveRows) and rows.kind == kind and rows.height == df.height
        assert _bits(rows.frame()) == _bits(df)
        assert _dict_bits(rows.to_dicts()) == _dict_bits(df.to_dicts())
    # what the store reads: runs of rows and frames concatenated in order
    analyzer = RemoteAnalyzer.__new__(RemoteAnalyzer)
    analyzer._emitted, analyzer._merge_lock, analyzer._rebuilt = [], threading.Lock(), False
    half = strides.height // 2
    for part in (
        LiveRows.of(strides.head(half)),
        strides.slice(half, 1),
        LiveRows.of(strides.slice(half + 1)),
    ):
        analyzer.add(part)
    assert _bits(analyzer.strides_) == _bits(strides)
    # a frame of another schema goes as it is; no rows as None
    other = strides.drop(S.VALID)
    assert LiveRows.of(other) is other and LiveRows.of(strides.clear()) is None


def test_a_worker_makes_the_packet_block_of_a_compact_packet(devices):
    """The worker's packets (`compact_packet`: fields and the samples as bytes) give the
    `packet_block` of the stored packet, array for array, saturated samples included."""
    packet = decode_packet(devices[0].packet(7))
    counts = packet.counts.copy()
    counts[3, 4], counts[5, 0] = np.iinfo(np.int16).max, np.iinfo(np.int16).min
    packet = dataclasses.replace(packet, counts=counts)
    want = packet_block(packet, 200.0)
    got = compact_block(pickle.loads(pickle.dumps(compact_packet(packet))), 200.0)
    for name in ("t_s", "acc_mps2", "gyr_dps", "saturated"):
        a, b = getattr(want, name), getattr(got, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    assert got.saturated.tolist() == [i in (3, 5) for i in range(len(counts))]
    assert (
        (got.first_seq, got.last_seq) == (packet.sequence, packet.sequence) == (want.first_seq, want.last_seq)
    )
