"""Synthetic foot motion and device-export files shared by the ingest and service tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def motion(rate_hz: float = 200.0, seconds: float = 6.0, seed: int = 0) -> dict[str, np.ndarray]:
    """A foot-like signal in SI units: acc in g-multiples of gravity along +z plus swings; gyr in rad/s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    swing = np.clip(np.sin(2 * np.pi * 0.9 * t), 0, None) ** 2
    acc_g = np.stack(
        [0.8 * swing * np.sin(2 * np.pi * 3 * t), 0.1 * swing, 1.0 + 0.9 * swing * np.cos(2 * np.pi * 3 * t)]
    )
    gyr_rad = np.stack([0.5 * swing, 6.0 * swing * np.sin(2 * np.pi * 2 * t), 0.3 * swing])
    acc_g += rng.normal(0, 0.002, acc_g.shape)
    gyr_rad += rng.normal(0, 0.002, gyr_rad.shape)
    return {"t": t, "acc_g": acc_g, "gyr_rad": gyr_rad}


def fmt(x: float) -> str:
    return f"{x:.9g}"


def physilog_file(tmp_path: Path, name: str = "LF.csv", rate: float = 128.0) -> Path:
    m = motion(rate)
    gyr_dps = np.degrees(m["gyr_rad"])
    lines = [
        "Gait Up - Physilog data export",
        "Created on: 2024-03-05 10:12:00",
        f"Total data points: {m['t'].size}",
        "",
        "Time [128 hz],Gyro [128 hz],,,Accel [128 hz],,,Baro [1 hz],,Event [128 hz],Quaternion [128 hz],,,,",
        "Time,Gyro X,Gyro Y,Gyro Z,Accel X,Accel Y,Accel Z,Pressure,Temperature,Event,"
        "Quat W,Quat X,Quat Y,Quat Z",
        "[s],[deg/s],[deg/s],[deg/s],[g],[g],[g],[mBar],[degree C],[],[],[],[],[]",
    ]
    for i, t in enumerate(m["t"]):
        baro = "963.2,24.5" if i % int(rate) == 0 else ","
        vals = [fmt(t), *map(fmt, gyr_dps[:, i]), *map(fmt, m["acc_g"][:, i])]
        lines.append(",".join(vals) + f",{baro},0,1,0,0,0,")
    path = tmp_path / name
    path.write_text("\r\n".join(lines) + "\r\n")
    return path
