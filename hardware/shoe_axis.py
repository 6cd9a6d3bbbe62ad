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
  Its uncertainty is the assumed yaw tolerance of such a mount (`square_tolerance_deg`), combined
  in quadrature with the square reading's own ambiguity (`square_disagreement_deg_`): a pod tilted
  about one of its axes has every edge along, across or normal to the shoe, but a pod tilted about
  two (pitched on the laces and rolled or turned on them) does not, and "square" no longer says
  which edge follows the shoe. Each device axis horizontal enough to define a heading reads the
  shoe axis (turned by the nearest quarter turn); the largest difference from the chosen one is
  that ambiguity. It is 0.0-1.2 deg on imu_sample.csv and the MS files (uncertainty 3.0-3.2 deg),
  6-14 deg on the stair files (pods pitched 45-53 deg) and 11.2 / 23.9 deg (left / right) on
  imu_sample_ic_stride.csv, where the pods are pitched ~40 deg at rest and the foot-flat up is
  tilted 48.5 / 60.7 deg from the device z: the pods' x, y and z read walking offsets of
  -2.6 / -8.9 / -13.9 deg (left) and -3.9 / +13.9 / +20.0 deg (right), and toe-off pronation
  moves with them (right foot -34 / -15 / -8 deg). That foot-flat up is itself off: this walker's
  stance rolls (no sample below 38 deg/s), and a heel-rise plateau (the pod tilted ~70 deg,
  60-70 deg/s, |acc| near 1 g) passes the 70 deg/s stillness test and joins the foot-flats; the
  real foot-flats read 44-49 deg and quiet standing 42 deg. A steep device x (48 / 58 deg below
  the horizontal) turns such an up error into a heading error: standing gravity moves the right
  foot's progression angle from -7.9 to +6.5 deg. The ambiguity measures both effects.
- ``"walking"``: the median walking direction at foot-flat (the foot frame's x until issue 15).
  It is the shoe axis only for a foot that neither toes out nor in: on imu_sample.csv it is 12.0 deg
  (left) and 14.7 deg (right) outward of the shoe, on the MS files 7.4 / 8.1 deg. Its
  uncertainty is `walking_uncertainty_deg`.
- ``"swing_axis"``: orthogonal to the dominant swing rotation axis (the leg's flexion axis, not
  the shoe's): 17-19 deg (left) and 19-21 deg (right) outward of the shoe on imu_sample.csv.
- ``"calibration"``: the field calibration of :class:`ToeTapCalibration`, found automatically in
  the first seconds of the recording: standing with the feet parallel, then a few toe taps with
  the heel kept down (the forefoot lifted and put down again, the shoe pivoting on its heel).
  The taps turn the shoe about its own medio-lateral axis, so x is the horizontal direction
  orthogonal to their rotation axis; its uncertainty is the spread of the single taps' axes over
  sqrt(n). It holds for a pod mounted any way at all, and is only as good as the taps' axis: on the
  simulator's calibration (`hardware.simulator.calibration`, `bench accuracy`'s `calibrated.*`)
  it is found on every foot, and its heading is off by the taps' axis error plus 0.47 deg
  (median; the taps' scatter and the pod's gyro cross-axis errors); a real ankle's oblique axis
  makes that error unknown (none measured: no real calibration is in shared/).
- ``"auto"`` (default): "calibration" when one is found, else "square" when a device axis
  qualifies, else "walking".

A known mount (`DeviceProfile.mounting_wxyz`) or an explicit ``--no-align`` bypass this module.

What was tried from gait alone and did not work (scratch scripts, not kept in the repository;
numbers on imu_sample.csv, whose given frame is the shoe frame: heading of the candidate's
medio-lateral axis, as a line, relative to the shoe's, in the foot-flat-levelled frame, median over
27 left / 29 right valid strides, left / right):

- heel rocker, principal axis of the horizontal angular rate from IC to foot-flat: -34 / +24 deg
  (mean rate -28 / +22 deg); the rate at its peak after IC: -44 / +30 deg. Loading combines
  plantarflexion about the shoe's y with eversion about its x, in a ratio that differs per foot
  (pronation excursion 9 vs 4.5 deg), so its axis leans medially by an unknown angle.
- push-off, heel-off to toe-off: -7 / +17 deg (mean rate -6 / +14 deg): the heel rises about the
  oblique metatarsal break, whose obliquity is the foot's own.
- swing: -17 / +21 deg, principal axis (mean rate -19 / +19 deg; see "swing_axis").
- the peak rate in the 50 ms before toe-off: -20 / +30 deg; terminal swing (last 100 ms before
  the next IC): -37 / +35 deg.
- mid-stance (20-40 % of the stride): the small residual rotations turn about an axis 20-45 deg
  from the long axis (subtalar motion), not about the shoe's y or x.

None of these is a pure rotation about the shoe's own y or x: each phase's axis is set by
anatomy (knee, ankle, subtalar and metatarsal axes) that varies between people by more than the
3 deg this needs. From walking data alone the shoe axis is therefore not observable to better
than the person's toe-out; the square-mount assumption, a known mount or a calibration are.

On the simulator's default pods (square on the shoe, turned by up to 2 deg; toe-out, the oblique
MTP push-off, gyro gain and cross-axis errors and impact rocking on) the "square" heading is off by
exactly minus the pod's yaw on the shoe: within 0.051 deg over 8 athletes x walk/run x both feet,
|error| median 1.13, p95 1.84 deg. The estimate adds no error of its own (not from toe-out, the MTP
axis, the gains or the number of strides); its whole error is the mount's turn, which is what
`square_tolerance_deg` states. The one cue that would have found it there, the rotation axis at
toe-off (0.00 deg off the shoe's y while the simulator's push-off had no roll or yaw rate), is 16.5 /
24.8 deg (left / right, medians) off the shoe's y on imu_sample.csv at the detected toe-offs and
0.1 / 10.4 deg on the MS files: the foot's own, so it is not used (the simulator now draws that
angle per athlete, `AthleteParams.toe_off_axis_deg`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SHOE_AXIS_SOURCES",
    "ShoeAxisEstimator",
    "ShoeAxisSettings",
    "ToeTapCalibration",
    "ToeTapSettings",
]

