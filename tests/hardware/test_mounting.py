"""Mounting alignment: known answers on synthetic walking, equivariance on the real recordings, bad input."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation
from support.mounting import RECORDINGS, G, read_foot, synthetic_walk

from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.frames import rotation_from_wxyz, wxyz_from_rotation
from strideflow.hardware.mounting import (
    AlignmentError,
    MountingEstimator,
    MountingSettings,
    apply_mounting,
    profile_rotation,
)
from strideflow.hardware.profiles import DEFAULT_PROFILE, DeviceProfile
from strideflow.hardware.schema import ACC, ATHLETE_ID, FOOT, GYR, MAG, SESSION_ID, T


def angle_deg(a: Rotation, b: Rotation) -> float:
    """Angle of the rotation taking b to a, deg."""
    return float(np.degrees((a * b.inv()).magnitude()))


# --- synthetic walking foot with a known mounting ------------------------------------------------


# Arbitrary (askew) mounts of a walker without toe-out: the walking direction is the shoe axis
# there, while the default square-mount heading would snap to whichever device axis is nearest
# (hardware.shoe_axis); these tests check steps 1-3 of the estimate, so they use the walking heading.
WALKING = MountingSettings(heading="walking")


def mount(acc: np.ndarray, gyr: np.ndarray, device_to_foot: Rotation) -> tuple[np.ndarray, np.ndarray]:
    """What a device mounted with `device_to_foot` reads for foot-frame signals."""
    foot_to_device = device_to_foot.inv()
    return foot_to_device.apply(acc), foot_to_device.apply(gyr)


def test_synthetic_still_tilt_30_deg_about_x_reads_back_30_deg():
    acc, gyr = synthetic_walk()
    truth = Rotation.from_euler("x", 30.0, degrees=True)
    est = MountingEstimator().estimate(*mount(acc, gyr, truth), 200.0)
    assert angle_deg(est.rotation_, truth) < 0.05
    rotvec = np.degrees(est.rotation_.as_rotvec())
    np.testing.assert_allclose(rotvec, [30.0, 0.0, 0.0], atol=0.05)
    # the still reading is gravity tilted by 30 deg about x, and reads +1 g on z once aligned
    tilt = np.degrees(np.arccos(est.gravity_dev_[2] / np.linalg.norm(est.gravity_dev_)))
    assert tilt == pytest.approx(30.0, abs=0.05)
    np.testing.assert_allclose(est.rotation_.apply(est.gravity_dev_), [0.0, 0.0, G], atol=1e-6)
    assert est.gravity_source_ == "foot_flat"


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_random_mounting_recovered_with_noise(seed):
    acc, gyr = synthetic_walk(sampling_rate_hz=102.4, seed=seed)
    truth = Rotation.random(random_state=seed)
    est = MountingEstimator(WALKING).estimate(*mount(acc, gyr, truth), 102.4)
    assert angle_deg(est.rotation_, truth) < 1.0
    # axis_dev_ is +y of the foot in the device frame; quaternion_ is the same rotation, w first
    np.testing.assert_allclose(est.axis_dev_, truth.inv().apply([0.0, 1.0, 0.0]), atol=0.02)
    assert angle_deg(rotation_from_wxyz(est.quaternion_), est.rotation_) < 1e-9
    assert est.quality_.forward_agreement == 1.0
    assert est.quality_.n_strides == 12


def test_foot_flats_preferred_over_tilted_standing():
    acc, gyr = synthetic_walk(standing_roll_deg=12.0, standing_s=5.0)
    auto = MountingEstimator().estimate(acc, gyr, 200.0)
    assert auto.gravity_source_ == "foot_flat"
    np.testing.assert_allclose(auto.rotation_.apply(auto.gravity_dev_), [0.0, 0.0, G], atol=1e-6)
    np.testing.assert_allclose(auto.gravity_dev_, [0.0, 0.0, G], atol=1e-6)
    # the first swing's roll adds a little x rotation to the swing axis: heading off by ~0.2 deg
    assert np.degrees(auto.rotation_.magnitude()) < 0.5
    standing = MountingEstimator(MountingSettings(gravity_source="standing")).estimate(acc, gyr, 200.0)
    assert standing.gravity_source_ == "standing"
    # standing on a foot rolled by 12 deg puts z 12 deg off the foot-flat z
    assert np.degrees(standing.rotation_.magnitude()) == pytest.approx(12.0, abs=0.05)


def test_backwards_mounting_is_told_apart_by_forward_motion():
    # a device turned by 180 deg about z sees the same gravity and the same swing axis line;
    # only the forward displacement tells the shoe tip from the heel
    acc, gyr = synthetic_walk()
    truth = Rotation.from_euler("z", 180.0, degrees=True)
    est = MountingEstimator().estimate(*mount(acc, gyr, truth), 200.0)
    assert angle_deg(est.rotation_, truth) < 0.05


# --- bad input -----------------------------------------------------------------------------------
def test_all_still_is_no_walking():
    acc = np.tile([0.0, 0.0, G], (2000, 1)) + np.random.default_rng(0).normal(0, 0.02, (2000, 3))
    gyr = np.random.default_rng(1).normal(0, 0.2, (2000, 3))
    with pytest.raises(AlignmentError, match="no walking"):
        MountingEstimator().estimate(acc, gyr, 200.0)


@pytest.mark.parametrize("acc_sd", [0.5, 6.0, 20.0])
def test_all_noise_is_no_still_period(acc_sd):
    rng = np.random.default_rng(2)
    acc = rng.normal(0.0, acc_sd, (3000, 3))
    gyr = rng.normal(0.0, 200.0, (3000, 3))
    with pytest.raises(AlignmentError, match="no still period"):
        MountingEstimator().estimate(acc, gyr, 200.0)


def test_nan_wrong_shape_and_bad_rate_are_alignment_errors():
    acc, gyr = synthetic_walk()
    acc[100, 1] = np.nan
    with pytest.raises(AlignmentError, match="row 100"):
        MountingEstimator().estimate(acc, gyr, 200.0)
    with pytest.raises(AlignmentError, match=r"\(N, 3\)"):
        MountingEstimator().estimate(np.zeros((10, 2)), np.zeros((10, 2)), 200.0)
    with pytest.raises(AlignmentError, match="sampling_rate_hz"):
        MountingEstimator().estimate(np.zeros((10, 3)), np.zeros((10, 3)), 0.0)
    with pytest.raises(AlignmentError, match="row 7"):
        big = gyr.copy()
        big[7, 0] = 1e200
        MountingEstimator().estimate(np.nan_to_num(acc), big, 200.0)
    assert issubclass(AlignmentError, StrideflowError)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=arrays(
        np.float64,
        st.tuples(st.integers(0, 400), st.just(6)),
        elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
    ),
    rate=st.sampled_from([50.0, 102.4, 204.8]),
)
def test_arbitrary_input_gives_estimate_or_alignment_error(data, rate):
    try:
        est = MountingEstimator().estimate(data[:, :3], data[:, 3:], rate)
    except AlignmentError as err:
        assert str(err)
    else:
        assert np.isclose(np.linalg.norm(est.quaternion_), 1.0)


# --- real recordings -----------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "foot", "rate"), RECORDINGS)
def test_random_rotations_of_real_recordings_are_recovered(real_data, name, foot, rate):
    """Rotate a recording by 24 random rotations, add sensor noise, recover the frame within 2 deg."""
    acc, gyr = read_foot(real_data, name, foot)
    reference = MountingEstimator(WALKING).estimate(acc, gyr, rate)
    rng = np.random.default_rng(zlib.crc32(f"{name}:{foot}".encode()))
    errors = []
    for applied in Rotation.random(24, random_state=rng.integers(2**32)):
        acc_rot = applied.apply(acc) + rng.normal(0.0, DEFAULT_PROFILE.acc_noise_density_mps2, acc.shape)
        gyr_rot = applied.apply(gyr) + rng.normal(0.0, DEFAULT_PROFILE.gyr_noise_dps, gyr.shape)
        est = MountingEstimator(WALKING).estimate(acc_rot, gyr_rot, rate)
        # est maps rotated-device vectors into the foot frame: est * applied must equal the reference
        errors.append(angle_deg(est.rotation_ * applied, reference.rotation_))
    assert max(errors) < 2.0, f"worst recovery error {max(errors):.2f} deg"


# angle of the estimate from identity on the files whose frame is already the foot frame, deg:
# imu_sample 21.3 / 21.0 (roll 15.4 / -13.4, pitch -4.4 / -1.6, heading 13.5 / -16.0 deg left / right:
# the pods sit on the sloped lateral shoe upper, and the given x is toed out from the walking
# direction), ms 7.0 / 9.2 (mostly heading, 6.4 / -8.5).
ALIGNED_MAX_DEG = {"imu_sample.csv": 25.0, "imu_sample_ms_left.csv": 12.0, "imu_sample_ms_right.csv": 12.0}


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "foot", "rate"), [r for r in RECORDINGS if r[0] in ALIGNED_MAX_DEG])
def test_already_aligned_recordings_stay_close_to_identity(real_data, name, foot, rate):
    acc, gyr = read_foot(real_data, name, foot)
    est = MountingEstimator().estimate(acc, gyr, rate)
    m = est.rotation_.as_matrix()
    assert np.degrees(est.rotation_.magnitude()) < ALIGNED_MAX_DEG[name]
    # never flipped: estimated x and y lie within 25 deg of the given x and y
    assert np.degrees(np.arccos(m[0, 0])) < 25.0
    assert np.degrees(np.arccos(m[1, 1])) < 25.0
    assert est.gravity_source_ == "foot_flat"
    assert est.quality_.forward_agreement > 0.95
    assert est.quality_.axis_planarity < 0.5
    # two independent heading cues agree: swing axis and dead-reckoned stride direction
    assert abs(est.quality_.forward_offset_deg) < 8.0
    assert est.quality_.gravity_spread_deg < 3.0


@pytest.mark.real_data
def test_imu_sample_roll_is_the_lateral_mounting(real_data):
    """At foot-flat the given frame reads about (0.74, 2.64, 9.53) left and (0.24, -2.24, 9.62) right."""
    rolls = {}
    for foot in ("left", "right"):
        acc, gyr = read_foot(real_data, "imu_sample.csv", foot)
        g = MountingEstimator().estimate(acc, gyr, 204.8).gravity_dev_
        rolls[foot] = np.degrees(np.arctan2(g[1], g[2]))
        assert np.linalg.norm(g) == pytest.approx(G, abs=0.3)
    assert 12.0 < rolls["left"] < 19.0
    assert -19.0 < rolls["right"] < -10.0


@pytest.mark.real_data
@pytest.mark.parametrize("foot", ["left", "right"])
def test_unaligned_ic_stride_gets_the_walking_gyro_pattern(real_data, foot):
    """After alignment each mocap stride (IC to IC) shows push-off (+gyr_y) then mid-swing (-gyr_y)."""
    acc, gyr = read_foot(real_data, "imu_sample_ic_stride.csv", foot)
    raw_pitch = np.degrees(np.arccos(acc[:50, 2] / np.linalg.norm(acc[:50], axis=1))).mean()
    assert raw_pitch > 30.0  # the raw frame is far from the foot frame
    est = MountingEstimator().estimate(acc, gyr, 102.4)
    gyr_y = est.rotation_.apply(gyr)[:, 1]
    borders = pd.read_csv(real_data / "stride_borders_sample_ic_stride.csv")
    borders = borders[borders["foot"] == foot]
    assert len(borders) == 7
    for start, end in zip(borders["start"], borders["end"], strict=True):
        stride = gyr_y[start:end]
        i_max = int(np.argmax(stride))
        assert stride[i_max] > 150.0  # push-off: plantarflexion peak
        assert i_max < 0.75 * len(stride)
        assert stride[i_max:].min() < -200.0  # then mid-swing dorsiflexion
    # gravity in the aligned frame at the start (quiet standing) is within 20 deg of +z
    standing = est.rotation_.apply(acc[:50].mean(axis=0))
    assert np.degrees(np.arccos(standing[2] / np.linalg.norm(standing))) < 20.0


@pytest.mark.real_data
def test_halves_of_a_recording_agree(real_data):
    acc, gyr = read_foot(real_data, "imu_sample_ms_left.csv", "left")
    half = len(acc) // 2
    first = MountingEstimator().estimate(acc[:half], gyr[:half], 102.4)
    second = MountingEstimator().estimate(acc[half:], gyr[half:], 102.4)
    assert angle_deg(first.rotation_, second.rotation_) < 3.0


# --- apply_mounting and profiles -----------------------------------------------------------------
def test_apply_mounting_rotates_each_foot_and_keeps_other_columns():
    rng = np.random.default_rng(5)
    n = 50
    table = pl.DataFrame(
        {
            ATHLETE_ID: ["a"] * (2 * n),
            SESSION_ID: ["s"] * (2 * n),
            FOOT: ["left"] * n + ["right"] * n,
            T: np.tile(np.arange(n) / 100.0, 2),
            **{c: rng.normal(size=2 * n) for c in (*ACC, *GYR, *MAG)},
        }
    )
    rot_l = Rotation.from_euler("xyz", [10.0, -20.0, 30.0], degrees=True)
    rot_r = Rotation.from_euler("y", 45.0, degrees=True)
    out = apply_mounting(table, {"left": rot_l, "right": wxyz_from_rotation(rot_r)})
    for triple in (ACC, GYR, MAG):
        before = table.select(triple).to_numpy()
        after = out.select(triple).to_numpy()
        np.testing.assert_allclose(after[:n], rot_l.apply(before[:n]), atol=1e-12)
        np.testing.assert_allclose(after[n:], rot_r.apply(before[n:]), atol=1e-12)
    assert out.columns == table.columns
    assert out.select(T, FOOT, ATHLETE_ID).equals(table.select(T, FOOT, ATHLETE_ID))
    with pytest.raises(AlignmentError, match="'right'"):
        apply_mounting(table, {"left": rot_l})


def test_apply_mounting_with_the_estimate_levels_the_foot_flats():
    acc, gyr = synthetic_walk()
    truth = Rotation.from_euler("zyx", [70.0, -35.0, 120.0], degrees=True)
    acc_dev, gyr_dev = mount(acc, gyr, truth)
    table = pl.DataFrame(
        {
            FOOT: ["left"] * len(acc),
            **dict(zip(ACC, acc_dev.T, strict=True)),
            **dict(zip(GYR, gyr_dev.T, strict=True)),
        }
    )
    est = MountingEstimator(WALKING).estimate(acc_dev, gyr_dev, 200.0)
    out = apply_mounting(table, {"left": est.rotation_})
    np.testing.assert_allclose(out.select(ACC).to_numpy(), acc, atol=1e-3)
    np.testing.assert_allclose(out.select(GYR).to_numpy(), gyr, atol=1e-2)


def test_profile_mounting_is_optional():
    assert profile_rotation(DEFAULT_PROFILE) is None
    q = wxyz_from_rotation(Rotation.from_euler("x", 30.0, degrees=True))
    fixed = DeviceProfile(name="holder", mounting_wxyz=tuple(q))
    assert np.degrees(profile_rotation(fixed).magnitude()) == pytest.approx(30.0)


@pytest.mark.real_data
@pytest.mark.parametrize("foot", ["left", "right"])
def test_rate_does_not_matter(real_data, foot):
    """imu_sample at 204.8 Hz and decimated to 102.4 and 51.2 Hz give the same mounting (0.5-1.2 deg)."""
    acc, gyr = read_foot(real_data, "imu_sample.csv", foot)
    full = MountingEstimator().estimate(acc, gyr, 204.8).rotation_
    for step in (2, 4):
        decimated = MountingEstimator().estimate(acc[::step], gyr[::step], 204.8 / step).rotation_
        assert angle_deg(decimated, full) < 2.0


# --- the simulator's true mounting ----------------------------------------------------------------
@pytest.mark.parametrize("activity", ["walk", "run", "mixed"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_simulator_mounting_is_recovered(activity, seed):
    """Simulated shoe pods (noise, biases, ADC, turns) mounted a few to 15 deg off on each axis.

    The estimator's heading is the walking direction at foot-flat, so the shoes here point along
    it (toe_out_deg=0; a toed-out shoe's axis lies outward of it by the toe-out, issue 15).
    Measured errors 0.07-0.52 deg over walk/run/mixed seeds 0-2 (0.2-1.7 deg before the gyro
    bias was removed from the dead reckoning and gravity weighted by stillness); the gyro bias is
    recovered within 0.05 deg/s. With the issue-15 simulator (push-off about the oblique MTP axis,
    1.5 deg stride-to-stride toe-out, gyro gain errors, impact rocking): median 0.53, max 1.10 deg
    (0.90 with a perfect gyro), bias within 0.13 deg/s (the push-off now rolls from heel-off on,
    at the edge of the still periods).
    """
    from strideflow.hardware.simulator import SimulationSettings, Simulator

    sim = Simulator(
        SimulationSettings(
            activity=activity, duration_s=40.0, seed=seed, keep_orientation=False, toe_out_deg=0.0
        )
    ).simulate()
    for foot in ("left", "right"):
        part = sim.samples_.filter(pl.col(FOOT) == foot)
        est = MountingEstimator(WALKING).estimate(
            part.select(ACC).to_numpy(), part.select(GYR).to_numpy(), 200.0
        )
        # sim.mounting_ maps foot-frame vectors into the device frame; rotation_ is the inverse
        assert angle_deg(est.rotation_, sim.mounting_[foot].inv()) < 1.3, (activity, seed, foot)
        np.testing.assert_allclose(est.gyr_bias_dps_, sim.errors_[foot].gyr_bias_dps, atol=0.15)
        assert np.degrees(sim.mounting_[foot].magnitude()) > 2.0  # there was something to find
