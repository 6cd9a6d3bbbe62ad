"""Result tables on disk: hive-partitioned Parquet, one file per (table, athlete, session).

Layout: `ROOT/<table>/athlete_id=<A>/session_id=<S>/part-0.parquet`. The key columns live in the
path only (the file holds every other column), so `scan_table` gets them back by hive
partitioning and a filter on `athlete_id` prunes whole directories before any file is opened.

A partition is written to a temporary file in its own directory, flushed with fsync, and moved
over the old file with `os.replace`, so a reader (or a run killed at any moment) sees either the
old partition or the new one, never half of one. Ids follow the one id rule of `hardware.ids`
(checked here too) so that a path cannot escape the root or mean two things.
"""

from __future__ import annotations

import os
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


def write_partition(root: str | Path, table: str, df: pl.DataFrame, athlete_id: str, session_id: str) -> Path:
    """Atomically replace one partition with `df` (its key columns, if present, are dropped)."""
    final_dir = partition_dir(root, table, athlete_id, session_id)
    body = df.drop([c for c in (ATHLETE_ID, SESSION_ID) if c in df.columns])
    # Strides come sorted by foot and stride index: small row groups with min/max statistics let a
    # page of them (the API's strides route) be read from one or two groups, not the whole file.
    rows = STRIDES_ROW_GROUP_ROWS if table == STRIDES else None
    # lz4: writes ~2x and reads ~2.6x faster than the zstd default; files ~5 % larger.
    return write_atomic(
        final_dir / PART_FILE,
        lambda fh: body.write_parquet(fh, compression="lz4", statistics=True, row_group_size=rows),
    )


def file_stamp(st: os.stat_result) -> tuple[int, int, int]:
    """(mtime ns, size, inode) of a stat result: a partition is replaced with `os.replace`
    (`write_partition`), so every rewrite changes it. What the caches beside the partitions (the
    summary index, the strides items, the live store's rows of other feet) compare to know that
    theirs is still the file's."""
    return st.st_mtime_ns, st.st_size, st.st_ino


def delete_partition(root: str | Path, table: str, athlete_id: str, session_id: str) -> None:
    """Remove one partition if it exists."""
    final_dir = partition_dir(root, table, athlete_id, session_id)
    (final_dir / PART_FILE).unlink(missing_ok=True)


def has_partition(root: str | Path, table: str, athlete_id: str, session_id: str) -> bool:
    """Whether the partition's file exists."""
    return (partition_dir(root, table, athlete_id, session_id) / PART_FILE).is_file()


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
    pattern = f"{ATHLETE_ID}=*/{SESSION_ID}=*/{PART_FILE}"
    if isinstance(athlete_id, str):
        # One athlete: list only that athlete's folder, so the cost does not grow with the team.
        pattern = f"{ATHLETE_ID}={check_id(ATHLETE_ID, athlete_id)}/{SESSION_ID}=*/{PART_FILE}"
    files = sorted(str(p) for p in base.glob(pattern))
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


def read_partition(root: str | Path, table: str, athlete_id: str, session_id: str) -> pl.DataFrame | None:
    """One partition with its key columns restored, or None if it is not stored."""
    path = partition_dir(root, table, athlete_id, session_id) / PART_FILE
    if not path.is_file():
        return None
    df = pl.read_parquet(path)
    return df.with_columns(pl.lit(athlete_id).alias(ATHLETE_ID), pl.lit(session_id).alias(SESSION_ID)).select(
        ATHLETE_ID, SESSION_ID, *df.columns
    )
