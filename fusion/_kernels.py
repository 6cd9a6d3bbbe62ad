"""Compiled (numba) per-sample recursions of the Madgwick and Mahony filters.

(Over ~500 lines: the Madgwick and Mahony update rules and every kernel built from them (one sensor,
many sensors, streaming) stay in one module so that numba inlines the same step functions into each
and the variants stay equal bit for bit.)

The maths follows the `ahrs` package 0.4.x (its update rules, gains and initial attitude), written
out component by component so that numba keeps every quantity in registers. Quaternions are scalar
first and rotate sensor-frame vectors into the world frame (z up). Inside the kernels the angular
rate is in rad/s (converted from deg/s sample by sample), acceleration in m/s², the magnetic field
in any unit (only its direction is used).

Every public kernel is built from the same inlined step functions, so the single-sensor, the
many-sensor, the segmented (stage) and the chunked (streaming) runs perform the identical
floating-point operations in the identical order: their outputs agree bit for bit. No fastmath,
for the same reason.

dt convention: `dt_arr` is empty (use the fixed `dt_s`) or holds one step per sample, element k
being the time from sample k-1 to sample k (element 0 of a recording is never used).
A negative `acc_threshold_mps2` switches acceleration rejection off.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from strideflow.hardware.motion_math import quat_to_matrix

DEG2RAD = math.pi / 180.0


# --------------------------------------------------------------------------------------------
# initial attitude, as ahrs computes it
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def acc2q(ax, ay, az):
    """ahrs.common.orientation.acc2q: roll/pitch from gravity, yaw 0; identity for a zero vector."""
    norm = math.sqrt(ax * ax + ay * ay + az * az)
    if not norm > 0.0:
        return 1.0, 0.0, 0.0, 0.0
    ax = ax / norm
    ay = ay / norm
    az = az / norm
    ex = math.atan2(ay, az)
    ey = math.atan2(-ax, math.sqrt(ay * ay + az * az))
    cx2 = math.cos(ex / 2.0)
    sx2 = math.sin(ex / 2.0)
    cy2 = math.cos(ey / 2.0)
    sy2 = math.sin(ey / 2.0)
    w = cx2 * cy2
    x = sx2 * cy2
    y = cx2 * sy2
    z = -sx2 * sy2
    n = math.sqrt(w * w + x * x + y * y + z * z)
    return w / n, x / n, y / n, z / n


@nb.njit(cache=True, inline="always")
def _sign(v):
    # numpy's sign: 0 for 0 (ahrs relies on np.sign)
    if v > 0.0:
        return 1.0
    if v < 0.0:
        return -1.0
    return 0.0


@nb.njit(cache=True, inline="always")
def _clip(v, lo, hi):
    return min(max(v, lo), hi)


@nb.njit(cache=True, inline="always")
def _chiaverini(r00, r01, r02, r10, r11, r12, r20, r21, r22):
    """ahrs chiaverini(): quaternion of a rotation matrix, square roots of the diagonal with signs."""
    w = 0.5 * math.sqrt(_clip(r00 + r11 + r22, -1.0, 3.0) + 1.0)
    x = 0.5 * _sign(r21 - r12) * math.sqrt(_clip(r00 - r11 - r22, -1.0, 3.0) + 1.0)
    y = 0.5 * _sign(r02 - r20) * math.sqrt(_clip(r11 - r22 - r00, -1.0, 3.0) + 1.0)
    z = 0.5 * _sign(r10 - r01) * math.sqrt(_clip(r22 - r00 - r11, -1.0, 3.0) + 1.0)
    if w == 0.0 and x == 0.0 and y == 0.0 and z == 0.0:
        w = 1.0
    n = math.sqrt(w * w + x * x + y * y + z * z)
    return w / n, x / n, y / n, z / n


@nb.njit(cache=True, inline="always")
def _cross(ax, ay, az, bx, by, bz):
    return ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx


@nb.njit(cache=True)
def ecompass_ned_q(ax, ay, az, mx, my, mz):
    """ahrs ecompass(a, m, frame='NED', representation='quaternion'): Madgwick's 9-axis start."""
    mn = math.sqrt(mx * mx + my * my + mz * mz)
    an = math.sqrt(ax * ax + ay * ay + az * az)
    if not (mn > 0.0 and an > 0.0):
        return acc2q(ax, ay, az)
    mx, my, mz = mx / mn, my / mn, mz / mn
    zx, zy, zz = ax / an, ay / an, az / an
    yx, yy, yz = _cross(zx, zy, zz, mx, my, mz)
    xx, xy, xz = _cross(yx, yy, yz, zx, zy, zz)
    nx = math.sqrt(xx * xx + xy * xy + xz * xz)
    ny = math.sqrt(yx * yx + yy * yy + yz * yz)
    if not (nx > 0.0 and ny > 0.0):  # field parallel to gravity: no heading information
        return acc2q(ax, ay, az)
    xx, xy, xz = xx / nx, xy / nx, xz / nx
    yx, yy, yz = yx / ny, yy / ny, yz / ny
    # rows of R are the world axes in sensor coordinates
    return _chiaverini(xx, xy, xz, yx, yy, yz, zx, zy, zz)


