"""The compiled and array fast paths of the pipeline give the numbers of the plain numpy/polars
forms they replace, bit for bit (or to the last ulp where a C library call is involved), and the
shortcuts (precomputed position, rows in any order, segments in any order) change nothing."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy.ndimage import uniform_filter1d
from scipy.spatial.transform import Rotation

from strideflow.analytics.curves import CURVES_SCHEMA, PCT, PHASE, stride_curves
from strideflow.analytics.events import StrideEventDetector, _jerk, _longest_periods, _rising_peak_offset
from strideflow.analytics.metrics import _median_step
from strideflow.analytics.pipeline import RecordingAnalyzer, analyze_samples
from strideflow.analytics.signals import euler_rates_dps, row_norm, unwrap
from strideflow.fusion.zero_velocity import ZeroVelocityDetector, mask_to_periods
from strideflow.fusion.zupt import ZuptIntegrator, zero_velocity_aided_orientation
from strideflow.hardware import schema as S
from strideflow.hardware.mounting import (
    AlignmentError,
    MountingEstimator,
    MountingSettings,
    apply_mounting,
    rotate_to_foot,
)
from strideflow.hardware.simulator import SimulationSettings, Simulator

FS = 200.0


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.fixture(scope="module")
def walk() -> pl.DataFrame:
    """Two minutes of mixed walking and running, both feet, device frame (mounted off-axis)."""
    sim = Simulator(
        SimulationSettings(activity="mixed", duration_s=120.0, seed=5, keep_orientation=False)
    ).simulate()
    return sim.samples_


@pytest.fixture(scope="module")
def left(walk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    part = walk.filter(pl.col(S.FOOT) == "left").sort(S.T)
    return (
        part[S.T].to_numpy(),
        np.ascontiguousarray(part.select(S.ACC).to_numpy()),
        np.ascontiguousarray(part.select(S.GYR).to_numpy()),
    )


def _still_mask_reference(acc, gyr, fs, s: MountingSettings) -> np.ndarray:
    """The still mask written with scipy's uniform_filter1d, as the estimator had it."""
    width = max(3, int(round(s.still_window_s * fs)))
    if len(acc) < width:
        return np.zeros(len(acc), dtype=bool)
    mean_gyr = uniform_filter1d(np.linalg.norm(gyr, axis=1), width, mode="nearest")
    mean_norm = uniform_filter1d(np.linalg.norm(acc, axis=1), width, mode="nearest")
    mean_acc = uniform_filter1d(acc, width, axis=0, mode="nearest")
    mean_sq = uniform_filter1d(acc * acc, width, axis=0, mode="nearest")
    scatter = np.sqrt(np.clip(np.sum(mean_sq - mean_acc * mean_acc, axis=1), 0.0, None))
    return (
        (mean_gyr < s.still_gyr_dps)
        & (np.abs(mean_norm - S.STANDARD_GRAVITY_MPS2) < s.still_acc_tol_mps2)
        & (scatter < s.still_acc_std_mps2)
    )


@pytest.mark.parametrize("window_s", [0.015, 0.03, 0.04, 0.045, 0.06])
def test_still_mask_equals_the_uniform_filter_form(left, window_s):
    _, acc, gyr = left
    settings = MountingSettings(still_window_s=window_s)
    est = MountingEstimator(settings)
    still, gyr_norm = est._still_mask(acc, gyr, FS)
    reference = _still_mask_reference(acc, gyr, FS, settings)
    assert 0.1 < reference.mean() < 0.9  # both still and moving samples are judged
    assert np.array_equal(still, reference)
    assert _bits_equal(gyr_norm, np.linalg.norm(gyr, axis=1))
    # shorter than the window, and exactly the window: nothing is still / same as the reference
    for n in (5, 8):
        short_still, _ = est._still_mask(acc[:n].copy(), gyr[:n].copy(), FS)
        assert np.array_equal(short_still, _still_mask_reference(acc[:n], gyr[:n], FS, settings))


def test_mounting_rejects_bad_rows_naming_the_first(left):
    _, acc, gyr = left
    bad = acc.copy()
    bad[[70, 90]] = np.nan
    with pytest.raises(AlignmentError, match=r"2 sample\(s\) with NaN or inf, first at row 70"):
        MountingEstimator().estimate(bad, gyr, FS)
    huge = gyr.copy()
    huge[123, 2] = -5e6
    with pytest.raises(AlignmentError, match=r"1 sample\(s\) beyond .* first at row 123"):
        MountingEstimator().estimate(acc, huge, FS)


