"""`analytics.metrics`' metric query in numpy, for tables of a few rows (the live analyzer's).

The definitions, the stride checks (`analytics.stride_checks`: activity, plausibility limits) and
`steady` as `metrics._definitions` writes them for Polars, evaluated with Polars' semantics:
nulls propagate through arithmetic and Kleene logic (kept as a mask beside each column, so a NaN a
formula computes stays NaN and a null input stays null), a NaN compares as larger than any number,
and the trigonometry is the C library's (`math`, as Polars calls it; numpy's own `arctan2` rounds
differently). Every operation is elementwise and correctly rounded, so a row does not depend on
the rows evaluated with it. On 1-3 rows a Polars query costs ~2.5 ms whatever its rows; this about
a fifth of it, most of that building the result's columns (benchmarks/README.md, session 10).
tests/analytics/test_metric_rows.py checks both give the same tables bit for bit.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from strideflow.analytics.activity import RUN_BELOW_DUTY_FACTOR
from strideflow.analytics.events import EventColumns
from strideflow.analytics.plausibility import LIMITS, WALK_LIMITS, reason_for
from strideflow.hardware.schema import (
    ACTIVITY,
    CADENCE_SPM,
    CONTEXT,
    CONTEXT_GAIT_START,
    DUTY_FACTOR,
    EVENT_TIMES,
    FOOT,
    FOOT_FLAT_T,
    FOOT_PROGRESSION_ANGLE_DEG,
    FOOT_STRIKE_ANGLE_DEG,
    HEADING_CHANGE_DEG,
    HEADING_DEG,
    HEEL_OFF_RATIO,
    HEEL_OFF_T,
    IC_T,
    IMPACT_G,
    KEYS,
    MAX_PRONATION_VELOCITY_DPS,
    METRICS,
    NEEDS_IC,
    NEXT_IC_T,
    PITCH_DEG,
    POS,
    PRONATION_DEG,
    PRONATION_EXCURSION_CENSORED,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    REASON,
    RUN,
    SPEED_MPS,
    STANCE_TIME_S,
    STEADY,
    STRIDE_INDEX,
    STRIDE_LENGTH_M,
    STRIDE_TIME_S,
    STRIDES_SCHEMA,
    STRIKE_TYPE,
    SWING_TIME_S,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    TOE_OFF_T,
    VALID,
    WALK,
)

if TYPE_CHECKING:
    from strideflow.analytics.metrics import MetricSettings, PreparedStrides

# the reasons `analytics.metrics` adds (its REASON_NO_SIGNAL, REASON_NO_NEXT_FOOT_FLAT)
_NO_SIGNAL, _NO_NEXT_FOOT_FLAT = "no_signal", "no_next_foot_flat"


class _F:
    """A Float64 column: values `v` and null mask `n` (v is NaN where null)."""

    __slots__ = ("n", "v")

    def __init__(self, v: np.ndarray, n: np.ndarray) -> None:
        self.v, self.n = v, n

    def _op(self, other, f) -> _F:
        if isinstance(other, _F):
            n = self.n | other.n
            return _F(np.where(n, np.nan, f(self.v, other.v)), n)
        return _F(np.where(self.n, np.nan, f(self.v, other)), self.n)

    def __sub__(self, other) -> _F:
        return self._op(other, np.subtract)

    def __add__(self, other) -> _F:
        return self._op(other, np.add)

    def __mul__(self, other) -> _F:
        return self._op(other, np.multiply)

    def __truediv__(self, other) -> _F:
        return self._op(other, np.divide)

    def __rtruediv__(self, other: float) -> _F:
        return _F(np.where(self.n, np.nan, np.divide(other, self.v)), self.n)

    def missing(self) -> np.ndarray:
        """`is_null() | is_nan()` (never null)."""
        return self.n | np.isnan(self.v)

    def gt(self, c: float) -> np.ndarray:
        """`> c` where not null (a NaN is larger than any number, as in Polars)."""
        return ~self.n & ((self.v > c) | np.isnan(self.v))

    def lt(self, c: float) -> np.ndarray:
        """`< c` where not null (NaN is not)."""
        return ~self.n & (self.v < c)

    def nulled(self, where: np.ndarray) -> _F:
        """`when(where).then(None).otherwise(self)`."""
        n = self.n | where
        return _F(np.where(n, np.nan, self.v), n)


class _B:
    """A Boolean column with Kleene logic: values `v`, null mask `n`."""

    __slots__ = ("n", "v")

    def __init__(self, v: np.ndarray, n: np.ndarray) -> None:
        self.v, self.n = v & ~n, n

    def __and__(self, other: _B) -> _B:
        false = (~self.n & ~self.v) | (~other.n & ~other.v)
        true = self.v & other.v
        return _B(true, ~(true | false))

    @classmethod
    def known(cls, v: np.ndarray) -> _B:
        """A column without nulls."""
        return cls(v, np.zeros(v.shape, dtype=bool))

    def true(self) -> np.ndarray:
        """Where it is true (a `when` condition: null counts as false)."""
        return self.v


def _sin(x: float) -> float:
    # math raises on infinities; C's sin returns x - x there (NaN, the default one), as Polars
    return math.sin(x) if math.isfinite(x) else x - x


def _cos(x: float) -> float:
    return math.cos(x) if math.isfinite(x) else x - x


def _atan2(y: float, x: float) -> float:
    # math returns its own NaN for a NaN input; C's atan2 propagates the input's (its sign too)
    return y + x if math.isnan(x) or math.isnan(y) else math.atan2(y, x)


def _trig(f, *columns: _F) -> _F:
    """`f` of the C library, element by element, null where any input is null."""
    n = np.logical_or.reduce([c.n for c in columns]) if len(columns) > 1 else columns[0].n
    v = np.array(
        [
            math.nan if m else f(*xs)
            for m, *xs in zip(n.tolist(), *(c.v.tolist() for c in columns), strict=True)
        ]
    )
    return _F(v.reshape(n.shape), n)


def _strings(values: list, where: np.ndarray, then) -> list:
    """`when(where).then(then).otherwise(values)` on a list of str | None."""
    return [then if w else x for x, w in zip(values, where.tolist(), strict=True)]


def _replaced(reason: list, new: list, where: _B) -> list:
    """`when(where).then(new).otherwise(reason)` on lists of str | None."""
    return [n if w else r for r, n, w in zip(reason, new, where.true().tolist(), strict=True)]


@lru_cache(maxsize=4096)
def key_columns(keys: tuple[str, str, str], n: int) -> tuple[pl.Series, ...]:
    """The key columns of n rows of one foot (cached: the live analyzer keys a few rows per window of
    every stream, and a Series costs ~20 us to build; Series are immutable, so sharing is safe)."""
    return tuple(pl.Series(c, [k] * n, dtype=pl.String) for c, k in zip(KEYS, keys, strict=True))


_PREPARED_FLOATS = (*EVENT_TIMES, HEADING_CHANGE_DEG)


def _prepared_frame(events: EventColumns, keys: tuple[str, str, str]) -> pl.DataFrame:
    """The table `StrideMetrics._prepare` makes of a keyed events table (PREPARED_SCHEMA), from
    columns: one Series per type, sliced into the columns (a Series costs ~20-40 us to build
    whatever its length)."""
    k = events.height
    floats = pl.Series("", np.concatenate([events[c] for c in _PREPARED_FLOATS]), dtype=pl.Float64)
    texts = pl.Series("", [*events[REASON], *events[CONTEXT]], dtype=pl.String)
    columns = {
        **{c.name: c for c in key_columns(tuple(keys), k)},
        STRIDE_INDEX: pl.Series(STRIDE_INDEX, events[STRIDE_INDEX], dtype=pl.Int64),
        **{c: floats.slice(i * k, k).alias(c) for i, c in enumerate(_PREPARED_FLOATS)},
        VALID: pl.Series(VALID, events[VALID], dtype=pl.Boolean),
        REASON: texts.slice(0, k).alias(REASON),
        CONTEXT: texts.slice(k, k).alias(CONTEXT),
    }
    return pl.DataFrame([columns[c] for c in PREPARED_SCHEMA])


# The prepared events' columns and types (`analytics.metrics.StrideMetrics._prepare`'s cast).
PREPARED_SCHEMA = pl.Schema(
    {
        **dict.fromkeys(KEYS, pl.String()),
        STRIDE_INDEX: pl.Int64(),
        **dict.fromkeys(EVENT_TIMES, pl.Float64()),
        VALID: pl.Boolean(),
        REASON: pl.String(),
        HEADING_CHANGE_DEG: pl.Float64(),
        CONTEXT: pl.String(),
    }
)


class PreparedEvents:
    """One foot's prepared events as the detector's columns (`analytics.events.EventColumns`) and
    its keys: what `evaluate_rows` reads, without the table (`frame()` builds it when asked, e.g.
    for the Polars query); a table costs ~60 us to build on a window's few rows."""

    def __init__(self, columns: EventColumns, keys: tuple[str, str, str]) -> None:
        self.columns, self.keys = columns, tuple(keys)
        self.height = columns.height
        self.schema = PREPARED_SCHEMA
        self._frame: pl.DataFrame | None = None

    def frame(self) -> pl.DataFrame:
        """The table (PREPARED_SCHEMA)."""
        if self._frame is None:
            self._frame = _prepared_frame(self.columns, self.keys)
        return self._frame

    def strings(self, name: str) -> list:
        """A String or Boolean column as a list."""
        if name in KEYS:
            return [self.keys[KEYS.index(name)]] * self.height
        values = self.columns[name]
        return values.tolist() if isinstance(values, np.ndarray) else list(values)

    def floats(self, name: str) -> np.ndarray:
        """A Float64 column (no nulls: event times and headings come from samples)."""
        return np.asarray(self.columns[name], dtype=float)


