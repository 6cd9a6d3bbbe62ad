"""Packet protocol: exact round trip, and every corrupted, truncated or extended packet rejected."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strideflow.hardware.packets import (
    DEVICE_ID_BYTES,
    HEADER_BYTES,
    MAX_PACKET_BYTES,
    MAX_SAMPLES,
    Packet,
    PacketError,
    _printable,
    decode_packet,
    encode_packet,
    profile_scales,
    quantize_samples,
)
from strideflow.hardware.profiles import DEFAULT_PROFILE, PROFILES

device_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16)
scales = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def packets(draw, max_samples: int = 40):
    n = draw(st.integers(1, max_samples))
    return {
        "device_id": draw(device_ids),
        "foot": draw(st.sampled_from(["left", "right"])),
        "sequence": draw(st.integers(0, 2**32 - 1)),
        "timestamp_us": draw(st.integers(0, 2**64 - 1)),
        "counts": draw(arrays(np.int16, (n, 6))),
        "acc_scale_per_mps2": draw(scales),
        "gyr_scale_per_dps": draw(scales),
    }


def _reseal(body: bytes) -> bytes:
    """`body` (everything before the CRC) with a correct CRC appended."""
    return body + struct.pack("<I", zlib.crc32(body))


@given(packets())
def test_round_trip_is_exact(fields):
    data = encode_packet(**fields)
    assert len(data) == HEADER_BYTES + 12 * fields["counts"].shape[0] + 4
    p = decode_packet(data)
    assert p.device_id == fields["device_id"]
    assert p.foot == fields["foot"]
    assert p.sequence == fields["sequence"]
    assert p.timestamp_us == fields["timestamp_us"]
    assert p.acc_scale_per_mps2 == fields["acc_scale_per_mps2"]
    assert p.gyr_scale_per_dps == fields["gyr_scale_per_dps"]
    assert p.counts.dtype == np.int16
    np.testing.assert_array_equal(p.counts, fields["counts"])


@settings(max_examples=300)
@given(packets(max_samples=8), st.data())
def test_any_single_bit_flip_is_rejected(fields, data):
    raw = bytearray(encode_packet(**fields))
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(PacketError) as err:
        decode_packet(bytes(raw))
    assert err.value.reason


@given(packets(max_samples=8), st.data())
def test_any_truncation_is_rejected(fields, data):
    raw = encode_packet(**fields)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(PacketError, match="truncated"):
        decode_packet(raw[:cut])


@given(packets(max_samples=8), st.binary(min_size=1, max_size=64))
def test_any_extension_is_rejected(fields, extra):
    raw = encode_packet(**fields)
    with pytest.raises(PacketError, match="inconsistent length|oversized"):
        decode_packet(raw + extra)


@given(packets(max_samples=4), st.integers(0, 2**32 - 1))
def test_two_bit_errors_in_crc_field_rejected(fields, mask):
    raw = bytearray(encode_packet(**fields))
    crc = struct.unpack_from("<I", raw, len(raw) - 4)[0] ^ (mask or 1)
    struct.pack_into("<I", raw, len(raw) - 4, crc)
    with pytest.raises(PacketError, match="CRC"):
        decode_packet(bytes(raw))


def _one_packet() -> bytes:
    return encode_packet(
        "pod-1", "left", 7, 123_456, np.arange(12, dtype=np.int16).reshape(2, 6), 2000.0, 16.0
    )


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (0, b"XXXX", "bad magic"),
        (4, bytes([2]), "unsupported version"),
        (5, bytes([2]), "bad foot"),
        (8, b"\x00" * 16, "bad device id"),
        (8, b"pod\x00\x01" + b"\x00" * 11, "bad device id"),
        (36, struct.pack("<d", 0.0), "acc scale"),
        (44, struct.pack("<d", float("nan")), "gyr scale"),
    ],
)
def test_bad_fields_with_valid_crc_are_named(offset, value, reason):
    body = bytearray(_one_packet()[:-4])
    body[offset : offset + len(value)] = value
    with pytest.raises(PacketError, match=reason):
        decode_packet(_reseal(bytes(body)))


def test_oversized_packets_are_rejected_before_parsing():
    with pytest.raises(PacketError, match="oversized"):
        decode_packet(b"\x00" * (MAX_PACKET_BYTES + 1))
    body = bytearray(_one_packet()[:-4])
    struct.pack_into("<H", body, 6, MAX_SAMPLES + 1)
    with pytest.raises(PacketError, match="oversized"):
        decode_packet(_reseal(bytes(body)))
    with pytest.raises(PacketError, match="1-1024 samples"):
        encode_packet("pod", "left", 0, 0, np.zeros((MAX_SAMPLES + 1, 6), np.int16), 1.0, 1.0)


def test_encoder_refuses_what_it_cannot_represent():
    ok = np.zeros((1, 6), np.int16)
    with pytest.raises(PacketError, match="device id"):
        encode_packet("pöd", "left", 0, 0, ok, 1.0, 1.0)
    with pytest.raises(PacketError, match="device id"):
        encode_packet("x" * 17, "left", 0, 0, ok, 1.0, 1.0)
    with pytest.raises(PacketError, match="foot"):
        encode_packet("pod", "middle", 0, 0, ok, 1.0, 1.0)
    with pytest.raises(PacketError, match="u32"):
        encode_packet("pod", "left", 2**32, 0, ok, 1.0, 1.0)
    with pytest.raises(PacketError, match="int16"):
        encode_packet("pod", "left", 0, 0, np.full((1, 6), 40_000), 1.0, 1.0)


def test_profile_quantisation_recovers_adc_values_and_saturates():
    """A value the simulator's ADC made (counts x LSB) survives the packet; beyond range clips."""
    profile = PROFILES["budget-8g-1000dps"]
    acc_scale, gyr_scale = profile_scales(profile)
    counts_in = np.array([[100, -200, 2048, 5, -5, 32767], [-32768, 0, 1, -1, 12345, -12345]])
    acc = counts_in[:, :3] * profile.acc_lsb_mps2
    gyr = counts_in[:, 3:] * profile.gyr_lsb_dps
    counts, saturated = quantize_samples(acc, gyr, acc_scale, gyr_scale)
    np.testing.assert_array_equal(counts, counts_in)
    assert saturated.tolist() == [True, True]
    p = decode_packet(encode_packet("sim", "right", 0, 0, counts, acc_scale, gyr_scale))
    np.testing.assert_allclose(p.acc_mps2, acc, rtol=1e-15, atol=0)
    np.testing.assert_allclose(p.gyr_dps, gyr, rtol=1e-15, atol=0)
    # 20 g on an 8 g device and 1500 deg/s on a 1000 deg/s one read full scale.
    counts, saturated = quantize_samples(
        np.array([[20 * 9.80665, 0, -20 * 9.80665]]), np.array([[1500.0, 0, 0]]), acc_scale, gyr_scale
    )
    assert counts[0].tolist() == [32767, 0, -32768, 32767, 0, 0]
    assert saturated.tolist() == [True]
    with pytest.raises(PacketError, match="NaN"):
        quantize_samples(np.array([[np.nan, 0, 0]]), np.zeros((1, 3)), acc_scale, gyr_scale)


