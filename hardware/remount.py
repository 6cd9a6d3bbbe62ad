"""Remount detection: has the pod moved on the shoe, within a recording or since the last session?

A mounting (device -> foot rotation) is kept per athlete, device and foot across sessions
(docs/frames.md, "One mounting per shoe"), so a remount must be noticed. Two device-frame
directions move with the pod but not with the gait:

- the foot-flat up direction (gravity at each foot-flat, `MountingEstimator.stride_up_dev_`):
  it moves with any tilt of the pod on the shoe;
- the dominant swing rotation axis of each stride (the leg's flexion axis): it moves with any
  turn of the pod, including a turn about the vertical, which gravity cannot see.

The walking direction would see a turn too, but on the real footprint walks its per-stride
direction jumps by 25-130 deg between windows of 8 strides (short strides at turns and starts),
while the swing axis moves by at most 10 deg: only the swing axis is used.

Tolerance (what counts as a jump), derived from the data's own scatter: the per-stride scatter
σ of a direction is 1.4826 x the median angle between each stride's direction and the median
of the strides around it (`direction_scatter_deg`; a median of local deviations, so a single
jump does not inflate it). Within a recording the medians of `window_strides` strides
before and after a candidate stride are compared; their difference has a standard error of about
1.25 σ sqrt(2 / w) (1.25: the efficiency of a median), and a jump counts beyond `sigmas` (4) of
it. Between sessions the two mountings' per-stride scatters are combined, σ = sqrt(σ_a² + σ_b²),
without dividing by the stride counts: the foot-flat attitude and swing axis of one mount move
between sessions with gait speed, by 3-15 deg (gravity) and 4-20 deg (swing axis) on the real
footprint walks 31-36 (one pod, one mount, walks of different speeds), about 1-3 per-stride
scatters (2.9 deg and 6.7-9.6 deg there); 4 sigma keeps every pair of those walks one mounting
while the remount between walks 36 and 42 (72 deg up, 124 deg swing axis) is found. Both rules
have floors: `min_jump_deg` (5 deg) for the foot-flat up direction, which on the real walks moves
by up to 5 deg within a recording with walking speed and slope, and `min_swing_jump_deg` (30 deg)
for the swing axis, which moves with the gait: by up to 10 deg within the real recordings and
5-18 deg between walking and running bouts on the simulator. Smaller jumps cannot be told from
a change of gait.

A remount within the first or last `window_strides` strides of a recording is not found within
it (the next session's comparison finds it). A pod that is turned only about the vertical by
less than about 4 σ of the swing axis (20-40 deg on the real walks), and never below 15 deg, is
not told apart from a change of the leg's swing; such a turn changes the heading of the shoe axis
only when that heading comes from the walking direction (`hardware.shoe_axis`, "walking").
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from strideflow.hardware.motion_math import angles_deg

__all__ = ["RemountDetector", "RemountSettings", "direction_scatter_deg", "stride_swing_axes", "jump_deg"]


@dataclass(frozen=True)
class RemountSettings:
    """Settings of remount detection (module docstring gives the reasoning).

    window_strides: strides on either side of a candidate jump within a recording.
    sigmas: a jump counts beyond this many standard errors (within) or scatters (between sessions).
    min_jump_deg: no jump of the foot-flat up direction below this counts, deg.
    min_swing_jump_deg: no jump of the swing axis below this counts, deg: the swing axis moves
        with the gait itself, by 5-12 deg between the walking and running bouts of one simulated
        recording (8 athletes, mixed activity), where 5 deg declared false remounts in 5 of 8, and
        by up to 17.9 deg in `bench batch --quick`'s 15-minute mixed sessions, where 15 deg
        declared 13-22 false remounts per recording in 2 of 4 athletes; 30 deg leaves a margin.
    swing_gyr_dps: samples of a stride with |gyr| above this define its swing axis (as
        `MountingSettings.swing_gyr_dps`).
    """

    window_strides: int = 10
    sigmas: float = 4.0
    min_jump_deg: float = 5.0
    min_swing_jump_deg: float = 30.0
    swing_gyr_dps: float = 100.0

    def __post_init__(self) -> None:
        if self.window_strides < 3:
            raise ValueError(f"window_strides must be >= 3, got {self.window_strides}")
        if not (self.sigmas > 0 and self.min_jump_deg >= 0):
            raise ValueError("sigmas must be > 0 and min_jump_deg >= 0")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def jump_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two device-frame directions, deg."""
    return float(_jumps_deg(np.asarray(a, float), np.asarray(b, float)))


