"""Device profiles: measuring range, resolution, rate and noise of a shoe IMU."""

from __future__ import annotations

from dataclasses import dataclass

from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2


@dataclass(frozen=True)
class DeviceProfile:
    """What a sensor can measure and how well.

    Defaults describe a typical shoe pod (±16 g, ±2000 deg/s, 16-bit, 200 Hz).
    """

    name: str = "generic-16g-2000dps"
    sampling_rate_hz: float = 200.0
    acc_range_g: float = 16.0  # full-scale, ± g
    gyr_range_dps: float = 2000.0  # full-scale, ± deg/s
    adc_bits: int = 16
    acc_noise_density_mps2: float = 0.02  # white noise, m/s² per sample (RMS)
    gyr_noise_dps: float = 0.15  # white noise, deg/s per sample (RMS)
    gyr_bias_dps: float = 1.0  # typical turn-on bias magnitude, deg/s (1 sigma per axis)
    # Gyro gain errors of an uncalibrated MEMS part (the simulator draws them per device and session;
    # 0 = none). On by default at the level of a factory-trimmed consumer MEMS gyro (data sheets give
    # about +-1 % sensitivity tolerance and ~1 % cross-axis sensitivity, ~0.6 deg; issue 15):
    gyr_scale_error: float = 0.01  # sensitivity error per axis, fraction (1 sigma)
    gyr_misalignment_deg: float = 0.5  # cross-axis sensitivity per axis pair, deg (1 sigma)
    # The gyro's samples lag the accelerometer's by this (s): the two channels go through different
    # filters. 0 = in step; 5 ms on the LORD 3DM-GX5-25 (measured, `ingest.formats.lord`).
    gyr_delay_s: float = 0.0
    # Fixed device -> foot-frame rotation (w, x, y, z) when the pod sits in a known holder;
    # None: estimate it from the data (strideflow.hardware.mounting).
    mounting_wxyz: tuple[float, float, float, float] | None = None

    @property
    def acc_range_mps2(self) -> float:
        """Full-scale acceleration, m/s²."""
        return self.acc_range_g * STANDARD_GRAVITY_MPS2

    @property
    def acc_lsb_mps2(self) -> float:
        """One count of the acceleration ADC, m/s²."""
        return self.acc_range_mps2 / 2 ** (self.adc_bits - 1)

    @property
    def gyr_lsb_dps(self) -> float:
        """One count of the gyroscope ADC, deg/s."""
        return self.gyr_range_dps / 2 ** (self.adc_bits - 1)


PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile(),
        # NilsPod-like pod of the gaitmap recordings (±16 g, ±2000 deg/s at 204.8 Hz).
        DeviceProfile(name="nilspod", sampling_rate_hz=204.8),
        # LORD MicroStrain 3DM-GX5-25 as seen in the footprint walks (issue 17): its gyro lags its
        # accelerometer by 5 ms (the SensorConnect reader undoes it, `ingest.formats.lord`) and
        # clips at about 500 deg/s per axis on fast swings; up to 17 g passed unclipped.
        DeviceProfile(name="lord-3dm-gx5-25", acc_range_g=20.0, gyr_range_dps=500.0, gyr_delay_s=0.005),
        # A cheaper pod that saturates on running impacts.
        DeviceProfile(name="budget-8g-1000dps", acc_range_g=8.0, gyr_range_dps=1000.0, gyr_noise_dps=0.3),
    )
}
DEFAULT_PROFILE = PROFILES["generic-16g-2000dps"]
