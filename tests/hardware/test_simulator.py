"""The simulator is the ground truth of the project: its signals must be physically consistent."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.integrate import cumulative_trapezoid
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from strideflow.hardware import schema as S
from strideflow.hardware.frames import rotation_from_wxyz
from strideflow.hardware.profiles import DEFAULT_PROFILE, PROFILES
from strideflow.hardware.simulator import AthleteParams, SimulationSettings, Simulator, write_dataset
from strideflow.hardware.simulator.kinematics import QuinticHermite
from strideflow.hardware.simulator.params import STRIDE_LIMITS, GaitParams, sample_athlete

G = S.STANDARD_GRAVITY_MPS2
# The default pod has gyro gain errors (issue 15); the exact-signal checks need a perfect one.
IDEAL_GYRO = replace(DEFAULT_PROFILE, name="ideal-gyro", gyr_scale_error=0.0, gyr_misalignment_deg=0.0)


def _exact(activity: str, rate: float = 1000.0, duration: float = 40.0, seed: int = 5, **kw) -> Simulator:
    """Noise-free, unmounted, unquantised simulation with a perfect gyro: the signals are the exact motion."""
    settings = SimulationSettings(
        activity=activity,
        duration_s=duration,
        sampling_rate_hz=rate,
        seed=seed,
        noise=False,
        mounting=False,
        adc=False,
        **{"profile": IDEAL_GYRO, **kw},
    )
    return Simulator(settings).simulate()


@pytest.fixture(scope="module", params=["walk", "run"])
def exact(request) -> Simulator:
    return _exact(request.param)


def _foot(df: pl.DataFrame, foot: str) -> pl.DataFrame:
    return df.filter(pl.col(S.FOOT) == foot)


def test_quintic_hermite_meets_its_knots():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.uniform(0.1, 1.0, 6))
    y, dy, d2y = rng.normal(size=(3, 6))
    f, df, d2f = QuinticHermite(x, y, dy, d2y).evaluate(x[:-1] + 1e-12)
    np.testing.assert_allclose(f, y[:-1], atol=1e-9)
    np.testing.assert_allclose(df, dy[:-1], atol=1e-6)
    np.testing.assert_allclose(d2f, d2y[:-1], atol=1e-4)
    # derivatives are the derivatives of the value (central differences)
    t = np.linspace(x[0] + 0.01, x[-1] - 0.01, 500)
    h = 1e-5
    spline = QuinticHermite(x, y, dy, d2y)
    num = (spline.evaluate(t + h)[0] - spline.evaluate(t - h)[0]) / (2 * h)
    np.testing.assert_allclose(spline.evaluate(t)[1], num, atol=1e-5)


def test_gyro_integrates_to_the_true_orientation(exact):
    """Strapdown integration of the noise-free gyro from each IC stays within 0.1 deg by the next IC."""
    for foot in S.FEET:
        smp = _foot(exact.samples_, foot)
        q_true = rotation_from_wxyz(_foot(exact.truth_orientation_, foot).select(S.QUAT).to_numpy())
        w = np.deg2rad(smp.select(S.GYR).to_numpy())
        t = smp[S.T].to_numpy()
        dt = t[1] - t[0]
        strides = _foot(exact.truth_strides_, foot)
        i0 = np.searchsorted(t, strides[S.IC_T].to_numpy())
        i1 = np.searchsorted(t, strides[S.NEXT_IC_T].to_numpy())
        length = int((i1 - i0).max())
        q = q_true[i0]
        for j in range(length):
            a, b = w[np.minimum(i0 + j, len(t) - 1)], w[np.minimum(i0 + j + 1, len(t) - 1)]
            # two-sample rotation vector with the coning correction (4th order for smooth rates)
            step = 0.5 * (a + b) * dt + np.cross(a, b) * dt * dt / 12.0
            step[i0 + j >= i1] = 0.0
            q = q * Rotation.from_rotvec(step)
        err_deg = np.rad2deg((q.inv() * q_true[i1]).magnitude())
        assert len(err_deg) > 10
        assert err_deg.max() < 0.1, f"{foot}: {err_deg.max():.3f} deg"


def test_gyro_is_the_body_rate_of_the_orientation(exact):
    """Independent of the Euler-rate algebra: finite differences of the true quaternions."""
    smp = _foot(exact.samples_, "left")
    rot = rotation_from_wxyz(_foot(exact.truth_orientation_, "left").select(S.QUAT).to_numpy())
    dt = 1.0 / exact.settings.sampling_rate_hz
    w_fd = np.rad2deg((rot[:-1].inv() * rot[1:]).as_rotvec()) / dt
    t = smp[S.T].to_numpy()
    w_mid = exact.motions_["left"].evaluate(0.5 * (t[:-1] + t[1:])).gyr_dps
    assert np.abs(w_mid).max() > 300.0
    err = np.abs(w_fd - w_mid)
    assert np.median(err) < 0.01 and np.percentile(err, 99.9) < 0.5


def test_standing_foot_reads_plus_g_on_z():
    sim = _exact("walk", rate=200.0, duration=20.0)
    for foot in S.FEET:
        still = _foot(sim.samples_, foot).filter(pl.col(S.T) < 1.5)
        acc = still.select(S.ACC).to_numpy()
        np.testing.assert_allclose(acc, np.tile([0.0, 0.0, G], (len(acc), 1)), atol=1e-9)
        assert np.abs(still.select(S.GYR).to_numpy()).max() < 1e-9
        assert abs(acc[:, 2].mean() - 9.81) < 0.01


def test_foot_flat_is_still(exact):
    """Between foot-flat start and heel-off the sensor has zero angular and linear velocity."""
    for foot in S.FEET:
        tl = exact.timelines_[foot]
        orient = _foot(exact.truth_orientation_, foot)
        gyr = _foot(exact.samples_, foot).select(S.GYR).to_numpy()
        t = orient[S.T].to_numpy()
        still = np.zeros(len(t), bool)
        for a, b in zip(tl.ffs[1:], tl.ho[1:], strict=True):
            if np.isfinite(b):
                still |= (t > a + 0.002) & (t < b - 0.002)
        assert still.sum() > 1000
        vel = orient.select(S.VEL).to_numpy()[still]
        assert np.abs(vel).max() < 1e-3  # m/s (the impact ringing has died out)
        # the pod's impact rocking (issue 15) leaves a tail of up to ~0.01 deg/s into the first ms of
        # a running foot-flat, well below the 0.15 deg/s gyro noise; 0.2 s after IC it is gone
        assert np.abs(gyr[still]).max() < 0.05
        late = still & (t - tl.ic[np.clip(np.searchsorted(tl.ic, t) - 1, 0, None)] > 0.2)
        assert late.sum() > 500
        assert np.abs(gyr[late]).max() < 1e-6


def test_accelerometer_double_integrates_to_the_displacement(exact):
    """R f - g, integrated twice from one foot-flat to the next, gives the true stride displacement."""
    for foot in S.FEET:
        smp = _foot(exact.samples_, foot)
        orient = _foot(exact.truth_orientation_, foot)
        t = smp[S.T].to_numpy()
        a_world = rotation_from_wxyz(orient.select(S.QUAT).to_numpy()).apply(
            np.array(smp.select(S.ACC).to_numpy())
        )
        a_world[:, 2] -= G
        pos = orient.select(S.POS).to_numpy()
        strides = _foot(exact.truth_strides_, foot)
        errors = []
        i0s = np.searchsorted(t, strides[S.FOOT_FLAT_T].to_numpy())
        i1s = np.searchsorted(t, strides[S.FOOT_FLAT_T].shift(-1).to_numpy()[:-1])
        for i0, i1 in zip(i0s[:-1], i1s, strict=True):
            if t[i1] - t[i0] > 1.5 * strides[S.STRIDE_TIME_S].median():
                continue  # the next truth stride is in the next bout
            v = cumulative_trapezoid(a_world[i0 : i1 + 1], t[i0 : i1 + 1], axis=0, initial=0.0)
            p = cumulative_trapezoid(v, t[i0 : i1 + 1], axis=0, initial=0.0)
            true = pos[i1] - pos[i0]
            errors.append(np.linalg.norm(p[-1] - true))
            assert np.linalg.norm(v[-1]) < 0.01  # back to rest: no velocity drift
        errors = np.array(errors)
        lengths = strides[S.STRIDE_LENGTH_M].to_numpy()
        assert np.median(lengths) > 0.8
        assert errors.max() < 0.01, f"{foot}: max displacement error {errors.max():.4f} m"


def test_truth_matches_construction_and_definitions(exact):
    """Truth metrics follow DESIGN.md definitions and agree with the parameters the motion was built from."""
    tr = exact.truth_strides_
    assert set(S.STRIDES_SCHEMA) <= set(tr.columns)
    assert tr.schema[S.STRIDE_INDEX] == pl.Int64
    np.testing.assert_allclose(tr[S.STRIDE_TIME_S], tr[S.NEXT_IC_T] - tr[S.IC_T])
    np.testing.assert_allclose(tr[S.CADENCE_SPM], 120.0 / tr[S.STRIDE_TIME_S])
    np.testing.assert_allclose(tr[S.DUTY_FACTOR], tr[S.STANCE_TIME_S] / tr[S.STRIDE_TIME_S])
    ordered = (
        (tr[S.IC_T] < tr[S.FOOT_FLAT_T])
        & (tr[S.FOOT_FLAT_T] < tr[S.HEEL_OFF_T])
        & (tr[S.HEEL_OFF_T] < tr[S.TOE_OFF_T])
        & (tr[S.TOE_OFF_T] < tr[S.NEXT_IC_T])
    )
    assert ordered.all()
    for foot in S.FEET:
        tl = exact.timelines_[foot]
        k = np.flatnonzero(tl.gait)
        got = _foot(tr, foot)
        np.testing.assert_allclose(
            got[S.PRONATION_EXCURSION_DEG], tl.values["pronation_excursion_deg"][k], atol=0.01
        )
        np.testing.assert_allclose(
            got[S.MAX_PRONATION_VELOCITY_DPS], tl.values["max_pronation_velocity_dps"][k], rtol=0.01
        )
        np.testing.assert_allclose(
            got[S.TIME_TO_MAX_PRONATION_S], tl.values["time_to_max_pronation_s"][k], atol=0.002
        )
        np.testing.assert_allclose(
            got[S.TOE_OFF_PRONATION_DEG], tl.values["toe_off_pronation_deg"][k], atol=1e-6
        )
        np.testing.assert_allclose(got[S.TOE_OFF_ANGLE_DEG], tl.values["toe_off_angle_deg"][k], atol=1e-6)
        # max pronation inside the pronation window, before foot-flat
        assert (got[S.TIME_TO_MAX_PRONATION_S] < got[S.FOOT_FLAT_T] - got[S.IC_T]).all()
        # pronation, computed from the quaternions, peaks where the truth says
        orient = _foot(exact.truth_orientation_, foot)
        t = orient[S.T].to_numpy()
        p = orient[S.PRONATION_DEG].to_numpy()
        for row in got.head(5).iter_rows(named=True):
            win = (t >= row[S.IC_T]) & (t <= row[S.IC_T] + 0.6 * row[S.STANCE_TIME_S])
            i_ic = np.searchsorted(t, row[S.IC_T])
            assert p[win].max() - p[i_ic] == pytest.approx(row[S.PRONATION_EXCURSION_DEG], abs=0.05)


def test_peak_plantarflexion_rate_is_at_toe_off(exact):
    """The largest positive gyr_y of a stride lies within 30 ms of toe-off (real stride labels sit there)."""
    for foot in S.FEET:
        smp = _foot(exact.samples_, foot)
        t, gy = smp[S.T].to_numpy(), smp["gyr_y"].to_numpy()
        strides = _foot(exact.truth_strides_, foot).filter(pl.col(S.VALID))
        for ic, nic, to in strides.select(S.IC_T, S.NEXT_IC_T, S.TOE_OFF_T).iter_rows():
            win = (t >= ic) & (t < nic)
            assert abs(t[win][np.argmax(gy[win])] - to) < 0.030


@pytest.mark.parametrize("shape", [2.45, 3.2, 4.0])
def test_a_late_push_off_keeps_its_shape_and_peaks_at_toe_off(shape):
    """push_off_shape above one quintic's reach (the LORD walkers' late push-off): the pitch falls
    monotonically from heel-off to toe-off, its rate peaks at toe-off at shape x angle / time, and
    from a shape of 3 the pitch at 60 % of the push-off lies on x = u^shape (kinematics.py)."""
    athlete = AthleteParams(walk=GaitParams(push_off_shape=shape, variability_cv=0.0))
    sim = _exact("walk", rate=500.0, duration=20.0, athlete=athlete)
    motion = sim.motions_["left"]
    strides = _foot(sim.truth_strides_, "left").filter(pl.col(S.VALID))
    assert strides.height >= 5
    for ho, to, angle, peak in strides.select(
        S.HEEL_OFF_T, S.TOE_OFF_T, S.TOE_OFF_ANGLE_DEG, S.PUSH_OFF_RATE_DPS
    ).iter_rows():
        u = np.linspace(0.0, 1.0, 401)
        pitch, rate, _ = motion.pitch.evaluate(ho + u * (to - ho))
        x = -pitch / angle
        assert np.all(np.diff(x) > -1e-9) and np.all(np.diff(-rate) > -1e-6)
        assert peak == pytest.approx(shape * angle / (to - ho), rel=1e-3)
        assert -rate[-1] == pytest.approx(peak, rel=1e-6)
        if shape >= 3.0:
            assert x[240] == pytest.approx(0.6**shape, abs=1e-9)


def test_the_late_push_off_joins_the_quintic_one_at_its_limit():
    """Just above 2.45 the two-piece push-off is the one-piece quintic of 2.45 (no jump in the family)."""
    pitches = []
    for shape in (2.45, 2.4501):
        athlete = AthleteParams(walk=GaitParams(push_off_shape=shape, variability_cv=0.0))
        sim = _exact("walk", rate=200.0, duration=20.0, athlete=athlete)
        t = np.linspace(4.0, 12.0, 4001)
        pitches.append(sim.motions_["left"].pitch.evaluate(t)[0])
    assert np.abs(pitches[1] - pitches[0]).max() < 0.01


def test_turn_strides_are_invalid_and_turning():
    sim = _exact("walk", rate=100.0, duration=90.0, seed=2)
    tr = sim.truth_strides_
    turns = tr.filter(pl.col(S.REASON) == "turn")
    assert turns.height >= 3 and not turns[S.VALID].any()
    assert tr.filter(pl.col(S.VALID)).height > 2 * turns.height
    # a turning stride rotates the heading by ~60 deg: much yaw rate on the foot frame z axis
    orient = _foot(sim.truth_orientation_, "left")
    q = rotation_from_wxyz(orient.select(S.QUAT).to_numpy())
    heading = np.unwrap(q.as_euler("ZYX")[:, 0])
    t = orient[S.T].to_numpy()
    row = _foot(turns, "left").row(0, named=True)
    i0, i1 = np.searchsorted(t, [row[S.FOOT_FLAT_T], row[S.NEXT_IC_T] + 0.15])
    assert abs(np.rad2deg(heading[i1] - heading[i0])) == pytest.approx(60.0, abs=5.0)


def test_truth_metrics_lie_in_configured_ranges():
    rows = []
    for seed in range(6):
        athlete = sample_athlete(np.random.default_rng(seed))
        sim = Simulator(
            SimulationSettings(
                activity="mixed", duration_s=120.0, sampling_rate_hz=100.0, seed=seed, athlete=athlete
            )
        ).simulate()
        rows.append(sim.truth_strides_.with_columns(pl.lit(seed).alias("seed")))
    tr = pl.concat(rows).filter(pl.col(S.VALID))
    assert set(tr["activity"]) == {"walk", "run"}
    lo, hi = STRIDE_LIMITS["pronation_excursion_deg"]
    assert tr[S.PRONATION_EXCURSION_DEG].is_between(lo - 0.01, hi + 0.01).all()
    lo, hi = STRIDE_LIMITS["max_pronation_velocity_dps"]
    assert tr[S.MAX_PRONATION_VELOCITY_DPS].is_between(lo * 0.99, hi * 1.01).all()
    walk, run = tr.filter(pl.col("activity") == "walk"), tr.filter(pl.col("activity") == "run")
    assert walk[S.CADENCE_SPM].is_between(85, 140).all() and run[S.CADENCE_SPM].is_between(135, 205).all()
    assert (
        walk[S.DUTY_FACTOR].is_between(0.55, 0.72).all() and run[S.DUTY_FACTOR].is_between(0.28, 0.47).all()
    )
    assert run[S.SPEED_MPS].median() > 2 * walk[S.SPEED_MPS].median()
    assert walk[S.SPEED_MPS].is_between(0.9, 1.9).all()
    assert tr[S.TOE_OFF_PRONATION_DEG].is_between(-12, 12).all()
    assert (tr[S.TOE_OFF_PRONATION_DEG] > 0).any() and (tr[S.TOE_OFF_PRONATION_DEG] < 0).any()
    assert walk[S.IMPACT_G].is_between(2, 25).all() and run[S.IMPACT_G].median() > walk[S.IMPACT_G].median()
    assert set(run[S.STRIKE_TYPE]) >= {"rearfoot", "midfoot"}
    assert (tr[S.TIME_TO_MAX_PRONATION_S] < 0.6 * tr[S.STANCE_TIME_S]).all()
    # stride length and speed are consistent with the athlete's speed parameter
    assert tr[S.STRIDE_LENGTH_M].is_between(0.6, 3.5).all()


def test_sensor_model_mounting_noise_bias_and_saturation():
    athlete = AthleteParams()
    mount = Rotation.from_euler("xyz", [10.0, -5.0, 8.0], degrees=True)
    sim = Simulator(
        SimulationSettings(
            duration_s=20.0, seed=1, athlete=athlete, mounting_rotations={"left": mount, "right": mount}
        )
    ).simulate()
    still = _foot(sim.samples_, "left").filter(pl.col(S.T) < 1.5)
    acc = still.select(S.ACC).to_numpy()
    np.testing.assert_allclose(acc.mean(axis=0), mount.apply([0.0, 0.0, G]), atol=0.2)
    assert 0.005 < acc.std(axis=0).mean() < 0.1  # white noise of the profile
    gyr = still.select(S.GYR).to_numpy()
    bias = gyr.mean(axis=0)
    assert np.all((np.abs(bias) > 0.3) & (np.abs(bias) < 2.5))  # constant session bias, deg/s
    lsb = sim.settings.profile.gyr_lsb_dps
    np.testing.assert_allclose(gyr / lsb, np.round(gyr / lsb), atol=1e-6)  # quantised
    # a +-8 g, 1000 deg/s device saturates in running; those strides are flagged
    budget = PROFILES["budget-8g-1000dps"]
    run = Simulator(SimulationSettings(activity="run", duration_s=30.0, seed=3, profile=budget)).simulate()
    gyr = run.samples_.select(S.GYR).to_numpy()
    assert np.isclose(np.abs(gyr).max(), budget.gyr_range_dps, rtol=1e-3)  # push-off > 1000 deg/s
    assert (run.truth_strides_[S.REASON] == "saturation").any()


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*.*")
    }


def test_same_seed_same_files_and_sessions_drift(tmp_path):
    a = write_dataset(tmp_path / "a", athletes=2, minutes=0.4, seed=7, activity="mixed", sessions=3).parent
    b = write_dataset(tmp_path / "b", athletes=2, minutes=0.4, seed=7, activity="mixed", sessions=3).parent
    c = write_dataset(tmp_path / "c", athletes=2, minutes=0.4, seed=8, activity="mixed", sessions=3).parent
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db
    assert da["A001/S01/left.parquet"] != dc["A001/S01/left.parquet"]
    man = pl.read_csv(a / "manifest.csv")
    assert man.height == 12
    dates = man.filter((pl.col(S.ATHLETE_ID) == "A001") & (pl.col(S.FOOT) == "left"))["session_date"]
    gaps = pl.Series(dates).str.to_date().diff().drop_nulls().dt.total_days()
    assert gaps.is_between(7, 14).all()
    params = pl.read_parquet(a / "truth_params.parquet").filter(
        (pl.col(S.ATHLETE_ID) == "A001") & (pl.col(S.FOOT) == "left") & (pl.col("activity") == "walk")
    )
    e = params["pronation_excursion_deg"].to_numpy()
    assert e[1] - e[0] == pytest.approx(e[2] - e[1])  # linear drift: the known trend


def test_cli_writes_the_contract_files(tmp_path):
    from strideflow.service.cli import _register, app

    _register()
    out = tmp_path / "sim"
    res = CliRunner().invoke(
        app, ["simulate", "--athletes", "2", "--minutes", "0.5", "--out", str(out), "--seed", "3",
              "--activity", "mixed", "--rate", "100", "--sessions", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    man = pl.read_csv(out / "manifest.csv")
    assert {
        "path",
        "athlete_id",
        "session_id",
        "foot",
        "sampling_rate_hz",
        "activity",
        "session_date",
    } <= set(man.columns)
    assert man.height == 8 and (man["sampling_rate_hz"] == 100.0).all()
    truth = pl.read_parquet(out / "truth_strides.parquet")
    assert set(S.STRIDES_SCHEMA) <= set(truth.columns)
    for row in man.iter_rows(named=True):
        smp = pl.read_parquet(out / row["path"])
        assert smp.schema == pl.Schema(S.SAMPLES_SCHEMA)
        assert np.allclose(np.diff(smp[S.T].to_numpy()), 0.01)
        assert set(smp[S.FOOT]) == {row["foot"]}
        # the manifest's mounting explains the standing gravity reading
        q = rotation_from_wxyz(
            np.array([row[c] for c in ("mount_q_w", "mount_q_x", "mount_q_y", "mount_q_z")])
        )
        g_dev = smp.filter(pl.col(S.T) < 1.5).select(S.ACC).mean().to_numpy()[0]
        np.testing.assert_allclose(g_dev, q.apply([0.0, 0.0, G]), atol=0.2)
        n_truth = truth.filter(
            (pl.col(S.ATHLETE_ID) == row["athlete_id"])
            & (pl.col(S.SESSION_ID) == row["session_id"])
            & (pl.col(S.FOOT) == row["foot"])
        ).height
        assert n_truth > 5
    bad = CliRunner().invoke(
        app, ["simulate", "--athletes", "1", "--minutes", "1", "--out", str(out), "--activity", "swim"]
    )
    assert bad.exit_code != 0


def test_a_session_too_short_for_one_bout_is_refused_by_name(tmp_path):
    """Regression: 10 s sessions ended in an IndexError deep in the knot stacking (no bout fitted)."""
    from strideflow.service.cli import _register, app

    with pytest.raises(ValueError, match="walk session of 10 s has no room for a bout"):
        Simulator(SimulationSettings(duration_s=10.0, keep_orientation=False)).simulate()
    _register()
    res = CliRunner().invoke(
        app, ["simulate", "--athletes", "1", "--minutes", "0.1", "--out", str(tmp_path / "s")]
    )
    # the entry point prints a StrideflowError as one line, no traceback
    assert res.exit_code != 0 and "is too short" in str(res.exception)
    assert type(res.exception).__name__ == "SimulateError"
    # the documented minimum holds for any athlete and activity
    for seed in range(20):
        for activity in ("walk", "run", "mixed"):
            settings = SimulationSettings(activity=activity, duration_s=15.0, seed=seed)
            assert Simulator(settings).simulate().truth_strides_.height > 0


def test_an_hour_of_running_never_puts_heel_off_before_foot_flat():
    """Regression: per-stride variation once put heel-off before foot-flat on a runner whose still
    phase is short (benchmark team-day athlete 52), and the pitch curve's knots collided."""
    from strideflow.hardware.simulator.kinematics import FootMotion
    from strideflow.hardware.simulator.params import sample_athlete, sample_drift
    from strideflow.hardware.simulator.schedule import foot_timeline, plan_bouts

    seed = 2026 * 100_003 + 51
    arng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    base = sample_athlete(arng)
    athlete = base.drifted(sample_drift(arng, base), 0.0)
    rng = [np.random.default_rng(x) for x in np.random.SeedSequence([seed, 0, 1]).spawn(7)]
    bouts = plan_bouts(rng[1], "mixed", 3600.0, athlete, turns=True)
    for i, foot in enumerate(S.FEET):
        tl = foot_timeline(rng[2 + i], bouts, athlete, foot, 3600.0)
        still = tl.ho - tl.ffs
        assert np.nanmin(still) > 0.0
        FootMotion(tl, athlete, foot)  # raised "knots must increase strictly" before the fix


