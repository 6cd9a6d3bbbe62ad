"""Typed, frozen settings of the orientation filters, with documented defaults and units.

The defaults reproduce the `ahrs` package (0.4.x) exactly ("reference-equivalence mode"):
Madgwick gain 0.033 without / 0.041 with a magnetometer, Mahony k_P = 1.0, k_I = 0.3, no bias
at start, no acceleration rejection. Acceleration rejection is opt-in because it changes the
result wherever a shoe hits the ground.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2

MADGWICK_GAIN_IMU = 0.033  # ahrs default (rad/s quaternion-derivative units), 6-axis
MADGWICK_GAIN_MARG = 0.041  # ahrs default, 9-axis


@dataclass(frozen=True)
class AccelerationRejection:
    """Skip the accelerometer correction while | |a| - g | exceeds `threshold_mps2`.

    During an impact or push-off the accelerometer measures far more than gravity, so its
    direction says little about tilt; x-io Fusion ignores it then and trusts the gyroscope alone.
    `threshold_mps2` is in m/s² (default 0.1 g); `gravity_mps2` is the magnitude of g (m/s²).
    """

    threshold_mps2: float = 0.1 * STANDARD_GRAVITY_MPS2
    gravity_mps2: float = STANDARD_GRAVITY_MPS2

    def __post_init__(self) -> None:
        if not (self.threshold_mps2 > 0 and math.isfinite(self.threshold_mps2)):
            raise ValueError(f"threshold_mps2 must be positive and finite, got {self.threshold_mps2}")
        if not (self.gravity_mps2 > 0 and math.isfinite(self.gravity_mps2)):
            raise ValueError(f"gravity_mps2 must be positive and finite, got {self.gravity_mps2}")


@dataclass(frozen=True)
class MadgwickSettings:
    """Madgwick gradient-descent filter.

    gain: beta, the gradient step (unit of a quaternion rate, 1/s); None picks the ahrs default
        for the sensor set: 0.033 for gyro + accelerometer, 0.041 with a magnetometer.
    acc_rejection: None (default, ahrs-equivalent) or an `AccelerationRejection`; when the
        accelerometer is rejected the whole correction step (including the magnetometer) is
        skipped for that sample.
    """

    gain: float | None = None
    acc_rejection: AccelerationRejection | None = None

    def __post_init__(self) -> None:
        if self.gain is not None and not (self.gain >= 0 and math.isfinite(self.gain)):
            raise ValueError(f"gain must be >= 0 and finite, got {self.gain}")

    def gain_for(self, with_magnetometer: bool) -> float:
        """The gain in use: the explicit one, else the ahrs default for the sensor set."""
        if self.gain is not None:
            return float(self.gain)
        return MADGWICK_GAIN_MARG if with_magnetometer else MADGWICK_GAIN_IMU


@dataclass(frozen=True)
class MahonySettings:
    """Mahony explicit complementary filter.

    k_p: proportional gain (rad/s per unit of the cross-product error), ahrs default 1.0.
    k_i: integral gain for the gyroscope-bias estimate (rad/s² per unit error), ahrs default 0.3.
    bias0_dps: gyroscope bias at start (deg/s, sensor frame); ahrs starts from zero.
    acc_rejection: None (default, ahrs-equivalent) or an `AccelerationRejection`; when the
        accelerometer is rejected its error term (and its share of the bias update) is left out,
        the magnetometer term is kept.
    """

    k_p: float = 1.0
    k_i: float = 0.3
    bias0_dps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    acc_rejection: AccelerationRejection | None = None

    def __post_init__(self) -> None:
        for name in ("k_p", "k_i"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be >= 0 and finite, got {value}")
        if len(self.bias0_dps) != 3 or not all(math.isfinite(b) for b in self.bias0_dps):
            raise ValueError(f"bias0_dps must be three finite numbers, got {self.bias0_dps}")


def rejection_params(rejection: AccelerationRejection | None) -> tuple[float, float]:
    """(gravity_mps2, threshold_mps2) for the kernels; a negative threshold switches rejection off."""
    if rejection is None:
        return STANDARD_GRAVITY_MPS2, -1.0
    return float(rejection.gravity_mps2), float(rejection.threshold_mps2)


class FusionInputError(StrideflowError, ValueError):
    """Samples a filter cannot use (shape, non-finite values, non-positive time steps); names the problem."""
