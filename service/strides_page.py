"""One page of a session's strides read from its Parquet partition, opening only the row groups
that can hold it.

The strides partition (`analytics.partitions`, written by `analytics.sessions_store`) is sorted by
foot and stride index, i.e. by time within a foot, and written in row groups of
`partitions.STRIDES_ROW_GROUP_ROWS` rows whose min/max statistics name their feet, initial-contact
times and stride indices. A page (optional foot, `ic_t` window, validity, cursor; ordered by foot
rank then stride index) is read by

1. skipping every row group whose statistics prove it holds no row of the page's filters;
2. reading the others in the order of their smallest (foot rank, stride index), and stopping once
   `limit + 1` rows are in hand and the next group's smallest key comes after the last of them.

Neither step assumes the file is sorted (a group without statistics is always read; the stop
compares keys), so any partition answers correctly: sorted ones just answer from a group or two.

The route answers from a pre-encoded form of the partition instead (`read_items_page`): the file
`ITEMS_FILE` beside it holds every stride's JSON item in page order, their byte offsets and the
four columns the filters and the cursor need, so that a page is a `stat`, two reads and a byte
slice. It is built from the Parquet file (the truth) and stamped with that file's modification
time, size and inode, read from the open file it was built from; a page checks the stamp against
a `stat` of the partition and rebuilds the items when they differ, are missing or are damaged
(partitions are replaced by `os.replace`, a new inode), so it is never served stale. A live
session's strides are several live parts until it ends (`partitions.part_files`): its items are
built from all of them and stamped with every part's stamp (`partitions.parts_stamp`).
"""

from __future__ import annotations

import logging
import math
import os
import struct
import threading
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from strideflow.analytics import partitions
from strideflow.hardware.schema import (
    ATHLETE_ID,
    FEET,
    FOOT,
    IC_T,
    SESSION_ID,
    STRIDE_INDEX,
    STRIDES_SCHEMA,
    VALID,
)

log = logging.getLogger(__name__)

FOOT_RANK = {f: i for i, f in enumerate(FEET)}
_OTHER_FOOT = len(FEET)  # rank of a foot value that is not one of FEET (sorts last)


def _rank(foot) -> int:
    return FOOT_RANK.get(foot, _OTHER_FOOT)


class _Group:
    """Statistics of one row group: what the page filters and the stop rule need (None: unknown)."""

    def __init__(self, index: int, meta: pq.RowGroupMetaData, columns: dict[str, int]):
        self.index = index
        self.num_rows = meta.num_rows

        def stats(name):
            i = columns.get(name)
            if i is None:
                return None
            s = meta.column(i).statistics
            if s is None or not s.has_min_max or s.null_count:
                return None
            return s.min, s.max

        self.foot = stats(FOOT)
        self.ic_t = stats(IC_T)
        self.valid = stats(VALID)
        self.stride_index = stats(STRIDE_INDEX)
        feet = None if self.foot is None else (self.foot[0], self.foot[1])
        # smallest key a row of this group can have (foot rank, stride index); unknown: lowest
        self.min_key = (
            _rank(feet[0]) if feet is not None and feet[0] == feet[1] else 0,
            self.stride_index[0] if self.stride_index is not None else -math.inf,
        )
        # largest key, known only for a group of one foot with index statistics
        self.max_key = None
        if feet is not None and feet[0] == feet[1] and self.stride_index is not None:
            self.max_key = (_rank(feet[0]), self.stride_index[1])

    def may_match(self, foot, t_from, t_to, valid, after) -> bool:
        if foot is not None and self.foot is not None and not (self.foot[0] <= foot <= self.foot[1]):
            return False
        if self.ic_t is not None:
            lo, hi = self.ic_t
            if (t_from is not None and hi < t_from) or (t_to is not None and lo > t_to):
                return False
        if valid is not None and self.valid is not None and self.valid[0] == self.valid[1] != valid:
            return False
        if after is not None and self.foot is not None and self.foot[0] == self.foot[1]:
            rank = _rank(self.foot[0])
            if rank < after[0]:
                return False
            if rank == after[0] and self.stride_index is not None and self.stride_index[1] <= after[1]:
                return False
        return True


