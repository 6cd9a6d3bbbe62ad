"""Velocity and position of the foot by integration with zero-velocity updates (ZUPT).

Method (linear de-drift, chosen over an error-state Kalman filter for being exact on its own
assumptions and cheap): the specific force is rotated into the world frame, gravity removed
and integrated (trapezoid) to velocity. Velocity is imposed on every zero-velocity sample (by default
the pod's w x r about the foot's contact: zero on a still foot, a few cm/s on a foot rolling through
its stance; `ZuptSettings.anchor_lever_m`); over each motion gap between two zero-velocity samples
the velocity error that accumulated by the end of the gap is removed as a ramp linear in time, which
cancels any constant acceleration error (bias, gravity or tilt error) over the gap exactly.
Position is the trapezoid integral of the de-drifted velocity. Before the first and after the
last zero-velocity sample there is nothing to correct against: velocity there is integrated
from the nearest zero-velocity sample without de-drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import scipy.linalg

from strideflow.hardware.motion_math import (
    RAD_PER_DEG,
    mask_to_periods,
    qmul,
    rotate_all,
    rotate_vector,
    still_gyr_bias,
    stillness_weight,
    strapdown,
)
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2

# Where the pod sits relative to the foot's contact with the ground, foot frame (x forward, z up), m:
# 4.5 cm above the sole, the middle of the 3-6 cm the simulator draws for a pod on the shoe upper
# (`hardware.simulator.params`). Only the height reaches the horizontal velocity and the levelling of
# a foot pitching on the ground (w x r with w along y); x and y are left at 0 because the contact
# moves along the sole from heel to ball during a stance.
POD_LEVER_M: tuple[float, float, float] = (0.0, 0.0, 0.045)


@dataclass(frozen=True)
class ZuptSettings:
    """Settings of `ZuptIntegrator`.

    gravity_mps2: gravity removed from the world-frame specific force (m/s²).
    estimate_gravity: use the mean world vertical specific force over the zero-velocity samples
        instead (absorbs accelerometer scale error; the de-drift removes the rest anyway).
    core_threshold: when the gyroscope is given, the anchor velocity is imposed only on the core
        of each zero-velocity period: its samples whose SHOE statistic over `core_window_s`
        (tolerances of `ZeroVelocitySettings`) is below this, or its quietest sample if none is.
        None (default): on every zero-velocity sample. The core (0.25) was the default while the
        anchors had velocity 0: the detected period's first and last tens of ms the foot already
        rolls, and 0 imposed there cut 2-3 cm from every real stride. With `anchor_lever_m` those
        samples get the rolling foot's w x r instead, and the whole period gave the real
        footprint walks a smaller error than its core (benchmarks/README.md, real data, round
        five); without a lever, set 0.25.
    core_window_s: window of that statistic, s.
    anchor_lever_m: where the sensor sits relative to the foot's contact point while it stands
        (x, y, z in the frame of acc and gyr, m), e.g. (0, 0, h) for a sensor h above the sole.
        With it (and the gyroscope) the velocity at each zero-velocity core sample is the
        rotation's w x r (world frame) instead of 0: a running stance rolls through its anchor
        (no sample is still), and zero imposed there shortens the stride by about that speed
        times the stride time; a still foot-flat (w = 0) keeps 0. Default `POD_LEVER_M`, the same
        lever as `LevellingSettings.lever_m` (the two belong together: the levelling takes the
        sensor's acceleration about the contact out of gravity, this its velocity out of the
        anchor; benchmarks/README.md, real data, round five; the analysis passes this one value to
        both, `analytics.segment.levelling_settings`). None: 0 on every anchor.
    tilt_fit_sd_mps: when set, the horizontal tilt error of the given orientation is fitted before
        the de-drift (`fit_stance_tilt`): modelled as linear in time between the middles of
        consecutive zero-velocity periods, chosen so the velocity equals the anchor velocity over
        every zero-velocity sample, not only where the levelling read gravity. This is the SD (m/s)
        allowed to each step of that velocity between consecutive zero-velocity samples (default
        0.05, with the levelling's prior and `tilt_fit_span` 1); None: off.
        The live analysis takes it only with `tilt_fit_span=1` (the whole-segment fit spans every
        stance; a window holds a few). History (benchmarks/README.md, real data): with a fixed
        prior it lowered the fast footprint walks' median stride-length error (34 / 35 / 43 / 44:
        1.6 / 2.4 / 2.2 / 1.8 -> 0.9-1.0 / 1.7-2.2 / 1.5-1.6 / 1.1-1.2 cm) but raised the
        simulator's stride-length MAPE (0.26 -> 0.37-0.40 %, round six); with the levelling's
        prior the simulator stays as it was (round seven); the local form (span 1) at 0.05 m/s
        keeps every footprint walk within the issue-17 targets (fast 0.9-1.5 cm, round eight).
    tilt_fit_prior_deg: SD (deg) of the tilt error at each period before the fit (ridge prior), or
        "levelling": the SD the levelling measured for its own gravity readings
        (`LevelledStrapdown.anchor_tilt_sd_deg_`, passed to `ZuptIntegrator.estimate`), at least
        `tilt_fit_min_prior_deg`. A recording whose anchors read gravity well (the simulator's
        default walking and running: 0.01-0.14 deg) is then left about as the levelling made it,
        while one whose rolling anchors read it 1-2 deg wrong (the real fast footprint walks) is
        refitted (benchmarks/README.md, real data, round seven). Without that SD (a Madgwick
        orientation, a caller that passes none) the "levelling" prior fits nothing.
    tilt_fit_min_prior_deg: lower bound of the "levelling" prior, deg.
    tilt_fit_span: an integer m (default 1): each period's tilt is fitted from the periods within
        m of it and the motion between them only (`fit_stance_tilt`'s `span`), so that a live
        window holding those periods gives the same tilt (benchmarks/README.md, real data, round
        eight); None: the fit solves every period of the segment at once (batch only).
    """

    gravity_mps2: float = STANDARD_GRAVITY_MPS2
    estimate_gravity: bool = False
    core_threshold: float | None = None
    core_window_s: float = 0.015
    anchor_lever_m: tuple[float, float, float] | None = POD_LEVER_M
    tilt_fit_sd_mps: float | None = 0.05
    tilt_fit_prior_deg: float | Literal["levelling"] = "levelling"
    tilt_fit_min_prior_deg: float = 0.05
    tilt_fit_span: int | None = 1


class ZuptIntegrator:
    """World-frame velocity and position of the foot, drift removed between zero-velocity periods.

    Parameters
    ----------
    settings
        `ZuptSettings` (gravity in m/s², lever arm in m, core threshold in tolerance units).

    Attributes
    ----------
    acc_world_mps2_, velocity_mps_, position_m_ : np.ndarray
        (N, 3) world frame (z up): specific force (m/s²), de-drifted velocity (m/s), position (m).
    zero_velocity_core_ : np.ndarray
        (N,) bool, the samples whose velocity was set to zero.

    Notes
    -----
    Zero-velocity updates for foot-mounted inertial sensors (Foxlin 2005, IEEE Computer Graphics
    and Applications, "Pedestrian tracking with shoe-mounted inertial sensors"); the drift is removed
    as a ramp linear in time over each gap between still periods, the de-drift used in foot-worn
    gait analysis such as Mariani et al. (2010, J. Biomech.). Taking it instead of an error-state
    Kalman filter, and the still-period core, are strideflow's choices (module docstring).
    """

    def __init__(self, settings: ZuptSettings | None = None) -> None:
        self.settings = settings if settings is not None else ZuptSettings()

    def estimate(
        self,
        acc_mps2: np.ndarray,
        q_wxyz: np.ndarray,
        zero_velocity: np.ndarray,
        sampling_rate_hz: float,
        t_s: np.ndarray | None = None,
        gyr_dps: np.ndarray | None = None,
        anchor_tilt_sd_deg: float | None = None,
    ):
        """Integrate (N, 3) acc (m/s², sensor frame) with (N, 4) orientation (w x y z) and (N,) zero velocity.

        `t_s` (s) overrides the uniform time axis given by `sampling_rate_hz`. With `gyr_dps`
        ((N, 3), deg/s, same frame as acc) only the core of each zero-velocity period is used
        (`ZuptSettings.core_threshold`). `anchor_tilt_sd_deg`: the levelling's
        `anchor_tilt_sd_deg_` (deg), the prior of `tilt_fit_prior_deg="levelling"` (None: no fit).
        """
        acc = np.asarray(acc_mps2, dtype=float)
        q = np.asarray(q_wxyz, dtype=float)
        zv = np.asarray(zero_velocity, dtype=bool)
        n = acc.shape[0]
        if acc.shape != (n, 3) or q.shape != (n, 4) or zv.shape != (n,):
            raise ValueError(
                f"need acc (N,3), q (N,4), zero_velocity (N,); got {acc.shape} {q.shape} {zv.shape}"
            )
        if gyr_dps is not None and self.settings.core_threshold is not None and n:
            gyr = np.asarray(gyr_dps, dtype=float)
            if gyr.shape != (n, 3):
                raise ValueError(f"gyr_dps must be (N, 3) with N = {n}, got {gyr.shape}")
            zv = zero_velocity_core(acc, gyr, zv, float(sampling_rate_hz), self.settings)
        self.zero_velocity_core_ = zv
        t = np.arange(n) / float(sampling_rate_hz) if t_s is None else np.asarray(t_s, dtype=float)
        a_world = rotate_all(np.ascontiguousarray(q), np.ascontiguousarray(acc)) if n else np.zeros((0, 3))
        g = self.settings.gravity_mps2
        if self.settings.estimate_gravity and zv.any():
            g = float(a_world[zv, 2].mean())
        anchor_v = np.zeros((n, 3))
        lever = self.settings.anchor_lever_m
        if lever is not None and gyr_dps is not None and n and zv.any():
            _anchor_velocity(
                np.ascontiguousarray(gyr_dps, dtype=float),
                np.ascontiguousarray(q),
                np.ascontiguousarray(zv),
                np.asarray(lever, dtype=float),
                anchor_v,
            )
        t = np.ascontiguousarray(t, dtype=float)
        self.tilt_fit_rad_ = np.zeros((0, 2))
        prior_deg = self._tilt_prior_deg(anchor_tilt_sd_deg)
        if self.settings.tilt_fit_sd_mps is not None and prior_deg is not None and n:
            tilt = fit_stance_tilt(
                a_world,
                zv,
                t,
                g,
                anchor_v,
                self.settings.tilt_fit_sd_mps,
                np.radians(prior_deg),
                self.settings.tilt_fit_span,
            )
            if tilt is not None:
                self.tilt_fit_rad_, d = tilt
                a_world = _rotated_by(np.ascontiguousarray(d), a_world)
        a_world, velocity, position = _zupt_integrate(
            a_world, np.ascontiguousarray(zv), t, float(g), anchor_v
        )
        self.gravity_mps2_ = g
        self.acc_world_mps2_ = a_world
        self.velocity_mps_ = velocity
        self.position_m_ = position
        return self

    def _tilt_prior_deg(self, anchor_tilt_sd_deg: float | None) -> float | None:
        """The fit's prior (deg); None: no fit (the "levelling" prior without the levelling's SD)."""
        prior = self.settings.tilt_fit_prior_deg
        if prior != "levelling":
            return float(prior)
        if anchor_tilt_sd_deg is None:
            return None
        return max(float(anchor_tilt_sd_deg), self.settings.tilt_fit_min_prior_deg)


def fit_stance_tilt(a_world, zv, t, g, anchor_v, sd_mps, prior_rad, span=None):
    """Horizontal tilt error (rad, about world x and y) of a world-frame specific force.

    `a_world` (N, 3) m/s² with gravity, `zv` (N,) zero-velocity mask, `t` (N,) s, `g` m/s², `anchor_v`
    (N, 3) the velocity the zero-velocity samples must have (m/s). The error is linear in time
    between nodes (the middle sample of each zero-velocity period; constant before the first and
    after the last); a small rotation d adds d x f to the specific force f, so the raw velocity
    gains its integral. Least squares over every step between consecutive zero-velocity samples
    (SD `sd_mps`) with a zero-mean prior of SD `prior_rad` per node. `span`: None, all nodes at
    once (a block-tridiagonal system); an integer m, each node's tilt from the nodes within m of it
    and the steps between them (`_local_tilt`). Returns (K, 2) node tilts and the (N, 3) rotation
    vector d per sample, or None with fewer than three periods.
    """
    periods = mask_to_periods(zv)
    k = len(periods)
    if k < 3:
        return None
    nodes = tilt_fit_nodes(periods)
    seg_p, rows_a, rows_b, target = _tilt_steps(
        np.ascontiguousarray(a_world, dtype=float),
        np.ascontiguousarray(t, dtype=float),
        float(g),
        np.ascontiguousarray(anchor_v, dtype=float),
        np.ascontiguousarray(nodes, dtype=np.int64),
        np.flatnonzero(zv).astype(np.int64),
    )
    w = 1.0 / sd_mps**2
    if span is not None:
        tilt = _local_tilt(seg_p, rows_a, rows_b, target, k, w, 1.0 / prior_rad**2, span)
        return tilt, _tilt_per_sample(t, t[nodes], tilt)
    col_a = np.clip(seg_p, 0, k - 1)
    col_b = np.minimum(col_a + 1, k - 1)
    # normal equations, block tridiagonal: lower band storage for `scipy.linalg.solveh_banded`
    band = np.zeros((4, 2 * k))
    band[0] = 1.0 / prior_rad**2
    rhs = np.zeros(2 * k)
    pairs = ((col_a, col_a, rows_a, rows_a), (col_b, col_a, rows_b, rows_a), (col_b, col_b, rows_b, rows_b))
    for cr, cc, rr, rc in pairs:
        blocks = w * np.einsum("rij,rik->rjk", rr, rc)
        for j in range(2):
            for c in range(2):
                row, col = 2 * cr + j, 2 * cc + c
                # the lower triangle; the block (col_a, col_b) is the mirror of (col_b, col_a)
                keep = row >= col
                np.add.at(band, (row[keep] - col[keep], col[keep]), blocks[keep, j, c])
    for c_, r_ in ((col_a, rows_a), (col_b, rows_b)):
        proj = w * np.einsum("rij,ri->rj", r_, target)
        for j in range(2):
            np.add.at(rhs, 2 * c_ + j, proj[:, j])
    tilt = scipy.linalg.solveh_banded(band, rhs, lower=True).reshape(k, 2)
    return tilt, _tilt_per_sample(t, t[nodes], tilt)


@numba.njit(cache=True)
def _tilt_steps(f, t, g, anchor_v, nodes, still):  # pragma: no cover - compiled
    """`fit_stance_tilt`'s steps between consecutive zero-velocity samples (`still`, their indices):
    per step r from p = still[r] to q = still[r + 1], its interval's segment between nodes (seg[p]:
    -1 before the first node), the integrals over it of J(f) weighted by (1 - s) and by s (R, 3, 2;
    s the time fraction between the segment's nodes; the second zero outside the nodes), and the
    raw velocity change less the anchor velocity change (R, 3).

    One pass in the numpy statement's operations and order (the trapezoids, clips and running
    sums, bit for bit): as numpy, ~40 calls on a live window's few hundred samples."""
    n = f.shape[0]
    k = nodes.shape[0]
    v_raw = np.zeros((n, 3))
    for i in range(1, n):
        dt = t[i] - t[i - 1]
        for c in range(3):
            gc = g if c == 2 else 0.0
            step = 0.5 * ((f[i, c] - gc) + (f[i - 1, c] - gc)) * dt
            v_raw[i, c] = step if i == 1 else v_raw[i - 1, c] + step
    seg = np.empty(max(n - 1, 0), dtype=np.int64)
    cum_a = np.zeros((n, 3, 2))
    cum_b = np.zeros((n, 3, 2))
    jac0 = np.zeros((3, 2))
    jac1 = np.zeros((3, 2))
    m = 0  # nodes at or before sample i
    for i in range(n - 1):
        while m < k and nodes[m] <= i:
            m += 1
        sg = m - 1
        seg[i] = sg
        lo_t = t[nodes[min(max(sg, 0), k - 1)]]
        hi_t = t[nodes[min(max(sg + 1, 0), k - 1)]]
        gap = hi_t - lo_t if hi_t > lo_t else 1.0
        s0 = (t[i] - lo_t) / gap
        s0 = s0 if s0 > 0.0 else 0.0
        s0 = s0 if s0 < 1.0 else 1.0
        s1 = (t[i + 1] - lo_t) / gap
        s1 = s1 if s1 > 0.0 else 0.0
        s1 = s1 if s1 < 1.0 else 1.0
        if sg < 0 or sg >= k - 1:
            s0, s1 = 0.0, 0.0
        # J(f) = d(d x f)/d(dx, dy)
        jac0[1, 0], jac0[2, 0], jac0[0, 1], jac0[2, 1] = -f[i, 2], f[i, 1], f[i, 2], -f[i, 0]
        jac1[1, 0], jac1[2, 0], jac1[0, 1], jac1[2, 1] = -f[i + 1, 2], f[i + 1, 1], f[i + 1, 2], -f[i + 1, 0]
        half_dt = 0.5 * (t[i + 1] - t[i])
        for r in range(3):
            for c in range(2):
                inc_a = half_dt * ((1.0 - s0) * jac0[r, c] + (1.0 - s1) * jac1[r, c])
                inc_b = half_dt * (s0 * jac0[r, c] + s1 * jac1[r, c])
                cum_a[i + 1, r, c] = inc_a if i == 0 else cum_a[i, r, c] + inc_a
                cum_b[i + 1, r, c] = inc_b if i == 0 else cum_b[i, r, c] + inc_b
    steps = max(still.shape[0] - 1, 0)
    seg_p = np.empty(steps, dtype=np.int64)
    rows_a = np.empty((steps, 3, 2))
    rows_b = np.empty((steps, 3, 2))
    target = np.empty((steps, 3))
    for j in range(steps):
        p, q = still[j], still[j + 1]
        seg_p[j] = seg[p]
        outside = seg[p] < 0 or seg[p] >= k - 1
        for r in range(3):
            for c in range(2):
                rows_a[j, r, c] = cum_a[q, r, c] - cum_a[p, r, c]
                rows_b[j, r, c] = 0.0 if outside else cum_b[q, r, c] - cum_b[p, r, c]
            target[j, r] = (v_raw[q, r] - v_raw[p, r]) - (anchor_v[q, r] - anchor_v[p, r])
    return seg_p, rows_a, rows_b, target


