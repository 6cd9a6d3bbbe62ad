"""Table-level fusion: a `samples` table in, an `orientation` table out (DESIGN.md).

The stride pipeline does not go through here: it fuses each stance-to-stance segment inside the
segment analysis (`analytics.segment`, with ZUPT levelling). This is the API for callers that want
the `orientation` table of whole recordings, and what `strideflow bench fusion` measures end to end.

Every (athlete, session, foot[, segment]) group is filtered independently, starting as ahrs does
from its first sample. Columns go to numpy without copies where Arrow allows, all groups run in one
compiled call spread over the cores, and the quaternions come back as zero-copy columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import polars as pl

from strideflow.fusion import _kernels as k
from strideflow.fusion.madgwick import _EMPTY_DT, _EMPTY_MAG, readonly
from strideflow.fusion.settings import (
    FusionInputError,
    MadgwickSettings,
    MahonySettings,
    rejection_params,
)
from strideflow.hardware.schema import ACC, GYR, KEYS, MAG, ORIENTATION_SCHEMA, QUAT, SEGMENT, T

Method = Literal["madgwick", "mahony"]


def _resolve(settings, method: Method | None) -> tuple[MadgwickSettings | MahonySettings, Method]:
    if method is None:
        method = "mahony" if isinstance(settings, MahonySettings) else "madgwick"
    if method not in ("madgwick", "mahony"):
        raise FusionInputError(f"method must be 'madgwick' or 'mahony', got {method!r}")
    expected = MadgwickSettings if method == "madgwick" else MahonySettings
    if settings is None:
        settings = expected()
    if not isinstance(settings, expected):
        raise FusionInputError(f"method {method!r} needs {expected.__name__}, got {type(settings).__name__}")
    return settings, method


def _float_columns(df: pl.DataFrame, cols: tuple[str, ...]) -> np.ndarray:
    """(N, 3) float64 view/copy of three columns; raises naming column and row of a null/NaN/inf."""
    arr = np.asfortranarray(df.select(pl.col(c).cast(pl.Float64) for c in cols).to_numpy())
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise FusionInputError(f"column {cols[col]} has a missing or non-finite value at row {row}")
    return readonly(arr)


def _segment_starts(df: pl.DataFrame, group_cols: list[str]) -> np.ndarray:
    """Row index where each run of equal group keys begins."""
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in group_cols])
    return df.select(changed.arg_true()).to_series().to_numpy().astype(np.int64)


def estimate_orientation(
    samples: pl.DataFrame,
    sampling_rate_hz: float | Mapping[tuple[str, str, str], float],
    settings: MadgwickSettings | MahonySettings | None = None,
    method: Method | None = None,
    *,
    use_magnetometer: bool = False,
    dt_from_t: bool = False,
) -> pl.DataFrame:
    """Orientation table (keys, `t`, `q_w q_x q_y q_z`, plus `segment` when given) for a samples table.

    sampling_rate_hz: one rate for all, or a mapping (athlete_id, session_id, foot) -> Hz.
    method: "madgwick" or "mahony"; by default the one matching `settings` (Madgwick if None).
    use_magnetometer: use mag_x..z when present (missing values count as no field); off by
        default because a shoe's magnetometer sees steel and floors, and no metric needs heading.
    dt_from_t: step by the differences of `t` instead of the fixed rate (irregular sampling).
    Rows stay in input order when each group's rows are contiguous; otherwise the result is
    ordered by group (stable within a group).
    """
    settings, method = _resolve(settings, method)
    if isinstance(samples, pl.LazyFrame):
        samples = samples.collect()
    missing = [c for c in (*KEYS, T, *ACC, *GYR) if c not in samples.columns]
    if missing:
        raise FusionInputError(f"samples table lacks column(s) {', '.join(missing)}")
    group_cols = [*KEYS, SEGMENT] if SEGMENT in samples.columns else list(KEYS)
    out_cols = [*KEYS, T, *([SEGMENT] if SEGMENT in samples.columns else [])]
    n = samples.height
    if n == 0:
        return pl.DataFrame(schema={**ORIENTATION_SCHEMA, **samples.select(out_cols).schema}).select(
            *out_cols, *QUAT
        )

    starts = _segment_starts(samples, group_cols)
    if samples[starts].select(group_cols).is_duplicated().any():
        # a group's rows are interleaved with another's: make each group contiguous, keeping time order
        samples = samples.sort(group_cols, maintain_order=True)
        starts = _segment_starts(samples, group_cols)
    bounds = np.append(starts, n)

    if isinstance(sampling_rate_hz, Mapping):
        heads = samples[starts].select(KEYS).rows()
        try:
            rates = np.array([float(sampling_rate_hz[tuple(h)]) for h in heads])
        except KeyError as exc:
            raise FusionInputError(f"no sampling rate for group {exc.args[0]}") from None
    else:
        rates = np.full(starts.shape[0], float(sampling_rate_hz))
    if not (np.isfinite(rates).all() and (rates > 0).all()):
        raise FusionInputError(f"sampling rates must be positive and finite, got {sampling_rate_hz}")
    dt_fixed = 1.0 / rates

    dt_arr = _EMPTY_DT
    if dt_from_t:
        t = samples[T].cast(pl.Float64).to_numpy()
        dt_arr = np.empty(n)
        dt_arr[0] = np.nan
        np.subtract(t[1:], t[:-1], out=dt_arr[1:])
        inner = np.ones(n, dtype=bool)
        inner[starts] = False
        bad = inner & ~(np.isfinite(dt_arr) & (dt_arr > 0))
        if bad.any():
            row = int(np.argmax(bad))
            raise FusionInputError(f"column {T} does not increase at row {row} (dt = {dt_arr[row]})")
        dt_arr = readonly(dt_arr)

    acc = _float_columns(samples, ACC)
    gyr = _float_columns(samples, GYR)
    with_mag = use_magnetometer and all(c in samples.columns for c in MAG)
    if with_mag:
        mag = samples.select(pl.col(c).cast(pl.Float64).fill_nan(0.0).fill_null(0.0) for c in MAG).to_numpy()
        mag = readonly(np.asfortranarray(np.where(np.isfinite(mag), mag, 0.0)))
    else:
        mag = _EMPTY_MAG

    g, thr = rejection_params(settings.acc_rejection)
    if method == "madgwick":
        p0, p1, bias0 = settings.gain_for(with_mag), 0.0, np.zeros(3)
    else:
        p0, p1, bias0 = settings.k_p, settings.k_i, np.radians(settings.bias0_dps)
    quats = np.empty((4, n))  # each quaternion component contiguous: zero-copy columns
    k.run_segments(
        bounds, method == "madgwick", acc, gyr, mag, dt_fixed, dt_arr, p0, p1, bias0, g, thr, quats.T
    )
    return samples.select(out_cols).with_columns(pl.Series(name, quats[i]) for i, name in enumerate(QUAT))