def read_page_frame(
    path: Path,
    foot: str | None,
    t_from: float | None,
    t_to: float | None,
    valid: bool | None,
    after: list | None,
    limit: int,
) -> tuple[pl.DataFrame, list | None, int]:
    """(up to `limit` strides as a frame of the file's STRIDES_SCHEMA columns without the key columns,
    NaN kept; the cursor key [foot rank, stride index] of the last one if more follow, else None;
    the number of row groups read). Raises whatever pyarrow raises for an unreadable file."""
    pf = pq.ParquetFile(path, pre_buffer=False)
    meta = pf.metadata
    names = pf.schema_arrow.names
    columns = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    groups = [_Group(i, meta.row_group(i), columns) for i in range(meta.num_row_groups)]
    todo = sorted(
        (g for g in groups if g.may_match(foot, t_from, t_to, valid, after)), key=lambda g: g.min_key
    )
    cols = [c for c in STRIDES_SCHEMA if c in names and c not in (ATHLETE_ID, SESSION_ID)]
    # Candidate rows (at most limit + 1, the smallest keys so far): batch, row in its frame, foot
    # rank, stride index. The rows are chosen on numpy arrays (microseconds, where each pyarrow or
    # polars call costs tens) and taken from the frames once, at the end.
    frames: list[pl.DataFrame] = []
    found = [np.empty(0, np.int64)] * 4
    last_key = None
    n_read = 0
    i = 0
    while i < len(todo):
        if found[0].size > limit and last_key is not None and todo[i].min_key > last_key:
            break
        batch = _batch(todo, i, limit + 1 - found[0].size)
        i += len(batch)
        frame = pl.from_arrow(pf.read_row_groups([g.index for g in batch], columns=cols, use_threads=False))
        n_read += len(batch)
        rank, index, rows = _select(frame, foot, t_from, t_to, valid, after)
        if rows.size:
            new = (np.full(rows.size, len(frames)), rows, rank[rows], index[rows])
            frames.append(frame)
            found = [np.concatenate(pair) for pair in zip(found, new, strict=True)]
            if found[0].size > limit:
                found = _first(found, limit + 1)
                last_key = _key(found[2][limit], found[3][limit])
    part, row, rank, index = _first(found, limit + 1)
    nxt = None
    if part.size > limit:
        nxt = list(_key(rank[limit - 1], index[limit - 1]))
        part, row = part[:limit], row[:limit]
    if not frames:
        return pl.DataFrame(schema={c: STRIDES_SCHEMA[c] for c in cols}), nxt, n_read
    if len(frames) == 1:
        return frames[0][row], nxt, n_read
    starts = np.cumsum([0] + [f.height for f in frames[:-1]])
    return pl.concat(frames)[row + starts[part]], nxt, n_read


def _batch(todo: list[_Group], i: int, need: int) -> list[_Group]:
    """The row groups to read in one call from todo[i]: as many as hold `need` rows, then those
    that may hold keys below theirs (the stop rule would read them next; known only for groups of
    one foot)."""
    batch: list[_Group] = []
    rows = 0
    while i < len(todo) and rows < max(need, 1):
        batch.append(todo[i])
        rows += todo[i].num_rows
        i += 1
    bounds = [g.max_key for g in batch]
    if None not in bounds:
        bound = max(bounds)
        while i < len(todo) and todo[i].min_key <= bound:
            batch.append(todo[i])
            i += 1
    return batch


def _first(found: list[np.ndarray], n: int) -> list[np.ndarray]:
    """The `n` candidates with the smallest (foot rank, stride index) in that order; ties (and
    null indices, last) keep their reading order."""
    order = np.lexsort((found[3], found[2]))[:n]
    return [a[order] for a in found]


def _key(rank, index) -> tuple[int, int | None]:
    """A cursor key from a foot rank and a stride index (NaN: null)."""
    return int(rank), None if index != index else int(index)


