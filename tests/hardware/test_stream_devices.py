"""Simulated and replayed devices: packets carry exactly the samples, quantised and clipped like the
device, split at time gaps, paced like the sensor; a fake PacketSink stands in for the transport."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import polars as pl
import pytest

from strideflow.hardware import schema as S
from strideflow.hardware.devices import (
    DeviceError,
    PacketDevice,
    RecordingReplayer,
    SimulatedDevice,
    StreamClientError,
    _with_stream_path,
)
from strideflow.hardware.packets import decode_packet
from strideflow.hardware.profiles import PROFILES
from strideflow.hardware.simulator import SimulationSettings
from strideflow.ingest import read_recording


class FakeSink:
    """Records what it is sent and when; acknowledges everything at once."""

    def __init__(self):
        self.packets: list[bytes] = []
        self.times: list[float] = []
        self._acked: int | None = None

    @property
    def acked(self) -> int | None:
        return self._acked

    async def send(self, packet: bytes) -> None:
        self.packets.append(packet)
        self.times.append(time.perf_counter())
        self._acked = decode_packet(packet).sequence


def _decoded(packets: list[bytes], fs: float):
    ps = [decode_packet(p) for p in packets]
    t = np.concatenate([p.times_s(fs) for p in ps])
    return ps, t, np.vstack([p.acc_mps2 for p in ps]), np.vstack([p.gyr_dps for p in ps])


@pytest.fixture(scope="module")
def simulated():
    return SimulatedDevice.simulate(SimulationSettings(duration_s=30.0, seed=2, activity="run"))


def test_simulated_device_sends_the_simulator_samples_exactly(simulated):
    left, right = simulated
    assert (left.foot, right.foot) == ("left", "right") and left.device_id != right.device_id
    sink = FakeSink()
    assert asyncio.run(left.stream(sink, speed="max")) == left.n_packets
    ps, t, acc, gyr = _decoded(sink.packets, left.sampling_rate_hz)
    assert [p.sequence for p in ps] == list(range(left.n_packets))
    assert {p.foot for p in ps} == {"left"} and {p.device_id for p in ps} == {left.device_id}
    # The simulator's ADC already quantised to the profile's LSB: the packets lose nothing.
    np.testing.assert_allclose(t, left.t_s, atol=1e-9, rtol=0)
    sim = SimulatedDevice.simulate(
        SimulationSettings(duration_s=30.0, seed=2, activity="run"), feet=("left",)
    )[0]
    ref_acc = sim.counts_[:, :3] / sim.acc_scale
    np.testing.assert_array_equal(acc, ref_acc)
    np.testing.assert_array_equal(gyr, sim.counts_[:, 3:] / sim.gyr_scale)
    assert len(left.truth_strides_) > 10


def test_budget_profile_saturates_running_impacts():
    """A ±8 g pod clips running impacts at full scale, as the device would, and flags them."""
    profile = PROFILES["budget-8g-1000dps"]
    dev = SimulatedDevice.simulate(
        SimulationSettings(duration_s=25.0, seed=4, activity="run", profile=profile), feet=("left",)
    )[0]
    assert dev.saturated_.any()
    assert dev.counts_.max() == 32767 or dev.counts_.min() == -32768
    p = decode_packet(dev.packet(int(np.flatnonzero(dev.saturated_)[0]) // dev.samples_per_packet))
    assert np.abs(p.acc_mps2).max() <= profile.acc_range_mps2 + profile.acc_lsb_mps2


def test_replayer_splits_packets_at_gaps_and_keeps_times():
    fs = 100.0
    t = np.r_[np.arange(0, 55) / fs, 2.0 + np.arange(0, 30) / fs]  # a 1.45 s gap after 0.54 s
    acc = np.tile([0.0, 0.0, 9.81], (t.size, 1))
    gyr = np.column_stack([np.sin(t), np.cos(t), t])
    samples = pl.DataFrame({S.ATHLETE_ID: "a", S.SESSION_ID: "s", S.FOOT: "right", S.T: t}).with_columns(
        *[pl.Series(c, acc[:, i]) for i, c in enumerate(S.ACC)],
        *[pl.Series(c, gyr[:, i]) for i, c in enumerate(S.GYR)],
    )
    dev = RecordingReplayer.from_samples(samples, fs, "right", samples_per_packet=20)
    assert [dev.packet_samples(i).stop - dev.packet_samples(i).start for i in range(dev.n_packets)] == [
        20, 20, 15, 20, 10,
    ]  # fmt: skip
    sink = FakeSink()
    asyncio.run(dev.stream(sink, speed="max"))
    _, t_out, acc_out, gyr_out = _decoded(sink.packets, fs)
    np.testing.assert_allclose(t_out, t, atol=1e-6, rtol=0)
    np.testing.assert_allclose(gyr_out, gyr, atol=dev.profile.gyr_lsb_dps / 2 + 1e-12, rtol=0)
    np.testing.assert_allclose(acc_out, acc, atol=dev.profile.acc_lsb_mps2 / 2 + 1e-12, rtol=0)
    with pytest.raises(DeviceError, match="no left foot samples"):
        RecordingReplayer.from_samples(samples, fs, "left")


@pytest.mark.real_data
def test_replayer_reads_the_real_recording_at_its_rate(real_data):
    rec = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)
    dev = RecordingReplayer.from_samples(
        rec.samples, rec.sampling_rate_hz, "left", profile=PROFILES["nilspod"]
    )
    ps, t, acc, gyr = _decoded([dev.packet(i) for i in range(dev.n_packets)], 204.8)
    left = rec.samples.filter(pl.col(S.FOOT) == "left")
    assert t.size == left.height
    np.testing.assert_allclose(t, left[S.T].to_numpy(), atol=1e-6, rtol=0)
    # Within half a count of the nilspod ADC (16 g, 2000 deg/s over 16 bits); the few impacts
    # beyond 16 g read full scale, as the pod would have clipped them.
    acc_lsb, gyr_lsb = 16 * 9.80665 / 32768, 2000 / 32768
    np.testing.assert_allclose(gyr, left.select(S.GYR).to_numpy(), atol=gyr_lsb / 2 + 1e-9, rtol=0)
    ref = left.select(S.ACC).to_numpy()
    clipped = np.abs(ref) > 32767 * acc_lsb
    assert 0 < clipped.sum() < 20 and dev.saturated_.sum() == clipped.any(axis=1).sum()
    np.testing.assert_allclose(acc[~clipped], ref[~clipped], atol=acc_lsb / 2 + 1e-9, rtol=0)
    np.testing.assert_allclose(np.abs(acc[clipped]), 32767 * acc_lsb, rtol=1e-12)


def test_realtime_pacing_follows_the_sample_clock_and_resume_starts_later():
    fs = 200.0
    n = 200  # 1 s, 10 packets
    dev = PacketDevice(
        np.arange(n) / fs, np.zeros((n, 3)), np.zeros((n, 3)), foot="left", device_id="p", sampling_rate_hz=fs
    )
    sink = FakeSink()
    t0 = time.perf_counter()
    asyncio.run(dev.stream(sink, start=4, speed="realtime"))
    assert [decode_packet(p).sequence for p in sink.packets] == list(range(4, 10))
    offsets = np.asarray(sink.times) - t0
    # packet k leaves 100 ms after packet k-1 (its 20 samples at 200 Hz); the first at once
    assert offsets[0] < 0.05
    np.testing.assert_allclose(np.diff(offsets), 0.1, atol=0.04)
    burst = FakeSink()
    asyncio.run(dev.stream(burst, speed="realtime", burst_s=0.5))
    gaps = np.diff(burst.times)
    assert gaps[:4].max() < 0.02 and gaps[-3:].min() > 0.06  # backlog at once, then the sensor's pace


def test_url_forms():
    assert _with_stream_path("http://h:1") == "ws://h:1/v1/stream"
    assert _with_stream_path("wss://h/v1/stream") == "wss://h/v1/stream"
    assert _with_stream_path("ws://h:2/") == "ws://h:2/v1/stream"
    with pytest.raises(StreamClientError, match="URL"):
        _with_stream_path("h:8000")


def test_client_whose_end_reply_was_lost_finishes_on_the_ended_refusal(simulated):
    """The client sent `end` after every ack, the connection dropped before the reply, and the
    reconnect is refused with 4410 (the stream has ended): everything is stored, so that is success.
    A 4410 before the client's own end is a failure naming the reason (issue 13)."""
    import json

    from websockets.asyncio.server import serve

    from strideflow.hardware.devices import stream_device

    device = simulated[0]
    connections: list[str] = []

    async def handler(ws):
        hello = json.loads(await ws.recv())
        if connections:  # a reconnect: the stream has ended
            connections.append("refused")
            await ws.send(json.dumps({"error": f"session {hello['session_id']} has ended", "code": 4410}))
            await ws.close(4410, "ended")
            return
        connections.append("streamed")
        await ws.send(json.dumps({"resume_from": None, "gaps": [], "ended": False}))
        async for message in ws:
            if isinstance(message, bytes):
                await ws.send(json.dumps({"ack": decode_packet(message).sequence}))
            else:  # the end: stored, but the connection drops before the reply
                await ws.close(1011, "gone")
                return

    async def run(refuse_first: bool):
        connections.clear()
        if refuse_first:
            connections.append("ended before")
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await stream_device(
                device, f"ws://127.0.0.1:{port}", "key", "A1", "S1", speed="max", reconnect_timeout_s=10
            )

    report = asyncio.run(run(refuse_first=False))
    assert connections == ["streamed", "refused"]
    assert report.samples_acked == device.n_samples and report.end_reply["ended"] is True
    with pytest.raises(StreamClientError, match="4410 stream ended.*S1 has ended"):
        asyncio.run(run(refuse_first=True))
