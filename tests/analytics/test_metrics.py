"""Known answers for the stride metrics, sessions, symmetry and flags on synthetic signals."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal
from scipy.spatial.transform import Rotation

from strideflow.analytics.flags import (
    ASYMMETRY,
    FLAG,
    LATERAL_ROLL_OFF,
    LOW_PRONATION,
    SHORT_TOE_OFF,
    FlagSettings,
    compute_flags,
)
from strideflow.analytics.metrics import (
    REASON_NO_NEXT_FOOT_FLAT,
    REASON_NO_SIGNAL,
    MetricSettings,
    compute_strides,
    strike_type_expr,
    values_at,
)
from strideflow.analytics.sessions import compute_sessions, symmetry_text
from strideflow.analytics.signals import SignalSettings, build_signals, euler_rates_dps
from strideflow.hardware import schema as S
from strideflow.hardware.frames import roll_pitch_deg, wxyz_from_rotation

STRIDE_S = 1.0
FIRST_IC_S = 0.5


# The piecewise-linear curves below have box-shaped rates whose peak is the ramp's slope only
# without the low-pass of max pronation velocity (MetricSettings.pronation_velocity_cutoff_hz);
# the known-answer tests of the raw definition use the raw rate, test_bandwidth_* the filtered one.
RAW_RATE = MetricSettings(pronation_velocity_cutoff_hz=None)


def synthetic(
    n_strides: int = 6,
    rate_hz: float = 200.0,
    foot: str = "left",
    excursion_deg: float = 30.0,
    pronation_slope_dps: float = 200.0,
    toe_off_pronation_deg: float = -5.0,
    pitch_before_ic_deg: float = 20.0,
    pitch_toe_off_deg: float = -35.0,
    stride_length_m: float = 1.3,
    impact_g: float = 3.0,
    pitch_offset_deg: float = 0.0,
    pronation_offset_deg: float = 0.0,
    athlete: str = "a1",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(signals, events) of a foot walking strides of 1 s with piecewise-linear angles.

    Per stride from IC: pronation ramps 0 -> excursion at `pronation_slope_dps`, holds until
    foot-flat, reaches excursion + toe_off_pronation at toe-off (IC + 0.6 s); pitch holds
    `pitch_before_ic_deg` until IC, is 0 from IC + 0.1 to heel-off (IC + 0.4), `pitch_toe_off_deg` at
    toe-off; the sensor moves `stride_length_m` forward in swing; |acc| peaks at IC + 20 ms.
    """
    t = np.arange(0.0, FIRST_IC_S + (n_strides + 1) * STRIDE_S, 1.0 / rate_hz)
    ics = FIRST_IC_S + np.arange(n_strides + 1) * STRIDE_S
    ramp_s = excursion_deg / pronation_slope_dps
    p_knots_t, p_knots, pitch_t, pitch_v, x_t, x_v = [], [], [], [], [], []
    for k, ic in enumerate(ics):
        p_knots_t += [ic, ic + ramp_s, ic + 0.25, ic + 0.6, ic + 0.8]
        p_knots += [0, excursion_deg, excursion_deg, excursion_deg + toe_off_pronation_deg, 0]
        pitch_t += [ic - 0.1, ic, ic + 0.1, ic + 0.4, ic + 0.6, ic + 0.8]
        pitch_v += [pitch_before_ic_deg, pitch_before_ic_deg, 0, 0, pitch_toe_off_deg, 0]
        x_t += [ic + 0.6, ic + 0.95]
        x_v += [k * stride_length_m, (k + 1) * stride_length_m]
    pron = np.interp(t, p_knots_t, p_knots) + pronation_offset_deg
    pitch = np.interp(t, pitch_t, pitch_v) + pitch_offset_deg
    x = np.interp(t, x_t, x_v)
    still = np.zeros(t.size, dtype=bool)
    acc_norm = np.ones(t.size)
    for ic in ics:
        still |= (t >= ic + 0.1) & (t <= ic + 0.4)
        acc_norm += (impact_g - 1.0) * np.exp(-(((t - ic - 0.02) / 0.004) ** 2))
    sign = 1.0 if foot == "left" else -1.0
    signals = pl.DataFrame(
        {
            S.ATHLETE_ID: athlete,
            S.SESSION_ID: "s1",
            S.FOOT: foot,
            S.T: t,
            S.ROLL_DEG: sign * pron,
            S.PITCH_DEG: pitch,
            S.PRONATION_DEG: pron,
            S.PITCH_RATE_DPS: np.gradient(pitch, t),
            S.PRONATION_RATE_DPS: np.gradient(pron, t),
            S.HEADING_DEG: 0.0,  # the shoe points along the progression (+x): toe-out 0
            S.ACC_NORM_G: acc_norm,
            S.ZERO_VELOCITY: still,
            S.VEL[0]: np.gradient(x, t),
            S.VEL[1]: 0.0,
            S.VEL[2]: 0.0,
            S.POS[0]: x,
            S.POS[1]: 0.0,
            S.POS[2]: 0.0,
        }
    ).select([pl.col(c).cast(d) for c, d in S.SIGNALS_SCHEMA.items()])
    starts = ics[:-1]
    events = pl.DataFrame(
        {
            S.ATHLETE_ID: athlete,
            S.SESSION_ID: "s1",
            S.FOOT: foot,
            S.STRIDE_INDEX: np.arange(n_strides),
            S.IC_T: starts,
            S.FOOT_FLAT_T: starts + 0.25,
            S.HEEL_OFF_T: starts + 0.4,
            S.TOE_OFF_T: starts + 0.6,
            S.NEXT_IC_T: ics[1:],
            S.VALID: True,
            S.REASON: pl.Series([None] * n_strides, dtype=pl.String),
        }
    )
    return signals, events