SHOE_AXIS_SOURCES = ("auto", "calibration", "square", "walking", "swing_axis")
_DEVICE_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")


@dataclass(frozen=True)
class ShoeAxisSettings:
    """Settings of :class:`ShoeAxisEstimator` (units in the names).

    source: "auto", "calibration", "square", "walking" or "swing_axis" (module docstring).
    max_square_offset_deg: a device axis counts as the shoe axis only within this heading of the
        walking direction. Toe-out on the real recordings is 7-15 deg and reaches ~20 deg in
        healthy walkers; 30 deg leaves margin and still excludes the neighbouring device axis
        (90 deg away) unless the pod is turned ~45 deg, where no square axis exists.
    min_horizontal: a device axis whose horizontal projection is shorter than this (unit vector)
        is too steep to define a heading (0.5 = tilted at most 60 deg from horizontal).
    square_tolerance_deg: assumed yaw tolerance of a square mount, deg (an assumption stated
        here, not a measurement: a case clipped or taped by hand along an edge of the shoe;
        3 deg is the accuracy the issue asks of the estimate). The uncertainty of a square
        heading adds the pod's own ambiguity in quadrature (`square_disagreement_deg_`).
    walking_uncertainty_deg: uncertainty of the walking direction as the shoe axis, deg: the
        person's toe-out, which walking data cannot tell (7-15 deg on the real recordings).
    calibration_tolerance_deg: assumed bias of the toe-tap axis against the shoe's
        medio-lateral axis, deg (a heel that is not quite symmetric; an assumption, untested on
        real calibrations: none are in shared/), added in quadrature to the taps' own spread.
    """

    source: str = "auto"
    max_square_offset_deg: float = 30.0
    min_horizontal: float = 0.5
    square_tolerance_deg: float = 3.0
    walking_uncertainty_deg: float = 15.0
    calibration_tolerance_deg: float = 1.0

    def __post_init__(self) -> None:
        if self.source not in SHOE_AXIS_SOURCES:
            raise ValueError(
                f"shoe axis source must be one of {', '.join(SHOE_AXIS_SOURCES)}, got {self.source!r}"
            )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class ShoeAxisEstimator:
    """Choose the foot frame's +x (the shoe's long axis) in the device frame, with an uncertainty.

    Parameters
    ----------
    settings
        `ShoeAxisSettings` (source, tolerances and uncertainties in deg).

    Attributes
    ----------
    x_dev_ : np.ndarray
        (3,) unit shoe +x in the device frame, orthogonal to the foot-flat up.
    source_ : str
        "calibration", "square", "walking" or "swing_axis".
    device_axis_ : str | None
        The device axis taken (e.g. "+x") when square, else None.
    uncertainty_deg_ : float
        1-sigma heading uncertainty (deg).
    square_disagreement_deg_ : float
        When square: the largest heading difference between the chosen device axis and the shoe axis
        as read from the pod's other axes that are horizontal enough (deg; 0 for a pod tilted about
        one of its axes only); NaN for the other sources.
    walking_offset_deg_ : float
        Heading of the walking direction relative to `x_dev_` (deg, positive to the left about +z).

    Notes
    -----
    strideflow's own heuristic: the order of sources and the square-mount assumption are described
    in the module docstring, with what was tried on the real recordings.
    """

    def __init__(self, settings: ShoeAxisSettings | None = None) -> None:
        self.settings = settings if settings is not None else ShoeAxisSettings()

    def estimate(
        self,
        up_dev: np.ndarray,
        walking_x_dev: np.ndarray,
        swing_x_dev: np.ndarray,
        stride_offsets_deg: np.ndarray,
        calibration: ToeTapCalibration | None = None,
    ) -> ShoeAxisEstimator:
        """Estimate from the foot-flat up direction, the walking and swing-axis headings (unit
        vectors orthogonal to `up_dev`, device frame) and each stride's walking direction relative
        to the swing-axis heading (deg; its spread gives the walking cue's own noise), and the
        recording's toe-tap calibration if one was searched for.
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
        self.square_disagreement_deg_ = float("nan")
        source = s.source
        if source in ("auto", "calibration"):
            if calibration is not None and calibration.found_:
                y = calibration.axis_dev_ - (calibration.axis_dev_ @ up) * up
                x = _unit(np.cross(_unit(y), up))
                self.x_dev_ = x if x @ walking >= 0 else -x
                self.source_ = "calibration"
                self.uncertainty_deg_ = float(
                    np.hypot(s.calibration_tolerance_deg, calibration.uncertainty_deg_)
                )
                self.walking_offset_deg_ = self._heading_deg(up, self.x_dev_, walking)
                return self
            if source == "calibration":
                raise ValueError(
                    "no toe-tap calibration found at the start of the recording"
                    + (f": {calibration.reason_}" if calibration is not None else "")
                )
            source = "auto"
        if source in ("auto", "square"):
            axis, name, offset = self._square_axis(up, walking)
            if axis is not None:
                self.x_dev_ = axis
                self.device_axis_ = name
                self.source_ = "square"
                self.square_disagreement_deg_ = self._square_disagreement_deg(up, axis)
                self.uncertainty_deg_ = float(np.hypot(s.square_tolerance_deg, self.square_disagreement_deg_))
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

    def _square_disagreement_deg(self, up: np.ndarray, x_dev: np.ndarray) -> float:
        """Largest heading difference (deg) between `x_dev` and the shoe axis as read from each
        other device axis horizontal enough to define a heading, turned by the nearest quarter turn.
        """
        headings = [
            self._heading_deg(up, x_dev, axis)
            for axis in np.eye(3)
            if np.linalg.norm(axis - (axis @ up) * up) >= self.settings.min_horizontal
        ]
        # a square pod's axes lie along, across or normal to the shoe: their residual from a
        # multiple of 90 deg is the ambiguity of the square reading
        residual = [h - 90.0 * np.round(h / 90.0) for h in headings]
        return float(np.max(np.abs(residual))) if residual else 0.0

    @staticmethod
    def _heading_deg(up: np.ndarray, reference: np.ndarray, direction: np.ndarray) -> float:
        """Heading of `direction` relative to `reference` about `up`, deg, positive counter-clockwise."""
        return float(np.degrees(np.arctan2(np.cross(reference, direction) @ up, reference @ direction)))


@dataclass(frozen=True)
class ToeTapSettings:
    """Settings of :class:`ToeTapCalibration` (units in the names).

    window_s: only motion that starts within the recording's first this many seconds counts.
    min_rate_dps: samples turning faster than this define a tap's rotation axis.
    max_planarity: above this ratio of the second to the first singular value of the angular
        rate (3-D) a motion is not a rotation about one axis.
    max_axis_elevation_deg: the taps' axis must lie within this of the horizontal plane.
    max_displacement_m: a tap leaves the heel where it was: the motion's dead-reckoned
        horizontal displacement is below this (a walking stride moves 0.3 m or more).
    min_taps: taps needed (each is a toes-up and a toes-down lobe of the rate about the axis).
    """

    window_s: float = 30.0
    min_rate_dps: float = 30.0
    max_planarity: float = 0.35
    max_axis_elevation_deg: float = 25.0
    max_displacement_m: float = 0.05
    min_taps: int = 3


class ToeTapCalibration:
    """Find heel-down toe taps at the start of a recording and their rotation axis (device frame).

    The taps are motions between still periods (the mounting's stillness detection) that start in
    the first `window_s`, before the first walking stride, rotate about one near-horizontal axis and
    leave the sensor where it was. Their axis is the shoe's medio-lateral axis (the shoe pivots on
    its heel); each lobe of the rate about it (toes up, toes down) gives one heading estimate.

    Parameters
    ----------
    settings
        `ToeTapSettings` (search window in s, rates in deg/s, displacement in m, minimum taps).

    Attributes
    ----------
    found_ : bool
        Whether a calibration was found; `reason_` says why not, in words.
    axis_dev_ : np.ndarray | None
        (3,) unit rotation axis of the taps, device frame, sign arbitrary.
    n_taps_ : int
    tap_headings_deg_ : np.ndarray
        Each lobe's axis heading relative to the mean (deg).
    uncertainty_deg_ : float
        SD of the headings over sqrt(n) (deg).
    bounds_ : np.ndarray
        (k, 2) sample bounds [start, stop) of the motions used.

    Notes
    -----
    strideflow's own heuristic.
    """

    def __init__(self, settings: ToeTapSettings | None = None) -> None:
        self.settings = settings if settings is not None else ToeTapSettings()

    def detect(
        self,
        gyr_dps: np.ndarray,
        sampling_rate_hz: float,
        motion_bounds: np.ndarray,
        horizontal_displacement_m: np.ndarray,
        up_dev: np.ndarray,
        first_walk_start: int,
    ) -> ToeTapCalibration:
        """Search the motions [start, stop) of `motion_bounds` ((n, 2) sample indices, with their
        horizontal dead-reckoned displacement in m) that end before sample `first_walk_start`;
        `gyr_dps` (N, 3) in deg/s, `up_dev` the unit foot-flat up, device frame.
        """
        s = self.settings
        gyr = np.asarray(gyr_dps, dtype=float)
        up = _unit(np.asarray(up_dev, dtype=float))
        self.found_, self.axis_dev_, self.n_taps_ = False, None, 0
        self.tap_headings_deg_, self.uncertainty_deg_ = np.zeros(0), float("nan")
        self.bounds_ = np.zeros((0, 2), dtype=np.int64)
        bounds = np.asarray(motion_bounds, dtype=np.int64).reshape(-1, 2)
        early = (bounds[:, 0] < s.window_s * sampling_rate_hz) & (bounds[:, 1] <= first_walk_start)
        still_foot = np.asarray(horizontal_displacement_m, dtype=float) <= s.max_displacement_m
        used, lobes = [], []
        for (a, b), ok in zip(bounds[early], still_foot[early], strict=True):
            omega = gyr[a:b]
            fast = omega[np.linalg.norm(omega, axis=1) > s.min_rate_dps]
            if not ok or len(fast) < 3:
                continue
            _, sing, vt = np.linalg.svd(fast, full_matrices=False)
            axis = vt[0]
            if sing[1] / sing[0] > s.max_planarity:
                continue
            if np.degrees(np.arcsin(min(1.0, abs(axis @ up)))) > s.max_axis_elevation_deg:
                continue
            about = omega @ axis
            # lobes: runs of one sign whose peak passes min_rate (toes up, toes down)
            sign = np.sign(about)
            edges = np.flatnonzero(np.diff(sign) != 0) + 1
            for lo, hi in zip(
                np.concatenate(([0], edges)), np.concatenate((edges, [len(about)])), strict=True
            ):
                if np.max(np.abs(about[lo:hi])) > s.min_rate_dps:
                    lobe = omega[lo:hi].sum(axis=0)
                    lobes.append(lobe if lobe @ axis >= 0 else -lobe)
            used.append((a, b))
        self.bounds_ = np.array(used, dtype=np.int64).reshape(-1, 2)
        self.n_taps_ = len(lobes) // 2
        if self.n_taps_ < s.min_taps:
            self.reason_ = (
                f"{self.n_taps_} heel-down toe tap(s) in the first {s.window_s:g} s before walking "
                f"(need {s.min_taps}: rotations about one horizontal axis that leave the heel in place)"
            )
            return self
        lobes_h = np.array(lobes) - np.outer(np.array(lobes) @ up, up)
        # an axis is a line: turn every lobe to the side of the strongest one before averaging
        # (a tap often stops at its top, splitting it into two motions with opposite rates)
        reference = lobes_h[np.argmax(np.linalg.norm(lobes_h, axis=1))]
        lobes_h = np.where((lobes_h @ reference)[:, None] < 0, -lobes_h, lobes_h)
        mean = _unit(lobes_h.sum(axis=0))
        headings = np.array([ShoeAxisEstimator._heading_deg(up, mean, _unit(v)) for v in lobes_h])
        self.found_ = True
        self.reason_ = ""
        self.axis_dev_ = mean
        self.tap_headings_deg_ = headings
        self.uncertainty_deg_ = float(np.std(headings, ddof=1) / np.sqrt(len(headings)))
        return self
