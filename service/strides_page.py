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
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

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
