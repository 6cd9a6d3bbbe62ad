"""Thresholds of ingest validation, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReadSettings:
    """How strict ingest is and how it repairs timing problems.

    Gaps: two neighbouring samples further apart than `gap_min_intervals` sample intervals leave a
    gap whose length is the time without samples (their distance minus one interval). A gap up to
    `max_interpolated_gap_s` is filled by linear interpolation on the uniform grid (samples flagged
    `interpolated`); a longer one ends the segment and the recording continues in a new `segment`.

    Jitter: timestamps that all lie within `max_timestamp_jitter` sample intervals of a uniform grid
    are snapped to it (values unchanged); otherwise every channel is resampled onto the uniform grid
    at the nominal rate by linear interpolation between the neighbouring recorded samples.

    Nominal rate: the `sampling_rate_hz` given to the reader, else 1 / mean interval between
    regular neighbours, snapped to the closest of `nominal_rates_hz` when within
    `nominal_rate_tolerance` (relative), since devices run at a few standard rates and a jittered
    clock should not invent a new one.
    """

    max_interpolated_gap_s: float = 0.05  # s; longer gaps split the recording into segments
    gap_min_intervals: float = 1.75  # a step of more than this many nominal intervals is a gap
    max_timestamp_jitter: float = 0.1  # intervals; beyond this the samples are resampled
    min_rate_hz: float = 10.0  # slowest plausible IMU rate for gait
    max_rate_hz: float = 10_000.0  # fastest plausible IMU rate
    rate_mismatch_tolerance: float = 0.02  # relative; given rate vs time column
    nominal_rates_hz: tuple[float, ...] = (
        50.0,
        52.0,
        60.0,
        64.0,
        100.0,
        102.4,
        104.0,
        120.0,
        128.0,
        200.0,
        204.8,
        208.0,
        250.0,
        256.0,
        400.0,
        416.0,
        500.0,
        512.0,
        800.0,
        833.0,
        1000.0,
        1024.0,
        1600.0,
        2000.0,
    )
    nominal_rate_tolerance: float = 0.005  # relative
    # rad/s check: the foot clearly moves (|acc| off 1 g by more than `motion_acc_g` on at least
    # `motion_min_samples` samples) yet no angular rate reaches `radps_max_abs`: the numbers are rad/s.
    radps_max_abs: float = 20.0
    motion_acc_g: float = 0.5
    motion_min_samples: int = 5
    # g check: a median |acc| in this band (in the file's numbers) means the file is in g, not m/s².
    g_median_band: tuple[float, float] = (0.5, 2.0)
    # Plausibility: a foot's median |acc| (mostly standing or foot-flat) is near 1 g; nothing a shoe
    # IMU measures comes near these limits, so values beyond them are corrupt or in a wrong unit.
    acc_median_band_mps2: tuple[float, float] = (3.0, 50.0)
    max_plausible_acc_mps2: float = 10_000.0  # about 1000 g
    max_plausible_gyr_dps: float = 100_000.0
    # Saturation without a device profile: >= 2 consecutive samples at the same extreme |value|
    # that is at least a plausible full scale of a real sensor.
    min_full_scale_gyr_dps: float = 245.0
    min_full_scale_acc_g: float = 2.0
    saturation_rel_tol: float = 1e-3  # relative to the range: this close to it counts as at the range
    flat_rel_tol: float = 1e-6  # relative: neighbours this close are "the same value" (a clipped ADC code)
    # Unit plausibility warnings: still stretches (|acc| std below `rest_acc_std_mps2` over
    # `rest_window_s`) must read 1 g within `rest_gravity_rel_tol`; |gyr| beyond
    # `max_common_gyr_dps` (common shoe IMUs end at 2000 deg/s) means a wrong unit.
    rest_window_s: float = 0.25
    rest_acc_std_mps2: float = 0.05
    rest_gravity_rel_tol: float = 0.1
    max_common_gyr_dps: float = 4000.0
    max_warnings_per_kind: int = 50  # further warnings of a kind are summarised in one