@nb.njit(cache=True)
def am2q_enu(ax, ay, az, mx, my, mz):
    """ahrs am2q(a, m) (TRIAD, ENU) followed by its dcm2quat: Mahony's 9-axis start."""
    hx, hy, hz = _cross(mx, my, mz, ax, ay, az)
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    an = math.sqrt(ax * ax + ay * ay + az * az)
    if not (hn > 0.0 and an > 0.0):
        return acc2q(ax, ay, az)
    hx, hy, hz = hx / hn, hy / hn, hz / hn
    ux, uy, uz = ax / an, ay / an, az / an
    nx, ny, nz = _cross(ux, uy, uz, hx, hy, hz)
    # D has columns (east, north, up) in sensor coordinates; dcm2quat(D) is the quaternion of D^T
    d00, d01, d02 = hx, nx, ux
    d10, d11, d12 = hy, ny, uy
    d20, d21, d22 = hz, nz, uz
    tr1 = 1.0 + d00 + d11 + d22
    if tr1 < 1e-9:  # ahrs divides by zero here; the robust form gives the same rotation
        return _chiaverini(d00, d10, d20, d01, d11, d21, d02, d12, d22)
    w = 0.5 * math.sqrt(tr1)
    x = (d12 - d21) / w / 4.0
    y = (d20 - d02) / w / 4.0
    z = (d01 - d10) / w / 4.0
    n = math.sqrt(w * w + x * x + y * y + z * z)
    return w / n, x / n, y / n, z / n


# --------------------------------------------------------------------------------------------
# one sample
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def _accept_acc(a2, g, thr):
    """True when the accelerometer may correct: non-zero, and within thr of g unless thr < 0."""
    if not a2 > 0.0:
        return False
    if thr < 0.0:
        return True
    return abs(math.sqrt(a2) - g) <= thr


@nb.njit(cache=True, inline="always")
def _integrate(qw, qx, qy, qz, dw, dx, dy, dz, dt):
    qw = qw + dw * dt
    qx = qx + dx * dt
    qy = qy + dy * dt
    qz = qz + dz * dt
    inv = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    return qw * inv, qx * inv, qy * inv, qz * inv


