"""Mounting alignment: the fixed rotation from a device's own frame into the foot sensor frame.

(Over ~500 lines: one estimator whose steps (gravity at foot-flats, swing axis, progression sign)
and fallbacks read best in the order they run; the shared rotation maths is in `hardware.motion_math`.)

The foot sensor frame (DESIGN.md) has x toward the shoe tip, y to the left and z up when the foot
stands flat. The rotation is estimated from one foot's own recording:

1. still periods (low angular rate, specific force of about 1 g and steady) give the gravity
   direction, which is +z; foot-flats between strides are preferred over quiet standing, because
   people often stand on tilted or rolled feet while a walking foot-flat is set by the ground;
2. the dominant rotation axis of the swing samples, projected orthogonal to z, is the foot's
   medio-lateral axis, +-y (the foot swings mainly about its own y axis);
3. forward motion: between two still periods the foot is dead-reckoned (gyro strapdown from the
   still orientation, linear velocity drift removed so the foot is at rest at both ends); the
   strides' horizontal displacements point forward. Their majority fixes the sign of y (and so
   x = y cross z), and their median direction is the walking direction at foot-flat. Walking
   backwards would flip x; that is not supported.
4. the heading of x, the shoe's long axis (`hardware.shoe_axis`, `heading`): by default from
   a toe-tap calibration at the start of the recording if there is one, else the device's own
   axis nearest the walking direction when the pod sits square on the shoe, else the walking
   direction, with an uncertainty in degrees (`shoe_axis_.uncertainty_deg_`).

Steps 1-3 use vector norms and geometric constructions only, so with `heading="walking"` or
"swing_axis" the estimate is equivariant: rotating the input by Q rotates the estimate by Q (up
to floating point). The square-mount heading is deliberately not: it looks at the device's axes.

What the data can and cannot tell: z is the foot-flat "up" (on the gaitmap recordings, whose
given frame is already the foot frame, the foot-flat gravity is rolled by about 15 deg: the pods
sit on the sloped lateral shoe upper). The walking direction is not the shoe's long axis: a foot
placed toed-out puts the shoe axis a few to ~20 deg to the outside of it (12.0 and 14.7 deg on
imu_sample.csv, outward on both feet; the swing axis is 5 deg further out still). Walking alone
does not reveal the shoe axis (`hardware.shoe_axis` lists what was tried); the square-mount
assumption or a device profile's fixed `mounting_wxyz` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numba
import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.frames import rotation_from_wxyz, wxyz_from_rotation
from strideflow.hardware.motion_math import (
    RAD_PER_DEG,
    angles_deg,
    mask_to_periods,
    periods_to_mask,
    qmul,
    quat_to_matrix,
    rotate_rows,
    still_gyr_bias,
    stillness_weights,
)
from strideflow.hardware.profiles import DeviceProfile
from strideflow.hardware.schema import ACC, FOOT, GYR, MAG, STANDARD_GRAVITY_MPS2
from strideflow.hardware.shoe_axis import (
    SHOE_AXIS_SOURCES,
    ShoeAxisEstimator,
    ShoeAxisSettings,
    ToeTapCalibration,
    ToeTapSettings,
)

__all__ = [
    "AlignmentError",
    "MountingEstimator",
    "MountingQuality",
    "MountingSettings",
    "apply_mounting",
    "profile_rotation",
    "rotate_to_foot",
]


_MAX_PLAUSIBLE = 1e6  # m/s² or deg/s: far beyond any IMU range, keeps the arithmetic finite


class AlignmentError(StrideflowError):
    """No still period or no walking in the data, so the mounting rotation cannot be estimated."""


@dataclass(frozen=True)
class MountingSettings:
    """Settings of :class:`MountingEstimator` (units in the names).

    still_window_s: centred window over which stillness is judged; short, because running
        foot-flats last only ~50 ms.
    still_gyr_dps: a still window's mean |gyr| is below this. Foot-flats of impaired or
        rolling gait still turn at 20 to 70 deg/s (imu_sample_ic_stride.csv, the MS files), so
        it is generous; the two acc conditions do most of the work.
    still_acc_tol_mps2: a still window's mean |acc| is within this of standard gravity.
    still_acc_std_mps2: a still window's acc vector scatter (RMS about its mean) is below this.
    min_swing_s: motion between still periods shorter than this does not count as a stride
        (it is a wobble within stance); such still periods are merged.
    max_stride_s: motion between still periods longer than this is not a stride (turning,
        shuffling, fidgeting) and is not used.
    swing_gyr_dps: samples of a stride with |gyr| above this define the rotation axis.
    min_strides: fewer strides than this is "no walking".
    max_axis_planarity: above this ratio of the second to the first singular value of the swing
        angular rate (horizontal part) there is no dominant swing axis (real walking: 0.3 to 0.6).
    min_stride_length_m: strides whose dead-reckoned horizontal displacement is shorter do not
        vote on the forward direction.
    max_foot_flat_s: still periods up to this long next to a stride are foot-flats; longer
        still periods are standing.
    gravity_source: "auto" (foot-flats if at least `min_strides` of them, else standing),
        "foot_flat" or "standing".
    max_gravity_outlier_deg: still periods whose gravity direction is further than this from
        the first mean are dropped and the mean taken again.
    heading: where +x points about z, the `source` of `hardware.shoe_axis`: "auto" (default:
        a toe-tap calibration at the start if there is one, else the device axis nearest the
        walking direction when the pod sits square on the shoe, else the walking direction),
        "calibration", "square", "walking" (the median dead-reckoned stride
        direction at foot-flat: the shoe axis only without toe-out) or "swing_axis"
        (orthogonal to the dominant swing rotation axis, the leg's rather than the shoe's).
    shoe_axis: the other settings of the shoe-axis choice (tolerances, uncertainties).
    toe_taps: how a toe-tap calibration at the start of the recording is recognised.
    weight_gyr_dps, weight_acc_mps2: within the still periods each sample counts for gravity
        (and for the gyro bias) with the weight 1 / (1 + r²)², r² = (|gyr - bias| /
        weight_gyr_dps)² + ((|acc| - g) / weight_acc_mps2)², so the rolling edges of a short
        running foot-flat and impact ringing hardly count; None: every still sample counts the same.
    subtract_gyr_bias: remove the gyroscope bias (weighted mean rate of the still samples) before
        dead-reckoning the strides.
    """

    still_window_s: float = 0.04
    still_gyr_dps: float = 70.0
    still_acc_tol_mps2: float = 1.0
    still_acc_std_mps2: float = 1.5
    min_swing_s: float = 0.15
    max_stride_s: float = 3.0
    swing_gyr_dps: float = 100.0
    min_strides: int = 3
    max_axis_planarity: float = 0.9
    min_stride_length_m: float = 0.05
    max_foot_flat_s: float = 1.5
    gravity_source: str = "auto"
    max_gravity_outlier_deg: float = 20.0
    heading: str = "auto"
    shoe_axis: ShoeAxisSettings = field(default_factory=ShoeAxisSettings)
    toe_taps: ToeTapSettings = field(default_factory=ToeTapSettings)
    weight_gyr_dps: float | None = 20.0
    weight_acc_mps2: float = 1.0
    subtract_gyr_bias: bool = True

    def __post_init__(self) -> None:
        if self.heading not in SHOE_AXIS_SOURCES:
            raise ValueError(f"heading must be one of {', '.join(SHOE_AXIS_SOURCES)}, got {self.heading!r}")
        if self.gravity_source not in ("auto", "foot_flat", "standing"):
            raise ValueError(
                f"gravity_source must be 'auto', 'foot_flat' or 'standing', got {self.gravity_source!r}"
            )


@dataclass(frozen=True)
class MountingQuality:
    """Diagnostics of one mounting estimate.

    gravity_spread_deg: RMS angle (weighted by samples) between each used still period's gravity
        direction and the mean (how much the foot-flat orientation varies; 1-2 deg on level
        walking).
    axis_planarity: ratio of the second to the first singular value of the swing angular rate
        in the horizontal plane; 0 = one clean axis, 1 = no dominant axis.
    axis_elevation_deg: angle of the 3-D dominant swing axis out of the horizontal plane
        (the part removed by the projection).
    forward_agreement: fraction of voting strides whose displacement points to the front half
        (within 90 deg of the swing-axis x); turns lower it.
    forward_offset_deg: median walking direction relative to the swing-axis x, deg, positive
        to the left (about +z); the two heading cues' disagreement.
    n_still_periods: still periods used for gravity.
    n_strides: strides used for the axis and the forward vote.
    """

    gravity_spread_deg: float
    axis_planarity: float
    axis_elevation_deg: float
    forward_agreement: float
    forward_offset_deg: float
    n_still_periods: int
    n_strides: int


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between unit vectors, deg (atan2 form, accurate near 0 and 180)."""
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1)))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.cross` of two 3-vectors, the same floats (its products and differences, in its order)
    without its axis handling, which cost ~20 us a call."""
    a0, a1, a2 = a.tolist()
    b0, b1, b2 = b.tolist()
    return np.array((a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0))


@numba.njit(cache=True)
def _dead_reckon(
    acc_mps2: np.ndarray,
    gyr_dps: np.ndarray,
    gyr_bias_dps: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
    gravity_mps2: np.ndarray,
    dt_s: float,
) -> np.ndarray:
    """Displacement (m) of each stride [start, stop) in the device frame at its start.

    Orientation is integrated from identity (the still orientation before the stride) with the
    rate `gyr_dps - gyr_bias_dps` in rad/s; the specific force is rotated into that frame, the
    still reading `gravity_mps2[k]` subtracted, and velocity drift removed linearly so the foot
    is at rest at both ends.
    """
    n = starts.shape[0]
    out = np.zeros((n, 3))
    longest = 0
    for k in range(n):
        longest = max(longest, stops[k] - starts[k])
    vel = np.zeros((longest + 1, 3))
    bx, by, bz = gyr_bias_dps[0], gyr_bias_dps[1], gyr_bias_dps[2]
    for k in range(n):
        i0 = starts[k]
        m = stops[k] - i0
        w, x, y, z = 1.0, 0.0, 0.0, 0.0
        for j in range(m):
            ax, ay, az = acc_mps2[i0 + j, 0], acc_mps2[i0 + j, 1], acc_mps2[i0 + j, 2]
            # rotate the specific force by q (body -> stride-start frame)
            r00, r01, r02, r10, r11, r12, r20, r21, r22 = quat_to_matrix(w, x, y, z)
            fx = r00 * ax + r01 * ay + r02 * az - gravity_mps2[k, 0]
            fy = r10 * ax + r11 * ay + r12 * az - gravity_mps2[k, 1]
            fz = r20 * ax + r21 * ay + r22 * az - gravity_mps2[k, 2]
            vel[j + 1, 0] = vel[j, 0] + fx * dt_s
            vel[j + 1, 1] = vel[j, 1] + fy * dt_s
            vel[j + 1, 2] = vel[j, 2] + fz * dt_s
            # q <- q * exp(omega dt / 2), exact for constant rate over the sample
            ox = (gyr_dps[i0 + j, 0] - bx) * RAD_PER_DEG
            oy = (gyr_dps[i0 + j, 1] - by) * RAD_PER_DEG
            oz = (gyr_dps[i0 + j, 2] - bz) * RAD_PER_DEG
            rate = np.sqrt(ox * ox + oy * oy + oz * oz)
            half = 0.5 * rate * dt_s
            if rate > 0.0:
                s = np.sin(half) / rate
                dw, dx, dy, dz = np.cos(half), ox * s, oy * s, oz * s
                w, x, y, z = qmul(w, x, y, z, dw, dx, dy, dz)
        for c in range(3):
            total = 0.0
            for j in range(m + 1):
                total += vel[j, c] - vel[m, c] * j / m
            out[k, c] = total * dt_s
    return out


@numba.njit(cache=True)
def _bad_rows(acc: np.ndarray, gyr: np.ndarray, limit: float):  # pragma: no cover - compiled
    """(rows with NaN or inf, the first of them, rows beyond +-limit, the first of them); -1: none."""
    n_bad, first_bad, n_huge, first_huge = 0, -1, 0, -1
    for i in range(acc.shape[0]):
        finite, huge = True, False
        for c in range(3):
            for v in (acc[i, c], gyr[i, c]):
                if not np.isfinite(v):
                    finite = False
                elif abs(v) > limit:
                    huge = True
        if not finite:
            n_bad += 1
            if first_bad < 0:
                first_bad = i
        if huge:
            n_huge += 1
            if first_huge < 0:
                first_huge = i
    return n_bad, first_bad, n_huge, first_huge


@numba.njit(cache=True)
def _window_channels(acc: np.ndarray, gyr: np.ndarray, i: int, out: np.ndarray) -> None:  # pragma: no cover
    """The 8 values whose window means `_still_kernel` needs: |gyr|, |acc|, acc xyz, acc² xyz."""
    ax, ay, az = acc[i, 0], acc[i, 1], acc[i, 2]
    gx, gy, gz = gyr[i, 0], gyr[i, 1], gyr[i, 2]
    out[0] = np.sqrt((gx * gx + gy * gy) + gz * gz)
    out[1] = np.sqrt((ax * ax + ay * ay) + az * az)
    out[2], out[3], out[4] = ax, ay, az
    out[5], out[6], out[7] = ax * ax, ay * ay, az * az


@numba.njit(cache=True)
def _still_kernel(
    acc: np.ndarray, gyr: np.ndarray, width: int, gyr_dps: float, acc_tol: float, acc_std: float, g: float
):  # pragma: no cover - compiled
    """(still mask, |gyr| per sample) in one pass.

    Window means are centred running sums over `width` samples with the edge samples repeated
    (scipy.ndimage.uniform_filter1d, mode "nearest", summed and divided in the same order); a
    sample is still when the window's mean |gyr| < gyr_dps, its mean |acc| is within acc_tol of g
    and the scatter of its acc vectors (RMS about their mean) is below acc_std.
    """
    n = acc.shape[0]
    gyr_norm = np.empty(n)
    for i in range(n):
        gx, gy, gz = gyr[i, 0], gyr[i, 1], gyr[i, 2]
        gyr_norm[i] = np.sqrt((gx * gx + gy * gy) + gz * gz)
    still = np.zeros(n, dtype=np.bool_)
    if n < width:
        return still, gyr_norm
    before = width // 2
    after = width - before - 1
    total = np.zeros(8)
    enter = np.empty(8)
    leave = np.empty(8)
    for j in range(width):
        _window_channels(acc, gyr, min(max(j - before, 0), n - 1), enter)
        for c in range(8):
            total[c] += enter[c]
    for i in range(n):
        if i > 0:
            _window_channels(acc, gyr, min(i + after, n - 1), enter)
            _window_channels(acc, gyr, max(i - before - 1, 0), leave)
            for c in range(8):
                total[c] += enter[c] - leave[c]
        mean_gyr = total[0] / width
        mean_norm = total[1] / width
        scatter2 = 0.0
        for c in range(3):
            mean = total[2 + c] / width
            if c == 0:
                scatter2 = total[5] / width - mean * mean
            else:
                scatter2 += total[5 + c] / width - mean * mean
        scatter = np.sqrt(scatter2 if not scatter2 < 0.0 else 0.0)
        still[i] = (mean_gyr < gyr_dps) and (abs(mean_norm - g) < acc_tol) and (scatter < acc_std)
    return still, gyr_norm


@numba.njit(cache=True)
def _weighted_prefix_sums(weight: np.ndarray, acc: np.ndarray):  # pragma: no cover - compiled
    """Prefix sums with a leading zero row of weight * acc (N+1, 3) and of weight (N+1,),
    accumulated one sample after the other (as numpy.cumsum does)."""
    n = acc.shape[0]
    acc_sum = np.zeros((n + 1, 3))
    count = np.zeros(n + 1)
    for i in range(n):
        w = weight[i]
        if i == 0:
            count[1] = w
            for c in range(3):
                acc_sum[1, c] = w * acc[0, c]
        else:
            count[i + 1] = count[i] + w
            for c in range(3):
                acc_sum[i + 1, c] = acc_sum[i, c] + w * acc[i, c]
    return acc_sum, count


class MountingEstimator:
    """Estimate a device's mounting rotation into the foot sensor frame from its own walking data.

    Parameters
    ----------
    settings
        `MountingSettings` (stillness thresholds in deg/s and m/s², durations in s, swing rate in
        deg/s, the heading source).

    Attributes
    ----------
    rotation_, quaternion_
        Device -> foot frame, as a scipy `Rotation` and as (4,) w x y z.
    gravity_dev_ : np.ndarray
        (3,) gravity (m/s²), device frame; `gravity_source_` says "foot_flat" or "standing".
    axis_dev_ : np.ndarray
        (3,) unit dominant swing axis signed as +y (the foot's +y when heading="swing_axis").
    gyr_bias_dps_ : np.ndarray
        (3,) gyro bias (deg/s) from the still samples (zero when not subtracted).
    still_mask_, still_fraction_
        (N,) bool still samples and their share.
    strides_, stride_displacement_m_
        (n, 2) sample bounds of the strides used; their dead-reckoned displacement (m), device
        frame at each stride's start.
    stride_up_dev_, stride_walk_dev_
        (n, 3) unit foot-flat up before each stride and horizontal walking direction (NaN for
        strides too short to vote), device frame (`hardware.remount` reads them).
    shoe_axis_ : ShoeAxisEstimator
        The estimator that chose the heading (`source_`, `uncertainty_deg_`, `walking_offset_deg_`).
    quality_ : MountingQuality

    Notes
    -----
    Gravity at rest as the vertical and the dominant gyro axis of the swing as the medio-lateral
    axis is the idea of gaitmap's sensor alignment (`align_dataset_to_gravity`, `PcaAlignment`);
    the foot-flat preference, the dead-reckoned sign of the walking direction and
    the fallbacks are strideflow's own heuristics (module docstring).
    """

    def __init__(self, settings: MountingSettings | None = None) -> None:
        self.settings = settings if settings is not None else MountingSettings()

    def estimate(
        self,
        acc_mps2: np.ndarray,
        gyr_dps: np.ndarray,
        sampling_rate_hz: float,
        directions_only: bool = False,
    ) -> MountingEstimator:
        """Estimate from (N, 3) acc (m/s²) and gyr (deg/s) of one foot in the device frame.

        `directions_only`: stop once the strides and their directions are known (`strides_`,
        `stride_up_dev_`, `stride_walk_dev_`, `axis_dev_`, the same floats as a full estimate): no
        heading, rotation or quality (the live remount watch's input, `hardware.remount`).
        Raises AlignmentError when there is no still period or no walking.
        """
        s = self.settings
        acc, gyr = self._checked(acc_mps2, gyr_dps, sampling_rate_hz)
        fs = float(sampling_rate_hz)
        dt = 1.0 / fs

        still, gyr_norm = self._still_mask(acc, gyr, fs)
        self.still_mask_ = still
        self.still_fraction_ = np.count_nonzero(still) / len(still)  # (still.mean()'s float)
        if not still.any():
            raise AlignmentError(
                f"no still period in {len(acc)} samples: no {s.still_window_s:g} s window with mean "
                f"|gyr| < {s.still_gyr_dps:g} deg/s and |acc| within {s.still_acc_tol_mps2:g} m/s² of 1 g "
                "(is this walking or standing data in m/s² and deg/s?)"
            )
        starts, stops = mask_to_periods(still).T

        # Still periods separated by less than a swing are one period (wobbles within stance).
        keep = np.concatenate(([True], starts[1:] - stops[:-1] >= s.min_swing_s * fs))
        seg_start = starts[keep]
        seg_stop = np.maximum.reduceat(stops, np.flatnonzero(keep))
        gap_len = seg_start[1:] - seg_stop[:-1]
        gap_bounds = np.column_stack((seg_stop[:-1], seg_start[1:])).ravel()
        peak = np.maximum.reduceat(gyr_norm, gap_bounds)[::2] if len(gap_bounds) else np.zeros(0)
        is_stride = (gap_len <= s.max_stride_s * fs) & (peak >= s.swing_gyr_dps)
        n_strides = int(is_stride.sum())
        if n_strides < s.min_strides:
            raise AlignmentError(
                f"no walking to align with: {n_strides} stride(s) between still periods (need "
                f"{s.min_strides}; a stride is motion of {s.min_swing_s:g}..{s.max_stride_s:g} s "
                f"reaching |gyr| >= {s.swing_gyr_dps:g} deg/s between two still periods; the data's "
                f"peak |gyr| is {gyr_norm.max():.3g} deg/s)"
            )
        stride_start = seg_stop[:-1][is_stride]
        stride_stop = seg_start[1:][is_stride]
        self.strides_ = np.column_stack((stride_start, stride_stop))

        # Gravity: foot-flats (short still periods next to a stride) preferred over standing.
        seg_len = seg_stop - seg_start
        next_to_stride = np.concatenate((is_stride, [False])) | np.concatenate(([False], is_stride))
        foot_flat = next_to_stride & (seg_len <= s.max_foot_flat_s * fs)
        standing = ~foot_flat
        if s.gravity_source == "auto":
            use_foot_flat = foot_flat.sum() >= s.min_strides or not standing.any()
        else:
            use_foot_flat = s.gravity_source == "foot_flat"
        chosen = foot_flat if use_foot_flat else standing
        if not chosen.any():
            raise AlignmentError(
                f"no {'foot-flat' if use_foot_flat else 'standing'} still period to take gravity from "
                f"(gravity_source={s.gravity_source!r})"
            )
        self.gravity_source_ = "foot_flat" if use_foot_flat else "standing"
        weight = np.where(still, 1.0, 0.0)
        bias = np.zeros(3)
        if s.weight_gyr_dps is not None or s.subtract_gyr_bias:
            # (without `weight_gyr_dps` only for the bias: 10 deg/s, as the levelling uses)
            scale = s.weight_gyr_dps if s.weight_gyr_dps is not None else 10.0
            weigh = (scale, s.weight_acc_mps2, STANDARD_GRAVITY_MPS2)
            # the kernels pick the still samples themselves (the same sums in the same order, a
            # weight per sample): no gathered copies of them
            bias = still_gyr_bias(acc, gyr, still, *weigh)
            if s.weight_gyr_dps is not None:
                weight = np.where(still, stillness_weights(acc, gyr, bias, *weigh), 0.0)
        self.gyr_bias_dps_ = bias if s.subtract_gyr_bias else np.zeros(3)
        still_acc_sum, still_count = _weighted_prefix_sums(weight, acc)
        seg_sum = still_acc_sum[seg_stop] - still_acc_sum[seg_start]
        seg_count = still_count[seg_stop] - still_count[seg_start]
        seg_mean = seg_sum / seg_count[:, None]
        # A momentary turning point in a swing can pass as still: drop periods far off the mean.
        gravity = seg_sum[chosen].sum(axis=0) / seg_count[chosen].sum()
        outlier = angles_deg(seg_mean, np.broadcast_to(gravity, seg_mean.shape)) > s.max_gravity_outlier_deg
        if (chosen & ~outlier).any():
            chosen = chosen & ~outlier
            gravity = seg_sum[chosen].sum(axis=0) / seg_count[chosen].sum()
        z_dev = _unit(gravity)
        self.gravity_dev_ = gravity

        # Dominant swing rotation axis, projected orthogonal to z: +-y.
        swing = periods_to_mask(self.strides_, len(acc)) & (gyr_norm >= s.swing_gyr_dps)
        # (numpy's own gathers: the BLAS products below round by the arrays' memory alignment)
        omega = gyr[swing]
        u, v = self._plane_basis(z_dev)
        planar = np.stack((omega @ u, omega @ v), axis=1)
        _, sing, vt = np.linalg.svd(planar, full_matrices=False)
        if not sing[0] > 0 or sing[1] / sing[0] > s.max_axis_planarity:
            raise AlignmentError(
                f"no dominant rotation axis while walking: the swing angular rate is spread evenly over "
                f"the horizontal plane (second/first singular value "
                f"{sing[1] / sing[0] if sing[0] > 0 else float('nan'):.2f} > {s.max_axis_planarity:g})"
            )
        y_dev = vt[0, 0] * u + vt[0, 1] * v

        # Forward motion: the strides' horizontal displacements point along +x.
        grav_before = seg_mean[:-1][is_stride]
        disp = _dead_reckon(acc, gyr, self.gyr_bias_dps_, stride_start, stride_stop, grav_before, dt)
        self.stride_displacement_m_ = disp
        up = _unit(grav_before)
        horiz = disp - np.sum(disp * up, axis=1, keepdims=True) * up
        length = np.linalg.norm(horiz, axis=1)
        voting = length >= s.min_stride_length_m
        self.stride_up_dev_ = up
        self.stride_walk_dev_ = np.where(voting[:, None], horiz / np.maximum(length, 1e-12)[:, None], np.nan)
        if not voting.any():
            raise AlignmentError(
                f"no forward motion: none of {n_strides} strides moved the foot by "
                f">= {s.min_stride_length_m:g} m, so front and back of the shoe cannot be told apart"
            )
        direction = _unit(horiz[voting])
        x_dev = _cross(y_dev, z_dev)
        ahead = direction @ x_dev
        if np.sum(ahead > 0) < np.sum(ahead < 0):
            y_dev = -y_dev
            x_dev = -x_dev
        self.axis_dev_ = y_dev
        if directions_only:
            return self
        # Walking direction of each stride relative to the swing-axis x; the median ignores turns.
        offset = np.arctan2(direction @ y_dev, direction @ x_dev)
        walk_offset = float(np.median(offset))
        walk_x = np.cos(walk_offset) * x_dev + np.sin(walk_offset) * y_dev
        # The heading of x: the shoe's long axis (hardware.shoe_axis), not the walking direction.
        calibration = None
        if s.heading in ("auto", "calibration"):
            walks = np.flatnonzero(length >= s.toe_taps.max_displacement_m)
            first_walk = int(stride_start[walks[0]]) if walks.size else len(acc)
            calibration = self._toe_taps(acc, gyr, fs, seg_start, seg_stop, seg_mean, z_dev, first_walk)
        shoe = ShoeAxisEstimator(replace(s.shoe_axis, source=s.heading)).estimate(
            z_dev, walk_x, x_dev, np.degrees(offset), calibration
        )
        self.shoe_axis_ = shoe
        if shoe.source_ == "walking":
            x_dev, y_dev = walk_x, np.cos(walk_offset) * y_dev - np.sin(walk_offset) * x_dev
        elif shoe.source_ != "swing_axis":
            x_dev = shoe.x_dev_
            y_dev = np.cross(z_dev, x_dev)

        matrix = np.stack((x_dev, y_dev, z_dev))
        self.rotation_ = Rotation.from_matrix(matrix)
        self.quaternion_ = wxyz_from_rotation(self.rotation_)

        seg_dirs = _unit(seg_mean[chosen])
        # 3-D dominant axis (a diagnostic only): the top eigenvector of the 3x3 scatter matrix,
        # the same axis as the SVD's first right singular vector at a fraction of the cost.
        axis3 = np.linalg.eigh(omega.T @ omega)[1][:, -1]
        self.quality_ = MountingQuality(
            gravity_spread_deg=float(
                np.sqrt(np.average(_angle_deg(seg_dirs, z_dev) ** 2, weights=seg_count[chosen]))
            ),
            axis_planarity=float(sing[1] / sing[0]) if sing[0] > 0 else 1.0,
            axis_elevation_deg=float(np.degrees(np.arcsin(min(1.0, abs(axis3 @ z_dev))))),
            forward_agreement=float(np.mean(np.abs(offset) < np.pi / 2)),
            forward_offset_deg=float(np.degrees(walk_offset)),
            n_still_periods=int(chosen.sum()),
            n_strides=n_strides,
        )
        return self

    # --- helpers -------------------------------------------------------------------------
    def _toe_taps(
        self,
        acc: np.ndarray,
        gyr: np.ndarray,
        fs: float,
        seg_start: np.ndarray,
        seg_stop: np.ndarray,
        seg_mean: np.ndarray,
        up_dev: np.ndarray,
        first_walk: int,
    ) -> ToeTapCalibration:
        """The toe-tap calibration among the motions between still periods before `first_walk`."""
        s = self.settings
        a, b = seg_stop[:-1], seg_start[1:]
        early = a < min(first_walk, s.toe_taps.window_s * fs)
        a, b = a[early], b[early]
        disp = _dead_reckon(acc, gyr, self.gyr_bias_dps_, a, b, seg_mean[:-1][early], 1.0 / fs)
        up = _unit(up_dev)
        horizontal = np.linalg.norm(disp - np.outer(disp @ up, up), axis=1)
        return ToeTapCalibration(s.toe_taps).detect(
            gyr, fs, np.column_stack((a, b)), horizontal, up, first_walk
        )

    def _checked(self, acc_mps2, gyr_dps, sampling_rate_hz) -> tuple[np.ndarray, np.ndarray]:
        acc = np.asarray(acc_mps2, dtype=float)
        gyr = np.asarray(gyr_dps, dtype=float)
        if acc.ndim != 2 or acc.shape[1] != 3 or gyr.shape != acc.shape:
            raise AlignmentError(
                f"acc and gyr must both be (N, 3) arrays of the same length, got {acc.shape} and {gyr.shape}"
            )
        if len(acc) == 0:
            raise AlignmentError("no samples to align")
        try:
            rate_ok = bool(np.isfinite(float(sampling_rate_hz)) and float(sampling_rate_hz) > 0)
        except (TypeError, ValueError):
            rate_ok = False
        if not rate_ok:
            raise AlignmentError(f"sampling_rate_hz must be a positive number, got {sampling_rate_hz!r}")
        acc, gyr = np.ascontiguousarray(acc), np.ascontiguousarray(gyr)
        n_bad, first_bad, n_huge, first_huge = _bad_rows(acc, gyr, _MAX_PLAUSIBLE)
        if n_bad:
            raise AlignmentError(
                f"{n_bad} sample(s) with NaN or inf, first at row {first_bad}; "
                "validate and clean the samples before aligning"
            )
        if n_huge:
            raise AlignmentError(
                f"{n_huge} sample(s) beyond {_MAX_PLAUSIBLE:g} m/s² or deg/s, first at row "
                f"{first_huge}; no sensor measures that (wrong units?)"
            )
        return acc, gyr

    def _still_mask(self, acc: np.ndarray, gyr: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
        """(still mask, |gyr| in deg/s) of C-contiguous (N, 3) acc and gyr."""
        s = self.settings
        width = max(3, int(round(s.still_window_s * fs)))
        return _still_kernel(
            acc,
            gyr,
            width,
            float(s.still_gyr_dps),
            float(s.still_acc_tol_mps2),
            float(s.still_acc_std_mps2),
            float(STANDARD_GRAVITY_MPS2),
        )

    @staticmethod
    def _plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two unit vectors spanning the plane orthogonal to `normal`."""
        helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
        u = _unit(_cross(normal, helper))
        return u, _cross(normal, u)


def _as_rotation(value: Rotation | np.ndarray, foot: str) -> Rotation:
    rot = value if isinstance(value, Rotation) else rotation_from_wxyz(np.asarray(value, dtype=float))
    if not rot.single:
        raise AlignmentError(f"mounting for foot {foot!r} must be one rotation, got {len(rot)}")
    return rot


def apply_mounting(samples: pl.DataFrame, rotations: Mapping[str, Rotation | np.ndarray]) -> pl.DataFrame:
    """Rotate the acc, gyr and (if present) mag columns of a `samples` table into the foot frame.

    `rotations` maps each foot in the table to its device -> foot rotation (a scipy Rotation or a
    scalar-first quaternion). Other columns are unchanged.
    """
    feet = [f for f in samples[FOOT].unique().to_list() if f is not None]
    missing = sorted(set(feet) - set(rotations))
    if missing:
        raise AlignmentError(f"no mounting rotation for foot {', '.join(map(repr, missing))}")
    matrices = {foot: _as_rotation(rotations[foot], foot).as_matrix() for foot in feet}
    exprs = []
    for triple in (ACC, GYR, MAG):
        if not all(c in samples.columns for c in triple):
            continue
        for row, name in enumerate(triple):
            expr = None
            for foot, m in matrices.items():
                value = sum(float(m[row, k]) * pl.col(triple[k]) for k in range(3))
                expr = (pl.when if expr is None else expr.when)(pl.col(FOOT) == foot).then(value)
            if expr is not None:
                exprs.append(expr.otherwise(pl.col(name)).alias(name))
    return samples.with_columns(exprs) if exprs else samples


def rotate_to_foot(rotation: Rotation | np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """(N, 3) device-frame vectors (acc, gyr or mag) in the foot frame, C-contiguous float64.

    `rotation` is the device -> foot rotation (a scipy Rotation or a scalar-first quaternion).
    Each output value is the same float `apply_mounting` gives for that column: this is its
    array form, for callers that work on numpy arrays anyway.
    """
    matrix = _as_rotation(rotation, "given").as_matrix()
    values = np.ascontiguousarray(xyz, dtype=float)
    if values.ndim != 2 or values.shape[1] != 3:
        raise AlignmentError(f"vectors to rotate must be (N, 3), got {values.shape}")
    return rotate_rows(np.ascontiguousarray(matrix), values)


def profile_rotation(profile: DeviceProfile) -> Rotation | None:
    """The profile's fixed device -> foot rotation, or None when it must be estimated from data."""
    if profile.mounting_wxyz is None:
        return None
    return rotation_from_wxyz(np.asarray(profile.mounting_wxyz, dtype=float))