def test_gyro_gain_errors_scale_the_readings_and_are_on_by_default():
    """The default pod has gain errors at the issue-15 level (1 % sensitivity, 0.5 deg cross-axis,
    1 sigma, drawn per device and session) and reads G @ rate (+ the same bias as a perfect pod:
    the gains are drawn after the bias); a profile with zeros has none."""
    assert DEFAULT_PROFILE.gyr_scale_error == 0.01 and DEFAULT_PROFILE.gyr_misalignment_deg == 0.5
    base = SimulationSettings(activity="walk", duration_s=30.0, seed=4, noise=True, adc=False)
    gained = Simulator(base).simulate()
    plain = Simulator(replace(base, profile=IDEAL_GYRO)).simulate()
    for foot in S.FEET:
        e0, e1 = plain.errors_[foot], gained.errors_[foot]
        assert np.array_equal(e0.gyr_gain, np.eye(3))
        assert np.array_equal(e0.gyr_bias_dps, e1.gyr_bias_dps)  # drawn before the gain
        off = e1.gyr_gain - np.eye(3)
        assert 0 < np.abs(np.diag(off)).max() < 0.05  # sensitivity: a few sigma of 1 %
        cross = off[~np.eye(3, dtype=bool)]
        assert 0 < np.abs(cross).max() < np.radians(2.5)  # cross-axis: a few sigma of 0.5 deg
    # Without noise the reading is exactly gain @ mounted rate + bias.
    quiet = replace(base, noise=False)
    a = Simulator(replace(quiet, profile=IDEAL_GYRO)).simulate().samples_
    b = Simulator(quiet).simulate()
    for foot in S.FEET:
        ga = a.filter(pl.col(S.FOOT) == foot).select(S.GYR).to_numpy()
        gb = b.samples_.filter(pl.col(S.FOOT) == foot).select(S.GYR).to_numpy()
        np.testing.assert_allclose(gb, ga @ b.errors_[foot].gyr_gain.T, rtol=0, atol=1e-9)


