"""Synthetic walking with a known mounting, and the real gaitmap feet, for the hardware tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from strideflow.hardware.schema import ACC, GYR, STANDARD_GRAVITY_MPS2

G = STANDARD_GRAVITY_MPS2

# every real gaitmap recording in shared/ with its foot and sampling rate (Hz)
RECORDINGS = [
    ("imu_sample.csv", "left", 204.8),
    ("imu_sample.csv", "right", 204.8),
    ("imu_sample_ms_left.csv", "left", 102.4),
    ("imu_sample_ms_right.csv", "right", 102.4),
    ("imu_sample_ic_stride.csv", "left", 102.4),
    ("imu_sample_ic_stride.csv", "right", 102.4),
    ("imu_sample_healthy_stair_up.csv", "left", 204.8),
    ("imu_sample_healthy_stair_down.csv", "right", 204.8),
]


def synthetic_walk(
    sampling_rate_hz: float = 200.0,
    strides: int = 12,
    standing_s: float = 2.0,
    standing_roll_deg: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Foot-frame acc (m/s²) and gyr (deg/s) of a foot that stands, then walks along world x.

    Each stride: a 0.6 s swing that moves the foot 1.2 m forward (minimum-jerk) and 8 cm up and
    down while it pitches about its y axis by up to 40 deg (toes down first, as after push-off,
    then toes up), then 0.5 s flat on level ground. While standing the foot may be rolled about
    x by `standing_roll_deg` (a tilted stance); the first swing rolls it level.
    The accelerometer reads R^T (a + g up); the gyro is the angular velocity in the foot frame
    (from consecutive orientations, so integrating it sample by sample gives them back).
    """
    n_stand = int(standing_s * sampling_rate_hz)
    n_flat, n_swing = int(0.5 * sampling_rate_hz), int(0.6 * sampling_rate_hz)
    swing_s = n_swing / sampling_rate_hz
    tau = np.arange(n_swing) / n_swing
    smooth = 10 * tau**3 - 15 * tau**4 + 6 * tau**5  # minimum-jerk 0 -> 1
    # world-frame acceleration of the foot during a swing
    ax = 1.2 * (60 * tau - 180 * tau**2 + 120 * tau**3) / swing_s**2
    az = 0.08 * 2 * np.pi**2 * np.cos(2 * np.pi * tau) / swing_s**2
    # angle about +y (right-hand rule: positive = toes down), zero with zero rate at both ends
    pitch = np.radians(40.0) * np.sin(2 * np.pi * tau) * (1 - np.cos(2 * np.pi * tau)) / 2

    pitch_parts, roll_parts, acc_parts = [], [], []
    roll0 = np.radians(standing_roll_deg)

    def still(n: int, roll: float) -> None:
        pitch_parts.append(np.zeros(n))
        roll_parts.append(np.full(n, roll))
        acc_parts.append(np.zeros((n, 2)))

    still(n_stand, roll0)
    for k in range(strides):
        pitch_parts.append(pitch)
        roll_parts.append(roll0 * (1 - smooth) if k == 0 else np.zeros(n_swing))
        acc_parts.append(np.stack((ax, az), axis=1))
        still(n_flat, 0.0)
    pitch_all, roll_all, a_xz = map(np.concatenate, (pitch_parts, roll_parts, acc_parts))
    foot_to_world = Rotation.from_rotvec(np.outer(pitch_all, [0.0, 1.0, 0.0])) * Rotation.from_rotvec(
        np.outer(roll_all, [1.0, 0.0, 0.0])
    )
    f_world = np.stack((a_xz[:, 0], np.zeros(len(a_xz)), a_xz[:, 1] + G), axis=1)
    acc = foot_to_world.inv().apply(f_world)
    step = foot_to_world[:-1].inv() * foot_to_world[1:]
    gyr = np.vstack((np.degrees(step.as_rotvec()) * sampling_rate_hz, np.zeros((1, 3))))
    if seed is not None:
        rng = np.random.default_rng(seed)
        acc = acc + rng.normal(0.0, 0.05, acc.shape)
        gyr = gyr + rng.normal(0.0, 0.5, gyr.shape)
    return acc, gyr


def read_foot(folder: Path, name: str, foot: str) -> tuple[np.ndarray, np.ndarray]:
    """acc (m/s²) and gyr (deg/s) of one foot of a gaitmap example file, read with pandas."""
    if "_ms_" in name:
        frame = pd.read_csv(folder / name, index_col=0)
    else:
        frame = pd.read_csv(folder / name, header=[0, 1], index_col=0)[f"{foot}_sensor"]
    return frame[list(ACC)].to_numpy(float), frame[list(GYR)].to_numpy(float)