def test_known_answers_every_metric():
    signals, events = synthetic()
    strides = compute_strides(events, signals, RAW_RATE)
    # the contract's columns in order, then the extra censoring flag
    assert list(strides.columns) == [*S.STRIDES_SCHEMA, S.PRONATION_EXCURSION_CENSORED]
    assert strides.schema == pl.Schema({**S.STRIDES_SCHEMA, S.PRONATION_EXCURSION_CENSORED: pl.Boolean()})
    n = strides.height
    expected = {
        S.STRIDE_TIME_S: 1.0,
        S.STANCE_TIME_S: 0.6,
        S.SWING_TIME_S: 0.4,
        S.CADENCE_SPM: 120.0,
        S.STRIDE_LENGTH_M: 1.3,
        S.SPEED_MPS: 1.3,
        S.FOOT_STRIKE_ANGLE_DEG: 20.0,  # 10 ms before IC (20 deg) minus foot-flat (0 deg)
        S.PRONATION_EXCURSION_DEG: 30.0,  # a foot rolled 30 deg reads 30 deg
        S.MAX_PRONATION_VELOCITY_DPS: 200.0,  # the ramp's slope
        S.TIME_TO_MAX_PRONATION_S: 0.15,  # first sample at the top of the ramp: 30 / 200 s
        S.TOE_OFF_PRONATION_DEG: -5.0,  # lateral roll-off
        S.TOE_OFF_ANGLE_DEG: 35.0,
        S.PUSH_OFF_RATE_DPS: 175.0,  # 35 deg of plantarflexion in 0.2 s
        S.HEEL_OFF_RATIO: 0.4 / 0.6,
        S.IMPACT_G: 3.0,
        S.DUTY_FACTOR: 0.6,
    }
    got = strides.select(list(expected))
    want = pl.DataFrame({k: [v] * n for k, v in expected.items()})
    assert_frame_equal(got, want, check_exact=False, abs_tol=1e-9)
    assert strides[S.STRIKE_TYPE].to_list() == ["rearfoot"] * n
    assert strides[S.VALID].all()


