"""Mahony's explicit complementary filter with gyroscope-bias estimation (6- and 9-axis).

Same update rule, gains and start attitude as `ahrs.filters.Mahony` (0.4.x), compiled with numba.
Inputs: acceleration m/s², angular rate deg/s, magnetic field µT. Quaternions scalar first,
sensor to world (DESIGN.md frames).
"""

from __future__ import annotations

import numpy as np

from strideflow.fusion import _kernels as k
from strideflow.fusion.madgwick import (
    _EMPTY_MAG,
    as_vectors,
    many_args,
    many_states,
    step_args,
    unit_quaternion,
)
from strideflow.fusion.settings import MahonySettings, rejection_params


class Mahony:
    """Mahony filter: `estimate` one sensor, or `estimate_many` independent sensors at once.

    Parameters
    ----------
    settings
        `MahonySettings`: proportional and integral gains, initial gyro bias (deg/s) and the
        optional acceleration rejection.

    Attributes
    ----------
    orientation_
        (N, 4) or (S, N, 4) quaternions (w, x, y, z), sensor to world.
    bias_dps_
        (3,) or (S, 3) the gyroscope-bias estimate after the last sample, deg/s.

    Notes
    -----
    Explicit complementary filter of Mahony, Hamel & Pflimlin (2008, IEEE Trans. Automatic
    Control 53(5):1203-1218), written to give the same quaternions as the `ahrs` package's
    `Mahony` (`test_fusion_reference.py`).
    """

    def __init__(self, settings: MahonySettings | None = None) -> None:
        self.settings = settings if settings is not None else MahonySettings()

    def estimate(
        self,
        acc_mps2,
        gyr_dps,
        sampling_rate_hz: float | None = None,
        mag_ut=None,
        dt_s=None,
        q0=None,
    ) -> Mahony:
        """Orientation of every sample of one sensor (acc m/s², gyr deg/s, mag µT, (N, 3) each).

        The first quaternion is q0 (normalised) or, like ahrs, the attitude of the first sample:
        from gravity (acc2q), or with a magnetometer from gravity and field (am2q).
        """
        acc = as_vectors("acc_mps2", acc_mps2)
        n = acc.shape[0]
        gyr = as_vectors("gyr_dps", gyr_dps, n)
        mag = _EMPTY_MAG if mag_ut is None else as_vectors("mag_ut", mag_ut, n)
        dt_fixed, dt_arr = step_args(n, sampling_rate_hz, dt_s)
        s = self.settings
        g, thr = rejection_params(s.acc_rejection)
        out = np.empty((n, 4))
        state = np.zeros(7)
        state[4:] = np.radians(s.bias0_dps)
        if n > 0:
            state[:4] = unit_quaternion(q0) if q0 is not None else k.initial_q_py(acc, mag, False)
            out[0] = state[:4]
            k.mahony_run(state, acc, gyr, mag, dt_fixed, dt_arr, s.k_p, s.k_i, g, thr, 1, out)
        self.orientation_ = out
        self.bias_dps_ = np.degrees(state[4:])
        return self

    def estimate_many(
        self,
        acc_mps2,
        gyr_dps,
        sampling_rate_hz=None,
        mag_ut=None,
        dt_s=None,
        q0=None,
    ) -> Mahony:
        """S independent sensors, inputs (S, N, 3); equals S `estimate` runs (see Madgwick.estimate_many)."""
        acc, gyr, mag, dt_fixed, dt_arr = many_args(acc_mps2, gyr_dps, mag_ut, sampling_rate_hz, dt_s)
        n_sensors, n = acc.shape[:2]
        s = self.settings
        g, thr = rejection_params(s.acc_rejection)
        out = np.empty((n_sensors, n, 4))
        states, init = many_states(q0, n_sensors, 7)
        states[:, 4:] = np.radians(s.bias0_dps)
        if n > 0 and n_sensors > 0:
            k.mahony_run_many(states, init, acc, gyr, mag, dt_fixed, dt_arr, s.k_p, s.k_i, g, thr, out)
        self.orientation_ = out
        self.bias_dps_ = np.degrees(states[:, 4:])
        return self