def tilt_fit_nodes(periods: np.ndarray) -> np.ndarray:
    """The stance tilt fit's node (sample index) of each still period of (K, 2) [start, end): its
    middle sample, the earlier one of an even length. The live analyzer's windows follow the same
    nodes (`analytics.live_analyzer`), so this is the one place that says where they are."""
    return (periods[:, 0] + periods[:, 1] - 1) // 2


def _tilt_per_sample(t, t_nodes, tilt):
    """(N, 3) rotation vector per sample, linear between the nodes' tilts (K, 2), constant outside."""
    d = np.zeros((len(t), 3))
    d[:, 0] = np.interp(t, t_nodes, tilt[:, 0])
    d[:, 1] = np.interp(t, t_nodes, tilt[:, 1])
    return d


def _local_tilt(seg, rows_a, rows_b, target, k, w, prior_w, span):
    """Each node's tilt (K, 2) from the nodes within `span` of it and the steps between them.

    A step between nodes a and a + 1 (`seg` = a; -1 before the first node, K - 1 after the last)
    adds its normal equations to that interval's 4 x 4 block (the two nodes' tilts); node j's
    system holds the blocks of intervals j - span .. j + span - 1 (the steps before the first node
    only in the first node's, those after the last only in the last one's) and the prior of
    2 span + 1 nodes (those beyond the segment have no steps: 0). Node j's tilt is its own entries
    of that system's solution. A node's tilt thus depends on the data between its `span`-th
    neighbours only, which a live window holding them reproduces.
    """
    blocks, proj = _interval_normals(seg, rows_a, rows_b, target, k, w)
    system, rhs = _local_systems(blocks, proj, k, float(prior_w), int(span))
    solution = np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
    return solution[:, 2 * span : 2 * span + 2]


