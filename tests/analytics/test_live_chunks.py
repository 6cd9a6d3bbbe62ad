"""LiveStrideAnalyzer as a stream: block-size independence, bounded memory, gaps, bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strideflow.analytics.live_analyzer import LiveError, LiveSettings, LiveStrideAnalyzer
from strideflow.analytics.pipeline import REASON_GAP, AnalysisSettings, analyze_samples
from strideflow.fusion.live import ZeroVelocityStream
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.fusion.zupt import ZuptSettings
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.ingest.stream_receiver import SampleBlock

FS = 200.0
# no warm-up: the device frame is the foot frame and the bias is known (zero for this check)
NO_WARMUP = LiveSettings(analysis=AnalysisSettings(align_mounting=False), gyr_bias_dps=(0.0, 0.0, 0.0))


def _arrays(activity: str, seconds: float, seed: int):
    sim = Simulator(
        SimulationSettings(activity=activity, duration_s=seconds, seed=seed, keep_orientation=False)
    ).simulate()
    part = sim.samples_.filter(pl.col(S.FOOT) == "left").sort(S.T)
    return part[S.T].to_numpy(), part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()


@pytest.fixture(scope="module")
def running():
    return _arrays("run", 25.0, 11)


def _run(arrays, cuts, settings=LiveSettings()) -> tuple[LiveStrideAnalyzer, list[pl.DataFrame]]:
    t, acc, gyr = arrays
    live = LiveStrideAnalyzer("A", "S", "left", FS, settings)
    bounds = [0, *sorted(set(cuts)), len(t)]
    out = [
        live.push(SampleBlock(t[a:b], acc[a:b], gyr[a:b])).strides
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    out.append(live.finish().strides)
    return live, out


@pytest.fixture(scope="module")
def whole(running):
    live, _ = _run(running, [])
    return live.strides_


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_block_split_gives_identical_strides(running, whole, data):
    n = len(running[0])
    cuts = data.draw(st.lists(st.integers(1, n - 1), max_size=60))
    # also runs of tiny blocks somewhere
    start = data.draw(st.integers(1, n - 300))
    cuts += list(range(start, start + data.draw(st.integers(0, 200))))
    live, out = _run(running, cuts)
    assert whole.height > 20
    assert live.strides_.equals(whole)  # bit for bit, warm-up estimate included
    assert pl.concat(out).equals(whole)
    assert live.strides_[S.STRIDE_INDEX].to_list() == list(range(whole.height))


def test_zero_velocity_stream_equals_batch_for_any_blocks(running):
    t, acc, gyr = running
    ref = ZeroVelocityDetector().detect(acc, gyr, FS).zero_velocity_
    rng = np.random.default_rng(3)
    zv = ZeroVelocityStream(FS)
    out, i = [], 0
    while i < len(t):
        k = int(rng.integers(1, 150))
        out.append(zv.push(acc[i : i + k], gyr[i : i + k]))
        i += k
    out.append(zv.finish())
    assert np.array_equal(np.concatenate(out), ref)


def test_memory_is_bounded_on_a_long_walk():
    t, acc, gyr = _arrays("mixed", 150.0, 5)
    live = LiveStrideAnalyzer("A", "S", "left", FS, NO_WARMUP)
    longest = 0
    for i in range(0, len(t), 100):
        live.push(SampleBlock(t[i : i + 100], acc[i : i + 100], gyr[i : i + 100]))
        longest = max(longest, live._buf.stop - live._buf.start)
    live.finish()
    assert live.strides_.height > 100
    # a few strides and the standing pauses of the simulated bouts, never the whole stream
    assert longest < 0.1 * len(t), longest


def test_standing_longer_than_the_buffer_cuts_the_bout(running):
    t, acc, gyr = running
    still_acc = np.tile([0.0, 0.0, S.STANDARD_GRAVITY_MPS2], (int(8 * FS), 1))
    still_gyr = np.zeros_like(still_acc)
    t2 = np.concatenate([t, t[-1] + (np.arange(len(still_acc)) + 1) / FS])
    acc2, gyr2 = np.concatenate([acc, still_acc]), np.concatenate([gyr, still_gyr])
    settings = LiveSettings(analysis=NO_WARMUP.analysis, gyr_bias_dps=(0.0, 0.0, 0.0), max_buffer_s=5.0)
    live, _ = _run((t2, acc2, gyr2), [2000, 5000], settings)
    assert any("cut" in w for w in live.warnings_)
    assert live._buf.stop - live._buf.start <= 6 * FS
    assert live.strides_.height > 20


def test_long_gap_starts_a_new_segment_like_ingest(running):
    t, acc, gyr = running
    t_gap = np.where(np.arange(len(t)) >= 2500, t + 1.0, t)  # 1 s without samples after 12.5 s
    live, _ = _run((t_gap, acc, gyr), [777, 2500, 3001], NO_WARMUP)
    samples = pl.DataFrame(
        {
            S.ATHLETE_ID: "A",
            S.SESSION_ID: "S",
            S.FOOT: "left",
            S.T: t_gap,
            **{c: acc[:, i] for i, c in enumerate(S.ACC)},
            **{c: gyr[:, i] for i, c in enumerate(S.GYR)},
            S.SEGMENT: (np.arange(len(t)) >= 2500).astype(np.int32),
        }
    )
    batch = analyze_samples(samples, FS, NO_WARMUP.analysis).strides
    assert live.strides_.height == batch.height
    assert live.strides_[S.REASON].to_list() == batch[S.REASON].to_list()
    for c in S.EVENT_TIMES:
        assert float((live.strides_[c] - batch[c]).abs().max()) < 1e-6, c
    # batch takes out a gyro bias estimated per segment, this check none: small angle changes
    # (on the valid strides: the gait-start stride's excursion, not reported, moves more)
    valid = batch[S.VALID].fill_null(False)
    for c, tol in ((S.STRIDE_LENGTH_M, 0.01), (S.PRONATION_EXCURSION_DEG, 1.0), (S.TOE_OFF_ANGLE_DEG, 1.0)):
        assert float((live.strides_[c] - batch[c]).filter(valid).abs().max()) < tol, c
    assert any("new segment" in w for w in live.warnings_)


def test_short_gap_is_interpolated_and_its_stride_invalid(running):
    t, acc, gyr = running
    keep = np.ones(len(t), dtype=bool)
    keep[3000:3005] = False  # 25 ms lost
    live, _ = _run((t[keep], acc[keep], gyr[keep]), [2999, 3100], NO_WARMUP)
    hit = live.strides_.filter((pl.col(S.IC_T) <= t[3002]) & (pl.col(S.NEXT_IC_T) > t[3002]))
    assert hit.height == 1 and hit[S.REASON][0] == REASON_GAP and not hit[S.VALID][0]
    assert any("interpolated" in w for w in live.warnings_)


@pytest.mark.parametrize(
    ("t", "acc", "gyr", "message"),
    [
        ([0.0, 0.005], [[0, 0, 9.8], [0, 0, np.nan]], [[0, 0, 0]] * 2, "acc_mps2, block row 1"),
        ([0.0, 0.005], [[0, 0, 9.8]] * 2, [[0, 0, 0], [0, np.inf, 0]], "gyr_dps, block row 1"),
        ([0.0, 0.0], [[0, 0, 9.8]] * 2, [[0, 0, 0]] * 2, "t_s, block row 1"),
        ([0.0, 0.005], [[0, 0, 9.8]] * 3, [[0, 0, 0]] * 2, "acc_mps2 must have shape (2, 3)"),
    ],
)
def test_bad_blocks_are_rejected_naming_row_and_field(t, acc, gyr, message):
    live = LiveStrideAnalyzer("A", "S", "right", FS)
    with pytest.raises(LiveError, match=message.replace("(", r"\(").replace(")", r"\)")):
        live.push(SampleBlock(np.array(t), np.array(acc, dtype=float), np.array(gyr, dtype=float)))


def test_time_must_continue_across_blocks_and_stream_end_is_final():
    live = LiveStrideAnalyzer("A", "S", "left", FS)
    live.push(SampleBlock(np.array([0.0, 0.005]), np.zeros((2, 3)), np.zeros((2, 3))))
    with pytest.raises(LiveError, match="not after the previous sample"):
        live.push(SampleBlock(np.array([0.004]), np.zeros((1, 3)), np.zeros((1, 3))))
    assert live.finish().strides.height == 0
    with pytest.raises(LiveError, match="after finish"):
        live.push(SampleBlock(np.array([1.0]), np.zeros((1, 3)), np.zeros((1, 3))))
    with pytest.raises(LiveError, match="foot"):
        LiveStrideAnalyzer("A", "S", "middle", FS)


def test_the_live_analysis_refuses_the_whole_segment_stance_tilt_fit():
    # the fit across every stance of a segment (span None) or a span a window does not hold
    for span in (None, 2):
        analysis = AnalysisSettings(zupt=ZuptSettings(tilt_fit_sd_mps=0.02, tilt_fit_span=span))
        with pytest.raises(LiveError, match="tilt_fit_span"):
            LiveStrideAnalyzer("a", "s", "left", FS, LiveSettings(analysis=analysis))
    LiveStrideAnalyzer("a", "s", "left", FS, LiveSettings())  # the default: the local fit (span 1)
