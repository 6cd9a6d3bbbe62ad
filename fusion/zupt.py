"""Velocity and position of the foot by integration with zero-velocity updates (ZUPT).

Method (linear de-drift, chosen over an error-state Kalman filter for being exact on its own
assumptions and cheap): the specific force is rotated into the world frame, gravity removed
and integrated (trapezoid) to velocity. Velocity is zero on every zero-velocity sample; over
each motion gap between two zero-velocity samples the velocity error that accumulated by the
end of the gap (the velocity should be zero there) is removed as a ramp linear in time, which
cancels any constant acceleration error (bias, gravity or tilt error) over the gap exactly.
Position is the trapezoid integral of the de-drifted velocity. Before the first and after the
last zero-velocity sample there is nothing to correct against: velocity there is integrated
from the nearest zero-velocity sample without de-drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from strideflow.hardware.frames import rotation_from_wxyz
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2


@dataclass(frozen=True)
class ZuptSettings:
    """Settings of `ZuptIntegrator`.

    gravity_mps2: gravity removed from the world-frame specific force (m/s²).
    estimate_gravity: use the mean world vertical specific force over the zero-velocity samples
        instead (absorbs accelerometer scale error; the de-drift removes the rest anyway).
    """

    gravity_mps2: float = STANDARD_GRAVITY_MPS2
    estimate_gravity: bool = False


def _cumtrapz(x: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral along axis 0, starting at 0; dt[i] = t[i+1] - t[i]."""
    out = np.zeros_like(x)
    out[1:] = np.cumsum(0.5 * (x[1:] + x[:-1]) * dt[:, None], axis=0)
    return out


class ZuptIntegrator:
    """World-frame velocity and position of the foot, drift removed between zero-velocity periods."""

    def __init__(self, settings: ZuptSettings | None = None) -> None:
        self.settings = settings if settings is not None else ZuptSettings()

    def estimate(
        self,
        acc_mps2: np.ndarray,
        q_wxyz: np.ndarray,
        zero_velocity: np.ndarray,
        sampling_rate_hz: float,
        t_s: np.ndarray | None = None,
    ):
        """Fill `acc_world_mps2_`, `velocity_mps_`, `position_m_` (N, 3; world frame, z up, m/s², m/s, m).

        `t_s` (s) overrides the uniform time axis given by `sampling_rate_hz`.
        """
        acc = np.asarray(acc_mps2, dtype=float)
        q = np.asarray(q_wxyz, dtype=float)
        zv = np.asarray(zero_velocity, dtype=bool)
        n = acc.shape[0]
        if acc.shape != (n, 3) or q.shape != (n, 4) or zv.shape != (n,):
            raise ValueError(
                f"need acc (N,3), q (N,4), zero_velocity (N,); got {acc.shape} {q.shape} {zv.shape}"
            )
        t = np.arange(n) / float(sampling_rate_hz) if t_s is None else np.asarray(t_s, dtype=float)
        dt = np.diff(t)

        a_world = rotation_from_wxyz(q).apply(acc) if n else np.zeros((0, 3))
        g = self.settings.gravity_mps2
        if self.settings.estimate_gravity and zv.any():
            g = float(a_world[zv, 2].mean())
        a_world = a_world - np.array([0.0, 0.0, g])
        v_raw = _cumtrapz(a_world, dt)

        idx = np.arange(n)
        has_zv = zv.any()
        prev = np.maximum.accumulate(np.where(zv, idx, -1))
        nxt = np.minimum.accumulate(np.where(zv, idx, n)[::-1])[::-1]
        velocity = np.zeros_like(v_raw)
        if has_zv:
            inner = (~zv) & (prev >= 0) & (nxt < n)
            p, q_ = prev[inner], nxt[inner]
            frac = ((t[inner] - t[p]) / (t[q_] - t[p]))[:, None]
            velocity[inner] = v_raw[inner] - v_raw[p] - frac * (v_raw[q_] - v_raw[p])
            head = (~zv) & (prev < 0)
            velocity[head] = v_raw[head] - v_raw[nxt[head]]
            tail = (~zv) & (nxt >= n)
            velocity[tail] = v_raw[tail] - v_raw[prev[tail]]
        else:
            velocity = v_raw
        self.gravity_mps2_ = g
        self.acc_world_mps2_ = a_world
        self.velocity_mps_ = velocity
        self.position_m_ = _cumtrapz(velocity, dt)
        return self


@numba.njit(cache=True)
def _anchored_strapdown(gyr_rps, ref_acc, zv, dt):  # pragma: no cover - compiled
    n = gyr_rps.shape[0]
    q = np.zeros((n, 4))
    w, x, y, z = 1.0, 0.0, 0.0, 0.0
    for i in range(n):
        if zv[i]:
            # Tilt from the still period's mean specific force, heading kept from the integration.
            yaw = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
            a = ref_acc[i]
            na = np.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
            ux, uy, uz = a[0] / na, a[1] / na, a[2] / na
            th = np.arcsin(min(max(-ux, -1.0), 1.0))
            ph = np.arctan2(uy, uz)
            cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
            cp, sp = np.cos(th / 2), np.sin(th / 2)
            cr, sr = np.cos(ph / 2), np.sin(ph / 2)
            w = cy * cp * cr + sy * sp * sr
            x = cy * cp * sr - sy * sp * cr
            y = cy * sp * cr + sy * cp * sr
            z = sy * cp * cr - cy * sp * sr
        q[i, 0], q[i, 1], q[i, 2], q[i, 3] = w, x, y, z
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
            w, x, y, z = (
                w * dw - x * dx - y * dy - z * dz,
                w * dx + x * dw + y * dz - z * dy,
                w * dy - x * dz + y * dw + z * dx,
                w * dz + x * dy - y * dx + z * dw,
            )
            nq = np.sqrt(w * w + x * x + y * y + z * z)
            w, x, y, z = w / nq, x / nq, y / nq, z / nq
    return q


def zero_velocity_aided_orientation(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    zero_velocity: np.ndarray,
    sampling_rate_hz: float,
    t_s: np.ndarray | None = None,
) -> np.ndarray:
    """Orientation (N, 4) wxyz by gyro integration, levelled on every zero-velocity sample.

    On a zero-velocity sample roll and pitch are set from the mean specific force of its still
    period (heading is kept), in between the gyro is integrated. A simple stand-in when no AHRS
    output is at hand: over one stride gyro integration drifts far less than a degree. Before
    the first still period the orientation starts level with heading 0.
    """
    from strideflow.fusion.zero_velocity import mask_to_periods

    acc = np.asarray(acc_mps2, dtype=float)
    zv = np.asarray(zero_velocity, dtype=bool)
    n = acc.shape[0]
    t = np.arange(n) / float(sampling_rate_hz) if t_s is None else np.asarray(t_s, dtype=float)
    ref = np.tile(np.array([0.0, 0.0, 1.0]), (n, 1))
    periods = mask_to_periods(zv)
    if len(periods):
        c = np.concatenate([np.zeros((1, 3)), np.cumsum(acc, axis=0)])
        means = (c[periods[:, 1]] - c[periods[:, 0]]) / (periods[:, 1] - periods[:, 0])[:, None]
        which = np.repeat(np.arange(len(periods)), periods[:, 1] - periods[:, 0])
        ref[zv] = means[which]
    gyr = np.radians(np.asarray(gyr_dps, dtype=float))
    return _anchored_strapdown(gyr, ref, zv, np.diff(t) if n > 1 else np.zeros(0))
