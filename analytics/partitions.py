"""Result tables on disk: hive-partitioned Parquet, one file per (table, athlete, session).

Layout: `ROOT/<table>/athlete_id=<A>/session_id=<S>/part-0.parquet`. The key columns live in the
path only (the file holds every other column), so `scan_table` gets them back by hive
partitioning and a filter on `athlete_id` prunes whole directories before any file is opened.

A partition is written to a temporary file in its own directory, flushed with fsync, and moved
over the old file with `os.replace`, so a reader (or a run killed at any moment) sees either the
old partition or the new one, never half of one. Ids follow the one id rule of `hardware.ids`
(checked here too) so that a path cannot escape the root or mean two things.

Live parts: while a live session streams, its `strides` partition is a set of files
`part-<first>-<last>.parquet` instead (`service.live.store`: the rows of stores `first` to `last`
of the session, so a store writes its new rows only). Which files hold the partition's rows
(`part_files`): `part-0.parquet` alone when it exists (a complete write supersedes any live part
left beside it), else every live part whose store range is not inside another's (a merge writes
the wider part, then removes the ones it holds). A reader that opens the listed files and finds
one gone (merged away meanwhile) lists again (`open_parts`), so it sees one consistent set of rows.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import polars as pl

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.ids import InvalidIdError, is_valid_id
from strideflow.hardware.schema import ATHLETE_ID, SESSION_ID
from strideflow.ingest.durable import write_atomic

STRIDES = "strides"
SESSIONS = "sessions"
FLAGS = "flags"
CURVES = "curves"  # per-session mean/SD pronation and pitch curves per foot (analytics.curves)
TABLES = (STRIDES, SESSIONS, FLAGS, CURVES)
PART_FILE = "part-0.parquet"
PART_GLOB = "part-*.parquet"  # PART_FILE and the live parts
LIVE_PART = re.compile(r"part-(\d+)-(\d+)\.parquet")
OPEN_ATTEMPTS = 5  # listings tried by `open_parts`/`collect_table` while parts are merged away
STRIDES_ROW_GROUP_ROWS = 256  # rows per Parquet row group of a strides partition
_HIVE_SCHEMA = {ATHLETE_ID: pl.String(), SESSION_ID: pl.String()}


class PartitionError(StrideflowError):
    """An id that cannot name a partition, or a table name that is not one of TABLES."""


def check_id(name: str, value: str) -> str:
    """`value` if it is a valid athlete or session id (`hardware.ids`), else PartitionError naming it."""
    if not is_valid_id(value):
        raise PartitionError(str(InvalidIdError(name, value)))
    return value


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise PartitionError(f"table {table!r} is not one of {', '.join(TABLES)}")


def partition_dir(root: str | Path, table: str, athlete_id: str, session_id: str) -> Path:
    """Directory of one (table, athlete, session) partition."""
    _check_table(table)
    a = check_id(ATHLETE_ID, athlete_id)
    s = check_id(SESSION_ID, session_id)
    return Path(root) / table / f"{ATHLETE_ID}={a}" / f"{SESSION_ID}={s}"


def live_part_name(first: int, last: int) -> str:
    """File name of the live part holding the rows of a session's stores `first` to `last`."""
    return f"part-{first}-{last}.parquet"


def live_part_range(name: str) -> tuple[int, int] | None:
    """(first, last) store of a live part's file name; None for any other name."""
    m = LIVE_PART.fullmatch(name)
    return None if m is None else (int(m[1]), int(m[2]))


def chosen_parts(names) -> list[str]:
    """The file names, of those in a partition's folder, that hold its rows (module docstring), in
    store order."""
    names = set(names)
    if PART_FILE in names:
        return [PART_FILE]
    ranges = sorted((r[0], -r[1], n) for n in names if (r := live_part_range(n)) is not None)
    out, last = [], -1
    for _, neg_last, name in ranges:  # merged ranges nest or are disjoint: one sweep drops the held
        if -neg_last > last:
            out.append(name)
            last = -neg_last
    return out


def part_files(folder: str | Path) -> list[Path]:
    """The files of the partition in `folder` that hold its rows (`chosen_parts`); [] if none."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [Path(folder) / n for n in chosen_parts(names)]


def open_parts(folder: str | Path, stack: ExitStack) -> list:
    """The partition's files (`part_files`) opened for reading (binary, closed with `stack`): a
    part merged away between the listing and its opening makes it list again."""
    for _ in range(OPEN_ATTEMPTS):
        handles = []
        try:
            for path in part_files(folder):
                handles.append(open(path, "rb"))  # noqa: SIM115 - closed by the stack or below
        except FileNotFoundError:
            for h in handles:
                h.close()
            continue
        for h in handles:
            stack.enter_context(h)
        return handles
    raise PartitionError(f"the parts of {folder} kept changing while they were opened")


def write_partition(root: str | Path, table: str, df: pl.DataFrame, athlete_id: str, session_id: str) -> Path:
    """Atomically replace one partition with `df` (its key columns, if present, are dropped); live
    parts beside it are removed once it is written (until then it supersedes them)."""
    final_dir = partition_dir(root, table, athlete_id, session_id)
    body = df.drop([c for c in (ATHLETE_ID, SESSION_ID) if c in df.columns])
    # Strides come sorted by foot and stride index: small row groups with min/max statistics let a
    # page of them (the API's strides route) be read from one or two groups, not the whole file.
    rows = STRIDES_ROW_GROUP_ROWS if table == STRIDES else None
    # lz4: writes ~2x and reads ~2.6x faster than the zstd default; files ~5 % larger.
    path = write_atomic(
        final_dir / PART_FILE,
        lambda fh: body.write_parquet(fh, compression="lz4", statistics=True, row_group_size=rows),
    )
    _remove_live_parts(final_dir)
    return path


def _remove_live_parts(folder: Path) -> None:
    for name in os.listdir(folder):
        if live_part_range(name) is not None:
            (folder / name).unlink(missing_ok=True)


def file_stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(mtime ns, size, inode) of a stat result: a partition is replaced with `os.replace`
    (`write_partition`), so every rewrite changes it. What the caches beside the partitions (the
    summary index, the strides items, the live store's rows of other feet) compare to know that
    theirs is still the file's."""
    return st.st_mtime_ns, st.st_size, st.st_ino