@pytest.mark.parametrize("rate_hz", [100.0, 204.8, 500.0])
def test_known_answers_hold_at_any_rate(rate_hz):
    signals, events = synthetic(rate_hz=rate_hz, excursion_deg=12.0, pronation_slope_dps=300.0)
    strides = compute_strides(events, signals, RAW_RATE)
    dt = 1.0 / rate_hz
    # Angles at event times are interpolated between samples: exact on straight pieces, off by at
    # most (change of slope) * dt / 4 where an event falls between samples astride a kink.
    assert np.allclose(strides[S.PRONATION_EXCURSION_DEG], 12.0, atol=300.0 * dt / 4 + 1e-9)
    assert np.allclose(strides[S.TOE_OFF_ANGLE_DEG], 35.0, atol=350.0 * dt / 4 + 1e-9)
    assert np.allclose(strides[S.FOOT_STRIKE_ANGLE_DEG], 20.0, atol=1e-9)
    assert np.allclose(strides[S.MAX_PRONATION_VELOCITY_DPS], 300.0, rtol=1e-9)
    # The time of max pronation is a sample time: within one sample of the true 40 ms.
    assert np.all(np.abs(strides[S.TIME_TO_MAX_PRONATION_S].to_numpy() - 0.04) <= dt + 1e-9)


@pytest.mark.parametrize(
    ("pitch_before_ic", "expected"),
    [(20.0, "rearfoot"), (8.5, "rearfoot"), (5.0, "midfoot"), (-1.0, "midfoot"), (-4.0, "forefoot")],
)
def test_strike_type_from_the_lookback_pitch(pitch_before_ic, expected):
    signals, events = synthetic(pitch_before_ic_deg=pitch_before_ic)
    strides = compute_strides(events, signals)
    assert np.allclose(strides[S.FOOT_STRIKE_ANGLE_DEG], pitch_before_ic)
    assert set(strides[S.STRIKE_TYPE]) == {expected}


def test_strike_type_thresholds_are_design_values():
    angles = pl.DataFrame({"a": [9.0, 8.0, 8.0001, 0.0, -1.6, -1.6001, -20.0, None]})
    got = angles.select(strike_type_expr(pl.col("a")).alias("k"))["k"]
    want = pl.Series(
        "k",
        ["rearfoot", "midfoot", "rearfoot", "midfoot", "midfoot", "forefoot", "forefoot", None],
        dtype=pl.String,
    )
    assert_series_equal(got, want)
    custom = angles.select(strike_type_expr(pl.col("a"), MetricSettings(rearfoot_above_deg=10.0)).alias("k"))
    assert custom["k"][0] == "midfoot"


def test_impact_window_excludes_later_peaks():
    signals, events = synthetic(impact_g=4.0)
    # A bigger peak 80 ms after IC lies outside the 50 ms window and must not count.
    late = signals.with_columns(
        pl.when(((pl.col(S.T) - FIRST_IC_S) % STRIDE_S - 0.08).abs() < 1e-6)
        .then(9.0)
        .otherwise(pl.col(S.ACC_NORM_G))
        .alias(S.ACC_NORM_G)
    )
    assert np.allclose(compute_strides(events, late)[S.IMPACT_G], 4.0)


def test_pronation_peak_outside_the_window_is_ignored():
    # Pronation rising beyond 60 % of stance (here to toe-off, + 5 deg) is not the max pronation.
    signals, events = synthetic(excursion_deg=10.0, toe_off_pronation_deg=5.0)
    strides = compute_strides(events, signals)
    assert np.allclose(strides[S.PRONATION_EXCURSION_DEG], 10.0 + 5.0 * (0.36 - 0.25) / 0.35, atol=1e-9)
    assert np.allclose(strides[S.TOE_OFF_PRONATION_DEG], 5.0)


def test_right_foot_and_left_foot_read_the_same_pronation():
    # Pronation is eversion-positive on both feet: mirrored roll, same metrics.
    left_sig, left_ev = synthetic(foot="left")
    right_sig, right_ev = synthetic(foot="right")
    assert (right_sig[S.ROLL_DEG] == -left_sig[S.ROLL_DEG]).all()
    both = compute_strides(pl.concat([left_ev, right_ev]), pl.concat([left_sig, right_sig]))
    left = both.filter(pl.col(S.FOOT) == "left").drop(S.FOOT)
    right = both.filter(pl.col(S.FOOT) == "right").drop(S.FOOT)
    assert_frame_equal(left, right)


