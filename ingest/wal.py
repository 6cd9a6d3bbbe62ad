"""Write-ahead log of a live stream: append-only, one file per athlete-session-foot-device.

A stream's packets are durable once `sync()` returns, and only then acknowledged, so a server
killed at any moment keeps every acknowledged packet. File layout:

| bytes           | what                                                                 |
| --------------- | -------------------------------------------------------------------- |
| 8               | file magic ``b"SFWAL1\\n\\0"``                                         |
| records ...     | u32 payload length, u32 CRC32 of (kind byte + payload), u8 kind, payload |

Kinds: META (1, first record, UTF-8 JSON of the stream's hello), PACKET (2, one packet exactly as
received), CLOSE (3, empty: the client ended the stream). All integers little-endian.

A crash can leave a torn tail: a record header or payload cut short, or a last record whose CRC
does not match (written but not synced). On open the log is read up to the last intact record
and the file truncated there (fsynced). Records after a bad one are dropped with it; with
append-then-sync, only never-acknowledged records can sit there.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from strideflow.hardware.ids import DEVICE_ID_MAX_LENGTH, InvalidIdError, is_valid_id
from strideflow.hardware.schema import ATHLETE_ID, SESSION_ID
from strideflow.ingest.durable import fsync_dir
from strideflow.ingest.errors import IngestError

FILE_MAGIC = b"SFWAL1\n\x00"
META, PACKET, CLOSE = 1, 2, 3
KINDS = (META, PACKET, CLOSE)
_RECORD = struct.Struct("<IIB")
MAX_RECORD_BYTES = 1 << 20  # larger lengths can only come from a torn or foreign file
WAL_SUFFIX = ".wal"


class WalError(IngestError):
    """A write-ahead log that cannot be used: not a WAL file, or a name that cannot be a path."""

    def __init__(self, source: str | Path, problem: str):
        super().__init__(str(source), problem)


def _check(name: str, value: str, max_length: int | None = None) -> str:
    """The one id rule of `hardware.ids` (device ids: at most DEVICE_ID_MAX_LENGTH characters)."""
    limit = {} if max_length is None else {"max_length": max_length}
    if not is_valid_id(value, **limit):
        raise WalError("write-ahead log", str(InvalidIdError(name, value, **limit)))
    return value


def _session_dir(root: str | Path, athlete_id: str, session_id: str) -> Path:
    _check(ATHLETE_ID, athlete_id)
    _check(SESSION_ID, session_id)
    return Path(root) / f"{ATHLETE_ID}={athlete_id}" / f"{SESSION_ID}={session_id}"


def wal_path(root: str | Path, athlete_id: str, session_id: str, foot: str, device_id: str) -> Path:
    """Where the log of one athlete-session-foot-device lives under `root`."""
    _check("foot", foot)
    _check("device_id", device_id, DEVICE_ID_MAX_LENGTH)
    return _session_dir(root, athlete_id, session_id) / f"{foot}.{device_id}{WAL_SUFFIX}"


def session_wal_devices(
    root: str | Path, athlete_id: str, session_id: str, foot: str | None = None
) -> set[str]:
    """Device ids with a log in this athlete-session under `root` (of one foot, if given)."""
    folder = _session_dir(root, athlete_id, session_id)
    if not folder.is_dir():
        return set()
    names = (p.name[: -len(WAL_SUFFIX)] for p in folder.glob(f"{foot or '*'}.*{WAL_SUFFIX}"))
    return {name.split(".", 1)[1] for name in names}


def list_wals(root: str | Path) -> list[Path]:
    """Every log file under `root`, sorted."""
    base = Path(root)
    return sorted(base.glob(f"{ATHLETE_ID}=*/{SESSION_ID}=*/*{WAL_SUFFIX}")) if base.is_dir() else []


_KIND_CRC = {kind: zlib.crc32(bytes([kind])) for kind in KINDS}  # a record's CRC starts with its kind byte


def _frame(kind: int, payload: bytes) -> bytes:
    return _RECORD.pack(len(payload), zlib.crc32(payload, _KIND_CRC[kind]), kind) + payload


def _sync(fd: int) -> None:
    # fdatasync also persists the file size an append changed, which is all a reader needs.
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def scan_records(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(records as (kind, payload), byte length of the intact prefix) of a log's bytes after the magic."""
    records: list[tuple[int, bytes]] = []
    pos, end = 0, len(data)
    view = memoryview(data)
    while pos + _RECORD.size <= end:
        length, crc, kind = _RECORD.unpack_from(data, pos)
        stop = pos + _RECORD.size + length
        if kind not in KINDS or length > MAX_RECORD_BYTES or stop > end:
            break
        payload = view[pos + _RECORD.size : stop]
        if zlib.crc32(payload, _KIND_CRC[kind]) != crc:
            break
        records.append((kind, bytes(payload)))
        pos = stop
    return records, pos


