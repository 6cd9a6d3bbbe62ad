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