def test_stride_without_a_following_foot_flat_is_invalid_with_reason():
    signals, events = synthetic(n_strides=4)
    # Cut the recording just after the last IC: no still period follows it.
    cut = signals.filter(pl.col(S.T) <= FIRST_IC_S + 4 * STRIDE_S + 0.05)
    strides = compute_strides(events, cut)
    assert strides[S.VALID].to_list() == [True, True, True, False]
    assert strides[S.REASON].to_list()[-1] == REASON_NO_NEXT_FOOT_FLAT
    assert strides[S.STRIDE_LENGTH_M][-1] is None


def test_events_in_a_gap_make_the_stride_invalid():
    signals, events = synthetic(n_strides=4)
    gap = signals.filter((pl.col(S.T) < 1.5) | (pl.col(S.T) > 1.7))  # swallows stride 1's IC
    strides = compute_strides(events, gap)
    assert strides[S.VALID].to_list() == [True, False, True, True]
    assert strides[S.REASON][1] == REASON_NO_SIGNAL


def test_detector_reasons_are_kept():
    signals, events = synthetic(n_strides=3)
    events = events.with_columns(
        pl.when(pl.col(S.STRIDE_INDEX) == 1).then(False).otherwise(True).alias(S.VALID),
        pl.when(pl.col(S.STRIDE_INDEX) == 1).then(pl.lit("turn")).otherwise(None).alias(S.REASON),
    )
    strides = compute_strides(events, signals)
    assert strides[S.VALID].to_list() == [True, False, True]
    assert strides[S.REASON].to_list() == [None, "turn", None]
    # Metrics are still computed for an invalid stride; only the aggregates leave it out.
    assert strides[S.PRONATION_EXCURSION_DEG][1] == pytest.approx(30.0)


def test_values_at_interpolates_linearly_per_foot():
    sig = pl.DataFrame(
        {
            S.ATHLETE_ID: ["a"] * 4,
            S.SESSION_ID: ["s"] * 4,
            S.FOOT: ["left", "left", "right", "right"],
            S.T: [0.0, 1.0, 0.0, 1.0],
            "v": [0.0, 10.0, 100.0, 50.0],
        }
    )
    q = pl.DataFrame(
        {
            S.ATHLETE_ID: ["a"] * 4,
            S.SESSION_ID: ["s"] * 4,
            S.FOOT: ["right", "left", "left", "left"],
            "tq": [0.2, 0.25, 1.0, 1.5],
        }
    )
    got = values_at(sig, q, "tq", ["v"], suffix="_at", max_gap_s=2.0)
    assert got["v_at"].to_list() == [90.0, 2.5, 10.0, None]  # order kept; past the end is null
    short = values_at(sig, q, "tq", ["v"], suffix="_at", max_gap_s=0.5)
    assert short["v_at"].to_list() == [None, None, 10.0, None]  # neighbours too far apart


@settings(max_examples=25, deadline=None)
@given(
    pitch_offset=st.floats(-30, 30),
    pronation_offset=st.floats(-20, 20),
    excursion=st.floats(1.0, 25.0),
    slope=st.floats(80.0, 900.0),
    rate=st.sampled_from([100.0, 200.0, 204.8]),
)
def test_difference_metrics_are_invariant_to_constant_angle_offsets(
    pitch_offset, pronation_offset, excursion, slope, rate
):
    # `synthetic` holds the excursion from IC + ramp to IC + 0.25 s: a ramp reaching past that knot
    # is not a valid signal (hypothesis found excursion 20-21 deg at 80 deg/s, ramps of 0.25-0.26 s).
    assume(excursion / slope < 0.24)
    base_sig, events = synthetic(
        n_strides=3, rate_hz=rate, excursion_deg=excursion, pronation_slope_dps=slope
    )
    moved_sig, _ = synthetic(
        n_strides=3,
        rate_hz=rate,
        excursion_deg=excursion,
        pronation_slope_dps=slope,
        pitch_offset_deg=pitch_offset,
        pronation_offset_deg=pronation_offset,
    )
    base = compute_strides(events, base_sig)
    moved = compute_strides(events, moved_sig)
    assert_frame_equal(base, moved, check_exact=False, abs_tol=1e-9, rel_tol=1e-9)
    valid = moved.filter(pl.col(S.VALID))
    assert valid.height == 3
    numeric = valid.select(S.METRICS)
    assert numeric.null_count().sum_horizontal().item() == 0
    assert not np.isnan(numeric.to_numpy()).any()
    # Exact up to interpolating p(IC) between samples astride the kink at IC (see above).
    assert np.allclose(valid[S.PRONATION_EXCURSION_DEG], excursion, atol=slope / rate / 4 + 1e-9)


