"""Validation and repair of one foot's numbers: finite values, units, time order, rate, gaps, jitter,
saturation. Every check is over whole numpy arrays; a problem either raises IngestError naming the
row and column or is repaired and logged as an IngestWarning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strideflow.hardware.profiles import DeviceProfile
from strideflow.hardware.schema import (
    ACC,
    GYR,
    INTERPOLATED,
    MAG,
    SATURATED,
    SEGMENT,
    STANDARD_GRAVITY_MPS2,
    T,
)
from strideflow.ingest.errors import (
    GAP_INTERPOLATED,
    GAP_SPLIT,
    RESAMPLED,
    SATURATION,
    UNIT,
    IngestError,
    WarningLog,
)
from strideflow.ingest.gaps import find_gaps
from strideflow.ingest.settings import ReadSettings

GYR_UNITS = {None: None, "dps": 1.0, "deg/s": 1.0, "rad/s": float(np.degrees(1.0))}
ACC_UNITS = {None: None, "mps2": 1.0, "m/s^2": 1.0, "g": STANDARD_GRAVITY_MPS2}


@dataclass
class FootSeries:
    """One foot's samples on the way through conditioning."""

    foot: str
    t: np.ndarray  # s since session start (after `check_time`)
    channels: dict[str, np.ndarray]  # canonical -> values
    labels: dict[str, str]  # canonical -> column as the file names it
    rows: np.ndarray  # 1-based file line (or table row) of every sample
    time_label: str
    units: dict[str, str | None]  # unit stated by the file, per group


def check_finite(source: str, series: FootSeries) -> None:
    """Reject NaN and inf, naming the first bad cell."""
    columns = {series.time_label: series.t, **{series.labels[c]: v for c, v in series.channels.items()}}
    first_row, first_col, first_val, total = None, None, 0.0, 0
    for label, values in columns.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            total += bad.size
            if first_row is None or series.rows[bad[0]] < first_row:
                first_row, first_col, first_val = int(series.rows[bad[0]]), label, values[bad[0]]
    if first_row is not None:
        more = f" ({total} non-finite cells in total)" if total > 1 else ""
        raise IngestError(
            source, f"{first_val} is not a finite number{more}", row=first_row, column=first_col
        )


def check_time_order(source: str, series: FootSeries) -> None:
    """Timestamps must strictly increase; names the first backward or repeated one."""
    steps = np.diff(series.t)
    bad = np.flatnonzero(steps <= 0)
    if bad.size == 0:
        return
    i = int(bad[0])
    before, after = series.t[i], series.t[i + 1]
    kind = "duplicate timestamp" if steps[i] == 0 else "timestamp goes backwards"
    raise IngestError(
        source,
        f"{kind}: {after:.9g} s after {before:.9g} s on row {int(series.rows[i])} "
        f"({bad.size} such step{'s' if bad.size > 1 else ''} in total)",
        row=int(series.rows[i + 1]),
        column=series.time_label,
    )


def infer_rate(source: str, series: list[FootSeries], given: float | None, settings: ReadSettings) -> float:
    """Nominal sampling rate: given, else from the timestamps (see ReadSettings); checked for plausibility."""
    if given is not None:
        if not (np.isfinite(given) and settings.min_rate_hz <= given <= settings.max_rate_hz):
            raise IngestError(
                source,
                f"sampling rate {given:g} Hz is outside "
                f"{settings.min_rate_hz:g} to {settings.max_rate_hz:g} Hz",
            )
    steps = np.concatenate([np.diff(s.t) for s in series]) if series else np.empty(0)
    if steps.size == 0:
        if given is None:
            raise IngestError(
                source, "a single sample: cannot infer the sampling rate; pass sampling_rate_hz"
            )
        return float(given)
    median = float(np.median(steps))
    regular = steps[steps <= settings.gap_min_intervals * median]
    measured = 1.0 / float(np.mean(regular))
    label = series[0].time_label
    if given is not None:
        if abs(measured - given) > settings.rate_mismatch_tolerance * given:
            raise IngestError(
                source,
                f"the time column gives {measured:.6g} Hz but sampling_rate_hz={given:g} was given",
                column=label,
            )
        return float(given)
    nominal = np.asarray(settings.nominal_rates_hz, dtype=float)
    if nominal.size:
        closest = float(nominal[np.argmin(np.abs(nominal - measured))])
        if abs(closest - measured) <= settings.nominal_rate_tolerance * closest:
            measured = closest
    measured = float(f"{measured:.9g}")
    if not settings.min_rate_hz <= measured <= settings.max_rate_hz:
        raise IngestError(
            source,
            f"timestamps give {measured:.6g} Hz, outside "
            f"{settings.min_rate_hz:g} to {settings.max_rate_hz:g} Hz",
            column=label,
        )
    return measured


