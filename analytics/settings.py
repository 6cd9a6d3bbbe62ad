"""Settings of the analysis of a recording or a live stream, stage by stage (`AnalysisSettings`).

Below both users: the batch pipeline (`analytics.pipeline`), the segment analysis they share
(`analytics.segment`) and the live analyzer (`analytics.live_analyzer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from strideflow.analytics.events import EventSettings
from strideflow.analytics.flags import FlagSettings
from strideflow.analytics.metrics import MetricSettings
from strideflow.analytics.sessions import SessionSettings
from strideflow.analytics.signals import SignalSettings
from strideflow.fusion.settings import AccelerationRejection, MadgwickSettings
from strideflow.fusion.zero_velocity import ZeroVelocitySettings
from strideflow.fusion.zupt import ZuptSettings
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.mounting import MountingSettings

# Stillness relaxed for running, whose foot-flats are a few tens of ms long and still roll.
RUNNING_MOUNTING = MountingSettings(
    still_window_s=0.03, still_gyr_dps=100.0, still_acc_tol_mps2=3.0, still_acc_std_mps2=4.0
)


class AnalysisError(StrideflowError):
    """A recording that cannot be analysed (e.g. too short for any stride), with the reason."""


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the analysis of a recording depends on, stage by stage.

    - `align_mounting`: estimate each foot's mounting rotation from its data (True), or trust that
      the samples already are in the foot frame (False).
    - `orientation`: "zero_velocity" (default: gyro strapdown levelled on every foot-flat by
      `fusion.zupt.zero_velocity_aided_orientation`) or "madgwick" (the AHRS filter with the
      `madgwick` settings, impact rejection on: accelerometer ignored while | |a| - g | > 0.1 g).
      Measured on simulator truth (benchmarks/accuracy.py): within a stride the metrics are angle
      differences over a few hundred ms, where integrating the gyro is nearly exact, while
      Madgwick's accelerometer step pulls roll during push-off (toe-off pronation error 7-16 deg
      mean absolute with Madgwick against 0.3-1 deg levelled).
    - `mounting_fallback`: tried when `mounting` finds no still periods or strides (running:
      foot-flats of a few tens of ms that still roll); None raises instead.
    - `mounting_window_s`: the mounting is estimated from each foot's first this many seconds
      (the whole recording if that fails, or if None). The rotation is constant, and more data
      does not help: on 16 hour-long simulated feet the error against the true mounting was the
      same from 300 s as from 3600 s (0.15-0.69 deg, differences <= 0.03 deg) at a twentieth of
      the cost.
    - `min_segment_s`: segments shorter than this are skipped (too short for a stride).
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