@nb.njit(cache=True, inline="always")
def madgwick_step(qw, qx, qy, qz, gx, gy, gz, ax, ay, az, mx, my, mz, use_mag, beta, dt, g, thr):
    """One Madgwick update (ahrs updateIMU / updateMARG); gyr in rad/s, q a unit quaternion."""
    if gx == 0.0 and gy == 0.0 and gz == 0.0:
        return qw, qx, qy, qz
    # quaternion rate from the gyroscope: 0.5 * q x (0, w)
    dw = 0.5 * (-qx * gx - qy * gy - qz * gz)
    dx = 0.5 * (qw * gx + qy * gz - qz * gy)
    dy = 0.5 * (qw * gy - qx * gz + qz * gx)
    dz = 0.5 * (qw * gz + qx * gy - qy * gx)
    a2 = ax * ax + ay * ay + az * az
    m2 = mx * mx + my * my + mz * mz if use_mag else 0.0
    if _accept_acc(a2, g, thr):
        inv_a = 1.0 / math.sqrt(a2)
        ax *= inv_a
        ay *= inv_a
        az *= inv_a
        # objective function of gravity: expected minus measured direction, sensor frame
        f0 = 2.0 * (qx * qz - qw * qy) - ax
        f1 = 2.0 * (qw * qx + qy * qz) - ay
        f2 = 2.0 * (0.5 - qx * qx - qy * qy) - az
        # gradient J_g^T f
        s0 = -2.0 * qy * f0 + 2.0 * qx * f1
        s1 = 2.0 * qz * f0 + 2.0 * qw * f1 - 4.0 * qx * f2
        s2 = -2.0 * qw * f0 + 2.0 * qz * f1 - 4.0 * qy * f2
        s3 = 2.0 * qx * f0 + 2.0 * qy * f1
        if m2 > 0.0:
            inv_m = 1.0 / math.sqrt(m2)
            mx *= inv_m
            my *= inv_m
            mz *= inv_m
            # measured field in the world, h = R m; reference keeps its inclination, no east part
            hx = (1.0 - 2.0 * (qy * qy + qz * qz)) * mx + 2.0 * (qx * qy - qw * qz) * my
            hx += 2.0 * (qx * qz + qw * qy) * mz
            hy = 2.0 * (qx * qy + qw * qz) * mx + (1.0 - 2.0 * (qx * qx + qz * qz)) * my
            hy += 2.0 * (qy * qz - qw * qx) * mz
            hz = 2.0 * (qx * qz - qw * qy) * mx + 2.0 * (qw * qx + qy * qz) * my
            hz += (1.0 - 2.0 * (qx * qx + qy * qy)) * mz
            bx = math.sqrt(hx * hx + hy * hy)
            bz = hz
            f3 = 2.0 * bx * (0.5 - qy * qy - qz * qz) + 2.0 * bz * (qx * qz - qw * qy) - mx
            f4 = 2.0 * bx * (qx * qy - qw * qz) + 2.0 * bz * (qw * qx + qy * qz) - my
            f5 = 2.0 * bx * (qw * qy + qx * qz) + 2.0 * bz * (0.5 - qx * qx - qy * qy) - mz
            s0 += -2.0 * bz * qy * f3 + (-2.0 * bx * qz + 2.0 * bz * qx) * f4 + 2.0 * bx * qy * f5
            s1 += (
                2.0 * bz * qz * f3
                + (2.0 * bx * qy + 2.0 * bz * qw) * f4
                + (2.0 * bx * qz - 4.0 * bz * qx) * f5
            )
            s2 += (
                (-4.0 * bx * qy - 2.0 * bz * qw) * f3
                + (2.0 * bx * qx + 2.0 * bz * qz) * f4
                + (2.0 * bx * qw - 4.0 * bz * qy) * f5
            )
            s3 += (-4.0 * bx * qz + 2.0 * bz * qx) * f3 + (-2.0 * bx * qw + 2.0 * bz * qy) * f4
            s3 += 2.0 * bx * qx * f5
        sn2 = s0 * s0 + s1 * s1 + s2 * s2 + s3 * s3
        if sn2 > 0.0:
            k = beta / math.sqrt(sn2)
            dw -= k * s0
            dx -= k * s1
            dy -= k * s2
            dz -= k * s3
    return _integrate(qw, qx, qy, qz, dw, dx, dy, dz, dt)


