"""The metric definitions in numpy (`analytics.metric_rows`, tables of a few rows) give the Polars
query's rows bit for bit: real strides, and random values with NaN, null, infinities, -0.0, the
gait start, turns, an unknown foot and a null `valid`."""

from __future__ import annotations

import dataclasses
import math
import struct

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strideflow.analytics.metric_rows import evaluate_row_lists, evaluate_rows
from strideflow.analytics.metrics import MetricSettings, PreparedStrides, _metric_query, evaluate_prepared
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.segment import analyze_segment
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator


@pytest.fixture(scope="module")
def segment():
    """40 s of mixed walking and running (left foot) analysed (event columns as live reads them)."""
    sim = Simulator(
        SimulationSettings(activity="mixed", duration_s=40.0, seed=5, keep_orientation=False)
    ).simulate()
    part = sim.samples_.filter(pl.col(S.FOOT) == "left").sort(S.T)
    return analyze_segment(
        np.ascontiguousarray(part.select(S.ACC).to_numpy()),
        np.ascontiguousarray(part.select(S.GYR).to_numpy()),
        part[S.T].to_numpy(),
        200.0,
        ("A1", "S1", "left"),
        AnalysisSettings(),
    )


@pytest.fixture(scope="module")
def prepared(segment):
    """Every stride of 40 s of mixed walking and running (left foot), prepared as live prepares them."""
    return segment.prepare_strides(segment.events)


def assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """Same schema, nulls, strings and float bits (-0.0 told apart; a NaN's sign is not compared:
    Polars' own kernels do not keep it alike, `lit(-1.0) * NaN` flips it where a column's -1.0
    does not, and it only arises from infinite inputs)."""
    assert a.schema == b.schema
    assert a.height == b.height
    for name in a.columns:
        x, y = a.get_column(name), b.get_column(name)
        assert x.is_null().to_list() == y.is_null().to_list(), name
        if x.dtype == pl.Float64:
            values = [np.asarray(s.fill_null(0.0).to_numpy(), dtype=float) for s in (x, y)]
            nan = [np.isnan(v) for v in values]
            assert np.array_equal(*nan), name
            bits = [np.where(n, 0.0, v).view(np.int64) for v, n in zip(values, nan, strict=True)]
            assert np.array_equal(*bits), name
        else:
            assert x.to_list() == y.to_list(), name


def _query(p: PreparedStrides, s: MetricSettings = MetricSettings()) -> pl.DataFrame:
    return _metric_query(p.table, s)


def test_real_strides_one_to_three_at_a_time(prepared):
    n = prepared.events.height
    assert n > 20
    for lo in range(n):
        for k in (1, 2, 3):
            if lo + k > n:
                continue
            rows = np.arange(lo, lo + k)
            part = PreparedStrides(
                prepared.events[rows], {c: v[rows] for c, v in prepared.values.items()}, True
            )
            assert_same(evaluate_rows([part], MetricSettings()), _query(part))


def test_many_tables_at_once_equal_each_alone(prepared):
    parts = [
        PreparedStrides(prepared.events[[i]], {c: v[[i]] for c, v in prepared.values.items()}, True)
        for i in range(prepared.events.height)
    ]
    together = evaluate_rows(parts, MetricSettings())
    alone = pl.concat([evaluate_rows([p], MetricSettings()) for p in parts])
    assert_same(together, alone)
    assert_same(together, _query(prepared))


_special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 5e-324, 1e300])
_number = st.one_of(st.floats(-400.0, 400.0), st.floats(-0.3, 0.3), _special)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), k=st.integers(1, 4))
def test_random_values_as_the_query(prepared, data, k):
    n = prepared.events.height
    rows = np.array(sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k))))
    events = prepared.events[rows]
    changes = {}
    for c in S.EVENT_TIMES:
        base = events.get_column(c).to_list()
        changes[c] = pl.Series(
            c,
            [data.draw(st.one_of(st.just(x), st.none(), _number)) for x in base],
            dtype=pl.Float64,
        )
    changes[S.FOOT] = pl.Series(
        S.FOOT, data.draw(st.lists(st.sampled_from(["left", "right", "x"]), min_size=k, max_size=k))
    )
    changes[S.VALID] = pl.Series(
        S.VALID,
        data.draw(st.lists(st.sampled_from([True, False, None]), min_size=k, max_size=k)),
        dtype=pl.Boolean,
    )
    changes[S.REASON] = pl.Series(
        S.REASON,
        data.draw(st.lists(st.sampled_from([None, "turn", "gap"]), min_size=k, max_size=k)),
        dtype=pl.String,
    )
    changes[S.CONTEXT] = pl.Series(
        S.CONTEXT,
        data.draw(
            st.lists(st.sampled_from([None, S.CONTEXT_GAIT_START, S.CONTEXT_TURN]), min_size=k, max_size=k)
        ),
        dtype=pl.String,
    )
    events = events.with_columns(**changes)
    values = {}
    for c, v in prepared.values.items():
        keep = v[rows]
        values[c] = np.array([data.draw(st.one_of(st.just(float(x)), _number)) for x in keep], dtype=float)
    part = PreparedStrides(events, values, True)
    s = data.draw(
        st.sampled_from([MetricSettings(), MetricSettings(rearfoot_above_deg=0.0, forefoot_below_deg=0.0)])
    )
    assert_same(evaluate_rows([part], s), _query(part, s))


def _row_bits(rows: list[tuple]) -> list[tuple]:
    """Rows with each float as its bits (NaN, -0.0 and null told apart) and each value's type."""
    return [tuple((type(v), struct.pack("<d", v) if isinstance(v, float) else v) for v in r) for r in rows]


def test_row_lists_are_the_rows_of_the_tables(segment, prepared):
    """`evaluate_row_lists`: the values of `evaluate_prepared`'s tables (`rows()`), bit for bit, for
    the live analyzer's event columns and for tables, one to three rows at a time, many windows at
    once (more than the numpy bound of `evaluate_prepared`) and in reverse IC order."""
    ev = segment.event_columns
    n = ev.height
    assert n > 20
    windows = [np.arange(lo, min(lo + k, n)) for lo in range(n) for k in (1, 3)]
    for events in (ev, segment.events):
        parts = [segment.prepare_strides(events, rows) for rows in windows]
        parts.append(dataclasses.replace(parts[-1], in_order=False))
        back = np.arange(5)[::-1]
        values = {c: v[back] for c, v in prepared.values.items()}
        parts.append(PreparedStrides(prepared.events[back], values, False))
        want = [_row_bits(t.rows()) for t in evaluate_prepared(parts, MetricSettings())]
        got = evaluate_row_lists(parts, MetricSettings())
        assert [_row_bits(list(zip(*c.values(), strict=True))) for c in got] == want
        assert all(list(c) == [*S.STRIDES_SCHEMA, S.PRONATION_EXCURSION_CENSORED] for c in got)
        for part in parts[:9]:
            (alone,) = evaluate_row_lists([part], MetricSettings())
            assert _row_bits(list(zip(*alone.values(), strict=True))) == _row_bits(
                evaluate_prepared([part], MetricSettings())[0].rows()
            )
