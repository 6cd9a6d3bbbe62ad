"""Stride events on the real gaitmap example recordings (hand labels; stairs and MS plausibility)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from strideflow.analytics.evaluation import match_events, match_strides
from strideflow.analytics.events import (
    EVENTS_SCHEMA,
    IC_IDX,
    NEXT_IC_IDX,
    REASON_GAIT_START,
    TOE_OFF_IDX,
    EventSettings,
    StrideEventDetector,
)
from strideflow.analytics.pipeline import analyze_recording
from strideflow.hardware.schema import (
    CONTEXT,
    FOOT_FLAT_T,
    HEEL_OFF_T,
    IC_T,
    NEXT_IC_T,
    REASON,
    STEADY,
    TOE_OFF_T,
    VALID,
)
from strideflow.ingest import read_recording

pytestmark = pytest.mark.real_data
FS = 204.8
TOL_S = 0.060
ACC_COLS = ["acc_x", "acc_y", "acc_z"]
GYR_COLS = ["gyr_x", "gyr_y", "gyr_z"]


def _two_feet(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    d = pd.read_csv(path, header=[0, 1], index_col=0)
    return {
        f: (d[f"{f}_sensor"][ACC_COLS].to_numpy(), d[f"{f}_sensor"][GYR_COLS].to_numpy())
        for f in ("left", "right")
    }


@pytest.fixture(scope="module")
def healthy(real_data):
    feet = _two_feet(real_data / "imu_sample.csv")
    labels = pd.read_csv(real_data / "stride_borders_sample.csv")
    # Raw sensor frame, rolled ~15 deg from the foot frame: gyr_z carries part of the sagittal
    # rate, so the toe-off's spin weighting (meant for foot-frame input) is off here. The
    # production path, with the mounting alignment, is tested below with the default settings.
    raw = EventSettings(to_spin_weight=0.0)
    events = {
        f: StrideEventDetector(raw).detect(acc, gyr, FS, foot=f).events_ for f, (acc, gyr) in feet.items()
    }
    return feet, labels, events


def test_events_table_contract_and_order(healthy):
    _, _, events = healthy
    for ev in events.values():
        assert dict(ev.schema) == EVENTS_SCHEMA
        order = (
            ev.filter(pl.col(VALID)).select(IC_T, FOOT_FLAT_T, HEEL_OFF_T, TOE_OFF_T, NEXT_IC_T).to_numpy()
        )
        assert (np.diff(order, axis=1) > 0).all(), "IC < foot-flat < heel-off < toe-off < next IC"
        assert (ev[NEXT_IC_IDX].to_numpy()[:-1] == ev[IC_IDX].to_numpy()[1:]).all()
        assert (ev[REASON].is_null() == ev[VALID]).all()


@pytest.mark.parametrize("foot, n_labels", [("left", 28), ("right", 30)])
def test_every_labelled_stride_is_matched_by_exactly_one_detected_stride(healthy, foot, n_labels):
    feet, labels, events = healthy
    ev = events[foot]
    lab = labels[labels["foot"] == foot]
    assert len(lab) == n_labels
    # A labelled stride runs toe-off to toe-off; the detected IC-to-IC stride sharing its stance
    # has its toe-off at the label's end border.
    ends_s = lab["end"].to_numpy() / FS
    to_s = ev[TOE_OFF_T].to_numpy()
    within = np.abs(to_s[:, None] - ends_s[None, :]) <= TOL_S
    assert (within.sum(axis=0) == 1).all(), "each label: exactly one detected toe-off within 60 ms"
    m = match_strides(ev, pl.DataFrame({TOE_OFF_T: ends_s}), tolerance_s=TOL_S, only_valid=False)
    assert m.n_matched == n_labels
    # The labels sit on a local maximum of gyr_y and so do our toe-offs: same sample.
    assert np.abs(m.matches["error_s"].to_numpy()).max() <= 1.5 / FS
    gyr_y = feet[foot][1][:, 1]
    matched_to = ev[TOE_OFF_IDX].to_numpy()[m.matches["detected_row"].to_numpy()]
    assert (gyr_y[matched_to] > 100.0).all()


@pytest.mark.parametrize("foot", ["left", "right"])
def test_no_unlabelled_valid_stride_on_the_straight_walks(healthy, foot):
    _, labels, events = healthy
    ev = events[foot]
    lab = labels[labels["foot"] == foot].sort_values("start")
    borders_s = np.unique(np.concatenate([lab["start"], lab["end"]])) / FS
    # Straight-walk sections: runs of consecutive labels (a gap between labels is a turn).
    breaks = np.flatnonzero(lab["start"].to_numpy()[1:] != lab["end"].to_numpy()[:-1])
    starts = np.concatenate([[lab["start"].iloc[0]], lab["start"].to_numpy()[breaks + 1]]) / FS
    ends = np.concatenate([lab["end"].to_numpy()[breaks], [lab["end"].iloc[-1]]]) / FS
    valid = ev.filter(pl.col(VALID))
    to_s = valid[TOE_OFF_T].to_numpy()
    in_section = ((to_s[:, None] >= starts - TOL_S) & (to_s[:, None] <= ends + TOL_S)).any(axis=1)
    near_border = (np.abs(to_s[:, None] - borders_s[None, :]) <= TOL_S).any(axis=1)
    assert not (in_section & ~near_border).any()
    assert valid.height >= 0.9 * len(lab)


@pytest.fixture(scope="module")
def pipeline_strides(real_data):
    rec = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=FS)
    return analyze_recording(rec).strides


@pytest.mark.parametrize("foot", ["left", "right"])
def test_every_labelled_border_has_a_toe_off_through_the_pipeline(real_data, pipeline_strides, foot):
    # Starts and ends: the walk's first toe-off (from standing) and the toe-offs that begin the
    # turns included, after the mounting alignment has levelled and turned the sensor frame.
    lab = pd.read_csv(real_data / "stride_borders_sample.csv")
    lab = lab[lab["foot"] == foot]
    borders_s = np.unique(np.concatenate([lab["start"], lab["end"]])) / FS
    st = pipeline_strides.filter(pl.col("foot") == foot)
    to_s = st[TOE_OFF_T].to_numpy()
    err_s = np.abs(to_s[:, None] - borders_s[None, :]).min(axis=0)
    assert (err_s <= TOL_S).all(), (borders_s[err_s > TOL_S] * FS).round().tolist()
    # Most sit on the same peak of the plantarflexion rate: within two samples.
    assert np.mean(err_s <= 2.0 / FS) >= 0.9
    for col in (IC_T, FOOT_FLAT_T, HEEL_OFF_T, TOE_OFF_T, NEXT_IC_T):
        assert st[col].null_count() == 0


def test_gait_start_row_carries_the_first_toe_off(real_data, pipeline_strides):
    st = pipeline_strides.filter(pl.col("foot") == "left").sort(IC_T)
    first = st.row(0, named=True)
    # A real stride from standing, measured (valid), kept out of the statistics by its context.
    assert first[CONTEXT] == REASON_GAIT_START and first[VALID] and not first[STEADY]
    # The walk starts from standing: IC is the start of that still period, the recording's start.
    assert first[IC_T] == pytest.approx(0.0, abs=0.05)
    assert first[IC_T] < first[FOOT_FLAT_T] < first[HEEL_OFF_T] < first[TOE_OFF_T] < first[NEXT_IC_T]
    assert first[TOE_OFF_T] == pytest.approx(364 / FS, abs=2.0 / FS)  # the labelled first border
    assert first[NEXT_IC_T] == st.row(1, named=True)[IC_T]
    # Exactly one gait start per foot: the walk has one bout.
    assert (pipeline_strides[CONTEXT] == REASON_GAIT_START).sum() == 2


def test_turn_strides_are_marked(healthy):
    _, _, events = healthy
    for ev in events.values():
        turns = ev.filter(pl.col(CONTEXT) == "turn")
        # Two turns (middle and end of the walk), each spread over one to two strides per foot:
        # valid strides (measured), in context "turn".
        assert 2 <= turns.height <= 4 and turns[VALID].all()
        assert (turns["heading_change_deg"].abs() > 45).all()
        straight = ev.filter(pl.col(VALID) & pl.col(CONTEXT).is_null())
        assert straight["heading_change_deg"].abs().median() < 3.0
        assert straight["displacement_m"].is_between(0.8, 1.7).all()
        assert straight["displacement_m"].median() == pytest.approx(1.37, abs=0.1)


@pytest.mark.parametrize(
    "name, rate, lo, hi",
    [
        ("imu_sample_healthy_stair_up.csv", FS, 15, 22),
        ("imu_sample_healthy_stair_down.csv", FS, 15, 22),
    ],
)
def test_stairs_run_with_a_plausible_stride_count(real_data, name, rate, lo, hi):
    for foot, (acc, gyr) in _two_feet(real_data / name).items():
        ev = StrideEventDetector().detect(acc, gyr, rate, foot=foot).events_
        n_valid = ev[VALID].sum()
        assert lo <= n_valid <= hi, (foot, n_valid)
        # Stair strides climb two steps: about 0.6 to 0.9 m of foot travel, 0.8 to 1.2 s.
        v = ev.filter(pl.col(VALID))
        assert v["displacement_m"].median() == pytest.approx(0.73, abs=0.15)
        assert (v[NEXT_IC_T] - v[IC_T]).median() == pytest.approx(0.95, abs=0.2)


@pytest.mark.parametrize("foot", ["left", "right"])
def test_ms_recording_runs_with_a_plausible_stride_count(real_data, foot):
    d = pd.read_csv(real_data / f"imu_sample_ms_{foot}.csv", index_col=0)
    ev = (
        StrideEventDetector().detect(d[ACC_COLS].to_numpy(), d[GYR_COLS].to_numpy(), 102.4, foot=foot).events_
    )
    # 7000 samples at 102.4 Hz = 68 s of walking at about one stride per 0.93 s.
    assert 65 <= ev.height <= 80
    assert ev[VALID].sum() >= 0.85 * ev.height
    t = (ev[NEXT_IC_T] - ev[IC_T]).filter(ev[VALID])
    assert t.median() == pytest.approx(0.93, abs=0.15)


def test_match_events_is_one_to_one_and_closest_first():
    det = np.array([0.0, 1.00, 1.04, 2.5])
    ref = np.array([1.03, 2.0, 2.52])
    di, ri = match_events(det, ref, 0.06)
    np.testing.assert_array_equal(di, [2, 3])
    np.testing.assert_array_equal(ri, [0, 2])
