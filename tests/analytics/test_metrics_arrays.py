"""The live analyzer's metric path (`Segment.prepare_strides`: the signals as numpy arrays,
`StrideMetrics.prepare_arrays`, optionally some rows only) gives the rows of the batch form
(`Segment.strides`: the signals table, every row), bit for bit."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strideflow.analytics.metrics import StrideMetrics, evaluate_prepared
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.segment import analyze_segment
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator

FS = 200.0


@pytest.fixture(scope="module")
def segment():
    """A minute of mixed walking and running, left foot, in the foot frame (simulated)."""
    sim = Simulator(
        SimulationSettings(activity="mixed", duration_s=60.0, seed=7, keep_orientation=False)
    ).simulate()
    part = sim.samples_.filter(pl.col(S.FOOT) == "left").sort(S.T)
    settings = AnalysisSettings()
    return analyze_segment(
        np.ascontiguousarray(part.select(S.ACC).to_numpy()),
        np.ascontiguousarray(part.select(S.GYR).to_numpy()),
        part[S.T].to_numpy(),
        FS,
        ("A1", "S1", "left"),
        settings,
    )


def _csv(frame: pl.DataFrame) -> str:
    return frame.write_csv(float_precision=None)  # shortest round trip: equal text, equal bits


def test_arrays_give_the_table_path_rows(segment):
    events = segment.events
    assert events.height > 20
    batch = segment.strides(events)
    live = evaluate_prepared([segment.prepare_strides(events)], segment.settings.metrics)[0]
    assert live.schema == batch.schema
    assert _csv(live) == _csv(batch)


@pytest.mark.parametrize("pick", ["first", "last", "middle", "every_third", "none"])
def test_some_rows_keep_their_values_in_the_whole_table(segment, pick):
    events = segment.events
    n = events.height
    rows = {
        "first": [0],
        "last": [n - 1],
        "middle": [n // 2, n // 2 + 1],
        "every_third": list(range(0, n, 3)),
        "none": [],
    }[pick]
    whole = segment.strides(events)
    part = evaluate_prepared([segment.prepare_strides(events, np.array(rows, dtype=np.int64))])[0]
    wanted = events[S.STRIDE_INDEX].to_numpy()[rows]
    assert part[S.STRIDE_INDEX].to_list() == wanted.tolist()
    assert _csv(part) == _csv(whole.filter(pl.col(S.STRIDE_INDEX).is_in(wanted.tolist())))


def test_rows_must_increase(segment):
    with pytest.raises(ValueError, match="increasing"):
        segment.prepare_strides(segment.events, np.array([2, 1]))


def test_signals_out_of_time_order_are_put_in_order(segment):
    """`prepare_arrays` sorts arrays whose times do not increase, as the table path sorts."""
    events = segment.events.with_columns(
        [pl.lit(v).alias(k) for k, v in zip(S.KEYS, segment.keys, strict=True)]
    )
    arrays = segment.signal_arrays()
    flip = np.arange(len(arrays[S.T]))[::-1]
    metrics = StrideMetrics(segment.settings.metrics)
    shuffled = evaluate_prepared(
        [metrics.prepare_arrays(events, segment.keys, {k: v[flip] for k, v in arrays.items()})]
    )[0]
    assert _csv(shuffled) == _csv(segment.strides(segment.events))


@pytest.mark.parametrize("rows", [None, [0], [3, 4], [5, 9, 11]])
def test_the_detectors_columns_give_the_tables_rows(segment, rows):
    """`prepare_strides` of the detector's columns (the live windows: no events table) gives what
    the events table gives, alone, several at once, mixed with tables, in numpy and in the query."""
    picked = None if rows is None else np.array(rows, dtype=np.int64)
    metrics = segment.settings.metrics
    from_columns = segment.prepare_strides(segment.event_columns, picked)
    from_table = segment.prepare_strides(segment.events, picked)
    assert from_columns.frame.schema == from_table.frame.schema
    assert _csv(from_columns.frame) == _csv(from_table.frame)
    want = evaluate_prepared([from_table], metrics)[0]
    assert _csv(evaluate_prepared([from_columns], metrics)[0]) == _csv(want)
    # several tables at once: numpy up to 64 rows, else the Polars query
    for copies in (3, 70):
        together = evaluate_prepared([from_columns] * copies, metrics)
        mixed = evaluate_prepared([from_columns, from_table] * copies, metrics)
        assert all(_csv(t) == _csv(want) for t in (*together, *mixed))


def _general_values(metrics: StrideMetrics, columns, arrays, wanted):
    """`StrideMetrics._values` through the general path (an index of the arrays, numpy per step)."""
    from strideflow.analytics import metrics as M

    index = M._IndexedSignals.of_arrays(("A1", "S1", "left"), arrays)
    m = columns.height
    inside = index.t.size > 0
    strides = M._Strides(
        times={c: np.asarray(columns[c], dtype=float) for c in S.EVENT_TIMES},
        null={c: np.zeros(m, dtype=bool) for c in S.EVENT_TIMES},
        lo=np.full(m, 0 if inside else -1, dtype=np.int64),
        hi=np.full(m, index.t.size if inside else -1, dtype=np.int64),
        run=np.full(m, 0 if inside else -1, dtype=np.int64),
    )
    return metrics._values(index, strides, wanted)


@pytest.mark.parametrize("seed", range(12))
def test_the_compiled_one_foot_values_are_the_general_paths(segment, seed):
    """`_one_foot_values` (the live windows' compiled pass) gives `_values`' arrays bit for bit, in
    the same names, order and memory layout: on windows cut anywhere (events outside the signals),
    event times off the samples or swapped out of IC order, rates null at gimbal lock, no still
    samples after a stride, and any rows wanted."""
    from strideflow.analytics import metrics as M

    rng = np.random.default_rng(seed)
    arrays = dict(segment.signal_arrays())
    n = arrays[S.T].size
    lo, hi = sorted(rng.integers(0, n, size=2)) if seed % 3 else (0, n)
    arrays = {k: v[lo : hi + 1] for k, v in arrays.items()}
    if seed % 4 == 1:  # the rate null over a stretch (pitch past max_euler_pitch_deg)
        rate = arrays[S.PRONATION_RATE_DPS].copy()
        a = int(rng.integers(0, rate.size))
        rate[a : a + int(rng.integers(1, 40))] = np.nan
        arrays[S.PRONATION_RATE_DPS] = rate
    if seed % 4 == 2:  # no still sample after some point
        zv = arrays[S.ZERO_VELOCITY].copy()
        zv[int(rng.integers(0, zv.size)) :] = False
        arrays[S.ZERO_VELOCITY] = zv
    columns = segment.event_columns
    times = {c: np.asarray(columns[c], dtype=float).copy() for c in S.EVENT_TIMES}
    if seed % 2:  # between samples, and a pair swapped out of IC order
        for c in times:
            times[c] += rng.uniform(-0.004, 0.004, size=times[c].size)
        i = int(rng.integers(0, times[S.IC_T].size - 1))
        times[S.IC_T][[i, i + 1]] = times[S.IC_T][[i + 1, i]]
    columns = type(columns)({**columns.columns, **times}, columns.height)
    metrics = StrideMetrics(segment.settings.metrics)
    for wanted in (None, rng.random(columns.height) < 0.3):
        fast = M._one_foot_values(arrays, columns, metrics.settings, wanted)
        slow = _general_values(metrics, columns, arrays, wanted)
        assert list(fast) == list(slow)
        for name, v in slow.items():
            assert fast[name].tobytes() == v.tobytes(), name
            assert fast[name].flags.c_contiguous == v.flags.c_contiguous, name