def _select(frame: pl.DataFrame, foot, t_from, t_to, valid, after) -> tuple[np.ndarray, ...]:
    """(foot rank and stride index (null: NaN) of every row, the positions of the rows the filters
    keep)."""
    feet = frame[FOOT].to_numpy()
    rank = np.full(len(feet), _OTHER_FOOT, np.int64)
    for f, r in FOOT_RANK.items():
        rank[feet == f] = r
    index = frame[STRIDE_INDEX].cast(pl.Float64).to_numpy()
    mask = np.ones(len(feet), bool)
    if foot is not None:
        mask &= feet == foot
    if t_from is not None or t_to is not None:
        ic_t = frame[IC_T].cast(pl.Float64).to_numpy()  # null: NaN, never in a window
        if t_from is not None:
            mask &= ic_t >= t_from
        if t_to is not None:
            mask &= ic_t <= t_to
    if valid is not None:
        mask &= frame[VALID].to_numpy() == valid  # null is neither
    if after is not None:
        mask &= (rank > after[0]) | ((rank == after[0]) & (index > after[1]))
    return rank, index, np.flatnonzero(mask)


# --- the pre-encoded items ----------------------------------------------------------------------
ITEMS_FILE = "_part-0.items"  # "_": skipped by pyarrow datasets; partitions' globs name PART_FILE
STRIDE_FIELDS = tuple(c for c in STRIDES_SCHEMA if c not in (ATHLETE_ID, SESSION_ID))
_MAGIC = b"SFITEMS1"
# magic, the partition's st_mtime_ns, st_size, st_ino, number of items; then int64/float64 arrays of
# the items' foot rank, stride index (null: NaN), ic_t (null: NaN), valid (1, 0, null: -1) and n + 1
# byte offsets into the items, which follow: each item's JSON and a comma
_HEAD = struct.Struct("<8sqqqq")
_FIRST_READ = 1 << 16  # header and arrays of a session of up to ~1,600 strides in one read


def item_frame(frame: pl.DataFrame, athlete_id: str, session_id: str) -> pl.DataFrame:
    """A page's rows in the Stride model's fields and order (columns a partition lacks: null), then
    the keys: written by polars as pydantic-core writes the same rows (serde_json: same floats, NaN
    as null, same escapes), without a Python object per value."""
    fields = [pl.col(c) if c in frame.columns else pl.lit(None).alias(c) for c in STRIDE_FIELDS]
    return frame.select(*fields, **{ATHLETE_ID: pl.lit(athlete_id), SESSION_ID: pl.lit(session_id)})


def build_items(path: Path, athlete_id: str, session_id: str) -> bytes:
    """The items file's content for the partition whose `part-0.parquet` path is `path` (or whose
    live parts are beside it, `partitions.part_files`): its rows in the order the page reader
    meets them (row groups by smallest key, then file order; stably sorted by foot rank and stride
    index). Raises whatever pyarrow raises for an unreadable file."""
    with ExitStack() as stack:
        handles = partitions.open_parts(path.parent, stack)
        if not handles:
            raise FileNotFoundError(path)
        # the stamp of the very files read, so a replaced file is seen
        stamp = partitions.parts_stamp([os.fstat(h.fileno()) for h in handles])
        frames = [_read_in_group_order(h) for h in handles]
    frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    rank, index, _ = _select(frame, None, None, None, None, None)
    frame = frame[np.lexsort((index, rank))]
    rank, index, _ = _select(frame, None, None, None, None, None)
    ic_t = frame[IC_T].cast(pl.Float64).to_numpy() if IC_T in frame.columns else np.full(frame.height, np.nan)
    valid = np.full(frame.height, -1, np.int64)
    if VALID in frame.columns:
        flags = frame[VALID]
        valid[(flags == True).fill_null(False).to_numpy()] = 1  # noqa: E712 - polars expression
        valid[(flags == False).fill_null(False).to_numpy()] = 0  # noqa: E712
    lines = item_frame(frame, athlete_id, session_id).write_ndjson().encode() if frame.height else b""
    ends = np.flatnonzero(np.frombuffer(lines, np.uint8) == ord("\n"))  # a newline in a string is \n
    offsets = np.concatenate([[0], ends + 1]).astype(np.int64)
    arrays = [rank.astype(np.int64), index.astype(np.float64), ic_t.astype(np.float64), valid, offsets]
    head = _HEAD.pack(_MAGIC, *stamp, frame.height)
    return head + b"".join(a.tobytes() for a in arrays) + lines.replace(b"\n", b",")