def test_euler_rates_match_the_derivative_of_the_angles():
    # A smooth 3-D foot rotation; its body rate from the quaternion derivative, dense in time.
    rate = 2000.0
    t = np.arange(0.0, 1.0, 1.0 / rate)
    roll = 25.0 * np.sin(2 * np.pi * 1.3 * t)
    pitch = 40.0 * np.sin(2 * np.pi * 0.9 * t + 0.4)
    yaw = 30.0 * np.sin(2 * np.pi * 0.7 * t)
    rot = Rotation.from_euler("ZYX", np.column_stack([yaw, -pitch, roll]), degrees=True)
    # Body rate: R(t)^T R(t + dt) ~ exp(omega dt); central version for second-order accuracy.
    body = (rot[:-2].inv() * rot[2:]).as_rotvec() / (2.0 / rate)
    q = wxyz_from_rotation(rot[1:-1])
    r, p = roll_pitch_deg(q)
    assert np.allclose(r, roll[1:-1], atol=1e-9) and np.allclose(p, pitch[1:-1], atol=1e-9)
    roll_rate, pitch_rate = euler_rates_dps(r, p, np.degrees(body))
    assert np.allclose(roll_rate, np.gradient(roll, t)[1:-1], atol=0.05)
    assert np.allclose(pitch_rate, np.gradient(pitch, t)[1:-1], atol=0.05)
    assert np.max(np.abs(roll_rate)) > 150.0  # the test is not vacuous


def test_build_signals_known_roll_and_both_rate_methods_agree():
    rate = 400.0
    t = np.arange(0.0, 1.0, 1.0 / rate)
    roll = 30.0 * np.sin(2 * np.pi * t)  # roll about x alone: rate is gyr_x
    gyr = np.column_stack([np.gradient(roll, t), np.zeros_like(t), np.zeros_like(t)])
    q = wxyz_from_rotation(Rotation.from_euler("x", roll[:, None], degrees=True))
    acc = np.tile([0.0, 0.0, S.STANDARD_GRAVITY_MPS2 * 2], (t.size, 1))
    samples = pl.DataFrame(
        {
            S.ATHLETE_ID: "a",
            S.SESSION_ID: "s",
            S.FOOT: "right",
            S.T: t,
            **{c: acc[:, i] for i, c in enumerate(S.ACC)},
            **{c: gyr[:, i] for i, c in enumerate(S.GYR)},
        }
    )
    gyro = build_signals(samples, q)
    grad = build_signals(samples, q, settings=SignalSettings(rate_method="gradient"))
    assert gyro.schema == pl.Schema(S.SIGNALS_SCHEMA)
    assert np.allclose(gyro[S.ROLL_DEG], roll) and np.allclose(gyro[S.PRONATION_DEG], -roll)  # right foot
    assert np.allclose(gyro[S.PRONATION_RATE_DPS], grad[S.PRONATION_RATE_DPS], atol=1e-6)
    assert np.allclose(gyro[S.ACC_NORM_G], 2.0)
    assert gyro[S.POS[0]].null_count() == t.size  # no ZUPT given: unknown, not zero


