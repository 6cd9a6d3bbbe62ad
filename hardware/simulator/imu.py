"""Sensor model: mounting rotation, gyro gain errors, white noise, constant biases, ADC quantisation
and saturation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from strideflow.hardware.profiles import DeviceProfile

MOUNTING_DEG = (
    2.0,
    15.0,
)  # askew pods: each axis of the mounting rotation a magnitude in this range, either sign
# Square pods (the default): the case along an edge of the shoe on its lateral upper, rolled outward by the
# upper's slope (the gaitmap pods: 14-16 deg), pitched a little, and turned on the shoe by at most the
# hand-mounting tolerance (within the 3 deg `ShoeAxisSettings.square_tolerance_deg` assumes).
SQUARE_ROLL_DEG = (5.0, 20.0)
SQUARE_PITCH_DEG = 5.0  # +- this
SQUARE_YAW_DEG = 2.0  # +- this
MOUNT_STYLES = ("square", "askew")
GYR_BIAS_SCALE = (0.5, 2.0)  # per-axis gyro bias magnitude, x the profile's gyr_bias_dps
ACC_BIAS_MPS2 = 0.05  # 1 sigma per axis of the accelerometer bias


@dataclass(frozen=True)
class SensorErrors:
    """Errors of one device in one session.

    mounting maps foot-frame coordinates to device-frame coordinates: v_device = mounting.apply(v_foot).
    """

    mounting: Rotation
    gyr_bias_dps: np.ndarray
    acc_bias_mps2: np.ndarray
    # device-frame gyro reading = gyr_gain @ true rate (+ bias, noise): identity = no gain error
    gyr_gain: np.ndarray = field(default_factory=lambda: np.eye(3))


def draw_mounting(rng: np.random.Generator, foot: str = "left", style: str = "square") -> Rotation:
    """A random foot -> device mounting rotation.

    "square" (default): rolled outward SQUARE_ROLL_DEG, pitched within +-SQUARE_PITCH_DEG and turned
    within +-SQUARE_YAW_DEG (intrinsic XYZ), as real pods clipped or taped along the shoe sit;
    "askew": MOUNTING_DEG about each axis, yaw included (a pod turned on its mount, whose shoe axis
    walking data cannot reveal).
    """
    if style == "askew":
        deg = rng.uniform(*MOUNTING_DEG, size=3) * rng.choice([-1.0, 1.0], size=3)
        return Rotation.from_euler("xyz", deg, degrees=True)
    if style != "square":
        raise ValueError(f"mount style must be one of {', '.join(MOUNT_STYLES)}, got {style!r}")
    roll = rng.uniform(*SQUARE_ROLL_DEG) * (1.0 if foot == "left" else -1.0)
    pitch = rng.uniform(-SQUARE_PITCH_DEG, SQUARE_PITCH_DEG)
    yaw = rng.uniform(-SQUARE_YAW_DEG, SQUARE_YAW_DEG)
    return Rotation.from_euler("XYZ", [roll, pitch, yaw], degrees=True)


def draw_gyr_gain(rng: np.random.Generator, profile: DeviceProfile) -> np.ndarray:
    """A gyro gain matrix (device reading = gain @ rate): identity plus the profile's per-axis
    sensitivity error and cross-axis terms (1 sigma each); identity if the profile has none."""
    gain = np.eye(3)
    if profile.gyr_scale_error > 0 or profile.gyr_misalignment_deg > 0:
        gain = gain + np.diag(profile.gyr_scale_error * rng.standard_normal(3))
        cross = np.radians(profile.gyr_misalignment_deg) * rng.standard_normal((3, 3))
        np.fill_diagonal(cross, 0.0)
        gain = gain + cross
    return gain


def draw_errors(
    rng: np.random.Generator,
    profile: DeviceProfile,
    mounting: Rotation | None,
    gyr_gain: np.ndarray | None = None,
) -> SensorErrors:
    """Session biases and gyro gain errors (if the profile has any) of one device, with the given
    (or no, for None) mounting. Gain errors are drawn last, so profiles without them give the same
    data as before they existed; a given `gyr_gain` (the same pod in another session) replaces the
    drawn one (which is still drawn, so the noise that follows is the same)."""
    gyr_bias = rng.uniform(*GYR_BIAS_SCALE, size=3) * profile.gyr_bias_dps * rng.choice([-1.0, 1.0], size=3)
    acc_bias = ACC_BIAS_MPS2 * rng.standard_normal(3)
    gain = draw_gyr_gain(rng, profile)
    if gyr_gain is not None:
        gain = np.asarray(gyr_gain, dtype=float).reshape(3, 3)
    return SensorErrors(mounting if mounting is not None else Rotation.identity(), gyr_bias, acc_bias, gain)


def quantize(x: np.ndarray, lsb: float, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Signal through a `bits`-bit ADC with step lsb: (value, saturated mask per sample)."""
    top = 2 ** (bits - 1)
    counts = np.clip(np.round(x / lsb), -top, top - 1)
    saturated = np.any((counts <= -top) | (counts >= top - 1), axis=-1)
    return counts * lsb, saturated


def delay_channel(x: np.ndarray, sampling_rate_hz: float, delay_s: float) -> np.ndarray:
    """x (N, 3) as a channel that lags by delay_s (s) samples it: x(t - delay) by linear
    interpolation, the first value held before the start."""
    if delay_s == 0.0 or len(x) == 0:
        return x
    t = np.arange(len(x)) / float(sampling_rate_hz)
    return np.column_stack([np.interp(t - delay_s, t, x[:, k]) for k in range(x.shape[1])])


def measure(
    gyr_dps: np.ndarray,
    acc_mps2: np.ndarray,
    errors: SensorErrors,
    profile: DeviceProfile,
    rng: np.random.Generator,
    noise: bool = True,
    adc: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Device readings (gyr deg/s, acc m/s^2, saturated mask) from the exact foot-frame signals."""
    gyr = errors.mounting.apply(gyr_dps)
    if not np.array_equal(errors.gyr_gain, np.eye(3)):
        gyr = gyr @ errors.gyr_gain.T
    acc = errors.mounting.apply(acc_mps2)
    if noise:
        gyr = gyr + errors.gyr_bias_dps + profile.gyr_noise_dps * rng.standard_normal(gyr.shape)
        acc = acc + errors.acc_bias_mps2 + profile.acc_noise_density_mps2 * rng.standard_normal(acc.shape)
    saturated = np.zeros(len(gyr), bool)
    if adc:
        gyr, sat_g = quantize(gyr, profile.gyr_lsb_dps, profile.adc_bits)
        acc, sat_a = quantize(acc, profile.acc_lsb_mps2, profile.adc_bits)
        saturated = sat_g | sat_a
    return gyr, acc, saturated