@numba.njit(cache=True)
def _local_systems(blocks, proj, k, prior_w, span):  # pragma: no cover - compiled
    """`_local_tilt`'s systems (K, 2m, 2m) and right-hand sides (K, 2m), m = 2 span + 1: the prior
    on the diagonal, then interval centre + o's blocks added for o = -span .. span - 1 (the steps
    outside the nodes only to the first and the last node's), in the numpy statement's order."""
    m = 2 * span + 1
    system = np.zeros((k, 2 * m, 2 * m))
    rhs = np.zeros((k, 2 * m))
    for c in range(k):
        for j in range(2 * m):
            system[c, j, j] = prior_w
    for o in range(-span, span):
        lo = 2 * (o + span)
        for c in range(k):
            i = c + o + 1
            if i < 0 or i > k or (i == 0 and c != 0) or (i == k and c != k - 1):
                continue
            for a in range(4):
                for b in range(4):
                    system[c, lo + a, lo + b] += blocks[i, a, b]
                rhs[c, lo + a] += proj[i, a]
    return system, rhs


@numba.njit(cache=True)
def _interval_normals(seg, rows_a, rows_b, target, k, w):  # pragma: no cover - compiled
    """`_local_tilt`'s normal equations per interval (K + 1, indexed by seg + 1: 0 before the first
    node, K after the last): the sum over its steps of w R^T R (4 x 4) and w R^T target (4), R the
    step's (3, 4) rows [node a | node a + 1] (before the first node [0 | node 0]). Products summed
    over the three axes in order and the steps added one after another, as numpy's `einsum` and
    `add.at` did."""
    blocks = np.zeros((k + 1, 4, 4))
    proj = np.zeros((k + 1, 4))
    rows = np.zeros((3, 4))
    for r in range(seg.shape[0]):
        for i in range(3):
            if seg[r] < 0:  # the steps before the first node hang on node 0, the second column pair
                rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3] = 0.0, 0.0, rows_a[r, i, 0], rows_a[r, i, 1]
            else:
                rows[i, 0], rows[i, 1] = rows_a[r, i, 0], rows_a[r, i, 1]
                rows[i, 2], rows[i, 3] = rows_b[r, i, 0], rows_b[r, i, 1]
        at = min(max(seg[r], -1), k - 1) + 1
        for j in range(4):
            for c in range(4):
                e = rows[0, j] * rows[0, c]
                e = e + rows[1, j] * rows[1, c]
                e = e + rows[2, j] * rows[2, c]
                blocks[at, j, c] += w * e
            e = rows[0, j] * target[r, 0]
            e = e + rows[1, j] * target[r, 1]
            e = e + rows[2, j] * target[r, 2]
            proj[at, j] += w * e
    return blocks, proj


