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

import pyarrow as pa
import pyarrow.compute as pc
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


def read_page(
    path: Path,
    foot: str | None,
    t_from: float | None,
    t_to: float | None,
    valid: bool | None,
    after: list | None,
    limit: int,
) -> tuple[list[dict], list | None, int]:
    """(up to `limit` strides as dicts in STRIDES_SCHEMA column order without the key columns,
    NaN as None; the cursor key [foot rank, stride index] of the last one if more follow, else None;
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
    parts: list[pa.Table] = []
    kept = 0
    last_key = None
    n_read = 0
    ordered = False
    for g in todo:
        if kept > limit and last_key is not None and g.min_key > last_key:
            break
        table = _filter(
            pf.read_row_group(g.index, columns=cols, use_threads=False), foot, t_from, t_to, valid, after
        )
        n_read += 1
        if table.num_rows:
            parts.append(table)
            kept += table.num_rows
            ordered = False
            if kept > limit:
                page = _ordered(pa.concat_tables(parts)).slice(0, limit + 1)
                parts, kept, ordered = [page], page.num_rows, True
                last = page.slice(limit, 1).to_pylist()[0]
                last_key = (last["_foot_rank"], last[STRIDE_INDEX])
    if not parts:
        return [], None, n_read
    page = parts[0] if ordered else _ordered(pa.concat_tables(parts)).slice(0, limit + 1)
    nxt = None
    if page.num_rows > limit:
        last = page.slice(limit - 1, 1).select(["_foot_rank", STRIDE_INDEX]).to_pylist()[0]
        nxt = [last["_foot_rank"], last[STRIDE_INDEX]]
        page = page.slice(0, limit)
    page = page.drop_columns(["_foot_rank"])
    floats = [f.name for f in page.schema if pa.types.is_floating(f.type)]
    rows = page.to_pylist()
    for r in rows:
        for k in floats:
            v = r[k]
            if v != v:  # NaN is not JSON: null
                r[k] = None
    return rows, nxt, n_read


def _foot_rank(table: pa.Table) -> pa.Array:
    feet = pa.array(FEET)
    idx = pc.index_in(table[FOOT], value_set=feet)
    return pc.fill_null(idx, _OTHER_FOOT).cast(pa.int32())


def _filter(table: pa.Table, foot, t_from, t_to, valid, after) -> pa.Table:
    table = table.append_column("_foot_rank", _foot_rank(table))
    mask = None

    def both(m, cond):
        return cond if m is None else pc.and_kleene(m, cond)

    if foot is not None:
        mask = both(mask, pc.equal(table[FOOT], foot))
    if t_from is not None:
        mask = both(mask, pc.greater_equal(table[IC_T], t_from))
    if t_to is not None:
        mask = both(mask, pc.less_equal(table[IC_T], t_to))
    if valid is not None:
        mask = both(mask, pc.equal(table[VALID], valid))
    if after is not None:
        rank, index = table["_foot_rank"], table[STRIDE_INDEX]
        later = pc.or_kleene(
            pc.greater(rank, after[0]), pc.and_kleene(pc.equal(rank, after[0]), pc.greater(index, after[1]))
        )
        mask = both(mask, later)
    if mask is None:
        return table
    return table.filter(pc.fill_null(mask, False))


def _ordered(table: pa.Table) -> pa.Table:
    return table.sort_by([("_foot_rank", "ascending"), (STRIDE_INDEX, "ascending")])
