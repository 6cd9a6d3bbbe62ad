"""Provisional stance rows of the live analyzer: out at the toe-off, then confirmed by the stride.

Claims, measured on the simulator (batch's mounting and gyro bias, so the final rows equal batch)
and on the real imu_sample.csv:

- every valid final stride had a valid stance row with the same `ic_t` before it went out;
- the stance row's events equal the final row's (measured 99.3 % on 569 live_simulated strides: the
  rest are strides where batch merged two steps, i.e. the final row is the one that is off);
- with equal events, the stance metrics are within `STANCE_TOLERANCE` of the final ones;
- it goes out in the block holding the swing's first sample past `min_swing_dps` of
  dorsiflexion (simulator: 14-19 samples after the toe-off at 200 Hz; real walking 4-14);
- it is the same whatever the block sizes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.live import batch_settings_for, stream

from strideflow.analytics.live_analyzer import STANCE_TOLERANCE, LiveStrideAnalyzer
from strideflow.hardware import schema as S
from strideflow.ingest.stream_receiver import SampleBlock

EVENTS = (S.FOOT_FLAT_T, S.HEEL_OFF_T, S.TOE_OFF_T)  # rows are paired by ic_t
# Tighter on the simulator (its gyro errors are bias and noise; measured maxima 0.61 deg toe-off
# pronation, 0.08 deg toe-off angle, 0.37 deg/s push-off, <= 0.02 for the rest on 569 strides).
SIM_TOLERANCE = {
    **STANCE_TOLERANCE,
    S.TOE_OFF_PRONATION_DEG: 1.5,  # 1.0 before issue 15 (gain errors, see below): measured 1.42
    # 0.2 before issue 15: the simulated gyros now have gain errors (1 %, 0.5 deg) by default, so the
    # tilt error per stride, which only the final row spreads back, grows; measured 0.50 deg and
    # 1.76 deg/s (push-off rate, was 1.0)
    S.TOE_OFF_ANGLE_DEG: 0.6,
    S.PUSH_OFF_RATE_DPS: 2.0,
    S.FOOT_STRIKE_ANGLE_DEG: 0.05,
    S.PRONATION_EXCURSION_DEG: 0.05,
    S.TIME_TO_MAX_PRONATION_S: 1e-9,
}


def paired(live: LiveStrideAnalyzer) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(steady final strides with their stance row's columns suffixed `_st`, those with equal events).

    Steady: the gait start (its toe-off ends the warm-up's first step, before any stance row can
    be emitted) and the turns (a pivot's swing may never pass `min_swing_dps`: the real walk's last
    stride) are valid strides that may have no stance row."""
    final = live.strides_.filter(pl.col(S.STEADY))
    stances = live.stances_.join(live.stance_emissions_.select(S.IC_T, "emitted_t"), on=S.IC_T)
    both = final.join(live.emissions_.select(S.STRIDE_INDEX, "emitted_t"), on=S.STRIDE_INDEX).join(
        stances, on=S.IC_T, how="left", suffix="_st"
    )
    same = both.filter(pl.all_horizontal([(pl.col(e) - pl.col(f"{e}_st")).abs() < 1e-9 for e in EVENTS]))
    return both, same


def check_stances(
    live: LiveStrideAnalyzer, block: int, max_cross_s: float, tolerance: dict, peak_before_flat: bool = False
) -> tuple:
    """Assert the claims of the module docstring for one stream; (strides, strides with equal events).

    peak_before_flat: compare time_to_max_pronation_s only where both rows find it before
    foot-flat (see below)."""
    both, same = paired(live)
    assert both.height > 10
    assert both[f"{S.VALID}_st"].fill_null(False).all(), "a valid stride without a valid stance row"
    # out before the stride itself (emission = newest sample seen then)
    assert (both["emitted_t_st"] < both["emitted_t"]).all()
    for metric, limit in tolerance.items():
        rows = same
        if metric == S.TIME_TO_MAX_PRONATION_S and peak_before_flat:
            # Where the foot-flat roll is within a few tenths of a degree of the loading peak, the
            # window's maximum can sit on the flat foot in one row and at the peak in the other (the
            # rows level the tilt differently; more so since the simulated gyros have gain errors,
            # issue 15): compare the time only where both rows find the peak before foot-flat.
            loading = same[S.FOOT_FLAT_T] - same[S.IC_T]
            rows = same.filter((pl.col(metric) < loading) & (pl.col(f"{metric}_st") < loading))
        worst = float((rows[metric] - rows[f"{metric}_st"]).abs().max())
        assert worst <= limit, (metric, worst)
    lat = live.stance_emissions_["toe_off_latency_samples"].to_numpy()
    assert lat.max() <= max_cross_s * live.sampling_rate_hz + block, lat.max()
    return both.height, same.height


