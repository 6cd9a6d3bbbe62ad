"""Receiving end of one device's live stream: hello, write-ahead log, duplicates, gaps, resume.

The server side of `WS /v1/stream` keeps one `StreamReceiver` per athlete-session-foot-device.
For each binary packet it calls `receive()`, which decides (in this order):

- not a valid packet, or from another device or foot than the hello said: `REJECTED` with the
  reason (nothing stored, nothing acknowledged);
- a valid packet whose sequence number or timestamp is out of range (see `StreamLimits`):
  `REJECTED` with `fatal` set (nothing stored): the server closes the stream with the reason,
  since such a device would block the stream or break its analysis;
- sequence number already stored: `DUPLICATE` (re-acknowledge, drop);
- sequence number inside a gap that was already reported: `LATE` (dropped: live analysis has
  moved past it; never acknowledged, so nothing acknowledged is lost);
- otherwise `NEW`: appended to the log; if it skips numbers, the skipped range is a new gap.

`commit()` then makes the appended packets durable (fsync), after which they may be
acknowledged. `resume_from` is the highest stored sequence number (None before the first),
which a reconnecting client continues after. Sample times are the device timestamps: a device's
clock counts µs from the start of its session.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np

from strideflow.hardware.ids import DEVICE_ID_MAX_LENGTH, InvalidIdError, is_valid_id
from strideflow.hardware.packets import MAX_SAMPLES, Packet, PacketError, decode_packet
from strideflow.hardware.profiles import DEFAULT_PROFILE, PROFILES
from strideflow.hardware.schema import FEET
from strideflow.ingest.errors import IngestError
from strideflow.ingest.settings import ReadSettings
from strideflow.ingest.wal import WriteAheadLog, wal_path

MIN_SAMPLING_RATE_HZ = ReadSettings().min_rate_hz
MAX_SAMPLING_RATE_HZ = ReadSettings().max_rate_hz


@dataclass(frozen=True)
class StreamLimits:
    """Plausible ranges of a packet's fields, beyond which a stream is refused.

    `max_device_time_s`: a device clock counts from the start of its session, so a timestamp past
    this (s) is corrupt. `max_sequence_jump`: packets a new sequence number may skip (a larger jump
    would turn every later packet into a "duplicate"). `max_time_gap_s`: how far a packet may start
    after the end of the previous stored one, s. `time_tolerance_samples`: how far (in sample
    intervals) it may start before that end (clock jitter); further back would reorder samples.
    """

    max_device_time_s: float = 7 * 24 * 3600.0
    max_sequence_jump: int = 100_000
    max_time_gap_s: float = 3600.0
    time_tolerance_samples: float = 0.5


class StreamError(IngestError):
    """A hello or stream that cannot be accepted (bad field, or a log that disagrees with it)."""

    def __init__(self, problem: str, *, column: str | None = None):
        super().__init__("stream", problem, column=column)


@dataclass(frozen=True)
class StreamHello:
    """What a device stream is: who, which foot, which device, at what rate, with which profile."""

    athlete_id: str
    session_id: str
    foot: str
    device_id: str
    sampling_rate_hz: float
    profile: str = DEFAULT_PROFILE.name

    @classmethod
    def parse(cls, msg: object) -> StreamHello:
        """Validate a hello message (a dict); StreamError names the bad field."""
        if not isinstance(msg, dict):
            raise StreamError("the hello must be a JSON object")
        values = {}
        for name in ("athlete_id", "session_id", "foot", "device_id", "sampling_rate_hz"):
            if msg.get(name) is None:
                raise StreamError("missing from the hello", column=name)
            values[name] = msg[name]
        for name in ("athlete_id", "session_id"):
            if not is_valid_id(values[name]):
                raise StreamError(str(InvalidIdError(name, values[name])), column=name)
        if values["foot"] not in FEET:
            raise StreamError(f"must be one of {', '.join(FEET)}, got {values['foot']!r}", column="foot")
        if not is_valid_id(values["device_id"], DEVICE_ID_MAX_LENGTH):
            raise StreamError(
                str(InvalidIdError("device_id", values["device_id"], DEVICE_ID_MAX_LENGTH)),
                column="device_id",
            )
        rate = values["sampling_rate_hz"]
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not MIN_SAMPLING_RATE_HZ <= rate <= MAX_SAMPLING_RATE_HZ
        ):
            raise StreamError(
                f"must be a number in [{MIN_SAMPLING_RATE_HZ:g}, {MAX_SAMPLING_RATE_HZ:g}] Hz, got {rate!r}",
                column="sampling_rate_hz",
            )
        profile = msg.get("profile", cls.profile)
        if not isinstance(profile, str) or profile not in PROFILES:
            raise StreamError(
                f"unknown device profile {profile!r}; known: {', '.join(PROFILES)}", column="profile"
            )
        return cls(**{**values, "sampling_rate_hz": float(rate)}, profile=profile)

    def as_dict(self) -> dict:
        return asdict(self)


class Outcome(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"
    REJECTED = "rejected"


class Received(NamedTuple):
    """What `receive()` made of one message: the outcome, the packet, and a new gap if any (a named
    tuple: built once per packet, in a fifth of a frozen dataclass's time)."""

    outcome: Outcome
    sequence: int | None = None
    packet: Packet | None = None
    gap: tuple[int, int] | None = None
    reason: str | None = None
    fatal: bool = False  # out-of-range fields: the stream is refused, not only this packet


@dataclass
class SequenceState:
    """Which sequence numbers are stored: all up to `last` except the `gaps` (inclusive ranges)."""

    last: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def classify(self, seq: int) -> tuple[Outcome, tuple[int, int] | None]:
        if self.last is not None and seq <= self.last:
            late = any(a <= seq <= b for a, b in self.gaps)
            return (Outcome.LATE if late else Outcome.DUPLICATE), None
        expected = 0 if self.last is None else self.last + 1
        return Outcome.NEW, ((expected, seq - 1) if seq > expected else None)

    def add(self, seq: int, gap: tuple[int, int] | None) -> None:
        if gap is not None:
            self.gaps.append(gap)
        self.last = seq


class StreamReceiver:
    """The receiving state of one device stream, backed by its write-ahead log.

    `open()` recovers the log (torn tail truncated) and rebuilds the sequence state from it;
    `replayed_` holds the packets already in the log, in order, for rebuilding the live analysis.
    """

    def __init__(self, hello: StreamHello, wal: WriteAheadLog, limits: StreamLimits = StreamLimits()):
        self.hello = hello
        self.wal = wal
        self.limits = limits
        self.state = SequenceState()
        self.samples_received_ = 0
        self.end_us_: float | None = None  # device time just after the newest stored packet, µs
        self.replayed_: list[Packet] = []
        for raw in wal.packets_:
            packet = decode_packet(raw)  # CRC-checked twice: by the log and by the packet itself
            _, gap = self.state.classify(packet.sequence)
            self.state.add(packet.sequence, gap)
            self.samples_received_ += packet.n_samples
            self._advance(packet)
            self.replayed_.append(packet)
        wal.packets_ = []  # decoded above; the raw bytes need not stay in memory

    @classmethod
    def open(cls, wal_root: str | Path, hello: StreamHello) -> StreamReceiver:
        """Open (or create) the stream's log under `wal_root`; StreamError if it disagrees with `hello`."""
        path = wal_path(wal_root, hello.athlete_id, hello.session_id, hello.foot, hello.device_id)
        wal = WriteAheadLog.open(path, hello.as_dict())
        stored = wal.meta
        for name in ("sampling_rate_hz", "profile"):
            if stored.get(name) != getattr(hello, name):
                wal.close()
                raise StreamError(
                    f"this stream was started with {name}={stored.get(name)!r}; a resumed stream keeps it",
                    column=name,
                )
        return cls(hello, wal)

    def _advance(self, packet: Packet) -> None:
        self.end_us_ = packet.timestamp_us + packet.n_samples * 1e6 / self.hello.sampling_rate_hz

    def out_of_range(self, packet: Packet) -> str | None:
        """Why a new packet's sequence number or timestamp is implausible (see StreamLimits), or None."""
        lim = self.limits
        expected = 0 if self.state.last is None else self.state.last + 1
        if packet.sequence - expected > lim.max_sequence_jump:
            return (
                f"sequence number {packet.sequence} skips {packet.sequence - expected} packets after "
                f"{self.state.last}; at most {lim.max_sequence_jump} may be skipped"
            )
        t_us = packet.timestamp_us
        if t_us > lim.max_device_time_s * 1e6:
            return f"timestamp {t_us} µs is past {lim.max_device_time_s:g} s of device time"
        if self.end_us_ is not None:
            interval_us = 1e6 / self.hello.sampling_rate_hz
            if t_us < self.end_us_ - lim.time_tolerance_samples * interval_us:
                return (
                    f"timestamp {t_us} µs goes back before the end of the previous packet "
                    f"({self.end_us_:.0f} µs)"
                )
            if t_us - self.end_us_ > lim.max_time_gap_s * 1e6:
                return (
                    f"timestamp {t_us} µs is {(t_us - self.end_us_) / 1e6:.0f} s after the previous packet; "
                    f"at most {lim.max_time_gap_s:g} s"
                )
        return None

    @property
    def resume_from(self) -> int | None:
        """Highest stored (and so acknowledged, once committed) sequence number; None if none yet."""
        return self.state.last

    @property
    def closed(self) -> bool:
        return self.wal.closed_

    def receive(self, data: bytes) -> Received:
        """Classify one binary message and append it to the log if it is new (see module docstring)."""
        try:
            packet = decode_packet(data)
        except PacketError as exc:
            return Received(Outcome.REJECTED, reason=exc.reason)
        if packet.device_id != self.hello.device_id or packet.foot != self.hello.foot:
            return Received(
                Outcome.REJECTED,
                sequence=packet.sequence,
                reason=f"packet from device {packet.device_id!r} ({packet.foot}), "
                f"this stream is {self.hello.device_id!r} ({self.hello.foot})",
            )
        outcome, gap = self.state.classify(packet.sequence)
        if outcome is not Outcome.NEW:
            return Received(outcome, sequence=packet.sequence, packet=packet)
        problem = self.out_of_range(packet)
        if problem is not None:
            return Received(Outcome.REJECTED, sequence=packet.sequence, reason=problem, fatal=True)
        self.wal.queue(bytes(data))  # written and made durable by `commit`
        self.state.add(packet.sequence, gap)
        self.samples_received_ += packet.n_samples
        self._advance(packet)
        return Received(Outcome.NEW, sequence=packet.sequence, packet=packet, gap=gap)

    def write(self) -> None:
        """Write the packets received so far to the log, not yet durable (`commit` makes them so)."""
        self.wal.write_queued()

    def commit(self) -> None:
        """Make every packet received so far durable; acknowledge them only after this returns."""
        self.wal.sync()

    def end(self) -> None:
        """Record that the client ended the stream."""
        self.wal.append_close()

    def close(self) -> None:
        self.wal.close()


@dataclass(frozen=True)
class SampleBlock:
    """n consecutive samples of one device, as a live analyzer's `push` takes them.

    `t_s` (n,) s; `acc_mps2` (n, 3) m/s²; `gyr_dps` (n, 3) deg/s, device or foot frame;
    `saturated` (n,) bool where a sample sits at the device's range (None: not known);
    `first_seq`/`last_seq`: the packet sequence numbers the block came from (None outside a stream).
    """

    t_s: np.ndarray
    acc_mps2: np.ndarray
    gyr_dps: np.ndarray
    saturated: np.ndarray | None = None
    first_seq: int | None = None
    last_seq: int | None = None


def packet_block(packet: Packet, sampling_rate_hz: float) -> SampleBlock:
    """A packet's samples as a `SampleBlock`.

    t_s from the device timestamp, acc_mps2 and gyr_dps from counts / scales, and `saturated`
    where an axis sits at the int16 limit (the device's range).
    """
    return counts_block(
        packet.counts,
        packet.timestamp_us,
        packet.acc_scale_per_mps2,
        packet.gyr_scale_per_dps,
        packet.sequence,
        sampling_rate_hz,
    )


def counts_block(
    counts: np.ndarray,
    timestamp_us: int,
    acc_scale_per_mps2: float,
    gyr_scale_per_dps: float,
    sequence: int,
    sampling_rate_hz: float,
) -> SampleBlock:
    """`packet_block` of a packet given by its fields: `counts` (n, 6) int16 (acc xyz, gyr xyz),
    the device timestamp (us), the scales (counts per m/s² and per deg/s) and its sequence number
    (the live analysis workers get packets in this form, without a `Packet`).

    t_s = timestamp_us * 1e-6 + arange(n) / sampling_rate_hz, the counts as floats divided by
    their scale (exact: what `Packet.acc_mps2` / `gyr_dps` divide, column by column), saturated
    where any axis sits at the int16 limit; the NumPy statements' floats in one compiled pass
    (~3.5 us a packet against their ~11 us; the timestamp is scaled in Python, as it may exceed
    int64)."""
    flat = np.ascontiguousarray(counts, dtype=np.int16).reshape(-1)
    t, acc, gyr, sat = _counts_values(
        flat, timestamp_us * 1e-6, acc_scale_per_mps2, gyr_scale_per_dps, sampling_rate_hz
    )
    return SampleBlock(t, acc, gyr, sat, first_seq=sequence, last_seq=sequence)


@numba.njit(cache=True)
def _counts_values(
    counts, t0_s, acc_scale_per_mps2, gyr_scale_per_dps, sampling_rate_hz
):  # pragma: no cover - compiled
    """(t s (n,), acc m/s² (n, 3), gyr deg/s (n, 3), saturated (n,)) of flat int16 `counts` (n * 6)."""
    n = counts.shape[0] // 6
    t = np.empty(n)
    acc = np.empty((n, 3))
    gyr = np.empty((n, 3))
    sat = np.empty(n, dtype=np.bool_)
    for i in range(n):
        t[i] = t0_s + float(i) / sampling_rate_hz
        at_limit = False
        for k in range(3):
            a = counts[6 * i + k]
            g = counts[6 * i + 3 + k]
            acc[i, k] = float(a) / acc_scale_per_mps2
            gyr[i, k] = float(g) / gyr_scale_per_dps
            at_limit = at_limit or a == -32768 or a == 32767 or g == -32768 or g == 32767
        sat[i] = at_limit
    return t, acc, gyr, sat


__all__ = [
    "MAX_SAMPLES",
    "Outcome",
    "Received",
    "SampleBlock",
    "SequenceState",
    "StreamError",
    "StreamHello",
    "StreamLimits",
    "StreamReceiver",
    "counts_block",
    "packet_block",
]
