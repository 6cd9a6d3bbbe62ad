"""Madgwick's gradient-descent orientation filter (6-axis, and 9-axis with a magnetometer).

Same update rule, gains and start attitude as `ahrs.filters.Madgwick` (0.4.x), compiled with
numba. Inputs in strideflow units: acceleration m/s², angular rate deg/s (converted to rad/s
inside), magnetic field µT (only its direction matters). Output quaternions are scalar first and
rotate sensor-frame vectors into the world frame (z up, heading free), as in DESIGN.md.
"""

from __future__ import annotations

import numpy as np

from strideflow.fusion import _kernels as k
from strideflow.fusion.settings import FusionInputError, MadgwickSettings, rejection_params


def readonly(arr: np.ndarray) -> np.ndarray:
    """A read-only view: numba compiles one machine-code version per (layout, writeable) type, so
    every input reaches the kernels read-only and one cached compilation serves all callers."""
    view = arr.view()
    view.flags.writeable = False
    return view


_EMPTY_MAG = readonly(np.empty((0, 3)))
_EMPTY_DT = readonly(np.empty(0))


def as_vectors(name: str, values, n: int | None = None) -> np.ndarray:
    """(N, 3) float64 C-contiguous copy-if-needed of one sensor's samples; checks shape and finiteness."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise FusionInputError(f"{name} must have shape (N, 3), got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise FusionInputError(f"{name} has {arr.shape[0]} samples, expected {n} like acc")
    check_finite(name, arr)
    return readonly(arr)


def check_finite(name: str, arr: np.ndarray) -> None:
    """Raise naming the first non-finite sample: NaN or inf would poison the whole recursion."""
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        raise FusionInputError(f"{name} has a non-finite value at index {tuple(int(i) for i in bad)}")


def step_args(n: int, sampling_rate_hz, dt_s, *, first_used: int = 1) -> tuple[float, np.ndarray]:
    """(fixed dt in s, per-sample dt array or empty) for the kernels.

    dt_s may be None (use 1 / sampling_rate_hz), a scalar, an array of N steps (element k is the
    time from sample k-1 to k; elements before `first_used` are ignored) or, for a batch, the N-1
    steps between consecutive samples (e.g. numpy.diff(t)).
    """
    if dt_s is None:
        if sampling_rate_hz is None:
            raise FusionInputError("give sampling_rate_hz or dt_s")
        rate = float(sampling_rate_hz)
        if not (rate > 0 and np.isfinite(rate)):
            raise FusionInputError(f"sampling_rate_hz must be positive and finite, got {sampling_rate_hz}")
        return 1.0 / rate, _EMPTY_DT
    dt = np.asarray(dt_s, dtype=np.float64)
    if dt.ndim == 0:
        step = float(dt)
        if not (step > 0 and np.isfinite(step)):
            raise FusionInputError(f"dt_s must be positive and finite, got {step}")
        return step, _EMPTY_DT
    if dt.ndim != 1 or dt.shape[0] not in (n, n - 1):
        raise FusionInputError(f"dt_s must be a scalar or have {n} (or {n - 1}) elements, got {dt.shape}")
    if dt.shape[0] == n - 1:
        dt = np.concatenate(([np.nan], dt))
    used = dt[first_used:]
    if not (np.isfinite(used).all() and (used > 0).all()):
        bad = first_used + int(np.argmax(~(np.isfinite(used) & (used > 0))))
        raise FusionInputError(f"dt_s must be positive and finite, got {dt[bad]} at sample {bad}")
    return 0.0, readonly(np.ascontiguousarray(dt))


def unit_quaternion(q0, shape=(4,)) -> np.ndarray:
    """Normalised copy of a start quaternion (w, x, y, z)."""
    q = np.array(q0, dtype=np.float64)
    if q.shape != shape:
        raise FusionInputError(f"q0 must have shape {shape}, got {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not (np.isfinite(q).all() and (norm > 0).all()):
        raise FusionInputError("q0 must be a finite, non-zero quaternion")
    return q / norm


class Madgwick:
    """Madgwick filter: `estimate` one sensor, or `estimate_many` independent sensors at once.

    Parameters
    ----------
    settings
        `MadgwickSettings`: gain beta (1/s; None: the ahrs default for the sensor set) and the
        optional acceleration rejection.

    Attributes
    ----------
    orientation_
        (N, 4) or (S, N, 4) float64 quaternions (w, x, y, z), sensor to world.
    gain_
        The gain used.

    Notes
    -----
    Gradient-descent orientation filter of Madgwick, Harrison & Vaidyanathan (2011, IEEE ICORR,
    "Estimation of IMU and MARG orientation using a gradient descent algorithm"), written to give
    the same quaternions as the `ahrs` package's `Madgwick` (`test_fusion_reference.py`).
    """

    def __init__(self, settings: MadgwickSettings | None = None) -> None:
        self.settings = settings if settings is not None else MadgwickSettings()

    def estimate(
        self,
        acc_mps2,
        gyr_dps,
        sampling_rate_hz: float | None = None,
        mag_ut=None,
        dt_s=None,
        q0=None,
    ) -> Madgwick:
        """Orientation of every sample of one sensor (acc m/s², gyr deg/s, mag µT, (N, 3) each).

        The first quaternion is q0 (normalised) or, like ahrs, the attitude of the first sample:
        from gravity (yaw 0), or with a magnetometer from gravity and field (ahrs ecompass; ahrs
        ignores a given q0 in that case, strideflow uses it). mag_ut switches to the 9-axis update
        and its default gain. dt_s: see `step_args` (irregular sampling).
        """
        acc = as_vectors("acc_mps2", acc_mps2)
        n = acc.shape[0]
        gyr = as_vectors("gyr_dps", gyr_dps, n)
        mag = _EMPTY_MAG if mag_ut is None else as_vectors("mag_ut", mag_ut, n)
        dt_fixed, dt_arr = step_args(n, sampling_rate_hz, dt_s)
        self.gain_ = self.settings.gain_for(mag_ut is not None)
        g, thr = rejection_params(self.settings.acc_rejection)
        out = np.empty((n, 4))
        if n == 0:
            self.orientation_ = out
            return self
        state = unit_quaternion(q0) if q0 is not None else k.initial_q_py(acc, mag, True)
        out[0] = state
        k.madgwick_run(state, acc, gyr, mag, dt_fixed, dt_arr, self.gain_, g, thr, 1, out)
        self.orientation_ = out
        return self

    def estimate_many(
        self,
        acc_mps2,
        gyr_dps,
        sampling_rate_hz=None,
        mag_ut=None,
        dt_s=None,
        q0=None,
    ) -> Madgwick:
        """Orientation of S independent sensors, inputs (S, N, 3); the result equals S `estimate` runs.

        sampling_rate_hz: scalar or one per sensor (S,); dt_s: None, (S,) or (S, N) steps;
        q0: None, (4,) for all or (S, 4). Sensors are spread over all cores.
        """
        acc, gyr, mag, dt_fixed, dt_arr = many_args(acc_mps2, gyr_dps, mag_ut, sampling_rate_hz, dt_s)
        n_sensors, n = acc.shape[:2]
        self.gain_ = self.settings.gain_for(mag_ut is not None)
        g, thr = rejection_params(self.settings.acc_rejection)
        out = np.empty((n_sensors, n, 4))
        if n == 0 or n_sensors == 0:
            self.orientation_ = out
            return self
        states, init = many_states(q0, n_sensors, 4)
        k.madgwick_run_many(states, init, acc, gyr, mag, dt_fixed, dt_arr, self.gain_, g, thr, out)
        self.orientation_ = out
        return self


def many_args(acc_mps2, gyr_dps, mag_ut, sampling_rate_hz, dt_s):
    """Checked (S, N, 3) arrays and per-sensor step arguments for the many-sensor kernels."""
    acc = np.ascontiguousarray(acc_mps2, dtype=np.float64)
    if acc.ndim != 3 or acc.shape[2] != 3:
        raise FusionInputError(f"acc_mps2 must have shape (S, N, 3), got {acc.shape}")
    gyr = np.ascontiguousarray(gyr_dps, dtype=np.float64)
    if gyr.shape != acc.shape:
        raise FusionInputError(f"gyr_dps has shape {gyr.shape}, expected {acc.shape} like acc")
    check_finite("acc_mps2", acc)
    check_finite("gyr_dps", gyr)
    n_sensors, n = acc.shape[:2]
    if mag_ut is None:
        mag = readonly(np.empty((n_sensors, 0, 3)))
    else:
        mag = np.ascontiguousarray(mag_ut, dtype=np.float64)
        if mag.shape != acc.shape:
            raise FusionInputError(f"mag_ut has shape {mag.shape}, expected {acc.shape} like acc")
        check_finite("mag_ut", mag)
        mag = readonly(mag)
    if dt_s is not None and np.ndim(dt_s) == 2:
        dt = np.asarray(dt_s, dtype=np.float64)
        if dt.shape != (n_sensors, n):
            raise FusionInputError(f"dt_s must have shape {(n_sensors, n)}, got {dt.shape}")
        used = dt[:, 1:]
        if not (np.isfinite(used).all() and (used > 0).all()):
            raise FusionInputError("dt_s must be positive and finite")
        return readonly(acc), readonly(gyr), mag, np.zeros(n_sensors), readonly(np.ascontiguousarray(dt))
    source = sampling_rate_hz if dt_s is None else dt_s
    per_sensor = np.broadcast_to(np.asarray(source, dtype=np.float64), (n_sensors,))
    if source is None or not (np.isfinite(per_sensor).all() and (per_sensor > 0).all()):
        raise FusionInputError("give a positive sampling_rate_hz or dt_s (scalar or one per sensor)")
    dt_fixed = 1.0 / per_sensor if dt_s is None else per_sensor.copy()
    return (
        readonly(acc),
        readonly(gyr),
        mag,
        np.ascontiguousarray(dt_fixed),
        readonly(np.empty((n_sensors, 0))),
    )


def many_states(q0, n_sensors: int, width: int) -> tuple[np.ndarray, bool]:
    """Start states (S, width) and whether the kernel should derive q from the first sample."""
    states = np.zeros((n_sensors, width))
    if q0 is None:
        return states, True
    q = np.asarray(q0, dtype=np.float64)
    q = unit_quaternion(q, q.shape) if q.shape in ((4,), (n_sensors, 4)) else unit_quaternion(q)
    states[:, :4] = q
    return states, False
