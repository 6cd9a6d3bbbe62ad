"""Live analyzers whose metric queries run together (`resolve_together`, as the service's ticks do)
give exactly the rows each gives alone, push by push."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strideflow.analytics.live_analyzer import LiveSettings, LiveStrideAnalyzer, resolve_together
from strideflow.analytics.metrics import MetricSettings
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.ingest.stream_receiver import SampleBlock

FS = 200.0
NO_WARMUP = LiveSettings(analysis=AnalysisSettings(align_mounting=False), gyr_bias_dps=(0.0, 0.0, 0.0))


def _feet(activity: str, seconds: float, seed: int) -> list[tuple[str, tuple]]:
    sim = Simulator(
        SimulationSettings(activity=activity, duration_s=seconds, seed=seed, keep_orientation=False)
    ).simulate()
    out = []
    for foot in S.FEET:
        part = sim.samples_.filter(pl.col(S.FOOT) == foot).sort(S.T)
        out.append(
            (foot, (part[S.T].to_numpy(), part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()))
        )
    return out


@pytest.fixture(scope="module")
def streams():
    """Four streams of different data and block sizes: walking and running, both feet."""
    feet = _feet("walk", 30.0, 3) + _feet("run", 30.0, 5)
    return [(foot, arrays, block) for (foot, arrays), block in zip(feet, (20, 20, 7, 33), strict=True)]


def _blocks(arrays, size: int) -> list[SampleBlock]:
    t, acc, gyr = arrays
    return [
        SampleBlock(t[i : i + size], acc[i : i + size], gyr[i : i + size]) for i in range(0, len(t), size)
    ]


def test_rows_resolved_together_equal_each_alone(streams):
    alone, together = [], []
    for i, (foot, arrays, size) in enumerate(streams):
        live = LiveStrideAnalyzer(f"A{i}", "S", foot, FS, NO_WARMUP)
        outputs = [live.push(b) for b in _blocks(arrays, size)]
        outputs.append(live.finish())
        alone.append((live, outputs))
    analyzers = [
        LiveStrideAnalyzer(f"A{i}", "S", foot, FS, NO_WARMUP) for i, (foot, _, _) in enumerate(streams)
    ]
    blocks = [_blocks(arrays, size) for _, arrays, size in streams]
    outputs = [[] for _ in streams]
    shared = 0
    for r in range(max(len(b) for b in blocks)):
        due = [i for i in range(len(streams)) if r < len(blocks[i])]
        for i in due:
            analyzers[i].begin_push(blocks[i][r])
        shared += sum(bool(analyzers[i].pending_) for i in due) > 1
        assert resolve_together([analyzers[i] for i in due]) == {}
        for i in due:
            outputs[i].append(analyzers[i].end_push())
    for i, live in enumerate(analyzers):
        outputs[i].append(live.finish())
        together.append((live, outputs[i]))
    assert shared > 0  # some rounds did run the queries of several streams as one
    for (one, one_out), (many, many_out) in zip(alone, together, strict=True):
        assert one.strides_.height > 10 and one.stances_.height > 10
        assert_frame_equal(many.strides_, one.strides_)
        assert_frame_equal(many.stances_, one.stances_)
        assert_frame_equal(many.curves_, one.curves_)
        assert len(one_out) == len(many_out)
        for a, b in zip(one_out, many_out, strict=True):
            assert_frame_equal(a.strides, b.strides)
            assert_frame_equal(a.stances, b.stances)


def test_analyzers_with_other_metric_settings_are_resolved_each_with_its_own(streams):
    foot, arrays, size = streams[0]
    other = LiveSettings(
        # (not the impact window: on this walk it moved only the gait start's impact, now null there)
        analysis=AnalysisSettings(align_mounting=False, metrics=MetricSettings(strike_lookback_s=0.03)),
        gyr_bias_dps=(0.0, 0.0, 0.0),
    )
    reference = [LiveStrideAnalyzer("A", "S", foot, FS, s) for s in (NO_WARMUP, other)]
    for b in _blocks(arrays, size):
        for live in reference:
            live.push(b)
    pair = [LiveStrideAnalyzer("A", "S", foot, FS, s) for s in (NO_WARMUP, other)]
    for b in _blocks(arrays, size):
        for live in pair:
            live.begin_push(b)
        assert resolve_together(pair) == {}
        for live in pair:
            live.end_push()
    for one, many in zip(reference, pair, strict=True):
        assert_frame_equal(many.strides_, one.strides_)
    # the setting changes the strike angle: the two were not computed with one query's settings
    strike = [r.strides_[S.FOOT_STRIKE_ANGLE_DEG] for r in reference]
    assert not strike[0].equals(strike[1])
