"""Stride-normalised curves: known answers on synthetic signals, and agreement with the metrics."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strideflow.analytics.curves import (
    CURVES_SCHEMA,
    PCT,
    PHASE,
    STANCE,
    STRIDE,
    STRIDE_COUNT,
    CurveAccumulator,
    CurveSettings,
    StrideCurves,
    curve_mean,
    curve_sd,
    curve_summary,
    session_curves,
    stride_curves,
)
from strideflow.analytics.pipeline import analyze_samples
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator

FS = 200.0


def _signals(athlete: str, foot: str, t: np.ndarray, pron: np.ndarray, pitch: np.ndarray) -> pl.DataFrame:
    n = t.size
    return pl.DataFrame(
        {
            S.ATHLETE_ID: [athlete] * n,
            S.SESSION_ID: ["s1"] * n,
            S.FOOT: [foot] * n,
            S.T: t,
            S.PRONATION_DEG: pron,
            S.PITCH_DEG: pitch,
        }
    )


def _strides(rows: list[tuple]) -> pl.DataFrame:
    """rows: (athlete, foot, stride_index, ic_t, toe_off_t, next_ic_t, valid)."""
    cols = (S.ATHLETE_ID, S.FOOT, S.STRIDE_INDEX, S.IC_T, S.TOE_OFF_T, S.NEXT_IC_T, S.VALID)
    df = pl.DataFrame(
        [dict(zip(cols, r, strict=True)) for r in rows],
        schema={
            S.ATHLETE_ID: pl.String,
            S.FOOT: pl.String,
            S.STRIDE_INDEX: pl.Int64,
            S.IC_T: pl.Float64,
            S.TOE_OFF_T: pl.Float64,
            S.NEXT_IC_T: pl.Float64,
            S.VALID: pl.Boolean,
        },
        orient="row",
    )
    return df.with_columns(pl.lit("s1").alias(S.SESSION_ID))


def _at(curves: pl.DataFrame, athlete: str, stride: int, phase: str, column: str) -> np.ndarray:
    return (
        curves.filter(
            (pl.col(S.ATHLETE_ID) == athlete) & (pl.col(S.STRIDE_INDEX) == stride) & (pl.col(PHASE) == phase)
        )
        .sort(PCT)[column]
        .to_numpy()
    )


def test_linear_signals_give_exact_curves_for_overlapping_feet():
    """Angles linear in time are reproduced exactly, and two athletes recorded over the same
    seconds (offset onto one time axis internally) do not read each other's signal."""
    t = np.arange(0, 10, 1 / FS)
    signals = pl.concat(
        [
            _signals("a", "left", t, 2.0 * t + 1.0, -3.0 * t),
            _signals("b", "left", t, -5.0 * t + 40.0, 0.5 * t + 2.0),
        ]
    )
    strides = _strides([("a", "left", 0, 1.0, 1.6, 2.1, True), ("b", "left", 0, 1.0, 1.7, 2.2, True)])
    curves = StrideCurves(CurveSettings(points=11)).compute(strides, signals).curves_
    assert curves.schema == pl.Schema(CURVES_SCHEMA)
    assert curves.height == 2 * 2 * 11
    frac = np.linspace(0, 1, 11)
    ta = 1.0 + frac * 0.6
    np.testing.assert_allclose(_at(curves, "a", 0, STANCE, S.PRONATION_DEG), 2 * ta + 1, atol=1e-9)
    np.testing.assert_allclose(_at(curves, "a", 0, STANCE, S.PITCH_DEG), -3 * ta, atol=1e-9)
    tb = 1.0 + frac * 1.2
    np.testing.assert_allclose(_at(curves, "b", 0, STRIDE, S.PRONATION_DEG), -5 * tb + 40, atol=1e-9)
    np.testing.assert_allclose(_at(curves, "b", 0, STRIDE, S.PITCH_DEG), 0.5 * tb + 2, atol=1e-9)
    np.testing.assert_allclose(_at(curves, "a", 0, STANCE, PCT), frac * 100)


def test_sine_pronation_over_stance_matches_its_formula():
    """A half sine of 8 deg over each stance, sampled at 200 Hz, resamples to the formula."""
    stance_s, stride_s = 0.65, 1.1
    t = np.arange(0, 12, 1 / FS)
    phase = np.mod(t, stride_s)
    pron = np.where(phase < stance_s, 8.0 * np.sin(np.pi * phase / stance_s), 0.0)
    pitch = 20.0 * np.cos(2 * np.pi * phase / stride_s)
    ics = np.arange(1, 9) * stride_s
    rows = [("a", "right", i, ic, ic + stance_s, ic + stride_s, True) for i, ic in enumerate(ics)]
    curves = stride_curves_from(rows, _signals("a", "right", t, pron, pitch))
    pct = np.linspace(0, 100, 101)
    for i in range(len(ics)):
        np.testing.assert_allclose(
            _at(curves, "a", i, STANCE, S.PRONATION_DEG), 8.0 * np.sin(np.pi * pct / 100), atol=2e-3
        )
        np.testing.assert_allclose(
            _at(curves, "a", i, STRIDE, S.PITCH_DEG), 20.0 * np.cos(2 * np.pi * pct / 100), atol=5e-3
        )
    summary = curve_summary(curves)
    peak = summary.filter((pl.col(PHASE) == STANCE) & (pl.col(PCT) == 50.0))
    assert peak[STRIDE_COUNT].item() == len(ics)
    assert peak[curve_mean(S.PRONATION_DEG)].item() == pytest.approx(8.0, abs=2e-3)
    assert peak[curve_sd(S.PRONATION_DEG)].item() < 1e-6