def test_times_follow_device_timestamp_and_rate():
    acc_scale, gyr_scale = profile_scales(DEFAULT_PROFILE)
    p = decode_packet(
        encode_packet("d", "left", 3, 2_500_000, np.zeros((4, 6), np.int16), acc_scale, gyr_scale)
    )
    np.testing.assert_allclose(p.times_s(200.0), [2.5, 2.505, 2.51, 2.515])


@settings(max_examples=400)
@given(st.binary(max_size=DEVICE_ID_BYTES))
def test_device_id_field_is_refused_exactly_as_by_the_byte_test(field):
    """The id field a decoder accepts is what the byte-by-byte rule accepts: after the NUL padding,
    1-16 bytes each 0x21-0x7E."""
    body = bytearray(_one_packet()[:-4])
    body[8:24] = field.ljust(DEVICE_ID_BYTES, b"\x00")
    device = bytes(body[8:24]).rstrip(b"\x00")
    accepted = bool(device) and all(0x21 <= b <= 0x7E for b in device)
    assert _printable(device) == all(0x21 <= b <= 0x7E for b in device)
    if accepted:
        assert decode_packet(_reseal(bytes(body))).device_id == device.decode("ascii")
    else:
        with pytest.raises(PacketError, match="bad device id"):
            decode_packet(_reseal(bytes(body)))


@given(packets())
def test_decoded_packet_equals_one_built_by_its_constructor(fields):
    """`decode_packet`'s packet (built without the dataclass's __init__) has the fields, types and
    frozenness of `Packet(...)` of the same values."""
    decoded = decode_packet(encode_packet(**fields))
    built = Packet(
        device_id=fields["device_id"],
        foot=fields["foot"],
        sequence=fields["sequence"],
        timestamp_us=fields["timestamp_us"],
        acc_scale_per_mps2=fields["acc_scale_per_mps2"],
        gyr_scale_per_dps=fields["gyr_scale_per_dps"],
        counts=fields["counts"].astype(np.int16),
    )
    assert type(decoded) is Packet
    for f in dataclasses.fields(Packet):
        got, want = getattr(decoded, f.name), getattr(built, f.name)
        assert type(got) is type(want)
        if f.name == "counts":
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype and got.flags.writeable and got.flags.owndata
        else:
            assert got == want
    assert vars(decoded).keys() == vars(built).keys()
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.sequence = 0
