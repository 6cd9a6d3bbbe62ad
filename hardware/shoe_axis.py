"""The shoe's long axis: the heading of the foot frame's x axis about the foot-flat vertical.

The foot sensor frame's x is the shoe's long axis (DESIGN.md, docs/frames.md), not the walking
direction: a foot that toes out by δ points its shoe δ outward of where it walks, and every
degree of heading error puts about tan(θ) degrees of pitch θ into the roll (0.5 deg of roll per
0.3 deg of heading at the 60 deg of a walking toe-off). Gravity at foot-flat gives the frame's z;
this module chooses x in the plane orthogonal to it.

Sources (`ShoeAxisSettings.source`):

- ``"square"``: the device's own axis (±x, ±y or ±z of the device) whose horizontal projection is
  nearest the walking direction, provided it is within `max_square_offset_deg` of it. This is the
  assumption that the pod's case sits square on the shoe: one of its edges along the sole (a clip
  on the laces or the heel counter, a pod taped to the lateral upper), tilted by the slope of the
  upper but not turned about it. It holds on every real recording in shared/ (the gaitmap pods
  on the lateral upper: their frame is rolled 14-16 deg and pitched ~5 deg, and the shoe axis is
  their x); it fails for a pod turned on its mount, which no data from walking alone can reveal.
  Its uncertainty is the assumed yaw tolerance of such a mount (`square_tolerance_deg`).
- ``"walking"``: the median walking direction at foot-flat (the foot frame's x until issue 15).
  It is the shoe axis only for a foot that neither toes out nor in: on imu_sample.csv it is 12.0 deg
  (left) and 14.7 deg (right) outward of the shoe, on the MS files 7.4 / 8.1 deg. Its
  uncertainty is `walking_uncertainty_deg`.
- ``"swing_axis"``: orthogonal to the dominant swing rotation axis (the leg's flexion axis, not
  the shoe's): 17-19 deg (left) and 19-21 deg (right) outward of the shoe on imu_sample.csv.
- ``"auto"`` (default): "square" when a device axis qualifies, else "walking".

A known mount (`DeviceProfile.mounting_wxyz`) or an explicit ``--no-align`` bypass this module.

What was tried from gait alone and did not work (spikes in the issue-15 branch notes; numbers on
imu_sample.csv, whose given frame is the shoe frame, heading of the candidate's medio-lateral axis
relative to the shoe's, median over 27 left / 29 right valid strides, left / right):

- heel rocker, principal axis of the horizontal angular rate from IC to foot-flat: -34 / +24 deg
  (mean rate -28 / +22 deg); the rate at its peak after IC: -44 / +30 deg. Loading combines
  plantarflexion about the shoe's y with eversion about its x, in a ratio that differs per foot
  (pronation excursion 9 vs 4.5 deg), so its axis leans medially by an unknown angle.
- push-off, heel-off to toe-off: -7 / +17 deg (mean rate -6 / +14 deg): the heel rises about the
  oblique metatarsal break, whose obliquity is the foot's own.
- swing: -17 / +21 deg (see "swing_axis").
- the rate just before toe-off: -20 / +30 deg; terminal swing (last 100 ms): 37 / 35 deg.
- mid-stance (20-40 % of the stride): the small residual rotations are about an axis 20 deg
  inside the long axis (subtalar motion), not about it.

None of these is a pure rotation about the shoe's own y or x: each phase's axis is set by
anatomy (knee, ankle, subtalar and metatarsal axes) that varies between people by more than the
3 deg this needs. From walking data alone the shoe axis is therefore not observable to better
than the person's toe-out; the square-mount assumption, a known mount or a calibration are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SHOE_AXIS_SOURCES", "ShoeAxisEstimator", "ShoeAxisSettings"]

SHOE_AXIS_SOURCES = ("auto", "square", "walking", "swing_axis")
_DEVICE_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")


@dataclass(frozen=True)
class ShoeAxisSettings:
    """Settings of :class:`ShoeAxisEstimator` (units in the names).

    source: "auto", "square", "walking" or "swing_axis" (module docstring).
    max_square_offset_deg: a device axis counts as the shoe axis only within this heading of the
        walking direction. Toe-out on the real recordings is 7-15 deg and reaches ~20 deg in
        healthy walkers; 30 deg leaves margin and still excludes the neighbouring device axis
        (90 deg away) unless the pod is turned ~45 deg, where no square axis exists.
    min_horizontal: a device axis whose horizontal projection is shorter than this (unit vector)
        is too steep to define a heading (0.5 = tilted at most 60 deg from horizontal).
    square_tolerance_deg: assumed yaw tolerance of a square mount, deg (an assumption stated
        here, not a measurement: a case clipped or taped by hand along an edge of the shoe;
        3 deg is the accuracy the issue asks of the estimate).
    walking_uncertainty_deg: uncertainty of the walking direction as the shoe axis, deg: the
        person's toe-out, which walking data cannot tell (7-15 deg on the real recordings).
    """

    source: str = "auto"
    max_square_offset_deg: float = 30.0
    min_horizontal: float = 0.5
    square_tolerance_deg: float = 3.0
    walking_uncertainty_deg: float = 15.0

    def __post_init__(self) -> None:
        if self.source not in SHOE_AXIS_SOURCES:
            raise ValueError(
                f"shoe axis source must be one of {', '.join(SHOE_AXIS_SOURCES)}, got {self.source!r}"
            )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class ShoeAxisEstimator:
    """Choose the foot frame's +x (the shoe's long axis) in the device frame, with an uncertainty."""

    def __init__(self, settings: ShoeAxisSettings | None = None) -> None:
        self.settings = settings if settings is not None else ShoeAxisSettings()

    def estimate(
        self,
        up_dev: np.ndarray,
        walking_x_dev: np.ndarray,
        swing_x_dev: np.ndarray,
        stride_offsets_deg: np.ndarray,
    ) -> ShoeAxisEstimator:
        """Estimate from the foot-flat up direction, the walking and swing-axis headings (unit
        vectors orthogonal to `up_dev`, device frame) and each stride's walking direction relative
        to the swing-axis heading (deg; its spread gives the walking cue's own noise).

        Sets `x_dev_` (unit, orthogonal to `up_dev`: the shoe's +x in the device frame),
        `source_` ("square", "walking" or "swing_axis"), `device_axis_` (e.g. "+x" when
        square, else None), `uncertainty_deg_` (1-sigma heading uncertainty, deg) and
        `walking_offset_deg_` (heading of the walking direction relative to x_dev_, deg, positive
        to the left about +z).
        """
        s = self.settings
        up = _unit(np.asarray(up_dev, dtype=float))
        walking = _unit(np.asarray(walking_x_dev, dtype=float))
        offsets = np.asarray(stride_offsets_deg, dtype=float)
        offsets = offsets[np.isfinite(offsets)]
        # The walking cue's own noise: a robust SD of the strides' directions over sqrt(n).
        if offsets.size >= 2:
            mad = np.median(np.abs(offsets - np.median(offsets)))
            walking_noise = 1.4826 * mad / np.sqrt(offsets.size)
        else:
            walking_noise = np.inf

        self.device_axis_ = None
        source = s.source
        if source in ("auto", "square"):
            axis, name, offset = self._square_axis(up, walking)
            if axis is not None:
                self.x_dev_ = axis
                self.device_axis_ = name
                self.source_ = "square"
                self.uncertainty_deg_ = float(s.square_tolerance_deg)
                self.walking_offset_deg_ = offset
                return self
            if source == "square":
                raise ValueError(
                    f"no device axis within {s.max_square_offset_deg:g} deg of the walking direction: "
                    "the pod is not mounted square to the shoe (give its mounting instead)"
                )
            source = "walking"
        if source == "walking":
            self.x_dev_ = walking
            self.uncertainty_deg_ = float(np.hypot(s.walking_uncertainty_deg, walking_noise))
        else:
            self.x_dev_ = _unit(np.asarray(swing_x_dev, dtype=float))
            self.uncertainty_deg_ = float(np.hypot(s.walking_uncertainty_deg, 5.0))
        self.source_ = source
        self.walking_offset_deg_ = self._heading_deg(up, self.x_dev_, walking)
        return self

    def _square_axis(
        self, up: np.ndarray, walking: np.ndarray
    ) -> tuple[np.ndarray | None, str | None, float]:
        """The device axis nearest the walking direction in heading, if one qualifies."""
        s = self.settings
        axes = np.vstack((np.eye(3), -np.eye(3)))[[0, 3, 1, 4, 2, 5]]
        horizontal = axes - np.outer(axes @ up, up)
        length = np.linalg.norm(horizontal, axis=1)
        best, best_name, best_offset = None, None, np.inf
        for vec, n, name in zip(horizontal, length, _DEVICE_AXES, strict=True):
            if n < s.min_horizontal:
                continue
            offset = self._heading_deg(up, vec / n, walking)
            if abs(offset) < abs(best_offset):
                best, best_name, best_offset = vec / n, name, offset
        if best is None or abs(best_offset) > s.max_square_offset_deg:
            return None, None, float("nan")
        return best, best_name, float(best_offset)

    @staticmethod
    def _heading_deg(up: np.ndarray, reference: np.ndarray, direction: np.ndarray) -> float:
        """Heading of `direction` relative to `reference` about `up`, deg, positive counter-clockwise."""
        return float(np.degrees(np.arctan2(np.cross(reference, direction) @ up, reference @ direction)))
