"""strideflow's Madgwick and Mahony against the `ahrs` package (the reference), quaternion by quaternion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ahrs.filters import Madgwick as AhrsMadgwick
from ahrs.filters import Mahony as AhrsMahony

from strideflow.benchmarks._common import synthetic_imu
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.mahony import Mahony
from strideflow.fusion.settings import MadgwickSettings, MahonySettings
from strideflow.hardware.schema import ACC, GYR

TOL = 1e-6
N_REAL = 3000  # per sensor: ahrs runs ~25k samples/s, this keeps the whole file a few seconds


def max_quat_diff(q: np.ndarray, ref: np.ndarray) -> float:
    """Largest component difference after resolving the q / -q ambiguity per sample."""
    sign = np.where(np.sum(q * ref, axis=1, keepdims=True) < 0, -1.0, 1.0)
    return float(np.abs(q * sign - ref).max())


def real_sensors(folder):
    """(name, rate, acc, gyr) of every sensor of every real recording."""
    out = []
    for name, rate in [
        ("imu_sample.csv", 204.8),
        ("imu_sample_healthy_stair_up.csv", 204.8),
        ("imu_sample_healthy_stair_down.csv", 204.8),
        ("imu_sample_ic_stride.csv", 102.4),
    ]:
        df = pd.read_csv(folder / name, header=[0, 1], index_col=0)
        for sensor in df.columns.get_level_values(0).unique():
            part = df[sensor]
            out.append((f"{name}:{sensor}", rate, part[list(ACC)].to_numpy(), part[list(GYR)].to_numpy()))
    for name in ("imu_sample_ms_left.csv", "imu_sample_ms_right.csv"):
        df = pd.read_csv(folder / name, index_col=0)
        out.append((name, 102.4, df[list(ACC)].to_numpy(), df[list(GYR)].to_numpy()))
    return out


@pytest.mark.real_data
def test_real_recordings_match_ahrs(real_data):
    sensors = real_sensors(real_data)
    assert len(sensors) == 10
    for name, rate, acc, gyr in sensors:
        acc, gyr = acc[:N_REAL], gyr[:N_REAL]
        assert np.abs(gyr).max() > 100, f"{name}: expected walking data in deg/s"
        ours = Madgwick().estimate(acc, gyr, sampling_rate_hz=rate).orientation_
        ref = AhrsMadgwick(gyr=np.radians(gyr), acc=acc, frequency=rate).Q
        assert max_quat_diff(ours, ref) < TOL, name
        ours = Mahony().estimate(acc, gyr, sampling_rate_hz=rate).orientation_
        ref = AhrsMahony(gyr=np.radians(gyr), acc=acc, frequency=rate).Q
        assert max_quat_diff(ours, ref) < TOL, name


@pytest.fixture(scope="module")
def synth():
    return synthetic_imu(2500, 100.0, seed=3, rate_dps=250.0)


@pytest.mark.parametrize("gain", [None, 0.1, 0.5])
def test_madgwick_6axis_matches_ahrs(synth, gain):
    acc, gyr = synth["acc_mps2"], synth["gyr_dps"]
    ours = Madgwick(MadgwickSettings(gain=gain)).estimate(acc, gyr, sampling_rate_hz=100.0).orientation_
    kwargs = {} if gain is None else {"gain": gain}
    ref = AhrsMadgwick(gyr=np.radians(gyr), acc=acc, frequency=100.0, **kwargs).Q
    assert max_quat_diff(ours, ref) < TOL


@pytest.mark.parametrize("gain", [None, 0.2])
def test_madgwick_9axis_matches_ahrs(synth, gain):
    acc, gyr, mag = synth["acc_mps2"], synth["gyr_dps"], synth["mag_ut"]
    f = Madgwick(MadgwickSettings(gain=gain)).estimate(acc, gyr, sampling_rate_hz=100.0, mag_ut=mag)
    kwargs = {} if gain is None else {"gain": gain}
    ref = AhrsMadgwick(gyr=np.radians(gyr), acc=acc, mag=mag, frequency=100.0, **kwargs).Q
    assert f.gain_ == (0.041 if gain is None else gain)
    assert max_quat_diff(f.orientation_, ref) < TOL


@pytest.mark.parametrize(("k_p", "k_i"), [(1.0, 0.3), (0.4, 0.05), (3.0, 1.0)])
@pytest.mark.parametrize("with_mag", [False, True])
def test_mahony_matches_ahrs(synth, k_p, k_i, with_mag):
    acc, gyr = synth["acc_mps2"], synth["gyr_dps"]
    mag = synth["mag_ut"] if with_mag else None
    f = Mahony(MahonySettings(k_p=k_p, k_i=k_i)).estimate(acc, gyr, sampling_rate_hz=100.0, mag_ut=mag)
    ref_filter = AhrsMahony(gyr=np.radians(gyr), acc=acc, mag=mag, frequency=100.0, k_P=k_p, k_I=k_i)
    assert max_quat_diff(f.orientation_, ref_filter.Q) < TOL
    np.testing.assert_allclose(np.radians(f.bias_dps_), ref_filter.b, atol=1e-9)


def test_irregular_dt_matches_ahrs_per_sample_updates(synth):
    acc, gyr = synth["acc_mps2"][:800], synth["gyr_dps"][:800]
    rng = np.random.default_rng(5)
    dt = rng.uniform(0.004, 0.02, 800)
    q0 = np.array([0.9, 0.1, -0.2, 0.3])
    ours_mad = Madgwick().estimate(acc, gyr, dt_s=dt, q0=q0).orientation_
    ours_mah = Mahony().estimate(acc, gyr, dt_s=dt[1:], q0=q0 / np.linalg.norm(q0)).orientation_
    ref_mad, ref_mah = AhrsMadgwick(), AhrsMahony()
    q_mad = np.empty((800, 4))
    q_mah = np.empty((800, 4))
    q_mad[0] = q_mah[0] = q0 / np.linalg.norm(q0)
    g = np.radians(gyr)
    for i in range(1, 800):
        q_mad[i] = ref_mad.updateIMU(q_mad[i - 1], g[i], acc[i], dt=dt[i])
        q_mah[i] = ref_mah.updateIMU(q_mah[i - 1], g[i], acc[i], dt=dt[i])
    assert max_quat_diff(ours_mad, q_mad) < TOL
    assert max_quat_diff(ours_mah, q_mah) < TOL


def test_degenerate_samples_follow_ahrs():
    """Zero gyro keeps q, zero acc integrates the gyro only, zero field falls back to 6-axis: as ahrs."""
    rng = np.random.default_rng(9)
    acc = rng.normal(0, 1, (200, 3)) + [0, 0, 9.8]
    gyr = rng.normal(0, 30, (200, 3))
    mag = rng.normal(0, 2, (200, 3)) + [0, 20, -35]
    gyr[10:15] = 0.0
    acc[20:25] = 0.0
    mag[30:35] = 0.0
    for ours, ref in [
        (
            Madgwick().estimate(acc, gyr, 50.0).orientation_,
            AhrsMadgwick(gyr=np.radians(gyr), acc=acc, frequency=50.0).Q,
        ),
        (
            Madgwick().estimate(acc, gyr, 50.0, mag_ut=mag).orientation_,
            AhrsMadgwick(gyr=np.radians(gyr), acc=acc, mag=mag, frequency=50.0).Q,
        ),
        (
            Mahony().estimate(acc, gyr, 50.0).orientation_,
            AhrsMahony(gyr=np.radians(gyr), acc=acc, frequency=50.0).Q,
        ),
        (
            Mahony().estimate(acc, gyr, 50.0, mag_ut=mag).orientation_,
            AhrsMahony(gyr=np.radians(gyr), acc=acc, mag=mag, frequency=50.0).Q,
        ),
    ]:
        assert max_quat_diff(ours, ref) < TOL
        np.testing.assert_array_equal(ours[10], ours[14])  # gyro at rest: no change at all


def test_reference_check_has_teeth(synth):
    """A slightly different gain must already break the 1e-6 agreement (the comparison is sensitive)."""
    acc, gyr = synth["acc_mps2"], synth["gyr_dps"]
    ours = Madgwick(MadgwickSettings(gain=0.034)).estimate(acc, gyr, sampling_rate_hz=100.0).orientation_
    ref = AhrsMadgwick(gyr=np.radians(gyr), acc=acc, frequency=100.0).Q
    assert max_quat_diff(ours, ref) > 1e-4
