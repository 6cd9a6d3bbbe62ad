"""The live zero-velocity stream's compiled detector: the same flags as the batch detector's run per
chunk (the stream before session 11) for any block sizes, and the same mask as `detect`."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strideflow.fusion.live import ZeroVelocityStream, zero_velocity_margin_samples
from strideflow.fusion.zero_velocity import (
    StillMask,
    ZeroVelocityDetector,
    ZeroVelocitySettings,
    _far_local_minima,
    _mid_swings,
    _row_norms,
)
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator

FS = 200.0
SETTINGS = (
    ZeroVelocitySettings(),
    ZeroVelocitySettings(swing_gyr_dps=None),
    ZeroVelocitySettings(fallback_threshold=None),
    ZeroVelocitySettings(fallback_threshold=None, swing_gyr_dps=None),
    ZeroVelocitySettings(window_s=0.06, merge_gap_s=0.05, fallback_separation_s=0.15, swing_max_gap_s=0.8),
)


class _ChunkedDetector:
    """The stream as it was: the batch detector re-run on each chunk with its margins, over arrays
    concatenated per push (the reference the compiled stream must equal flag for flag)."""

    def __init__(self, s: ZeroVelocitySettings, chunk: int = 40):
        self.s, self.chunk = s, chunk
        self.margin = zero_velocity_margin_samples(s, FS)
        self.acc, self.gyr = np.zeros((0, 3)), np.zeros((0, 3))
        self.done = 0

    def _flags(self, stop: int, context_stop: int) -> np.ndarray:
        lo = max(self.done - self.margin, 0)
        zv = ZeroVelocityDetector(self.s).detect(self.acc[lo:context_stop], self.gyr[lo:context_stop], FS)
        flags = zv.zero_velocity_[self.done - lo : stop - lo].copy()
        self.done = stop
        return flags

    def push(self, acc, gyr) -> np.ndarray:
        self.acc, self.gyr = np.concatenate([self.acc, acc]), np.concatenate([self.gyr, gyr])
        out = [np.zeros(0, dtype=bool)]
        while len(self.acc) >= self.done + self.chunk + self.margin:
            out.append(self._flags(self.done + self.chunk, self.done + self.chunk + self.margin))
        return np.concatenate(out)

    def finish(self) -> np.ndarray:
        n = len(self.acc)
        return self._flags(n, n) if n > self.done else np.zeros(0, dtype=bool)


@pytest.fixture(scope="module")
def feet() -> list[tuple[np.ndarray, np.ndarray]]:
    """Walking, running and the mixed day's bouts (standing, starts and stops), left foot."""
    out = []
    for activity in ("walk", "run", "mixed"):
        sim = Simulator(
            SimulationSettings(activity=activity, duration_s=14.0, seed=7, keep_orientation=False)
        ).simulate()
        part = sim.samples_.filter(pl.col(S.FOOT) == "left").sort(S.T)
        out.append((part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()))
    return out