def test_stance_rows_come_first_and_match_the_strides(live_simulated):
    counts = np.zeros(2, dtype=int)
    for samples, fs, result in live_simulated:
        for foot in S.FEET:
            live = stream(samples, foot, fs, batch_settings_for(samples, foot, fs, result), block=20)
            counts += check_stances(
                live, block=20, max_cross_s=0.1, tolerance=SIM_TOLERANCE, peak_before_flat=True
            )
            assert S.STRIDE_INDEX not in live.stances_.columns
            assert dict(live.stances_.schema) == S.STANCE_SCHEMA
    assert counts[1] >= 0.97 * counts[0], counts


def test_stances_off_emits_none_and_the_same_strides(live_simulated):
    samples, fs, result = live_simulated[0]
    on = batch_settings_for(samples, "left", fs, result)
    off = replace(on, stances=False)
    a, b = stream(samples, "left", fs, on, block=20), stream(samples, "left", fs, off, block=20)
    assert b.stances_.height == 0 and a.stances_.height > 0
    assert a.strides_.equals(b.strides_)


def test_stance_of_a_known_toe_off_is_its_stride(live_simulated):
    """Truth check: a stance's toe-off and pronation at toe-off against the simulator's strides."""
    samples, fs, result = live_simulated[0]
    live = stream(samples, "right", fs, batch_settings_for(samples, "right", fs, result), block=20)
    final = result.strides.filter((pl.col(S.FOOT) == "right") & pl.col(S.STEADY))
    got = live.stances_.join(final, on=S.IC_T, suffix="_batch")
    assert got.height >= 0.97 * final.height
    assert np.allclose(got[S.TOE_OFF_T], got[f"{S.TOE_OFF_T}_batch"], atol=1e-9)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_stances_do_not_depend_on_block_sizes(live_simulated, data):
    samples, fs, result = live_simulated[3]  # running
    part = samples.filter(pl.col(S.FOOT) == "left").sort(S.T).head(int(12 * fs))
    cfg = batch_settings_for(samples, "left", fs, result)
    t, acc, gyr = part[S.T].to_numpy(), part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(t) - 1), max_size=40))))
    live = LiveStrideAnalyzer("A", "S", "left", fs, cfg)
    returned = [
        live.push(SampleBlock(t[lo:hi], acc[lo:hi], gyr[lo:hi])).stances
        for lo, hi in zip([0, *cuts], [*cuts, len(t)], strict=True)
    ]
    whole = LiveStrideAnalyzer("A", "S", "left", fs, cfg)
    whole.push(SampleBlock(t, acc, gyr))
    assert live.stances_.height > 5
    assert live.stances_.equals(whole.stances_)
    # push returns each stance row once, with the block that gave it
    assert pl.concat(returned).equals(live.stances_)


@pytest.mark.real_data
def test_real_recording_stances(real_data):
    from strideflow.analytics.pipeline import analyze_recording
    from strideflow.ingest import read_recording

    recording = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)
    result = analyze_recording(recording)
    fs = recording.sampling_rate_hz
    for foot in S.FEET:
        live = stream(
            recording.samples, foot, fs, batch_settings_for(recording.samples, foot, fs, result), 20
        )
        # turns: the dorsiflexion passes min_swing_dps up to 0.3 s after the toe-off
        strides, same = check_stances(live, block=20, max_cross_s=0.3, tolerance=STANCE_TOLERANCE)
        assert same == strides