class WriteAheadLog:
    """One open log. `open()` creates it (with `meta`) or recovers it; `append` + `sync` before acking.

    After open: `meta` (the hello dict), `packets_` (payloads already in the log, in order),
    `closed_` (a CLOSE record is present), `truncated_bytes_` (torn tail cut off on open).
    """

    def __init__(self, path: Path, fd: int, meta: dict, packets: list[bytes], closed: bool, truncated: int):
        self.path = path
        self._fd = fd
        self._size = os.lseek(fd, 0, os.SEEK_END)
        self._device = os.fstat(fd).st_dev
        self.meta = meta
        self.packets_ = packets
        self.closed_ = closed
        self.truncated_bytes_ = truncated
        self._pending: list[bytes] = []  # appended records not written yet (`sync` writes them)

    @classmethod
    def open(cls, path: str | Path, meta: dict | None = None) -> WriteAheadLog:
        """Open or create the log at `path`; a new (or torn-at-birth) log needs `meta`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read()
            if len(data) >= len(FILE_MAGIC) and not data.startswith(FILE_MAGIC):
                raise WalError(path, "not a strideflow write-ahead log (bad file magic)")
            records, good = scan_records(data[len(FILE_MAGIC) :]) if len(data) >= len(FILE_MAGIC) else ([], 0)
            if not records or records[0][0] != META:
                # Empty, or created and killed before its META record was synced: start afresh.
                if meta is None:
                    raise WalError(path, "log has no stream metadata and none was given to create it")
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, FILE_MAGIC + _frame(META, json.dumps(meta, sort_keys=True).encode()))
                _sync(fd)
                fsync_dir(path.parent)
                return cls(path, fd, dict(meta), [], False, len(data))
            keep = len(FILE_MAGIC) + good
            truncated = len(data) - keep
            if truncated:
                os.ftruncate(fd, keep)
                _sync(fd)
            os.lseek(fd, keep, os.SEEK_SET)
            stored_meta = json.loads(records[0][1])
            packets = [p for kind, p in records[1:] if kind == PACKET]
            closed = any(kind == CLOSE for kind, _ in records[1:])
            return cls(path, fd, stored_meta, packets, closed, truncated)
        except BaseException:
            os.close(fd)
            raise

    def _write(self, record: bytes) -> None:
        try:
            written = os.write(self._fd, record)
            if written != len(record):
                raise OSError(f"short write: {written} of {len(record)} bytes")
        except OSError as exc:
            # Never leave a torn record in the middle: later records would be cut off with it.
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
            raise WalError(self.path, f"could not append to the log: {exc}") from exc
        self._size += len(record)

    def append(self, packet: bytes) -> None:
        """Write one packet record (not yet durable: call `sync` before acknowledging it)."""
        self._write_pending()
        self._write(_frame(PACKET, packet))

    def queue(self, packet: bytes) -> None:
        """Add one packet record to be written by the next `sync` (or `append`), with the others
        queued, in one system call: the live server queues on its event loop and syncs in a thread,
        so the loop makes no write. Not written, not durable, never to be acknowledged before the sync.
        """
        self._pending.append(_frame(PACKET, packet))

    def write_queued(self) -> None:
        """Write the queued records (one system call), not yet durable: `sync` makes them so. Writing
        several logs' records before fsyncing any lets the file system commit them together."""
        self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            records, self._pending = b"".join(self._pending), []
            self._write(records)  # on failure none of them is in the log (and none was acknowledged)

    def append_close(self) -> None:
        """Mark the stream ended by its client (durable on return, with every record before it)."""
        self._write_pending()
        self._write(_frame(CLOSE, b""))
        _sync(self._fd)
        self.closed_ = True

    def sync(self) -> None:
        """Write the appended records and make them durable."""
        self._write_pending()
        _sync(self._fd)

    def fileno(self) -> int:
        """The open log's file descriptor (-1 once closed)."""
        return self._fd

    @property
    def device(self) -> int:
        """The file system the log is on (`st_dev`): logs on one can be made durable together
        (`ingest.durable.sync_file_system`)."""
        return self._device

    def close(self) -> None:
        """Close the file; records queued since the last sync are dropped (never acknowledged)."""
        self._pending = []
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_wal(path: str | Path) -> tuple[dict, list[bytes], bool]:
    """(meta, packet payloads, closed) of a log without modifying it (a torn tail is ignored)."""
    data = Path(path).read_bytes()
    if not data.startswith(FILE_MAGIC):
        raise WalError(path, "not a strideflow write-ahead log (bad file magic)")
    records, _ = scan_records(data[len(FILE_MAGIC) :])
    if not records or records[0][0] != META:
        raise WalError(path, "log has no stream metadata")
    return (
        json.loads(records[0][1]),
        [p for kind, p in records[1:] if kind == PACKET],
        any(kind == CLOSE for kind, _ in records[1:]),
    )


def iter_packets(path: str | Path) -> Iterator[bytes]:
    """Packet payloads of a log, in order."""
    yield from read_wal(path)[1]