def stride_curves_from(rows: list[tuple], signals: pl.DataFrame, points: int = 101) -> pl.DataFrame:
    return StrideCurves(CurveSettings(points=points)).compute(_strides(rows), signals).curves_


def test_missing_events_and_out_of_range_give_null_and_invalid_strides_are_kept():
    t = np.arange(0, 5, 1 / FS)
    signals = _signals("a", "left", t, t, t)
    rows = [
        ("a", "left", 0, 1.0, None, 2.0, False),  # no toe-off: stance unknown, stride known
        ("a", "left", 1, 4.5, 4.9, 5.6, True),  # runs past the end of the signal
        ("a", "left", 2, 2.0, 2.5, 3.0, False),
    ]
    curves = stride_curves_from(rows, signals, points=5)
    assert curves.filter(pl.col(S.STRIDE_INDEX) == 0)[S.VALID].to_list() == [False] * 10
    assert np.isnan(_at(curves, "a", 0, STANCE, S.PRONATION_DEG).astype(float)).all()
    np.testing.assert_allclose(_at(curves, "a", 0, STRIDE, S.PRONATION_DEG), [1.0, 1.25, 1.5, 1.75, 2.0])
    stride_1 = _at(curves, "a", 1, STRIDE, S.PRONATION_DEG).astype(float)
    np.testing.assert_allclose(stride_1[:2], [4.5, 4.775])  # the signal ends at 4.995 s
    assert np.isnan(stride_1[2:]).all()
    np.testing.assert_allclose(_at(curves, "a", 2, STANCE, S.PITCH_DEG), [2.0, 2.125, 2.25, 2.375, 2.5])
    # The summary uses valid strides only unless told otherwise.
    assert curve_summary(curves).filter(pl.col(PHASE) == STANCE)[STRIDE_COUNT].max() == 1
    assert curve_summary(curves, valid_only=False).filter(pl.col(PHASE) == STRIDE)[STRIDE_COUNT].max() == 3


def test_summary_mean_and_sd_of_offset_strides():
    """Mean and SD (ddof 1) of two strides, one shifted +1 deg and one -1 deg, by formula."""
    t = np.arange(0, 6, 1 / FS)
    shape = np.sin(t)
    offset = np.where(t < 3.0, 1.0, -1.0)
    signals = _signals("a", "left", t, shape + offset, shape)
    rows = [("a", "left", 0, 1.0, 1.5, 2.0, True), ("a", "left", 1, 4.0, 4.5, 5.0, True)]
    curves = stride_curves_from(rows, signals, points=6)
    summary = curve_summary(curves).filter(pl.col(PHASE) == STANCE).sort(PCT)
    frac = np.linspace(0, 1, 6)
    p0 = np.sin(1.0 + 0.5 * frac) + 1.0
    p1 = np.sin(4.0 + 0.5 * frac) - 1.0
    np.testing.assert_allclose(summary[curve_mean(S.PRONATION_DEG)].to_numpy(), (p0 + p1) / 2, atol=1e-4)
    np.testing.assert_allclose(
        summary[curve_sd(S.PRONATION_DEG)].to_numpy(), np.abs(p0 - p1) / np.sqrt(2), atol=1e-4
    )


def test_empty_inputs_give_an_empty_table():
    empty = StrideCurves().compute(
        _strides([]), _signals("a", "left", np.array([]), np.array([]), np.array([]))
    )
    assert empty.curves_.height == 0 and empty.curves_.schema == pl.Schema(CURVES_SCHEMA)
    with pytest.raises(ValueError, match="points"):
        StrideCurves(CurveSettings(points=1)).compute(_strides([]), _signals("a", "left", *[np.zeros(1)] * 3))


@pytest.fixture(scope="module")
def simulated():
    sim = Simulator(
        SimulationSettings(activity="walk", duration_s=25.0, seed=(7, 1), athlete_id="A1", session_id="s1")
    ).simulate()
    result = analyze_samples(sim.samples_, sim.settings.sampling_rate_hz)
    return result, stride_curves(result)


