"""The live remount check's compiled path gives the former NumPy path's floats, bit for bit.

`LiveMountings.check` (every 20 s chunk of a live stream) and batch's `MountingTracker` share
`stride_directions`, `stride_swing_axes`, `direction_scatter_deg` and `RemountDetector.detect`.
The former code of each is kept here as the reference: the per-stride directions, scatters,
contrasts, remounts and every check's state must be equal on real recordings' 20 s chunks, a
simulated stream with a remount, and random directions with NaN rows.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from scipy.spatial.transform import Rotation
from support.paths import SHARED_DATA

from strideflow.analytics import live_mountings
from strideflow.analytics.live_mountings import LiveMountings
from strideflow.analytics.mountings import moving_only, stride_directions
from strideflow.analytics.segment import MountingFailed
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.motion_math import rotate_rows
from strideflow.hardware.mounting import MountingEstimator
from strideflow.hardware.remount import (
    RemountDetector,
    _median,
    _nanmedian_rows,
    _row_norms,
    _run_median_directions,
    _window_median_directions,
    direction_scatter_deg,
    stride_swing_axes,
)
from strideflow.hardware.simulator.simulator import SimulationSettings, Simulator
from strideflow.ingest import read_recording

SETTINGS = AnalysisSettings()
CHUNK_S = 20.0


# --- the former code (main before session 13), the reference ----------------------------------
def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _jumps_deg(a, b):
    with np.errstate(invalid="ignore"):
        a, b = _unit(a), _unit(b)
        return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def _window_medians(d, w):
    runs = np.lib.stride_tricks.sliding_window_view(d, w, axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN runs
        return _unit(np.nanmedian(runs, axis=-1))


def old_scatter_deg(directions, window=10):
    d = directions[np.isfinite(directions[:, 0])]
    if len(d) < 3:
        return float("nan")
    pad = np.full((window, 3), np.nan)
    return float(1.4826 * np.median(_jumps_deg(d, _window_medians(np.vstack((pad, d, pad)), 2 * window + 1))))


def old_swing_axes(gyr_dps, strides, axis_dev, swing_gyr_dps):
    out = np.full((len(strides), 3), np.nan)
    norm = np.linalg.norm(gyr_dps, axis=1)
    for k, (a, b) in enumerate(strides):
        g = gyr_dps[a:b][norm[a:b] >= swing_gyr_dps]
        if len(g) >= 3:
            v = np.linalg.eigh(g.T @ g)[1][:, -1]
            out[k] = v if v @ axis_dev >= 0 else -v
    return out


def old_stride_directions(acc, gyr, fs, settings):
    for mounting in (settings.mounting, settings.mounting_fallback):
        if mounting is None:
            continue
        try:
            est = MountingEstimator(replace(mounting, heading="walking")).estimate(acc, gyr, fs)
        except StrideflowError:
            continue
        swing = old_swing_axes(gyr, est.strides_, est.axis_dev_, settings.remount.swing_gyr_dps)
        return est, moving_only(est, est.stride_up_dev_), moving_only(est, swing)
    return None, np.zeros((0, 3)), np.zeros((0, 3))


class OldDetector(RemountDetector):
    """`detect` as it was: NumPy's scatter and window contrasts (the rest is the class's own)."""

    def detect(self, up_dev, swing_dev):
        s = self.settings
        up, swing = np.asarray(up_dev, float), np.asarray(swing_dev, float)
        n, w = len(up), s.window_strides
        tol = np.array(
            [
                self.tolerance_deg(old_scatter_deg(up), True),
                self.tolerance_deg(old_scatter_deg(swing), True, swing=True),
            ]
        )
        contrast = np.full((n, 2), np.nan)
        if n >= 2 * w:
            k = np.arange(w, n - w + 1)
            for c, d in enumerate((up, swing)):
                med = _window_medians(d, w)
                finite = np.lib.stride_tricks.sliding_window_view(np.isfinite(d[:, 0]), w).sum(axis=-1)
                ok = (finite[k - w] >= 3) & (finite[k] >= 3)
                contrast[k[ok], c] = _jumps_deg(med[k[ok] - w], med[k[ok]])
        excess = (
            np.nanmax(np.where(np.isfinite(contrast), contrast / tol, -np.inf), axis=1) if n else np.zeros(0)
        )
        remounts: list[int] = []
        free = np.ones(n, dtype=bool)
        while n and np.any(free & (excess > 1.0)):
            k = int(np.argmax(np.where(free, excess, -np.inf)))
            channel = (up, swing)[int(np.nanargmax(contrast[k] / tol))]
            k, peak = self._sharpest(channel, k, w), k
            if not excess[k] > 1.0:  # the selection rule as it is now (session 17), not a float path
                free[peak] = False
                continue
            remounts.append(k)
            free[max(0, k - w) : k + w] = False
        remounts.sort()
        self.remounts_ = remounts
        self.jumps_ = [(float(contrast[k, 0]), float(contrast[k, 1])) for k in remounts]
        self.tolerance_deg_ = (float(tol[0]), float(tol[1]))
        self.contrast_deg_ = contrast
        return self


def _old_swing_median(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x.T, axis=0)  # the check's `np.nanmedian(self._swing, axis=0)`


# --- data ---------------------------------------------------------------------------------------
def _feet(path, fs=None):
    rec = read_recording(path, sampling_rate_hz=fs) if fs else read_recording(path)
    out = []
    for foot in sorted(rec.samples[S.FOOT].unique().to_list()):
        part = rec.samples.filter(pl.col(S.FOOT) == foot).sort(S.T)
        acc, gyr = part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()
        out.append((f"{path.stem}-{foot}", part[S.T].to_numpy(), acc, gyr, float(rec.sampling_rate_hz)))
    return out


def _simulated_with_remount():
    """One simulated foot, 100 s of walking, the pod turned on the shoe at 55 s."""
    sim = Simulator(SimulationSettings(duration_s=100.0, sampling_rate_hz=200.0, seed=7)).simulate()
    part = sim.samples_.filter(pl.col(S.FOOT) == "left").sort(S.T)
    t = part[S.T].to_numpy()
    acc, gyr = part.select(S.ACC).to_numpy().copy(), part.select(S.GYR).to_numpy().copy()
    rows = t >= 55.0
    m = np.ascontiguousarray(Rotation.from_euler("zx", [40.0, 12.0], degrees=True).as_matrix())
    acc[rows] = rotate_rows(m, np.ascontiguousarray(acc[rows]))
    gyr[rows] = rotate_rows(m, np.ascontiguousarray(gyr[rows]))
    return ("simulated-remount", t, acc, gyr, 200.0)


@pytest.fixture(scope="module")
def recordings():
    recs = [_simulated_with_remount()]
    walks = SHARED_DATA / "footprints_walks"
    if walks.is_dir():
        recs += _feet(walks / "SensorConnectData_36.csv") + _feet(walks / "SensorConnectData_42.csv")
    gaitmap = SHARED_DATA / "gaitmap_example"
    if gaitmap.is_dir():
        recs += _feet(gaitmap / "imu_sample.csv", 204.8) + _feet(gaitmap / "imu_sample_ic_stride.csv", 204.8)
    return recs


def _chunks(rec):
    _, _, acc, gyr, fs = rec
    n = int(round(CHUNK_S * fs))
    for lo in range(0, len(acc), n // 2):  # overlapping chunks: more strides, other cuts
        yield np.ascontiguousarray(acc[lo : lo + n]), np.ascontiguousarray(gyr[lo : lo + n]), fs


def _same_detection(new, old):
    assert new.remounts_ == old.remounts_
    assert new.jumps_ == old.jumps_
    assert new.tolerance_deg_ == old.tolerance_deg_
    np.testing.assert_array_equal(new.contrast_deg_, old.contrast_deg_)


# --- tests --------------------------------------------------------------------------------------
def test_chunks_give_the_former_strides_and_directions(recordings):
    chunks = 0
    for rec in recordings:
        for acc, gyr, fs in _chunks(rec):
            est, up, swing = stride_directions(acc, gyr, fs, SETTINGS)
            old, old_up, old_swing = old_stride_directions(acc, gyr, fs, SETTINGS)
            assert (est is None) == (old is None), rec[0]
            if est is None:
                continue
            chunks += 1
            np.testing.assert_array_equal(est.strides_, old.strides_)
            np.testing.assert_array_equal(est.axis_dev_, old.axis_dev_)
            np.testing.assert_array_equal(up, old_up)
            np.testing.assert_array_equal(swing, old_swing)
            assert direction_scatter_deg(up) == old_scatter_deg(up) or np.isnan(old_scatter_deg(up))
            assert direction_scatter_deg(swing) == old_scatter_deg(swing) or np.isnan(old_scatter_deg(swing))
    assert chunks >= 20


def test_detection_on_whole_recordings_is_the_former_one(recordings):
    """The detector on each recording's strides (more than a chunk's, a remount in the simulated)."""
    found = 0
    for _, _, acc, gyr, fs in recordings:
        est, up, swing = stride_directions(acc, gyr, fs, SETTINGS)
        new = RemountDetector(SETTINGS.remount).detect(up, swing)
        _same_detection(new, OldDetector(SETTINGS.remount).detect(up, swing))
        found += len(new.remounts_)
    assert found >= 1


@pytest.mark.parametrize("seed", range(6))
def test_random_directions_with_nan_rows(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 201))
    base = rng.normal(size=3)
    up = _unit(base + rng.normal(scale=0.05, size=(n, 3)))
    swing = _unit(rng.normal(size=3) + rng.normal(scale=0.2, size=(n, 3)))
    swing[n // 2 :] = _unit(rng.normal(size=3) + rng.normal(scale=0.2, size=(n - n // 2, 3)))  # a jump
    up[rng.random(n) < 0.15] = np.nan
    swing[rng.random(n) < 0.25] = np.nan
    swing[: int(rng.integers(0, 12))] = np.nan  # the strides before walking (`moving_only`)
    for d in (up, swing):
        assert direction_scatter_deg(d) == old_scatter_deg(d) or np.isnan(old_scatter_deg(d))
        for w in (3, 10, 21):
            if len(d) >= w:
                starts = np.arange(len(d) - w + 1)
                np.testing.assert_array_equal(
                    _run_median_directions(np.ascontiguousarray(d), starts, starts + w), _window_medians(d, w)
                )
                np.testing.assert_array_equal(_window_median_directions(d, w), _window_medians(d, w))
        np.testing.assert_array_equal(_nanmedian_rows(np.ascontiguousarray(d.T)), _old_swing_median(d.T))
    _same_detection(
        RemountDetector(SETTINGS.remount).detect(up, swing), OldDetector(SETTINGS.remount).detect(up, swing)
    )


@pytest.mark.parametrize("seed", range(4))
def test_swing_axes_of_random_strides(seed):
    rng = np.random.default_rng(100 + seed)
    gyr = rng.normal(scale=150.0, size=(3000, 3))
    # the swing threshold compares each |gyr|: the compiled norms are NumPy's floats
    wide = gyr * 10.0 ** rng.integers(-6, 6, size=gyr.shape)
    np.testing.assert_array_equal(_row_norms(wide), np.linalg.norm(wide, axis=1))
    cuts = np.sort(rng.choice(np.arange(1, 3000), size=40, replace=False))
    strides = np.column_stack((cuts[:-1], cuts[1:]))
    axis = rng.normal(size=3)
    axis[int(rng.integers(3))] = 0.0
    for threshold in (100.0, 250.0, 400.0):  # strides with fewer than 3 swing samples too
        np.testing.assert_array_equal(
            stride_swing_axes(gyr, strides, axis, threshold), old_swing_axes(gyr, strides, axis, threshold)
        )


def _checks(rec, monkeypatch=None):
    """Every state `LiveMountings.check` leaves, the stream pushed in 20-sample packets."""
    name, t, acc, gyr, fs = rec
    lm = LiveMountings("A", "S", "left", fs, SETTINGS)
    warm = int(20.0 * fs)
    try:
        lm.first(acc[:warm], gyr[:warm], float(t[0]))
    except MountingFailed:
        pass
    states = []

    def check():
        found = lm.check()
        states.append(
            (found, lm._up.copy(), lm._swing.copy(), lm._stride_t.copy(), list(lm.remounts_), lm.pieces_)
        )

    for i in range(0, len(t), 20):
        sl = slice(i, i + 20)
        ends, lo = lm.boundaries(len(t[sl])), 0
        for hi in (*ends, len(t[sl])):
            if hi > lo:
                lm.observe(t[sl][lo:hi], acc[sl][lo:hi], gyr[sl][lo:hi])
                if hi in ends:
                    check()
            lo = hi
    check()  # the stream's end
    return states


def test_live_checks_are_the_former_ones(recordings, monkeypatch):
    new = [_checks(rec) for rec in recordings]
    monkeypatch.setattr(live_mountings, "stride_directions", old_stride_directions)
    monkeypatch.setattr(live_mountings, "RemountDetector", OldDetector)
    monkeypatch.setattr(live_mountings, "_nanmedian_rows", _old_swing_median)
    old = [_checks(rec) for rec in recordings]
    remounts = 0
    for rec, a, b in zip(recordings, new, old, strict=True):
        assert len(a) == len(b), rec[0]
        for x, y in zip(a, b, strict=True):
            # (repr: the same digits are the same floats, and NaN fields compare equal)
            assert repr((x[0], x[4], x[5])) == repr((y[0], y[4], y[5])), rec[0]
            for u, v in zip(x[1:4], y[1:4], strict=True):
                np.testing.assert_array_equal(u, v)
        remounts += len(a[-1][4])
    assert remounts >= 1  # the simulated remount was found, in both


@pytest.mark.parametrize("seed", range(4))
def test_the_estimators_replaced_statements_give_numpys_floats(seed):
    """`MountingEstimator.estimate` (batch's too): each statement replaced for speed against the
    NumPy statement it replaced, on random values."""
    from strideflow.hardware.motion_math import angle_arguments, still_gyr_bias, stillness_weights
    from strideflow.hardware.mounting import _angle_deg, _cross
    from strideflow.hardware.mounting import _unit as unit

    rng = np.random.default_rng(200 + seed)
    a, b = rng.normal(size=3) * 10.0 ** rng.integers(-3, 3, 3), rng.normal(size=3)
    np.testing.assert_array_equal(_cross(a, b), np.cross(a, b))
    rows, one = rng.normal(size=(40, 3)) * 9.81, rng.normal(size=3) * 9.81
    sin, cos = angle_arguments(rows, np.broadcast_to(one, rows.shape))
    np.testing.assert_array_equal(np.degrees(np.arctan2(sin, cos)), _angle_deg(unit(rows), unit(one)))
    acc = rng.normal(size=(2000, 3)) + (0.0, 0.0, 9.81)
    gyr = rng.normal(scale=5.0, size=(2000, 3))
    still = rng.random(2000) < 0.4
    weigh = (20.0, 1.0, 9.80665)
    bias = still_gyr_bias(acc[still], gyr[still], np.ones(int(still.sum()), dtype=bool), *weigh)
    np.testing.assert_array_equal(still_gyr_bias(acc, gyr, still, *weigh), bias)
    weight = np.where(still, 1.0, 0.0)
    weight[still] = stillness_weights(acc[still], gyr[still], bias, *weigh)
    np.testing.assert_array_equal(np.where(still, stillness_weights(acc, gyr, bias, *weigh), 0.0), weight)
    assert np.count_nonzero(still) / len(still) == float(still.mean())


def test_compiled_median_is_numpys():
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 4, 7, 8, 9, 20, 21, 200, 201):
        x = rng.gamma(2.0, 3.0, size=n)
        x[rng.random(n) < 0.2] = rng.choice(x)  # ties
        assert _median(x) == np.median(x)
        x[n // 2] = np.nan
        assert np.isnan(_median(x)) and np.isnan(np.median(x))


def test_swing_axes_square_to_the_reference_axis():
    """Axes whose product with `axis_dev` is (near) zero take their sign from their own product."""
    rng = np.random.default_rng(9)
    gyr = np.zeros((600, 3))
    gyr[:200, 0] = rng.normal(scale=300.0, size=200)  # about x only: square to axis_dev
    gyr[200:400] = rng.normal(scale=300.0, size=(200, 3)) * (1.0, 1e-14, 0.0)
    gyr[400:] = rng.normal(scale=300.0, size=(200, 3))
    strides = np.array([[0, 200], [200, 400], [400, 600]])
    for axis in (np.array([0.0, 1.0, 0.0]), np.array([0.0, -0.6, 0.8]), np.array([1e-17, 1.0, 0.0])):
        np.testing.assert_array_equal(
            stride_swing_axes(gyr, strides, axis, 100.0), old_swing_axes(gyr, strides, axis, 100.0)
        )