def _passed_columns(events: list[PreparedEvents], k: int, foot: list, context: list) -> dict[str, pl.Series]:
    """The columns the result takes from the events as they are (keys, `stride_index`, event
    times, heading change, `context`), built from the columns of `events` (k rows in all)."""
    floats = pl.Series(
        "",
        np.concatenate([e.floats(c) for c in _PREPARED_FLOATS for e in events]) if k else np.zeros(0),
        dtype=pl.Float64,
    )
    athletes = [e.keys[0] for e in events for _ in range(e.height)]
    sessions = [e.keys[1] for e in events for _ in range(e.height)]
    texts = pl.Series("", [*athletes, *sessions, *foot, *context], dtype=pl.String)
    index = [e.columns[STRIDE_INDEX] for e in events]
    out = {c: texts.slice(i * k, k).alias(c) for i, c in enumerate((*KEYS, CONTEXT))}
    out[STRIDE_INDEX] = pl.Series(
        STRIDE_INDEX, np.concatenate(index) if index else np.zeros(0, dtype=np.int64), dtype=pl.Int64
    )
    out.update({c: floats.slice(i * k, k).alias(c) for i, c in enumerate(_PREPARED_FLOATS)})
    return out


def evaluate_rows(prepared: list[PreparedStrides], s: MetricSettings) -> pl.DataFrame:
    """The metric query's result (STRIDES_SCHEMA, then `pronation_excursion_censored`) for the
    tables of `prepared` (same columns and values), concatenated in their order, unsorted."""
    with np.errstate(all="ignore"):  # overflow to inf and 0/0 are the query's values too
        return _frame(_evaluate(prepared, s))


