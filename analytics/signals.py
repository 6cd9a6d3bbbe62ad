"""The per-sample `signals` table (schema.SIGNALS_SCHEMA) of one foot: what the metrics read.

Angles come from the orientation (sensor -> world, wxyz) through `hardware.frames`: roll and
pitch independent of heading, pronation = roll signed per foot (eversion positive), and the
heading of the foot x axis (the shoe axis) unwrapped over the foot, for the foot progression angle.

Angle rates, two methods:

- ``"gyro"`` (default): the Euler kinematic relation between the body angular rate ω (the
  foot-frame gyroscope) and the ZYX angle rates. With roll φ and the usual ZYX pitch
  θ_s = -pitch (our pitch is positive toes up):
  ``dφ/dt = ω_x + tan θ_s (sin φ ω_y + cos φ ω_z)`` and ``dθ_s/dt = cos φ ω_y - sin φ ω_z``.
  This is the instantaneous rate at each sample: it is not smoothed by a finite difference
  (a central difference at 200 Hz already loses ~2 % of a 10 Hz pronation peak) and does not
  differentiate the filter's accelerometer corrections, which jump at impacts.
- ``"gradient"``: ``numpy.gradient`` of the angle over time, for angles without a gyroscope
  (e.g. a reference orientation).

The tan θ_s term grows without bound near pitch ±90° (gimbal lock, where roll itself is
undefined): beyond `max_euler_pitch_deg` the roll rate is left null instead of exploding. A foot
never pitches that steeply in stance, where the rates are used; a mis-detected stance that
reaches into swing then cannot report a spurious 10^4 deg/s pronation velocity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
import polars as pl

from strideflow.hardware.frames import heading_deg, pronation_sign, roll_pitch_deg
from strideflow.hardware.motion_math import DEG_PER_RAD, RAD_PER_DEG
from strideflow.hardware.schema import (
    ACC,
    ACC_NORM_G,
    ATHLETE_ID,
    FOOT,
    GYR,
    HEADING_DEG,
    PITCH_DEG,
    PITCH_RATE_DPS,
    POS,
    PRONATION_DEG,
    PRONATION_RATE_DPS,
    ROLL_DEG,
    SESSION_ID,
    SIGNALS_SCHEMA,
    STANDARD_GRAVITY_MPS2,
    VEL,
    ZERO_VELOCITY,
    T,
)


@dataclass(frozen=True)
class SignalSettings:
    """How angle rates are derived: ``"gyro"`` (Euler kinematics, default) or ``"gradient"``.

    `max_euler_pitch_deg`: |pitch| beyond which the roll (pronation) rate is null, deg.
    """

    rate_method: Literal["gyro", "gradient"] = "gyro"
    max_euler_pitch_deg: float = 80.0


@numba.njit(cache=True)
def _row_norm(xyz: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(xyz.shape[0])
    for i in range(xyz.shape[0]):
        x, y, z = xyz[i, 0], xyz[i, 1], xyz[i, 2]
        out[i] = np.sqrt((x * x + y * y) + z * z)
    return out


def row_norm(xyz: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of an (N, 3) array: `np.linalg.norm(xyz, axis=1)`, the same
    floats (squares summed left to right), in one compiled pass instead of numpy's slow
    reduction along a short axis."""
    values = np.ascontiguousarray(xyz, dtype=float)
    if values.ndim != 2 or values.shape[1] != 3:
        raise ValueError(f"row_norm takes an (N, 3) array, got shape {values.shape}")
    return _row_norm(values)


@numba.njit(cache=True)
def _euler_rates(roll_deg, tan_theta_s, gyr):  # pragma: no cover - compiled
    n = roll_deg.shape[0]
    roll_rate = np.empty(n)
    pitch_rate = np.empty(n)
    for i in range(n):
        phi = roll_deg[i] * RAD_PER_DEG
        sin_phi, cos_phi = np.sin(phi), np.cos(phi)
        wx, wy, wz = gyr[i, 0], gyr[i, 1], gyr[i, 2]
        roll_rate[i] = wx + tan_theta_s[i] * (sin_phi * wy + cos_phi * wz)
        pitch_rate[i] = -(cos_phi * wy - sin_phi * wz)
    return roll_rate, pitch_rate