def test_rotate_to_foot_gives_the_floats_of_apply_mounting(walk):
    part = walk.filter(pl.col(S.FOOT) == "right").sort(S.T).head(4000)
    # exact zeros of both signs, where the sum order decides the sign of a zero result
    part = part.with_columns(
        pl.when(pl.int_range(pl.len()) < 50).then(0.0).otherwise(pl.col(S.GYR[0])).alias(S.GYR[0]),
        pl.when(pl.int_range(pl.len()) < 50).then(-0.0).otherwise(pl.col(S.GYR[1])).alias(S.GYR[1]),
        pl.when(pl.int_range(pl.len()) < 50).then(0.0).otherwise(pl.col(S.GYR[2])).alias(S.GYR[2]),
    )
    for seed in range(4):
        rotation = Rotation.random(random_state=seed)
        table = apply_mounting(part, {"right": rotation})
        for cols in (S.ACC, S.GYR):
            got = rotate_to_foot(rotation, part.select(cols).to_numpy())
            assert got.flags.c_contiguous
            assert _bits_equal(got, table.select(cols).to_numpy())


def test_row_norm_jerk_and_euler_rates_equal_their_numpy_forms(left):
    _, acc, gyr = left
    assert _bits_equal(row_norm(acc), np.linalg.norm(acc, axis=1))
    jerk = np.zeros(len(acc))
    jerk[1:] = np.linalg.norm(np.diff(acc, axis=0), axis=1)
    assert _bits_equal(_jerk(acc), jerk)
    rng = np.random.default_rng(2)
    roll, pitch = rng.uniform(-170, 170, len(acc)), rng.uniform(-85, 85, len(acc))
    phi, theta = np.radians(roll), -np.radians(pitch)
    want_roll = gyr[:, 0] + np.tan(theta) * (np.sin(phi) * gyr[:, 1] + np.cos(phi) * gyr[:, 2])
    want_pitch = -(np.cos(phi) * gyr[:, 1] - np.sin(phi) * gyr[:, 2])
    got_roll, got_pitch = euler_rates_dps(roll, pitch, gyr)
    # sin and cos come from the C library in the compiled pass, as numpy's do here; allow an ulp
    np.testing.assert_allclose(got_roll, want_roll, rtol=1e-14, atol=1e-11)
    np.testing.assert_allclose(got_pitch, want_pitch, rtol=1e-14, atol=1e-11)


def test_events_with_the_pipelines_position_equal_events_that_integrate_it(left):
    t, acc, gyr = left
    est = MountingEstimator().estimate(acc, gyr, FS)
    acc_f, gyr_f = rotate_to_foot(est.rotation_, acc), rotate_to_foot(est.rotation_, gyr)
    zv = ZeroVelocityDetector().detect(acc_f, gyr_f, FS).zero_velocity_
    q = zero_velocity_aided_orientation(acc_f, gyr_f, zv, FS, t)
    position = ZuptIntegrator().estimate(acc_f, q, zv, FS, t, gyr_dps=gyr_f).position_m_
    own = StrideEventDetector().detect(acc_f, gyr_f, FS, zero_velocity=zv, t_s=t, q_wxyz=q)
    given = StrideEventDetector().detect(
        acc_f, gyr_f, FS, zero_velocity=zv, t_s=t, q_wxyz=q, position_m=position
    )
    assert own.events_.height > 50
    assert given.events_.equals(own.events_)
    # a different position shows in the displacements: the argument is really used
    shifted = StrideEventDetector().detect(
        acc_f, gyr_f, FS, zero_velocity=zv, t_s=t, q_wxyz=q, position_m=position * 2.0
    )
    assert not shifted.events_.equals(own.events_)
    with pytest.raises(ValueError, match="position_m must be"):
        StrideEventDetector().detect(
            acc_f, gyr_f, FS, zero_velocity=zv, t_s=t, q_wxyz=q, position_m=position[:5]
        )