def zero_velocity_core(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    zero_velocity: np.ndarray,
    sampling_rate_hz: float,
    settings: ZuptSettings,
) -> np.ndarray:
    """The core of every zero-velocity period (bool (N,)): its samples whose short-window SHOE
    statistic is below `settings.core_threshold`, or its quietest sample when none is.

    Why: a zero-velocity period is where the foot is nearly still, found with a window and a
    threshold lenient enough to find every stance; its first and last tens of ms the foot is
    still settling and already rolling onto the toe (20-40 deg/s about the toe, a few cm/s
    at the sensor). Zero velocity imposed there cuts that motion out of every stride: on real
    walks with measured footprints the lenient mask gave stride lengths 3-4 cm (2-3 %) short,
    the core alone about 1 cm. The samples outside the core are integrated and de-drifted
    between the cores like any motion.
    """
    from strideflow.fusion.zero_velocity import ZeroVelocitySettings, mask_to_periods, shoe_statistic

    zv = np.asarray(zero_velocity, dtype=bool)
    periods = mask_to_periods(zv)
    if len(periods) == 0:
        return zv.copy()
    stat = shoe_statistic(
        acc_mps2, gyr_dps, sampling_rate_hz, ZeroVelocitySettings(window_s=settings.core_window_s)
    )
    core = zv & (stat < settings.core_threshold)
    # The quietest sample of every period, so that each stance keeps an anchor.
    quietest = _period_argmin(stat, np.ascontiguousarray(periods[:, 0]), np.ascontiguousarray(periods[:, 1]))
    core[quietest] = True
    return core


@numba.njit(cache=True)
def _period_argmin(x, lo, hi):  # pragma: no cover - compiled
    out = np.empty(lo.shape[0], dtype=np.int64)
    for k in range(lo.shape[0]):
        best = lo[k]
        for i in range(lo[k], hi[k]):
            if x[i] < x[best]:
                best = i
        out[k] = best
    return out


