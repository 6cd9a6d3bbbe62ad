"""Zero-velocity detection and ZUPT integration: known answers on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from strideflow.fusion.zero_velocity import (
    ZeroVelocityDetector,
    ZeroVelocitySettings,
    _merged_still,
    fill_runs,
    mask_to_periods,
    periods_to_mask,
)
from strideflow.fusion.zupt import (
    LevelledStrapdown,
    LevellingSettings,
    ZuptIntegrator,
    ZuptSettings,
    _anchor_velocity,
    _carried_strapdown,
    _cross_rows,
    _interval_normals,
    _local_systems,
    _rotated_by,
    _tilt_steps,
    anchor_tilt_sd_deg,
    fit_stance_tilt,
    lever_acceleration,
    tilt_fit_nodes,
    zero_velocity_aided_orientation,
)
from strideflow.hardware.frames import roll_pitch_deg, wxyz_from_rotation
from strideflow.hardware.motion_math import rotate_all, strapdown
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2 as G

FS = 200.0


def _level(n: int) -> np.ndarray:
    return np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))


def test_constant_acceleration_without_zero_velocity_integrates_exactly():
    n = 401
    t = np.arange(n) / FS
    a = np.array([1.5, -0.5, 0.25])
    acc = np.tile(a + [0.0, 0.0, G], (n, 1))
    zi = ZuptIntegrator().estimate(acc, _level(n), np.zeros(n, bool), FS)
    np.testing.assert_allclose(zi.velocity_mps_, np.outer(t, a), atol=1e-12)
    np.testing.assert_allclose(zi.position_m_, 0.5 * np.outer(t**2, a), atol=1e-12)


def test_accelerate_brake_between_still_periods_gives_exact_displacement():
    # Still, +a, -a (a triangle velocity), still; a(t) is linear between samples (one-sample
    # ramps). Integrating that a(t) exactly by hand gives x = a * half * (half - 1) * dt^2.
    still, half, a = 40, 100, 3.0
    ax = np.concatenate(
        [np.zeros(still + 1), np.full(half - 1, a), [0.0], np.full(half - 1, -a), np.zeros(still)]
    )
    n = ax.size
    acc = np.column_stack([ax, np.zeros(n), np.full(n, G)])
    zv = np.zeros(n, bool)
    zv[: still + 1] = True
    zv[still + 2 * half :] = True
    zi = ZuptIntegrator().estimate(acc, _level(n), zv, FS)
    assert zi.position_m_[-1, 0] == pytest.approx(a * half * (half - 1) / FS**2, rel=1e-12)
    assert np.abs(zi.velocity_mps_[zv]).max() == 0.0
    assert zi.velocity_mps_[:, 0].max() == pytest.approx(a * (half - 1) / FS, rel=1e-12)
    np.testing.assert_array_equal(zi.position_m_[:, 1:], 0.0)


def test_constant_bias_is_removed_exactly_between_zero_velocity_periods():
    rng = np.random.default_rng(1)
    n = 600
    zv = np.zeros(n, bool)
    zv[:50] = zv[250:300] = zv[520:] = True
    # A smooth true motion that starts and ends at rest in each gap: a = sin over the gap.
    ax = np.zeros(n)
    for lo, hi in [(50, 250), (300, 520)]:
        k = np.arange(hi - lo)
        ax[lo:hi] = 4.0 * np.sin(2 * np.pi * k / (hi - lo))
    truth = ZuptIntegrator().estimate(np.column_stack([ax, 0 * ax, np.full(n, G)]), _level(n), zv, FS)
    bias = rng.normal(0, 0.2, 3)
    biased = np.column_stack([ax, 0 * ax, np.full(n, G)]) + bias
    zi = ZuptIntegrator().estimate(biased, _level(n), zv, FS)
    np.testing.assert_allclose(zi.velocity_mps_, truth.velocity_mps_, atol=1e-12)
    est_g = ZuptIntegrator(ZuptSettings(estimate_gravity=True)).estimate(biased, _level(n), zv, FS)
    assert est_g.gravity_mps2_ == pytest.approx(G + bias[2], abs=1e-12)


def test_tilted_sensor_is_rotated_into_the_world_before_gravity_is_removed():
    from scipy.spatial.transform import Rotation

    n = 300
    rot = Rotation.from_euler("ZYX", [30, -20, 10], degrees=True)
    a_world = np.array([2.0, 1.0, 0.5])
    acc = np.tile(rot.inv().apply(a_world + [0, 0, G]), (n, 1))
    q = np.tile(wxyz_from_rotation(rot), (n, 1))
    zi = ZuptIntegrator().estimate(acc, q, np.zeros(n, bool), FS)
    t = np.arange(n) / FS
    np.testing.assert_allclose(zi.position_m_[-1], 0.5 * t[-1] ** 2 * a_world, rtol=1e-10)


def test_mask_and_periods_round_trip():
    mask = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    periods = mask_to_periods(mask)
    np.testing.assert_array_equal(periods, [[1, 3], [5, 6], [7, 10]])
    np.testing.assert_array_equal(periods_to_mask(periods, mask.size), mask)


def _steps(
    fs: float, n_steps: int, still_s: float, swing_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Still periods separated by swings of strong rotation and acceleration; the truth mask."""
    still = int(still_s * fs)
    swing = int(swing_s * fs)
    acc, gyr, truth = [], [], []
    for _ in range(n_steps):
        acc.append(np.tile([0.0, 0.0, G], (still, 1)))
        gyr.append(np.zeros((still, 3)))
        truth.append(np.ones(still, bool))
        k = np.arange(swing) / swing
        env = np.sin(np.pi * k)
        acc.append(np.column_stack([15 * env * np.sin(2 * np.pi * k), 0 * k, G + 10 * env]))
        gyr.append(np.column_stack([20 * env, -400 * env, 30 * env]))
        truth.append(np.zeros(swing, bool))
    acc.append(np.tile([0.0, 0.0, G], (still, 1)))
    gyr.append(np.zeros((still, 3)))
    truth.append(np.ones(still, bool))
    return np.concatenate(acc), np.concatenate(gyr), np.concatenate(truth)


@pytest.mark.parametrize("fs", [100.0, 204.8, 400.0, 1000.0])
def test_zero_velocity_periods_match_still_segments_at_any_rate(fs):
    acc, gyr, truth = _steps(fs, 6, still_s=0.3, swing_s=0.5)
    rng = np.random.default_rng(0)
    acc = acc + rng.normal(0, 0.05, acc.shape)
    gyr = gyr + rng.normal(0, 0.5, gyr.shape)
    zv = ZeroVelocityDetector().detect(acc, gyr, fs)
    assert len(zv.periods_) == 7
    # Every still segment is found, the swings are not; edges blur by at most the half window.
    edge = int(np.ceil(ZeroVelocitySettings().window_s * fs))
    core = truth & ~np.convolve(~truth, np.ones(2 * edge + 1), "same").astype(bool)
    assert zv.zero_velocity_[core].all()
    assert not zv.zero_velocity_[~truth].sum() > 2 * edge * 6