def _jumps_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`jump_deg` of each pair of (n, 3) rows, deg (NaN where a row is NaN)."""
    with np.errstate(invalid="ignore"):
        return _angle_deg(_unit(a), _unit(b))


def stride_swing_axes(gyr_dps: np.ndarray, strides: np.ndarray, axis_dev: np.ndarray, swing_gyr_dps: float):
    """(n, 3) unit dominant rotation axis of each stride's swing samples (|gyr| >= swing_gyr_dps),
    signed like `axis_dev`; NaN rows for strides with fewer than 3 such samples."""
    out = np.full((len(strides), 3), np.nan)
    norm = _row_norms(np.ascontiguousarray(gyr_dps, dtype=float))
    rows, scatter = [], []
    for k, (a, b) in enumerate(np.asarray(strides).tolist()):
        g = gyr_dps[a:b][norm[a:b] >= swing_gyr_dps]
        if len(g) >= 3:
            rows.append(k)
            scatter.append(g.T @ g)
    if rows:
        # one eigh of the stack: LAPACK runs on each 3x3 matrix as a call of its own would, in a
        # fraction of the Python overhead of one call per stride
        axes = np.linalg.eigh(np.stack(scatter))[1][:, :, -1]
        # each axis's sign from one product for all strides; where a product is too near zero for
        # its rounding to be sure of the sign (any order of the three terms errs by < 1e-15 of
        # sum |axis_dev|), from the stride's own product as before
        dots = axes @ axis_dev
        for i in np.flatnonzero(np.abs(dots) <= 1e-9 * float(np.abs(axis_dev).sum())):
            dots[i] = axes[i] @ axis_dev
        out[rows] = np.where((dots >= 0)[:, None], axes, -axes)
    return out


@numba.njit(cache=True)
def _row_norms(x):  # pragma: no cover - compiled
    """`np.linalg.norm(x, axis=1)` of (n, 3) `x`, its floats: each row's squares summed (x + y) + z."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = np.sqrt((x[i, 0] * x[i, 0] + x[i, 1] * x[i, 1]) + x[i, 2] * x[i, 2])
    return out


def direction_scatter_deg(directions: np.ndarray, window: int = 10) -> float:
    """Per-stride scatter of (n, 3) unit directions (NaN rows ignored), deg: 1.4826 x the median
    angle between each direction and the median of the `window` strides on either side of it
    (local, so that a jump or a slow drift does not inflate it; 1.4826 x median, the robust SD
    of a normal scatter, errs large for these 2-D angles); NaN with fewer than 3 directions."""
    d = np.ascontiguousarray(directions[np.isfinite(directions[:, 0])], dtype=float)
    n = len(d)
    if n < 3:
        return float("nan")
    # each stride's window: the strides of `d[max(0, k - window) : k + window + 1]`
    k = np.arange(n)
    medians = _run_median_directions(d, np.maximum(k - window, 0), np.minimum(k + window + 1, n))
    dev = angles_deg(d, medians)
    return float(1.4826 * _median(dev))


def _median_direction(d: np.ndarray) -> np.ndarray:
    return _unit(np.nanmedian(d, axis=0))