@dataclass(frozen=True)
class LevellingSettings:
    """Settings of `LevelledStrapdown` (units in the names).

    Around every still period each sample votes for gravity with the stillness weight
    1 / ((1 + r²)² (1 + c²)²), where r² = (|gyr - bias| / still_gyr_dps)² + ((|acc| - g) /
    still_acc_mps2)² and c = |change of the specific force over one sample, in the gyro-carried
    frame| / still_change_mps2, the change being the smaller of the steps to the previous and to
    the next sample. A sample turning at 3 x `still_gyr_dps` counts about 1 % of a still one; c
    catches what the rate misses: a foot that has nearly stopped rolling but is still
    decelerating (its sensor then accelerates sideways, which tilts the specific force without
    changing its norm) and impact ringing. The smaller one-sided step keeps the last still sample
    before the foot moves (steady on one side) and drops the peaks of a ringing that outlasts
    the impact into the foot-flat: a peak differs from both neighbours, while the difference
    across it (next minus previous) vanishes there, which had let a 20 g runner's ringing peak
    dominate a 5-sample foot-flat and tilt it by 1.9 deg. The gyro bias is the same weighted
    mean (without c) of the rate over the still samples.

    still_gyr_dps: angular rate scale of the weight, deg/s.
    still_acc_mps2: scale of the weight for | |acc| - g |, m/s².
    still_change_mps2: scale of the weight for the per-sample change of the specific force, m/s²
        (None: not used). The accelerometer noise (0.02 m/s² on the simulated device) is far below.
    gravity_margin_s: gravity is taken from the still period widened by this on both sides: a
        detected running foot-flat can end a few samples before the foot really starts to move,
        and the weights keep the motion out.
    estimate_gyr_bias: subtract the gyroscope bias, estimated from the still samples (the foot
        does not turn while it stands), before integrating.
    min_bias_samples: with fewer still samples than this, no bias is estimated.
    gravity_mps2: magnitude of gravity.
    short_period_s, short_gravity_margin_s: a still period shorter than `short_period_s` (a
        rolling running stance: none to a few still samples; a walking foot-flat stands still for
        a few tenths of a second) takes gravity from a window widened by `short_gravity_margin_s`
        instead (None: `gravity_margin_s` for every period). Why: what the window averages is
        gravity plus the sensor's mean acceleration over it, i.e. its change of velocity divided
        by the window's length; a foot rolling through its stance changes its velocity by a few
        cm/s around the anchor, which over a 45 ms window tilts gravity by degrees
        (tests/fusion/test_zupt.py), and a tilt error at an anchor lengthens one stride and
        shortens the next. Chosen on the real footprint walks (benchmarks/README.md, real data:
        median stride-length error of the fast walks 3.5-5.3 -> 2.6-3.7 cm, normal walks 0.7-1.7
        -> 0.6-1.5 cm); on the simulator's rolling stances, which lack the real walks' 4-10 deg of
        tilt correction per stride, it costs 0.2 percentage points of running stride length.
    lever_m: where the sensor sits relative to the foot's contact with the ground (x, y, z in the
        frame of acc and gyr, m; default `POD_LEVER_M`). The levelling then takes the sensor's own
        acceleration as a rigid body turning about that contact, a x r + w x (w x r) (a the angular
        acceleration, by central differences of the gyro), out of the specific force before it
        reads gravity. Why: a foot rolling through a running stance keeps turning at 20-40 deg/s
        and its pitch rate swings from foot slap to push-off within the gravity window, so the
        sensor h above the contact accelerates by a h, about 1 m/s² (6 deg of tilt) for
        a = 20 rad/s² and h = 5 cm; a still foot-flat (w = a = 0) is unchanged. None: nothing
        taken out.
    """

    still_gyr_dps: float = 10.0
    still_acc_mps2: float = 1.0
    still_change_mps2: float | None = 0.2
    gravity_margin_s: float = 0.02
    estimate_gyr_bias: bool = True
    min_bias_samples: int = 20
    gravity_mps2: float = STANDARD_GRAVITY_MPS2
    short_period_s: float = 0.1
    short_gravity_margin_s: float | None = 0.1
    lever_m: tuple[float, float, float] | None = POD_LEVER_M


def lever_acceleration(gyr_dps: np.ndarray, t_s: np.ndarray, lever_m) -> np.ndarray:
    """(N, 3) acceleration (m/s², sensor frame) of a point at `lever_m` (m) from a fixed pivot of a
    rigid body turning at `gyr_dps` ((N, 3), deg/s) at times `t_s` (s): a x r + w x (w x r), the
    angular acceleration a by central differences (one-sided at the ends)."""
    w = np.radians(np.asarray(gyr_dps, dtype=float))
    r = np.asarray(lever_m, dtype=float)
    if w.shape[0] < 2:
        return np.zeros_like(w)
    return _lever_terms(np.ascontiguousarray(w), np.ascontiguousarray(t_s, dtype=float), r)


@numba.njit(cache=True)
def _lever_terms(w, t, r):  # pragma: no cover - compiled
    """a x r + w x (w x r) per row of w (N >= 2, rad/s) at times t (s), a = dw/dt: numpy's
    `gradient` (central differences inside, the uniform formula when every step is equal,
    one-sided at the ends) and `cross` with their operations in their order, in one pass (numpy's
    checks and temporaries cost more than the arithmetic on the live analyzer's windows)."""
    n = w.shape[0]
    uniform = True
    h = t[1] - t[0]
    for i in range(1, n - 1):
        if t[i + 1] - t[i] != h:
            uniform = False
            break
    alpha = np.empty((n, 3))
    for c in range(3):
        alpha[0, c] = (w[1, c] - w[0, c]) / h
        alpha[n - 1, c] = (w[n - 1, c] - w[n - 2, c]) / (t[n - 1] - t[n - 2])
    for i in range(1, n - 1):
        if uniform:
            for c in range(3):
                alpha[i, c] = (w[i + 1, c] - w[i - 1, c]) / (2.0 * h)
        else:
            dx1, dx2 = t[i] - t[i - 1], t[i + 1] - t[i]
            a = -(dx2) / (dx1 * (dx1 + dx2))
            b = (dx2 - dx1) / (dx1 * dx2)
            cc = dx1 / (dx2 * (dx1 + dx2))
            for c in range(3):
                alpha[i, c] = a * w[i - 1, c] + b * w[i, c] + cc * w[i + 1, c]
    out = np.empty((n, 3))
    for i in range(n):
        a0, a1, a2 = alpha[i, 0], alpha[i, 1], alpha[i, 2]
        w0, w1, w2 = w[i, 0], w[i, 1], w[i, 2]
        c0 = w1 * r[2] - w2 * r[1]
        c1 = w2 * r[0] - w0 * r[2]
        c2 = w0 * r[1] - w1 * r[0]
        out[i, 0] = (a1 * r[2] - a2 * r[1]) + (w1 * c2 - w2 * c1)
        out[i, 1] = (a2 * r[0] - a0 * r[2]) + (w2 * c0 - w0 * c2)
        out[i, 2] = (a0 * r[1] - a1 * r[0]) + (w0 * c1 - w1 * c0)
    return out


