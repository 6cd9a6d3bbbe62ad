"""Builders of crafted recordings and the samples-table validity check shared by the ingest tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from strideflow.hardware.schema import (
    ACC,
    FEET,
    FOOT,
    GYR,
    INTERPOLATED,
    SAMPLES_OPTIONAL_SCHEMA,
    SAMPLES_SCHEMA,
    SATURATED,
    SEGMENT,
    T,
)

HEADER = "time,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z"


def walking_signals(n: int = 400, rate_hz: float = 200.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time (s), acc (n, 3) m/s² and gyr (n, 3) deg/s of a foot that clearly moves (1 Hz stride)."""
    t = np.arange(n) / rate_hz
    w = 2 * np.pi * t
    acc = np.c_[3 * np.sin(w), 0.5 * np.cos(w), 9.81 + 8 * np.sin(1.5 * w)]
    gyr = np.c_[100 * np.sin(w), 300 * np.cos(w), 50 * np.sin(2 * w)]
    return t, acc, gyr


def csv_lines(t: np.ndarray | None, acc: np.ndarray, gyr: np.ndarray, digits: int = 9) -> list[str]:
    """Data lines `t,acc...,gyr...` (no t when None), `digits` significant digits."""
    cols = [acc, gyr] if t is None else [t[:, None], acc, gyr]
    table = np.hstack(cols)
    return [",".join(f"{v:.{digits}g}" for v in row) for row in table]


def write_text(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return path


def assert_valid_samples(samples: pl.DataFrame, rate_hz: float) -> None:
    """The contract of a `samples` table after ingest."""
    for name, dtype in SAMPLES_SCHEMA.items():
        assert samples.schema[name] == dtype, name
    for name in (SEGMENT, INTERPOLATED, SATURATED):
        assert samples.schema[name] == SAMPLES_OPTIONAL_SCHEMA[name], name
    assert samples.height > 0
    assert set(samples[FOOT].unique().to_list()) <= set(FEET)
    values = samples.select(T, *ACC, *GYR).to_numpy()
    assert np.isfinite(values).all()
    assert np.isfinite(rate_hz) and rate_hz > 0
    for (_, _), part in samples.group_by(FOOT, SEGMENT):
        steps = np.diff(part[T].to_numpy())
        assert np.all(steps > 0)
        np.testing.assert_allclose(steps, 1.0 / rate_hz, rtol=1e-6)
    for _, part in samples.group_by(FOOT):
        assert np.all(np.diff(part[T].to_numpy()) > 0)
        assert np.all(np.diff(part[SEGMENT].to_numpy()) >= 0)
