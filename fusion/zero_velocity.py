"""Zero-velocity (foot-flat) detection for a shoe-mounted IMU, walking and running.

The test statistic is the SHOE detector of Skog et al. (2010): over a short centred window,
the mean of |a - g u|^2 / sigma_a^2 + |w|^2 / sigma_g^2, where u is the window's mean
specific-force direction. A sample is still when the statistic is below a threshold.

Running and sprinting have stances whose still part is shorter than the window, so the
threshold alone misses some of them. When `fallback_threshold` is set, every local minimum of
the statistic that is far (in time) from any detected still period and below the relaxed
threshold is added as a short still period: each stance then has one zero-velocity anchor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np

from strideflow.hardware.motion_math import fill_runs, mask_to_periods, periods_to_mask
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2

__all__ = [
    "ZeroVelocityDetector",
    "ZeroVelocitySettings",
    "mask_to_periods",
    "periods_to_mask",
    "shoe_statistic",
]


@dataclass(frozen=True)
class ZeroVelocitySettings:
    """Settings of `ZeroVelocityDetector`; times in s, so any sampling rate works.

    window_s: length of the centred window the statistic is averaged over.
    acc_tolerance_mps2: deviation of |a - g u| that counts as one unit of motion (m/s²).
    gyr_tolerance_dps: angular rate that counts as one unit of motion (deg/s).
    threshold: statistic below this is zero velocity (1 = one tolerance unit of motion).
    min_duration_s: still periods shorter than this are dropped.
    merge_gap_s: motion gaps shorter than this between two still periods are filled.
    fallback_threshold: relaxed threshold for the per-stance fallback (None disables it).
    fallback_window_s: the fallback uses the statistic over this shorter window, which resolves
        the few still samples of a running stance that the main window blurs with motion.
    fallback_separation_s: a fallback anchor must be this far from any still period and is the
        minimum of the statistic within this distance on both sides (about half the shortest stride).
    fallback_duration_s: length of the still period marked around a fallback anchor.
    gravity_mps2: magnitude of gravity.
    """

    window_s: float = 0.04
    acc_tolerance_mps2: float = 1.0
    gyr_tolerance_dps: float = 40.0
    threshold: float = 1.0
    min_duration_s: float = 0.02
    merge_gap_s: float = 0.03
    fallback_threshold: float | None = 3.0
    fallback_window_s: float = 0.015
    fallback_separation_s: float = 0.22
    fallback_duration_s: float = 0.015
    gravity_mps2: float = STANDARD_GRAVITY_MPS2


@numba.njit(cache=True)
def _running_sums(acc, gyr):  # pragma: no cover - compiled
    """(n + 1, 5) running sums from 0 of acc x, y, z, |acc|^2 and |gyr|^2, in sample order."""
    n = acc.shape[0]
    c = np.zeros((n + 1, 5))
    for i in range(n):
        ax, ay, az = acc[i, 0], acc[i, 1], acc[i, 2]
        gx, gy, gz = gyr[i, 0], gyr[i, 1], gyr[i, 2]
        c[i + 1, 0] = c[i, 0] + ax
        c[i + 1, 1] = c[i, 1] + ay
        c[i + 1, 2] = c[i, 2] + az
        # x, z, then y: the order numpy's einsum sums a row in, which the statistic used before;
        # it keeps the results bit-identical to that version.
        c[i + 1, 3] = c[i, 3] + ((ax * ax + az * az) + ay * ay)
        c[i + 1, 4] = c[i, 4] + ((gx * gx + gz * gz) + gy * gy)
    return c


@numba.njit(cache=True)
def _window_statistic(c, half, gravity, acc_tol2, gyr_tol2):  # pragma: no cover - compiled
    """SHOE statistic over the centred window [i - half, i + half] (clipped at the ends) from
    the running sums of `_running_sums`."""
    n = c.shape[0] - 1
    two_g = 2.0 * gravity
    out = np.empty(n)
    for i in range(n):
        lo = max(i - half, 0)
        hi = min(i + half + 1, n)
        count = float(hi - lo)
        sx = c[hi, 0] - c[lo, 0]
        sy = c[hi, 1] - c[lo, 1]
        sz = c[hi, 2] - c[lo, 2]
        norm = np.sqrt(sx * sx + sy * sy + sz * sz)
        dev = c[hi, 3] - c[lo, 3] - two_g * norm + count * gravity * gravity
        if dev < 0.0:
            dev = 0.0
        out[i] = (dev / acc_tol2 + (c[hi, 4] - c[lo, 4]) / gyr_tol2) / count
    return out


def _statistic_from_sums(sums: np.ndarray, sampling_rate_hz: float, settings: ZeroVelocitySettings):
    half = max(int(round(settings.window_s * sampling_rate_hz / 2.0)), 1)
    return _window_statistic(
        sums,
        half,
        float(settings.gravity_mps2),
        float(settings.acc_tolerance_mps2**2),
        float(settings.gyr_tolerance_dps**2),
    )


def shoe_statistic(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    sampling_rate_hz: float,
    settings: ZeroVelocitySettings,
) -> np.ndarray:
    """Windowed SHOE statistic per sample (dimensionless, 1 = one tolerance unit of motion).

    Over the window of W samples, with u = sum(a) / |sum(a)| the mean specific-force direction,
    sum |a_i - g u|^2 = sum |a_i|^2 - 2 g |sum a| + W g^2: running sums give every window.
    """
    acc = np.ascontiguousarray(acc_mps2, dtype=float)
    gyr = np.ascontiguousarray(gyr_dps, dtype=float)
    return _statistic_from_sums(_running_sums(acc, gyr), sampling_rate_hz, settings)


@numba.njit(cache=True)
def _far_local_minima(stat, still, sep, threshold):  # pragma: no cover - compiled
    """Samples below `threshold` more than `sep` samples from any still sample whose value no
    sample within +-sep (clipped at the ends) undercuts."""
    n = stat.shape[0]
    dist = np.empty(n, dtype=np.int64)
    last = -(10**9)
    for i in range(n):
        if still[i]:
            last = i
        dist[i] = i - last
    following = 10**9
    for i in range(n - 1, -1, -1):
        if still[i]:
            following = i
        if following - i < dist[i]:
            dist[i] = following - i
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        x = stat[i]
        if not (x < threshold) or dist[i] <= sep:
            continue
        smallest = True
        for j in range(max(i - sep, 0), min(i + sep + 1, n)):
            if stat[j] < x:
                smallest = False
                break
        out[i] = smallest
    return out


class ZeroVelocityDetector:
    """Detect zero-velocity (foot still on the ground) samples from foot-frame acc and gyr."""

    def __init__(self, settings: ZeroVelocitySettings | None = None) -> None:
        self.settings = settings if settings is not None else ZeroVelocitySettings()

    def detect(self, acc_mps2: np.ndarray, gyr_dps: np.ndarray, sampling_rate_hz: float):
        """Fill `statistic_` (N,), `zero_velocity_` (N,) bool and `periods_` (K, 2) [start, end)."""
        s = self.settings
        acc = np.asarray(acc_mps2, dtype=float)
        gyr = np.asarray(gyr_dps, dtype=float)
        if acc.ndim != 2 or acc.shape[1] != 3 or gyr.shape != acc.shape:
            raise ValueError(f"acc and gyr must both be (N, 3), got {acc.shape} and {gyr.shape}")
        fs = float(sampling_rate_hz)
        n = acc.shape[0]
        sums = _running_sums(np.ascontiguousarray(acc), np.ascontiguousarray(gyr))
        stat = _statistic_from_sums(sums, fs, s)
        still = stat < s.threshold

        periods = mask_to_periods(still)
        if len(periods) > 1:
            gaps = periods[1:, 0] - periods[:-1, 1]
            fill = gaps < s.merge_gap_s * fs
            fill_runs(still, periods[:-1, 1][fill], periods[1:, 0][fill])
            periods = mask_to_periods(still)
        keep = (periods[:, 1] - periods[:, 0]) >= max(s.min_duration_s * fs, 1.0)
        still = periods_to_mask(periods[keep], n)

        self.fallback_anchors_ = np.zeros(0, dtype=np.int64)
        if s.fallback_threshold is not None and n > 2:
            short = _statistic_from_sums(sums, fs, replace(s, window_s=s.fallback_window_s))
            self.fallback_anchors_ = self._fallback_anchors(short, still, fs)
            half = max(int(round(s.fallback_duration_s * fs / 2.0)), 0)
            anchors = self.fallback_anchors_
            fill_runs(still, anchors - half, anchors + half + 1)

        self.statistic_ = stat
        self.zero_velocity_ = still
        self.periods_ = mask_to_periods(still)
        return self

    def _fallback_anchors(self, stat: np.ndarray, still: np.ndarray, fs: float) -> np.ndarray:
        """Local minima of the statistic below the relaxed threshold, far from any still period."""
        s = self.settings
        sep = max(int(round(s.fallback_separation_s * fs)), 1)
        # Far from every still sample, below the threshold, and the minimum within +-sep.
        cand = _far_local_minima(stat, still, sep, float(s.fallback_threshold))
        anchors = np.flatnonzero(cand)
        if len(anchors) > 1:
            # Plateaus of equal values give neighbours: keep the first of each run.
            anchors = anchors[np.concatenate([[True], np.diff(anchors) > sep])]
        return anchors.astype(np.int64)
