"""Physics of the filters (known answers, truth), the many-sensor variant and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from strideflow.benchmarks._common import synthetic_imu
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.mahony import Mahony
from strideflow.fusion.settings import (
    AccelerationRejection,
    FusionInputError,
    MadgwickSettings,
    MahonySettings,
)
from strideflow.hardware.frames import roll_pitch_deg, rotation_from_wxyz
from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2 as G

FILTERS = [Madgwick, Mahony]


def tilted_static(roll_deg: float, n: int, rng, gyro_noise_dps: float = 0.05):
    """A still sensor rolled about x: gravity reads (0, g sin r, g cos r); small gyro noise."""
    r = np.radians(roll_deg)
    acc = np.tile([0.0, G * np.sin(r), G * np.cos(r)], (n, 1)) + rng.normal(0, 0.02, (n, 3))
    gyr = rng.normal(0, gyro_noise_dps, (n, 3))
    return acc, gyr


@pytest.mark.parametrize("cls", FILTERS)
def test_static_tilt_converges_to_roll_30(cls):
    rng = np.random.default_rng(1)
    acc, gyr = tilted_static(30.0, 4000, rng)  # 40 s at 100 Hz from a level start
    q = cls().estimate(acc, gyr, sampling_rate_hz=100.0, q0=[1, 0, 0, 0]).orientation_
    roll, pitch = roll_pitch_deg(q)
    assert abs(roll[0]) < 1e-9  # it really started level
    assert abs(roll[-200:].mean() - 30.0) < 0.3
    assert np.abs(pitch[-200:]).max() < 0.3


@pytest.mark.parametrize("cls", FILTERS)
def test_first_sample_attitude_from_gravity(cls):
    rng = np.random.default_rng(2)
    acc, gyr = tilted_static(-20.0, 10, rng, gyro_noise_dps=0.0)
    acc[0] = [G * np.sin(np.radians(15)), 0.0, G * np.cos(np.radians(15))]  # toes up 15 deg: x sees up
    roll, pitch = roll_pitch_deg(cls().estimate(acc, gyr, 100.0).orientation_[0])
    assert roll == pytest.approx(0.0, abs=1e-9)
    assert pitch == pytest.approx(15.0, abs=1e-9)


GYRO_ONLY = {Madgwick: MadgwickSettings(gain=0.0), Mahony: MahonySettings(k_p=0.0, k_i=0.0)}


@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize(
    ("axis", "rate_dps", "seconds", "gyro_only"),
    [(2, 90.0, 2.0, False), (1, -45.0, 1.0, True), (0, 60.0, 0.5, True), (2, -250.0, 1.2, True)],
)
def test_constant_rate_integrates_to_angle(cls, axis, rate_dps, seconds, gyro_only):
    """About gravity (z) with the default gains; about tilting axes with the gyroscope alone, because
    the accelerometer correction of ahrs's formulation compares q(k-1) with a(k) and so leads by up
    to one sample (rate x dt) whenever the tilt changes."""
    rate_hz = 200.0
    n = int(seconds * rate_hz) + 1
    omega = np.zeros(3)
    omega[axis] = rate_dps
    truth = rotation_from_wxyz([1.0, 0, 0, 0]) * __import__("scipy").spatial.transform.Rotation.from_rotvec(
        np.radians(omega)[None] * (np.arange(n)[:, None] / rate_hz)
    )
    acc = truth.inv().apply([0.0, 0.0, G])  # gravity seen by the turning sensor: consistent data
    gyr = np.tile(omega, (n, 1))
    f = cls(GYRO_ONLY[cls]) if gyro_only else cls()
    q = f.estimate(acc, gyr, sampling_rate_hz=rate_hz).orientation_
    turned = rotation_from_wxyz(q[-1]) * rotation_from_wxyz(q[0]).inv()
    angle = np.degrees(np.linalg.norm(turned.as_rotvec()))
    expected = abs(rate_dps) * seconds % 360
    assert angle == pytest.approx(min(expected, 360 - expected), abs=0.05)
    err = (rotation_from_wxyz(q[-1]).inv() * truth[-1]).magnitude()
    assert np.degrees(err) < 0.05


@pytest.mark.parametrize("cls", FILTERS)
def test_irregular_steps_integrate_to_angle(cls):
    rng = np.random.default_rng(4)
    dt = rng.uniform(0.002, 0.012, 300)
    dt[0] = np.nan  # never used: the first sample is the start
    gyr = np.tile([0.0, 0.0, 100.0], (300, 1))
    acc = np.tile([0.0, 0.0, G], (300, 1))
    q = cls().estimate(acc, gyr, dt_s=dt).orientation_
    yaw = np.degrees(2 * np.arctan2(q[-1, 3], q[-1, 0]))
    wrap = (yaw - 100.0 * dt[1:].sum() + 180) % 360 - 180
    assert abs(wrap) < 0.05


def test_tracks_truth_on_synthetic_motion():
    d = synthetic_imu(6000, 200.0, seed=5, rate_dps=250.0, lin_acc_mps2=2.0)
    for f in (Madgwick(MadgwickSettings(gain=0.1)), Mahony()):
        q = f.estimate(d["acc_mps2"], d["gyr_dps"], 200.0, q0=d["q_true"][0]).orientation_
        roll, pitch = roll_pitch_deg(q)
        roll_t, pitch_t = roll_pitch_deg(d["q_true"])
        droll = (roll - roll_t + 180) % 360 - 180
        assert np.sqrt(np.mean(droll**2)) < 3.0
        assert np.sqrt(np.mean((pitch - pitch_t) ** 2)) < 3.0


def impacts(n: int, rate_hz: float, rng):
    """Standing tilted 10 deg (roll) with a 12 g spike of random direction every 0.5 s (30 ms long)."""
    acc, gyr = tilted_static(10.0, n, rng, gyro_noise_dps=0.2)
    period, width = int(0.5 * rate_hz), int(0.03 * rate_hz)
    for start in range(period // 2, n, period):
        direction = rng.normal(size=3)
        acc[start : start + width] += 12 * G * direction / np.linalg.norm(direction)
    return acc, gyr


@pytest.mark.parametrize(
    ("cls", "cfg"),
    [(Madgwick, lambda **kw: MadgwickSettings(gain=0.3, **kw)), (Mahony, MahonySettings)],
)
def test_acceleration_rejection_ignores_impacts(cls, cfg):
    # Madgwick with a brisk gain: at 0.033 its normalised gradient step already caps what an impact can do
    rng = np.random.default_rng(8)
    acc, gyr = impacts(3000, 200.0, rng)
    q0 = rotation_from_wxyz([1, 0, 0, 0]).from_euler("x", 10, degrees=True).as_quat()[[3, 0, 1, 2]]
    on = cls(cfg(acc_rejection=AccelerationRejection())).estimate(acc, gyr, 200.0, q0=q0).orientation_
    off = cls(cfg()).estimate(acc, gyr, 200.0, q0=q0).orientation_
    err_on = np.abs(np.array(roll_pitch_deg(on)) - [[10.0], [0.0]]).max()
    err_off = np.abs(np.array(roll_pitch_deg(off)) - [[10.0], [0.0]]).max()
    assert err_on < 0.5
    assert err_off > 2 * err_on  # the impacts do hurt without rejection: the check has teeth


@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize("with_mag", [False, True])
def test_many_sensors_equal_single_runs_exactly(cls, with_mag):
    sensors = [synthetic_imu(700, 100.0, seed=s, rate_dps=200.0) for s in range(5)]
    acc = np.stack([d["acc_mps2"] for d in sensors])
    gyr = np.stack([d["gyr_dps"] for d in sensors])
    mag = np.stack([d["mag_ut"] for d in sensors]) if with_mag else None
    rates = np.array([100.0, 50.0, 200.0, 100.0, 102.4])
    many = cls().estimate_many(acc, gyr, rates, mag_ut=mag)
    assert many.orientation_.shape == (5, 700, 4)
    for s in range(5):
        one = cls().estimate(acc[s], gyr[s], rates[s], mag_ut=None if mag is None else mag[s])
        np.testing.assert_array_equal(many.orientation_[s], one.orientation_)
        if cls is Mahony:
            np.testing.assert_array_equal(many.bias_dps_[s], one.bias_dps_)


@pytest.mark.parametrize("cls", FILTERS)
def test_many_sensors_with_dt_and_q0(cls):
    sensors = [synthetic_imu(300, 100.0, seed=s) for s in range(3)]
    acc = np.stack([d["acc_mps2"] for d in sensors])
    gyr = np.stack([d["gyr_dps"] for d in sensors])
    dt = np.random.default_rng(0).uniform(0.005, 0.015, (3, 300))
    q0 = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.5, 0.5, 0.5, 0.5]])
    many = cls().estimate_many(acc, gyr, dt_s=dt, q0=q0).orientation_
    for s in range(3):
        one = cls().estimate(acc[s], gyr[s], dt_s=dt[s], q0=q0[s]).orientation_
        np.testing.assert_array_equal(many[s], one)


def test_output_is_unit_and_scalar_first():
    d = synthetic_imu(500, 100.0, seed=1)
    q = Madgwick().estimate(d["acc_mps2"], d["gyr_dps"], 100.0, q0=[2.0, 0, 0, 0]).orientation_
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(q[0], [1.0, 0, 0, 0])


@pytest.mark.parametrize("cls", FILTERS)
def test_bad_inputs_raise_clear_errors(cls):
    acc = np.tile([0.0, 0.0, G], (10, 1))
    gyr = np.zeros((10, 3))
    with pytest.raises(FusionInputError, match="shape"):
        cls().estimate(acc[:, :2], gyr, 100.0)
    with pytest.raises(FusionInputError, match="expected 10"):
        cls().estimate(acc, gyr[:9], 100.0)
    bad = acc.copy()
    bad[4, 2] = np.inf
    with pytest.raises(FusionInputError, match=r"non-finite value at index \(4, 2\)"):
        cls().estimate(bad, gyr, 100.0)
    with pytest.raises(FusionInputError, match="sampling_rate_hz"):
        cls().estimate(acc, gyr)
    with pytest.raises(FusionInputError, match="sampling_rate_hz"):
        cls().estimate(acc, gyr, -5.0)
    with pytest.raises(FusionInputError, match="dt_s"):
        cls().estimate(acc, gyr, dt_s=np.zeros(10))
    with pytest.raises(FusionInputError, match="q0"):
        cls().estimate(acc, gyr, 100.0, q0=[0, 0, 0, 0])
    assert cls().estimate(np.empty((0, 3)), np.empty((0, 3)), 100.0).orientation_.shape == (0, 4)


def test_settings_validate():
    with pytest.raises(ValueError):
        MadgwickSettings(gain=-1.0)
    with pytest.raises(ValueError):
        MahonySettings(k_p=float("nan"))
    with pytest.raises(ValueError):
        AccelerationRejection(threshold_mps2=0.0)
    assert MadgwickSettings().gain_for(False) == 0.033
    assert MadgwickSettings().gain_for(True) == 0.041