def test_segments_in_any_row_order_give_the_same_strides(walk):
    """A segment whose rows are not contiguous (grouped by value) equals the same rows in order."""
    part = walk.filter(pl.col(S.FOOT) == "left").sort(S.T)
    n = part.height
    seg = np.zeros(n, dtype=np.int32)
    seg[n // 3 : 2 * n // 3] = 1  # segment 0 = first and last third, segment 1 in the middle
    scattered = part.with_columns(pl.Series(S.SEGMENT, seg))
    grouped = scattered.sort(S.SEGMENT, maintain_order=True)
    a = analyze_samples(scattered, FS)
    b = analyze_samples(grouped, FS)
    assert a.strides.height > 40
    assert a.strides.equals(b.strides)
    assert a.sessions.equals(b.sessions)


def test_summarize_false_leaves_empty_tables_with_the_columns(walk):
    full = RecordingAnalyzer().analyze(walk, FS).result_
    bare = RecordingAnalyzer().analyze(walk, FS, summarize=False).result_
    assert bare.strides.equals(full.strides)
    # mixed walking and running: one row per foot and activity
    assert full.sessions.height == 4 and bare.sessions.height == 0
    assert bare.sessions.schema == full.sessions.schema
    assert bare.flags.schema == full.flags.schema
    bare.sessions.insert_column(0, pl.Series("x", [], dtype=pl.Int8))  # a caller's in-place change ...
    again = RecordingAnalyzer().analyze(walk.head(2000), FS, summarize=False).result_
    assert again.sessions.schema == full.sessions.schema  # ... does not reach the next result


def test_curves_do_not_depend_on_row_order(walk):
    result = analyze_samples(walk, FS)
    ordered = stride_curves(result)
    assert ordered.schema == pl.Schema(CURVES_SCHEMA)
    assert ordered.height == result.strides.height * 2 * 101
    keys = [*S.KEYS, S.STRIDE_INDEX, PHASE, PCT]
    assert ordered.equals(ordered.sort(keys))  # built in its sorted order
    signals = pl.concat(list(result.signals.values()), how="diagonal_relaxed")
    from strideflow.analytics.curves import StrideCurves

    rng = np.random.default_rng(7)
    shuffled = StrideCurves().compute(
        result.strides.sample(fraction=1.0, shuffle=True, seed=1),
        signals[rng.permutation(signals.height)],
    )
    assert shuffled.curves_.equals(ordered)


def test_interp_pair_gives_numpy_interp_floats():
    from strideflow.analytics.curves import _interp_pair

    rng = np.random.default_rng(11)
    xp = np.cumsum(rng.uniform(0.001, 0.01, 5000))
    xp[100:104] = xp[100]  # repeated instants
    fa, fb = rng.normal(size=5000), rng.normal(size=5000)
    fa[[7, 8, 300]] = np.nan  # gaps in the signal
    fb[2000:2003] = np.inf
    x = np.concatenate(
        [
            rng.uniform(xp[0] - 0.1, xp[-1] + 0.1, 20000),  # unordered, some outside
            np.sort(rng.uniform(xp[0], xp[-1], 20000)),  # increasing runs, as the curves ask
            xp[::7],  # exact hits
            [np.nan, np.inf, xp[0], xp[-1]],
        ]
    )
    got_a, got_b = _interp_pair(x, xp, fa, fb)
    ok = np.isfinite(x)
    for got, fp in ((got_a, fa), (got_b, fb)):
        want = np.full(x.shape, np.nan)
        want[ok] = np.interp(x[ok], xp, fp)
        assert _bits_equal(got, want)


def test_neighbours_search_equals_searchsorted():
    from strideflow.analytics.metrics import _neighbours

    rng = np.random.default_rng(5)
    runs = [np.sort(rng.choice(np.arange(0, 50, 0.5), size=k)) for k in (0, 1, 7, 300, 2000)]  # repeats
    t = np.concatenate(runs)
    edges = np.cumsum([0, *[len(r) for r in runs]])
    lo_list, hi_list, tq_list = [], [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        q = np.concatenate(
            [np.sort(rng.uniform(-1, 51, 400)), rng.uniform(-1, 51, 100), t[a:b][::3], [np.nan]]
        )
        lo_list.append(np.full(q.size, a))
        hi_list.append(np.full(q.size, b))
        tq_list.append(q)
    lo, hi, tq = (np.concatenate(v) for v in (lo_list, hi_list, tq_list))
    lo[:5] = -1  # a foot without signal
    before, after = _neighbours(t, lo, hi, tq)
    for k in range(tq.size):
        a, b, x = lo[k], hi[k], tq[k]
        if a < 0 or a >= b or np.isnan(x):
            assert before[k] == after[k] == -1
            continue
        i_ge = a + np.searchsorted(t[a:b], x, side="left")
        i_gt = a + np.searchsorted(t[a:b], x, side="right")
        assert after[k] == (i_ge if i_ge < b else -1)
        assert before[k] == (i_gt - 1 if i_gt > a else -1)


def test_metrics_one_foot_at_a_time_equal_all_feet_at_once_in_any_row_order(walk):
    """StrideMetrics' single-foot path (no joins: the live analyzer's case) and its general path
    (several feet, rows out of order, sorted at the end) give the same table, bit for bit."""
    from strideflow.analytics.metrics import StrideMetrics

    result = analyze_samples(walk, FS)
    columns = (*S.KEYS, S.STRIDE_INDEX, *S.EVENT_TIMES, S.VALID, S.REASON, S.CONTEXT, S.HEADING_CHANGE_DEG)
    events = {f: e.select(columns) for f, e in result.events.items()}
    per_foot = pl.concat([StrideMetrics().estimate(events[f], result.signals[f]).strides_ for f in S.FEET])
    shuffled_events = pl.concat(events.values()).sample(fraction=1.0, shuffle=True, seed=3)
    shuffled_signals = pl.concat(result.signals.values()).sample(fraction=1.0, shuffle=True, seed=4)
    together = StrideMetrics().estimate(shuffled_events, shuffled_signals).strides_
    assert per_foot.height > 40
    assert_frame_equal(together, per_foot.sort(*S.KEYS, S.IC_T), check_exact=True)
    # the pipeline adds the mounting's uncertainty to the metrics' table
    batch = result.strides.drop(S.MOUNTING_UNCERTAINTY_DEG, S.MOUNTING_ID, S.REMOUNT).sort(*S.KEYS, S.IC_T)
    assert_frame_equal(per_foot, batch, check_exact=True)


def _longest_periods_numpy(periods, lo, hi):
    """The numpy statement `_longest_periods` compiles (`StrideEventDetector._foot_flat` before
    session 11)."""
    ff = (lo + np.maximum(hi - 1, lo)) // 2
    length = np.zeros(len(lo), dtype=np.int64)
    if len(periods) == 0 or len(lo) == 0:
        return ff.astype(np.int64), length
    owner = np.searchsorted(lo, periods[:, 0], side="right") - 1
    inside = (owner >= 0) & (periods[:, 1] <= hi[np.clip(owner, 0, None)])
    for p, k in zip(periods[inside], owner[inside], strict=True):
        if p[1] - p[0] > length[k]:
            length[k] = p[1] - p[0]
            ff[k] = (p[0] + p[1] - 1) // 2
    return ff.astype(np.int64), length


@pytest.mark.parametrize("seed", range(40))
def test_longest_still_period_per_stance_is_the_numpy_loops(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    zv = rng.random(n) < rng.uniform(0.1, 0.9)
    cuts = np.sort(rng.choice(n + 1, size=int(rng.integers(0, min(n, 12) + 1)), replace=False))
    lo = np.concatenate([[0], cuts]).astype(np.int64)
    hi = np.concatenate([cuts, [n]]).astype(np.int64)
    periods = mask_to_periods(zv)
    want = _longest_periods_numpy(periods, lo, hi)
    for got, expected in zip(_longest_periods(periods, lo, hi), want, strict=True):
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("seed", range(30))
def test_median_step_is_numpys_median_of_the_steps(seed):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.choice([0.005, 0.0049, 0.0051, 0.01], size=int(rng.integers(2, 60))))
    for a, b in ((0, len(t)), (0, 2), (1, len(t)), (len(t) // 3, len(t))):
        if b - a >= 2:
            assert _bits_equal(_median_step(t, a, b), np.median(np.diff(t[a:b])))


def _rising_peak_offset_numpy(x, idx):
    """The numpy statement `_rising_peak_offset` compiles (before session 11)."""
    out = np.zeros(len(idx))
    ok = (idx >= 3) & (idx + 1 < len(x))
    if not ok.any():
        return out
    i = idx[ok]
    a, b, c, d = x[i - 3], x[i - 2], x[i - 1], x[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        den_late, den_early = b - 2.0 * c + d, a - 2.0 * b + c
        late = np.where(den_late < 0, 0.5 * (b - d) / den_late, np.nan)
        early = np.where(den_early < 0, 0.5 * (a - c) / den_early, np.nan)
    out[ok] = np.where(
        (late >= 1.0) & (late <= 2.0),
        late - 1.0,
        np.where((early >= 1.0) & (early <= 2.0), early - 2.0, 0.0),
    )
    return out


@pytest.mark.parametrize("seed", range(30))
def test_rising_peak_offset_is_the_numpy_statement(seed):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0.0, 1.0, 80)) * rng.choice([1e-3, 1.0, 300.0])
    x[rng.random(80) < 0.05] = np.nan
    idx = rng.integers(0, 80, 25)
    assert _bits_equal(_rising_peak_offset(x, idx), _rising_peak_offset_numpy(x, idx))


@pytest.mark.parametrize("seed", range(40))
def test_unwrap_is_numpys_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # random angles, random walks, and jumps of exactly +-pi and 2 pi (numpy's boundary rule)
    walks = (
        rng.uniform(-4.0, 4.0, n),
        np.cumsum(rng.uniform(-4.0, 4.0, n)),
        np.radians(rng.choice([-180.0, 180.0, 179.9, -179.9, 0.0, -0.0, 90.0], n)),
        np.cumsum(rng.choice([np.pi, -np.pi, 2.0 * np.pi, 0.1], n)),
        rng.uniform(-1e4, 1e4, n),
    )
    for p in walks:
        assert _bits_equal(unwrap(np.ascontiguousarray(p)), np.unwrap(p))


@pytest.mark.parametrize("seed", range(12))
def test_signal_arrays_gyro_angles_are_the_numpy_statements(left, seed):
    """`signal_arrays`' compiled "gyro" pass gives the columns of the NumPy statements it replaced
    bit for bit: on a levelled walk and on random quaternions with NaN rows, rows a little off unit
    length (R20 clipped) and pitches at the gimbal-lock limit."""
    from strideflow.analytics.signals import SignalSettings, signal_arrays
    from strideflow.hardware.frames import heading_deg, roll_pitch_deg

    rng = np.random.default_rng(seed)
    t, acc, gyr = left
    foot = ("left", "right")[seed % 2]
    if seed < 4:
        q = zero_velocity_aided_orientation(
            acc, gyr, ZeroVelocityDetector().detect(acc, gyr, FS).zero_velocity_, FS, t
        )
    else:
        n = int(rng.integers(1, 400))
        t, acc, gyr = t[:n], acc[:n] * rng.uniform(0.5, 2.0), gyr[:n] * rng.uniform(0.5, 4.0)
        q = rng.normal(size=(n, 4)) * rng.uniform(0.999, 1.001, size=(n, 1))
        q /= np.linalg.norm(q, axis=1, keepdims=True) * rng.choice([1.0, 0.9995], size=(n, 1))
        half = np.radians(rng.choice([79.9, 80.0, 80.1, 90.0], size=n)) / 2  # pitch about y
        tilt = rng.random(n) < 0.3
        q[tilt] = np.column_stack([np.cos(half), np.zeros(n), -np.sin(half), np.zeros(n)])[tilt]
        q[rng.random(n) < 0.05] = np.nan
    settings = SignalSettings()
    got = signal_arrays(foot, t, acc, gyr, q, settings=settings)
    roll, pitch = roll_pitch_deg(q)
    roll_rate, pitch_rate = euler_rates_dps(roll, pitch, gyr)
    roll_rate = np.where(np.abs(pitch) <= settings.max_euler_pitch_deg, roll_rate, np.nan)
    sign = 1.0 if foot == "left" else -1.0
    want = {
        S.ROLL_DEG: roll,
        S.PITCH_DEG: pitch,
        S.PRONATION_DEG: sign * roll,
        S.PITCH_RATE_DPS: pitch_rate,
        S.PRONATION_RATE_DPS: sign * roll_rate,
        S.HEADING_DEG: np.degrees(np.unwrap(np.radians(heading_deg(q)))),
        S.ACC_NORM_G: np.linalg.norm(acc, axis=1) / S.STANDARD_GRAVITY_MPS2,
    }
    for name, values in want.items():
        assert _bits_equal(got[name], values), name
