"""Stride events and ZUPT stride length against simulator truth (50 athletes, walk and run).

Simulated with noise, biases, ADC and a random mounting per foot; the signals are rotated back
into the foot frame with the simulator's true mounting (mounting estimation is tested on its
own), then events are detected from acc and gyr alone.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strideflow.analytics.evaluation import event_errors_s, match_strides, timing_summary_ms
from strideflow.analytics.events import FOOT_FLAT_IDX, StrideEventDetector
from strideflow.hardware import schema as S

simulator = pytest.importorskip("strideflow.hardware.simulator")

N_ATHLETES = 50
DURATION_S = 30.0
FS = 200.0
TOL_S = 0.060


@cache
def _evaluate(activity: str) -> dict[str, np.ndarray | float]:
    ic, to, length_err = [], [], []
    n_det_valid = n_ref_valid = tp_det = tp_ref = 0
    for seed in range(N_ATHLETES):
        settings = simulator.SimulationSettings(
            activity=activity, duration_s=DURATION_S, sampling_rate_hz=FS, seed=seed, keep_orientation=False
        )
        sim = simulator.Simulator(settings).simulate()
        for foot in S.FEET:
            smp = sim.samples_.filter(pl.col(S.FOOT) == foot)
            to_foot = sim.mounting_[foot].inv()
            acc = to_foot.apply(np.array(smp.select(S.ACC).to_numpy()))
            gyr = to_foot.apply(np.array(smp.select(S.GYR).to_numpy()))
            det = StrideEventDetector().detect(acc, gyr, FS, foot=foot, t_s=smp[S.T].to_numpy())
            ev = det.events_
            truth = sim.truth_strides_.filter(pl.col(S.FOOT) == foot)
            valid_truth = truth.filter(pl.col(S.VALID))
            # Precision: valid detected strides that are real strides (of any truth validity);
            # recall: valid true strides found by a detected stride.
            p = match_strides(ev, truth, TOL_S, on=S.IC_T, only_valid=True)
            r = match_strides(ev, valid_truth, TOL_S, on=S.IC_T, only_valid=False)
            n_det_valid += p.n_detected
            tp_det += p.n_matched
            n_ref_valid += r.n_reference
            tp_ref += r.n_matched
            both = match_strides(ev, valid_truth, TOL_S, on=S.IC_T, only_valid=True)
            ic.append(event_errors_s(ev, valid_truth, both, S.IC_T))
            to.append(event_errors_s(ev, valid_truth, both, S.TOE_OFF_T))
            # Stride length: horizontal ZUPT displacement foot-flat to next foot-flat.
            rows = both.matches["detected_row"].to_numpy()
            ff = ev[FOOT_FLAT_IDX].to_numpy()
            nxt = np.append(ff[1:], -1)[rows]
            ok = nxt >= 0
            d = det.position_m_[nxt[ok], :2] - det.position_m_[ff[rows][ok], :2]
            true_len = valid_truth[S.STRIDE_LENGTH_M].to_numpy()[both.matches["reference_row"].to_numpy()][ok]
            length_err.append(np.linalg.norm(d, axis=1) / true_len - 1.0)
    return {
        "precision": tp_det / n_det_valid,
        "recall": tp_ref / n_ref_valid,
        "n_truth": n_ref_valid,
        "ic": np.concatenate(ic),
        "to": np.concatenate(to),
        "length_err": np.concatenate(length_err),
    }


@pytest.mark.slow
@pytest.mark.parametrize("activity", ["walk", "run"])
def test_stride_precision_and_recall(activity):
    r = _evaluate(activity)
    assert r["n_truth"] > 1500
    assert r["precision"] >= 0.995
    assert r["recall"] >= 0.995


@pytest.mark.slow
@pytest.mark.parametrize("activity", ["walk", "run"])
def test_toe_off_and_ic_timing(activity):
    r = _evaluate(activity)
    to = timing_summary_ms(r["to"])
    ic = timing_summary_ms(r["ic"])
    assert to["median_abs_ms"] <= 5.0 and to["p95_abs_ms"] <= 15.0, to
    assert ic["median_abs_ms"] <= 5.0 and ic["p95_abs_ms"] <= 15.0, ic


@pytest.mark.slow
@pytest.mark.parametrize("activity, mape_pct", [("walk", 2.0), ("run", 3.0)])
def test_zupt_stride_length(activity, mape_pct):
    err = _evaluate(activity)["length_err"]
    assert err.size > 1500
    assert np.mean(np.abs(err)) * 100 <= mape_pct


_FLOATS = st.one_of(st.floats(-1e3, 1e3), st.just(float("nan")))


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(st.tuples(_FLOATS, _FLOATS, _FLOATS, _FLOATS), min_size=1, max_size=8),
    gait_start=st.booleans(),
)
def test_stride_reasons_equal_the_polars_rules_nan_included(rows, gait_start):
    """The events table's reasons (numpy) are what its former Polars expressions gave, where
    Polars puts NaN above every number."""
    from strideflow.analytics.events import (
        REASON_GAIT_START,
        REASON_SHUFFLE,
        REASON_TOO_LONG,
        REASON_TOO_SHORT,
        REASON_TURN,
        EventSettings,
        stride_reasons,
    )

    s = EventSettings()
    ic, nic, heading, disp = (np.array(c, dtype=float) for c in zip(*rows, strict=True))
    frame = pl.DataFrame({"i": np.arange(len(ic)), "ic": ic, "nic": nic, "h": heading, "d": disp})
    stride_time = pl.col("nic") - pl.col("ic")
    expected = frame.select(
        pl.when(pl.lit(gait_start) & (pl.col("i") == 0))
        .then(pl.lit(REASON_GAIT_START))
        .when(stride_time > s.max_stride_s)
        .then(pl.lit(REASON_TOO_LONG))
        .when(stride_time < s.min_stride_s)
        .then(pl.lit(REASON_TOO_SHORT))
        .when(pl.col("h").abs() > s.turn_deg)
        .then(pl.lit(REASON_TURN))
        .when(pl.col("d") < s.min_displacement_m)
        .then(pl.lit(REASON_SHUFFLE))
        .otherwise(pl.lit(None, dtype=pl.String))
    ).to_series()
    assert stride_reasons(s, ic, nic, heading, disp, gait_start) == expected.to_list()


@pytest.mark.parametrize(
    "toe_off_angle_deg",
    [
        68.0,
        pytest.param(
            34.0,
            marks=pytest.mark.xfail(
                strict=True,
                reason="known gap: IC ~47 ms late for a forefoot runner with a small toe-off angle",
            ),
        ),
    ],
)
def test_a_forefoot_runner_s_initial_contact_whatever_its_toe_off_angle(toe_off_angle_deg):
    """IC of a forefoot runner (strike -11 deg) within 20 ms, at the default runner's toe-off angle
    and at the LORD footprint pod's (its running strides read 30-38 deg, issue 17). Found while
    drawing LORD-like toe-off angles (benchmarks/README.md, session 9): at 34 (and 45) deg every
    IC comes ~47 ms late and the max pronation velocity misses ~550 deg/s; rearfoot and midfoot
    runners at 34 deg keep 3 ms. Why: the IC search starts at mid-swing, the largest dorsiflexion
    rate (min gyr_y) of the step; a swing from a 34 deg toe-off to a -11 deg landing dorsiflexes at
    most 124 deg/s, the heel's drop after the forefoot lands at 223 deg/s, so "mid-swing" falls after
    IC (at 68 deg: 283 vs 223). Whether real forefoot swings dorsiflex that little (the simulator's
    swing pitch rises monotonically to the landing) is open; kept as a strict xfail until decided."""
    from dataclasses import replace

    from strideflow.analytics.pipeline import analyze_samples
    from strideflow.hardware.simulator.params import typical_run

    run = replace(
        typical_run(),
        strike_angle_deg=-11.0,
        pre_ic_dorsiflexion_deg=1.0,
        toe_off_angle_deg=toe_off_angle_deg,
    )
    settings = simulator.SimulationSettings(
        activity="run", duration_s=20.0, seed=4, athlete=simulator.AthleteParams(run=run)
    )
    sim = simulator.Simulator(settings).simulate()
    strides = analyze_samples(sim.samples_, settings.sampling_rate_hz).strides
    truth = sim.truth_strides_.filter(pl.col(S.VALID))
    m = match_strides(strides, truth, tolerance_s=TOL_S)
    assert m.matches.height >= 0.9 * truth.height
    err = event_errors_s(strides, truth, m, S.IC_T)
    assert np.median(np.abs(err)) < 0.020
