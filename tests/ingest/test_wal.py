"""Write-ahead log and stream receiver: durable appends, torn tails, duplicates, gaps, resume, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from strideflow.hardware.packets import encode_packet
from strideflow.ingest.stream_receiver import Outcome, StreamError, StreamHello, StreamReceiver
from strideflow.ingest.wal import FILE_MAGIC, WalError, WriteAheadLog, list_wals, read_wal, wal_path

META = {
    "athlete_id": "A1",
    "session_id": "S1",
    "foot": "left",
    "device_id": "pod1",
    "sampling_rate_hz": 200.0,
}


def _packet(seq: int, n: int = 4, device: str = "pod1", foot: str = "left") -> bytes:
    counts = (np.arange(n * 6).reshape(n, 6) + 10 * seq).astype(np.int16)
    return encode_packet(device, foot, seq, seq * n * 5000, counts, 2048.0, 16.4)


def test_append_sync_reopen_keeps_meta_and_packets(tmp_path):
    path = wal_path(tmp_path, "A1", "S1", "left", "pod1")
    with WriteAheadLog.open(path, META) as wal:
        for seq in range(5):
            wal.append(_packet(seq))
        wal.sync()
    with WriteAheadLog.open(path) as wal:
        assert wal.meta == META
        assert wal.packets_ == [_packet(s) for s in range(5)]
        assert wal.truncated_bytes_ == 0 and not wal.closed_
        wal.append_close()
    meta, packets, closed = read_wal(path)
    assert meta == META and len(packets) == 5 and closed
    assert list_wals(tmp_path) == [path]


def test_every_torn_tail_is_truncated_to_the_last_intact_record(tmp_path):
    path = tmp_path / "x.wal"
    with WriteAheadLog.open(path, META) as wal:
        for seq in range(3):
            wal.append(_packet(seq))
        wal.sync()
    intact = path.read_bytes()
    last = _packet(3)
    with WriteAheadLog.open(path) as wal:
        wal.append(last)
        wal.sync()
    full = path.read_bytes()
    for cut in range(len(intact), len(full)):  # a crash mid-write of the 4th record, at every byte
        path.write_bytes(full[:cut])
        with WriteAheadLog.open(path) as wal:
            assert wal.packets_ == [_packet(s) for s in range(3)]
            assert wal.truncated_bytes_ == cut - len(intact)
            wal.append(_packet(9))  # the log stays usable after recovery
            wal.sync()
        assert read_wal(path)[1] == [*(_packet(s) for s in range(3)), _packet(9)]
    # A full-length last record with a flipped byte (written, never synced) is cut too.
    broken = bytearray(full)
    broken[-3] ^= 0x40
    path.write_bytes(bytes(broken))
    with WriteAheadLog.open(path) as wal:
        assert len(wal.packets_) == 3 and wal.truncated_bytes_ == len(full) - len(intact)


def test_log_torn_before_its_meta_is_recreated_and_foreign_files_refused(tmp_path):
    path = tmp_path / "y.wal"
    path.write_bytes(FILE_MAGIC[:5])
    with pytest.raises(WalError, match="no stream metadata"):
        WriteAheadLog.open(path)
    with WriteAheadLog.open(path, META) as wal:
        assert wal.meta == META and wal.packets_ == []
    other = tmp_path / "z.wal"
    other.write_bytes(b"PAR1 definitely not a log")
    with pytest.raises(WalError, match="bad file magic"):
        WriteAheadLog.open(other, META)
    with pytest.raises(WalError, match="device_id"):
        wal_path(tmp_path, "A1", "S1", "left", "../etc")


def _hello(**kw) -> StreamHello:
    return StreamHello.parse({**META, **kw})


def test_receiver_dedupes_reports_gaps_and_resumes(tmp_path):
    rx = StreamReceiver.open(tmp_path, _hello())
    assert rx.resume_from is None
    assert rx.receive(_packet(0)).outcome is Outcome.NEW
    assert rx.receive(_packet(1)).outcome is Outcome.NEW
    dup = rx.receive(_packet(1))
    assert dup.outcome is Outcome.DUPLICATE and dup.sequence == 1
    jump = rx.receive(_packet(5))
    assert jump.outcome is Outcome.NEW and jump.gap == (2, 4)
    assert rx.receive(_packet(3)).outcome is Outcome.LATE
    bad = rx.receive(_packet(6)[:-1])
    assert bad.outcome is Outcome.REJECTED and "truncated" in bad.reason
    other = rx.receive(_packet(6, device="pod2"))
    assert other.outcome is Outcome.REJECTED and "pod2" in other.reason
    rx.commit()
    rx.close()
    # A restarted server rebuilds the same state from the log alone.
    again = StreamReceiver.open(tmp_path, _hello())
    assert again.resume_from == 5
    assert again.state.gaps == [(2, 4)]
    assert [p.sequence for p in again.replayed_] == [0, 1, 5]
    assert again.samples_received_ == 12
    assert again.receive(_packet(1)).outcome is Outcome.DUPLICATE
    assert again.receive(_packet(6)).outcome is Outcome.NEW
    again.close()
    with pytest.raises(StreamError, match="sampling_rate_hz"):
        StreamReceiver.open(tmp_path, _hello(sampling_rate_hz=100.0))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"foot": "middle"}, "foot"),
        ({"athlete_id": "../x"}, "athlete_id"),
        ({"device_id": "a/b"}, "device_id"),
        ({"sampling_rate_hz": -1}, "sampling_rate_hz"),
        ({"sampling_rate_hz": "fast"}, "sampling_rate_hz"),
        ({"profile": "nope"}, "profile"),
        ({"session_id": None}, "session_id"),
    ],
)
def test_bad_hello_names_the_field(change, field):
    with pytest.raises(StreamError, match=f"column {field}"):
        StreamHello.parse({**META, **change})


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from strideflow.hardware.packets import encode_packet
    from strideflow.ingest.wal import WriteAheadLog
    meta = {"athlete_id": "A1", "session_id": "S1", "foot": "left", "device_id": "p",
            "sampling_rate_hz": 200.0}
    wal = WriteAheadLog.open(sys.argv[1], meta)
    seq = len(wal.packets_)
    while True:
        counts = np.full((20, 6), seq % 30000, dtype=np.int16)
        wal.append(encode_packet("p", "left", seq, seq, counts, 1.0, 1.0))
        wal.sync()
        print(seq, flush=True)  # the "ack": only after the sync
        seq += 1
    """
)