def _two_feet(n=12, left_excursion=30.0, right_excursion=20.0, **kw):
    ls, le = synthetic(n_strides=n, foot="left", excursion_deg=left_excursion, **kw)
    rs, re = synthetic(n_strides=n, foot="right", excursion_deg=right_excursion, **kw)
    return compute_strides(pl.concat([le, re]), pl.concat([ls, rs]), RAW_RATE)


def test_sessions_median_iqr_count_and_symmetry_sign():
    strides = _two_feet()
    # Left excursions 25..35 (median 30, IQR 5) plus one invalid stride at 99 deg.
    left = strides.filter(pl.col(S.FOOT) == "left").with_columns(
        pl.Series(S.PRONATION_EXCURSION_DEG, [25.0 + i for i in range(11)] + [99.0]),
        pl.Series(S.VALID, [True] * 11 + [False]),
    )
    strides = pl.concat([left, strides.filter(pl.col(S.FOOT) == "right")])
    sessions = compute_sessions(strides)
    assert sessions.height == 2
    by_foot = {r[S.FOOT]: r for r in sessions.iter_rows(named=True)}
    assert by_foot["left"][S.STRIDE_COUNT] == 11  # the invalid stride (99 deg) is left out
    assert by_foot["left"][S.session_median(S.PRONATION_EXCURSION_DEG)] == pytest.approx(30.0)
    assert by_foot["left"][S.session_iqr(S.PRONATION_EXCURSION_DEG)] == pytest.approx(5.0)
    assert by_foot["right"][S.session_median(S.PRONATION_EXCURSION_DEG)] == pytest.approx(20.0)
    si = S.symmetry_index(S.PRONATION_EXCURSION_DEG)
    # 200 (30 - 20) / (30 + 20) = +40 %: positive = left larger, on both rows.
    assert by_foot["left"][si] == pytest.approx(40.0) and by_foot["right"][si] == pytest.approx(40.0)
    assert by_foot["left"][S.symmetry_index(S.STRIDE_TIME_S)] == pytest.approx(0.0)


def test_symmetry_index_is_antisymmetric_and_null_for_one_foot():
    a = compute_sessions(_two_feet(left_excursion=10.0, right_excursion=14.0))
    b = compute_sessions(_two_feet(left_excursion=14.0, right_excursion=10.0))
    col = S.symmetry_index(S.PRONATION_EXCURSION_DEG)
    assert a[col][0] == pytest.approx(-b[col][0]) and a[col][0] < 0
    one_sig, one_ev = synthetic(foot="left")
    single = compute_sessions(compute_strides(one_ev, one_sig))
    assert single.height == 1 and single[col][0] is None


def test_signed_angles_report_symmetry_as_a_difference_in_degrees():
    # Toe-off pronation medians of 0.9 and 2.6 deg read as an index -97 %, a "gross asymmetry" of
    # 1.7 deg; signed angles therefore carry L - R in degrees and no index.
    strides = _two_feet()
    strides = strides.with_columns(
        pl.when(pl.col(S.FOOT) == "left").then(0.9).otherwise(2.6).alias(S.TOE_OFF_PRONATION_DEG),
        pl.when(pl.col(S.FOOT) == "left").then(-3.0).otherwise(5.0).alias(S.FOOT_STRIKE_ANGLE_DEG),
    )
    row = compute_sessions(strides).row(0, named=True)
    assert row[S.lr_difference(S.TOE_OFF_PRONATION_DEG)] == pytest.approx(-1.7)
    assert row[S.lr_difference(S.FOOT_STRIKE_ANGLE_DEG)] == pytest.approx(-8.0)
    assert row[S.symmetry_index(S.TOE_OFF_PRONATION_DEG)] is None
    assert row[S.symmetry_index(S.FOOT_STRIKE_ANGLE_DEG)] is None
    assert S.lr_difference(S.STRIDE_TIME_S) not in row  # positive metrics keep the index only
    assert symmetry_text(row, S.TOE_OFF_PRONATION_DEG) == "-1.7°"
    assert symmetry_text(row, S.STRIDE_TIME_S) == "+0.0 %"


