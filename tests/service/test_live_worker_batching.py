"""A live analysis worker batches across its streams (`service.live.workers`): the rows due together
run one metric query and go back in one message, and the packets a server's turn posts to a worker
go in one message. Counts, not times."""

from __future__ import annotations

import asyncio
import socket
import threading
from multiprocessing.connection import Connection

import pytest

from strideflow.analytics.live_analyzer import LiveSettings, LiveStrideAnalyzer
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.hardware.devices import SimulatedDevice
from strideflow.hardware.packets import decode_packet
from strideflow.hardware.simulator import SimulationSettings
from strideflow.ingest.stream_receiver import StreamHello
from strideflow.service.live import workers as W

FS = 200.0
NO_WARMUP = LiveSettings(analysis=AnalysisSettings(align_mounting=False), gyr_bias_dps=(0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def left():
    """The left foot's packets of a 20 s simulated walk (compact, as a worker gets them)."""
    devices = SimulatedDevice.simulate(SimulationSettings(duration_s=20.0, sampling_rate_hz=FS, seed=7))
    device = next(d for d in devices if d.foot == "left")
    return device, [W.compact_packet(decode_packet(device.packet(s))) for s in range(device.n_packets)]


def _rows(strides, stances) -> list[tuple[str, str]]:
    """A packet's rows (frames or `LiveRows`) as (kind, repr of the row tuples: NaN equals NaN)."""
    out = []
    for kind, got in (("stance", stances), ("stride", strides)):
        if got is not None and got.height:
            out.append((kind, repr(got.rows if isinstance(got, W.LiveRows) else got.rows())))
    return out


def _run_worker(packets: list, n: int, expected: int, monkeypatch) -> tuple[W._Worker, list, list]:
    """n streams of the same packets through a `_Worker` loop on a socket pair, every packet sent
    at once; rows resolve when all n streams' rows are due (`GATHER_MAX` n, no time bound), until
    each stream has its `expected` packets with rows, then a call per stream flushes the rest. The
    worker, the "out" messages it sent and each stream's rows in order."""
    monkeypatch.setattr(W, "GATHER_S", 3600.0)
    monkeypatch.setattr(W, "HOLD_S", 3600.0)
    monkeypatch.setattr(W, "GATHER_MAX", n)
    ours, theirs = socket.socketpair()
    server, conn = Connection(ours.detach()), Connection(theirs.detach())
    worker = W._Worker(conn, None, "")
    for sid in range(1, n + 1):
        worker.analyzers[sid] = (LiveStrideAnalyzer("A", "S", "left", FS, NO_WARMUP), FS)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    server.send((W.MANY, [("push", sid, sid, packets) for sid in range(1, n + 1)]))
    rows: dict[int, list] = {sid: [] for sid in range(1, n + 1)}
    outs, replies, called = [], 0, False
    while replies < n:
        message = server.recv()
        if message[0] == "reply":
            replies += 1
            continue
        outs.append(message)
        for push_id, _, strides, stances, error, _ in message[1]:
            assert error is None
            rows[push_id] += _rows(strides, stances)
        if not called and all(len(r) == expected for r in rows.values()):
            called = True
            for sid in range(1, n + 1):  # a call sees every packet sent before it
                server.send(("snapshot", sid, sid))
    server.close()
    thread.join(timeout=30)
    return worker, outs, [rows[sid] for sid in range(1, n + 1)]


def test_rows_due_together_across_streams_run_one_query_and_go_back_in_one_message(left, monkeypatch):
    _, packets = left
    alone = LiveStrideAnalyzer("A", "S", "left", FS, NO_WARMUP)
    reference = [_rows(*alone.push(W.compact_block(p, FS))) for p in packets]
    expected = [r for rows in reference for r in rows]
    with_rows = sum(1 for rows in reference if rows)
    assert with_rows >= 10  # packets completing stance or stride rows
    worker, outs, rows = _run_worker(packets, 4, len(expected), monkeypatch)
    assert all(r == expected for r in rows)  # every stream gets its own rows, in order
    assert worker.queries_ == with_rows  # the four streams' rows due together: one query
    assert len(outs) <= with_rows + 4  # one message back per query (+ the rest before each reply)
    assert sorted(out[:2] for m in outs for out in m[1]) == sorted(  # every packet's output, once
        (sid, i) for sid in range(1, 5) for i in range(len(packets))
    )


def test_a_turn_of_the_event_loop_posts_its_streams_packets_to_a_worker_in_one_message(left, tmp_path):
    device, _ = left
    pool = W.AnalysisWorkers(1, AnalysisSettings(), tmp_path)
    try:
        hello = StreamHello.parse(device.hello("A1", "S1"))
        streams = [W.RemoteAnalyzer(pool, hello) for _ in range(5)]
        for analyzer in streams:
            analyzer.replay([], closed=False)
        link = streams[0].link
        writes = []
        write = link._write
        link._write = lambda message: (writes.append(message), write(message))[-1]

        async def push_all() -> list:
            loop = asyncio.get_running_loop()
            got: list = []
            done = loop.create_future()

            def on_output(index, strides, stances, error, pieces) -> None:
                got.append(error)
                if len(got) == 5 * 3 and not done.done():
                    done.set_result(None)

            packets = [decode_packet(device.packet(s)) for s in range(3)]
            for analyzer in streams:  # five streams' packets stored in the same turn
                analyzer.push_packets(packets, on_output, loop)
            await asyncio.wait_for(done, 60)
            return got

        got = asyncio.run(push_all())
        assert got == [None] * 15  # every packet analysed, none failed
        assert len(writes) == 1 and writes[0][0] == W.MANY and len(writes[0][1]) == 5
    finally:
        pool.close()
