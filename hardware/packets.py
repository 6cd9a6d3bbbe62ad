"""Binary packet of a shoe IMU: one block of raw int16 samples from one device, with a CRC32.

Every field is little-endian. A packet of n samples is exactly ``HEADER_BYTES + 12 n + 4`` bytes:

| offset     | size | type       | field                                                          |
| ---------- | ---- | ---------- | -------------------------------------------------------------- |
| 0          | 4    | bytes      | magic ``b"SFPK"``                                              |
| 4          | 1    | u8         | version, ``VERSION`` (1)                                       |
| 5          | 1    | u8         | foot: 0 left, 1 right                                          |
| 6          | 2    | u16        | n, samples in the packet, 1 ... ``MAX_SAMPLES`` (1024)         |
| 8          | 16   | ASCII      | device id, NUL-padded, 1-16 printable characters              |
| 24         | 4    | u32        | sequence number, +1 per packet of a device's stream            |
| 28         | 8    | u64        | device timestamp of the first sample, µs                       |
| 36         | 8    | f64        | acc scale: counts (LSB) per m/s² (profile: 1 / acc_lsb_mps2)   |
| 44         | 8    | f64        | gyr scale: counts (LSB) per deg/s (profile: 1 / gyr_lsb_dps)   |
| 52         | 12 n | i16[n][6]  | samples, per sample acc_x acc_y acc_z gyr_x gyr_y gyr_z counts |
| 52 + 12 n  | 4    | u32        | CRC32 (zlib.crc32) of bytes [0, 52 + 12 n)                     |

Samples are in the device frame; value = counts / scale (m/s², deg/s). Sample i of a packet was
taken at ``timestamp_us + i / sampling_rate_hz`` (the rate is agreed once per stream, not per packet).

`decode_packet` checks, in this order, and raises `PacketError` whose `reason` names the first
failure: oversized (more than ``MAX_PACKET_BYTES``), truncated (shorter than a header and CRC),
bad magic, unsupported version, sample count out of range, length inconsistent with the sample
count (truncated or trailing bytes), CRC mismatch, bad foot code, bad device id, bad scale
factors. The CRC is checked before any field is trusted beyond what framing needs, so a
corrupted packet is rejected, never mis-read: CRC32 catches every 1-3 bit error and every burst
up to 32 bits.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.profiles import DeviceProfile

MAGIC = b"SFPK"
VERSION = 1
MAX_SAMPLES = 1024
DEVICE_ID_BYTES = 16
FOOT_CODES = {"left": 0, "right": 1}
FOOT_NAMES = {code: name for name, code in FOOT_CODES.items()}
AXES = 6  # acc xyz, gyr xyz
_HEADER = struct.Struct("<4sBBH16sIQdd")
HEADER_BYTES = _HEADER.size  # 52
CRC_BYTES = 4
SAMPLE_BYTES = 2 * AXES
MIN_PACKET_BYTES = HEADER_BYTES + SAMPLE_BYTES + CRC_BYTES
MAX_PACKET_BYTES = HEADER_BYTES + MAX_SAMPLES * SAMPLE_BYTES + CRC_BYTES
_SAMPLE_DTYPE = np.dtype("<i2")
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
_PRINTABLE_ASCII = bytes(range(0x21, 0x7F))  # what a device id may hold: "!" ... "~", no space


def _printable(raw: bytes) -> bool:
    """Whether every byte is printable ASCII other than space (0x21-0x7E); True for no bytes.
    `translate` deletes those in one C pass (~0.1 us), where a generator over the bytes took ~1.5 us."""
    return not raw.translate(None, _PRINTABLE_ASCII)


class PacketError(StrideflowError):
    """Bytes that are not a valid packet; `reason` says what is wrong."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"bad packet: {reason}")


@dataclass(frozen=True, eq=False)
class Packet:
    """One decoded packet. `counts` is (n, 6) int16: acc xyz, gyr xyz in ADC counts."""

    device_id: str
    foot: str
    sequence: int
    timestamp_us: int
    acc_scale_per_mps2: float  # counts per m/s²
    gyr_scale_per_dps: float  # counts per deg/s
    counts: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.counts.shape[0])

    @property
    def acc_mps2(self) -> np.ndarray:
        """(n, 3) acceleration, m/s², device frame."""
        return self.counts[:, :3].astype(float) / self.acc_scale_per_mps2

    @property
    def gyr_dps(self) -> np.ndarray:
        """(n, 3) angular rate, deg/s, device frame."""
        return self.counts[:, 3:].astype(float) / self.gyr_scale_per_dps

    def times_s(self, sampling_rate_hz: float) -> np.ndarray:
        """Sample times, s since device time zero."""
        return self.timestamp_us * 1e-6 + np.arange(self.n_samples) / sampling_rate_hz


def _trusted_packet(
    device_id: str,
    foot: str,
    sequence: int,
    timestamp_us: int,
    acc_scale_per_mps2: float,
    gyr_scale_per_dps: float,
    counts: np.ndarray,
) -> Packet:
    """A `Packet` of fields `decode_packet` has checked, equal to `Packet(...)` of them: the frozen
    dataclass's `__init__` sets each field through `object.__setattr__` (~2.5 us a packet, of ~7),
    this fills the instance's dict at once."""
    packet = object.__new__(Packet)
    packet.__dict__.update(
        device_id=device_id,
        foot=foot,
        sequence=sequence,
        timestamp_us=timestamp_us,
        acc_scale_per_mps2=acc_scale_per_mps2,
        gyr_scale_per_dps=gyr_scale_per_dps,
        counts=counts,
    )
    return packet


