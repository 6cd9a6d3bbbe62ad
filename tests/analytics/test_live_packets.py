"""The live analyzer's compiled per-packet arithmetic gives the values of the NumPy statements it
replaced, and the gap conditioner's shortcut takes exactly the blocks `push` returns unchanged."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strideflow.analytics.live_packets import at_range, block_fine, still_ends, swing_starts, to_foot_rows
from strideflow.hardware.motion_math import rotate_rows
from strideflow.ingest.gaps import GapConditioner
from strideflow.ingest.settings import ReadSettings

FS = 200.0
_values = st.floats(-3000.0, 3000.0, allow_nan=False, allow_subnormal=True) | st.sampled_from(
    [0.0, -0.0, 2000.0, -2000.0, np.nan, np.inf, -np.inf]
)


def _rows(n: int):
    return hnp.arrays(np.float64, (n, 3), elements=_values)


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(st.integers(0, 40).flatmap(lambda n: st.tuples(_rows(n), _rows(n), st.integers(0, 3))), st.data())
def test_block_fine_is_the_numpy_test(arrays, data):
    acc, gyr, kind = arrays
    n = len(acc)
    steps = data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.005, 0.0, -0.001, 0.01, np.nan])))
    t = 3.0 + np.cumsum(steps)
    last_t = data.draw(st.sampled_from([None, 2.99, 3.0, 4.0, np.nan]))
    if kind == 0:  # mostly fine blocks
        acc, gyr = np.nan_to_num(acc), np.nan_to_num(gyr)
    want = bool(
        np.isfinite(t).all()
        and np.isfinite(acc).all()
        and np.isfinite(gyr).all()
        and (n == 0 or last_t is None or t[0] > last_t)
        and bool((t[1:] > t[:-1]).all())
    )
    assert block_fine(t, acc, gyr, -np.inf if last_t is None else last_t) == want


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    st.integers(0, 40).flatmap(lambda n: st.tuples(_rows(n), _rows(n))),
    hnp.arrays(np.float64, (3, 3), elements=st.floats(-1.0, 1.0, allow_subnormal=True)),
)
def test_to_foot_rows_are_rotate_rows_of_each(arrays, matrix):
    acc, gyr = arrays
    acc_f, gyr_f = to_foot_rows(matrix, acc, gyr)
    # bit for bit, the two rotations it replaces; NaN where they give NaN, whatever its sign: the
    # compiler may commute an addition, and which NaN operand propagates then differs (seen on an
    # AVX2 machine for [nan, inf, inf] rows; a packet's samples, int16 counts over a scale, are finite)
    for got, want in ((acc_f, rotate_rows(matrix, acc)), (gyr_f, rotate_rows(matrix, gyr))):
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan)
        assert got[~nan].tobytes() == want[~nan].tobytes()


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    st.integers(0, 40).flatmap(lambda n: st.tuples(_rows(n), hnp.arrays(np.bool_, n))),
    st.sampled_from([0.0, 100.0, 1999.9, 2000.0, 5000.0]),
)
def test_at_range_is_the_numpy_statement(arrays, largest):
    gyr, sat = arrays
    gyr = np.nan_to_num(gyr, posinf=2000.0, neginf=-2000.0)  # the block is checked finite first
    marks, after = at_range(gyr, sat, largest, 0.99)
    if not len(gyr):
        assert len(marks) == 0 and after == largest
        return
    a = np.abs(gyr).max(axis=1)
    running = np.maximum.accumulate(np.maximum(a, largest))
    assert np.array_equal(marks, sat & (a >= running * 0.99))
    assert after == float(running[-1])


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    st.lists(
        st.lists(st.sampled_from([-300.0, -61.0, -60.0, -59.0, -1.0, -0.0, 0.0, 0.5, 200.0]), max_size=30),
        max_size=6,
    ),
    st.booleans(),
)
def test_swing_starts_are_the_numpy_scan_over_any_blocks(blocks, armed):
    level = 60.0

    def numpy_scan(gyr_y, armed):  # the analyzer's former `_scan_swing`
        pos = gyr_y > 0.0
        events = np.flatnonzero(pos | (gyr_y < -level))
        if not len(events):
            return [], armed
        was = pos[events]
        before = np.concatenate([[armed], was[:-1]])
        return [int(i) + 1 for i in events[~was & before]], bool(was[-1])

    ours, ref = armed, armed
    for values in blocks:
        gyr = np.zeros((len(values), 3))
        gyr[:, 1] = values
        got, ours = swing_starts(gyr, level, ours)
        want, ref = numpy_scan(gyr[:, 1], ref)
        assert got.tolist() == want
        assert ours == ref


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(hnp.arrays(np.bool_, st.integers(0, 60)))
def test_still_ends_is_the_numpy_statement(zv):
    assert still_ends(zv).tolist() == (np.flatnonzero(~zv[1:] & zv[:-1]) + 1).tolist()


@settings(deadline=None)  # a kernel's first call loads it from numba's cache
@given(
    st.lists(st.floats(0.0, 0.2), min_size=1, max_size=12),
    st.lists(st.integers(1, 25), min_size=1, max_size=12),
    st.sampled_from([ReadSettings(), ReadSettings(gap_min_intervals=3.0, max_interpolated_gap_s=0.02)]),
)
def test_gap_shortcut_takes_only_the_blocks_push_leaves_as_they_are(extra_s, sizes, read):
    """Random steps (some gaps, short and long), random block sizes: the shortcut and `push` give
    the same stream, and a block taken by the shortcut is one `push` would leave unchanged."""
    rng = np.random.default_rng(len(extra_s) * 31 + len(sizes))
    steps = np.full(300, 1.0 / FS)
    steps[rng.integers(0, 300, len(extra_s))] += extra_s
    t = np.cumsum(steps)
    values = rng.normal(size=(300, 6))
    sat = rng.random(300) < 0.1
    fast, slow = GapConditioner(FS, read), GapConditioner(FS, read)
    i = k = 0
    while i < len(t):
        sl = slice(i, i + sizes[k % len(sizes)])
        ref = slow.push(t[sl], values[sl], sat[sl])
        plain = (
            len(ref.t) == len(t[sl])
            and not ref.new_segment.any()
            and not ref.interpolated.any()
            and not ref.warnings
        )
        if fast.follows(t[sl], values[sl][-1].copy()):
            assert plain and k > 0
            assert np.array_equal(ref.t, t[sl]) and np.array_equal(ref.values, values[sl])
        else:
            got = fast.push(t[sl], values[sl], sat[sl])
            assert not plain or k == 0
            for a, b in zip(got.__dict__.values(), ref.__dict__.values(), strict=True):
                assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
        assert fast.last_t_ == slow.last_t_
        assert np.array_equal(fast._last_values, slow._last_values)
        i, k = sl.stop, k + 1