@nb.njit(cache=True, inline="always")
def mahony_step(
    qw, qx, qy, qz, bx, by, bz, gx, gy, gz, ax, ay, az, mx, my, mz, use_mag, k_p, k_i, dt, g, thr
):
    """One Mahony update (ahrs updateIMU / updateMARG) with bias b (rad/s); gyr in rad/s."""
    if gx == 0.0 and gy == 0.0 and gz == 0.0:
        return qw, qx, qy, qz, bx, by, bz
    a2 = ax * ax + ay * ay + az * az
    m2 = mx * mx + my * my + mz * mz if use_mag else 0.0
    # ahrs corrects only when the accelerometer reads something; it then also uses the magnetometer
    if a2 > 0.0:
        acc_ok = _accept_acc(a2, g, thr)
        ex = 0.0
        ey = 0.0
        ez = 0.0
        if acc_ok or m2 > 0.0:
            # R; its third row is the gravity direction expected in the sensor frame
            r00, r01, r02, r10, r11, r12, r20, r21, r22 = quat_to_matrix(qw, qx, qy, qz)
        if acc_ok:
            inv_a = 1.0 / math.sqrt(a2)
            ex, ey, ez = _cross(ax * inv_a, ay * inv_a, az * inv_a, r20, r21, r22)
        if m2 > 0.0:
            inv_m = 1.0 / math.sqrt(m2)
            mx *= inv_m
            my *= inv_m
            mz *= inv_m
            hx = r00 * mx + r01 * my + r02 * mz
            hy = r10 * mx + r11 * my + r12 * mz
            hz = r20 * mx + r21 * my + r22 * mz
            # reference field: horizontal part on the world y axis (north in ENU), inclination kept
            hn = math.sqrt(hx * hx + hy * hy)
            vx = r10 * hn + r20 * hz
            vy = r11 * hn + r21 * hz
            vz = r12 * hn + r22 * hz
            vn = math.sqrt(vx * vx + vy * vy + vz * vz)
            if vn > 0.0:
                cx, cy, cz = _cross(mx, my, mz, vx / vn, vy / vn, vz / vn)
                ex += cx
                ey += cy
                ez += cz
        if acc_ok or m2 > 0.0:
            bx -= k_i * ex * dt
            by -= k_i * ey * dt
            bz -= k_i * ez * dt
        gx = gx - bx + k_p * ex
        gy = gy - by + k_p * ey
        gz = gz - bz + k_p * ez
    dw = 0.5 * (-qx * gx - qy * gy - qz * gz)
    dx = 0.5 * (qw * gx + qy * gz - qz * gy)
    dy = 0.5 * (qw * gy - qx * gz + qz * gx)
    dz = 0.5 * (qw * gz + qx * gy - qy * gx)
    qw, qx, qy, qz = _integrate(qw, qx, qy, qz, dw, dx, dy, dz, dt)
    return qw, qx, qy, qz, bx, by, bz


# --------------------------------------------------------------------------------------------
# loops over samples
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def madgwick_loop(state, acc, gyr, mag, dt_s, dt_arr, beta, g, thr, start, stop, out):
    """Run samples [start, stop) from `state` (q, 4); writes out[k] and leaves the last q in state."""
    use_mag = mag.shape[0] > 0
    use_dt = dt_arr.shape[0] > 0
    qw = state[0]
    qx = state[1]
    qy = state[2]
    qz = state[3]
    mx = 0.0
    my = 0.0
    mz = 0.0
    dt = dt_s
    for k in range(start, stop):
        if use_mag:
            mx = mag[k, 0]
            my = mag[k, 1]
            mz = mag[k, 2]
        if use_dt:
            dt = dt_arr[k]
        qw, qx, qy, qz = madgwick_step(
            qw,
            qx,
            qy,
            qz,
            gyr[k, 0] * DEG2RAD,
            gyr[k, 1] * DEG2RAD,
            gyr[k, 2] * DEG2RAD,
            acc[k, 0],
            acc[k, 1],
            acc[k, 2],
            mx,
            my,
            mz,
            use_mag,
            beta,
            dt,
            g,
            thr,
        )
        out[k, 0] = qw
        out[k, 1] = qx
        out[k, 2] = qy
        out[k, 3] = qz
    state[0] = qw
    state[1] = qx
    state[2] = qy
    state[3] = qz