def _cross_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.cross(a, b)` of (N, 3) rows a and (3,) or (N, 3) b, with numpy's operations in its order
    (bit-identical): np.cross's axis moves and broadcasting cost more than the products on the
    live analyzer's windows of a few hundred rows."""
    a0, a1, a2 = a[:, 0], a[:, 1], a[:, 2]
    b0, b1, b2 = (b[0], b[1], b[2]) if b.ndim == 1 else (b[:, 0], b[:, 1], b[:, 2])
    out = np.empty((a.shape[0], 3))
    out[:, 0] = a1 * b2 - a2 * b1
    out[:, 1] = a2 * b0 - a0 * b2
    out[:, 2] = a0 * b1 - a1 * b0
    return out


@numba.njit(cache=True)
def _carried_strapdown(acc, gyr, bias, t, lever_m, lever):  # pragma: no cover - compiled
    """`LevelledStrapdown.estimate`'s specific force less the lever's acceleration (when `lever`),
    and the strapdown's orientation and carried specific force: np.radians(gyr - bias),
    `lever_acceleration`, the subtraction and np.diff(t) in one call, the same floats (the rate
    in rad/s is computed once for both; numpy's temporaries cost as much as the lever terms)."""
    n = acc.shape[0]
    w = np.empty((n, 3))
    for i in range(n):
        for c in range(3):
            w[i, c] = (gyr[i, c] - bias[c]) * RAD_PER_DEG
    a = acc
    if lever and n >= 2:
        terms = _lever_terms(w, t, lever_m)
        a = np.empty((n, 3))
        for i in range(n):
            for c in range(3):
                a[i, c] = acc[i, c] - terms[i, c]
    elif lever:  # one sample: no angular acceleration (numpy's zeros subtracted)
        a = np.empty((n, 3))
        for i in range(n):
            for c in range(3):
                a[i, c] = acc[i, c] - 0.0
    dt = np.empty(max(n - 1, 0))
    for i in range(n - 1):
        dt[i] = t[i + 1] - t[i]
    q_ref, a_ref = strapdown(w, a, dt)
    return a, q_ref, a_ref


@numba.njit(cache=True)
def _anchor_velocity(gyr, q, zv, lever, out):  # pragma: no cover - compiled
    """Into out's zero-velocity rows: the sensor's velocity about the contact, world frame,
    rotate_all(q[zv], _cross_rows(np.radians(gyr[zv]), lever)) row by row (the same floats)."""
    for i in range(zv.shape[0]):
        if not zv[i]:
            continue
        w0, w1, w2 = gyr[i, 0] * RAD_PER_DEG, gyr[i, 1] * RAD_PER_DEG, gyr[i, 2] * RAD_PER_DEG
        b0 = w1 * lever[2] - w2 * lever[1]
        b1 = w2 * lever[0] - w0 * lever[2]
        b2 = w0 * lever[1] - w1 * lever[0]
        out[i, 0], out[i, 1], out[i, 2] = rotate_vector(q[i, 0], q[i, 1], q[i, 2], q[i, 3], b0, b1, b2)


@numba.njit(cache=True)
def _rotated_by(d, f):  # pragma: no cover - compiled
    """f - d x f per row ((N, 3) each): `f - _cross_rows(d, f)` in one pass, the same floats."""
    n = f.shape[0]
    out = np.empty((n, 3))
    for i in range(n):
        d0, d1, d2 = d[i, 0], d[i, 1], d[i, 2]
        f0, f1, f2 = f[i, 0], f[i, 1], f[i, 2]
        out[i, 0] = f0 - (d1 * f2 - d2 * f1)
        out[i, 1] = f1 - (d2 * f0 - d0 * f2)
        out[i, 2] = f2 - (d0 * f1 - d1 * f0)
    return out


@numba.njit(cache=True)
def _change2(a_ref, i):  # pragma: no cover - compiled
    """Squared change of the carried specific force at sample i: the smaller of the steps to the
    previous and to the next sample (m/s²)²."""
    b2, f2 = 0.0, 0.0
    for k in range(3):
        b = a_ref[i, k] - a_ref[i - 1, k]
        f = a_ref[i + 1, k] - a_ref[i, k]
        b2 += b * b
        f2 += f * f
    return min(b2, f2)


@numba.njit(cache=True)
def _anchors(
    acc, gyr, a_ref, bias, starts, lo, hi, gyr_scale, acc_scale, g, change_scale
):  # pragma: no cover - compiled
    """Per window [lo, hi): weighted-centre sample and weighted sum of the carried specific force.

    The centre is summed relative to the still period's start `starts[j]`, so it rounds the same
    whatever the index of the period in the data (a live window and the whole recording agree).
    """
    n = acc.shape[0]
    k = lo.shape[0]
    idx = np.zeros(k, dtype=np.int64)
    g_ref = np.zeros((k, 3))
    for j in range(k):
        sw, si = 0.0, 0.0
        for i in range(lo[j], hi[j]):
            w = stillness_weight(acc, gyr, i, bias, gyr_scale, acc_scale, g)
            if change_scale > 0.0 and 0 < i < n - 1:
                c2 = _change2(a_ref, i) / (change_scale * change_scale)
                w /= (1.0 + c2) * (1.0 + c2)
            sw += w
            si += w * (i - starts[j])
            g_ref[j, 0] += w * a_ref[i, 0]
            g_ref[j, 1] += w * a_ref[i, 1]
            g_ref[j, 2] += w * a_ref[i, 2]
        idx[j] = starts[j] + int(np.rint(si / sw)) if sw > 0.0 else (lo[j] + hi[j] - 1) // 2
    return idx, g_ref


@numba.njit(cache=True)
def _to_up(vx, vy, vz):  # pragma: no cover - compiled
    """Unit axis (horizontal) and angle of the smallest rotation taking direction v onto +z."""
    s = np.sqrt(vx * vx + vy * vy)
    if s < 1e-15:
        return 1.0, 0.0, (0.0 if vz > 0.0 else np.pi)
    return vy / s, -vx / s, np.arctan2(s, vz)


@numba.njit(cache=True)
def _levelled(q_ref, t, anchor, g_ref):  # pragma: no cover - compiled
    """q = L(t) q_ref(t): L levels the reference frame at every anchor; in between, the tilt
    correction found at the next anchor is applied in proportion to the elapsed time. Returns q, the
    correction's angle per anchor (rad) and its horizontal world axis (K, 2)."""
    n = q_ref.shape[0]
    k = anchor.shape[0]
    out = np.empty((n, 4))
    tilt = np.zeros(k)
    axis = np.zeros((k, 2))
    ax, ay, ang = _to_up(g_ref[0, 0], g_ref[0, 1], g_ref[0, 2])
    lw, lx, ly, lz = np.cos(ang / 2), ax * np.sin(ang / 2), ay * np.sin(ang / 2), 0.0
    for i in range(0, anchor[0] + 1):
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = qmul(
            lw, lx, ly, lz, q_ref[i, 0], q_ref[i, 1], q_ref[i, 2], q_ref[i, 3]
        )
    for j in range(k - 1):
        a0, a1 = anchor[j], anchor[j + 1]
        vx, vy, vz = rotate_vector(lw, lx, ly, lz, g_ref[j + 1, 0], g_ref[j + 1, 1], g_ref[j + 1, 2])
        ax, ay, ang = _to_up(vx, vy, vz)
        tilt[j + 1] = ang
        axis[j + 1, 0], axis[j + 1, 1] = ax, ay
        span = t[a1] - t[a0]
        for i in range(a0 + 1, a1 + 1):
            half = 0.5 * ang * ((t[i] - t[a0]) / span if span > 0.0 else 1.0)
            sn = np.sin(half)
            mw, mx, my, mz = qmul(np.cos(half), ax * sn, ay * sn, 0.0, lw, lx, ly, lz)
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = qmul(
                mw, mx, my, mz, q_ref[i, 0], q_ref[i, 1], q_ref[i, 2], q_ref[i, 3]
            )
        sn = np.sin(0.5 * ang)
        lw, lx, ly, lz = qmul(np.cos(0.5 * ang), ax * sn, ay * sn, 0.0, lw, lx, ly, lz)
        nl = np.sqrt(lw * lw + lx * lx + ly * ly + lz * lz)
        lw, lx, ly, lz = lw / nl, lx / nl, ly / nl, lz / nl
    for i in range(anchor[k - 1] + 1, n):
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = qmul(
            lw, lx, ly, lz, q_ref[i, 0], q_ref[i, 1], q_ref[i, 2], q_ref[i, 3]
        )
    return out, tilt, axis


@numba.njit(cache=True)
def _zupt_integrate(a_world, zv, t, g, u):  # pragma: no cover - compiled
    """(acc less gravity, de-drifted velocity, position), each (N, 3), from the world-frame
    specific force: the trapezoid sums, ramps and order of operations of the numpy form. The
    velocity on zero-velocity samples is u there (N, 3; zeros: the plain ZUPT, bit for bit)."""
    n = a_world.shape[0]
    acc = np.empty((n, 3))
    for i in range(n):
        acc[i, 0] = a_world[i, 0] - 0.0
        acc[i, 1] = a_world[i, 1] - 0.0
        acc[i, 2] = a_world[i, 2] - g
    v_raw = np.zeros((n, 3))
    for i in range(1, n):
        dt = t[i] - t[i - 1]
        for c in range(3):
            step = 0.5 * (acc[i, c] + acc[i - 1, c]) * dt
            v_raw[i, c] = step if i == 1 else v_raw[i - 1, c] + step
    prev = np.empty(n, dtype=np.int64)
    last = -1
    for i in range(n):
        if zv[i]:
            last = i
        prev[i] = last
    nxt = np.empty(n, dtype=np.int64)
    first = n
    for i in range(n - 1, -1, -1):
        if zv[i]:
            first = i
        nxt[i] = first
    if last < 0:  # no zero-velocity sample: nothing to correct against
        velocity = v_raw
    else:
        velocity = np.zeros((n, 3))
        for i in range(n):
            if zv[i]:
                for c in range(3):
                    velocity[i, c] = u[i, c]
                continue
            p, q = prev[i], nxt[i]
            if p >= 0 and q < n:
                frac = (t[i] - t[p]) / (t[q] - t[p])
                for c in range(3):
                    velocity[i, c] = (
                        u[p, c]
                        + (v_raw[i, c] - v_raw[p, c])
                        - frac * ((v_raw[q, c] - v_raw[p, c]) - (u[q, c] - u[p, c]))
                    )
            elif p < 0:
                for c in range(3):
                    velocity[i, c] = u[q, c] + (v_raw[i, c] - v_raw[q, c])
            else:
                for c in range(3):
                    velocity[i, c] = u[p, c] + (v_raw[i, c] - v_raw[p, c])
    position = np.zeros((n, 3))
    for i in range(1, n):
        dt = t[i] - t[i - 1]
        for c in range(3):
            step = 0.5 * (velocity[i, c] + velocity[i - 1, c]) * dt
            position[i, c] = step if i == 1 else position[i - 1, c] + step
    return acc, velocity, position


class LevelledStrapdown:
    """Orientation by gyro integration, levelled at every zero-velocity (still) period.

    Each still period gives one anchor, its weighted-centre sample, where the tilt is known: the
    specific force around the period, carried to a common frame by the integrated gyro (so a
    foot that still rolls a little does not blur it) and averaged with stillness weights
    (`LevellingSettings`), is gravity. Between two anchors the gyro, less its bias estimated from
    the still samples, is integrated, and the tilt error it has accumulated by the later anchor
    is removed in proportion to the elapsed time: a constant drift rate is removed exactly and
    nothing jumps at a still period. Heading is the gyro's. Before the first anchor and after the
    last one that anchor's correction is kept. Without any still period the orientation starts
    level with heading 0.

    Parameters
    ----------
    settings
        `LevellingSettings` (gravity in m/s², stillness scales in deg/s and m/s², windows in s).

    Attributes
    ----------
    orientation_ : np.ndarray
        (N, 4) quaternions (w, x, y, z), sensor to world.
    gyr_bias_dps_ : np.ndarray
        (3,) gyro bias subtracted (deg/s), from the still samples.
    anchors_ : np.ndarray
        (K,) sample indices of the levelling anchors.
    gravity_ : np.ndarray
        (K, 3) unit gravity at each anchor, sensor frame.
    tilt_correction_deg_ : np.ndarray
        (K,) tilt error (deg) the gyro had accumulated at each anchor since the previous one.
    anchor_tilt_sd_deg_ : float
        SD (deg) of the gravity reading's own error at the anchors, from the corrections
        (`anchor_tilt_sd_deg`): the prior of `ZuptSettings.tilt_fit_prior_deg="levelling"`.

    Notes
    -----
    strideflow's own heuristic: gyro strapdown levelled to gravity at every still period, the tilt
    error spread linearly in time as `ZuptIntegrator` does for velocity, with its own stillness
    weights.
    """

    def __init__(self, settings: LevellingSettings | None = None) -> None:
        self.settings = settings if settings is not None else LevellingSettings()

    def estimate(
        self,
        acc_mps2: np.ndarray,
        gyr_dps: np.ndarray,
        zero_velocity: np.ndarray,
        sampling_rate_hz: float,
        t_s: np.ndarray | None = None,
    ) -> LevelledStrapdown:
        """Orientation from (N, 3) acc (m/s²) and gyr (deg/s) and the (N,) zero-velocity mask; `t_s` in s."""
        s = self.settings
        acc = np.ascontiguousarray(acc_mps2, dtype=float)
        gyr = np.ascontiguousarray(gyr_dps, dtype=float)
        zv = np.ascontiguousarray(zero_velocity, dtype=bool)
        n = acc.shape[0]
        if acc.shape != (n, 3) or gyr.shape != (n, 3) or zv.shape != (n,):
            raise ValueError(
                f"need acc (N,3), gyr (N,3), zero_velocity (N,); got {acc.shape} {gyr.shape} {zv.shape}"
            )
        t = np.arange(n) / float(sampling_rate_hz) if t_s is None else np.asarray(t_s, dtype=float)
        g = s.gravity_mps2
        bias = np.zeros(3)
        if s.estimate_gyr_bias and np.count_nonzero(zv) >= s.min_bias_samples:
            bias = still_gyr_bias(acc, gyr, zv, s.still_gyr_dps, s.still_acc_mps2, g)
        # The lever's acceleration from the rate less its bias, so that a bias given beforehand
        # (live) gives the same.
        lever = s.lever_m is not None and any(s.lever_m)
        acc, q_ref, a_ref = _carried_strapdown(
            acc,
            gyr,
            bias,
            np.ascontiguousarray(t, dtype=float),
            np.asarray(s.lever_m if lever else (0.0, 0.0, 0.0), dtype=float),
            lever,
        )
        periods = mask_to_periods(zv)
        self.gyr_bias_dps_ = bias
        if len(periods) == 0:
            self.anchors_ = np.zeros(0, dtype=np.int64)
            self.tilt_correction_deg_ = np.zeros(0)
            self.orientation_ = q_ref
            self._read = (np.zeros((0, 4)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 2)))
            return self
        margin = np.full(len(periods), int(round(s.gravity_margin_s * float(sampling_rate_hz))))
        if s.short_gravity_margin_s is not None:
            short = (periods[:, 1] - periods[:, 0]) < s.short_period_s * float(sampling_rate_hz)
            margin[short] = int(round(s.short_gravity_margin_s * float(sampling_rate_hz)))
        lo = np.maximum(periods[:, 0] - margin, 0)
        hi = np.minimum(periods[:, 1] + margin, n)
        change = s.still_change_mps2 if s.still_change_mps2 is not None else 0.0
        starts = np.ascontiguousarray(periods[:, 0], dtype=np.int64)
        anchor, g_ref = _anchors(
            acc, gyr, a_ref, bias, starts, lo, hi, s.still_gyr_dps, s.still_acc_mps2, g, change
        )
        # Widened windows of close still periods can share an anchor: keep each anchor once.
        keep = np.concatenate([[True], np.diff(anchor) > 0])
        anchor, g_ref = anchor[keep], g_ref[keep]
        self.anchors_ = anchor
        self.orientation_, tilt, axis = _levelled(q_ref, t, anchor, g_ref)
        self.tilt_correction_deg_ = np.degrees(tilt)
        self._read = (q_ref[anchor], g_ref, tilt, axis)  # what gravity_ and the SD read
        return self

    # Computed when read: the live analyzer's windows read neither (~10 % of an estimate, most of
    # it the robust variances' medians).
    @property
    def gravity_(self) -> np.ndarray:
        """(K, 3) unit gravity at each anchor, sensor frame."""
        q_anchor, g_ref, _, _ = self._read
        if not len(g_ref):
            return np.zeros((0, 3))
        q_inv = q_anchor * np.array([1.0, -1.0, -1.0, -1.0])
        g_body = rotate_all(q_inv, g_ref)
        return g_body / np.linalg.norm(g_body, axis=1, keepdims=True)

    @property
    def anchor_tilt_sd_deg_(self) -> float:
        """SD (deg) of the anchors' gravity reading error (`anchor_tilt_sd_deg`)."""
        _, g_ref, tilt, axis = self._read
        if not len(g_ref):
            return 0.0
        return anchor_tilt_sd_deg(self.orientation_[self.anchors_], tilt, axis)


def anchor_tilt_sd_deg(q_anchor: np.ndarray, tilt_rad: np.ndarray, axis: np.ndarray) -> float:
    """SD (deg) of the gravity reading's error at the anchors, from the levelling's corrections.

    `q_anchor` (K, 4) wxyz orientation at the anchors, `tilt_rad` (K,) and `axis` (K, 2) the
    correction found at each (angle about a horizontal world axis; the first is the initial
    levelling). A correction is the gyro's drift since the previous anchor plus e_j - e_(j-1), e the
    error of the gravity read at anchor j: consecutive corrections share -e_(j-1), so their lag-1
    covariance is -SD(e)² whatever the drift (constant in the sensor frame, hence taken there).
    The square root of minus that covariance, averaged over the two tilt axes; 0 when it is
    positive or with fewer than three corrections. The covariance is taken from robust variances
    (median absolute deviations of the sums and differences of consecutive corrections): with the
    plain covariance a few odd corrections set a prior of 6-25 deg on simulated rolling stances.
    """
    if len(tilt_rad) < 4:
        return 0.0
    world = np.zeros((len(tilt_rad) - 1, 3))
    world[:, :2] = axis[1:] * tilt_rad[1:, None]
    inv = q_anchor[1:] * np.array([1.0, -1.0, -1.0, -1.0])
    body = rotate_all(np.ascontiguousarray(inv), world)[:, :2]
    # cov(a, b) = (var(a + b) - var(a - b)) / 4, each variance from the median absolute deviation,
    # so that a few odd corrections (a turn, a stumble) do not set the prior
    lag1 = (_robust_variance(body[1:] + body[:-1]) - _robust_variance(body[1:] - body[:-1])) / 4.0
    return float(np.degrees(np.sqrt(np.mean(np.maximum(-lag1, 0.0)))))


def _robust_variance(x: np.ndarray) -> np.ndarray:
    """Per column of (K, m) x: (1.4826 x the median absolute deviation)², the variance of a normal
    sample. numpy, not `scipy.stats.median_abs_deviation`: that costs ~300 against ~45 us on the few
    corrections of a live window, and importing scipy.stats takes seconds."""
    return (1.4826 * np.median(np.abs(x - np.median(x, axis=0)), axis=0)) ** 2


def zero_velocity_aided_orientation(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    zero_velocity: np.ndarray,
    sampling_rate_hz: float,
    t_s: np.ndarray | None = None,
    settings: LevellingSettings | None = None,
) -> np.ndarray:
    """Orientation (N, 4) wxyz of `LevelledStrapdown`: gyro integration levelled at every still period."""
    return (
        LevelledStrapdown(settings)
        .estimate(acc_mps2, gyr_dps, zero_velocity, sampling_rate_hz, t_s)
        .orientation_
    )
