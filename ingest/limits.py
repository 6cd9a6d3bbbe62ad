"""Size limits of a file checked before it is decoded: rows, columns and decoded bytes.

A small file can decode into a huge table (a Parquet file of 40 million constant rows compresses
to a few hundred KB; so does a gzip of a repeated CSV line), so the upload route checks a
file's *decoded* size from what can be read cheaply, before `read_recording` decodes it:

- Parquet: the footer's metadata (`pyarrow.parquet.ParquetFile(...).metadata`): `num_rows`,
  `num_columns`, and the decoded size as the larger of the row groups' uncompressed byte sizes
  and rows times the columns' in-memory widths (8 bytes for a double, 16 for a string view), so
  a footer that understates its byte sizes is still bounded by its row count;
- gzip: the stream is inflated in chunks of at most `CHUNK_BYTES` (never held whole) while its
  decoded bytes and lines are counted, stopping as soon as a limit is passed;
- CSV (anything else): lines counted in chunks, columns from the header line's delimiters, the
  decoded size estimated as rows times columns times 8 bytes (one float64 per cell).

With the limits checked first, decoding a file holds at most about `max_decoded_bytes` of table
(plus the working copies of validation), whatever its compression ratio.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from strideflow.ingest.errors import IngestError

CHUNK_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# In-memory bytes per value of each Parquet physical type after decoding (polars/Arrow):
# strings become 16-byte views (plus their data, which the uncompressed size counts).
_WIDTH = {
    "BOOLEAN": 1,
    "INT32": 4,
    "INT64": 8,
    "INT96": 12,
    "FLOAT": 4,
    "DOUBLE": 8,
    "BYTE_ARRAY": 16,
    "FIXED_LEN_BYTE_ARRAY": 16,
}


@dataclass(frozen=True)
class FileLimits:
    """Largest accepted table: rows, columns and decoded (in-memory) bytes."""

    max_rows: int = 10_000_000
    max_columns: int = 256
    max_decoded_bytes: int = 1 << 30


@dataclass(frozen=True)
class FileSize:
    """What a file decodes to, as far as it is known before decoding (`decoded_bytes` estimated)."""

    kind: str  # parquet, gzip or csv
    rows: int
    columns: int
    decoded_bytes: int


class FileTooLarge(IngestError):
    """A file whose decoded table would pass one of the FileLimits (the upload route answers 413)."""


def _parquet_size(path: Path) -> FileSize | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception:  # noqa: BLE001 - not readable as Parquet: ingest names the problem when it reads it
        return None
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    widths = sum(_WIDTH.get(meta.schema.column(j).physical_type, 16) for j in range(meta.num_columns))
    rows = int(meta.num_rows)
    return FileSize("parquet", rows, int(meta.num_columns), max(int(uncompressed), rows * widths))


def _header_columns(line: bytes) -> int:
    return 1 + max(line.count(sep) for sep in (b",", b";", b"\t"))


def _gzip_size(path: Path, limits: FileLimits) -> FileSize:
    """Inflate in bounded chunks, counting bytes and lines; stops once past a limit."""
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    decoded = lines = 0
    header = b""
    with open(path, "rb") as fh:
        pending = b""
        while True:
            if not pending:
                pending = fh.read(CHUNK_BYTES)
                if not pending:
                    break
            out = inflate.decompress(pending, CHUNK_BYTES)
            pending = inflate.unconsumed_tail
            decoded += len(out)
            lines += out.count(b"\n")
            if len(header) < 64 * 1024 and b"\n" not in header:
                header += out[: 64 * 1024]
            if decoded > limits.max_decoded_bytes or lines > limits.max_rows + 1 or inflate.eof:
                break
    columns = _header_columns(header.split(b"\n", 1)[0])
    return FileSize("gzip", max(lines - 1, 0), columns, decoded)


def _csv_size(path: Path) -> FileSize:
    lines = 0
    header = b""
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            lines += chunk.count(b"\n")
            if b"\n" not in header and len(header) < 64 * 1024:
                header += chunk[: 64 * 1024]
            last = chunk[-1:]
    lines += last != b"\n"  # a last line without a newline
    columns = _header_columns(header.split(b"\n", 1)[0])
    rows = max(lines - 1, 0)
    return FileSize("csv", rows, columns, rows * columns * 8)


def measure_file(path: str | Path, limits: FileLimits = FileLimits()) -> FileSize | None:
    """Rows, columns and decoded bytes of a file without decoding it (None: an unreadable Parquet).

    A gzip file is inflated in chunks only up to just past the limits, so its counts are then
    lower bounds that already exceed a limit.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == PARQUET_MAGIC or path.suffix.lower() in (".parquet", ".pq"):
        return _parquet_size(path)
    if magic[:2] == GZIP_MAGIC:
        return _gzip_size(path, limits)
    return _csv_size(path)


def check_file_limits(path: str | Path, limits: FileLimits = FileLimits(), source: str | None = None) -> None:
    """FileTooLarge naming the file, the limit and the value if the decoded table passes a limit."""
    size = measure_file(path, limits)
    if size is None:
        return
    name = source or str(path)
    at_least = "at least " if size.kind == "gzip" else ""
    if size.rows > limits.max_rows:
        raise FileTooLarge(name, f"{at_least}{size.rows} rows ({size.kind}); the limit is {limits.max_rows}")
    if size.columns > limits.max_columns:
        raise FileTooLarge(name, f"{size.columns} columns ({size.kind}); the limit is {limits.max_columns}")
    if size.decoded_bytes > limits.max_decoded_bytes:
        raise FileTooLarge(
            name,
            f"decodes to {at_least}{size.decoded_bytes} bytes ({size.kind}, {size.rows} rows x "
            f"{size.columns} columns); the limit is {limits.max_decoded_bytes} bytes",
        )