def profile_scales(profile: DeviceProfile) -> tuple[float, float]:
    """(acc counts per m/s², gyr counts per deg/s) of a device profile."""
    return 1.0 / profile.acc_lsb_mps2, 1.0 / profile.gyr_lsb_dps


def quantize_samples(
    acc_mps2: np.ndarray, gyr_dps: np.ndarray, acc_scale_per_mps2: float, gyr_scale_per_dps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Physical samples to int16 counts as the device's ADC makes them: ((n, 6) counts, saturated (n,)).

    Values beyond the range clip at the int16 limits, as a saturating sensor reads; `saturated`
    marks samples with an axis at a limit.
    """
    raw = np.column_stack(
        [np.asarray(acc_mps2, float) * acc_scale_per_mps2, np.asarray(gyr_dps, float) * gyr_scale_per_dps]
    )
    if not np.all(np.isfinite(raw)):
        raise PacketError("samples contain NaN or inf; a device cannot send them")
    counts = np.clip(np.round(raw), INT16_MIN, INT16_MAX)
    saturated = np.any((counts <= INT16_MIN) | (counts >= INT16_MAX), axis=1)
    return counts.astype(np.int16), saturated


def _check_device_id(device_id: str) -> bytes:
    try:
        raw = device_id.encode("ascii") if isinstance(device_id, str) else b""
    except UnicodeEncodeError:
        raw = b""
    if not 1 <= len(raw) <= DEVICE_ID_BYTES or not _printable(raw):
        raise PacketError(f"device id {device_id!r} must be 1-{DEVICE_ID_BYTES} printable ASCII characters")
    return raw


def _check_scales(acc_scale: float, gyr_scale: float) -> None:
    for name, value in (("acc", acc_scale), ("gyr", gyr_scale)):
        if not (math.isfinite(value) and value > 0):  # per packet: math's test costs a fiftieth of numpy's
            raise PacketError(f"{name} scale factor must be a positive finite number, got {value!r}")


def encode_packet(
    device_id: str,
    foot: str,
    sequence: int,
    timestamp_us: int,
    counts: np.ndarray,
    acc_scale_per_mps2: float,
    gyr_scale_per_dps: float,
) -> bytes:
    """Bytes of one packet; `counts` (n, 6) integer ADC counts within int16 (see the module table)."""
    dev = _check_device_id(device_id)
    if foot not in FOOT_CODES:
        raise PacketError(f"foot must be left or right, got {foot!r}")
    if not 0 <= sequence < 2**32:
        raise PacketError(f"sequence number {sequence} does not fit in u32")
    if not 0 <= timestamp_us < 2**64:
        raise PacketError(f"timestamp {timestamp_us} µs does not fit in u64")
    _check_scales(acc_scale_per_mps2, gyr_scale_per_dps)
    arr = np.asarray(counts)
    if arr.ndim != 2 or arr.shape[1] != AXES:
        raise PacketError(f"samples must be shaped (n, {AXES}), got {arr.shape}")
    if not 1 <= arr.shape[0] <= MAX_SAMPLES:
        raise PacketError(f"a packet holds 1-{MAX_SAMPLES} samples, got {arr.shape[0]}")
    if arr.dtype != np.int16:
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < INT16_MIN or arr.max() > INT16_MAX:
            raise PacketError("samples must be integer counts within int16")
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        FOOT_CODES[foot],
        arr.shape[0],
        dev,
        int(sequence),
        int(timestamp_us),
        float(acc_scale_per_mps2),
        float(gyr_scale_per_dps),
    )
    body = header + arr.astype(_SAMPLE_DTYPE).tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def decode_packet(data: bytes) -> Packet:
    """Parse and verify one packet; raises PacketError(reason) on anything but a valid packet."""
    size = len(data)
    if size > MAX_PACKET_BYTES:
        raise PacketError(f"oversized: {size} bytes, at most {MAX_PACKET_BYTES}")
    if size < MIN_PACKET_BYTES:
        raise PacketError(f"truncated: {size} bytes, a packet has at least {MIN_PACKET_BYTES}")
    magic, version, foot_code, n, dev, seq, ts, acc_scale, gyr_scale = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise PacketError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PacketError(f"unsupported version {version}, this decoder reads {VERSION}")
    if not 1 <= n <= MAX_SAMPLES:
        raise PacketError(f"oversized: sample count {n} is not within 1-{MAX_SAMPLES}")
    expected = HEADER_BYTES + n * SAMPLE_BYTES + CRC_BYTES
    if size < expected:
        raise PacketError(f"truncated: {size} bytes for {n} samples, expected {expected}")
    if size > expected:
        raise PacketError(f"inconsistent length: {size} bytes for {n} samples, expected {expected}")
    (crc,) = struct.unpack_from("<I", data, expected - CRC_BYTES)
    actual = zlib.crc32(memoryview(data)[: expected - CRC_BYTES])
    if crc != actual:
        raise PacketError(f"CRC mismatch: packet says {crc:#010x}, bytes give {actual:#010x}")
    if foot_code not in FOOT_NAMES:
        raise PacketError(f"bad foot code {foot_code}, expected 0 (left) or 1 (right)")
    device = dev.rstrip(b"\x00")
    if not device or not _printable(device):
        raise PacketError(
            f"bad device id {dev!r}: 1-{DEVICE_ID_BYTES} printable ASCII characters, NUL-padded"
        )
    _check_scales(acc_scale, gyr_scale)
    counts = np.frombuffer(data, _SAMPLE_DTYPE, n * AXES, HEADER_BYTES).reshape(n, AXES)
    return _trusted_packet(
        device.decode("ascii"),
        FOOT_NAMES[foot_code],
        seq,
        ts,
        acc_scale,
        gyr_scale,
        counts.astype(np.int16),
    )