def evaluate_row_lists(prepared: list[PreparedStrides], s: MetricSettings) -> list[dict[str, list]]:
    """`analytics.metrics.evaluate_prepared`'s tables without a table: per element of `prepared`,
    its rows' columns (STRIDES_SCHEMA, then `pronation_excursion_censored`) as Python lists, the
    values of the table's `rows()` (None for null), in (keys, IC) order. For the live analyzer's
    rows: a table costs ~0.1 ms to build whatever its rows. Every row is evaluated in numpy (each
    depends on its own values only, so the rows equal the query's whatever the group's size)."""
    out: list[dict[str, list] | None] = [None] * len(prepared)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault((isinstance(p.events, PreparedEvents), tuple(p.values)), []).append(i)
    for (columns_only, _), members in groups.items():
        parts = [prepared[i] for i in members]
        with np.errstate(all="ignore"):  # overflow to inf and 0/0 are the query's values too
            e = _evaluate(parts, s)
        lists = _lists(e) if columns_only else _frame(e).to_dict(as_series=False)
        offset = 0
        for i, p in zip(members, parts, strict=True):
            n = p.events.height
            part = {c: v[offset : offset + n] for c, v in lists.items()}
            offset += n
            if not p.in_order:
                key = [part[c] for c in (*KEYS, IC_T)]
                order = sorted(range(n), key=lambda r: tuple(v[r] for v in key))
                part = {c: [v[r] for r in order] for c, v in part.items()}
            out[i] = part
    return out