@nb.njit(cache=True, inline="always")
def mahony_loop(state, acc, gyr, mag, dt_s, dt_arr, k_p, k_i, g, thr, start, stop, out):
    """Like madgwick_loop; state is (q_w, q_x, q_y, q_z, b_x, b_y, b_z) with the bias in rad/s."""
    use_mag = mag.shape[0] > 0
    use_dt = dt_arr.shape[0] > 0
    qw = state[0]
    qx = state[1]
    qy = state[2]
    qz = state[3]
    bx = state[4]
    by = state[5]
    bz = state[6]
    mx = 0.0
    my = 0.0
    mz = 0.0
    dt = dt_s
    for k in range(start, stop):
        if use_mag:
            mx = mag[k, 0]
            my = mag[k, 1]
            mz = mag[k, 2]
        if use_dt:
            dt = dt_arr[k]
        qw, qx, qy, qz, bx, by, bz = mahony_step(
            qw,
            qx,
            qy,
            qz,
            bx,
            by,
            bz,
            gyr[k, 0] * DEG2RAD,
            gyr[k, 1] * DEG2RAD,
            gyr[k, 2] * DEG2RAD,
            acc[k, 0],
            acc[k, 1],
            acc[k, 2],
            mx,
            my,
            mz,
            use_mag,
            k_p,
            k_i,
            dt,
            g,
            thr,
        )
        out[k, 0] = qw
        out[k, 1] = qx
        out[k, 2] = qy
        out[k, 3] = qz
    state[0] = qw
    state[1] = qx
    state[2] = qy
    state[3] = qz
    state[4] = bx
    state[5] = by
    state[6] = bz


@nb.njit(cache=True, inline="always")
def initial_q(acc, mag, k, madgwick):
    """ahrs's start attitude from sample k: acc2q, or with a magnetometer ecompass (Madgwick) / am2q."""
    if mag.shape[0] > 0:
        if madgwick:
            return ecompass_ned_q(acc[k, 0], acc[k, 1], acc[k, 2], mag[k, 0], mag[k, 1], mag[k, 2])
        return am2q_enu(acc[k, 0], acc[k, 1], acc[k, 2], mag[k, 0], mag[k, 1], mag[k, 2])
    return acc2q(acc[k, 0], acc[k, 1], acc[k, 2])


@nb.njit(cache=True)
def initial_q_py(acc, mag, madgwick):
    """initial_q for sample 0, returned as an array (for Python callers)."""
    out = np.empty(4)
    w, x, y, z = initial_q(acc, mag, 0, madgwick)
    out[0] = w
    out[1] = x
    out[2] = y
    out[3] = z
    return out


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
@nb.njit(cache=True)
def madgwick_run(state, acc, gyr, mag, dt_s, dt_arr, beta, g, thr, start, out):
    """Single sensor: samples [start, N) from state; out[start-1] is expected to hold state already."""
    madgwick_loop(state, acc, gyr, mag, dt_s, dt_arr, beta, g, thr, start, acc.shape[0], out)


@nb.njit(cache=True)
def mahony_run(state, acc, gyr, mag, dt_s, dt_arr, k_p, k_i, g, thr, start, out):
    """Single sensor Mahony: samples [start, N) from state (q and bias)."""
    mahony_loop(state, acc, gyr, mag, dt_s, dt_arr, k_p, k_i, g, thr, start, acc.shape[0], out)


@nb.njit(cache=True, inline="always")
def madgwick_loop_pair(
    sa,
    sb,
    acc_a,
    acc_b,
    gyr_a,
    gyr_b,
    mag_a,
    mag_b,
    dt_a,
    dt_b,
    dtarr_a,
    dtarr_b,
    beta,
    g,
    thr,
    n,
    out_a,
    out_b,
):
    """Two independent sensors advanced in lock step over samples [1, n).

    Per sensor the operations are exactly madgwick_loop's; running two recursions side by side
    lets the core overlap their latency chains (sqrt, division), about 1.4x the throughput.
    """
    use_mag = mag_a.shape[0] > 0
    use_dt = dtarr_a.shape[0] > 0
    aw, ax, ay, az = sa[0], sa[1], sa[2], sa[3]
    bw, bx, by, bz = sb[0], sb[1], sb[2], sb[3]
    ma0 = ma1 = ma2 = mb0 = mb1 = mb2 = 0.0
    for k in range(1, n):
        if use_mag:
            ma0, ma1, ma2 = mag_a[k, 0], mag_a[k, 1], mag_a[k, 2]
            mb0, mb1, mb2 = mag_b[k, 0], mag_b[k, 1], mag_b[k, 2]
        if use_dt:
            dt_a = dtarr_a[k]
            dt_b = dtarr_b[k]
        aw, ax, ay, az = madgwick_step(
            aw,
            ax,
            ay,
            az,
            gyr_a[k, 0] * DEG2RAD,
            gyr_a[k, 1] * DEG2RAD,
            gyr_a[k, 2] * DEG2RAD,
            acc_a[k, 0],
            acc_a[k, 1],
            acc_a[k, 2],
            ma0,
            ma1,
            ma2,
            use_mag,
            beta,
            dt_a,
            g,
            thr,
        )
        bw, bx, by, bz = madgwick_step(
            bw,
            bx,
            by,
            bz,
            gyr_b[k, 0] * DEG2RAD,
            gyr_b[k, 1] * DEG2RAD,
            gyr_b[k, 2] * DEG2RAD,
            acc_b[k, 0],
            acc_b[k, 1],
            acc_b[k, 2],
            mb0,
            mb1,
            mb2,
            use_mag,
            beta,
            dt_b,
            g,
            thr,
        )
        out_a[k, 0], out_a[k, 1], out_a[k, 2], out_a[k, 3] = aw, ax, ay, az
        out_b[k, 0], out_b[k, 1], out_b[k, 2], out_b[k, 3] = bw, bx, by, bz
    sa[0], sa[1], sa[2], sa[3] = aw, ax, ay, az
    sb[0], sb[1], sb[2], sb[3] = bw, bx, by, bz


