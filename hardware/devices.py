"""Devices that stream packets: a simulated shoe pod and a replayer of recorded samples.

(Over ~500 lines: the simulated pod and the replayer share packetising, pacing and resume, which
read best next to both users.)

Both turn a foot's samples (device frame, m/s² and deg/s) into the int16 packets of
`hardware.packets`, quantised with the scale factors of a `DeviceProfile` and clipped at its range
as the device's ADC does, `samples_per_packet` samples each (a packet never spans a gap in time).
`stream()` hands them to a `PacketSink` (a WebSocket connection, or a fake in tests), paced like
the device (`realtime`: packet k leaves when its last sample has been taken) or as fast as the
sink takes them (`max`).

Sequence numbers are the packet's index in the device's stream, so a resumed stream re-creates
exactly the packets after the receiver's last acknowledgement. Device timestamps are µs since
the start of the session (t of the `samples` table).

The replayer takes a `samples` table (what `strideflow.ingest.read_recording` returns for any
file it reads); reading the file is the caller's step, since hardware sits below ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import polars as pl

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.packets import (
    MAX_SAMPLES,
    encode_packet,
    profile_scales,
    quantize_samples,
)
from strideflow.hardware.profiles import DEFAULT_PROFILE, DeviceProfile
from strideflow.hardware.schema import ACC, FEET, FOOT, GYR, T

Speed = Literal["realtime", "max"]
SPEEDS = ("realtime", "max")
DEFAULT_SAMPLES_PER_PACKET = 20  # 100 ms at 200 Hz
T_ = TypeVar("T_")


class DeviceError(StrideflowError):
    """A device that cannot be built from what it was given (no samples, bad foot, ...)."""


@runtime_checkable
class PacketSink(Protocol):
    """Where a device's packets go.

    `send` hands over one packet (it may wait, e.g. while too many packets are unacknowledged);
    `acked` is the highest sequence number the receiver has acknowledged (None: none yet).
    """

    async def send(self, packet: bytes) -> None: ...

    @property
    def acked(self) -> int | None: ...


class PacketDevice:
    """A device streaming fixed samples of one foot as packets.

    `t_s` (n,) s since session start; `acc_mps2`, `gyr_dps` (n, 3) in the device frame. After
    construction: `counts_` (n, 6) int16 as sent, `saturated_` (n,) samples with an axis at the
    int16 limit, `n_packets`, and `packet(seq)` the bytes of packet `seq`.
    """

    def __init__(
        self,
        t_s: np.ndarray,
        acc_mps2: np.ndarray,
        gyr_dps: np.ndarray,
        *,
        foot: str,
        device_id: str,
        sampling_rate_hz: float,
        profile: DeviceProfile = DEFAULT_PROFILE,
        samples_per_packet: int = DEFAULT_SAMPLES_PER_PACKET,
    ):
        if foot not in FEET:
            raise DeviceError(f"foot must be one of {', '.join(FEET)}, got {foot!r}")
        if not 1 <= samples_per_packet <= MAX_SAMPLES:
            raise DeviceError(f"samples_per_packet must be within 1-{MAX_SAMPLES}, got {samples_per_packet}")
        if sampling_rate_hz <= 0:
            raise DeviceError(f"sampling rate must be positive, got {sampling_rate_hz} Hz")
        t = np.asarray(t_s, float)
        if t.size == 0:
            raise DeviceError(f"device {device_id}: no samples to stream")
        if t[0] < 0 or np.any(np.diff(t) <= 0):
            raise DeviceError(f"device {device_id}: sample times must start at >= 0 s and increase")
        self.foot = foot
        self.device_id = device_id
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.profile = profile
        self.samples_per_packet = samples_per_packet
        self.acc_scale, self.gyr_scale = profile_scales(profile)
        self.t_s = t
        self.counts_, self.saturated_ = quantize_samples(acc_mps2, gyr_dps, self.acc_scale, self.gyr_scale)
        # Packet boundaries: every samples_per_packet samples, and wherever time jumps (a gap).
        jumps = np.flatnonzero(np.diff(t) > 1.5 / self.sampling_rate_hz) + 1
        bounds = [
            (i, min(i + samples_per_packet, int(b)))
            for a, b in zip(np.r_[0, jumps], np.r_[jumps, t.size], strict=True)
            for i in range(int(a), int(b), samples_per_packet)
        ]
        self._starts = np.array([a for a, _ in bounds], dtype=np.int64)
        self._stops = np.array([b for _, b in bounds], dtype=np.int64)
        self._cache: dict[int, bytes] = {}

    @property
    def n_packets(self) -> int:
        return int(self._starts.size)

    @property
    def n_samples(self) -> int:
        return int(self.t_s.size)

    @property
    def packet_sizes(self) -> np.ndarray:
        """Samples in each packet, (n_packets,)."""
        return self._stops - self._starts

    def packet_samples(self, seq: int) -> slice:
        """Which samples packet `seq` carries."""
        return slice(int(self._starts[seq]), int(self._stops[seq]))

    def packet(self, seq: int) -> bytes:
        """Bytes of packet `seq` (0-based)."""
        if not 0 <= seq < self.n_packets:
            raise DeviceError(f"device {self.device_id} has packets 0-{self.n_packets - 1}, not {seq}")
        cached = self._cache.get(seq)
        if cached is None:
            part = self.packet_samples(seq)
            cached = encode_packet(
                self.device_id,
                self.foot,
                seq,
                int(round(self.t_s[part.start] * 1e6)),
                self.counts_[part],
                self.acc_scale,
                self.gyr_scale,
            )
            self._cache[seq] = cached
        return cached

    def ready_s(self, seq: int) -> float:
        """When packet `seq` is complete: its last sample's time plus one sample period, s."""
        return float(self.t_s[self._stops[seq] - 1]) + 1.0 / self.sampling_rate_hz

    def hello(self, athlete_id: str, session_id: str, session_date: str | None = None) -> dict:
        """The hello message announcing this device's stream (`session_date` yyyy-mm-dd, optional)."""
        return {
            "athlete_id": athlete_id,
            "session_id": session_id,
            "foot": self.foot,
            "device_id": self.device_id,
            "sampling_rate_hz": self.sampling_rate_hz,
            "profile": self.profile.name,
            **({"session_date": session_date} if session_date else {}),
        }

    def renamed(self, device_id: str) -> PacketDevice:
        """The same data under another device id (shares the arrays; for many simulated devices)."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.device_id = device_id
        twin._cache = {}
        return twin

    async def stream(
        self,
        sink: PacketSink,
        start: int = 0,
        speed: Speed = "realtime",
        burst_s: float = 0.0,
        after_burst: Callable[[], Awaitable[object]] | None = None,
    ) -> int:
        """Send packets `start`... to `sink`; returns how many were sent.

        realtime: packet `start` leaves at once and every later one `ready_s` after it (a device
        that reconnects sends its backlog, then keeps the sensor's pace); max: no pauses.
        `burst_s`: in realtime, the packets of the first `burst_s` seconds of data go out at once
        (a gateway forwarding a recorded backlog), and realtime pacing starts once the sink has
        acknowledged them and `after_burst()` (if given) has returned.
        """
        if speed not in SPEEDS:
            raise DeviceError(f"speed must be one of {', '.join(SPEEDS)}, got {speed!r}")
        loop = asyncio.get_running_loop()
        sent = 0
        seq = start
        t_first = float(self.t_s[0])
        if speed == "realtime" and burst_s > 0:
            while seq < self.n_packets and self.ready_s(seq) - t_first <= burst_s:
                await sink.send(self.packet(seq))
                seq, sent = seq + 1, sent + 1
            while sent and (sink.acked is None or sink.acked < seq - 1):
                await asyncio.sleep(0.01)
            if after_burst is not None:
                await after_burst()
        anchor = loop.time() - (self.ready_s(seq) if seq < self.n_packets else 0.0)
        for nxt in range(seq, self.n_packets):
            if speed == "realtime":
                delay = anchor + self.ready_s(nxt) - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await sink.send(self.packet(nxt))
            sent += 1
        return sent


class SimulatedDevice(PacketDevice):
    """A pod on one foot of a simulated athlete (`hardware.simulator`), device frame, with its truth.

    `truth_strides_` holds the simulator's true strides of this foot.
    """

    truth_strides_: pl.DataFrame

    @classmethod
    def simulate(
        cls,
        settings=None,
        feet: Sequence[str] = FEET,
        device_prefix: str = "sim",
        samples_per_packet: int = DEFAULT_SAMPLES_PER_PACKET,
    ) -> list[SimulatedDevice]:
        """One device per foot of one simulated session (`SimulationSettings`, default: 1 min walk)."""
        from strideflow.hardware.simulator import SimulationSettings, Simulator

        s = settings if settings is not None else SimulationSettings(duration_s=60.0)
        s = replace(s, keep_orientation=False)
        sim = Simulator(s).simulate()
        devices = []
        for foot in feet:
            part = sim.samples_.filter(pl.col(FOOT) == foot).sort(T)
            dev = cls(
                part[T].to_numpy(),
                part.select(ACC).to_numpy(),
                part.select(GYR).to_numpy(),
                foot=foot,
                device_id=f"{device_prefix}-{foot[0].upper()}",
                sampling_rate_hz=s.sampling_rate_hz,
                profile=s.profile,
                samples_per_packet=samples_per_packet,
            )
            dev.truth_strides_ = sim.truth_strides_.filter(pl.col(FOOT) == foot)
            devices.append(dev)
        return devices


class RecordingReplayer(PacketDevice):
    """Replays one foot of a `samples` table (any file ingest reads) as a device would stream it.

    Interpolated samples of the table are sent like measured ones; a long gap (new segment) is
    a jump in the device timestamps.
    """

    @classmethod
    def from_samples(
        cls,
        samples: pl.DataFrame,
        sampling_rate_hz: float,
        foot: str,
        *,
        device_id: str | None = None,
        profile: DeviceProfile = DEFAULT_PROFILE,
        samples_per_packet: int = DEFAULT_SAMPLES_PER_PACKET,
    ) -> RecordingReplayer:
        part = samples.filter(pl.col(FOOT) == foot).sort(T)
        if part.height == 0:
            have = sorted(set(samples[FOOT].to_list())) if FOOT in samples.columns else []
            raise DeviceError(
                f"no {foot} foot samples to replay (the recording has: {', '.join(have) or 'none'})"
            )
        t = part[T].to_numpy()
        return cls(
            t - min(t[0], 0.0),
            part.select(ACC).to_numpy(),
            part.select(GYR).to_numpy(),
            foot=foot,
            device_id=device_id or f"replay-{foot[0].upper()}",
            sampling_rate_hz=sampling_rate_hz,
            profile=profile,
            samples_per_packet=samples_per_packet,
        )


# ------------------------------------------------------------------------------------------
# gateway: a device's stream over WebSocket to `WS /v1/stream`, with resume after reconnects
# ------------------------------------------------------------------------------------------
FATAL_CLOSE_CODES = {
    4400: "bad request",
    4401: "unauthorized",
    4403: "forbidden",
    4409: "conflict",
    4410: "stream ended",
}
ENDED_CLOSE_CODE = 4410


class StreamClientError(DeviceError):
    """The server refused the stream (bad key, forbidden athlete, bad hello) or stayed unreachable."""


@dataclass
class StreamReport:
    """What one device's stream achieved."""

    device_id: str
    foot: str
    packets: int  # packets in the device's stream
    samples: int
    last_ack: int | None = None  # highest acknowledged sequence number
    samples_acked: int = 0
    packets_sent: int = 0  # including packets re-sent after a reconnect
    duplicates: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    analysis_errors: list[str] = field(default_factory=list)  # the server's live analysis failed
    connections: int = 0
    end_reply: dict | None = None
    seconds: float = 0.0


class _ServerClosed(Exception):
    def __init__(self, code: int | None, reason: str | None):
        self.code, self.reason = code, reason or ""


class WebSocketSink:
    """PacketSink over an open connection: at most `window` packets sent but not yet acknowledged."""

    def __init__(self, ws, window: int, acked: int | None):
        self.ws = ws
        self.window = window
        self._acked = acked
        self._changed = asyncio.Event()
        self.sent = 0

    @property
    def acked(self) -> int | None:
        return self._acked

    def on_ack(self, seq: int) -> None:
        if self._acked is None or seq > self._acked:
            self._acked = seq
            self._changed.set()

    async def wait_acked(self, seq: int) -> None:
        """Until packet `seq` (and all before it) is acknowledged."""
        while seq >= 0 and (self._acked is None or self._acked < seq):
            self._changed.clear()
            await self._changed.wait()

    async def send(self, packet: bytes) -> None:
        seq = int.from_bytes(packet[24:28], "little")
        await self.wait_acked(seq - self.window)
        await self.ws.send(packet)
        self.sent += 1


def _with_stream_path(url: str) -> str:
    """ws(s)://host:port[/path]; http(s) becomes ws(s), a bare server URL gets /v1/stream."""
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(http):
            url = ws + url[len(http) :]
    if not url.startswith(("ws://", "wss://")):
        raise StreamClientError(f"--to must be a ws://, wss://, http:// or https:// URL, got {url!r}")
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}/{path}" if slash and path else f"{scheme}://{host}/v1/stream"


