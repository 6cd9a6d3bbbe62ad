"""Streaming filters: feed chunks of any size (1 sample to a whole file), state carried between them.

The chunks run through the same compiled recursion as the batch filters, so the concatenated
chunk outputs equal `Madgwick(...).estimate` / `Mahony(...).estimate` on the whole recording
(bit for bit in practice; the contract is 1e-12). Units as in the batch filters: acc m/s²,
gyr deg/s, mag µT; output quaternions (w, x, y, z), sensor to world.
"""

from __future__ import annotations

import numpy as np

from strideflow.fusion import _kernels as k
from strideflow.fusion.madgwick import _EMPTY_DT, _EMPTY_MAG, as_vectors, step_args, unit_quaternion
from strideflow.fusion.settings import (
    FusionInputError,
    MadgwickSettings,
    MahonySettings,
    rejection_params,
)


class _Stream:
    _madgwick = True
    _width = 4

    def __init__(self, sampling_rate_hz: float | None, q0, with_magnetometer: bool) -> None:
        # validates the rate once; chunks without dt_s use it
        self._dt_fixed = step_args(1, sampling_rate_hz, None)[0] if sampling_rate_hz is not None else None
        self._q0 = None if q0 is None else unit_quaternion(q0)
        self.with_magnetometer = with_magnetometer
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample starts a new recording."""
        self._state = np.zeros(7)
        self._state[4:] = self._bias0_rad()
        self._started = False
        self.n_samples = 0

    def _bias0_rad(self) -> np.ndarray:
        return np.zeros(3)

    @property
    def orientation(self) -> np.ndarray | None:
        """Quaternion (w, x, y, z) after the last sample, or None before the first."""
        return self._state[:4].copy() if self._started else None

    def update(self, acc_mps2, gyr_dps, mag_ut=None, dt_s=None) -> np.ndarray:
        """Orientation (n, 4) of the n samples of this chunk (acc m/s², gyr deg/s, mag µT, (n, 3)).

        dt_s: None (fixed rate of the stream), a scalar, or n steps where element k is the time
        from the previous sample (the last one of the previous chunk for k = 0) to sample k.
        """
        acc = as_vectors("acc_mps2", acc_mps2)
        n = acc.shape[0]
        gyr = as_vectors("gyr_dps", gyr_dps, n)
        if (mag_ut is not None) != self.with_magnetometer:
            need = "needs" if self.with_magnetometer else "was created without"
            raise FusionInputError(
                f"this stream {need} a magnetometer (with_magnetometer={self.with_magnetometer})"
            )
        mag = _EMPTY_MAG if mag_ut is None else as_vectors("mag_ut", mag_ut, n)
        out = np.empty((n, 4))
        if n == 0:
            return out
        start = 0
        if not self._started:
            if self._q0 is not None:
                self._state[:4] = self._q0
            else:
                self._state[:4] = k.initial_q_py(acc, mag, self._madgwick)
            out[0] = self._state[:4]
            self._started = True
            start = 1
        if dt_s is None and self._dt_fixed is None:
            raise FusionInputError("this stream has no sampling_rate_hz: give dt_s with every chunk")
        if dt_s is None:
            dt_fixed, dt_arr = self._dt_fixed, _EMPTY_DT
        elif np.ndim(dt_s) == 0:
            dt_fixed, dt_arr = step_args(n, None, dt_s)
        else:
            if np.shape(dt_s) != (n,):
                raise FusionInputError(f"dt_s must be a scalar or have {n} elements, got {np.shape(dt_s)}")
            dt_fixed, dt_arr = step_args(n, None, dt_s, first_used=start)
        self._run(acc, gyr, mag, dt_fixed, dt_arr, start, out)
        self.n_samples += n
        return out


class MadgwickStream(_Stream):
    """Madgwick filter fed chunk by chunk; equals `Madgwick(settings).estimate` on the concatenation."""

    def __init__(
        self,
        settings: MadgwickSettings | None = None,
        sampling_rate_hz: float | None = None,
        q0=None,
        with_magnetometer: bool = False,
    ) -> None:
        self.settings = settings if settings is not None else MadgwickSettings()
        self.gain = self.settings.gain_for(with_magnetometer)
        self._g, self._thr = rejection_params(self.settings.acc_rejection)
        super().__init__(sampling_rate_hz, q0, with_magnetometer)

    def _run(self, acc, gyr, mag, dt_fixed, dt_arr, start, out) -> None:
        state = self._state[:4]  # a view: the kernel updates the stream's state in place
        k.madgwick_run(state, acc, gyr, mag, dt_fixed, dt_arr, self.gain, self._g, self._thr, start, out)


class MahonyStream(_Stream):
    """Mahony filter fed chunk by chunk; equals `Mahony(settings).estimate` on the concatenation."""

    _madgwick = False

    def __init__(
        self,
        settings: MahonySettings | None = None,
        sampling_rate_hz: float | None = None,
        q0=None,
        with_magnetometer: bool = False,
    ) -> None:
        self.settings = settings if settings is not None else MahonySettings()
        self._g, self._thr = rejection_params(self.settings.acc_rejection)
        super().__init__(sampling_rate_hz, q0, with_magnetometer)

    def _bias0_rad(self) -> np.ndarray:
        return np.radians(self.settings.bias0_dps)

    @property
    def bias_dps(self) -> np.ndarray:
        """Current gyroscope-bias estimate, deg/s."""
        return np.degrees(self._state[4:])

    def _run(self, acc, gyr, mag, dt_fixed, dt_arr, start, out) -> None:
        s = self.settings
        k.mahony_run(
            self._state, acc, gyr, mag, dt_fixed, dt_arr, s.k_p, s.k_i, self._g, self._thr, start, out
        )