def _gait_like(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Stretches of stillness, near-stillness (the fallback's anchors), push-offs, swings (the
    swing-guided anchors) and rough motion, of random lengths: every rule of the detector fires."""
    g = [0.0, 0.0, S.STANDARD_GRAVITY_MPS2]
    acc, gyr = np.empty((n, 3)), np.empty((n, 3))
    i = 0
    while i < n:
        k = min(int(rng.integers(2, 120)), n - i)
        kind = int(rng.integers(0, 6))
        scale = rng.uniform(0.5, 1.5)
        acc_sd, gyr_sd = ((0.05, 2.0), (0.6, 18.0), (1.0, 30.0), (1.0, 30.0), (4.0, 150.0), (0.0, 0.0))[kind]
        acc[i : i + k] = g + rng.normal(0.0, acc_sd * scale, (k, 3))
        gyr[i : i + k] = rng.normal(0.0, gyr_sd * scale, (k, 3))
        if kind == 2:  # push-off: plantarflexion
            gyr[i : i + k, 1] += rng.uniform(100.0, 400.0)
        elif kind == 3:  # swing: fast dorsiflexion with one peak
            gyr[i : i + k, 1] -= rng.uniform(150.0, 500.0) * np.sin(np.linspace(0.1, 3.0, k))
        elif kind == 5:  # a constant tilt off gravity: a plateau of the statistic (equal minima)
            acc[i : i + k] = [rng.uniform(0.5, 2.5), 0.0, S.STANDARD_GRAVITY_MPS2]
        i += k
    return acc, gyr


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, 6),  # 3 and above: `_gait_like`
    start=st.integers(0, 2500),
    n=st.integers(0, 900),
    s=st.sampled_from(SETTINGS),
    seed=st.integers(0, 2**32 - 1),
)
def test_compiled_mask_is_the_detectors(feet, which, start, n, s, seed):
    if which < 3:
        acc, gyr = (v[start : start + n] for v in feet[which])
    else:
        acc, gyr = _gait_like(np.random.default_rng(seed), n)
    acc, gyr = np.ascontiguousarray(acc), np.ascontiguousarray(gyr)
    ref = ZeroVelocityDetector(s).detect(acc, gyr, FS).zero_velocity_
    assert np.array_equal(StillMask(s, FS).mask(acc, gyr), ref)


def test_compiled_mask_on_signals_where_every_rule_fires():
    # 60 such signals drop fallback anchors by each rule and by plateau, and add swing-guided ones
    for seed in range(60):
        acc, gyr = _gait_like(np.random.default_rng(seed), 900)
        for s in SETTINGS:
            ref = ZeroVelocityDetector(s).detect(acc, gyr, FS).zero_velocity_
            assert np.array_equal(StillMask(s, FS).mask(acc, gyr), ref), (seed, s)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, 3),
    s=st.sampled_from(SETTINGS),
    sizes=st.lists(st.integers(1, 130), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_stream_gives_the_chunked_detectors_flags_for_any_blocks(feet, which, s, sizes, seed):
    acc, gyr = feet[which] if which < 3 else _gait_like(np.random.default_rng(seed), 2800)
    stream, ref = ZeroVelocityStream(FS, s), _ChunkedDetector(s)
    i, k = 0, 0
    while i < len(acc):
        b = sizes[k % len(sizes)]
        got = stream.push(acc[i : i + b], gyr[i : i + b])
        assert np.array_equal(got, ref.push(acc[i : i + b], gyr[i : i + b]))
        if k % 7 == 3:  # the provisional flags, as the stance rows read them
            lo = max(ref.done - ref.margin, 0)
            whole = ZeroVelocityDetector(s).detect(ref.acc[lo:], ref.gyr[lo:], FS).zero_velocity_
            assert np.array_equal(stream.peek(), whole[ref.done - lo :])
        i, k = i + b, k + 1
    assert np.array_equal(stream.finish(), ref.finish())
    assert stream.done_ == ref.done == len(acc)
    # memory stays bounded: the arrays hold the context and one push
    assert len(stream._acc) <= 2 * (2 * stream.margin_ + stream.chunk_ + max(sizes)) + 64


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 64), st.just(3)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True),
    )
)
def test_row_norms_are_the_einsum_ones(v):
    assert np.array_equal(_row_norms(v), np.sqrt(np.einsum("ij,ij->i", v, v)))


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    hnp.arrays(np.float64, st.integers(0, 120), elements=st.sampled_from([-400.0, -200.0, -151.0, 0.0, 5.0])),
    st.integers(1, 30),
)
def test_mid_swings_and_far_minima_are_their_window_statements(values, sep):
    """The kernels scan outward from each sample: the same samples as the window statements."""
    n = len(values)

    def window(i):
        return range(max(i - sep, 0), min(i + sep + 1, n))

    mid = [
        i
        for i in range(n)
        if values[i] < -150.0
        and not any(values[j] < values[i] or (values[j] == values[i] and j < i) for j in window(i))
    ]
    assert _mid_swings(values, sep, 150.0).tolist() == mid
    stat = values + 400.0  # 0 .. 405, many ties
    still = stat > 399.0
    far = [
        bool(stat[i] < 200.0)
        and not any(still[j] for j in window(i))
        and not any(stat[j] < stat[i] for j in window(i))
        for i in range(n)
    ]
    assert _far_local_minima(stat, still, sep, 200.0).tolist() == far