def run_client(main: Awaitable[T_]) -> T_:
    """Run a streaming client's coroutine to completion, on uvloop where it is installed (a gateway
    streaming many pods spends less CPU per packet: `bench stream`'s 128 devices took 16-17 % of a
    core instead of 18.5-22 %, benchmarks/README.md), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def stream_device(
    device: PacketDevice,
    url: str,
    key: str,
    athlete_id: str,
    session_id: str,
    *,
    speed: Speed = "realtime",
    burst_s: float = 0.0,
    after_burst: Callable[[], Awaitable[object]] | None = None,
    window: int = 256,
    reconnect_timeout_s: float = 30.0,
    on_ack: Callable[[StreamReport], None] | None = None,
    session_date: str | None = None,
) -> StreamReport:
    """Stream `device` to the server at `url`, resuming after every lost connection; end the stream.

    Each (re)connection sends the hello and continues after the server's `resume_from`
    (`burst_s`, `after_burst`: see `PacketDevice.stream`, on the first connection only). Raises
    StreamClientError for a close code in FATAL_CLOSE_CODES (retrying cannot help) or when no
    connection succeeds for `reconnect_timeout_s`.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    url = _with_stream_path(url)
    report = StreamReport(device.device_id, device.foot, device.n_packets, device.n_samples)
    acked_samples = np.cumsum(device.packet_sizes)  # samples in packets 0..k: one lookup per ack
    t_start = time.perf_counter()
    lost_since: float | None = None
    delay = 0.1
    last_error: dict = {}

    async def read_replies(ws, sink: WebSocketSink, ended: asyncio.Future) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            if "ack" in msg:
                sink.on_ack(int(msg["ack"]))
                report.duplicates += bool(msg.get("duplicate"))
                report.last_ack = sink.acked
                if on_ack is not None:
                    report.samples_acked = int(acked_samples[sink.acked])
                    on_ack(report)
            elif "gap" in msg:
                report.gaps.append(tuple(msg["gap"]))
            elif "rejected" in msg or "late" in msg:
                report.rejected.append(str(msg.get("rejected") or f"late packet {msg['late']}"))
            elif "ended" in msg and not ended.done():
                ended.set_result(msg)
            elif "analysis_error" in msg:
                report.analysis_errors.append(str(msg["analysis_error"]))
            elif "error" in msg:
                last_error.update(msg)

    end_sent = False

    async def send_all(ws, sink: WebSocketSink, start: int, ended: asyncio.Future) -> dict:
        nonlocal end_sent
        burst = burst_s if start == 0 else 0.0
        report.packets_sent += await device.stream(sink, start, speed, burst, after_burst if burst else None)
        await sink.wait_acked(device.n_packets - 1)
        await ws.send(json.dumps({"end": True}))
        end_sent = True
        return await ended

    while True:
        try:
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {key}"},
                compression=None,
                proxy=None,
                max_size=1 << 20,
                open_timeout=10,
            ) as ws:
                await ws.send(json.dumps(device.hello(athlete_id, session_id, session_date)))
                hello = json.loads(await ws.recv())
                if "error" in hello:
                    last_error.update(hello)
                    await ws.wait_closed()
                    raise _ServerClosed(ws.close_code, ws.close_reason)
                report.connections += 1
                lost_since, delay = None, 0.1
                resume = hello.get("resume_from")
                sink = WebSocketSink(ws, window, resume)
                ended: asyncio.Future = asyncio.get_running_loop().create_future()
                reader = asyncio.ensure_future(read_replies(ws, sink, ended))
                sender = asyncio.ensure_future(send_all(ws, sink, 0 if resume is None else resume + 1, ended))
                done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
                if sender in done:
                    reader.cancel()
                    report.end_reply = sender.result()
                    report.last_ack = sink.acked
                    report.samples_acked = 0 if sink.acked is None else int(acked_samples[sink.acked])
                    report.seconds = time.perf_counter() - t_start
                    return report
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
                reader.result()  # raises ConnectionClosed when the server went away
                raise _ServerClosed(ws.close_code, ws.close_reason)
        except (ConnectionClosed, _ServerClosed) as exc:
            if isinstance(exc, ConnectionClosed):
                exc = _ServerClosed(exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else _ServerClosed(None, "")
            code = exc.code
            if code == ENDED_CLOSE_CODE and end_sent and report.last_ack == device.n_packets - 1:
                # Our own end went through but its reply was lost with the connection: done.
                report.end_reply = {"ended": True, "last_seq": report.last_ack}
                report.samples_acked = device.n_samples
                report.seconds = time.perf_counter() - t_start
                return report
            if code in FATAL_CLOSE_CODES:
                message = last_error.get("error") or exc.reason
                raise StreamClientError(
                    f"server refused the stream of device {device.device_id} "
                    f"({code} {FATAL_CLOSE_CODES[code]}): {message}"
                ) from None
        except (OSError, InvalidHandshake, TimeoutError):
            pass
        now = time.perf_counter()
        lost_since = now if lost_since is None else lost_since
        if now - lost_since > reconnect_timeout_s:
            raise StreamClientError(
                f"could not stream device {device.device_id} to {url}: "
                f"no connection for {reconnect_timeout_s:g} s"
            )
        await asyncio.sleep(delay)
        delay = min(2 * delay, 1.0)
