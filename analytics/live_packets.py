"""The live analyzer's per-packet arithmetic, compiled: each runs once per 100 ms packet and stream,
where the NumPy statements they replace (a few microseconds each on 20 samples) added up to most of
a packet's cost. Each gives the values of the statement it replaces (cited in its docstring)."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["at_range", "block_fine", "still_ends", "swing_starts", "to_foot_rows"]


@numba.njit(cache=True)
def block_fine(t, acc, gyr, last_t):  # pragma: no cover - compiled
    """Every value finite and t (n,) s strictly increasing from after `last_t` (-inf: the first
    block): `np.isfinite(...).all()` of the three arrays and `t[0] > last_t`, `t[1:] > t[:-1]`."""
    prev = last_t
    for i in range(t.shape[0]):
        if not (np.isfinite(t[i]) and t[i] > prev):
            return False
        prev = t[i]
        for k in range(3):
            if not (np.isfinite(acc[i, k]) and np.isfinite(gyr[i, k])):
                return False
    return True


@numba.njit(cache=True)
def at_range(gyr, saturated, largest, fraction):  # pragma: no cover - compiled
    """Per row of gyr (n, 3) deg/s: marked `saturated` and its largest |axis| at least `fraction`
    of the largest |axis| so far (`largest` before the block). Returns (marks, largest after).

    The statement it replaces: `a = np.abs(gyr).max(axis=1)`, `running =
    np.maximum.accumulate(np.maximum(a, largest))`, `saturated & (a >= running * fraction)`."""
    n = gyr.shape[0]
    out = np.empty(n, dtype=np.bool_)
    running = largest
    for i in range(n):
        a = max(abs(gyr[i, 0]), abs(gyr[i, 1]), abs(gyr[i, 2]))
        running = max(running, a)
        out[i] = saturated[i] and a >= running * fraction
    return out, running


@numba.njit(cache=True)
def swing_starts(gyr, level, armed):  # pragma: no cover - compiled
    """Offsets one past each sample of gyr[:, 1] (deg/s) where a swing starts: below -`level`
    (fast dorsiflexion) with a push-off (gyr_y > 0) since the last such start (`armed`: one before
    the block). Returns (offsets, armed after the block).

    Batch's test for a step (`events.min_swing_dps`): the toe-off, the push-off's peak, lies 14-19
    samples before it at 200 Hz on the simulator, 4-14 on real walking."""
    starts = []
    for i in range(gyr.shape[0]):
        y = gyr[i, 1]
        if y > 0.0:
            armed = True
        elif y < -level:
            if armed:
                starts.append(i + 1)
            armed = False
    out = np.empty(len(starts), dtype=np.int64)
    for k in range(len(starts)):
        out[k] = starts[k]
    return out, armed


@numba.njit(cache=True)
def still_ends(zv):  # pragma: no cover - compiled
    """Indices p1 of zv where a still period ends (zv[p1 - 1] and not zv[p1]), p1 >= 1:
    `np.flatnonzero(~zv[1:] & zv[:-1]) + 1`."""
    ends = []
    for i in range(1, zv.shape[0]):
        if zv[i - 1] and not zv[i]:
            ends.append(i)
    out = np.empty(len(ends), dtype=np.int64)
    for k in range(len(ends)):
        out[k] = ends[k]
    return out


@numba.njit(cache=True)
def to_foot_rows(matrix, acc, gyr):  # pragma: no cover - compiled
    """(matrix @ v for each row v of acc (n, 3), the same of gyr (n, 3)): `hardware.motion_math.
    rotate_rows` of each, summed left to right, in one call (a packet's two rotations into the foot
    frame paid a dispatch and an array's return each)."""
    n = acc.shape[0]
    acc_f = np.empty((n, 3))
    gyr_f = np.empty((n, 3))
    for i in range(n):
        ax, ay, az = acc[i, 0], acc[i, 1], acc[i, 2]
        gx, gy, gz = gyr[i, 0], gyr[i, 1], gyr[i, 2]
        for r in range(3):
            acc_f[i, r] = (matrix[r, 0] * ax + matrix[r, 1] * ay) + matrix[r, 2] * az
            gyr_f[i, r] = (matrix[r, 0] * gx + matrix[r, 1] * gy) + matrix[r, 2] * gz
    return acc_f, gyr_f