def _read_in_group_order(f) -> pl.DataFrame:
    """The stride columns of one open Parquet file, its row groups by smallest key."""
    pf = pq.ParquetFile(f, pre_buffer=False)
    meta = pf.metadata
    names = pf.schema_arrow.names
    columns = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    groups = [_Group(i, meta.row_group(i), columns) for i in range(meta.num_row_groups)]
    cols = [c for c in STRIDES_SCHEMA if c in names and c not in (ATHLETE_ID, SESSION_ID)]
    frame = pl.from_arrow(pf.read(columns=cols, use_threads=False))
    starts = np.cumsum([0] + [g.num_rows for g in groups])
    read_order = [
        np.arange(starts[g.index], starts[g.index + 1]) for g in sorted(groups, key=lambda g: g.min_key)
    ]
    return frame[np.concatenate(read_order)] if read_order else frame


def partition_stamp(path: Path) -> tuple[int, int, int] | None:
    """`partitions.parts_stamp` of the files of the partition whose `part-0.parquet` path is `path`;
    None when it has none; (0, 0, 0), which no items file has, when a part went while it was stat'ed
    (merged away: the items are rebuilt from the parts there are then)."""
    try:
        stats = [os.stat(p) for p in partitions.part_files(path.parent)]
    except FileNotFoundError:
        return (0, 0, 0)  # no items file has this stamp: they are rebuilt from what is there then
    return partitions.parts_stamp(stats) if stats else None


