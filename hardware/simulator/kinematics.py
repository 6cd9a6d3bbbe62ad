"""Exact foot motion: orientation from C2 splines of yaw, pitch and roll, position from rolling contact.

(Over ~500 lines: one exact motion model: the orientation splines and the rolling-contact
position depend on each other's knots.)

Orientation. The foot frame (sensor -> world) is R = Rz(psi) Ry(-theta) Rx(phi): theta is the
pitch (toes up positive) and phi the roll of frames.roll_pitch_deg, psi the heading. Each angle is a
quintic Hermite spline through knots with given value, rate and second derivative, so angle, rate
and angular acceleration are continuous and exact everywhere. The body angular velocity follows
from the Euler-rate relation of this ZYX sequence (with beta = -theta)

    omega_b = [phi' + psi' sin(theta),
               -theta' cos(phi) + psi' cos(theta) sin(phi),
               theta' sin(phi) + psi' cos(theta) cos(phi)],

and the angular acceleration from its time derivative.

Position. On the ground the foot rotates about a fixed contact point c (heel for a rearfoot strike,
midfoot or ball of the foot otherwise, then the ball of the foot from heel-off to toe-off), so the
sensor is at p = c + R l with the body-fixed lever l = r_sensor - r_contact. The foot-flat is still
because every angle knot there has zero rate and acceleration, unless the stance rolls
(`stance_roll_dps`, running): then pitch falls at that rate from foot-flat to heel-off while the
contact moves along the sole from the landing point to the ball of the foot (the same smooth step
as in swing, in the body and on the floor alike), so the sensor moves and no sample is still.
In swing the contact point and lever blend with a quintic smooth step from the toe-off contact
(ball of the foot) to the next landing contact, plus a lift bump, which keeps position, velocity
and acceleration continuous at toe-off and IC. The specific force in the foot frame is

    f_b = l'' + 2 w x l' + w' x l + w x (w x l) + R^T (c'' + a_impact + [0, 0, g]).

Impact: after each IC the sensor position rings as tau^3 exp(-zeta w tau) sin(w tau) (mm scale); it
starts with zero position, velocity, acceleration and jerk and dies out, so it integrates to no drift.
The pod also rocks on the shoe upper with the same ringing, an angle delta(t) about the fixed pod
axis IMPACT_GYR_AXIS through the sensor point, scaled so that its peak rate is the gait's
`impact_gyr_dps` (a few deg/s walking, tens running): the sensor frame is R B with B = Rot(e, delta),
so the gyro reads B^T omega + delta' e and the accelerometer B^T f. The angle is 0.03-0.25 deg at its
peak and dies out with the ringing; the truth metrics are those of the shoe (the splines), without it.

Compliant mount (opt-in, `mount_compliance_s2` kappa > 0): a pod held by a clip or strap on the
upper is a small mass on a soft, damped rotational spring, so the shoe's angular acceleration alpha
(body frame) tilts it backwards on the shoe: tau d' + d = D tanh(-kappa alpha / D) about the shoe's
x and y axes (the strap holds the twist about z; D = `MOUNT_MAX_TILT_RAD`, where the pod meets the
upper), d = (a, b), M = Rx(a) Ry(b), turning about the pod's base on the
upper `MOUNT_PIVOT_M` below the sensor. The sensor frame is R M and the sensor point c + R (l + (M - I)
d_pivot), so the gyro reads M^T omega + omega_M and the accelerometer M^T f with f from the moved
lever. A still foot-flat has alpha = 0 and the tilt dies out within tau; a rolling stance (and a
short running stance still ringing from the heel strike) keeps one that varies with the stride's
motion. The rigid lever the analysis assumes (`fusion.zupt.POD_LEVER_M`) reads the pod's own turn
as the foot turning about its contact: the levelling's gravity reading at such an anchor is off.
The truth metrics stay the shoe's (the splines); `truth_orientation_` carries the pod's frame.

Toe-out: the shoe's heading on the ground is the walking direction turned outward by the stance's
foot progression angle (left: +yaw, right: -yaw), so pitch and roll, which are about the foot
frame's own axes, are about the shoe's axes, and the walking direction is not the shoe's x axis.

Push-off timing: pitch falls from heel-off to toe-off in one quintic piece ending at the peak rate
`push_off_shape` x toe-off angle / push-off time, which stays monotone for shapes up to 2.45 (the
gaitmap heel pods' walker: 2.05). A late push-off, where the heel rises slowly and the foot
plantarflexes mostly in the last 40 % (the LORD footprint walkers, shape ~3), gets a second piece
joined at 60 % of the push-off (`_late_push_knot`); the rate still peaks at toe-off.

Push-off about an oblique MTP axis: from heel-off the heel first rises about the metatarsal break
line, which makes an angle m (`mtp_break_angle_deg`, ~60 deg) with the long axis, i.e. an axis turned
alpha = 90 - m from the medio-lateral one with its lateral end behind; rising about it inverts the
shoe, d(pronation)/d(pitch) = tan(alpha), so the angular rate at heel-off lies along the oblique axis
(-sign tan(alpha), 1, 0). The foot then rolls medially onto the first MTP (Bojsen-Moller 1979) and
reaches the athlete's toe-off pronation at toe-off (`PushOffRoll`), so the truth
`toe_off_pronation_deg` stays the drawn parameter. At toe-off it turns about an axis oblique to the
shoe's y axis by beta (the stance's `toe_off_axis_deg`, around `AthleteParams.toe_off_axis`,
+ everting): real feet do (imu_sample.csv
+17 / +25 deg), a purely transverse end would hide the error a late or early toe-off instant makes
in the toe-off pronation. With no yaw rate there, the body rate is (phi', -theta' cos phi, .), so
tan(beta) = p' / (-theta' cos phi) fixes the roll rate p' at toe-off; after toe-off the roll
decelerates to rest in the same normalised shape as the pitch, keeping that axis until then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from strideflow.hardware.frames import pronation_sign
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2
from strideflow.hardware.simulator.params import AthleteParams
from strideflow.hardware.simulator.schedule import FootTimeline

IMPACT_DAMPING = 0.8  # zeta of the impact ringing, per radian of its oscillation
IMPACT_TILT_RAD = np.deg2rad(20.0)  # impact acceleration leans backward from vertical by this
IMPACT_DURATION_S = 0.3  # after this the ringing is below 1e-30 of its peak: cut to zero
# Pod axis the impact ringing rocks about (left foot; mirrored on the right): mostly a nod about the
# medio-lateral axis, with some roll and yaw, so every gyro axis sees it.
IMPACT_GYR_AXIS = np.array([0.35, 1.0, 0.2]) / np.linalg.norm([0.35, 1.0, 0.2])
# Compliant pod mount (`FootMotion` mount_compliance_s2, off by default; see the module doc).
# The level (tilt per angular acceleration, s²) is set from the real fast footprint walks (LORD pod,
# issue 17, benchmarks/README round seven): their levelling's gravity reading at the rolling stance
# anchors errs by an SD of 1.1-1.9 deg per anchor (normal walks 0-0.7 deg, the rigid simulator
# 0.01-0.14 deg), consecutive corrections correlated -0.26 to -0.55, growing with the foot's rate
# (Spearman 0.42) and angular acceleration (0.48) at the anchor, ~1-2 cm per stride. 7e-4 s² (with
# the 2 deg stop below) gives the simulated runners' anchors an SD of 0.3-2.2 deg (median 1.1; 0.5-1.7
# on rolling stances), the walkers' 0.0-0.3 deg, and the runners' stride length a median abs error
# of 2.0 cm (rigid 0.5 cm); 4 athletes x 20 s each.
MOUNT_COMPLIANCE_S2 = 7e-4
MOUNT_TIME_CONSTANT_S = 0.02  # the strap's damping: the tilt follows the load within ~20 ms
# the pod meets the upper: the load's tilt D tanh(-kappa alpha / D) stays within D (the swing's and the
# impact's angular accelerations, hundreds of rad/s², would tilt a linear mount by tens of degrees)
MOUNT_MAX_TILT_RAD = np.deg2rad(2.0)
MOUNT_GRID_HZ = 1000.0  # the tilt equation is integrated on this grid
MOUNT_PIVOT_M = 0.01  # the pod turns about its base on the upper, this far below the sensor (pod z)
SWING_ACCEL_FRACTION = 0.25  # swing pitch: accelerate over this fraction of the swing, then a plateau
PUSH_DECEL_SHAPE = 2.2  # normalised rate at toe-off of the post-toe-off deceleration piece
# Late push-off (`push_off_shape` S above PUSH_QUINTIC_MAX_SHAPE, see `_late_push_knot`): one quintic
# from heel-off to toe-off stays monotone only for S <= 2.5; a second piece, joined at this fraction
# of the push-off, carries S up to params.PUSH_SHAPE_RANGE's 4.0 with the rate still rising to its
# peak at toe-off.
PUSH_QUINTIC_MAX_SHAPE = 2.45
PUSH_POWER_SHAPE = 3.0  # from this S the join lies on x = u^S
PUSH_KNOT_FRACTION = 0.6
PRE_IC_SHAPE = 1.5  # normalised rate at IC of the late-swing piece (heel strike)


class QuinticHermite:
    """C2 piecewise quintic through knots x with values y, first dy and second derivatives d2y.

    Beyond the end knots the end values hold (the end knots carry zero derivatives here).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, dy: np.ndarray, d2y: np.ndarray) -> None:
        x = np.asarray(x, float)
        if x.ndim != 1 or len(x) < 2 or np.any(np.diff(x) <= 0.0):
            bad = np.flatnonzero(np.diff(x) <= 0.0)[:3]
            raise ValueError(f"knots must increase strictly; not at {x[bad]}")
        self.x, self.y, self.dy, self.d2y = (
            x,
            np.asarray(y, float),
            np.asarray(dy, float),
            np.asarray(d2y, float),
        )

    def evaluate(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Value, first and second derivative at times t."""
        x = self.x
        i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
        h = x[i + 1] - x[i]
        u = np.clip((t - x[i]) / h, 0.0, 1.0)
        u2, u3 = u * u, u * u * u
        u4, u5 = u3 * u, u3 * u2
        y0, y1 = self.y[i], self.y[i + 1]
        d0, d1 = self.dy[i] * h, self.dy[i + 1] * h
        a0, a1 = self.d2y[i] * h * h, self.d2y[i + 1] * h * h
        # basis: h00, h10 (slope), h20 (curvature) at the left knot; h01, h11, h21 at the right
        h00 = 1 - 10 * u3 + 15 * u4 - 6 * u5
        h10 = u - 6 * u3 + 8 * u4 - 3 * u5
        h20 = 0.5 * u2 - 1.5 * u3 + 1.5 * u4 - 0.5 * u5
        h21 = 0.5 * u3 - u4 + 0.5 * u5
        h11 = -4 * u3 + 7 * u4 - 3 * u5
        h01 = 10 * u3 - 15 * u4 + 6 * u5
        f = y0 * h00 + d0 * h10 + a0 * h20 + a1 * h21 + d1 * h11 + y1 * h01
        dh00 = -30 * u2 + 60 * u3 - 30 * u4
        dh10 = 1 - 18 * u2 + 32 * u3 - 15 * u4
        dh20 = u - 4.5 * u2 + 6 * u3 - 2.5 * u4
        dh21 = 1.5 * u2 - 4 * u3 + 2.5 * u4
        dh11 = -12 * u2 + 28 * u3 - 15 * u4
        df = (y0 - y1) * dh00 + d0 * dh10 + a0 * dh20 + a1 * dh21 + d1 * dh11
        ddh00 = -60 * u + 180 * u2 - 120 * u3
        ddh10 = -36 * u + 96 * u2 - 60 * u3
        ddh20 = 1 - 9 * u + 18 * u2 - 10 * u3
        ddh21 = 3 * u - 12 * u2 + 10 * u3
        ddh11 = -24 * u + 84 * u2 - 60 * u3
        d2f = (y0 - y1) * ddh00 + d0 * ddh10 + a0 * ddh20 + a1 * ddh21 + d1 * ddh11
        outside = (t < x[0]) | (t > x[-1])
        df = np.where(outside, 0.0, df / h)
        d2f = np.where(outside, 0.0, d2f / (h * h))
        return f, df, d2f


class PushOffRoll:
    """Roll (deg): the quintic spline `base`, except from heel-off to toe-off, where it follows the
    pitch: p = p_ff + P(x), x = (pitch - pitch at heel-off) / (pitch at toe-off - pitch at heel-off)
    (0 at heel-off, 1 at toe-off),

        P(x) = a x (1 - x)^3 + D x^2 (6 - 8x + 3x^2) + c x^3 (x - 1)(4 - 3x),
        a = tan(alpha) * (pitch at heel-off - at toe-off), D = p_to - p_ff,
        c = tan(beta) cos(roll at toe-off) (pitch at heel-off - at toe-off).

    dp/d(pitch) = tan(alpha) at heel-off: the heel starts rising about the oblique MTP axis (inverting);
    P(1) = D, P'(1) = c, P''(1) = 0: the push-off ends with the toe-off pronation D, turning about the
    axis beta from the shoe's y axis, with zero roll acceleration; the spline takes over with that rate
    (its toe-off knot carries it). The c term is flat to second order at heel-off. C2 throughout: pitch
    has zero acceleration at heel-off, and zero rate too unless the stance rolls (`stance_roll_dps`), in
    which case the spline's heel-off knot carries P's rate and acceleration there. Roll = sign * p;
    `evaluate` as QuinticHermite's.
    """

    def __init__(
        self, base, pitch, ho, to, toe_off_deg, tan_alpha, p_ff, p_to, sign, theta_ho=None, c=None
    ) -> None:
        keep = np.isfinite(ho) & np.isfinite(to)
        self.base, self.pitch, self.sign = base, pitch, sign
        self.ho, self.to = ho[keep], to[keep]
        self.theta_ho = np.zeros(int(keep.sum())) if theta_ho is None else np.asarray(theta_ho)[keep]
        self.theta_to = -toe_off_deg[keep]
        self.a = -tan_alpha * (toe_off_deg[keep] + self.theta_ho)
        self.d = (p_to - p_ff)[keep]
        self.p_ff = p_ff[keep]
        self.c = np.zeros(int(keep.sum())) if c is None else np.asarray(c)[keep]

    def evaluate(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Value, first and second derivative at times t."""
        t = np.asarray(t, float)
        f, df, d2f = self.base.evaluate(t)
        k = np.searchsorted(self.ho, t, side="right") - 1
        inside = (k >= 0) & (t < self.to[np.maximum(k, 0)])
        if not np.any(inside):
            return f, df, d2f
        f, df, d2f = f.copy(), df.copy(), d2f.copy()
        j = k[inside]
        th, dth, d2th = self.pitch.evaluate(t[inside])
        span = self.theta_to[j] - self.theta_ho[j]
        x, dx, d2x = (th - self.theta_ho[j]) / span, dth / span, d2th / span
        a, d, c = self.a[j], self.d[j], self.c[j]
        u = 1.0 - x
        x2 = x * x
        p = a * x * u**3 + d * x2 * (6.0 - 8.0 * x + 3.0 * x2) + c * x2 * x * (-3.0 * x2 + 7.0 * x - 4.0)
        dp = a * u * u * (1.0 - 4.0 * x) + d * 12.0 * x * u * u + c * x2 * (-15.0 * x2 + 28.0 * x - 12.0)
        d2p = (
            a * u * (-6.0 + 12.0 * x)
            + d * 12.0 * u * (1.0 - 3.0 * x)
            + c * x * (-60.0 * x2 + 84.0 * x - 24.0)
        )
        s = self.sign
        f[inside] = s * (self.p_ff[j] + p)
        df[inside] = s * dp * dx
        d2f[inside] = s * (d2p * dx * dx + dp * d2x)
        return f, df, d2f


def _impact_shape(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G(x) = x^3 exp(-zeta x) sin(x) and its first two derivatives in x.

    x^3 makes position, velocity, acceleration and jerk start from zero at IC.
    """
    s = complex(-IMPACT_DAMPING, 1.0)
    e = np.exp(s * x)
    x2 = x * x
    return (
        np.imag(x2 * x * e),
        np.imag((3 * x2 + s * x2 * x) * e),
        np.imag((6 * x + 6 * s * x2 + s * s * x2 * x) * e),
    )


_IMPACT_PEAK = float(np.max(np.abs(_impact_shape(np.linspace(0.0, 30.0, 300_001))[2])))
_IMPACT_RATE_PEAK = float(np.max(np.abs(_impact_shape(np.linspace(0.0, 30.0, 300_001))[1])))


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (N, 4) scalar-first quaternions a * b."""
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=1,
    )


def _rotate_back(axis: np.ndarray, angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    """B^T v for B = Rot(axis, angle) (Rodrigues), per row of v (N, 3) and angle (N,)."""
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return v * c - np.cross(axis, v) * s + np.outer(v @ axis, axis) * (1.0 - c)


def _late_push_knot(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised pitch x (0 at heel-off, 1 at toe-off), dx/du and d2x/du2 at u = PUSH_KNOT_FRACTION
    of the push-off time, for push-off shapes S >= PUSH_QUINTIC_MAX_SHAPE.

    The join moves from the one-piece quintic of shape S0 = PUSH_QUINTIC_MAX_SHAPE (x = (10 - 4 S0) u^3
    + (7 S0 - 15) u^4 + (6 - 3 S0) u^5, so S = S0 is that quintic exactly) to the power curve x = u^S
    (reached at PUSH_POWER_SHAPE), linearly in S. The power curve is what the LORD footprint walkers'
    pitch follows from heel-off to toe-off (normalised pitch 0.11, 0.24, 0.49, 0.71 at 40, 60, 80,
    90 % of the push-off, walks 31-33, 36, 45; benchmarks/README.md); a quintic can not bend that late.
    Both pieces then rise monotonically with a rate that grows to its peak at toe-off for S up to 4.0
    (`params.PUSH_SHAPE_RANGE`).
    """
    s0, u = PUSH_QUINTIC_MAX_SHAPE, PUSH_KNOT_FRACTION
    a, b, c = 10.0 - 4.0 * s0, 7.0 * s0 - 15.0, 6.0 - 3.0 * s0
    quintic = (
        a * u**3 + b * u**4 + c * u**5,
        3.0 * a * u**2 + 4.0 * b * u**3 + 5.0 * c * u**4,
        6.0 * a * u + 12.0 * b * u**2 + 20.0 * c * u**3,
    )
    power = (u**shape, shape * u ** (shape - 1.0), shape * (shape - 1.0) * u ** (shape - 2.0))
    w = np.clip((shape - s0) / (PUSH_POWER_SHAPE - s0), 0.0, 1.0)
    return tuple((1.0 - w) * q + w * p for q, p in zip(quintic, power, strict=True))


def _stack_knots(
    columns: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], end_s: float, end_value: float
):
    """Interleave per-stance knots (time, y, dy, d2y) in cycle order, drop absent ones, close at end_s."""
    t = np.stack([c[0] for c in columns], axis=1).ravel()
    parts = [
        np.stack([np.broadcast_to(c[j], c[0].shape) for c in columns], axis=1).ravel() for j in (1, 2, 3)
    ]
    keep = np.isfinite(t)
    t, y, dy, d2y = t[keep], parts[0][keep], parts[1][keep], parts[2][keep]
    if t[-1] < end_s:
        t, y = np.append(t, end_s), np.append(y, end_value)
        dy, d2y = np.append(dy, 0.0), np.append(d2y, 0.0)
    return QuinticHermite(t, y, dy, d2y)


def _body_rate(th: np.ndarray, ph: np.ndarray, ps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body angular velocity and acceleration (N, 3), rad/s and rad/s², from the (3, N) stacks of
    (value, rate, acceleration) of pitch, roll and heading (the module doc's Euler-rate relation)."""
    (th0, th1, th2), (ph0, ph1, ph2), (ps1, ps2) = th, ph, ps[1:]
    st, ct, sp, cp = np.sin(th0), np.cos(th0), np.sin(ph0), np.cos(ph0)
    w = np.stack([ph1 + ps1 * st, -th1 * cp + ps1 * ct * sp, th1 * sp + ps1 * ct * cp], axis=1)
    wd = np.stack(
        [
            ph2 + ps2 * st + ps1 * th1 * ct,
            -th2 * cp + th1 * ph1 * sp + ps2 * ct * sp - ps1 * th1 * st * sp + ps1 * ph1 * ct * cp,
            th2 * sp + th1 * ph1 * cp + ps2 * ct * cp - ps1 * th1 * st * cp - ps1 * ph1 * ct * sp,
        ],
        axis=1,
    )
    return w, wd


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


@dataclass
class MotionSample:
    """Exact motion at given times (foot frame unless 'world'); angles in rad."""

    t: np.ndarray
    theta: np.ndarray  # pitch, rad (toes up +)
    phi: np.ndarray  # roll about the foot x axis, rad
    psi: np.ndarray  # heading, rad
    rates: np.ndarray  # (N, 3) d/dt of (theta, phi, psi), rad/s
    quat_wxyz: np.ndarray  # (N, 4) foot frame -> world
    gyr_dps: np.ndarray  # (N, 3) body angular velocity, deg/s
    acc_mps2: np.ndarray  # (N, 3) specific force R^T (a + g), m/s^2
    pos_m: np.ndarray  # (N, 3) sensor position, world
    vel_mps: np.ndarray  # (N, 3) sensor velocity, world


class FootMotion:
    """The exact motion of one foot's sensor over a session, evaluable at any times."""

    def __init__(
        self,
        timeline: FootTimeline,
        athlete: AthleteParams,
        foot: str,
        impact_gyro: bool = True,
        mount_compliance_s2: float = 0.0,
        mount_time_constant_s: float = MOUNT_TIME_CONSTANT_S,
    ) -> None:
        self.timeline, self.athlete, self.foot = timeline, athlete, foot
        self.sign = pronation_sign(foot)
        tl, v = timeline, timeline.values
        nxt = self._next
        # ---------- pitch (deg) ----------
        loading = tl.ffs - tl.ic
        strike = v["strike_angle_deg"]
        peak = strike + v["pre_ic_dorsiflexion_deg"]
        heel = strike > 0.0
        ic_rate = np.where(
            heel,
            -np.minimum(PRE_IC_SHAPE * v["pre_ic_dorsiflexion_deg"] / v["pre_ic_s"], 2.0 * strike / loading),
            0.0,
        )
        toe_off = v["toe_off_angle_deg"]
        push_s = tl.to - tl.ho
        push_rate = v["push_off_shape"] * toe_off / push_s  # peak plantarflexion rate, at toe-off
        te = tl.to + v["post_toe_off_s"]
        theta_min = -toe_off - push_rate * v["post_toe_off_s"] / PUSH_DECEL_SHAPE
        tp = tl.ic - v["pre_ic_s"]
        tp_next, peak_next = nxt(tp), nxt(peak)
        swing_s = tp_next - te
        tau = SWING_ACCEL_FRACTION * swing_s
        v_swing = (peak_next - theta_min) / (swing_s - tau)
        zero = np.zeros(tl.n)
        # a rolling stance (running): pitch falls at `stance_roll_dps` from foot-flat to heel-off,
        # only in stances a stride of gait leaves from (standing before and after a bout is still)
        mid_gait = np.isfinite(tl.ho) & tl.gait
        roll_rate = np.where(mid_gait, -v["stance_roll_dps"], 0.0)
        theta_ho = np.where(mid_gait, roll_rate * (tl.ho - tl.ffs), 0.0)
        # a late push-off (shape above one quintic's reach) gets a second piece: the join's knot
        shape = v["push_off_shape"]
        late = shape > PUSH_QUINTIC_MAX_SHAPE
        xk, dxk, d2xk = _late_push_knot(np.maximum(shape, PUSH_QUINTIC_MAX_SHAPE))
        rise = -toe_off - theta_ho  # pitch change from heel-off to toe-off, deg (negative)
        self.pitch = _stack_knots(
            [
                (tp, peak, zero, zero),
                (tl.ic, strike, ic_rate, zero),
                (tl.ffs, zero, roll_rate, zero),
                (tl.ho, theta_ho, roll_rate, zero),
                (
                    np.where(late, tl.ho + PUSH_KNOT_FRACTION * push_s, np.nan),
                    theta_ho + rise * xk,
                    rise * dxk / push_s,
                    rise * d2xk / push_s**2,
                ),
                (tl.to, -toe_off, -push_rate, zero),
                (te, theta_min, zero, zero),
                (te + tau, theta_min + 0.5 * v_swing * tau, v_swing, zero),
                (tp_next - tau, peak_next - 0.5 * v_swing * tau, v_swing, zero),
            ],
            tl.end_s,
            0.0,
        )
        # ---------- roll: pronation p (deg), roll = sign * p ----------
        p_ff = v["flat_pronation_deg"]
        p_max = p_ff + v["pronation_recoil_deg"]
        e = v["pronation_excursion_deg"]
        p_ic = p_max - e
        t_mp = v["time_to_max_pronation_s"]
        vmax = v["max_pronation_velocity_dps"]
        p_to = p_ff + v["toe_off_pronation_deg"]
        sw = 0.5 * (tl.to + nxt(tl.ic))
        p_sw = nxt(p_ic) - v["swing_inversion_deg"]
        # from heel-off the roll follows the pitch (PushOffRoll): it first inverts, so where heel-off
        # falls inside the pronation window (running), the window's max is still the loading one
        k1 = 0.35  # the peak pronation rate comes at 35 % of the rise, in time and angle
        s = self.sign
        # heel-off of a rolling stance: the spline leaves with PushOffRoll's rate and acceleration
        tan_alpha = np.tan(np.deg2rad(90.0 - athlete.mtp_break_angle_deg))
        a_push = -tan_alpha * (theta_ho + toe_off)
        dx0 = roll_rate / (-toe_off - theta_ho)
        ho_rate = s * a_push * dx0
        ho_acc = s * (-6.0 * a_push + 12.0 * (p_to - p_ff)) * dx0 * dx0
        # toe-off about the axis beta: P'(1) = c; pronation rate there c * dx/dt, dx/dt = push_rate / span
        beta = np.deg2rad(v["toe_off_axis_deg"])
        span = toe_off + theta_ho
        c_push = np.tan(beta) * np.cos(np.deg2rad(p_to)) * span
        to_rate = c_push * push_rate / span
        p_te = p_to + to_rate * v["post_toe_off_s"] / PUSH_DECEL_SHAPE
        base = _stack_knots(
            [
                (tl.ic, s * p_ic, zero, zero),
                (tl.ic + k1 * t_mp, s * (p_ic + k1 * e), s * vmax, zero),
                (tl.ic + t_mp, s * p_max, zero, zero),
                (tl.ffs, s * p_ff, zero, zero),
                (tl.ho, s * p_ff, ho_rate, ho_acc),
                (tl.to, s * p_to, s * to_rate, zero),
                (te, s * p_te, zero, zero),
                (sw, s * p_sw, zero, zero),
            ],
            tl.end_s,
            s * p_ff[-1],
        )
        self.roll = PushOffRoll(
            base, self.pitch, tl.ho, tl.to, toe_off, tan_alpha, p_ff, p_to, s, theta_ho, c_push
        )
        # ---------- heading (deg) ----------
        # the shoe's heading on the ground: the walking direction turned outward by the toe-out
        self.shoe_heading_rad = tl.heading_rad + s * np.deg2rad(v["foot_progression_angle_deg"])
        psi = np.rad2deg(self.shoe_heading_rad)
        turn = nxt(psi) - psi
        swing_all = nxt(tl.ic) - tl.to
        toe_out = s * v["swing_yaw_deg"]
        # toe-out at IC, turned in while the foot everts (pronation couples eversion with rotation)
        land = s * v["landing_toe_out_deg"]
        self.yaw = _stack_knots(
            [
                (tl.ic, psi + land, zero, zero),
                (tl.ic + v["time_to_max_pronation_s"], psi, zero, zero),
                (tl.to, psi, zero, zero),
                (sw, psi + 0.5 * (turn + nxt(land)) + toe_out, 1.875 * turn / swing_all, zero),
            ],
            tl.end_s,
            psi[-1],
        )
        # ---------- contact points ----------
        a = athlete
        self.r_sensor = np.array([a.sensor_x_m, s * a.sensor_y_m, a.sensor_z_m])
        self.r_mtp = np.array([a.mtp_x_m, 0.0, 0.0])
        self.r_land = np.stack([v["pivot_x_m"], zero, zero], axis=1)  # (n, 3), heel origin
        flat = _rot_z(self.shoe_heading_rad) @ _rot_x(np.deg2rad(s * p_ff))
        self.c_land = tl.origin_m + np.einsum("nij,nj->ni", flat, self.r_land)
        self.c_mtp = tl.origin_m + flat @ self.r_mtp
        self.impact_amp = v["impact_g"] * STANDARD_GRAVITY_MPS2
        self.impact_w = 2.0 * np.pi * v["impact_freq_hz"]
        h = tl.heading_rad
        self.impact_dir = np.stack(
            [
                -np.sin(IMPACT_TILT_RAD) * np.cos(h),
                -np.sin(IMPACT_TILT_RAD) * np.sin(h),
                np.full_like(h, np.cos(IMPACT_TILT_RAD)),
            ],
            axis=1,
        )
        self.impact_gyr_rad_s = np.deg2rad(v["impact_gyr_dps"]) if impact_gyro else np.zeros(tl.n)
        self.impact_gyr_axis = IMPACT_GYR_AXIS * np.array([s, 1.0, s])
        self.cycle_start = np.where(np.isnan(tl.ic), -np.inf, tl.ic)
        self.stance_roll = -roll_rate
        self.mount_compliance_s2, self.mount_time_constant_s = mount_compliance_s2, mount_time_constant_s
        self.mount_tilt = self._mount_tilt() if mount_compliance_s2 > 0.0 else None

    def _mount_tilt(self) -> tuple[QuinticHermite, QuinticHermite]:
        """The compliant mount's tilt about the shoe's x and y axes (rad), as C2 splines.

        tau d' + d = -kappa alpha_xy (alpha: the shoe's angular acceleration, body frame), solved
        exactly for an input linear between the points of a `MOUNT_GRID_HZ` grid (first-order
        hold); the knots carry d, d' from the equation and d'' = (u' - d') / tau, u' by central
        differences, so the splines' rate and acceleration are exact for the tilt they describe.
        """
        kappa, tau = self.mount_compliance_s2, self.mount_time_constant_s
        t = np.arange(0.0, self.timeline.end_s + 2.0 / MOUNT_GRID_HZ, 1.0 / MOUNT_GRID_HZ)
        _, wd = _body_rate(*self.angles(t))
        u = MOUNT_MAX_TILT_RAD * np.tanh(-kappa * wd[:, :2] / MOUNT_MAX_TILT_RAD)
        lag = signal.lti([1.0], [tau, 1.0])
        d = np.stack([signal.lsim(lag, u[:, j], t, interp=True)[1] for j in (0, 1)], axis=1)
        d1 = (u - d) / tau
        d2 = (np.gradient(u, t, axis=0) - d1) / tau
        return tuple(QuinticHermite(t, d[:, j], d1[:, j], d2[:, j]) for j in (0, 1))

    def _mount_rotation(
        self, t: np.ndarray, lev: np.ndarray, l1d: np.ndarray, l2d: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """M = Rx(a) Ry(b) of the compliant mount at t and its body rate w_M (rad/s); moves the
        sensor's lever and its derivatives in place by the turn about the base (M - I) d."""
        a0, a1, a2 = self.mount_tilt[0].evaluate(t)
        b0, b1, b2 = self.mount_tilt[1].evaluate(t)
        m_rot = _rot_x(a0) @ _rot_y(b0)
        cb, sb = np.cos(b0), np.sin(b0)
        w_m = np.stack([a1 * cb, b1, a1 * sb], axis=1)
        w_m1 = np.stack([a2 * cb - a1 * b1 * sb, b2, a2 * sb + a1 * b1 * cb], axis=1)
        d = np.array([0.0, 0.0, MOUNT_PIVOT_M])
        wxd = np.cross(w_m, d)
        lev += m_rot @ d - d
        l1d += np.einsum("nij,nj->ni", m_rot, wxd)
        l2d += np.einsum("nij,nj->ni", m_rot, np.cross(w_m1, d) + np.cross(w_m, wxd))
        return m_rot, w_m

    def _mount_quat(self, t: np.ndarray) -> np.ndarray:
        """(N, 4) quaternion of the mount's Rx(a) Ry(b) at t."""
        ha = 0.5 * self.mount_tilt[0].evaluate(t)[0]
        hb = 0.5 * self.mount_tilt[1].evaluate(t)[0]
        z = np.zeros_like(ha)
        qa = np.stack([np.cos(ha), np.sin(ha), z, z], axis=1)
        qb = np.stack([np.cos(hb), z, np.sin(hb), z], axis=1)
        return _quat_multiply(qa, qb)

    def mount_tilt_rad(self, t: np.ndarray) -> np.ndarray:
        """(N, 2) the pod's tilt on the shoe about the shoe's x and y axes (rad); zeros when rigid."""
        t = np.asarray(t, float)
        if self.mount_tilt is None:
            return np.zeros((len(t), 2))
        return np.stack([self.mount_tilt[j].evaluate(t)[0] for j in (0, 1)], axis=1)

    @staticmethod
    def _next(a: np.ndarray) -> np.ndarray:
        """Value of the next stance (NaN after the last)."""
        return np.append(a[1:], np.nan)

    def angles(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(theta, phi, psi) each as (value, rate, acceleration) stacked (3, N), in rad."""
        th = np.deg2rad(np.stack(self.pitch.evaluate(t)))
        ph = np.deg2rad(np.stack(self.roll.evaluate(t)))
        ps = np.deg2rad(np.stack(self.yaw.evaluate(t)))
        return th, ph, ps

    def evaluate(self, t: np.ndarray) -> MotionSample:
        """Exact orientation, angular rate, specific force, position and velocity at times t (s)."""
        t = np.asarray(t, float)
        th, ph, ps = self.angles(t)
        (th0, th1, _), (ph0, ph1, _), (ps0, ps1, _) = th, ph, ps
        st, ct, sp, cp = np.sin(th0), np.cos(th0), np.sin(ph0), np.cos(ph0)
        w, wd = _body_rate(th, ph, ps)
        cz, sz = np.cos(ps0), np.sin(ps0)
        # R = Rz(psi) Ry(-theta) Rx(phi), written out
        R = np.empty((len(t), 3, 3))
        R[:, 0, 0] = cz * ct
        R[:, 0, 1] = -cz * st * sp - sz * cp
        R[:, 0, 2] = -cz * st * cp + sz * sp
        R[:, 1, 0] = sz * ct
        R[:, 1, 1] = -sz * st * sp + cz * cp
        R[:, 1, 2] = -sz * st * cp - cz * sp
        R[:, 2, 0], R[:, 2, 1], R[:, 2, 2] = st, ct * sp, ct * cp
        # quaternion of Rz(psi) Ry(beta) Rx(phi) with beta = -theta (half angles)
        c1, s1 = np.cos(ps0 / 2), np.sin(ps0 / 2)
        c2, s2 = np.cos(-th0 / 2), np.sin(-th0 / 2)
        c3, s3 = np.cos(ph0 / 2), np.sin(ph0 / 2)
        q = np.stack(
            [
                c1 * c2 * c3 + s1 * s2 * s3,
                c1 * c2 * s3 - s1 * s2 * c3,
                c1 * s2 * c3 + s1 * c2 * s3,
                s1 * c2 * c3 - c1 * s2 * s3,
            ],
            axis=1,
        )
        # contact point c (world) and lever l (body) with derivatives
        tl = self.timeline
        k = np.searchsorted(self.cycle_start, t, side="right") - 1
        k = np.clip(k, 0, tl.n - 1)
        to_k = tl.to[k]
        in_swing = np.isfinite(to_k) & (t >= to_k)
        landing = t < tl.ffs[k]
        c = np.where(landing[:, None], self.c_land[k], self.c_mtp[k])
        lev = np.where(landing[:, None], self.r_sensor - self.r_land[k], self.r_sensor - self.r_mtp)
        c1d = np.zeros_like(c)
        c2d = np.zeros_like(c)
        l1d = np.zeros_like(c)
        l2d = np.zeros_like(c)
        rolling = ~in_swing & ~landing & (t < tl.ho[k]) & (self.stance_roll[k] > 0.0)
        if np.any(rolling):
            # the contact moves along the sole from the landing point to the ball of the foot
            j = k[rolling]
            T = tl.ho[j] - tl.ffs[j]
            u = (t[rolling] - tl.ffs[j]) / T
            B = u**3 * (10 - 15 * u + 6 * u * u)
            B1 = 30 * u * u * (1 - u) ** 2 / T
            B2 = 60 * u * (1 - u) * (1 - 2 * u) / T**2
            dc = self.c_mtp[j] - self.c_land[j]
            dr = self.r_mtp - self.r_land[j]
            c[rolling] = self.c_land[j] + B[:, None] * dc
            c1d[rolling] = B1[:, None] * dc
            c2d[rolling] = B2[:, None] * dc
            lev[rolling] = (self.r_sensor - self.r_land[j]) - B[:, None] * dr
            l1d[rolling] = -B1[:, None] * dr
            l2d[rolling] = -B2[:, None] * dr
        if np.any(in_swing):
            j = k[in_swing]
            ts = t[in_swing]
            T = tl.ic[j + 1] - tl.to[j]
            u = (ts - tl.to[j]) / T
            B = u**3 * (10 - 15 * u + 6 * u * u)
            B1 = 30 * u * u * (1 - u) ** 2 / T
            B2 = 60 * u * (1 - u) * (1 - 2 * u) / T**2
            bump = 64 * u**3 * (1 - u) ** 3
            bump1 = 192 * u * u * (1 - u) ** 2 * (1 - 2 * u) / T
            bump2 = 192 * u * (1 - u) * (2 - 10 * u + 10 * u * u) / T**2
            lift = tl.values["clearance_m"][j]
            dc = self.c_land[j + 1] - self.c_mtp[j]
            ez = np.array([0.0, 0.0, 1.0])
            c[in_swing] = self.c_mtp[j] + B[:, None] * dc + (lift * bump)[:, None] * ez
            c1d[in_swing] = B1[:, None] * dc + (lift * bump1)[:, None] * ez
            c2d[in_swing] = B2[:, None] * dc + (lift * bump2)[:, None] * ez
            dl = self.r_mtp - self.r_land[j + 1]  # l1 - l0 = (r_s - r_land) - (r_s - r_mtp)
            lev[in_swing] = (self.r_sensor - self.r_mtp) + B[:, None] * dl
            l1d[in_swing] = B1[:, None] * dl
            l2d[in_swing] = B2[:, None] * dl
        # impact ringing of the sensor position after each IC
        tau = t - tl.ic[k]
        ringing = np.isfinite(tau) & (tau >= 0.0) & (tau < IMPACT_DURATION_S) & (k > 0)
        imp = np.zeros_like(c)
        imp1 = np.zeros_like(c)
        imp2 = np.zeros_like(c)
        if np.any(ringing):
            j = k[ringing]
            om = self.impact_w[j]
            g0, g1, g2 = _impact_shape(om * tau[ringing])
            amp = self.impact_amp[j] / _IMPACT_PEAK
            d = self.impact_dir[j]
            imp[ringing] = (amp * g0 / om**2)[:, None] * d
            imp1[ringing] = (amp * g1 / om)[:, None] * d
            imp2[ringing] = (amp * g2)[:, None] * d
        mount = self._mount_rotation(t, lev, l1d, l2d) if self.mount_tilt is not None else None
        Rl = np.einsum("nij,nj->ni", R, lev)
        wxl = np.cross(w, lev)
        pos = c + Rl + imp
        vel = c1d + np.einsum("nij,nj->ni", R, wxl + l1d) + imp1
        a_world = c2d + imp2
        a_world[:, 2] += STANDARD_GRAVITY_MPS2
        f = (
            l2d
            + 2 * np.cross(w, l1d)
            + np.cross(wd, lev)
            + np.cross(w, wxl)
            + np.einsum("nji,nj->ni", R, a_world)
        )
        if mount is not None:
            # the pod on its compliant mount: sensor frame R M, read as M^T w + w_M and M^T f
            m_rot, w_m = mount
            w = np.einsum("nji,nj->ni", m_rot, w) + w_m
            f = np.einsum("nji,nj->ni", m_rot, f)
            q = _quat_multiply(q, self._mount_quat(t))
        # the pod rocking on the upper after IC: sensor frame R B, B = Rot(e, delta) about the sensor
        rocking = ringing & (self.impact_gyr_rad_s[k] > 0.0)
        if np.any(rocking):
            j = k[rocking]
            om = self.impact_w[j]
            g0, g1, _ = _impact_shape(om * tau[rocking])
            amp = self.impact_gyr_rad_s[j] / _IMPACT_RATE_PEAK
            delta, delta1 = amp * g0 / om, amp * g1
            e_axis = self.impact_gyr_axis
            w = w.copy()
            w[rocking] = _rotate_back(e_axis, delta, w[rocking]) + delta1[:, None] * e_axis
            f[rocking] = _rotate_back(e_axis, delta, f[rocking])
            half = 0.5 * delta
            qb = np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * e_axis], axis=1)
            q[rocking] = _quat_multiply(q[rocking], qb)
        return MotionSample(
            t=t,
            theta=th0,
            phi=ph0,
            psi=ps0,
            rates=np.stack([th1, ph1, ps1], axis=1),
            quat_wxyz=q,
            gyr_dps=np.rad2deg(w),
            acc_mps2=f,
            pos_m=pos,
            vel_mps=vel,
        )
