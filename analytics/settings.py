"""Settings of the analysis of a recording or a live stream, stage by stage (`AnalysisSettings`).

Below both users: the batch pipeline (`analytics.pipeline`), the segment analysis they share
(`analytics.segment`) and the live analyzer (`analytics.live_analyzer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from strideflow.analytics.events import EventSettings
from strideflow.analytics.flags import FlagSettings
from strideflow.analytics.foot_side import FootSideSettings
from strideflow.analytics.metrics import MetricSettings
from strideflow.analytics.sessions import SessionSettings
from strideflow.analytics.signals import SignalSettings
from strideflow.fusion.sensor_delay import GyroDelaySettings
from strideflow.fusion.settings import AccelerationRejection, MadgwickSettings
from strideflow.fusion.zero_velocity import ZeroVelocitySettings
from strideflow.fusion.zupt import ZuptSettings
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.mounting import MountingSettings
from strideflow.hardware.remount import RemountSettings

# Stillness relaxed for running, whose foot-flats are a few tens of ms long and still roll.
RUNNING_MOUNTING = MountingSettings(
    still_window_s=0.03, still_gyr_dps=100.0, still_acc_tol_mps2=3.0, still_acc_std_mps2=4.0
)


class AnalysisError(StrideflowError):
    """A recording that cannot be analysed (e.g. too short for any stride), with the reason."""


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the analysis of a recording or a stream depends on, stage by stage.

    Parameters
    ----------
    align_mounting
        Estimate each foot's mounting rotation from its data (True), or trust that the samples
        already are in the foot frame (False).
    mounting, mounting_fallback
        Settings of `hardware.mounting.MountingEstimator`; the fallback (relaxed stillness, for
        running: foot-flats of a few tens of ms that still roll) is tried when the first finds no
        still periods or strides; None raises instead (`analytics.segment.estimate_mounting`).
    mounting_window_s
        The mounting is estimated from each foot's first this many seconds (the whole recording if
        that fails, or if None): the rotation is constant and more data does not help.
    orientation
        "zero_velocity" (default: gyro strapdown levelled on every foot-flat,
        `fusion.zupt.LevelledStrapdown`) or "madgwick" (the AHRS filter with the `madgwick`
        settings, impact rejection on: accelerometer ignored while | |a| - g | > 0.1 g).
    madgwick, zero_velocity, zupt, events, signals, metrics, sessions, flags
        Settings of each stage.
    min_segment_s
        Segments shorter than this are skipped (too short for a stride), s.
    gyr_delay_s
        How much the gyroscope lags the accelerometer (s); the gyro is read that much later before
        fusion. A number (a device's known value), or "estimate": per foot from its data
        (`fusion.sensor_delay.GyroDelayEstimator`, the delay minimising the ZUPT velocity residual),
        applied only when the residual singles it out and reported in the warnings either way.
        Default 0: on the real LORD footprint walks the estimate is not identifiable (flat
        residual, -11...+3 ms), while on the simulator it recovers the delay within 0.4 ms. Batch
        only: the live analysis refuses a non-zero value.
    gyr_delay
        Settings of that estimate.
    remount
        Remount detection (`hardware.remount`): within a recording, and of a prior mounting
        passed to the analysis against this session's estimate (`analytics.mountings`); None: no
        detection, a prior mounting is used as it is.
    foot_side
        Warn when a foot's strides invert instead of evert after contact (the label is probably
        the other foot; `analytics.foot_side.FootSideCheck`); None: no check.

    Notes
    -----
    The measurements behind the defaults (orientation method, mounting window) are in
    benchmarks/README.md ("analysis settings").
    """

    align_mounting: bool = True
    mounting: MountingSettings = field(default_factory=MountingSettings)
    mounting_fallback: MountingSettings | None = field(default_factory=lambda: RUNNING_MOUNTING)
    mounting_window_s: float | None = 300.0
    orientation: Literal["madgwick", "zero_velocity"] = "zero_velocity"
    madgwick: MadgwickSettings = field(
        default_factory=lambda: MadgwickSettings(acc_rejection=AccelerationRejection())
    )
    zero_velocity: ZeroVelocitySettings = field(default_factory=ZeroVelocitySettings)
    zupt: ZuptSettings = field(default_factory=ZuptSettings)
    events: EventSettings = field(default_factory=EventSettings)
    signals: SignalSettings = field(default_factory=SignalSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    flags: FlagSettings = field(default_factory=FlagSettings)
    min_segment_s: float = 2.0
    gyr_delay_s: float | Literal["estimate"] = 0.0
    gyr_delay: GyroDelaySettings = field(default_factory=GyroDelaySettings)
    foot_side: FootSideSettings | None = field(default_factory=FootSideSettings)
    remount: RemountSettings | None = field(default_factory=RemountSettings)