def write_items(path: Path, athlete_id: str, session_id: str) -> bytes:
    """Build the items of the partition at `path` and replace its items file with them (atomically;
    a folder that cannot be written is logged, the items are still returned)."""
    data = build_items(path, athlete_id, session_id)
    tmp = path.with_name(f".{ITEMS_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path.with_name(ITEMS_FILE))
    except OSError as exc:
        log.warning("strides items of %s not written (%s): pages are built from the Parquet file", path, exc)
        tmp.unlink(missing_ok=True)
    return data


def ensure_items(results_dir: str | Path, athlete_id: str, session_id: str) -> bool:
    """Build the items of one session's strides partition if they are missing or stale; True if
    they were built (False too when the session has no strides partition)."""
    path = (
        partitions.partition_dir(results_dir, partitions.STRIDES, athlete_id, session_id)
        / partitions.PART_FILE
    )
    stamp = partition_stamp(path)
    if stamp is None:
        return False
    if _Items.open(path.with_name(ITEMS_FILE), stamp) is not None:
        return False
    write_items(path, athlete_id, session_id)
    return True


def refresh_items(results_dir: str | Path) -> int:
    """`ensure_items` for every strides partition under `results_dir`; returns how many were built
    (an unreadable partition is logged and left: its pages answer its problem)."""
    built = 0
    for path in sorted((Path(results_dir) / partitions.STRIDES).glob(f"{ATHLETE_ID}=*/{SESSION_ID}=*")):
        athlete_id = path.parent.name.split("=", 1)[1]
        session_id = path.name.split("=", 1)[1]
        try:
            built += ensure_items(results_dir, athlete_id, session_id)
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            log.exception("strides items of athlete %r, session %r not built", athlete_id, session_id)
    return built


class _Items:
    """An items file (or its content in memory) whose stamp matched: the arrays, and a reader of
    byte ranges of the items."""

    def __init__(self, arrays: list[np.ndarray], base: int, read):
        self.rank, self.index, self.ic_t, self.valid, self.offsets = arrays
        self.base = base
        self.read = read

    @classmethod
    def parse(cls, head: bytes, stamp: tuple[int, int, int], size: int, read) -> _Items | None:
        """None if `head` (the file's first bytes, at least the arrays) is not items of `stamp`."""
        if len(head) < _HEAD.size:
            return None
        magic, *got, n = _HEAD.unpack_from(head)
        if magic != _MAGIC or tuple(got) != stamp:
            return None
        base = _HEAD.size + 8 * (5 * n + 1)
        if len(head) < base:
            return None
        arrays = [
            np.frombuffer(head, np.float64 if k in (1, 2) else np.int64, n + (k == 4), _HEAD.size + 8 * n * k)
            for k in range(5)
        ]
        if base + int(arrays[4][-1]) != size:  # truncated or grown: rebuilt
            return None
        return cls(arrays, base, read)

    @classmethod
    def open(cls, items_path: Path, stamp: tuple[int, int, int]) -> _Items | None:
        """The items file's arrays, read whole into memory (None: missing, stale or damaged)."""
        try:
            data = items_path.read_bytes()
        except FileNotFoundError:
            return None
        return cls.parse(data, stamp, len(data), lambda at, n: data[at : at + n])


def read_items_page(
    path: Path,
    athlete_id: str,
    session_id: str,
    foot: str | None,
    t_from: float | None,
    t_to: float | None,
    valid: bool | None,
    after: list | None,
    limit: int,
    build: bool = True,
) -> tuple[bytes, list | None] | None:
    """(the page's items as one JSON array, the cursor key [foot rank, stride index] of the next page
    or None), the same page as `read_page_frame` written by `item_frame`, from the partition's
    items file (built first when it is missing, stale or damaged; `build=False`: None then, nothing
    built). A missing partition: no items. Raises whatever pyarrow raises for an unreadable
    partition. `path`: the partition's `part-0.parquet` (its live parts are read when it has them
    instead)."""
    stamp = partition_stamp(path)
    if stamp is None:
        return b"[]", None
    items = None
    fd = None
    try:
        fd = os.open(path.with_name(ITEMS_FILE), os.O_RDONLY)
    except FileNotFoundError:
        pass
    try:
        if fd is not None:
            size = os.fstat(fd).st_size
            head = os.pread(fd, _FIRST_READ, 0)
            if len(head) >= _HEAD.size and len(head) < size:
                arrays_end = _HEAD.size + 8 * (5 * _HEAD.unpack_from(head)[-1] + 1)
                if len(head) < arrays_end <= size:
                    head = os.pread(fd, arrays_end, 0)
            items = _Items.parse(head, stamp, size, lambda at, k: os.pread(fd, k, at))
        if items is None and not build:
            return None
        if items is None:
            data = write_items(path, athlete_id, session_id)
            items = _Items.parse(data, stamp, len(data), lambda at, k: data[at : at + k])
            if items is None:  # the partition was replaced since the stat: answer from what was read
                head = _HEAD.unpack_from(data)
                items = _Items.parse(data, tuple(head[1:4]), len(data), lambda at, k: data[at : at + k])
        return _page(items, foot, t_from, t_to, valid, after, limit)
    finally:
        if fd is not None:
            os.close(fd)


def _page(items: _Items, foot, t_from, t_to, valid, after, limit) -> tuple[bytes, list | None]:
    rank, index = items.rank, items.index
    mask = np.ones(rank.size, bool)
    if foot is not None:
        mask &= rank == FOOT_RANK.get(foot, _OTHER_FOOT)
    if t_from is not None:
        mask &= items.ic_t >= t_from
    if t_to is not None:
        mask &= items.ic_t <= t_to
    if valid is not None:
        mask &= items.valid == int(valid)
    if after is not None:
        mask &= (rank > after[0]) | ((rank == after[0]) & (index > after[1]))
    rows = np.flatnonzero(mask)[: limit + 1]
    nxt = None
    if rows.size > limit:
        last = rows[limit - 1]
        nxt = list(_key(rank[last], index[last]))
        rows = rows[:limit]
    if not rows.size:
        return b"[]", nxt
    offsets = items.offsets
    first, end = int(offsets[rows[0]]), int(offsets[rows[-1] + 1])
    span = items.read(items.base + first, end - first)
    if rows.size == rows[-1] - rows[0] + 1:  # one run of items (the usual page): one slice
        return b"[" + span[:-1] + b"]", nxt
    view = memoryview(span)
    parts = [view[offsets[r] - first : offsets[r + 1] - first - 1] for r in rows]
    return b"[" + b",".join(parts) + b"]", nxt
