"""Toe-off between samples: the vertex of the plantarflexion-rate peak's rising side (analytics/events.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from strideflow.analytics.evaluation import event_errors_s, match_strides
from strideflow.analytics.events import EventSettings, StrideEventDetector, _rising_peak_offset
from strideflow.hardware import schema as S

simulator = pytest.importorskip("strideflow.hardware.simulator")


def _asymmetric_peak(peak_at: float, rise: float = 20.0, fall: float = 120.0) -> np.ndarray:
    """A rate peak (deg/s) sampled at integer indices: curvature `rise` before, `fall` after it."""
    k = np.arange(30, dtype=float)
    d = k - peak_at
    return 500.0 - np.where(d < 0, rise, fall) * d**2


@pytest.mark.parametrize("peak_at", np.linspace(14.0, 14.95, 20))
def test_offset_recovers_an_asymmetric_peak_between_samples(peak_at):
    x = _asymmetric_peak(peak_at)
    i = np.array([int(np.argmax(x))])
    found = i + _rising_peak_offset(x, i)
    assert found[0] == pytest.approx(peak_at, abs=1e-9)


def test_the_peak_sample_alone_is_early_on_such_peaks():
    # what the offset corrects: the sample of the peak lies before a peak that falls steeply
    peaks = np.linspace(14.0, 14.95, 20)
    argmax = np.array([np.argmax(_asymmetric_peak(p)) for p in peaks])
    assert np.mean(argmax - peaks) < -0.15


def test_no_offset_without_a_concave_rising_side_or_samples():
    cusp = 500.0 - 30.0 * np.abs(np.arange(30) - 14.3)  # straight sides: no parabola fits
    assert _rising_peak_offset(cusp, np.array([14]))[0] == 0.0
    x = _asymmetric_peak(1.2)
    assert _rising_peak_offset(x, np.array([1]))[0] == 0.0  # fewer than 3 samples before the peak
    assert _rising_peak_offset(x, np.array([29]))[0] == 0.0  # none after it


def _mean_toe_off_error_ms(subsample: bool) -> float:
    errors = []
    for seed in range(4):
        sim = simulator.Simulator(
            simulator.SimulationSettings(activity="walk", duration_s=20.0, seed=seed, keep_orientation=False)
        ).simulate()
        for foot in S.FEET:
            smp = sim.samples_.filter(pl.col(S.FOOT) == foot)
            to_foot = sim.mounting_[foot].inv()
            acc = to_foot.apply(smp.select(S.ACC).to_numpy())
            gyr = to_foot.apply(smp.select(S.GYR).to_numpy())
            ev = (
                StrideEventDetector(EventSettings(to_subsample=subsample))
                .detect(acc, gyr, 200.0, foot=foot, t_s=smp[S.T].to_numpy())
                .events_
            )
            truth = sim.truth_strides_.filter((pl.col(S.FOOT) == foot) & pl.col(S.VALID))
            both = match_strides(ev, truth, 0.06, on=S.IC_T, only_valid=True)
            errors.append(event_errors_s(ev, truth, both, S.TOE_OFF_T))
    return float(np.mean(np.concatenate(errors)) * 1e3)


def test_simulated_walking_toe_off_is_no_longer_early():
    # The simulator's toe-off is the instant of the peak plantarflexion rate (its pitch knot);
    # at 200 Hz the peak sample lies ~2 ms before it on walking strides.
    before, after = _mean_toe_off_error_ms(False), _mean_toe_off_error_ms(True)
    assert before < -1.5
    # -0.57 ms while the push-off ended about the shoe's y axis; -0.81 since it ends about the
    # athlete's oblique toe-off axis: the shoe still rolls at toe-off, so the body y rate is
    # -pitch' cos(roll) and its peak and rising side are no longer exactly the pitch rate's.
    assert abs(after) < 1.0
