"""Frames and signs of DESIGN.md, and the one place quaternion order is converted.

Foot sensor frame: x toward the shoe tip, y left, z up. World frame: z up, heading free.
Quaternions in strideflow and in `ahrs` are scalar first (w, x, y, z); scipy is scalar last.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def wxyz_to_xyzw(q_wxyz: np.ndarray) -> np.ndarray:
    """Scalar-first quaternion(s) (..., 4) to scipy's scalar-last order."""
    return np.roll(np.asarray(q_wxyz, dtype=float), -1, axis=-1)


def xyzw_to_wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    """Scalar-last quaternion(s) (..., 4), as scipy gives them, to strideflow's scalar-first order."""
    return np.roll(np.asarray(q_xyzw, dtype=float), 1, axis=-1)


def rotation_from_wxyz(q_wxyz: np.ndarray) -> Rotation:
    """scipy Rotation from scalar-first quaternion(s)."""
    return Rotation.from_quat(wxyz_to_xyzw(q_wxyz))


def wxyz_from_rotation(rotation: Rotation) -> np.ndarray:
    """Scalar-first quaternion(s) of a scipy Rotation."""
    return xyzw_to_wxyz(rotation.as_quat())


def roll_pitch_deg(q_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Roll about the foot's x axis and pitch (positive = toes up), in deg, independent of heading.

    From the third row of R (sensor to world): R20 = sin(pitch), roll = atan2(R21, R22), i.e.
    ZYX Euler angles with the pitch sign flipped so that dorsiflexion is positive.
    """
    q = np.asarray(q_wxyz, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    r20 = 2.0 * (x * z - w * y)
    r21 = 2.0 * (y * z + w * x)
    r22 = 1.0 - 2.0 * (x * x + y * y)
    pitch = np.degrees(np.arcsin(np.clip(r20, -1.0, 1.0)))
    roll = np.degrees(np.arctan2(r21, r22))
    return roll, pitch


def heading_deg(q_wxyz: np.ndarray) -> np.ndarray:
    """Heading of the foot x axis in the world (its horizontal direction from world x toward y), deg
    in (-180, 180]: the ZYX yaw atan2(R10, R00), defined while the foot is not pitched to +-90 deg."""
    q = np.asarray(q_wxyz, dtype=float)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.degrees(np.arctan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z)))


def pronation_sign(foot: str) -> float:
    """+1 for the left foot, -1 for the right: eversion is positive on both feet."""
    if foot == "left":
        return 1.0
    if foot == "right":
        return -1.0
    raise ValueError(f"foot must be 'left' or 'right', got {foot!r}")


def pronation_deg(roll_deg: np.ndarray, foot: str) -> np.ndarray:
    """Pronation angle p (deg, eversion positive) from roll about the foot's x axis."""
    return pronation_sign(foot) * np.asarray(roll_deg)
