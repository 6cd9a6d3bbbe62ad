"""Zero-velocity (foot-flat) detection for a shoe-mounted IMU, walking and running.

The test statistic is the SHOE detector of Skog et al. (2010): over a short centred window,
the mean of |a - g u|^2 / sigma_a^2 + |w|^2 / sigma_g^2, where u is the window's mean
specific-force direction. A sample is still when the statistic is below a threshold.

Running and sprinting have stances whose still part is shorter than the window, so the
threshold alone misses some of them. When `fallback_threshold` is set, every local minimum of
the statistic that is far (in time) from any detected still period and below the relaxed
threshold is added as a short still period: each stance then has one zero-velocity anchor.

Fast running-like strides on real feet (LORD 3DM-GX5 on a shoe, 2.2-3.0 m strides, 8-16 g
impacts) never get that quiet: the foot rolls through a stance of 0.2 s while its sensor still
accelerates at 2-4 m/s², so the short-window statistic stays at 4-14 over the whole stance and
neither threshold fires; two strides then merge into one "too long" one and the integration
runs across a stance. Every stride, however, has one swing, whose mid-swing is the largest
dorsiflexion rate (minimum of the foot-frame gyr_y), and two consecutive mid-swings enclose
exactly one stance (the stride segmentation by the swing-phase gyro peak of Rampp et al. 2015).
So when `swing_gyr_dps` is set, every pair of consecutive mid-swings at most `swing_max_gap_s`
apart with no still sample between them gets an anchor at the minimum of the short-window
statistic between them (provided it is below `swing_max_statistic`, i.e. the foot is on the
ground): the stillness threshold adapts to the gait instead of being fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from strideflow.hardware.motion_math import fill_runs, mask_to_periods, periods_to_mask
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2

__all__ = [
    "StillMask",
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
    swing_gyr_dps: a mid-swing is a minimum of gyr_y (foot frame) below minus this, the smallest
        within `fallback_separation_s` on both sides (None disables the swing-guided anchors).
    swing_max_gap_s: only consecutive mid-swings at most this far apart (one stride) enclose a
        stance that gets a swing-guided anchor. Strides without any still sample are fast (0.7 to
        1.0 s on the real running-like and curving fast strides); the live zero-velocity flags wait this long
        longer (`fusion.live.zero_velocity_margin_samples`).
    swing_max_statistic: the swing-guided anchor (minimum of the short-window statistic between
        two mid-swings) is taken only below this.
    swing_max_rate_fraction: ... and only where the gyro norm is at most this share of the
        slower of the two mid-swings' dorsiflexion rates: a foot on the ground barely turns (real
        running-like stances: 0.08-0.13), while two dorsiflexion peaks of one swing (stair
        descent, some turns: 0.22-0.36 s apart) enclose a foot still turning at 0.7-0.85 of them.
    push_off_gyr_dps: a stance ends in a push-off, gyr_y above this: a fallback anchor with no
        push-off between it and the next mid-swing lies in the early swing and is dropped, and a
        swing-guided anchor is searched before the push-off (both only with `swing_gyr_dps` set);
        and a fallback anchor with no dorsiflexion faster than this between it and the next still
        sample is in that still period's stance (its heel strike) and is dropped.
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
    swing_gyr_dps: float | None = 150.0
    swing_max_gap_s: float = 1.2
    swing_max_statistic: float = 50.0
    push_off_gyr_dps: float = 100.0
    swing_max_rate_fraction: float = 0.3
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


def _statistic_from_sums(
    sums: np.ndarray, sampling_rate_hz: float, settings: ZeroVelocitySettings, window_s: float | None = None
):
    """The statistic over `window_s` (default: the settings' `window_s`)."""
    window_s = settings.window_s if window_s is None else window_s
    half = max(int(round(window_s * sampling_rate_hz / 2.0)), 1)
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
        # outward from i: a smaller neighbour is usually near (the same test as over the window
        # in order, which scanned up to sep samples before reaching one)
        smallest = True
        for d in range(1, sep + 1):
            if (i - d >= 0 and stat[i - d] < x) or (i + d < n and stat[i + d] < x):
                smallest = False
                break
        out[i] = smallest
    return out


@numba.njit(cache=True)
def _mid_swings(gyr_y, sep, level):  # pragma: no cover - compiled
    """Samples where gyr_y is below -level and the smallest within +-sep (the first of a plateau)."""
    n = gyr_y.shape[0]
    out = []
    for i in range(n):
        x = gyr_y[i]
        if not (x < -level):
            continue
        # outward from i (see `_far_local_minima`); an equal value before i also rules i out
        smallest = True
        for d in range(1, sep + 1):
            if (i - d >= 0 and gyr_y[i - d] <= x) or (i + d < n and gyr_y[i + d] < x):
                smallest = False
                break
        if smallest:
            out.append(i)
    res = np.empty(len(out), dtype=np.int64)
    for k in range(len(out)):
        res[k] = out[k]
    return res


@numba.njit(cache=True)
def _pushes_off(anchors, gyr_y, swings, push, max_gap):  # pragma: no cover - compiled
    """Per anchor: does gyr_y exceed `push` (the push-off's plantarflexion) after it, before the
    next mid-swing (at most max_gap samples on)? An anchor in a stance does; one in the early
    swing, where gyr_y crosses zero on its way to the mid-swing, does not. Without a mid-swing
    within max_gap (the data's last stance) nothing says otherwise: kept."""
    out = np.zeros(anchors.shape[0], dtype=np.bool_)
    for k in range(anchors.shape[0]):
        a = anchors[k]
        nxt = np.searchsorted(swings, a, side="right")
        if nxt >= swings.shape[0] or swings[nxt] - a > max_gap:
            out[k] = True
            continue
        for i in range(a, swings[nxt]):
            if gyr_y[i] > push:
                out[k] = True
                break
    return out


@numba.njit(cache=True)
def _swings_before_still(anchors, gyr_y, still, level, max_gap):  # pragma: no cover - compiled
    """Per anchor: does the foot swing (gyr_y below -level, dorsiflexing) between it and the next
    still sample? An anchor of its own stance does; one at the heel strike of a slow step, a
    few tenths of a second before that stance's foot-flat, does not. No still sample within
    max_gap samples after it (the live flags look no further): kept."""
    out = np.zeros(anchors.shape[0], dtype=np.bool_)
    for k in range(anchors.shape[0]):
        i = anchors[k] + 1
        n = min(gyr_y.shape[0], anchors[k] + 1 + max_gap)
        while i < n and not still[i]:
            if gyr_y[i] < -level:
                out[k] = True
                break
            i += 1
        if i >= n:
            out[k] = True
    return out


@numba.njit(cache=True)
def _swing_anchors(
    stat, gyr_y, gyr_norm, still, swings, push, max_gap, max_stat, max_rate_fraction
):  # pragma: no cover - compiled
    """Minimum of `stat` between consecutive mid-swings at most max_gap apart with no still sample
    between them, searched before the stance's push-off (the last sample with gyr_y > push),
    if below max_stat and turning at most max_rate_fraction of the slower mid-swing's rate. After
    the last mid-swing the data's end stands in for the next one (a live window that ends in the
    swing after a stance)."""
    n = stat.shape[0]
    out = []
    for k in range(swings.shape[0]):
        a = swings[k]
        b = swings[k + 1] if k + 1 < swings.shape[0] else n
        if b - a > max_gap:
            continue
        last_push = -1
        for i in range(b - 1, a, -1):
            if gyr_y[i] > push:
                last_push = i
                break
        if last_push < 0:
            continue
        best = -1
        for i in range(a + 1, b):
            if still[i]:
                best = -2
                break
            if i < last_push and (best < 0 or stat[i] < stat[best]):
                best = i
        swing_rate = -gyr_y[a] if b == n else min(-gyr_y[a], -gyr_y[b])
        if best >= 0 and stat[best] < max_stat and gyr_norm[best] <= max_rate_fraction * swing_rate:
            out.append(best)
    res = np.empty(len(out), dtype=np.int64)
    for k in range(len(out)):
        res[k] = out[k]
    return res


@numba.njit(cache=True)
def _merged_still(still, merge_gap, min_len):  # pragma: no cover - compiled
    """The still mask with the gaps between two still periods shorter than `merge_gap` samples
    filled, then only the periods at least `min_len` samples long: in one pass, where the live
    analyzer's detector runs (per 40-sample chunk) had paid a dozen numpy and compiled calls."""
    n = still.shape[0]
    merged = still.copy()
    last_end = -1  # end of the previous still period of `still`
    i = 0
    while i < n:
        if not still[i]:
            i += 1
            continue
        j = i
        while j < n and still[j]:
            j += 1
        if last_end >= 0 and (i - last_end) < merge_gap:
            for k in range(last_end, i):
                merged[k] = True
        last_end = j
        i = j
    out = np.zeros(n, dtype=np.bool_)
    i = 0
    while i < n:
        if not merged[i]:
            i += 1
            continue
        j = i
        while j < n and merged[j]:
            j += 1
        if (j - i) >= min_len:
            for k in range(i, j):
                out[k] = True
        i = j
    return out


@numba.njit(cache=True)
def _row_norms(v):  # pragma: no cover - compiled
    """|v| of each row of v (N, 3): x, z, then y, the order numpy's einsum sums a row in (the
    detector's `np.sqrt(np.einsum("ij,ij->i", gyr, gyr))` before: the same floats)."""
    out = np.empty(v.shape[0])
    for i in range(v.shape[0]):
        x, y, z = v[i, 0], v[i, 1], v[i, 2]
        out[i] = np.sqrt((x * x + z * z) + y * y)
    return out


@numba.njit(cache=True)
def _still_kernel(acc, gyr, p):  # pragma: no cover - compiled
    """`ZeroVelocityDetector.detect`'s mask in one compiled call: the same kernels in the same
    order on the same values; `p`, the settings as `StillMask` derives them."""
    n = acc.shape[0]
    sums = _running_sums(acc, gyr)
    stat = _window_statistic(sums, int(p[0]), p[2], p[3], p[4])
    still = _merged_still(stat < p[5], p[6], p[7])
    fallback, guided = p[8] != 0.0, p[10] != 0.0
    if n <= 2 or not (fallback or guided):
        return still
    short = _window_statistic(sums, int(p[1]), p[2], p[3], p[4])
    gyr_y = gyr[:, 1]
    sep, gap, half_mark, push = int(p[12]), int(p[13]), int(p[14]), p[15]
    swings = _mid_swings(gyr_y, sep, p[11]) if guided else np.zeros(0, np.int64)
    if fallback:
        found = np.flatnonzero(_far_local_minima(short, still, sep, p[9]))
        # plateaus of equal values give neighbours: the first of each run (`_fallback_anchors`)
        keep = np.ones(found.shape[0], dtype=np.bool_)
        for k in range(1, found.shape[0]):
            keep[k] = found[k] - found[k - 1] > sep
        anchors = found[keep]
        if guided:
            anchors = anchors[_pushes_off(anchors, gyr_y, swings, push, gap)]
            anchors = anchors[_swings_before_still(anchors, gyr_y, still, push, gap)]
        fill_runs(still, anchors - half_mark, anchors + half_mark + 1)
    if guided:
        found = _swing_anchors(short, gyr_y, _row_norms(gyr), still, swings, push, gap, p[16], p[17])
        fill_runs(still, found - half_mark, found + half_mark + 1)
    return still


class StillMask:
    """`ZeroVelocityDetector(settings).detect(acc, gyr, rate).zero_velocity_`, bit for bit, in one
    compiled call (`mask`): the live zero-velocity stream runs it per 40-sample chunk on ~750
    samples, where the detector's few dozen NumPy and compiled calls cost twice the computation.

    Parameters
    ----------
    settings
        `ZeroVelocitySettings`.
    sampling_rate_hz
        Rate of the samples (Hz).
    """

    def __init__(self, settings: ZeroVelocitySettings, sampling_rate_hz: float) -> None:
        s, fs = settings, float(sampling_rate_hz)
        guided = s.swing_gyr_dps is not None
        fallback = s.fallback_threshold is not None
        # the arguments `detect` gives its kernels, derived as it derives them
        self._p = np.array(
            [
                max(int(round(s.window_s * fs / 2.0)), 1),
                max(int(round(s.fallback_window_s * fs / 2.0)), 1),
                s.gravity_mps2,
                s.acc_tolerance_mps2**2,
                s.gyr_tolerance_dps**2,
                s.threshold,
                s.merge_gap_s * fs,
                max(s.min_duration_s * fs, 1.0),
                fallback,
                s.fallback_threshold if fallback else 0.0,
                guided,
                s.swing_gyr_dps if guided else 0.0,
                max(int(round(s.fallback_separation_s * fs)), 1),
                int(round(s.swing_max_gap_s * fs)),
                max(int(round(s.fallback_duration_s * fs / 2.0)), 0),
                s.push_off_gyr_dps,
                s.swing_max_statistic,
                s.swing_max_rate_fraction,
            ],
            dtype=float,
        )

    def mask(self, acc_mps2: np.ndarray, gyr_dps: np.ndarray) -> np.ndarray:
        """Still mask (N,) of (N, 3) float acc (m/s²) and gyr (deg/s) in the foot frame."""
        return _still_kernel(acc_mps2, gyr_dps, self._p)


class ZeroVelocityDetector:
    """Detect zero-velocity (foot still on the ground) samples from foot-frame acc and gyr.

    Parameters
    ----------
    settings
        `ZeroVelocitySettings` (window and durations in s, tolerances in m/s² and deg/s, thresholds
        in tolerance units).

    Attributes
    ----------
    statistic_ : np.ndarray
        (N,) SHOE statistic (dimensionless, in tolerance units).
    zero_velocity_ : np.ndarray
        (N,) bool, the foot is still.
    periods_ : np.ndarray
        (K, 2) sample indices [start, end) of the still periods.
    fallback_anchors_, swing_anchors_ : np.ndarray
        Sample indices of the still periods added by the fallback and by the swing-guided rule.

    Notes
    -----
    The statistic is the SHOE detector of Skog, Händel, Nilsson & Rantakokko (2010, IEEE Trans.
    Biomed. Eng., "Zero-velocity detection: an algorithm evaluation"). The swing-guided anchors use
    the mid-swing gyro peak that the stride segmentation of Rampp et al. (2015, IEEE Trans. Biomed.
    Eng.) rests on; the merge, minimum-duration, fallback and swing-guided rules are strideflow's
    own heuristics (module docstring).
    """

    def __init__(self, settings: ZeroVelocitySettings | None = None) -> None:
        self.settings = settings if settings is not None else ZeroVelocitySettings()

    def detect(self, acc_mps2: np.ndarray, gyr_dps: np.ndarray, sampling_rate_hz: float):
        """Detect from (N, 3) acc (m/s²) and gyr (deg/s) in the foot frame; fills the attributes."""
        s = self.settings
        acc = np.asarray(acc_mps2, dtype=float)
        gyr = np.asarray(gyr_dps, dtype=float)
        if acc.ndim != 2 or acc.shape[1] != 3 or gyr.shape != acc.shape:
            raise ValueError(f"acc and gyr must both be (N, 3), got {acc.shape} and {gyr.shape}")
        fs = float(sampling_rate_hz)
        n = acc.shape[0]
        sums = _running_sums(np.ascontiguousarray(acc), np.ascontiguousarray(gyr))
        stat = _statistic_from_sums(sums, fs, s)
        still = _merged_still(stat < s.threshold, s.merge_gap_s * fs, max(s.min_duration_s * fs, 1.0))

        self.fallback_anchors_ = np.zeros(0, dtype=np.int64)
        self.swing_anchors_ = np.zeros(0, dtype=np.int64)
        guided = s.swing_gyr_dps is not None
        if (s.fallback_threshold is not None or guided) and n > 2:
            short = _statistic_from_sums(sums, fs, s, s.fallback_window_s)
        half = max(int(round(s.fallback_duration_s * fs / 2.0)), 0)
        gyr_y = np.ascontiguousarray(gyr[:, 1])
        sep = max(int(round(s.fallback_separation_s * fs)), 1)
        gap = int(round(s.swing_max_gap_s * fs))
        swings = _mid_swings(gyr_y, sep, float(s.swing_gyr_dps)) if guided else np.zeros(0, np.int64)
        if s.fallback_threshold is not None and n > 2:
            anchors = self._fallback_anchors(short, still, fs)
            if guided:
                # The early swing, where gyr_y crosses zero and the specific force is briefly
                # near gravity, can look still: an anchor there (no push-off after it) is dropped.
                anchors = anchors[_pushes_off(anchors, gyr_y, swings, float(s.push_off_gyr_dps), gap)]
                # The heel strike of a slow first step from standing (dorsiflexion below the
                # mid-swing level) turns through zero and can look still: an anchor there has no
                # swing before the still period that follows, it is in that stance.
                anchors = anchors[_swings_before_still(anchors, gyr_y, still, float(s.push_off_gyr_dps), gap)]
            self.fallback_anchors_ = anchors
            fill_runs(still, anchors - half, anchors + half + 1)
        if guided and n > 2:
            # After the threshold and the fallback: only stances they both missed get one.
            self.swing_anchors_ = _swing_anchors(
                short,
                gyr_y,
                _row_norms(gyr),
                still,
                swings,
                float(s.push_off_gyr_dps),
                gap,
                float(s.swing_max_statistic),
                float(s.swing_max_rate_fraction),
            )
            fill_runs(still, self.swing_anchors_ - half, self.swing_anchors_ + half + 1)

        self.statistic_ = stat
        self.zero_velocity_ = still
        return self

    @property
    def periods_(self) -> np.ndarray:
        """(K, 2) sample indices [start, end) of the still periods (from `zero_velocity_`)."""
        return mask_to_periods(self.zero_velocity_)

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