def _lists(e: _Evaluated) -> dict[str, list]:
    """`_evaluate`'s values of events given as columns (`PreparedEvents`) as lists, in the result
    table's column order (STRIDES_SCHEMA, then `pronation_excursion_censored`)."""
    k = e.k
    flat = e.metric_values()
    columns = {
        **{c: e.strings(c) for c in KEYS},
        STRIDE_INDEX: np.concatenate([x.columns[STRIDE_INDEX] for x in e.events]).tolist() if k else [],
        **{c: e.floats(c).v.tolist() for c in _PREPARED_FLOATS},
        **{c: flat[i * k : (i + 1) * k] for i, c in enumerate(METRICS)},
        STRIKE_TYPE: e.strike,
        REASON: e.reason,
        ACTIVITY: e.activity,
        CONTEXT: e.context,
        VALID: e.valid.tolist(),
        STEADY: e.steady.tolist(),
        PRONATION_EXCURSION_CENSORED: e.censored,
    }
    return {c: columns[c] for c in (*STRIDES_SCHEMA, PRONATION_EXCURSION_CENSORED)}


# The plausibility limits as columns (one row per limited metric, in `LIMITS` order; NaN where a
# bound is absent, which no comparison passes): all of them tested in a few array operations.
_LIMITED = tuple(LIMITS)
_REASONS = tuple(reason_for(c) for c in _LIMITED)
_LO = np.array([[math.nan if lo is None else lo] for lo, _, _ in LIMITS.values()])
_LO_EXCLUSIVE = np.array([[exclusive] for _, _, exclusive in LIMITS.values()])
_HI = np.array([[math.nan if hi is None else hi] for _, hi, _ in LIMITS.values()])
_WALK_HI = np.array([[WALK_LIMITS.get(c, math.nan)] for c in _LIMITED])


