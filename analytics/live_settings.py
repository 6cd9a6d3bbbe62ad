"""Settings of the live analyzer (`analytics.live_analyzer`), its error, and the tolerances it
guarantees against batch."""

from __future__ import annotations

from dataclasses import dataclass, field

from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    FOOT_STRIKE_ANGLE_DEG,
    HEEL_OFF_RATIO,
    IMPACT_G,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    SPEED_MPS,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
)
from strideflow.ingest.settings import ReadSettings

__all__ = ["STANCE_TOLERANCE", "WARMUP_TOLERANCE", "LiveError", "LiveSettings"]

# The guaranteed largest difference from batch of each metric of a valid stride when mounting and
# gyro bias come from the 20 s warm-up (units of the column: deg, deg/s, m, m/s, g); measured
# maxima in benchmarks/README.md ("live analyzer"). With batch's rotation and bias every metric
# is within 1e-6.
WARMUP_TOLERANCE: dict[str, float] = {
    STRIDE_LENGTH_M: 0.01,
    SPEED_MPS: 0.01,
    FOOT_STRIKE_ANGLE_DEG: 2.0,
    PRONATION_EXCURSION_DEG: 2.0,
    TOE_OFF_PRONATION_DEG: 5.0,
    TOE_OFF_ANGLE_DEG: 2.0,
    MAX_PRONATION_VELOCITY_DPS: 15.0,
    PUSH_OFF_RATE_DPS: 15.0,
    IMPACT_G: 1e-6,
}

# The guaranteed largest difference between a stride's provisional stance row and its final row
# when both have the same events (units of the column). The stance row's orientation is levelled
# forward only; the final row spreads the tilt error found at the next foot-flat back over the
# swing, linearly in time, which moves the toe-off angles (real sensors: 2-7 deg of tilt error per
# stride). Measured maxima (benchmarks/README.md): simulator 0.61 deg toe-off pronation, 0.08 deg
# toe-off angle, 0.37 deg/s push-off rate, <= 0.02 for the rest; real imu_sample.csv (in the shoe
# frame, issue 15) 2.9 deg, 1.1 deg, 10.7 deg/s, 0.29 deg excursion, 0.14 deg strike angle, and
# 0.18 s time to max pronation (its maximum sits on a plateau, whose argmax the small tilt change
# can move); the push-off rate moves more there than in the walking-direction frame (5.2 deg/s),
# as the shoe leaves the ground rolled by 10-20 deg, which couples roll into the pitch rate.
STANCE_TOLERANCE: dict[str, float] = {
    STANCE_TIME_S: 1e-9,
    FOOT_STRIKE_ANGLE_DEG: 0.3,
    PRONATION_EXCURSION_DEG: 0.5,
    MAX_PRONATION_VELOCITY_DPS: 1.0,
    TIME_TO_MAX_PRONATION_S: 0.25,
    TOE_OFF_PRONATION_DEG: 3.0,
    TOE_OFF_ANGLE_DEG: 2.0,
    PUSH_OFF_RATE_DPS: 12.0,
    HEEL_OFF_RATIO: 1e-9,
    IMPACT_G: 1e-6,
}


class LiveError(StrideflowError):
    """A block that cannot be analysed (wrong shape, non-finite value, time not increasing)."""


@dataclass(frozen=True)
class LiveSettings:
    """Settings of `LiveStrideAnalyzer` (times in s).

    analysis: the batch settings the strides must agree with (events, metrics, zero velocity,
        orientation "zero_velocity" or "madgwick", align_mounting, min_segment_s).
    mounting_wxyz: fixed device -> foot rotation (scalar-first quaternion, e.g. a device profile's
        `mounting_wxyz`); None estimates it from the warm-up (if `analysis.align_mounting`).
    gyr_bias_dps: fixed foot-frame gyroscope bias the levelled orientation subtracts; None
        estimates it from the warm-up's still samples as `fusion.zupt.LevelledStrapdown` does
        (batch: from all still samples of the segment).
    anchor_tilt_sd_deg: fixed prior (deg) of the stance tilt fit with
        `analysis.zupt.tilt_fit_prior_deg="levelling"` (batch: `LevelledStrapdown.anchor_tilt_sd_deg_`
        of the segment); None estimates it from the warm-up's levelling, as the bias.
    warmup_s: samples collected before the first mounting and bias estimate (nothing is emitted
        before; the mounting needs `analysis.mounting.min_strides` strides). No warm-up when
        both are fixed (or not used: no alignment and Madgwick orientation).
    warmup_retry_s: when the mounting estimate fails (standing, no walking yet) it is tried
        again after this many more seconds, on all samples so far (at most `max_buffer_s`, the
        oldest dropped beyond that, with a warning).
    max_buffer_s: longest window kept without a stride closing; beyond it the bout is cut.
    zero_velocity_chunk_s: zero-velocity flags are finalised in chunks of this length.
    zero_velocity_margin_s: context on each side for final zero-velocity flags; None derives
        it from `analysis.zero_velocity` (1.785 s at 200 Hz by default).
    read: gap rules of ingest: a step over `gap_min_intervals` intervals is a gap; up to
        `max_interpolated_gap_s` of missing time is filled by linear interpolation (samples
        flagged, strides over them invalid "gap"), longer starts a new segment.
    stances: also emit each stride's provisional stance row as soon as its toe-off is known
        (`LiveOutput.stances` of `push`); False saves that analysis.
    curves: keep the session's mean and SD stance and stride curves of the emitted strides
        (`LiveStrideAnalyzer.curves_`, `analytics.curves.CurveAccumulator`); False saves that work.
    """

    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    mounting_wxyz: tuple[float, float, float, float] | None = None
    gyr_bias_dps: tuple[float, float, float] | None = None
    anchor_tilt_sd_deg: float | None = None
    warmup_s: float = 20.0
    warmup_retry_s: float = 10.0
    max_buffer_s: float = 60.0
    zero_velocity_chunk_s: float = 0.2
    zero_velocity_margin_s: float | None = None
    read: ReadSettings = field(default_factory=ReadSettings)
    stances: bool = True
    curves: bool = True