def test_flags_raise_on_heuristics_and_need_enough_strides():
    strides = _two_feet(n=12, left_excursion=3.0, right_excursion=10.0, pitch_toe_off_deg=-20.0)
    # asymmetry is flagged only for listed metrics (no fixed threshold has a source, issue 18)
    listed = FlagSettings(
        asymmetry_metrics=(S.PRONATION_EXCURSION_DEG, S.STANCE_TIME_S), short_toe_off_below_deg=30.0
    )
    flags = compute_flags(compute_sessions(strides), listed)
    assert ASYMMETRY not in compute_flags(compute_sessions(strides))[FLAG].to_list()
    raised = {(r[S.FOOT], r[FLAG]) for r in flags.iter_rows(named=True)}
    assert ("left", LOW_PRONATION) in raised and ("right", LOW_PRONATION) not in raised
    assert ("left", LATERAL_ROLL_OFF) in raised  # toe-off pronation -5 deg < -2 deg
    assert ("left", SHORT_TOE_OFF) in raised and ("right", SHORT_TOE_OFF) in raised  # 20 deg < 30 deg
    assert (None, ASYMMETRY) in raised  # SI of excursion = 200 * -7 / 13 = -108 %
    asym = flags.filter(pl.col(FLAG) == ASYMMETRY)
    assert asym["metric"].to_list() == [S.PRONATION_EXCURSION_DEG]
    assert asym["value"][0] == pytest.approx(200 * (3.0 - 10.0) / 13.0)
    # Too few strides: nothing is flagged.
    few = compute_flags(compute_sessions(strides), FlagSettings(min_strides=13))
    assert few.height == 0
    # Thresholds are settings: a stricter lateral threshold removes that flag.
    lenient = compute_flags(compute_sessions(strides), FlagSettings(lateral_roll_off_below_deg=-6.0))
    assert LATERAL_ROLL_OFF not in lenient[FLAG].to_list()


def test_pronation_rate_is_null_near_gimbal_lock_instead_of_exploding():
    rate = 200.0
    t = np.arange(0.0, 1.0, 1.0 / rate)
    pitch = np.linspace(-89.5, 0.0, t.size)  # toes almost straight down, then level
    rot = Rotation.from_euler(
        "ZYX", np.column_stack([np.zeros_like(t), -pitch, np.full_like(t, 5.0)]), degrees=True
    )
    q = wxyz_from_rotation(rot)
    gyr = np.tile([10.0, 50.0, 30.0], (t.size, 1))
    samples = pl.DataFrame(
        {
            S.ATHLETE_ID: "a",
            S.SESSION_ID: "s",
            S.FOOT: "left",
            S.T: t,
            **{c: np.full(t.size, 1.0) for c in S.ACC},
            **{c: gyr[:, i] for i, c in enumerate(S.GYR)},
        }
    )
    sig = build_signals(samples, q)
    steep = sig.filter(pl.col(S.PITCH_DEG).abs() > 80.0)
    assert steep.height > 0 and steep[S.PRONATION_RATE_DPS].null_count() == steep.height
    flat = sig.filter(pl.col(S.PITCH_DEG).abs() <= 80.0)
    assert flat[S.PRONATION_RATE_DPS].null_count() == 0
    assert flat[S.PRONATION_RATE_DPS].abs().max() < 10.0 + 80.0 * 5.7  # |tan 80 deg| bounds it


# --- censoring and bandwidth of the pronation metrics (issue 15 item 7) --------------------------
def test_excursion_is_censored_when_max_pronation_sits_at_the_window_end():
    signals, events = synthetic(excursion_deg=30.0, pronation_slope_dps=200.0)  # top at IC + 0.15 s
    whole = compute_strides(events, signals)
    assert not whole[S.PRONATION_EXCURSION_CENSORED].any()
    # a window of 20 % of the 0.6 s stance ends at IC + 0.12 s, while pronation still rises
    short = compute_strides(events, signals, MetricSettings(pronation_window_stance_fraction=0.2))
    assert short[S.PRONATION_EXCURSION_CENSORED].all()
    # the definition is kept: the excursion is the (lower-bound) value at the window end
    assert np.allclose(short[S.PRONATION_EXCURSION_DEG], 0.12 * 200.0, atol=200.0 / 200.0)