def test_gyro_delay_lags_the_gyro_channel_only_and_is_off_by_default():
    """A profile with `gyr_delay_s` reads the gyro as it was that long before (the accelerometer and
    the truth unchanged): what the real LORD pod of the footprint walks shows (about 5 ms)."""
    from dataclasses import replace

    from strideflow.hardware.profiles import DEFAULT_PROFILE
    from strideflow.hardware.simulator.imu import delay_channel

    assert DEFAULT_PROFILE.gyr_delay_s == 0.0
    quiet = SimulationSettings(activity="walk", duration_s=30.0, seed=5, noise=False, adc=False)
    a = Simulator(quiet).simulate()
    b = Simulator(replace(quiet, profile=replace(DEFAULT_PROFILE, gyr_delay_s=0.010))).simulate()
    assert a.truth_strides_.equals(b.truth_strides_)
    for foot in S.FEET:
        pa, pb = (x.samples_.filter(pl.col(S.FOOT) == foot) for x in (a, b))
        np.testing.assert_array_equal(pa.select(S.ACC).to_numpy(), pb.select(S.ACC).to_numpy())
        ga, gb = pa.select(S.GYR).to_numpy(), pb.select(S.GYR).to_numpy()
        # 10 ms at 200 Hz is two whole samples (bias added after the delay, none here).
        np.testing.assert_allclose(gb[2:], ga[:-2], atol=1e-9)
    # A fraction of a sample interpolates linearly between neighbours.
    x = np.column_stack([np.arange(5.0)] * 3)
    np.testing.assert_allclose(delay_channel(x, 100.0, 0.0025)[1:, 0], np.arange(4.0) + 0.75)