@numba.njit(cache=True)
def unwrap(p):  # pragma: no cover - compiled
    """`np.unwrap(p)` of a 1-D p (rad; period 2 pi, jumps over pi unwrapped) in one pass, with
    numpy's operations in its order: its remainder (fmod, moved to the divisor's sign), the
    boundary rule (a jump of exactly +pi stays +pi) and the running sum of the corrections."""
    n = p.shape[0]
    out = p.copy()
    period = 2.0 * np.pi
    high = period / 2.0
    low = -high
    total = 0.0
    for i in range(1, n):
        dd = p[i] - p[i - 1]
        x = dd - low
        mod = np.fmod(x, period)  # exact, as C fmod
        if mod != 0.0:
            if (period < 0.0) != (mod < 0.0):
                mod += period
        else:
            mod = math.copysign(0.0, period)
        ddmod = mod + low
        if ddmod == low and dd > 0.0:
            ddmod = high
        correct = 0.0 if abs(dd) < high else ddmod - dd
        total = correct if i == 1 else total + correct
        out[i] = p[i] + total
    return out


def euler_rates_dps(
    roll_deg: np.ndarray, pitch_deg: np.ndarray, gyr_dps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(d roll/dt, d pitch/dt) in deg/s from foot-frame angular rate (N,3, deg/s) and the angles.

    Pitch is positive toes up, so plantarflexion (+gyr_y on a level foot) gives a negative rate.
    """
    roll = np.ascontiguousarray(roll_deg, dtype=float).reshape(-1)
    theta_s = -np.radians(np.asarray(pitch_deg, dtype=float)).reshape(-1)
    w = np.ascontiguousarray(gyr_dps, dtype=float).reshape(-1, 3)
    # tan from numpy (its vectorised rounding is the reference); the rest in one compiled pass,
    # with sin and cos of the same (C library) rounding numpy uses.
    return _euler_rates(roll, np.tan(theta_s), w)


def _gradient(angle_deg: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    if angle_deg.size < 2:
        return np.zeros_like(angle_deg)
    # Unwrap so a roll crossing ±180 deg does not read as a 360 deg jump.
    return np.gradient(np.degrees(np.unwrap(np.radians(angle_deg))), t_s)


def build_signals(
    samples: pl.DataFrame,
    orientation_wxyz: np.ndarray,
    *,
    zero_velocity: np.ndarray | None = None,
    velocity_mps: np.ndarray | None = None,
    position_m: np.ndarray | None = None,
    settings: SignalSettings = SignalSettings(),
) -> pl.DataFrame:
    """Signals table of one foot from its foot-frame samples and orientation (N,4 wxyz).

    `samples` is one athlete-session-foot in the samples schema (acc m/s², gyr deg/s, foot frame),
    in time order. Zero-velocity flags and world velocity/position (N,3) are optional; missing ones
    are false / null.
    """
    keys = []
    for key in (ATHLETE_ID, SESSION_ID, FOOT):
        values = samples.get_column(key).unique().to_list()
        if len(values) != 1:
            if key == FOOT:
                raise ValueError(f"build_signals takes one foot at a time, got feet {values}")
            # Several athletes or sessions: keep the column as it is (rare, not the pipeline's path).
            keys.append(samples.get_column(key))
        else:
            keys.append(values[0])
    return signals_frame(
        tuple(keys),
        samples.get_column(T).to_numpy(),
        samples.select(ACC).to_numpy(),
        samples.select(GYR).to_numpy(),
        orientation_wxyz,
        zero_velocity=zero_velocity,
        velocity_mps=velocity_mps,
        position_m=position_m,
        settings=settings,
    )


def signals_frame(
    keys: tuple,
    t_s: np.ndarray,
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    orientation_wxyz: np.ndarray,
    *,
    zero_velocity: np.ndarray | None = None,
    velocity_mps: np.ndarray | None = None,
    position_m: np.ndarray | None = None,
    settings: SignalSettings = SignalSettings(),
) -> pl.DataFrame:
    """Signals table of one foot from numpy arrays: what `build_signals` gives, without a samples table.

    `keys` = (athlete_id, session_id, foot), each one value (or a column of n values for the ids);
    t (N,) s, acc (N,3) m/s² and gyr (N,3) deg/s in the foot frame, orientation (N,4 wxyz).
    """
    foot = keys[2]
    if not isinstance(foot, str):
        raise ValueError(f"signals_frame takes one foot at a time, got foot {foot!r}")
    arrays = signal_arrays(
        foot,
        t_s,
        acc_mps2,
        gyr_dps,
        orientation_wxyz,
        zero_velocity=zero_velocity,
        velocity_mps=velocity_mps,
        position_m=position_m,
        settings=settings,
    )
    return signals_table(keys, arrays)


def signals_table(keys: tuple, arrays: dict[str, np.ndarray]) -> pl.DataFrame:
    """The signals table (SIGNALS_SCHEMA) of one foot from `signal_arrays`' columns and `keys` =
    (athlete_id, session_id, foot), each one value (or a column of n values for the ids)."""
    athlete, session, foot = keys
    n = arrays[T].shape[0]

    # Columns are built as Series and put together without a Polars query: on the live analyzer's
    # windows of a few hundred samples the per-query overhead would cost more than the work.
    def key_column(name: str, value: object) -> pl.Series:
        if isinstance(value, pl.Series):
            return value.cast(pl.String).rename(name)
        text = None if value is None else str(value)
        return pl.Series(name, [text], dtype=pl.String).new_from_index(0, n)

    columns = [key_column(ATHLETE_ID, athlete), key_column(SESSION_ID, session), key_column(FOOT, foot)]
    for name in list(SIGNALS_SCHEMA)[3:]:
        dtype = pl.Boolean if name == ZERO_VELOCITY else pl.Float64
        columns.append(pl.Series(name, arrays[name], dtype=dtype, nan_to_null=name in _NULL_WHERE_NAN))
    return pl.DataFrame(columns)


# Columns whose NaN are nulls in the table (undefined rate near gimbal lock; no integration).
_NULL_WHERE_NAN = frozenset((PRONATION_RATE_DPS, *VEL, *POS))


def signal_arrays(
    foot: str,
    t_s: np.ndarray,
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    orientation_wxyz: np.ndarray,
    *,
    zero_velocity: np.ndarray | None = None,
    velocity_mps: np.ndarray | None = None,
    position_m: np.ndarray | None = None,
    settings: SignalSettings = SignalSettings(),
) -> dict[str, np.ndarray]:
    """`signals_frame`'s columns but the keys, as numpy arrays by column name (float64, NaN where
    the table has null; `zero_velocity` bool): what the live analyzer's metrics and curves read,
    without building the table."""
    t = np.asarray(t_s, dtype=float)
    n = t.shape[0]
    q = np.asarray(orientation_wxyz, dtype=float).reshape(n, 4)
    acc = np.asarray(acc_mps2, dtype=float)
    if settings.rate_method == "gyro" and n:
        angles = _gyro_angles(q, gyr_dps, acc, foot, settings.max_euler_pitch_deg)
    else:
        angles = _angles(q, gyr_dps, acc, t, foot, settings)
    arrays = {
        T: t,
        **dict(
            zip(
                (ROLL_DEG, PITCH_DEG, PRONATION_DEG, PITCH_RATE_DPS, PRONATION_RATE_DPS),
                angles[:5],
                strict=True,
            )
        ),
        HEADING_DEG: angles[5],
        ACC_NORM_G: angles[6],
        ZERO_VELOCITY: (
            np.zeros(n, dtype=bool) if zero_velocity is None else np.asarray(zero_velocity, dtype=bool)
        ),
    }
    for names, values in ((VEL, velocity_mps), (POS, position_m)):
        v = np.full((n, 3), np.nan) if values is None else np.asarray(values, dtype=float).reshape(n, 3)
        arrays.update((name, v[:, i]) for i, name in enumerate(names))
    return arrays


def _angles(q, gyr_dps, acc, t, foot, settings) -> tuple[np.ndarray, ...]:
    """Roll, pitch, pronation, pitch rate, pronation rate, unwrapped heading (deg, deg/s) and |acc|
    (g) of `signal_arrays`, in numpy (any rate method; `_gyro_angles` is the compiled "gyro" one)."""
    n = t.shape[0]
    roll, pitch = roll_pitch_deg(q)
    if settings.rate_method == "gyro":
        roll_rate, pitch_rate = euler_rates_dps(roll, pitch, gyr_dps)
    elif settings.rate_method == "gradient":
        roll_rate, pitch_rate = _gradient(roll, t), _gradient(pitch, t)
    else:
        raise ValueError(f"rate_method must be 'gyro' or 'gradient', got {settings.rate_method!r}")
    roll_rate = np.where(np.abs(pitch) <= settings.max_euler_pitch_deg, roll_rate, np.nan)
    sign = pronation_sign(foot)

    def f64(values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float)

    return (
        f64(roll),
        f64(pitch),
        f64(sign * roll),
        f64(pitch_rate),
        f64(sign * roll_rate),
        f64(np.degrees(unwrap(np.radians(heading_deg(q)))) if n else np.zeros(0)),
        f64(row_norm(acc) / STANDARD_GRAVITY_MPS2),
    )


def _gyro_angles(q, gyr_dps, acc, foot: str, max_pitch_deg: float) -> tuple[np.ndarray, ...]:
    """`_angles` with the "gyro" rates of n > 0 samples: the element-wise arithmetic in three
    compiled passes around NumPy's arcsin, arctan2 and tan (its SIMD rounding is the reference,
    not the C library's), the same floats (~35 NumPy calls on the window otherwise)."""
    r20, r21, r22, h_sin, h_cos = _angle_arguments(np.ascontiguousarray(q))
    roll, pitch, theta_s = _roll_pitch(np.arcsin(r20), np.arctan2(r21, r22))
    w = np.ascontiguousarray(gyr_dps, dtype=float).reshape(-1, 3)
    return _gyro_signals(
        roll,
        pitch,
        np.tan(theta_s),
        w,
        np.arctan2(h_sin, h_cos),
        row_norm(acc),
        pronation_sign(foot),
        max_pitch_deg,
    )