def _abs_max(x: np.ndarray) -> float:
    """max |x| of a non-empty array, without an |x| temporary (exactly np.max(np.abs(x)))."""
    return float(max(x.max(), -x.min()))


def _acc_norm(acc: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # absurd values overflow to inf, rejected below
        return np.linalg.norm(acc, axis=0)


def convert_units(
    source: str,
    series: FootSeries,
    gyr_unit: str | None,
    acc_unit: str | None,
    settings: ReadSettings,
    log: WarningLog,
) -> None:
    """Bring acc to m/s² and gyr to deg/s; reject g- or rad/s-looking numbers whose unit nobody stated,
    and numbers no shoe IMU produces."""
    acc_stated = acc_unit if acc_unit is not None else series.units.get("acc")
    gyr_stated = gyr_unit if gyr_unit is not None else series.units.get("gyr")
    for group, param, header in (
        ("acc", acc_unit, series.units.get("acc")),
        ("gyr", gyr_unit, series.units.get("gyr")),
    ):
        if param is not None and header is not None and param != header:
            log.add(UNIT, f"the header states {group} in {header}; {param} was given and is used")
    acc_label, gyr_label = series.labels[ACC[0]], series.labels[GYR[0]]

    raw_norm = _acc_norm(np.stack([series.channels[c] for c in ACC]))
    median = float(np.median(raw_norm))
    low, high = settings.g_median_band
    if acc_stated is None and low <= median <= high:
        raise IngestError(
            source,
            f"acceleration looks like g, not m/s² (median |acc| = {median:.3g}); if it is, give the unit: "
            "--units acc=g (upload field units=acc=g, manifest column units) or a header like acc_x [g]",
            column=acc_label,
        )
    acc_scale = ACC_UNITS[acc_stated] if acc_stated is not None else 1.0
    if acc_scale != 1.0:
        for c in ACC:
            series.channels[c] = series.channels[c] * acc_scale
        log.add(UNIT, f"acceleration converted from {acc_stated} to m/s²", column=acc_label)
        norm = _acc_norm(np.stack([series.channels[c] for c in ACC]))
        median = float(np.median(norm))
    else:
        norm = raw_norm  # unchanged values: the norm and median above still hold
    low, high = settings.acc_median_band_mps2
    if not low <= median <= high:
        raise IngestError(
            source,
            f"median |acc| is {median:.4g} m/s², far from gravity (9.81): not m/s²? "
            "(for g give --units acc=g, upload field units=acc=g; other units need converting first)",
            column=acc_label,
        )
    for axes, limit, unit in (
        (ACC, settings.max_plausible_acc_mps2, "m/s²"),
        (GYR, settings.max_plausible_gyr_dps, "deg/s"),
    ):
        for c in axes:
            x = series.channels[c]
            if x.size == 0 or (x.max() <= limit and x.min() >= -limit):
                continue  # two reductions instead of a mask over every sample
            beyond = np.flatnonzero(np.abs(x) > limit)
            if beyond.size:
                raise IngestError(
                    source,
                    f"{series.channels[c][beyond[0]]:.4g} {unit} is beyond any shoe IMU's range ({limit:g})",
                    row=int(series.rows[beyond[0]]),
                    column=series.labels[c],
                )

    gyr_scale = GYR_UNITS[gyr_stated] if gyr_stated is not None else 1.0
    gyr_max = max(_abs_max(series.channels[c]) for c in GYR)
    moving = int(np.count_nonzero(np.abs(norm / STANDARD_GRAVITY_MPS2 - 1.0) > settings.motion_acc_g))
    radps_like = moving >= settings.motion_min_samples and gyr_max < settings.radps_max_abs
    if radps_like and gyr_stated is None:
        raise IngestError(
            source,
            f"angular rate looks like rad/s: |gyr| never exceeds {gyr_max:.3g} while the accelerometer "
            f"shows the foot moving on {moving} samples; "
            "give the unit: --units gyr=rad/s (upload field units=gyr=rad/s, manifest column units) or a "
            "header like gyr_x [rad/s]; --units gyr=deg/s if it really is deg/s",
            column=gyr_label,
        )
    if radps_like and gyr_scale == 1.0:
        log.add(
            UNIT,
            f"angular rate looks like rad/s (|gyr| <= {gyr_max:.3g} while moving) "
            "but was stated as deg/s; kept",
            column=gyr_label,
        )
    if gyr_scale != 1.0:
        for c in GYR:
            series.channels[c] = series.channels[c] * gyr_scale
        log.add(UNIT, f"angular rate converted from {gyr_stated} to deg/s", column=gyr_label)
    plausibility(series, norm, acc_stated, gyr_stated, settings, log)


def _rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Standard deviation over each run of `window` consecutive samples (length n - window + 1)."""
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    mean = (c1[window:] - c1[:-window]) / window
    var = (c2[window:] - c2[:-window]) / window - mean * mean
    return np.sqrt(np.clip(var, 0.0, None))


def plausibility(
    series: FootSeries,
    acc_norm_mps2: np.ndarray,
    acc_unit: str | None,
    gyr_unit: str | None,
    settings: ReadSettings,
    log: WarningLog,
) -> None:
    """Warn, naming the column, when the converted data suggest the stated or assumed unit is wrong.

    Gravity: over still stretches (|acc| varying by less than `rest_acc_std_mps2` for
    `rest_window_s`), |acc| must be 1 g within `rest_gravity_rel_tol`. Gyro: no common shoe IMU
    measures beyond `max_common_gyr_dps`; more after conversion means deg/s data stated as rad/s.
    """
    n = acc_norm_mps2.size
    steps = np.diff(series.t)
    if n >= 3 and steps.size and np.median(steps) > 0:
        window = max(3, int(round(settings.rest_window_s / float(np.median(steps)))))
        if n > window:
            still = _rolling_std(acc_norm_mps2, window) < settings.rest_acc_std_mps2
            if np.count_nonzero(still) >= 1:
                starts = np.flatnonzero(still)
                rest = float(np.median(acc_norm_mps2[starts + window // 2]))
                if abs(rest / STANDARD_GRAVITY_MPS2 - 1.0) > settings.rest_gravity_rel_tol:
                    how = f"stated as {acc_unit}" if acc_unit else "assumed m/s² (none stated)"
                    log.add(
                        UNIT,
                        f"at rest |acc| is {rest:.4g} m/s², not 9.81: the acceleration unit ({how}) is "
                        "probably wrong or the sensor uncalibrated (--units acc=g|m/s^2)",
                        column=series.labels[ACC[0]],
                    )
    gyr_max = max(_abs_max(series.channels[c]) for c in GYR) if n else 0.0
    if gyr_max > settings.max_common_gyr_dps:
        how = f"stated as {gyr_unit}" if gyr_unit else "assumed deg/s (none stated)"
        log.add(
            UNIT,
            f"|gyr| reaches {gyr_max:.4g} deg/s, beyond the range of common shoe IMUs "
            f"({settings.max_common_gyr_dps:g}): the angular-rate unit ({how}) is probably wrong "
            "(--units gyr=deg/s|rad/s)",
            column=series.labels[GYR[0]],
        )


def saturation_flags(
    series: FootSeries, profile: DeviceProfile | None, settings: ReadSettings, log: WarningLog
) -> np.ndarray:
    """Per sample: some axis sits at the sensor's range.

    With a profile: |value| within `saturation_rel_tol` of the profile's range. Without: runs of >= 2
    consecutive samples at the same extreme |value|, when that value is a plausible full scale.
    """
    flags = np.zeros(series.t.shape, dtype=bool)
    groups = (
        (
            ACC,
            profile.acc_range_mps2 if profile else None,
            settings.min_full_scale_acc_g * STANDARD_GRAVITY_MPS2,
            "m/s²",
        ),
        (GYR, profile.gyr_range_dps if profile else None, settings.min_full_scale_gyr_dps, "deg/s"),
    )
    tol = settings.saturation_rel_tol
    for axes, full_scale, floor, unit in groups:
        for c in axes:
            x = series.channels[c]
            if x.size == 0:
                continue
            if full_scale is not None:
                bound = full_scale * (1.0 - tol)
                if -bound < x.min() and x.max() < bound:
                    continue  # nothing at the range: skip the per-sample mask
                at_range = np.abs(x) >= bound
                level = full_scale
            else:
                level = _abs_max(x)
                if level < floor:
                    continue
                mag = np.abs(x)
                pinned = mag >= level * (1.0 - tol)
                flat = pinned[1:] & pinned[:-1] & (np.abs(np.diff(x)) <= level * settings.flat_rel_tol)
                at_range = np.zeros_like(pinned)
                at_range[1:] |= flat
                at_range[:-1] |= flat
            n = int(np.count_nonzero(at_range))
            if n:
                flags |= at_range
                first = int(series.rows[np.argmax(at_range)])
                log.add(
                    SATURATION,
                    f"{n} samples at the sensor's range (|value| {level:.6g} {unit}), flagged {SATURATED}",
                    row=first,
                    column=series.labels[c],
                )
    return flags


def to_uniform_grid(
    source: str,
    series: FootSeries,
    saturated: np.ndarray,
    rate: float,
    settings: ReadSettings,
    log: WarningLog,
) -> dict[str, np.ndarray]:
    """Segments split at long gaps, each on a uniform grid at `rate`; short gaps interpolated.

    Gaps by the rule of `ingest.gaps.find_gaps` (the live stream's too).

    Returns the output columns: t, every channel, segment, interpolated, saturated.
    """
    t = series.t
    steps = np.diff(t)
    gap_at, gap_len, long_gap = find_gaps(steps, rate, settings)  # gap between i and i+1
    time_label = series.time_label
    for i, length, is_long in zip(gap_at, gap_len, long_gap, strict=True):
        missing = max(steps[i] * rate - 1.0, 1.0)
        if is_long:
            kind, what = GAP_SPLIT, "new segment starts here"
        else:
            kind, what = GAP_INTERPOLATED, f"linearly interpolated, flagged {INTERPOLATED}"
        log.add(
            kind,
            f"gap of {length:.4g} s (~{missing:.0f} samples missing) after t = {t[i]:.6g} s: {what}",
            row=int(series.rows[i + 1]),
            column=time_label,
        )
    bounds = np.concatenate(([0], gap_at[long_gap] + 1, [t.size]))
    pieces: list[dict[str, np.ndarray]] = []
    worst_jitter = 0.0
    resampled = False
    for segment, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        piece, jitter, was_resampled = _grid_segment(
            t[lo:hi], {c: v[lo:hi] for c, v in series.channels.items()}, saturated[lo:hi], rate, settings
        )
        piece[SEGMENT] = np.full(piece[T].size, segment, dtype=np.int32)
        pieces.append(piece)
        worst_jitter = max(worst_jitter, jitter)
        resampled |= was_resampled
    if resampled:
        log.add(
            RESAMPLED,
            f"irregular timestamps (up to {worst_jitter:.3g} sample intervals off a uniform grid): "
            f"every channel resampled to a uniform {rate:g} Hz grid by linear interpolation",
            column=time_label,
        )
    elif worst_jitter > 1e-6:
        log.add(
            RESAMPLED,
            f"timestamps up to {worst_jitter:.3g} sample intervals off a uniform {rate:g} Hz grid: "
            "snapped to it (values unchanged)",
            column=time_label,
        )
    return {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}


def _grid_segment(
    t: np.ndarray, channels: dict[str, np.ndarray], saturated: np.ndarray, rate: float, settings: ReadSettings
) -> tuple[dict[str, np.ndarray], float, bool]:
    t0 = t[0]
    k = (t - t0) * rate
    k_round = np.rint(k)
    jitter = float(np.max(np.abs(k - k_round))) if k.size else 0.0
    on_grid = jitter <= settings.max_timestamp_jitter and bool(np.all(np.diff(k_round) >= 1))
    if on_grid:
        n = int(k_round[-1]) + 1
        source_k = k_round
    else:
        n = int(np.floor(k[-1] + 1e-9)) + 1
        source_k = k
    grid_k = np.arange(n, dtype=float)
    out: dict[str, np.ndarray] = {T: t0 + grid_k / rate}
    if on_grid and n == t.size:
        # Every grid point has its own sample (the usual case): the values are taken as they are,
        # which is what interpolating at the knots gives.
        out.update({name: np.asarray(values, dtype=float) for name, values in channels.items()})
        out[INTERPOLATED] = np.zeros(n, dtype=bool)
        out[SATURATED] = np.array(saturated, dtype=bool)
        return out, jitter, False
    for name, values in channels.items():
        out[name] = np.interp(grid_k, source_k, values)
    left = np.clip(np.searchsorted(source_k, grid_k, side="right") - 1, 0, source_k.size - 1)
    right = np.minimum(left + 1, source_k.size - 1)
    exact = source_k[left] == grid_k
    if on_grid:
        interpolated = ~exact
    else:
        step = source_k[right] - source_k[left]
        interpolated = (step > settings.gap_min_intervals) & ~exact
    out[INTERPOLATED] = interpolated
    out[SATURATED] = np.where(exact, saturated[left], saturated[left] | saturated[right])
    return out, jitter, not on_grid


OUTPUT_CHANNELS = (*ACC, *GYR, *MAG)
