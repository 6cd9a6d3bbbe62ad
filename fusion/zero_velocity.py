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

import numpy as np

from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2


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


def shoe_statistic(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    sampling_rate_hz: float,
    settings: ZeroVelocitySettings,
) -> np.ndarray:
    """Windowed SHOE statistic per sample (dimensionless, 1 = one tolerance unit of motion)."""
    acc = np.asarray(acc_mps2, dtype=float)
    gyr = np.asarray(gyr_dps, dtype=float)
    n = acc.shape[0]
    half = max(int(round(settings.window_s * sampling_rate_hz / 2.0)), 1)
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    count = (hi - lo).astype(float)

    def window_sum(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
        return c[hi] - c[lo]

    g = settings.gravity_mps2
    # sum |a_i - g u|^2 with u = sum(a)/|sum(a)| equals sum|a|^2 - 2 g |sum a| + W g^2.
    sum_a = window_sum(acc)
    sum_a2 = window_sum(np.einsum("ij,ij->i", acc, acc))
    acc_dev = np.maximum(sum_a2 - 2.0 * g * np.linalg.norm(sum_a, axis=1) + count * g * g, 0.0)
    gyr2 = window_sum(np.einsum("ij,ij->i", gyr, gyr))
    return (acc_dev / settings.acc_tolerance_mps2**2 + gyr2 / settings.gyr_tolerance_dps**2) / count


def mask_to_periods(mask: np.ndarray) -> np.ndarray:
    """(K, 2) int array of [start, end) sample ranges where a bool mask is true."""
    m = np.asarray(mask, dtype=bool)
    edges = np.diff(np.concatenate([[False], m, [False]]).astype(np.int8))
    return np.column_stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)]).astype(np.int64)


def periods_to_mask(periods: np.ndarray, n: int) -> np.ndarray:
    """Bool mask of length n, true inside the [start, end) ranges."""
    delta = np.zeros(n + 1, dtype=np.int64)
    p = np.asarray(periods, dtype=np.int64).reshape(-1, 2)
    np.add.at(delta, p[:, 0], 1)
    np.add.at(delta, p[:, 1], -1)
    return np.cumsum(delta[:n]) > 0


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
        stat = shoe_statistic(acc, gyr, fs, s)
        still = stat < s.threshold

        periods = mask_to_periods(still)
        if len(periods) > 1:
            gaps = periods[1:, 0] - periods[:-1, 1]
            fill = gaps < s.merge_gap_s * fs
            for start, end in np.column_stack([periods[:-1, 1], periods[1:, 0]])[fill]:
                still[start:end] = True
            periods = mask_to_periods(still)
        keep = (periods[:, 1] - periods[:, 0]) >= max(s.min_duration_s * fs, 1.0)
        still = periods_to_mask(periods[keep], n)

        self.fallback_anchors_ = np.zeros(0, dtype=np.int64)
        if s.fallback_threshold is not None and n > 2:
            short = shoe_statistic(acc, gyr, fs, replace(s, window_s=s.fallback_window_s))
            self.fallback_anchors_ = self._fallback_anchors(short, still, fs)
            half = max(int(round(s.fallback_duration_s * fs / 2.0)), 0)
            for a in self.fallback_anchors_:
                still[max(a - half, 0) : min(a + half + 1, n)] = True

        self.statistic_ = stat
        self.zero_velocity_ = still
        self.periods_ = mask_to_periods(still)
        return self

    def _fallback_anchors(self, stat: np.ndarray, still: np.ndarray, fs: float) -> np.ndarray:
        """Local minima of the statistic below the relaxed threshold, far from any still period."""
        s = self.settings
        n = stat.shape[0]
        sep = max(int(round(s.fallback_separation_s * fs)), 1)
        # Distance (samples) from each sample to the nearest still sample.
        idx = np.arange(n)
        last = np.where(still, idx, -(10**9))
        last = np.maximum.accumulate(last)
        nxt = np.where(still, idx, 10**9)
        nxt = np.minimum.accumulate(nxt[::-1])[::-1]
        dist = np.minimum(idx - last, nxt - idx)
        # Minimum of the statistic over +-sep, by a sliding-window minimum.
        from scipy.ndimage import minimum_filter1d

        local_min = minimum_filter1d(stat, size=2 * sep + 1, mode="nearest")
        cand = (stat == local_min) & (stat < s.fallback_threshold) & (dist > sep)
        anchors = np.flatnonzero(cand)
        if len(anchors) > 1:
            # Plateaus of equal values give neighbours: keep the first of each run.
            anchors = anchors[np.concatenate([[True], np.diff(anchors) > sep])]
        return anchors.astype(np.int64)