@numba.njit(cache=True)
def _angle_arguments(q):  # pragma: no cover - compiled
    """`roll_pitch_deg`'s R20 (clipped to [-1, 1]), R21, R22 and `heading_deg`'s arctan2 arguments."""
    n = q.shape[0]
    r20, r21, r22 = np.empty(n), np.empty(n), np.empty(n)
    h_sin, h_cos = np.empty(n), np.empty(n)
    for i in range(n):
        w, x, y, z = q[i, 0], q[i, 1], q[i, 2], q[i, 3]
        v = 2.0 * (x * z - w * y)
        if v < -1.0:
            v = -1.0
        elif v > 1.0:
            v = 1.0
        r20[i] = v
        r21[i] = 2.0 * (y * z + w * x)
        r22[i] = 1.0 - 2.0 * (x * x + y * y)
        h_sin[i] = 2.0 * (x * y + w * z)
        h_cos[i] = 1.0 - 2.0 * (y * y + z * z)
    return r20, r21, r22, h_sin, h_cos


@numba.njit(cache=True)
def _roll_pitch(asin_r20, atan_roll):  # pragma: no cover - compiled
    """Roll and pitch in deg (np.degrees) and `euler_rates_dps`' ZYX pitch -np.radians(pitch)."""
    n = asin_r20.shape[0]
    roll, pitch, theta_s = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        p = asin_r20[i] * DEG_PER_RAD
        pitch[i] = p
        roll[i] = atan_roll[i] * DEG_PER_RAD
        theta_s[i] = -(p * RAD_PER_DEG)
    return roll, pitch, theta_s


@numba.njit(cache=True)
def _gyro_signals(
    roll, pitch, tan_theta_s, gyr, heading_rad, acc_norm, sign, max_pitch_deg
):  # pragma: no cover
    """The rest of `_angles` ("gyro"): the Euler rates, the roll rate NaN beyond max_pitch_deg,
    the pronation signs, the heading in deg unwrapped as np.degrees(unwrap(np.radians(deg))), and
    |acc| in g (`acc_norm`: `row_norm` in m/s², divided in place)."""
    n = roll.shape[0]
    roll_rate, pitch_rate = _euler_rates(roll, tan_theta_s, gyr)
    pronation, pronation_rate, heading = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        pronation[i] = sign * roll[i]
        rate = roll_rate[i] if abs(pitch[i]) <= max_pitch_deg else np.nan
        pronation_rate[i] = sign * rate
        heading[i] = (heading_rad[i] * DEG_PER_RAD) * RAD_PER_DEG
    heading = unwrap(heading)
    for i in range(n):
        heading[i] = heading[i] * DEG_PER_RAD
    for i in range(n):
        acc_norm[i] = acc_norm[i] / STANDARD_GRAVITY_MPS2
    return roll, pitch, pronation, pitch_rate, pronation_rate, heading, acc_norm
