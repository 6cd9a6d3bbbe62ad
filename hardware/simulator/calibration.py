"""A toe-tap field calibration before the session: standing, heel-down toe taps, standing.

The calibration `hardware.shoe_axis.ToeTapCalibration` looks for: the athlete stands with the feet
parallel, taps the toes of the left foot a few times with the heel kept down, then those of the
right foot, and stands again before walking off. Each tap lifts the forefoot by `amplitude` and
puts it down, the shoe turning about one axis through its heel, then rests on the floor.

The imperfection (what the product cannot know): the taps do not turn the shoe about its own
medio-lateral (y) axis exactly. The ankle's (talocrural) axis is oblique to the foot: about 6 deg
from the medio-lateral in the horizontal plane, its lateral end behind the medial one, and 7-10
deg in the frontal plane, its lateral end lower (Inman 1976, The Joints of the Ankle; Isman &
Inman 1969, Bull. Prosthet. Res. 10-11: 97-129, measured it on 46 specimens and found it to vary
between people by several degrees). With the heel loaded, the floor holds the shoe on its heel's
contact line (its own y) and the subtalar joint and the shank's rotation take up most of that
obliquity (the closed chain); how much of it reaches the shoe has not been measured (no real
calibration with a shoe-frame reference is in shared/). The simulator therefore draws, per athlete,
a tap axis turned from the shoe's y in the sole plane by `AthleteParams.tap_axis_deg` (+: lateral
end backward, the ankle's sense), normal with mean `params.TAP_AXIS_MEAN_DEG` (1 deg: the shoe keeps
~1/6 of the ankle's 6 deg on average; an assumption) and SD `TAP_AXIS_SD_DEG` (1 deg), left minus
right uniform in +-`TAP_AXIS_ASYMMETRY_DEG` (1 deg), tilted out of the sole plane by
TAP_AXIS_ELEVATION_DEG (lateral end down, so the heel twists a little on the floor), and each tap
scatters around that axis by TAP_AXIS_TAP_SD_DEG. The heel is rounded (radius `heel_radius_m`): it
rolls back as the toes rise, so the sensor also moves a centimetre or so and back.

The calibration's truth: `CalibrationPlan` per foot (tap start times, durations, amplitudes and the
axis of each tap in the shoe frame); `Simulator.calibration_` carries it with the axis error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strideflow.hardware.frames import rotation_from_wxyz
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2
from strideflow.hardware.simulator.kinematics import MotionSample, _quat_multiply

TAP_AXIS_ELEVATION_DEG = (0.0, 5.0)  # out of the sole plane, lateral end down
TAP_AXIS_TAP_SD_DEG = 1.0  # each tap's axis around the athlete's, heading and elevation
# One calibration: how it is done (s, deg, m), drawn per session.
STAND_S = (2.0, 3.0)  # standing before the taps and after them
SWITCH_S = (1.0, 2.0)  # between the left foot's taps and the right foot's
TAP_S = (0.3, 0.5)  # one tap, toes up and down
REST_S = (0.3, 0.6)  # toes resting on the floor between taps
AMPLITUDE_DEG = (15.0, 25.0)  # toes lifted by
TAP_VARIATION = 0.1  # tap-to-tap CV of duration and amplitude
HEEL_RADIUS_M = (0.02, 0.05)  # rounding of the shoe's heel, which rolls during a tap
TAPS = 5


@dataclass(frozen=True)
class CalibrationPlan:
    """The toe taps of one foot: start times (s, from the recording's start), durations (s),
    amplitudes (deg, toes up) and axes (k, 3) in the shoe frame; the heel's radius (m)."""

    start_s: np.ndarray
    duration_s: np.ndarray
    amplitude_deg: np.ndarray
    axis_shoe: np.ndarray
    heel_radius_m: float


def tap_axis_shoe(heading_deg: np.ndarray, elevation_deg: np.ndarray, foot_sign: float) -> np.ndarray:
    """Unit tap axes (k, 3) in the shoe frame: the +y axis turned by `heading_deg` with its lateral
    end backward and tilted by `elevation_deg` with its lateral end down (mirrored on the right)."""
    psi = np.radians(foot_sign * np.asarray(heading_deg, dtype=float))
    phi = np.radians(-foot_sign * np.asarray(elevation_deg, dtype=float))
    return np.stack([-np.sin(psi) * np.cos(phi), np.cos(psi) * np.cos(phi), np.sin(phi)], axis=-1)


def plan_calibration(
    rng: np.random.Generator, tap_axis_deg: dict[str, float], taps: int = TAPS
) -> tuple[float, dict[str, CalibrationPlan]]:
    """Duration (s) and each foot's taps: stand, left foot's taps, right foot's taps, stand.

    `tap_axis_deg`: per foot, the athlete's tap axis heading from the shoe's y (deg, + lateral end
    backward); `taps` per foot.
    """
    t = float(rng.uniform(*STAND_S))
    plans = {}
    elevation = float(rng.uniform(*TAP_AXIS_ELEVATION_DEG))
    for i, foot in enumerate(("left", "right")):
        if i:
            t += float(rng.uniform(*SWITCH_S))
        duration = float(rng.uniform(*TAP_S)) * (1.0 + TAP_VARIATION * rng.standard_normal(taps))
        amplitude = float(rng.uniform(*AMPLITUDE_DEG)) * (1.0 + TAP_VARIATION * rng.standard_normal(taps))
        rest = rng.uniform(*REST_S, size=taps)
        start = t + np.concatenate([[0.0], np.cumsum(duration + rest)[:-1]])
        t = float(start[-1] + duration[-1] + rest[-1])
        heading = tap_axis_deg[foot] + TAP_AXIS_TAP_SD_DEG * rng.standard_normal(taps)
        tilt = elevation + TAP_AXIS_TAP_SD_DEG * rng.standard_normal(taps)
        plans[foot] = CalibrationPlan(
            start_s=start,
            duration_s=duration,
            amplitude_deg=amplitude,
            axis_shoe=tap_axis_shoe(heading, tilt, 1.0 if foot == "left" else -1.0),
            heel_radius_m=float(rng.uniform(*HEEL_RADIUS_M)),
        )
    t += float(rng.uniform(*STAND_S))
    return t, plans


class CalibrationMotion:
    """The exact motion of one foot's sensor during the calibration, from its standing pose.

    Parameters
    ----------
    plan
        `CalibrationPlan` of this foot.
    quat_wxyz
        (4,) the standing pose (shoe frame -> world) the session starts from.
    sensor_m
        (3,) world position of the sensor in that pose.
    r_sensor_m
        (3,) sensor position in the shoe frame (origin at the heel contact point), m.

    Notes
    -----
    A tap turns the shoe by -theta(t) about its axis a (toes up about -y), theta = A 64 u^3 (1-u)^3
    (u = time / duration: angle, rate and acceleration 0 at both ends), so the body rate is
    -theta' a. The heel, a cylinder of radius r about the contact, rolls: its centre (r above the
    contact) moves back by r theta along the floor, across the axis. Specific force in the shoe
    frame: w' x L + w x (w x L) + R^T (c'' + g z), L = r_sensor - (0, 0, r).
    """

    def __init__(self, plan: CalibrationPlan, quat_wxyz: np.ndarray, sensor_m: np.ndarray, r_sensor_m):
        self.plan = plan
        self.q0 = np.asarray(quat_wxyz, dtype=float)
        self.R0 = rotation_from_wxyz(self.q0).as_matrix()
        self.r_sensor = np.asarray(r_sensor_m, dtype=float)
        self.heel = np.asarray(sensor_m, dtype=float) - self.R0 @ self.r_sensor

    def evaluate(self, t: np.ndarray) -> MotionSample:
        """Exact orientation, angular rate, specific force, position and velocity at times t (s)."""
        p = self.plan
        t = np.asarray(t, dtype=float)
        k = np.clip(np.searchsorted(p.start_s, t, side="right") - 1, 0, len(p.start_s) - 1)
        u = (t - p.start_s[k]) / p.duration_s[k]
        active = (u >= 0.0) & (u <= 1.0)
        u = np.where(active, u, 0.0)
        amp = np.radians(p.amplitude_deg[k]) * 64.0
        d = p.duration_s[k]
        th = amp * u**3 * (1 - u) ** 3
        th1 = amp * 3 * u**2 * (1 - u) ** 2 * (1 - 2 * u) / d
        th2 = amp * 6 * u * (1 - u) * (1 - 5 * u + 5 * u * u) / d**2
        a = p.axis_shoe[k]
        # rotation of -theta about a (shoe frame), and R = R0 Q
        half = -0.5 * th
        q = _quat_multiply(
            np.broadcast_to(self.q0, (len(t), 4)),
            np.column_stack([np.cos(half), np.sin(half)[:, None] * a]),
        )
        c, s = np.cos(-th)[:, None, None], np.sin(-th)[:, None, None]
        ax = np.zeros((len(t), 3, 3))
        ax[:, 0, 1], ax[:, 0, 2], ax[:, 1, 2] = -a[:, 2], a[:, 1], -a[:, 0]
        ax[:, 1, 0], ax[:, 2, 0], ax[:, 2, 1] = a[:, 2], -a[:, 1], a[:, 0]
        Q = np.eye(3) + s * ax + (1 - c) * (ax @ ax)
        R = self.R0 @ Q
        w = -th1[:, None] * a
        wd = -th2[:, None] * a
        r = p.heel_radius_m
        lever = self.r_sensor - np.array([0.0, 0.0, r])
        # the floor direction the heel rolls along: forward, across the axis
        up = np.array([0.0, 0.0, 1.0])
        a_world = a @ self.R0.T
        a_h = a_world - np.outer(a_world @ up, up)
        fwd = np.cross(a_h, up)
        fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)
        centre = self.heel + self.R0 @ np.array([0.0, 0.0, r]) - (r * th)[:, None] * fwd
        centre1 = -(r * th1)[:, None] * fwd
        centre2 = -(r * th2)[:, None] * fwd
        wxl = np.cross(w, lever)
        pos = centre + np.einsum("nij,j->ni", R, lever)
        vel = centre1 + np.einsum("nij,nj->ni", R, wxl)
        a_ext = centre2 + STANDARD_GRAVITY_MPS2 * up
        f = np.cross(wd, lever) + np.cross(w, wxl) + np.einsum("nji,nj->ni", R, a_ext)
        # the angles of kinematics.py's R = Rz(psi) Ry(-theta) Rx(phi), read back from R
        theta = np.arcsin(np.clip(R[:, 2, 0], -1.0, 1.0))
        phi = np.arctan2(R[:, 2, 1], R[:, 2, 2])
        psi = np.arctan2(R[:, 1, 0], R[:, 0, 0])
        return MotionSample(
            t=t,
            theta=theta,
            phi=phi,
            psi=psi,
            rates=np.full((len(t), 3), np.nan),
            quat_wxyz=q,
            gyr_dps=np.degrees(w),
            acc_mps2=f,
            pos_m=pos,
            vel_mps=vel,
        )