def test_sigkill_mid_append_loses_no_synced_record(tmp_path):
    """A writer killed with SIGKILL at a random moment keeps every record it acknowledged, once."""
    path = tmp_path / "k.wal"
    acked: list[int] = []
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(50 + np.random.default_rng().integers(0, 50)):
            acked.append(int(proc.stdout.readline()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        with WriteAheadLog.open(path) as wal:
            stored = [int.from_bytes(p[24:28], "little") for p in wal.packets_]
        assert stored == list(range(len(stored)))  # each once, in order
        assert set(acked) <= set(stored)


def test_failed_append_leaves_no_torn_record(tmp_path, monkeypatch):
    """A short write (disk full) is undone, so the records after it are not cut off on reopen."""
    import strideflow.ingest.wal as wal_module

    path = tmp_path / "f.wal"
    wal = WriteAheadLog.open(path, META)
    wal.append(_packet(0))
    real_write = os.write

    def half_write(fd, data):
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(wal_module.os, "write", half_write)
    with pytest.raises(WalError, match="short write"):
        wal.append(_packet(1))
    monkeypatch.setattr(wal_module.os, "write", real_write)
    wal.append(_packet(2))
    wal.sync()
    wal.close()
    assert read_wal(path)[1] == [_packet(0), _packet(2)]


def test_records_are_laid_out_as_documented(tmp_path):
    """Each record: u32 length, u32 CRC32 of (kind byte + payload), u8 kind, payload (little-endian)."""
    import struct
    import zlib

    path = tmp_path / "x.wal"
    with WriteAheadLog.open(path, META) as wal:
        wal.queue(_packet(0))
        wal.sync()
        wal.append(_packet(1))
        wal.append_close()
    data = path.read_bytes()[len(FILE_MAGIC) :]
    kinds, pos = [], 0
    while pos < len(data):
        length, crc, kind = struct.unpack_from("<IIB", data, pos)
        payload = data[pos + 9 : pos + 9 + length]
        assert crc == zlib.crc32(bytes([kind]) + payload)
        kinds.append((kind, payload))
        pos += 9 + length
    assert [k for k, _ in kinds] == [1, 2, 2, 3]
    assert [p for _, p in kinds[1:3]] == [_packet(0), _packet(1)]