def _window_median_directions(d: np.ndarray, w: int) -> np.ndarray:
    """`_median_direction` of every run of `w` consecutive rows of (n, 3) `d`: (n - w + 1, 3); NaN
    rows where a run has no finite row."""
    # `_unit(np.nanmedian(sliding_window_view(d, w, axis=0), axis=-1))` in one compiled pass: on
    # these short runs NumPy takes its masked-array median, ~0.4 ms per call (the live remount
    # watch runs a detection per 20 s chunk and stream)
    starts = np.arange(max(len(d) - w + 1, 0))
    return _run_median_directions(np.ascontiguousarray(d, dtype=float), starts, starts + w)


# The remount watch runs the scatter and the window contrasts on up to 200 strides per 20 s chunk
# and stream: NumPy's fixed cost per call on these few hundred values was most of a detection.
# These kernels do the same arithmetic in the same order (no fastmath, so no fused or reordered
# operations): a row's norm summed (x + y) + z as NumPy's reduction over a last axis of 3 does,
# each median as `_nanmedian_of`; the angles are `motion_math.angles_deg`'s.


@numba.njit(cache=True, error_model="numpy")
def _run_median_directions(d, starts, stops):  # pragma: no cover - compiled
    """`_median_direction` of each run `d[starts[i]:stops[i]]` of (n, 3) `d`, its floats: the
    per-column median of the run's finite values (its rows in order, as `_nanmedian_rows`), divided
    by the median's norm; NaN where a run has no finite value."""
    m = starts.shape[0]
    out = np.empty((m, 3))
    rest = np.empty(max(d.shape[0], 1))
    for r in range(m):
        for col in range(3):
            out[r, col] = _nanmedian_of(d[starts[r] : stops[r], col], rest)
        x, y, z = out[r, 0], out[r, 1], out[r, 2]
        norm = np.sqrt((x * x + y * y) + z * z)
        out[r, 0], out[r, 1], out[r, 2] = x / norm, y / norm, z / norm
    return out


@numba.njit(cache=True)
def _median(x):  # pragma: no cover - compiled
    """`np.median` of 1-D `x`, its float: NaN if any value is; the middle value of the sorted
    values, or the two middle ones summed and halved (as NumPy's mean of the two)."""
    for v in x:
        if np.isnan(v):
            return np.nan
    s = np.sort(x)
    h = x.shape[0] // 2
    return s[h] if x.shape[0] % 2 == 1 else (s[h - 1] + s[h]) / 2.0


@numba.njit(cache=True)
def _nanmedian_of(values, rest):  # pragma: no cover - compiled
    """`np.nanmedian` of 1-D `values`, the same float: NaN ignored, the middle value or the mean of
    the two middle ones of the sorted rest, as the masked median NumPy uses for short rows computes
    it (+0.0 plus the two, halved: a zero median comes out +0.0 as there); NaN where no other value.
    `rest`: scratch of at least len(values) floats."""
    c = 0
    for v in values:
        if np.isnan(v):
            continue
        i = c  # insertion into the sorted rest[:c]
        while i > 0 and rest[i - 1] > v:
            rest[i] = rest[i - 1]
            i -= 1
        rest[i] = v
        c += 1
    if c == 0:
        return np.nan
    high = c // 2
    low = high if c % 2 == 1 else high - 1
    return ((0.0 + rest[low]) + rest[high]) / 2.0


@numba.njit(cache=True)
def _nanmedian_rows(x):  # pragma: no cover - compiled
    """`np.nanmedian(x, axis=1)` of (m, k) x, the same floats (`_nanmedian_of` per row)."""
    m, k = x.shape
    out = np.empty(m)
    rest = np.empty(max(k, 1))
    for r in range(m):
        out[r] = _nanmedian_of(x[r], rest)
    return out