@nb.njit(cache=True, inline="always")
def mahony_loop_pair(
    sa,
    sb,
    acc_a,
    acc_b,
    gyr_a,
    gyr_b,
    mag_a,
    mag_b,
    dt_a,
    dt_b,
    dtarr_a,
    dtarr_b,
    k_p,
    k_i,
    g,
    thr,
    n,
    out_a,
    out_b,
):
    """Two independent Mahony recursions in lock step over samples [1, n); see madgwick_loop_pair."""
    use_mag = mag_a.shape[0] > 0
    use_dt = dtarr_a.shape[0] > 0
    aw, ax, ay, az, abx, aby, abz = sa[0], sa[1], sa[2], sa[3], sa[4], sa[5], sa[6]
    bw, bx, by, bz, bbx, bby, bbz = sb[0], sb[1], sb[2], sb[3], sb[4], sb[5], sb[6]
    ma0 = ma1 = ma2 = mb0 = mb1 = mb2 = 0.0
    for k in range(1, n):
        if use_mag:
            ma0, ma1, ma2 = mag_a[k, 0], mag_a[k, 1], mag_a[k, 2]
            mb0, mb1, mb2 = mag_b[k, 0], mag_b[k, 1], mag_b[k, 2]
        if use_dt:
            dt_a = dtarr_a[k]
            dt_b = dtarr_b[k]
        aw, ax, ay, az, abx, aby, abz = mahony_step(
            aw,
            ax,
            ay,
            az,
            abx,
            aby,
            abz,
            gyr_a[k, 0] * DEG2RAD,
            gyr_a[k, 1] * DEG2RAD,
            gyr_a[k, 2] * DEG2RAD,
            acc_a[k, 0],
            acc_a[k, 1],
            acc_a[k, 2],
            ma0,
            ma1,
            ma2,
            use_mag,
            k_p,
            k_i,
            dt_a,
            g,
            thr,
        )
        bw, bx, by, bz, bbx, bby, bbz = mahony_step(
            bw,
            bx,
            by,
            bz,
            bbx,
            bby,
            bbz,
            gyr_b[k, 0] * DEG2RAD,
            gyr_b[k, 1] * DEG2RAD,
            gyr_b[k, 2] * DEG2RAD,
            acc_b[k, 0],
            acc_b[k, 1],
            acc_b[k, 2],
            mb0,
            mb1,
            mb2,
            use_mag,
            k_p,
            k_i,
            dt_b,
            g,
            thr,
        )
        out_a[k, 0], out_a[k, 1], out_a[k, 2], out_a[k, 3] = aw, ax, ay, az
        out_b[k, 0], out_b[k, 1], out_b[k, 2], out_b[k, 3] = bw, bx, by, bz
    sa[0], sa[1], sa[2], sa[3], sa[4], sa[5], sa[6] = aw, ax, ay, az, abx, aby, abz
    sb[0], sb[1], sb[2], sb[3], sb[4], sb[5], sb[6] = bw, bx, by, bz, bbx, bby, bbz