def test_fallback_marks_one_anchor_in_a_stance_without_a_still_period():
    fs = 200.0
    acc, gyr, truth = _steps(fs, 4, still_s=0.3, swing_s=0.5)
    # Replace the second stance by a rolling contact: never still enough for the threshold.
    periods = mask_to_periods(truth)
    lo, hi = periods[2]
    gyr[lo:hi, 1] = 50.0 + 30.0 * np.abs(np.linspace(-1, 1, hi - lo))  # slowest (50 deg/s) mid-stance
    # The neighbouring swings roll on into the stance instead of stopping at its edges.
    swing = periods[1, 0] - periods[0, 1]
    gyr[lo - swing : lo, 1] += 80.0
    gyr[hi : hi + swing, 1] += 80.0
    # The stance ends in a push-off (plantarflexion rate up to 230 deg/s) before the swing.
    gyr[hi - 20 : hi, 1] += 150.0 * np.sin(np.pi * np.arange(20) / 20)
    zv = ZeroVelocityDetector().detect(acc, gyr, fs)
    mid = (lo + hi - 1) // 2
    inside = mask_to_periods(zv.zero_velocity_[lo:hi])
    assert len(inside) == 1 and abs((inside[0, 0] + inside[0, 1]) // 2 + lo - mid) <= 2
    off = ZeroVelocitySettings(fallback_threshold=None, swing_gyr_dps=None)
    assert not ZeroVelocityDetector(off).detect(acc, gyr, fs).zero_velocity_[lo:hi].any()


def test_swing_guided_anchor_in_a_running_stance_that_no_threshold_catches():
    fs = 200.0
    acc, gyr, truth = _steps(fs, 4, still_s=0.25, swing_s=0.5)
    periods = mask_to_periods(truth)
    lo, hi = periods[2]
    # A running stance: the foot rolls at >= 90 deg/s (a fifth of the 400 deg/s mid-swings) and
    # its sensor accelerates at 3 m/s² throughout, above the relaxed fallback threshold (statistic
    # ~ 5 at its quietest); it ends in a push-off (up to 290 deg/s).
    roll = np.abs(np.linspace(-1, 1, hi - lo))
    gyr[lo:hi, 1] = 90.0 + 200.0 * roll
    acc[lo:hi, 0] = 3.0 + 4.0 * roll
    # The neighbouring swings run on into the stance (continuous at its edges) instead of
    # stopping still at them.
    swing = periods[1, 0] - periods[0, 1]
    fade = 1.0 - np.sin(np.pi * np.arange(swing) / swing)
    for a in (lo - swing, hi):
        gyr[a : a + swing, 1] += 320.0 * fade
        acc[a : a + swing, 0] += 7.0 * fade
    quiet = ZeroVelocityDetector(ZeroVelocitySettings(swing_gyr_dps=None)).detect(acc, gyr, fs)
    assert not quiet.zero_velocity_[lo:hi].any()
    zv = ZeroVelocityDetector().detect(acc, gyr, fs)
    # Exactly one anchor, at the quietest sample between the two mid-swings.
    assert len(zv.swing_anchors_) == 1
    assert abs(zv.swing_anchors_[0] - (lo + hi - 1) // 2) <= 1
    inside = mask_to_periods(zv.zero_velocity_[lo:hi])
    assert len(inside) == 1
    # Nothing else changes, and mid-swings farther apart than one stride give no anchor.
    outside = np.ones(len(truth), bool)
    outside[lo:hi] = False
    assert (zv.zero_velocity_[outside] == quiet.zero_velocity_[outside]).all()
    far = ZeroVelocitySettings(swing_max_gap_s=0.5)
    assert len(ZeroVelocityDetector(far).detect(acc, gyr, fs).swing_anchors_) == 0
    # A foot turning at more than 0.3 of the swing's rate there is not on the ground.
    turning = ZeroVelocitySettings(swing_max_rate_fraction=0.2)
    assert len(ZeroVelocityDetector(turning).detect(acc, gyr, fs).swing_anchors_) == 0


def test_zero_velocity_aided_orientation_recovers_pitch_of_a_rotation_between_stances():
    fs = 200.0
    still, move = 60, 80
    n = 2 * still + move
    gyr = np.zeros((n, 3))
    # Rotate +30 deg about y (plantarflexion: pitch falls by 30 deg) with a smooth rate profile.
    k = np.arange(move)
    rate = np.sin(np.pi * k / (move - 1)) ** 2
    gyr[still : still + move, 1] = 30.0 * rate / (rate[:-1] + rate[1:]).sum() * 2 * fs
    pitch_end = -30.0
    # A still sensor reads gravity at every instant: the pitch is the trapezoid integral of -gyr_y.
    th = np.radians(-np.concatenate([[0.0], np.cumsum(0.5 * (gyr[1:, 1] + gyr[:-1, 1]) / fs)]))
    acc = np.column_stack([G * np.sin(th), np.zeros(n), G * np.cos(th)])
    zv = np.zeros(n, bool)
    zv[:still] = zv[still + move :] = True
    # a sensor turning about itself (no lever: its specific force is gravity alone)
    q = zero_velocity_aided_orientation(acc, gyr, zv, fs, settings=LevellingSettings(lever_m=None))
    _, pitch = roll_pitch_deg(q)
    assert pitch[still + move - 1] == pytest.approx(pitch_end, abs=0.05)
    assert pitch[-1] == pytest.approx(pitch_end, abs=1e-9)
    assert pitch[0] == pytest.approx(0.0, abs=1e-9)


def _still_level(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tile([0.0, 0.0, G], (n, 1)), np.zeros((n, 3))


def test_tilt_drift_between_still_periods_is_spread_back_not_applied_as_a_step():
    """A still sensor whose gyro has a 2 deg/s bias on x, seen as still only at both ends: integrated
    forward, roll would reach 2 deg by the second still period and then jump back; spread linearly
    over the gap (bias estimation off), the drift of a constant rate about a fixed axis cancels."""
    from strideflow.fusion.zupt import LevelledStrapdown, LevellingSettings

    n = 600
    acc, gyr = _still_level(n)
    gyr[:, 0] = 2.0
    zv = np.zeros(n, bool)
    zv[:50] = zv[-50:] = True
    est = LevelledStrapdown(LevellingSettings(estimate_gyr_bias=False)).estimate(acc, gyr, zv, FS)
    roll, pitch = roll_pitch_deg(est.orientation_)
    anchors = est.anchors_
    assert len(anchors) == 2
    between = slice(anchors[0], anchors[1] + 1)
    assert np.abs(roll[between]).max() < 0.01  # half a sample of anchor rounding at 2 deg/s
    assert np.abs(pitch).max() < 1e-6
    # the accumulated tilt was the bias times the time between the anchors
    span_s = (anchors[1] - anchors[0]) / FS
    assert est.tilt_correction_deg_[1] == pytest.approx(2.0 * span_s, abs=0.02)


def test_gyro_bias_is_estimated_from_the_still_samples_and_removed():
    from strideflow.fusion.zupt import LevelledStrapdown

    n = 600
    acc, gyr = _still_level(n)
    bias = np.array([1.5, -0.8, 2.0])
    rng = np.random.default_rng(4)
    gyr = gyr + bias + rng.normal(0.0, 0.15, (n, 3))
    zv = np.zeros(n, bool)
    zv[:100] = zv[-100:] = True
    est = LevelledStrapdown().estimate(acc, gyr, zv, FS)
    np.testing.assert_allclose(est.gyr_bias_dps_, bias, atol=0.05)
    # heading, which no still period corrects, no longer drifts at 2 deg/s
    w, x, y, z = est.orientation_.T
    yaw = np.degrees(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
    assert abs(yaw[-1] - yaw[0]) < 0.2


def test_gravity_comes_from_the_still_core_not_from_a_rolling_edge():
    """The first 8 of 20 still-flagged samples still roll (40 deg/s) with 2 m/s² sideways acceleration;
    a plain mean would tilt roll by ~4.7 deg, the stillness weights keep it within 0.1 deg."""
    from strideflow.fusion.zupt import LevelledStrapdown

    n = 200
    acc, gyr = _still_level(n)
    lo, edge, hi = 90, 98, 110
    gyr[lo:edge, 0] = 40.0
    acc[lo:edge, 1] = 2.0
    # before the period the sensor swings (no still samples for the widened window to use)
    gyr[:lo, 1] = 300.0
    gyr[hi:, 1] = 300.0
    zv = np.zeros(n, bool)
    zv[lo:hi] = True
    est = LevelledStrapdown().estimate(acc, gyr, zv, FS)
    roll, _ = roll_pitch_deg(est.orientation_)
    assert edge <= est.anchors_[0] < hi
    assert abs(roll[est.anchors_[0]]) < 0.1
    plain = np.degrees(np.arctan2(acc[lo:hi, 1].mean(), acc[lo:hi, 2].mean()))
    assert plain > 4.0


def _ringing_foot_flat(lead: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A level running foot-flat of 4 truly still samples, shaped on a simulated 18 g runner's: the
    foot lands (rotation slowing to a stop), the impact rings along an axis leaning 20 deg back from
    vertical and still rings ~1 m/s² in the foot-flat, then the heel rises (rotation and forward
    acceleration building up). acc, gyr, zv, first still sample."""
    n = 2 * lead + 4
    acc, gyr = _still_level(n)
    gyr[:lead, 1] = 300.0
    gyr[lead - 6 : lead, 1] = [440.0, 300.0, 190.0, 100.0, 36.0, 0.4]
    gyr[lead + 4 :, 1] = -300.0
    gyr[lead + 4 : lead + 9, 1] = [-1.0, -8.0, -24.0, -48.0, -79.0]
    acc[lead + 4 : lead + 9, 0] += [0.75, 2.2, 3.75, 5.3, 6.9]
    ring = np.zeros(n)
    ring[lead - 5 : lead + 4] = [-30.0, 18.0, -14.0, 6.0, -3.5, 0.2, 1.0, 0.33, -0.12]
    lean = np.radians(20.0)
    acc[:, 0] -= np.sin(lean) * ring
    acc[:, 2] += np.cos(lean) * ring
    zv = np.zeros(n, bool)
    zv[lead : lead + 4] = True
    return acc, gyr, zv, lead


def test_impact_ringing_peak_inside_a_short_foot_flat_does_not_tilt_gravity():
    """The ringing peak inside the foot-flat (1 m/s², 1.9 deg off level on its own) differs from both
    neighbours, yet the step across it (next minus previous) nearly vanishes: judged by that step
    it looked the steadiest sample and tilted the level by 1.57 deg. Judged by the smaller step to
    either neighbour it counts little, and the level is right within 0.3 deg."""
    from strideflow.fusion.zupt import LevelledStrapdown

    acc, gyr, zv, lo = _ringing_foot_flat()
    core = acc[lo : lo + 4]
    peak = lo + int(np.argmax(np.abs(np.linalg.norm(core, axis=1) - G)))
    assert np.degrees(np.arctan2(-acc[peak, 0], acc[peak, 2])) > 1.5
    est = LevelledStrapdown().estimate(acc, gyr, zv, FS)
    roll, pitch = roll_pitch_deg(est.orientation_)
    assert lo <= est.anchors_[0] < lo + 4
    assert np.abs(pitch[lo : lo + 4]).max() < 0.3
    assert np.abs(roll[lo : lo + 4]).max() < 1e-6


def test_anchor_rounds_the_same_wherever_the_still_period_lies():
    """Weighted centre of an even-length, uniformly weighted still period lies half-way between two
    samples; it is rounded relative to the period's start, so a live window that starts one sample
    later than the recording (or anywhere) puts the anchor on the same sample of the period and
    gets the same roll and pitch."""
    from strideflow.fusion.zupt import LevelledStrapdown, LevellingSettings

    n = 120
    acc, gyr = _still_level(n)
    gyr[:, 0] = 0.5  # a drift, so that where the anchor falls changes the roll
    gyr[:50, 1] = 200.0
    gyr[60:, 1] = -200.0
    zv = np.zeros(n, bool)
    zv[50:60] = True
    settings = LevellingSettings(gravity_margin_s=0.0, estimate_gyr_bias=False)
    ref = LevelledStrapdown(settings).estimate(acc, gyr, zv, FS)
    ref_rp = np.column_stack(roll_pitch_deg(ref.orientation_))
    for shift in range(1, 4):
        pad = np.zeros((shift, 3))
        pad[:, 1] = 200.0
        est = LevelledStrapdown(settings).estimate(
            np.vstack([np.tile([0.0, 0.0, G], (shift, 1)), acc]),
            np.vstack([pad, gyr]),
            np.concatenate([np.zeros(shift, bool), zv]),
            FS,
        )
        np.testing.assert_array_equal(est.anchors_, ref.anchors_ + shift)
        rp = np.column_stack(roll_pitch_deg(est.orientation_))[shift:]
        np.testing.assert_allclose(rp[50:], ref_rp[50:], atol=1e-9)


@pytest.mark.parametrize("v0_mps, tau_s", [(0.05, 0.05), (0.05, 0.03), (0.1, 0.05)])
def test_a_rolling_anchor_takes_gravity_from_a_wider_window(v0_mps, tau_s):
    """A level sensor on a foot that rolls through its stance: its velocity passes through zero
    (v0 tanh((t - t0) / tau), forward) and only that one sample is still. The window's mean
    specific force is gravity plus the velocity change over it divided by its length: the 45 ms
    window of a long still period tilts the anchor's gravity by 5.5-11 deg here, the 0.2 s window of
    a short period by half of that or less (`LevellingSettings.short_gravity_margin_s`)."""
    from strideflow.fusion.zupt import LevelledStrapdown, LevellingSettings

    n = int(2 * FS)
    t = np.arange(n) / FS
    acc = np.zeros((n, 3))
    acc[:, 2] = G
    acc[:, 0] = v0_mps / tau_s / np.cosh((t - 1.0) / tau_s) ** 2
    zv = np.zeros(n, bool)
    zv[int(FS)] = True

    def tilt_deg(short_margin_s):
        s = LevellingSettings(estimate_gyr_bias=False, short_gravity_margin_s=short_margin_s)
        g = LevelledStrapdown(s).estimate(acc, np.zeros((n, 3)), zv, FS).gravity_[0]
        return float(np.degrees(np.arccos(g[2])))

    narrow, wide = tilt_deg(None), tilt_deg(0.1)
    assert narrow > 5.0
    assert wide < 0.5 * narrow


def test_zupt_core_keeps_the_slow_roll_at_the_edges_of_a_lenient_still_period():
    """A foot that creeps (rolls onto the toe at 25 deg/s, sensor at 5 cm/s) for 0.3 s before and
    after its swing: a zero-velocity mask that also covers the creep cuts it out of the stride;
    the core (statistic below 0.25) keeps it, and the integrated displacement is exact."""
    fs = 200.0
    parts = []  # (seconds, acc_x m/s², gyr_y deg/s)
    parts += [(0.3, 0.0, 0.0), (0.1, 0.5, 25.0), (0.2, 0.0, 25.0)]
    n_swing = int(0.4 * fs)
    tau = np.arange(n_swing) / n_swing
    swing_acc = 20.0 * np.sin(2 * np.pi * tau)  # no net velocity change over the swing
    rows_acc, rows_gyr, lenient = [], [], []
    for sec, a, w in parts:
        k = int(round(sec * fs))
        rows_acc.append(np.full(k, a))
        rows_gyr.append(np.full(k, w))
        lenient.append(np.ones(k, bool))
    rows_acc.append(swing_acc)
    rows_gyr.append(np.full(n_swing, 300.0))
    lenient.append(np.zeros(n_swing, bool))
    for sec, a, w in [(0.2, 0.0, 25.0), (0.1, -0.5, 25.0), (0.3, 0.0, 0.0)]:
        k = int(round(sec * fs))
        rows_acc.append(np.full(k, a))
        rows_gyr.append(np.full(k, w))
        lenient.append(np.ones(k, bool))
    ax, gy, zv = np.concatenate(rows_acc), np.concatenate(rows_gyr), np.concatenate(lenient)
    n = len(ax)
    acc = np.column_stack([ax, np.zeros(n), np.full(n, G)])
    # The sensor's frame stays level (the roll rate only enters the stillness statistic).
    gyr = np.column_stack([np.zeros(n), gy, np.zeros(n)])
    q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    dt = 1.0 / fs
    v = np.concatenate([[0.0], np.cumsum(0.5 * (ax[1:] + ax[:-1]) * dt)])
    truth = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dt)])[-1]
    assert truth > 0.05
    # the core as it was by default before the anchor lever (a pure translation: no lever applies)
    cored = ZuptSettings(core_threshold=0.25, anchor_lever_m=None)
    lenient_run = ZuptIntegrator(cored).estimate(acc, q, zv, fs)
    core_run = ZuptIntegrator(cored).estimate(acc, q, zv, fs, gyr_dps=gyr)
    # Without the gyroscope every zero-velocity sample is used: the creep (2.5 cm) is lost.
    assert lenient_run.position_m_[-1, 0] < truth - 0.02
    assert core_run.position_m_[-1, 0] == pytest.approx(truth, abs=1e-3)
    # The core is the truly still part (and never empty per period).
    core = core_run.zero_velocity_core_
    assert core[: int(0.29 * fs)].all() and not core[int(0.32 * fs) : int(0.6 * fs)].any()
    off = ZuptIntegrator(ZuptSettings(core_threshold=None)).estimate(acc, q, zv, fs, gyr_dps=gyr)
    assert (off.zero_velocity_core_ == zv).all()


def test_a_quiet_instant_in_the_early_swing_is_not_a_stance_anchor():
    """Real walking (LORD, trial 32): just after toe-off gyr_y crosses zero on its way to the
    mid-swing and the specific force is briefly near gravity, so the short-window statistic dips
    under the relaxed threshold 0.3 s after the last still period. Zero velocity imposed there cut
    four real strides to 0.1-0.3 m. Without a push-off after it, it is not a stance."""
    fs = 200.0
    acc, gyr, truth = _steps(fs, 4, still_s=0.3, swing_s=0.8)
    periods = mask_to_periods(truth)
    lo, hi = periods[1, 1], periods[2, 0]  # the second swing
    k = np.arange(hi - lo) / (hi - lo)
    # push-off (plantarflexion) first, then the dorsiflexion of the swing, through zero at k = 0.4
    gyr[lo:hi, 1] = np.where(
        k < 0.4, 300.0 * np.sin(np.pi * k / 0.4), -400.0 * np.sin(np.pi * (k - 0.4) / 0.6)
    )
    gyr[lo:hi, 0] = gyr[lo:hi, 2] = 0.0
    acc[lo:hi] = np.column_stack([15.0 * np.sin(2 * np.pi * k), 0 * k, G + 10.0 * np.sin(np.pi * k)])
    quiet = lo + int(round(0.4 * (hi - lo)))
    acc[quiet - 2 : quiet + 3] = [0.0, 0.0, G]  # the specific force passes through gravity there
    gyr[quiet - 2 : quiet + 3] = 0.0
    old = ZeroVelocityDetector(ZeroVelocitySettings(swing_gyr_dps=None)).detect(acc, gyr, fs)
    assert old.zero_velocity_[quiet]  # the relaxed fallback alone takes it
    zv = ZeroVelocityDetector().detect(acc, gyr, fs)
    assert not zv.zero_velocity_[lo:hi].any()
    assert len(mask_to_periods(zv.zero_velocity_)) == len(mask_to_periods(old.zero_velocity_)) - 1


def test_the_heel_strike_of_a_slow_step_is_not_a_stance_anchor():
    """Real gait starts (LORD, trials 32, 42, 45): the first step from standing lands on the heel
    and the foot then slaps flat (plantarflexion) for 0.25 s before its foot-flat; at the heel
    strike gyr_y turns through zero and the relaxed fallback took that instant as a stance, which
    cut the first stride to 0.16-0.40 m (footprints 0.63-0.76 m). No swing (dorsiflexion) follows
    it before the still period: it belongs to that stance."""
    fs = 200.0
    acc, gyr, truth = _steps(fs, 4, still_s=0.3, swing_s=0.8)
    periods = mask_to_periods(truth)
    lo, hi = periods[1, 1], periods[2, 0]  # the second swing
    k = np.arange(hi - lo) / (hi - lo)
    # push-off, the dorsiflexion of the swing, the heel strike at k = 0.7, then the foot slap
    gyr[lo:hi, 1] = np.where(
        k < 0.3,
        300.0 * np.sin(np.pi * k / 0.3),
        np.where(k < 0.7, -400.0 * np.sin(np.pi * (k - 0.3) / 0.4), 200.0 * np.sin(np.pi * (k - 0.7) / 0.3)),
    )
    gyr[lo:hi, 0] = gyr[lo:hi, 2] = 0.0
    acc[lo:hi] = np.column_stack([15.0 * np.sin(2 * np.pi * k), 0 * k, G + 10.0 * np.sin(np.pi * k)])
    strike = lo + int(round(0.7 * (hi - lo)))
    acc[strike - 2 : strike + 3] = [0.0, 0.0, G]
    gyr[strike - 2 : strike + 3] = 0.0
    old = ZeroVelocityDetector(ZeroVelocitySettings(swing_gyr_dps=None)).detect(acc, gyr, fs)
    assert old.zero_velocity_[strike]  # the relaxed fallback alone takes it
    zv = ZeroVelocityDetector().detect(acc, gyr, fs)
    assert not zv.zero_velocity_[lo:hi].any()
    assert (zv.zero_velocity_ == truth).mean() > 0.9


def test_lever_acceleration_of_a_rigid_body_about_its_pivot():
    # Constant rate about y: only the centripetal part, -w^2 r towards the pivot.
    t = np.arange(50) / 200.0
    w = np.tile([0.0, np.degrees(3.0), 0.0], (50, 1))
    a = lever_acceleration(w, t, (0.1, 0.0, 0.05))
    assert a == pytest.approx(np.tile([-0.9, 0.0, -0.45], (50, 1)), abs=1e-12)
    # A rate rising linearly (alpha = 20 rad/s² about y) at zero rate: alpha x r, exact at the ends too.
    w = np.column_stack([np.zeros(50), np.degrees(20.0 * (t - t[25])), np.zeros(50)])
    a = lever_acceleration(w, t, (0.0, 0.0, 0.045))
    assert a[25] == pytest.approx([20.0 * 0.045, 0.0, 0.0], abs=1e-12)
    # at the first sample (one-sided difference): alpha h forward, -w^2 h towards the pivot
    assert a[0] == pytest.approx([0.9, 0.0, -((20.0 * (t[0] - t[25])) ** 2) * 0.045], abs=1e-9)


def _merged_still_reference(still: np.ndarray, merge_gap: float, min_len: float) -> np.ndarray:
    """The detector's merge and minimum duration as numpy stated them before `_merged_still`."""
    still = still.copy()
    periods = mask_to_periods(still)
    if len(periods) > 1:
        gaps = periods[1:, 0] - periods[:-1, 1]
        fill = gaps < merge_gap
        fill_runs(still, periods[:-1, 1][fill], periods[1:, 0][fill])
        periods = mask_to_periods(still)
    keep = (periods[:, 1] - periods[:, 0]) >= min_len
    return periods_to_mask(periods[keep], len(still))


@given(
    st.lists(st.booleans(), max_size=120),
    st.floats(0.0, 12.0, allow_nan=False),
    st.floats(1.0, 12.0, allow_nan=False),
)
def test_merged_still_periods_are_the_numpy_statement(bits, merge_gap, min_len):
    still = np.array(bits, dtype=bool)
    got = _merged_still(still, merge_gap, min_len)
    assert np.array_equal(got, _merged_still_reference(still, merge_gap, min_len))
    assert np.array_equal(still, np.array(bits, dtype=bool))  # the input is left as it was


def test_detector_periods_follow_its_flags():
    rng = np.random.default_rng(3)
    acc = np.tile([0.0, 0.0, G], (400, 1)) + rng.normal(0.0, 0.05, (400, 3))
    gyr = rng.normal(0.0, 2.0, (400, 3))
    acc[150:250] += rng.normal(0.0, 8.0, (100, 3))
    gyr[150:250] += rng.normal(0.0, 300.0, (100, 3))
    zv = ZeroVelocityDetector().detect(acc, gyr, FS)
    assert np.array_equal(zv.periods_, mask_to_periods(zv.zero_velocity_))
    assert len(zv.periods_) >= 2  # still before and after the motion


_FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@given(
    hnp.arrays(float, st.tuples(st.integers(1, 40), st.just(3)), elements=_FINITE),
    hnp.arrays(float, (3,), elements=_FINITE),
)
def test_row_cross_products_are_numpys_bit_for_bit(a, r):
    # the live windows' lever terms must not move a ulp (the live rows are compared bit for bit)
    assert np.array_equal(_cross_rows(a, r), np.cross(a, r))
    b = a[::-1] * 0.5 + r
    assert np.array_equal(_cross_rows(a, b), np.cross(a, b))


@hypothesis_settings(deadline=None)  # the first example loads the compiled kernel
@given(
    hnp.arrays(float, st.tuples(st.integers(2, 40), st.just(3)), elements=_FINITE),
    st.floats(0.001, 0.02),
    st.lists(st.floats(0.0, 0.004, allow_nan=False), max_size=40),
)
def test_lever_acceleration_is_numpys_gradient_and_cross_bit_for_bit(f, step, jitter):
    # the numpy statement it compiles; the live windows' levelling must not move a ulp
    n = len(f)
    uniform = np.arange(n) * step
    steps = step + np.resize(np.asarray(jitter or [0.0]), n - 1)
    exact = np.arange(n) * 2.0**-7  # every step equal: numpy's uniform formula
    r = np.array([0.01, -0.02, 0.045])
    w = np.radians(f)
    for t in (exact, uniform, np.concatenate([[0.0], np.cumsum(steps)])):
        alpha = np.gradient(w, t, axis=0)
        want = np.cross(alpha, r) + np.cross(w, np.cross(w, r))
        assert np.array_equal(lever_acceleration(f, t, r), want)


@hypothesis_settings(deadline=None)  # the first example loads the compiled kernel
@given(
    hnp.arrays(float, st.tuples(st.integers(0, 40), st.just(3)), elements=_FINITE),
    hnp.arrays(float, (3,), elements=_FINITE),
    st.floats(0.001, 0.02),
    st.lists(st.floats(0.0, 0.004, allow_nan=False), max_size=40),
    st.booleans(),
)
def test_the_carried_strapdown_is_the_levellings_numpy_statements(f, bias, step, jitter, lever):
    # LevelledStrapdown's lever subtraction and strapdown as it wrote them, bit for bit
    n = len(f)
    gyr, acc = f * 40.0, f[::-1] * 3.0 + 9.0
    r = np.array([0.01, -0.02, 0.045])
    steps = step + np.resize(np.asarray(jitter or [0.0]), max(n - 1, 0))
    for t in (np.arange(n) * 2.0**-7, np.concatenate([[0.0], np.cumsum(steps)])[:n]):
        want_acc = acc - lever_acceleration(gyr - bias, t, r) if lever else acc
        want = strapdown(np.radians(gyr - bias), want_acc, np.diff(t) if n > 1 else np.zeros(0))
        got = _carried_strapdown(acc, gyr, bias, t, r if lever else np.zeros(3), lever)
        assert np.array_equal(got[0], want_acc)
        assert np.array_equal(got[1], want[0]) and np.array_equal(got[2], want[1])


def _tilt_steps_numpy(f, t, g, anchor_v, nodes, still):
    """The numpy statement `_tilt_steps` compiles (fit_stance_tilt's before session 11)."""
    n, k = len(t), len(nodes)
    x = f - np.array([0.0, 0.0, g])
    v_raw = np.zeros_like(x)
    v_raw[1:] = np.cumsum(0.5 * (x[1:] + x[:-1]) * np.diff(t)[:, None], axis=0)
    jac = np.zeros((n, 3, 2))
    jac[:, 1, 0], jac[:, 2, 0] = -f[:, 2], f[:, 1]
    jac[:, 0, 1], jac[:, 2, 1] = f[:, 2], -f[:, 0]
    seg = np.searchsorted(nodes, np.arange(n - 1), side="right") - 1
    lo_t = t[nodes[np.clip(seg, 0, k - 1)]]
    hi_t = t[nodes[np.clip(seg + 1, 0, k - 1)]]
    gap = np.where(hi_t > lo_t, hi_t - lo_t, 1.0)
    s0 = np.clip((t[:-1] - lo_t) / gap, 0.0, 1.0)
    s1 = np.clip((t[1:] - lo_t) / gap, 0.0, 1.0)
    outside = (seg < 0) | (seg >= k - 1)
    s0[outside], s1[outside] = 0.0, 0.0
    half_dt = 0.5 * np.diff(t)[:, None, None]
    inc_a = half_dt * ((1.0 - s0)[:, None, None] * jac[:-1] + (1.0 - s1)[:, None, None] * jac[1:])
    inc_b = half_dt * (s0[:, None, None] * jac[:-1] + s1[:, None, None] * jac[1:])
    cum_a = np.concatenate([np.zeros((1, 3, 2)), np.cumsum(inc_a, axis=0)])
    cum_b = np.concatenate([np.zeros((1, 3, 2)), np.cumsum(inc_b, axis=0)])
    p, q = still[:-1], still[1:]
    rows_a, rows_b = cum_a[q] - cum_a[p], cum_b[q] - cum_b[p]
    rows_b[outside[p]] = 0.0
    target = (v_raw[q] - v_raw[p]) - (anchor_v[q] - anchor_v[p])
    return seg[p], rows_a, rows_b, target


@hypothesis_settings(deadline=None)  # the first example loads the compiled kernel
@given(
    st.integers(0, 2**32 - 1),
    st.integers(30, 400),
    st.floats(0.0, 0.004, allow_nan=False),
)
def test_tilt_steps_are_the_numpy_statement_bit_for_bit(seed, n, jitter):
    # the live windows' stride lengths must not move a ulp (the live rows are compared bit for bit)
    rng = np.random.default_rng(seed)
    t = np.cumsum(0.005 + jitter * rng.random(n))
    f = rng.normal(0.0, 20.0, (n, 3)) + np.array([0.0, 0.0, G])
    anchor_v = rng.normal(0.0, 0.05, (n, 3))
    zv = rng.random(n) < 0.3
    zv[[0, n // 2, n - 1]] = True
    nodes = tilt_fit_nodes(mask_to_periods(zv)).astype(np.int64)
    still = np.flatnonzero(zv).astype(np.int64)
    got = _tilt_steps(f, t, G, anchor_v, nodes, still)
    want = _tilt_steps_numpy(f, t, G, anchor_v, nodes, still)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        assert np.array_equal(a, b)


@hypothesis_settings(deadline=None)  # the first example loads the compiled kernel
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(3, 8))
def test_interval_normals_are_einsums_bit_for_bit(seed, steps, k):
    rng = np.random.default_rng(seed)
    seg = rng.integers(-1, k, steps).astype(np.int64)
    rows_a, rows_b = rng.normal(0.0, 0.01, (steps, 3, 2)), rng.normal(0.0, 0.01, (steps, 3, 2))
    target = rng.normal(0.0, 0.1, (steps, 3))
    w = 400.0
    # the numpy statement (_local_tilt's before session 11)
    rows = np.concatenate([rows_a, rows_b], axis=2)
    before = seg < 0
    rows[before] = np.concatenate([np.zeros_like(rows_a[before]), rows_a[before]], axis=2)
    idx = np.clip(seg, -1, k - 1) + 1
    blocks = np.zeros((k + 1, 4, 4))
    np.add.at(blocks, idx, w * np.einsum("rij,rik->rjk", rows, rows))
    proj = np.zeros((k + 1, 4))
    np.add.at(proj, idx, w * np.einsum("rij,ri->rj", rows, target))
    got_blocks, got_proj = _interval_normals(seg, rows_a, rows_b, target, k, w)
    assert np.array_equal(got_blocks, blocks)
    assert np.array_equal(got_proj, proj)


@hypothesis_settings(deadline=None)  # the first example loads the compiled kernel
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.integers(1, 12), st.integers(1, 3))
def test_zupt_row_kernels_are_the_numpy_statements_bit_for_bit(seed, n, k, span):
    # the anchor velocity, the tilt's rotation of the specific force and the local systems as
    # ZuptIntegrator and _local_tilt wrote them in numpy
    rng = np.random.default_rng(seed)
    gyr, f = rng.normal(0.0, 200.0, (n, 3)), rng.normal(0.0, 20.0, (n, 3))
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    zv = rng.random(n) < 0.4
    lever = np.array([0.01, -0.02, 0.045])
    want = np.zeros((n, 3))
    want[zv] = rotate_all(
        np.ascontiguousarray(q[zv]), np.ascontiguousarray(_cross_rows(np.radians(gyr[zv]), lever))
    )
    got = np.zeros((n, 3))
    _anchor_velocity(gyr, q, zv, lever, got)
    assert np.array_equal(got, want)
    d = np.column_stack([rng.normal(0.0, 0.02, (n, 2)), np.zeros(n)])
    assert np.array_equal(_rotated_by(d, f), f - _cross_rows(d, f))
    blocks, proj = rng.normal(size=(k + 1, 4, 4)), rng.normal(size=(k + 1, 4))
    m = 2 * span + 1
    system = np.zeros((k, 2 * m, 2 * m))
    system[:, np.arange(2 * m), np.arange(2 * m)] = 3.5
    rhs = np.zeros((k, 2 * m))
    centre = np.arange(k)
    for o in range(-span, span):
        i = centre + o + 1
        ok = (i >= 0) & (i <= k) & ((i > 0) | (centre == 0)) & ((i < k) | (centre == k - 1))
        lo = 2 * (o + span)
        system[ok, lo : lo + 4, lo : lo + 4] += blocks[i[ok]]
        rhs[ok, lo : lo + 4] += proj[i[ok]]
    got_system, got_rhs = _local_systems(blocks, proj, k, 3.5, span)
    assert np.array_equal(got_system, system) and np.array_equal(got_rhs, rhs)


def test_a_rolling_anchor_reads_gravity_with_the_pod_lever():
    """A foot pitching about its contact point with the pod h above it (a rolling running stance):
    the pod's specific force carries its acceleration about the contact, alpha x r + w x (w x r),
    which a gravity window around the anchor reads as tilt; with the lever taken out it is exact."""
    fs, h, alpha = 200.0, 0.045, 20.0
    t = np.arange(int(0.4 * fs)) / fs
    tc = t[len(t) // 2]
    theta = 0.5 * alpha * (t - tc) ** 2 - 0.1  # pitch about y through the contact, rad
    rate, acc_th = alpha * (t - tc), np.full_like(t, alpha)
    c, s = np.cos(theta), np.sin(theta)
    # sensor at R_y(theta) (0, 0, h) from the fixed contact; world specific force = p'' + g up
    p_dd = h * np.column_stack([acc_th * c - rate**2 * s, np.zeros_like(t), -acc_th * s - rate**2 * c])
    f_world = p_dd + np.array([0.0, 0.0, G])
    # body = R_y(theta)^T world
    acc = np.column_stack(
        [c * f_world[:, 0] - s * f_world[:, 2], f_world[:, 1], s * f_world[:, 0] + c * f_world[:, 2]]
    )
    gyr = np.column_stack([np.zeros_like(t), np.degrees(rate), np.zeros_like(t)])
    zv = np.zeros(len(t), bool)
    zv[len(t) // 2 - 1 : len(t) // 2 + 2] = True  # three samples around the slowest instant
    up_true = np.array([-s, np.zeros_like(t), c]).T  # R_y(theta)^T (0, 0, 1)

    def tilt_error_deg(lever):
        st = LevellingSettings(estimate_gyr_bias=False, lever_m=lever)
        lev = LevelledStrapdown(st).estimate(acc, gyr, zv, fs, t)
        k = lev.anchors_[0]
        return float(np.degrees(np.arccos(np.clip(lev.gravity_[0] @ up_true[k], -1.0, 1.0))))

    without, with_lever = tilt_error_deg(None), tilt_error_deg((0.0, 0.0, h))
    assert without > 3.0  # alpha h = 0.9 m/s²: about 5 deg
    assert with_lever < 0.05


def _strides_with_tilt_error(tilt_rad: np.ndarray):
    """Level walk: still 0.3 s, 1.2 m swing of 0.7 s, repeated; the world specific force carries a
    tilt error (rotation about x and y) linear in time between the still periods' middles."""
    still, swing, length = int(0.3 * FS), int(0.7 * FS), 1.2
    tau = np.arange(swing) / FS
    vx = length / 0.7 * (1.0 - np.cos(2.0 * np.pi * tau / 0.7))
    vz = 0.3 * np.sin(2.0 * np.pi * tau / 0.7)
    k = len(tilt_rad)
    v = np.concatenate(
        [np.zeros((still, 3))]
        + [np.concatenate([np.column_stack([vx, 0 * vx, vz]), np.zeros((still, 3))]) for _ in range(k - 1)]
    )
    n = len(v)
    t = np.arange(n) / FS
    f = np.gradient(v, t, axis=0) + [0.0, 0.0, G]
    zv = np.all(v == 0.0, axis=1)
    nodes = np.array([(a + b - 1) // 2 for a, b in mask_to_periods(zv)])
    d = np.column_stack(
        [np.interp(t, t[nodes], tilt_rad[:, 0]), np.interp(t, t[nodes], tilt_rad[:, 1]), 0 * t]
    )
    return t, f + np.cross(d, f), zv, v


def test_stance_tilt_fit_recovers_the_tilt_error_from_the_still_velocity():
    rng = np.random.default_rng(3)
    tilt = rng.uniform(-np.radians(3.0), np.radians(3.0), (6, 2))
    t, f, zv, _ = _strides_with_tilt_error(tilt)
    fitted, _ = fit_stance_tilt(f, zv, t, G, np.zeros_like(f), 0.001, np.radians(30.0))
    np.testing.assert_allclose(fitted, tilt, atol=np.radians(0.1))  # discretisation of f
    assert fit_stance_tilt(f[:400], zv[:400], t[:400], G, np.zeros((400, 3)), 0.001, 1.0) is None


def test_stance_tilt_fit_gives_back_the_stride_length_the_tilt_error_took():
    tilt = np.radians([[0.0, 0.0], [0.0, 3.0], [0.0, -3.0], [0.0, 3.0], [0.0, -3.0], [0.0, 0.0]])
    t, f, zv, v = _strides_with_tilt_error(tilt)
    q = _level(len(t))
    nodes = np.array([(a + b - 1) // 2 for a, b in mask_to_periods(zv)])
    plain = ZuptIntegrator().estimate(f, q, zv, FS, t).position_m_[nodes, 0]
    whole = ZuptSettings(tilt_fit_sd_mps=0.01, tilt_fit_prior_deg=3.0, tilt_fit_span=None)
    fitted = ZuptIntegrator(whole).estimate(f, q, zv, FS, t)
    stride_plain, stride_fit = np.diff(plain), np.diff(fitted.position_m_[nodes, 0])
    assert np.max(np.abs(stride_plain - 1.2)) > 0.01  # one long, the next short
    np.testing.assert_allclose(stride_fit, 1.2, atol=0.002)
    np.testing.assert_allclose(np.degrees(fitted.tilt_fit_rad_), np.degrees(tilt), atol=0.5)


def test_local_stance_tilt_fit_recovers_the_tilts_from_the_neighbouring_periods_only():
    rng = np.random.default_rng(3)
    tilt = rng.uniform(-np.radians(3.0), np.radians(3.0), (8, 2))
    t, f, zv, _ = _strides_with_tilt_error(tilt)
    args = (G, np.zeros_like(f), 0.001, np.radians(30.0))
    local, d = fit_stance_tilt(f, zv, t, *args, span=1)
    np.testing.assert_allclose(local, tilt, atol=np.radians(0.1))  # measured 0.09 deg
    assert d.shape == (len(t), 3) and not d[:, 2].any()
    # node 3 reads the motion between nodes 2 and 4 only: data from node 5 on does not move it
    nodes = np.array([(a + b - 1) // 2 for a, b in mask_to_periods(zv)])
    bent = f.copy()
    bent[nodes[5] :, 0] += 0.5
    moved, _ = fit_stance_tilt(bent, zv, t, *args, span=1)
    np.testing.assert_allclose(moved[:4], local[:4], rtol=0, atol=1e-12)
    assert np.abs(moved[4:] - local[4:]).max() > np.radians(0.5)
    # neither does data before node 1 (without the steps before node 0, which only node 0 reads)
    first = f.copy()
    first[: nodes[1], 1] -= 0.5
    moved, _ = fit_stance_tilt(first, zv, t, *args, span=1)
    np.testing.assert_allclose(moved[2:], local[2:], rtol=0, atol=1e-12)
    # the same fit in a window cut at node 1's period start and node 5's period end
    per = mask_to_periods(zv)
    w = slice(per[1, 0], per[5, 1])
    cut, _ = fit_stance_tilt(f[w], zv[w], t[w], G, np.zeros_like(f[w]), 0.001, np.radians(30.0), span=1)
    np.testing.assert_allclose(cut[1:4], local[2:5], rtol=0, atol=1e-12)


def _corrections(drift_deg, error_deg: np.ndarray):
    """Levelling corrections (angle rad, world axis) at level anchors: the drift since the previous
    anchor plus e_j - e_(j-1), e the error of the gravity read at each anchor (K, 2) deg."""
    c = np.radians(np.asarray(drift_deg) + np.diff(error_deg, axis=0))
    angle = np.linalg.norm(c, axis=1)
    tilt = np.concatenate([[0.0], angle])
    axis = np.concatenate([[[1.0, 0.0]], c / angle[:, None]])
    return _level(len(tilt)), tilt, axis


def test_anchor_tilt_sd_reads_the_gravity_errors_not_the_gyro_drift():
    rng = np.random.default_rng(7)
    errors = rng.normal(0.0, 2.0, (801, 2))  # deg
    assert anchor_tilt_sd_deg(*_corrections([0.5, 8.0], errors)) == pytest.approx(2.0, abs=0.2)
    # the drift alone (constant, as a gyro bias, or varying from stride to stride) is not an anchor error
    assert anchor_tilt_sd_deg(*_corrections([0.5, 8.0], np.zeros((801, 2)))) == pytest.approx(0.0, abs=1e-9)
    assert anchor_tilt_sd_deg(*_corrections(rng.normal(3.0, 1.0, (800, 2)), np.zeros((801, 2)))) < 0.25
    assert anchor_tilt_sd_deg(*_corrections([0.5, 8.0], errors[:3])) == 0.0  # two corrections: unknown
    # a few odd corrections (turns, a stumble: 40 deg) do not set it
    drift = np.tile([0.5, 8.0], (800, 1))
    drift[::100, 0] = 40.0
    assert anchor_tilt_sd_deg(*_corrections(drift, errors)) == pytest.approx(2.0, abs=0.3)


def test_the_levelling_prior_leaves_a_well_levelled_walk_as_it_was():
    """A swing error the linear tilt model does not hold (a velocity bump inside each swing) moves
    the strides of a fit with a fixed 3 deg prior; with the levelling's prior of a walk whose
    anchors read gravity well (0 deg: the floor) the strides stay as the plain ZUPT made them."""
    tilt = np.zeros((6, 2))
    t, f, zv, _ = _strides_with_tilt_error(tilt)
    # m/s² within each swing, of alternating sign: 0.1 m/s of velocity error by the swing's end
    swing = np.cumsum(np.diff(zv.astype(int), prepend=1) == -1)
    bump = np.where(~zv, 0.3 * (-1.0) ** swing * np.sin(np.pi * (t % 1.0 - 0.3) / 0.7) ** 2, 0.0)
    f = f + np.column_stack([bump, 0 * bump, 0 * bump])
    q = _level(len(t))
    nodes = np.array([(a + b - 1) // 2 for a, b in mask_to_periods(zv)])

    def strides(settings, sd=None):
        zupt = ZuptIntegrator(settings).estimate(f, q, zv, FS, t, anchor_tilt_sd_deg=sd)
        return np.diff(zupt.position_m_[nodes, 0])

    plain = strides(ZuptSettings(tilt_fit_sd_mps=None))
    fixed = strides(ZuptSettings(tilt_fit_sd_mps=0.1, tilt_fit_prior_deg=3.0, tilt_fit_span=None))
    levelling = ZuptSettings(tilt_fit_sd_mps=0.1, tilt_fit_prior_deg="levelling", tilt_fit_span=None)
    assert np.max(np.abs(fixed - plain)) > 0.01  # measured 12.6 mm
    np.testing.assert_allclose(strides(levelling, 0.0), plain, atol=5e-5)  # measured 9 um
    np.testing.assert_array_equal(strides(levelling, 3.0), fixed)  # the same fit with that prior
    # without the levelling's SD (a Madgwick orientation) there is nothing to fit
    np.testing.assert_array_equal(strides(levelling), strides(ZuptSettings(tilt_fit_sd_mps=None)))
