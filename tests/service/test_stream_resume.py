"""A reconnecting device's hello answers `resume_from`, which the client takes as acknowledged: it
must count only packets that are durable, even when the hello races the previous connection's
log commit, and never one whose commit failed (nothing accepted is ever lost)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from strideflow.hardware.packets import encode_packet
from strideflow.ingest.stream_receiver import StreamHello
from strideflow.ingest.wal import read_wal, wal_path
from strideflow.service.live.registry import StreamRegistry

FS = 100.0
N = 10


class NoAnalysis:
    def __init__(self, _hello):
        pass

    def push(self, _block):
        return None

    def finish(self):
        return None


def packet(seq: int) -> bytes:
    counts = np.zeros((N, 6), np.int16)
    counts[:, 2] = 2048
    return encode_packet("pod-L", "left", seq, int(seq * N / FS * 1e6), counts, 204.8, 16.0)


def test_a_hello_racing_a_failed_log_commit_does_not_resume_after_the_lost_packet(tmp_path):
    registry = StreamRegistry(tmp_path / "wal", tmp_path / "results", NoAnalysis)
    hello = StreamHello.parse(
        {"athlete_id": "A1", "session_id": "S1", "foot": "left", "device_id": "pod-L", "sampling_rate_hz": FS}
    )
    acks: list[int] = []

    async def send(message: dict) -> None:
        acks.append(message["ack"])

    async def analyse(*_args) -> None:
        return None

    async def run() -> int | None:
        loop = asyncio.get_running_loop()
        old, new = object(), object()
        stream, _ = await registry.attach(hello, "T1", old)
        await registry.receive(stream, [(packet(0), 0.0)], old, send, analyse)
        in_write, fail = asyncio.Event(), threading.Event()

        def failing_write() -> None:  # the disk refuses packet 1 (on the commit thread), a moment later
            loop.call_soon_threadsafe(in_write.set)
            fail.wait(30)
            raise OSError("no space left on device")

        stream.receiver.write = failing_write
        receiving = asyncio.ensure_future(registry.receive(stream, [(packet(1), 0.1)], old, send, analyse))
        await in_write.wait()
        # the device reconnects while packet 1 is received but not durable
        attaching = asyncio.ensure_future(registry.attach(hello, "T1", new))
        await asyncio.sleep(0.2)
        fail.set()
        with pytest.raises(OSError):
            await receiving
        resumed, _ = await attaching
        resume_from = resumed.receiver.resume_from
        registry.close_all()
        return resume_from

    assert asyncio.run(run()) == 0  # packet 1 was never durable: the client must send it again
    assert acks == [0]
    _, packets, _ = read_wal(wal_path(tmp_path / "wal", "A1", "S1", "left", "pod-L"))
    assert packets == [packet(0)]