@nb.njit(cache=True, parallel=True)
def madgwick_run_many(states, init, acc, gyr, mag, dt_s, dt_arr, beta, g, thr, out):
    """S independent sensors, inputs (S, N, 3), mag (S, 0, 3) when absent, dt_arr (S, N) or (S, 0).

    Pairs of sensors are spread over the threads and advanced side by side; per sensor the
    recursion is exactly the single-sensor one. With init the start attitude comes from sample 0
    as ahrs does, else from states (S, 4).
    """
    n_sensors = acc.shape[0]
    n = acc.shape[1]
    for p in nb.prange((n_sensors + 1) // 2):
        a = 2 * p
        b = min(a + 1, n_sensors - 1)
        for s in range(a, b + 1):
            if init:
                states[s, 0], states[s, 1], states[s, 2], states[s, 3] = initial_q(acc[s], mag[s], 0, True)
            for c in range(4):
                out[s, 0, c] = states[s, c]
        if b == a:
            madgwick_loop(states[a], acc[a], gyr[a], mag[a], dt_s[a], dt_arr[a], beta, g, thr, 1, n, out[a])
        else:
            madgwick_loop_pair(
                states[a],
                states[b],
                acc[a],
                acc[b],
                gyr[a],
                gyr[b],
                mag[a],
                mag[b],
                dt_s[a],
                dt_s[b],
                dt_arr[a],
                dt_arr[b],
                beta,
                g,
                thr,
                n,
                out[a],
                out[b],
            )


@nb.njit(cache=True, parallel=True)
def mahony_run_many(states, init, acc, gyr, mag, dt_s, dt_arr, k_p, k_i, g, thr, out):
    """Mahony over S independent sensors; states (S, 7) hold q and bias (rad/s); see madgwick_run_many."""
    n_sensors = acc.shape[0]
    n = acc.shape[1]
    for p in nb.prange((n_sensors + 1) // 2):
        a = 2 * p
        b = min(a + 1, n_sensors - 1)
        for s in range(a, b + 1):
            if init:
                states[s, 0], states[s, 1], states[s, 2], states[s, 3] = initial_q(acc[s], mag[s], 0, False)
            for c in range(4):
                out[s, 0, c] = states[s, c]
        if b == a:
            mahony_loop(states[a], acc[a], gyr[a], mag[a], dt_s[a], dt_arr[a], k_p, k_i, g, thr, 1, n, out[a])
        else:
            mahony_loop_pair(
                states[a],
                states[b],
                acc[a],
                acc[b],
                gyr[a],
                gyr[b],
                mag[a],
                mag[b],
                dt_s[a],
                dt_s[b],
                dt_arr[a],
                dt_arr[b],
                k_p,
                k_i,
                g,
                thr,
                n,
                out[a],
                out[b],
            )


@nb.njit(cache=True, parallel=True)
def run_segments(bounds, madgwick, acc, gyr, mag, dt_s, dt_arr, p0, p1, bias0, g, thr, out):
    """Independent filter runs over contiguous row ranges [bounds[i], bounds[i+1]) of one table.

    Each segment starts as ahrs does (from its first sample) with Mahony bias `bias0` (rad/s);
    dt_s holds one fixed step per segment; p0, p1 are (beta, unused) for Madgwick, (k_p, k_i) for
    Mahony. Segments are spread over the threads.
    """
    for i in nb.prange(bounds.shape[0] - 1):
        start = bounds[i]
        stop = bounds[i + 1]
        if stop <= start:
            continue
        state = np.empty(7)
        state[0], state[1], state[2], state[3] = initial_q(acc, mag, start, madgwick)
        state[4] = bias0[0]
        state[5] = bias0[1]
        state[6] = bias0[2]
        for c in range(4):
            out[start, c] = state[c]
        if madgwick:
            madgwick_loop(state, acc, gyr, mag, dt_s[i], dt_arr, p0, g, thr, start + 1, stop, out)
        else:
            mahony_loop(state, acc, gyr, mag, dt_s[i], dt_arr, p0, p1, g, thr, start + 1, stop, out)