def _smooth_pronation_with_impact(rate_hz: float, spike_dps: float, ring_hz: float = 100.0):
    """Signals whose pronation rises as a half cosine (10 deg in 0.12 s: peak rate 10 pi / 0.24 =
    130.9 deg/s at IC + 60 ms), with an impact ring of `spike_dps` at `ring_hz` in the rate,
    decaying in 4 ms, from IC (the real walks show the transient as a one- or two-sample swing of
    alternating sign at 204.8 Hz, up to 1.5 x the foot slap's own peak)."""
    signals, events = synthetic(rate_hz=rate_hz)
    t = signals[S.T].to_numpy()
    p = np.zeros_like(t)
    rate = np.zeros_like(t)
    for ic in events[S.IC_T].to_numpy():
        tau = t - ic
        rise = (tau >= 0) & (tau <= 0.12)
        p[rise] = 5.0 * (1 - np.cos(np.pi * tau[rise] / 0.12))
        p[(tau > 0.12) & (tau < 0.8)] = 10.0
        rate[rise] = 5.0 * np.pi / 0.12 * np.sin(np.pi * tau[rise] / 0.12)
        ring = (tau >= 0) & (tau < 0.06)
        rate[ring] += spike_dps * np.exp(-tau[ring] / 0.004) * np.sin(2 * np.pi * ring_hz * tau[ring])
    signals = signals.with_columns(pl.Series(S.PRONATION_DEG, p), pl.Series(S.PRONATION_RATE_DPS, rate))
    return signals, events


@pytest.mark.parametrize(("rate_hz", "ring_hz"), [(204.8, 100.0), (500.0, 150.0)])
def test_bandwidth_an_impact_ring_does_not_set_max_pronation_velocity(rate_hz, ring_hz):
    truth = 10.0 * np.pi / 0.24
    # a ring of 2.3 x the eversion's peak rate, near the Nyquist rate as on the real walks
    signals, events = _smooth_pronation_with_impact(rate_hz, spike_dps=300.0, ring_hz=ring_hz)
    raw = compute_strides(events, signals, RAW_RATE)[S.MAX_PRONATION_VELOCITY_DPS]
    # the ring sets the raw peak where the samples catch it (at 204.8 Hz the ICs fall between
    # samples), far beyond the 5 % target
    assert raw.max() > 1.2 * truth, raw.to_list()
    filtered = compute_strides(events, signals)[S.MAX_PRONATION_VELOCITY_DPS]
    assert np.allclose(filtered, truth, rtol=0.05), filtered.to_list()
    # without the ring the low-pass keeps the eversion's own peak within 3 %
    clean, events = _smooth_pronation_with_impact(rate_hz, spike_dps=0.0)
    assert np.allclose(compute_strides(events, clean)[S.MAX_PRONATION_VELOCITY_DPS], truth, rtol=0.03)


@settings(max_examples=60, deadline=None)
@given(
    order=st.integers(1, 6),
    fs=st.sampled_from([100.0, 128.0, 200.0, 204.8, 1000.0]),
    n=st.integers(1, 400),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 1.0, 500.0]),
)
def test_zero_phase_filter_equals_scipy_sosfiltfilt_bit_for_bit(order, fs, n, seed, scale):
    """The stride filter with cached initial conditions gives exactly scipy's sosfiltfilt."""
    from scipy.signal import sosfiltfilt

    from strideflow.analytics.metrics import _butter_sos, zero_phase_filter

    sos, zi, pad = _butter_sos(order, min(80.0, 0.4 * fs), fs)
    assume(n > pad)
    x = np.random.default_rng(seed).normal(size=n) * scale
    np.testing.assert_array_equal(zero_phase_filter(sos, zi, pad, x), sosfiltfilt(sos, x))
