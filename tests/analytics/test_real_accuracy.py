"""Stride detection, stride length and IC timing against independent references on real recordings.

- `footprints_walks/`: one LORD 3DM-GX5-25 on one foot, read as the device exported it (the
  project's SensorConnect reader), every footprint measured on a tiled floor. The walks include
  U-turns, speed changes and fast, running-like strides (2.2-3.0 m). The detected strides are
  paired with the footprint strides by order: the first row is the stride from standing (gait
  start), as is the first footprint stride.
- `imu_sample_ic_stride.csv`: initial contacts from motion capture (102.4 Hz).

The bounds are the figures measured when these tests were written (benchmarks/README.md, "real
data") with a small margin; walks are grouped by their reference's median stride (fast: >= 1.5 m),
never by file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from support.footprints import MISSING, WALKS, analysed_walk, needs_walks

from strideflow.analytics.events import REASON_TOO_LONG, REASON_TOO_SHORT, REASON_TURN
from strideflow.analytics.pipeline import AnalysisSettings, analyze_recording
from strideflow.fusion.zupt import ZuptSettings
from strideflow.hardware.schema import FOOT, IC_T, NEXT_IC_T, REASON, STRIDE_LENGTH_M, VALID
from strideflow.ingest import read_recording

pytestmark = pytest.mark.real_data
TRIALS = (31, 32, 33, 34, 35, 36, 42, 43, 44, 45)


def footprint_strides_m(trial: int) -> np.ndarray:
    """Stride lengths (m) between consecutive measured footprints of one walk."""
    xy = pd.read_csv(WALKS / f"footprints_{trial}.csv", comment="#")[["x_m", "y_m"]].to_numpy(float)
    return np.linalg.norm(np.diff(xy, axis=0), axis=1)


@pytest.fixture(scope="module", params=TRIALS, ids=[f"walk{t}" for t in TRIALS])
def walk(request):
    trial = request.param
    if not WALKS.is_dir():
        pytest.skip(MISSING)
    strides = analysed_walk(trial)[1]
    return trial, strides.sort(IC_T), footprint_strides_m(trial)


@needs_walks
def test_every_footprint_stride_is_one_detected_stride(walk):
    _, strides, ref = walk
    # No stride merged on a speed change or split: one row per footprint stride, gait start included.
    assert strides.height == len(ref)
    assert not strides[REASON].is_in([REASON_TOO_LONG, REASON_TOO_SHORT]).any()
    assert (strides[NEXT_IC_T].to_numpy()[:-1] == strides[IC_T].to_numpy()[1:]).all()
    # Paired by order, nearly every stride has its footprint's length (turns included).
    err = strides[STRIDE_LENGTH_M].to_numpy() - ref
    assert np.mean(np.abs(err) < 0.30) >= 0.95


@needs_walks
def test_stride_length_and_walked_distance_against_the_footprints(walk):
    _, strides, ref = walk
    length = strides[STRIDE_LENGTH_M].to_numpy()
    straight = (strides[VALID] & strides[REASON].is_null()).to_numpy()
    assert straight.mean() >= 0.65  # the invalid rest: the gait start and the U-turn strides
    assert not strides.filter(~pl.col(VALID))[REASON].is_in([REASON_TOO_LONG, REASON_TOO_SHORT]).any()
    assert set(strides.filter(~pl.col(VALID))[REASON].unique()) <= {REASON_TURN, "gait_start"}
    err_cm = 100.0 * (length[straight] - ref[straight])
    fast = np.median(ref) >= 1.5
    # Every walk meets the issue-17 targets with the defaults (round eight: the local stance tilt
    # fit with the levelling's prior): median abs measured 0.6-1.2 cm normal, 0.9-1.5 cm fast (1.6-2.4
    # cm before the fit, 2.6-3.7 before the pod's lever, 3.5-5.3 before rolling anchors took gravity
    # from a wider window); bias -0.5...+1.1 cm normal, -1.0...+1.4 cm fast (35's -4.9 before the
    # reader rebuilt its clipped gyro): see benchmarks/README.md, real data.
    assert np.median(np.abs(err_cm)) <= (1.8 if fast else 1.4)
    assert abs(np.mean(err_cm)) <= 1.7
    # Walked distance: every stride, the invalid ones and the first from standing included
    # (measured -1.26...+0.82 % normal, -0.35...+0.70 % fast; walk 35 -1.9 % before the clipped gyro
    # was rebuilt).
    assert abs(length.sum() / ref.sum() - 1.0) <= 0.014


@needs_walks
def test_the_whole_segment_stance_tilt_fit_meets_the_stride_length_targets(walk):
    # Opt-in, batch only (the live analysis cannot reproduce a fit across every stance of a
    # segment; the default is its local form): the anchor tilts refitted from the velocity, each
    # within the SD the levelling's own corrections show for its gravity readings (1.1-1.9 deg on
    # the fast walks' rolling anchors, 0.01-0.14 deg on the simulator, which it leaves about
    # unchanged). Measured: median abs 0.6-1.6 cm (fast 1.1-1.6), bias -0.7...+1.1 cm, distance
    # -1.2...+0.8 % (benchmarks/README.md, real data, round seven).
    trial, strides, ref = walk
    whole = ZuptSettings(tilt_fit_sd_mps=0.1, tilt_fit_prior_deg="levelling", tilt_fit_span=None)
    settings = AnalysisSettings(zupt=whole)
    fitted = analyze_recording(analysed_walk(trial)[0], settings).strides.sort(IC_T)
    assert fitted.height == strides.height
    length = fitted[STRIDE_LENGTH_M].to_numpy()
    straight = (fitted[VALID] & fitted[REASON].is_null()).to_numpy()
    err_cm = 100.0 * (length[straight] - ref[straight])
    assert np.median(np.abs(err_cm)) <= 1.8
    assert abs(np.mean(err_cm)) <= 1.8
    assert abs(length.sum() / ref.sum() - 1.0) <= 0.014


@needs_walks
def test_the_first_stride_from_standing_has_its_footprint_length(walk):
    # A slow first step turns through zero at its heel strike, a few tenths of a second before its
    # foot-flat: taken for a stance there, it cut the step to 0.16-0.40 m (footprints 0.63-0.76 m).
    _, strides, ref = walk
    assert strides[REASON][0] == "gait_start"
    assert abs(strides[STRIDE_LENGTH_M][0] - ref[0]) <= 0.05


def test_initial_contact_against_motion_capture(real_data):
    fs = 102.4
    strides = analyze_recording(
        read_recording(real_data / "imu_sample_ic_stride.csv", sampling_rate_hz=fs)
    ).strides
    borders = pd.read_csv(real_data / "stride_borders_sample_ic_stride.csv")
    errors_ms = []
    for foot in ("left", "right"):
        mine = strides.filter(pl.col(FOOT) == foot)
        ic_s = np.unique(np.concatenate([mine[IC_T].to_numpy(), mine[NEXT_IC_T].to_numpy()]))
        ref = borders[borders["foot"] == foot]
        ref_s = np.unique(np.concatenate([ref["start"], ref["end"]])) / fs
        nearest = np.abs(ic_s[:, None] - ref_s[None, :]).argmin(axis=0)
        errors_ms.append(1000.0 * (ic_s[nearest] - ref_s))
    e = np.concatenate(errors_ms)
    assert len(e) == 22 and np.abs(e).max() <= 40.0  # every reference IC has a detected IC
    # One sample is 9.8 ms: the errors are whole samples (0, +-1, a few -2 and -3).
    assert np.median(np.abs(e)) <= 10.0
    assert abs(e.mean()) <= 6.0


@pytest.mark.parametrize(
    "name, rate_hz",
    [
        ("imu_sample.csv", 204.8),
        ("imu_sample_ms_left.csv", 102.4),
        ("imu_sample_ms_right.csv", 102.4),
        ("imu_sample_healthy_stair_up.csv", 204.8),
        ("imu_sample_healthy_stair_down.csv", 204.8),
        ("imu_sample_ic_stride.csv", 102.4),
    ],
)
def test_no_stride_is_split_on_walking_stairs_or_pathological_gait(real_data, name, rate_hz):
    # Two dorsiflexion peaks of one swing (stair descent) must not enclose a "stance": the
    # swing-guided anchors once split 5 of 19 strides per foot there into 0.2 s pieces.
    strides = analyze_recording(read_recording(real_data / name, sampling_rate_hz=rate_hz)).strides
    assert not strides[REASON].is_in([REASON_TOO_SHORT]).any()
    assert (strides.filter(pl.col(VALID))["stride_time_s"] >= 0.6).all()