def _beyond_limits(m: dict[str, _F], walking: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether a metric breaks its plausibility limits, and the first such metric (its
    position in `LIMITS`). The query's tests, per metric: below `lo` (at or below when exclusive)
    where not null; above `hi`, or NaN, where not null and `hi` is given; the same against the
    walking limit on walking rows."""
    v = np.stack([m[c].v for c in _LIMITED])
    known = ~np.stack([m[c].n for c in _LIMITED])

    def above_or_nan(bound: np.ndarray) -> np.ndarray:  # `_F.gt` where the bound is given
        return (v > bound) | (np.isnan(v) & ~np.isnan(bound))

    beyond = known & (
        np.where(_LO_EXCLUSIVE, v <= _LO, v < _LO) | above_or_nan(_HI) | (walking & above_or_nan(_WALK_HI))
    )
    return beyond.any(axis=0), beyond.argmax(axis=0)


class _Evaluated:
    """What `_evaluate` computes, before it becomes a table or lists."""

    def __init__(self, **values) -> None:
        self.__dict__.update(values)

    def metric_values(self) -> list[float | None]:
        """The METRICS columns one after the other, None for null."""
        values = np.concatenate([self.m[c].v for c in METRICS]).tolist()
        nulls = np.concatenate([self.m[c].n for c in METRICS]).tolist()
        return [None if n else x for x, n in zip(values, nulls, strict=True)]


def _evaluate(prepared: list[PreparedStrides], s: MetricSettings) -> _Evaluated:
    events = [p.events for p in prepared]
    k = sum(e.height for e in events)

    def strings(name: str) -> list:
        return [
            x
            for e in events
            for x in (e.strings(name) if isinstance(e, PreparedEvents) else e.get_column(name).to_list())
        ]

    def floats(name: str) -> _F:
        v, n = [], []
        for e in events:
            if isinstance(e, PreparedEvents):
                v.append(e.floats(name))
                n.append(np.zeros(e.height, dtype=bool))
                continue
            c = e.get_column(name)
            v.append(c.to_numpy())
            # `is_null()` is a query of its own: only where a column has nulls
            n.append(c.is_null().to_numpy() if c.null_count() else np.zeros(c.len(), dtype=bool))
        values = np.concatenate(v) if v else np.zeros(0)
        return _F(np.asarray(values, dtype=float), np.concatenate(n) if n else np.zeros(0, dtype=bool))

    def value(name: str) -> _F:
        # `PreparedStrides.table` turns a value's NaN into null
        v = np.concatenate([p.values[name] for p in prepared]) if prepared else np.zeros(0)
        n = np.isnan(v)
        return _F(v, n)

    foot, context = strings(FOOT), strings(CONTEXT)
    valid_list = strings(VALID)
    valid = _B(
        np.array([bool(x) for x in valid_list], dtype=bool),
        np.array([x is None for x in valid_list], dtype=bool),
    )
    reason = strings(REASON)
    ic, ff, to, nic, heel_off = (floats(c) for c in (IC_T, FOOT_FLAT_T, TOE_OFF_T, NEXT_IC_T, HEEL_OFF_T))

    stride_time = nic - ic
    stance = to - ic
    dx = value(f"{POS[0]}_next_ff") - value(f"{POS[0]}_ff")
    dy = value(f"{POS[1]}_next_ff") - value(f"{POS[1]}_ff")
    off_axis = value(f"{HEADING_DEG}_ff") * (math.pi / 180.0) - _trig(_atan2, dy, dx)
    wrapped = _trig(_atan2, _trig(_sin, off_axis), _trig(_cos, off_axis))
    outward = np.array([1.0 if f == "left" else -1.0 if f == "right" else math.nan for f in foot])
    outward = _F(outward.reshape(k), np.isnan(outward).reshape(k))
    m: dict[str, _F] = {
        STRIDE_TIME_S: stride_time,
        STANCE_TIME_S: stance,
        SWING_TIME_S: nic - to,
        CADENCE_SPM: 120.0 / stride_time,
        STRIDE_LENGTH_M: _F(np.sqrt(dx.v * dx.v + dy.v * dy.v), dx.n | dy.n),
        FOOT_STRIKE_ANGLE_DEG: value(f"{PITCH_DEG}_before_ic") - value(f"{PITCH_DEG}_ff"),
        PRONATION_EXCURSION_DEG: value("_p_max") - value(f"{PRONATION_DEG}_ic"),
        MAX_PRONATION_VELOCITY_DPS: value("_v_max"),
        TIME_TO_MAX_PRONATION_S: value("_t_max_p") - ic,
        TOE_OFF_PRONATION_DEG: value(f"{PRONATION_DEG}_to") - value(f"{PRONATION_DEG}_ff"),
        TOE_OFF_ANGLE_DEG: value(f"{PITCH_DEG}_ff") - value(f"{PITCH_DEG}_to"),
        PUSH_OFF_RATE_DPS: value("_push_off"),
        HEEL_OFF_RATIO: (heel_off - ic) / stance,
        IMPACT_G: value("_impact"),
        DUTY_FACTOR: stance / stride_time,
        FOOT_PROGRESSION_ANGLE_DEG: outward * (wrapped * (180.0 / math.pi)),
    }
    m[SPEED_MPS] = m[STRIDE_LENGTH_M] / m[STRIDE_TIME_S]
    censored = value("_censored")
    angle = m[FOOT_STRIKE_ANGLE_DEG]
    strike = [
        None if miss else "rearfoot" if rear else "forefoot" if fore else "midfoot"
        for miss, rear, fore in zip(
            angle.missing().tolist(),
            angle.gt(s.rearfoot_above_deg).tolist(),
            angle.lt(s.forefoot_below_deg).tolist(),
            strict=True,
        )
    ]

    # the detector's valid stays valid only if every metric could be computed
    gait_start = np.array([c == CONTEXT_GAIT_START for c in context], dtype=bool).reshape(k)
    checked = [c for c in METRICS if c not in (STRIDE_LENGTH_M, SPEED_MPS, FOOT_PROGRESSION_ANGLE_DEG)]
    missing_angle = np.zeros(k, dtype=bool)
    missing_ic = np.zeros(k, dtype=bool)
    for c in checked:
        if c in NEEDS_IC:
            missing_ic |= m[c].missing()
        else:
            missing_angle |= m[c].missing()
    missing_angle |= ~gait_start & missing_ic
    missing_length = m[STRIDE_LENGTH_M].missing()
    new = [
        _NO_SIGNAL if a else _NO_NEXT_FOOT_FLAT if b else None
        for a, b in zip(missing_angle.tolist(), missing_length.tolist(), strict=True)
    ]
    has_new = np.array([x is not None for x in new], dtype=bool).reshape(k)
    reason = _replaced(reason, new, valid & _B.known(has_new))
    valid = valid & _B.known(~has_new)

    # the gait start's metrics that read its ic_t are not measured
    for c in NEEDS_IC:
        if c != STRIKE_TYPE:
            m[c] = m[c].nulled(gait_start)
    strike = _strings(strike, gait_start, None)
    censored = censored.nulled(gait_start)

    # activity, then the plausibility limits (the first one broken is the reason)
    duty = m[DUTY_FACTOR]
    activity = [
        None if miss else RUN if run else WALK
        for miss, run in zip(duty.missing().tolist(), duty.lt(RUN_BELOW_DUTY_FACTOR).tolist(), strict=True)
    ]
    walking = np.array([a == WALK for a in activity], dtype=bool).reshape(k)
    has_implausible, first = _beyond_limits(m, walking)
    implausible = [
        _REASONS[i] if broken else None
        for broken, i in zip(has_implausible.tolist(), first.tolist(), strict=True)
    ]
    reason = _replaced(reason, implausible, valid & _B.known(has_implausible))
    valid = valid & _B.known(~has_implausible)
    valid_out = valid.v  # the final select fills a null valid with false
    steady = valid_out & np.array([c is None for c in context], dtype=bool).reshape(k)
    cens = [
        None if n else bool(x > 0.5)
        for x, n in zip(censored.v.tolist(), (censored.n | np.isnan(censored.v)).tolist(), strict=True)
    ]

    return _Evaluated(
        events=events,
        k=k,
        foot=foot,
        context=context,
        m=m,
        valid=valid_out,
        steady=steady,
        censored=cens,
        strike=strike,
        reason=reason,
        activity=activity,
        strings=strings,
        floats=floats,
    )


def _frame(r: _Evaluated) -> pl.DataFrame:
    """The result table of `_evaluate`'s values (STRIDES_SCHEMA, then `pronation_excursion_censored`)."""
    events, k = r.events, r.k

    def passed(name: str) -> pl.Series:
        parts = [e.get_column(name) for e in events]
        return parts[0] if len(parts) == 1 else pl.concat(parts, rechunk=True)

    if all(isinstance(e, PreparedEvents) for e in events):
        # the events' own columns, one Series per type sliced into them (no table was built)
        out = _passed_columns(events, k, r.foot, r.context)
    else:
        events = [e.frame() if isinstance(e, PreparedEvents) else e for e in events]
        out = {c: passed(c) for c in (*KEYS, STRIDE_INDEX, *EVENT_TIMES, HEADING_CHANGE_DEG, CONTEXT)}
    # the metric columns as slices of one Series (built from a list: a Series costs ~10 us to
    # build whatever its length, a slice less)
    flat = pl.Series("", r.metric_values(), dtype=pl.Float64)
    out.update({c: flat.slice(i * k, k).alias(c) for i, c in enumerate(METRICS)})
    flags = pl.Series("", [*r.valid.tolist(), *r.steady.tolist(), *r.censored], dtype=pl.Boolean)
    out[VALID], out[STEADY] = flags.slice(0, k).alias(VALID), flags.slice(k, k).alias(STEADY)
    texts = pl.Series("", [*r.strike, *r.reason, *r.activity], dtype=pl.String)
    for i, c in enumerate((STRIKE_TYPE, REASON, ACTIVITY)):
        out[c] = texts.slice(i * k, k).alias(c)
    columns = [out[c] if out[c].dtype == d else out[c].cast(d) for c, d in STRIDES_SCHEMA.items()]
    columns.append(flags.slice(2 * k, k).alias(PRONATION_EXCURSION_CENSORED))
    return pl.DataFrame(columns)