def test_curves_of_a_simulated_walk_agree_with_the_stride_metrics(simulated):
    """The stance curve reproduces the metrics read from the same signal: pronation excursion
    (max over the first 60 % of stance minus IC) and the pitch drop from foot-flat to toe-off."""
    result, curves = simulated
    strides = result.strides
    n_feet = strides.select(S.FOOT).n_unique()
    assert curves.height == strides.height * 2 * 101
    assert n_feet == 2
    stance = curves.filter(pl.col(PHASE) == STANCE)
    per_stride = (
        stance.group_by(*S.KEYS, S.STRIDE_INDEX)
        .agg(
            (
                pl.col(S.PRONATION_DEG).filter(pl.col(PCT) <= 60.0).max()
                - pl.col(S.PRONATION_DEG).sort_by(PCT).first()
            ).alias("excursion"),
            pl.col(S.PITCH_DEG).sort_by(PCT).last().alias("pitch_to"),
        )
        .join(strides, on=[*S.KEYS, S.STRIDE_INDEX])
        .filter(pl.col(S.VALID))
    )
    assert per_stride.height > 20
    err = (per_stride["excursion"] - per_stride[S.PRONATION_EXCURSION_DEG]).abs()
    # 1 % steps against every sample: the curve's peak can only fall slightly short.
    assert err.max() < 0.1
    assert per_stride["excursion"].mean() > 1.0
    # Stance and stride curves start at the same instant (IC).
    starts = curves.filter(pl.col(PCT) == 0.0).pivot(
        PHASE, index=[*S.KEYS, S.STRIDE_INDEX], values=S.PITCH_DEG
    )
    np.testing.assert_allclose(starts[STANCE].to_numpy(), starts[STRIDE].to_numpy(), atol=1e-9)
    # Toe-off: the foot is pitched toes-down (plantarflexed) by tens of degrees.
    assert per_stride["pitch_to"].median() < -20.0


def test_session_curves_equal_the_summary_of_the_stride_curves(simulated):
    """What batch and the service store (`session_curves`, from the arrays) is `curve_summary` of the
    per-stride table, also with a stride made invalid and one foot's strides all invalid."""
    result, curves = simulated
    assert_frame_equal(session_curves(result), curve_summary(curves), abs_tol=1e-9, rel_tol=1e-9)
    strides = result.strides.with_columns(
        pl.when((pl.col(S.STRIDE_INDEX) == 3) | (pl.col(S.FOOT) == "right"))
        .then(False)
        .otherwise(pl.col(S.VALID))
        .alias(S.VALID)
    )
    changed = dataclasses.replace(result, strides=strides)
    expected = curve_summary(stride_curves(changed))
    got = session_curves(changed)
    assert set(got[S.FOOT].unique()) == {"left"}
    assert_frame_equal(got, expected, abs_tol=1e-9, rel_tol=1e-9)


def test_accumulator_in_portions_equals_the_session_summary(simulated):
    """A live stream adds its strides a few at a time (`CurveAccumulator`): merged over any split,
    with an invalid stride among them, the summary is batch's `session_curves` of all of them."""
    result, _ = simulated
    strides = result.strides.with_columns(
        pl.when(pl.col(S.STRIDE_INDEX) == 4).then(False).otherwise(pl.col(S.VALID)).alias(S.VALID)
    )
    signals = pl.concat([s for s in result.signals.values() if s.height], how="diagonal_relaxed")
    expected = session_curves(dataclasses.replace(result, strides=strides))
    rng = np.random.default_rng(3)
    for _ in range(3):
        acc = CurveAccumulator()
        order = strides.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 30)))
        cuts = np.sort(rng.choice(np.arange(1, order.height), size=5, replace=False))
        for lo, hi in zip([0, *cuts], [*cuts, order.height], strict=True):
            acc.add(order.slice(lo, hi - lo), signals)
        assert acc.strides_added_ == strides.height
        assert_frame_equal(acc.summary_, expected, abs_tol=1e-9, rel_tol=1e-9)
    assert_frame_equal(CurveAccumulator().summary_, curve_summary(pl.DataFrame(schema=CURVES_SCHEMA)))


def test_add_foot_from_arrays_equals_add(simulated):
    """The live analyzer's entry (`add_foot`: one foot's strides and signal as arrays, no polars)
    resamples and merges as `add` does: the same summary per foot."""
    result, _ = simulated
    expected = session_curves(result)
    for foot in ("left", "right"):
        strides = result.strides.filter(pl.col(S.FOOT) == foot).sort(S.STRIDE_INDEX)
        signal = result.signals[foot].sort(S.T)
        acc = CurveAccumulator()
        for lo in range(0, strides.height, 4):  # a few strides at a time, as windows emit them
            part = strides.slice(lo, 4)
            acc.add_foot(
                foot,
                part[S.ACTIVITY].to_list(),
                part[S.STEADY].to_numpy(),
                {c: part[c].fill_null(np.nan).to_numpy() for c in (S.IC_T, S.TOE_OFF_T, S.NEXT_IC_T)},
                signal[S.T].to_numpy(),
                signal[S.PRONATION_DEG].fill_null(np.nan).to_numpy(),
                signal[S.PITCH_DEG].fill_null(np.nan).to_numpy(),
            )
        assert acc.strides_added_ == strides.height
        assert_frame_equal(acc.summary_, expected.filter(pl.col(S.FOOT) == foot), abs_tol=1e-9, rel_tol=1e-9)