class RemountDetector:
    """Find the strides at which the pod moved on the shoe within one recording.

    Parameters
    ----------
    settings
        `RemountSettings` (window in strides, jump floors in deg, swing rate in deg/s).

    Attributes
    ----------
    remounts_ : list[int]
        Index of the first stride of each new mounting, ascending.
    jumps_ : list[tuple[float, float]]
        Per remount: (foot-flat up jump, swing-axis jump), deg.
    tolerance_deg_ : tuple[float, float]
        (foot-flat up, swing axis) tolerance, deg.
    contrast_deg_ : np.ndarray
        (n, 2) at stride k the jump (deg) between the windows before and after it; NaN where a
        window is short.

    Notes
    -----
    strideflow's own heuristic: a change point of two device-frame directions, tested against
    their per-stride scatter (module docstring).
    """

    def __init__(self, settings: RemountSettings | None = None) -> None:
        self.settings = settings if settings is not None else RemountSettings()

    def tolerance_deg(self, scatter_deg: float, within: bool, swing: bool = False) -> float:
        """The jump (deg) beyond which a direction with this per-stride scatter has moved (the
        swing axis's floor when `swing`)."""
        s = self.settings
        if not np.isfinite(scatter_deg):
            return float("inf")
        spread = 1.25 * scatter_deg * np.sqrt(2.0 / s.window_strides) if within else scatter_deg
        return float(max(s.min_swing_jump_deg if swing else s.min_jump_deg, s.sigmas * spread))

    @staticmethod
    def _sharpest(d: np.ndarray, k: int, w: int) -> int:
        """The stride near k (within w // 2) that splits `d` into two best-fitting runs of w."""
        best, best_cost = k, np.inf
        for j in range(max(w, k - w // 2), min(len(d) - w, k + w // 2) + 1):
            cost = 0.0
            for part in (d[j - w : j], d[j : j + w]):
                part = part[np.isfinite(part[:, 0])]
                if len(part):
                    cost += float(np.sum(_angle_deg(part, _median_direction(part))))
            if cost < best_cost:
                best, best_cost = j, cost
        return best

    def detect(self, up_dev: np.ndarray, swing_dev: np.ndarray) -> RemountDetector:
        """Detect from each stride's foot-flat up and swing axis ((n, 3) unit, device frame, NaN
        rows allowed), in stride order.
        """
        s = self.settings
        up = np.asarray(up_dev, float)
        swing = np.asarray(swing_dev, float)
        n, w = len(up), s.window_strides
        tol = np.array(
            [
                self.tolerance_deg(direction_scatter_deg(up), True),
                self.tolerance_deg(direction_scatter_deg(swing), True, swing=True),
            ]
        )
        contrast = np.full((n, 2), np.nan)
        if n >= 2 * w:
            # stride k compares the run of w strides before it with the run of w from it on
            k = np.arange(w, n - w + 1)
            for c, d in enumerate((up, swing)):
                med = _window_median_directions(d, w)
                # finite rows per run of w (exact integers, without a sliding window's fixed cost)
                seen = np.concatenate(([0], np.cumsum(np.isfinite(d[:, 0]))))
                finite = seen[w:] - seen[:-w]
                ok = (finite[k - w] >= 3) & (finite[k] >= 3)
                contrast[k[ok], c] = angles_deg(med[k[ok] - w], med[k[ok]])
        excess = (
            np.nanmax(np.where(np.isfinite(contrast), contrast / tol, -np.inf), axis=1) if n else np.zeros(0)
        )
        remounts: list[int] = []
        free = np.ones(n, dtype=bool)
        while n and np.any(free & (excess > 1.0)):
            k = int(np.argmax(np.where(free, excess, -np.inf)))
            # the window medians make the contrast flat-topped over a few strides around the jump:
            # the jump is where the strides on either side scatter least about their own medians
            channel = (up, swing)[int(np.nanargmax(contrast[k] / tol))]
            k, peak = self._sharpest(channel, k, w), k
            if not excess[k] > 1.0:
                # Placed where the strides on either side do not differ beyond the tolerance: the
                # jump lies among the last strides, past where a full window after it can start
                # (a live chunk that ends a few strides after it); found later, not here.
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
