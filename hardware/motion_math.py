"""Rotation and still-period maths shared by every stage above (hardware mounting, fusion, analytics).

The lowest home of: quaternion products and rotating vectors by quaternions (scalar first,
sensor -> world), quaternion -> rotation matrix, rotating rows by a matrix, the gyro strapdown,
runs of a boolean mask <-> (start, stop) periods, and the stillness weight with the
stillness-weighted gyroscope bias. Compiled with numba (no fastmath: every caller gets the same
floating-point operations in the same order, so streaming and batch agree bit for bit).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "DEG_PER_RAD",
    "RAD_PER_DEG",
    "angle_arguments",
    "angles_deg",
    "fill_runs",
    "mask_to_periods",
    "periods_to_mask",
    "qmul",
    "quat_to_matrix",
    "rotate_all",
    "rotate_rows",
    "rotate_vector",
    "still_gyr_bias",
    "stillness_weight",
    "stillness_weights",
    "strapdown",
]

# The factors np.radians and np.degrees multiply by: compiled code that multiplies by them gives
# numpy's floats.
RAD_PER_DEG = np.pi / 180.0
DEG_PER_RAD = 180.0 / np.pi


# --- quaternions and rotations ----------------------------------------------------------------
@numba.njit(cache=True)
def qmul(a0, a1, a2, a3, b0, b1, b2, b3):  # pragma: no cover - compiled
    return (
        a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3,
        a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
        a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1,
        a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0,
    )


@numba.njit(cache=True)
def rotate_vector(w, x, y, z, vx, vy, vz):  # pragma: no cover - compiled
    """v rotated by the unit quaternion (w, x, y, z)."""
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return (
        vx + w * tx + y * tz - z * ty,
        vy + w * ty + z * tx - x * tz,
        vz + w * tz + x * ty - y * tx,
    )


@numba.njit(cache=True)
def rotate_all(q, v):  # pragma: no cover - compiled
    """(N, 3) vectors rotated by (N, 4) unit quaternions wxyz."""
    out = np.empty_like(v)
    for i in range(v.shape[0]):
        out[i, 0], out[i, 1], out[i, 2] = rotate_vector(
            q[i, 0], q[i, 1], q[i, 2], q[i, 3], v[i, 0], v[i, 1], v[i, 2]
        )
    return out


@numba.njit(cache=True)
def strapdown(gyr_rps, acc, dt):  # pragma: no cover - compiled
    """Gyro integration from identity, (N, 4) wxyz, and the specific force in that frame (N, 3)."""
    n = gyr_rps.shape[0]
    q = np.zeros((n, 4))
    a_ref = np.zeros((n, 3))
    w, x, y, z = 1.0, 0.0, 0.0, 0.0
    for i in range(n):
        q[i, 0], q[i, 1], q[i, 2], q[i, 3] = w, x, y, z
        a_ref[i, 0], a_ref[i, 1], a_ref[i, 2] = rotate_vector(w, x, y, z, acc[i, 0], acc[i, 1], acc[i, 2])
        if i + 1 < n:
            # Rotate by the mean rate over the step (exact for a constant axis).
            ox = 0.5 * (gyr_rps[i, 0] + gyr_rps[i + 1, 0]) * dt[i]
            oy = 0.5 * (gyr_rps[i, 1] + gyr_rps[i + 1, 1]) * dt[i]
            oz = 0.5 * (gyr_rps[i, 2] + gyr_rps[i + 1, 2]) * dt[i]
            ang = np.sqrt(ox * ox + oy * oy + oz * oz)
            if ang > 1e-12:
                s = np.sin(ang / 2) / ang
                dw, dx, dy, dz = np.cos(ang / 2), ox * s, oy * s, oz * s
            else:
                dw, dx, dy, dz = 1.0, ox / 2, oy / 2, oz / 2
            w, x, y, z = qmul(w, x, y, z, dw, dx, dy, dz)
            nq = np.sqrt(w * w + x * x + y * y + z * z)
            w, x, y, z = w / nq, x / nq, y / nq, z / nq
    return q, a_ref


@numba.njit(cache=True, inline="always")
def quat_to_matrix(w, x, y, z):  # pragma: no cover - compiled
    """Rows of the rotation matrix of the unit quaternion (w, x, y, z): r00, r01, ..., r22."""
    return (
        1.0 - 2.0 * (y * y + z * z),
        2.0 * (x * y - w * z),
        2.0 * (x * z + w * y),
        2.0 * (x * y + w * z),
        1.0 - 2.0 * (x * x + z * z),
        2.0 * (y * z - w * x),
        2.0 * (x * z - w * y),
        2.0 * (w * x + y * z),
        1.0 - 2.0 * (x * x + y * y),
    )


@numba.njit(cache=True)
def rotate_rows(matrix: np.ndarray, xyz: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """matrix @ v for each row v of xyz (N, 3), summed left to right (as apply_mounting does)."""
    n = xyz.shape[0]
    out = np.empty((n, 3))
    for i in range(n):
        x, y, z = xyz[i, 0], xyz[i, 1], xyz[i, 2]
        for r in range(3):
            out[i, r] = (matrix[r, 0] * x + matrix[r, 1] * y) + matrix[r, 2] * z
    return out


@numba.njit(cache=True, error_model="numpy")
def angle_arguments(a, b):  # pragma: no cover - compiled
    """(|ua x ub|, ua . ub) of each row pair of (n, 3) `a`, `b`, with ua, ub the rows divided by
    their norms: np.arctan2 of them is the angle between the rows. The floats of the NumPy
    statements `u = v / np.linalg.norm(v, axis=-1, keepdims=True)`, `np.linalg.norm(np.cross(ua,
    ub), axis=-1)` and `np.sum(ua * ub, axis=-1)`: a row's norm and dot product summed (x + y) + z
    as NumPy's reduction over a last axis of 3 does, the cross product as `np.cross` forms it."""
    n = a.shape[0]
    sin = np.empty(n)
    cos = np.empty(n)
    for r in range(n):
        a0, a1, a2 = a[r, 0], a[r, 1], a[r, 2]
        b0, b1, b2 = b[r, 0], b[r, 1], b[r, 2]
        na = np.sqrt((a0 * a0 + a1 * a1) + a2 * a2)
        nb = np.sqrt((b0 * b0 + b1 * b1) + b2 * b2)
        a0, a1, a2 = a0 / na, a1 / na, a2 / na
        b0, b1, b2 = b0 / nb, b1 / nb, b2 / nb
        c0 = a1 * b2 - a2 * b1
        c1 = a2 * b0 - a0 * b2
        c2 = a0 * b1 - a1 * b0
        sin[r] = np.sqrt((c0 * c0 + c1 * c1) + c2 * c2)
        cos[r] = (a0 * b0 + a1 * b1) + a2 * b2
    return sin, cos


def angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (deg) between each row pair of (n, 3) `a`, `b`: the floats of `np.degrees(np.arctan2(
    np.linalg.norm(np.cross(ua, ub), axis=-1), np.sum(ua * ub, axis=-1)))` of the unit rows, from
    `angle_arguments` (arctan2 and degrees stay NumPy's: its SIMD arctan2 is not libm's); NaN
    where a row is NaN or zero."""
    sin, cos = angle_arguments(a, b)
    with np.errstate(invalid="ignore"):
        return np.degrees(np.arctan2(sin, cos))


# --- still periods ----------------------------------------------------------------------------
def mask_to_periods(mask: np.ndarray) -> np.ndarray:
    """(K, 2) int array of [start, end) sample ranges where a bool mask is true."""
    m = np.ascontiguousarray(mask, dtype=bool).reshape(-1)
    # compiled: called several times per live window, where numpy's fixed costs were most of it
    return _mask_to_periods(m)


@numba.njit(cache=True)
def _mask_to_periods(m):  # pragma: no cover - compiled
    n = m.shape[0]
    count = 0
    for i in range(n):
        if m[i] and (i == 0 or not m[i - 1]):
            count += 1
    out = np.empty((count, 2), dtype=np.int64)
    k = 0
    for i in range(n):
        if m[i] and (i == 0 or not m[i - 1]):
            out[k, 0] = i
        if m[i] and (i == n - 1 or not m[i + 1]):
            out[k, 1] = i + 1
            k += 1
    return out


@numba.njit(cache=True)
def fill_runs(mask, starts, ends):  # pragma: no cover - compiled
    """Set mask[starts[k]:ends[k]] true for every k (in place)."""
    for k in range(starts.shape[0]):
        for i in range(max(starts[k], 0), min(ends[k], mask.shape[0])):
            mask[i] = True


def periods_to_mask(periods: np.ndarray, n: int) -> np.ndarray:
    """Bool mask of length n, true inside the [start, end) ranges."""
    p = np.asarray(periods, dtype=np.int64).reshape(-1, 2)
    mask = np.zeros(n, dtype=bool)
    fill_runs(mask, np.ascontiguousarray(p[:, 0]), np.ascontiguousarray(p[:, 1]))
    return mask


# --- stillness ---------------------------------------------------------------------------------
@numba.njit(cache=True)
def stillness_weight(acc, gyr, i, bias, gyr_scale, acc_scale, g):  # pragma: no cover - compiled
    """1 / (1 + r²)² of sample i (see LevellingSettings)."""
    wx, wy, wz = gyr[i, 0] - bias[0], gyr[i, 1] - bias[1], gyr[i, 2] - bias[2]
    dev = np.sqrt(acc[i, 0] ** 2 + acc[i, 1] ** 2 + acc[i, 2] ** 2) - g
    r2 = (wx * wx + wy * wy + wz * wz) / (gyr_scale * gyr_scale) + (dev / acc_scale) ** 2
    return 1.0 / ((1.0 + r2) * (1.0 + r2))


@numba.njit(cache=True)
def still_gyr_bias(acc, gyr, zv, gyr_scale, acc_scale, g):  # pragma: no cover - compiled
    """Stillness-weighted mean rate of the still samples; two passes starting from no bias."""
    bias = np.zeros(3)
    for _ in range(2):
        total = 0.0
        acc_sum = np.zeros(3)
        for i in range(zv.shape[0]):
            if zv[i]:
                w = stillness_weight(acc, gyr, i, bias, gyr_scale, acc_scale, g)
                total += w
                acc_sum[0] += w * gyr[i, 0]
                acc_sum[1] += w * gyr[i, 1]
                acc_sum[2] += w * gyr[i, 2]
        bias = acc_sum / total
    return bias


@numba.njit(cache=True)
def stillness_weights(acc, gyr, bias, gyr_scale, acc_scale, g):  # pragma: no cover - compiled
    """`stillness_weight` of every sample, (N,)."""
    out = np.empty(acc.shape[0])
    for i in range(acc.shape[0]):
        out[i] = stillness_weight(acc, gyr, i, bias, gyr_scale, acc_scale, g)
    return out
