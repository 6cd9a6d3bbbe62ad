"""The compliant pod mount (issue 17 item 5): the pod tilts on the shoe as stated, exactly, and only when on.

`kinematics` module doc: tau d' + d = D tanh(-kappa alpha_xy / D) (alpha the shoe's angular acceleration,
body frame; D the tilt at which the pod meets the upper),
the sensor frame R M with M = Rx(a) Ry(b) turning about the pod's base `MOUNT_PIVOT_M` below the sensor.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

from strideflow.hardware.schema import STANDARD_GRAVITY_MPS2
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.hardware.simulator.kinematics import (
    MOUNT_COMPLIANCE_S2,
    MOUNT_MAX_TILT_RAD,
    MOUNT_TIME_CONSTANT_S,
    FootMotion,
    _body_rate,
)

# sha256 of a 15 s walk's samples and truth orientation (seed 3, every default) made by the simulator
# before the compliant mount existed (commit e1e8f0a): the mount off gives those signals bit for bit.
# NumPy's sin/cos/exp kernels round differently with and without AVX-512, so e1e8f0a gives one digest
# per kind of machine (the second computed by e1e8f0a's own simulator on an AVX2-only EPYC).
RIGID_WALK_SHA256 = {
    True: "7397e61e8a3d3e7210c1be835d27594ece688bf389fb3f9897f1035cfebab465",  # AVX-512
    False: "11774a972b61ebd1e7576e2ba77f3290fe23f476121baabe42d70d7dd8eb77d8",  # AVX2
}
KEYS = ("athlete_id", "session_id", "foot")


def _digest(sim: Simulator) -> str:
    h = hashlib.sha256()
    h.update(sim.samples_.drop(list(KEYS)).to_numpy().tobytes())
    orient = sim.truth_orientation_
    h.update(orient.select([c for c in orient.columns if c not in KEYS]).to_numpy().tobytes())
    return h.hexdigest()


def test_mount_off_gives_the_rigid_signals_bit_for_bit():
    sim = Simulator(SimulationSettings(activity="walk", duration_s=15.0, seed=3)).simulate()
    from numpy._core._multiarray_umath import __cpu_features__

    assert _digest(sim) == RIGID_WALK_SHA256[bool(__cpu_features__.get("AVX512F"))]


@pytest.fixture(scope="module", params=["walk", "run"])
def pair(request) -> tuple[FootMotion, FootMotion]:
    """The same left foot's motion on a compliant mount and rigid (no impact rocking in either)."""
    settings = SimulationSettings(
        activity=request.param,
        duration_s=15.0,
        seed=5,
        impact_gyro=False,
        keep_orientation=False,
        mount_compliance_s2=MOUNT_COMPLIANCE_S2,
    )
    compliant = Simulator(settings).simulate().motions_["left"]
    rigid = FootMotion(compliant.timeline, compliant.athlete, "left", impact_gyro=False)
    return compliant, rigid


def test_pod_tilt_against_the_shoe_is_the_stated_model(pair):
    compliant, rigid = pair
    kappa, tau = MOUNT_COMPLIANCE_S2, MOUNT_TIME_CONSTANT_S
    t = np.arange(2.0, 12.0, 0.005)
    pod = Rotation.from_quat(compliant.evaluate(t).quat_wxyz[:, [1, 2, 3, 0]])
    shoe = Rotation.from_quat(rigid.evaluate(t).quat_wxyz[:, [1, 2, 3, 0]])
    m = (shoe.inv() * pod).as_matrix()
    # M = Rx(a) Ry(b): M[2,1] = sin a, M[1,1] = cos a; M[0,2] = sin b, M[0,0] = cos b
    tilt = np.stack([np.arctan2(m[:, 2, 1], m[:, 1, 1]), np.arctan2(m[:, 0, 2], m[:, 0, 0])], axis=1)
    np.testing.assert_allclose(compliant.mount_tilt_rad(t), tilt, atol=1e-12)
    assert np.abs(tilt).max() <= MOUNT_MAX_TILT_RAD * (1.0 + 1e-6)  # a lag of a load within D

    # the equation solved independently: midpoint rule on a 0.1 ms grid (the simulator's: exact for an
    # input linear between the points of a 1 ms grid)
    h = 1e-4
    s = np.arange(1.5, 12.0 + h, h)
    _, wd = _body_rate(*rigid.angles(s[:-1] + 0.5 * h))
    e = np.exp(-h / tau)
    load = MOUNT_MAX_TILT_RAD * np.tanh(-kappa * wd[:, :2] / MOUNT_MAX_TILT_RAD)
    start = compliant.mount_tilt_rad(s[:1])[0]
    solved = np.stack(
        [
            np.concatenate(
                [start[j : j + 1], lfilter([1.0 - e], [1.0, -e], load[:, j], zi=[e * start[j]])[0]]
            )
            for j in (0, 1)
        ],
        axis=1,
    )
    model = np.stack([np.interp(t, s, solved[:, j]) for j in (0, 1)], axis=1)
    peak = np.abs(model).max(axis=0)
    assert np.all(peak > np.deg2rad(1.0)), "the model's tilt must be of degrees to be tested"
    # within 2 % of the peak (~0.04 deg): the simulator holds the load linear over 1 ms, the stop makes
    # it bend faster than that at the swing's peaks
    np.testing.assert_array_less(np.abs(model - tilt).max(axis=0), 0.02 * peak)


def test_gyro_and_accelerometer_are_the_pod_frames(pair):
    """The gyro is the body rate of the truth (pod) orientation, the accelerometer the second
    derivative of the truth position plus gravity, in the pod's frame: exact, not just the shoe's."""
    compliant, rigid = pair
    t = np.arange(2.0, 12.0, 0.0037)
    h = 1e-5
    now, before, after = compliant.evaluate(t), compliant.evaluate(t - h), compliant.evaluate(t + h)
    rot = Rotation.from_quat(now.quat_wxyz[:, [1, 2, 3, 0]])
    q_a = Rotation.from_quat(after.quat_wxyz[:, [1, 2, 3, 0]])
    q_b = Rotation.from_quat(before.quat_wxyz[:, [1, 2, 3, 0]])
    w = (q_b.inv() * q_a).as_rotvec() / (2 * h)
    np.testing.assert_allclose(w, np.deg2rad(now.gyr_dps), atol=2e-4)
    # central differences of the velocity (exact up to O(h) where the jerk jumps, at the spline knots)
    h = 2e-6
    before, after = compliant.evaluate(t - h), compliant.evaluate(t + h)
    np.testing.assert_allclose((after.pos_m - before.pos_m) / (2 * h), now.vel_mps, atol=1e-6)
    acc_world = (after.vel_mps - before.vel_mps) / (2 * h) + np.array([0.0, 0.0, STANDARD_GRAVITY_MPS2])
    np.testing.assert_allclose(rot.inv().apply(acc_world), now.acc_mps2, atol=0.05)
    # and the mount moved them: the rigid shoe's gyro differs by the tilt's rate
    assert np.abs(now.gyr_dps - rigid.evaluate(t).gyr_dps).max() > 5.0