def parts_stamp(stats: list[os.stat_result]) -> tuple[int, int, int]:
    """`file_stamp` of a partition's files (`part_files`): of its one file, or of several live parts
    (newest mtime ns, total size, a checksum of every part's stamp), which any store changes."""
    if len(stats) == 1:
        return file_stamp(stats[0])
    stamps = [file_stamp(st) for st in stats]
    return max(s[0] for s in stamps), sum(s[1] for s in stamps), zlib.crc32(repr(stamps).encode())


def delete_partition(root: str | Path, table: str, athlete_id: str, session_id: str) -> None:
    """Remove one partition if it exists."""
    final_dir = partition_dir(root, table, athlete_id, session_id)
    (final_dir / PART_FILE).unlink(missing_ok=True)
    if final_dir.is_dir():
        _remove_live_parts(final_dir)


def has_partition(root: str | Path, table: str, athlete_id: str, session_id: str) -> bool:
    """Whether the partition has a file (`part-0.parquet` or live parts)."""
    return bool(part_files(partition_dir(root, table, athlete_id, session_id)))


def _union_schema(files: list[str]) -> dict[str, pl.DataType]:
    """Every column of the files' schemas (footer metadata only), in first-seen order."""
    union: dict[str, pl.DataType] = {}
    for path in files:
        for name, dtype in pl.read_parquet_schema(path).items():
            if name not in _HIVE_SCHEMA:  # the keys come from the paths
                union.setdefault(name, dtype)
    return union


def scan_table(
    root: str | Path,
    table: str,
    *,
    athlete_id: str | list[str] | None = None,
    session_id: str | list[str] | None = None,
) -> pl.LazyFrame | None:
    """Lazy scan of a table with `athlete_id`/`session_id` from the paths; None if nothing is stored.

    Filters on the ids are applied to the hive columns, so polars skips other partitions' files.
    """
    _check_table(table)
    base = Path(root) / table
    pattern = f"{ATHLETE_ID}=*/{SESSION_ID}=*/{PART_GLOB}"
    if isinstance(athlete_id, str):
        # One athlete: list only that athlete's folder, so the cost does not grow with the team.
        pattern = f"{ATHLETE_ID}={check_id(ATHLETE_ID, athlete_id)}/{SESSION_ID}=*/{PART_GLOB}"
    files = _chosen_files(base.glob(pattern))
    if not files:
        return None
    lf = pl.scan_parquet(
        files,
        hive_partitioning=True,
        hive_schema=_HIVE_SCHEMA,
        # Partitions written before a column was added (e.g. `activity`) lack it: read as null.
        schema=_union_schema(files),
        missing_columns="insert",
    )
    for name, value in ((ATHLETE_ID, athlete_id), (SESSION_ID, session_id)):
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        lf = lf.filter(pl.col(name).is_in(values))
    return lf


def collect_table(
    root: str | Path,
    table: str,
    *,
    athlete_id: str | list[str] | None = None,
    session_id: str | list[str] | None = None,
    query: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None,
) -> pl.DataFrame | None:
    """`scan_table` with `query` applied, collected; None if nothing is stored.

    A live session's parts can be merged away between the listing and the read (the live store
    merges them while the stream goes on): the scan is then listed and read again."""
    for _ in range(OPEN_ATTEMPTS):
        try:
            lf = scan_table(root, table, athlete_id=athlete_id, session_id=session_id)
            if lf is None:
                return None
            return (lf if query is None else query(lf)).collect()
        except FileNotFoundError:
            continue
    raise PartitionError(f"{Path(root) / table}: the parts kept changing while they were read")


def _chosen_files(paths) -> list[str]:
    """Of files globbed in many partitions' folders, those that hold each one's rows: by folder,
    then in store order."""
    by_folder: dict[Path, list[str]] = {}
    for p in paths:
        by_folder.setdefault(p.parent, []).append(p.name)
    return [str(folder / n) for folder in sorted(by_folder) for n in chosen_parts(by_folder[folder])]


def read_partition(root: str | Path, table: str, athlete_id: str, session_id: str) -> pl.DataFrame | None:
    """One partition with its key columns restored, or None if it is not stored (its live parts
    in store order when it has no `part-0.parquet`)."""
    with ExitStack() as stack:
        handles = open_parts(partition_dir(root, table, athlete_id, session_id), stack)
        if not handles:
            return None
        frames = [pl.read_parquet(h) for h in handles]
    df = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    return df.with_columns(pl.lit(athlete_id).alias(ATHLETE_ID), pl.lit(session_id).alias(SESSION_ID)).select(
        ATHLETE_ID, SESSION_ID, *df.columns
    )
