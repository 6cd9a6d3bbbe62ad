"""Live streams use and keep the athlete's mounting, and find remounts as they stream (issue 15).

- a batch session, then a stream of the same athlete and foot: the stream is measured in the
  batch's mounting (the same rotation, bit for bit) and its rows equal batch's on the same data
  within the live-against-batch tolerance of test_live_equivalence (`WARMUP_TOLERANCE`, the
  warm-up's gyro bias being the one difference left);
- a stream whose pod is rotated part-way through: a new mounting starts near the rotation, the
  rows after it carry its id and `remount`, those measured in the old frame before it was found
  are invalid ("remount"), and the rows after the switch are measured as batch measures the
  same rotated recording; the same whatever the block size;
- no remount on an unrotated stream (simulated and the real recording).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy.spatial.transform import Rotation
from support.live import stream

from strideflow.analytics.live_analyzer import WARMUP_TOLERANCE, LiveSettings
from strideflow.analytics.live_mountings import REASON_REMOUNT, LiveMountings, chunk_phase
from strideflow.analytics.mountings import FIRST, REMOUNT_BETWEEN, REMOUNT_WITHIN
from strideflow.analytics.pipeline import RecordingAnalyzer
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.hardware.motion_math import rotate_rows
from strideflow.hardware.simulator.simulator import SimulationSettings, Simulator
from strideflow.ingest import read_recording

TURN = Rotation.from_euler("zx", [20.0, 8.0], degrees=True)  # a pod knocked on its mount
EXACT = 1e-6


def rotated_after(samples: pl.DataFrame, foot: str, t0_s: float, turn: Rotation = TURN) -> pl.DataFrame:
    """One foot's samples with the device turned on the shoe by `turn` from `t0_s` on."""
    part = samples.filter(pl.col(S.FOOT) == foot).sort(S.T)
    acc, gyr = part.select(S.ACC).to_numpy().copy(), part.select(S.GYR).to_numpy().copy()
    rows = part[S.T].to_numpy() >= t0_s
    m = np.ascontiguousarray(turn.as_matrix())
    acc[rows] = rotate_rows(m, np.ascontiguousarray(acc[rows]))
    gyr[rows] = rotate_rows(m, np.ascontiguousarray(gyr[rows]))
    return part.with_columns(
        *[pl.Series(c, acc[:, i]) for i, c in enumerate(S.ACC)],
        *[pl.Series(c, gyr[:, i]) for i, c in enumerate(S.GYR)],
    )


def as_session(samples: pl.DataFrame, session_id: str) -> pl.DataFrame:
    return samples.with_columns(pl.lit(session_id).alias(S.SESSION_ID))


def matched_within_tolerance(batch: pl.DataFrame, live: pl.DataFrame, min_matched: float) -> dict[str, float]:
    """test_live_equivalence's rule: same stride count, most strides with the same events, and the
    metrics of those (valid in both) within WARMUP_TOLERANCE; the worst difference per metric."""
    assert live.height == batch.height, (live.height, batch.height)
    b, lv = batch.sort(S.STRIDE_INDEX), live.sort(S.STRIDE_INDEX)
    same = np.all([(b[c] - lv[c]).abs().fill_null(0.0).to_numpy() < EXACT for c in S.EVENT_TIMES], axis=0)
    assert same.mean() >= min_matched, same.mean()
    keep = same & b[S.VALID].to_numpy() & lv[S.VALID].to_numpy()
    worst = {}
    for c, tol in WARMUP_TOLERANCE.items():
        worst[c] = float(np.nanmax(np.abs(b[c].to_numpy()[keep] - lv[c].to_numpy()[keep])))
        assert worst[c] <= tol, (c, worst[c], tol)
    return worst


@pytest.fixture(scope="module")
def real(real_data):
    recording = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)
    first = RecordingAnalyzer().analyze(as_session(recording.samples, "S1"), 204.8).result_
    return recording, first


@pytest.mark.real_data
@pytest.mark.parametrize("foot", S.FEET)
def test_a_stream_after_a_batch_session_is_measured_in_its_mounting(real, foot):
    recording, first = real
    prior = first.mountings[foot][-1]
    samples = as_session(recording.samples, "S2")
    live = stream(samples, foot, 204.8, LiveSettings(), block=205, prior=prior)
    # the same frame: the batch session's rotation itself, not a re-estimate close to it
    assert np.array_equal(live.mounting_.as_matrix(), first.mounting[foot].as_matrix())
    assert [p.mounting.mounting_id for p in live.mountings_.pieces_] == [f"{foot}-S1-1"]
    assert live.mountings_.pieces_[0].mounting.last_session_id == "S2" and live.mountings_.remounts_ == []
    labelled = live.mountings_.label(live.strides_)
    assert set(labelled[S.MOUNTING_ID]) == {f"{foot}-S1-1"} and not labelled[S.REMOUNT].any()
    assert set(labelled[S.MOUNTING_UNCERTAINTY_DEG]) == {prior.uncertainty_deg}
    # its rows are batch's on the same data, within live's tolerance (measured: see the print)
    batch = RecordingAnalyzer().analyze(samples, 204.8, mountings={foot: prior}).result_.strides
    worst = matched_within_tolerance(batch.filter(pl.col(S.FOOT) == foot), labelled, min_matched=0.9)
    assert batch.filter(pl.col(S.FOOT) == foot)[S.MOUNTING_ID].to_list() == labelled[S.MOUNTING_ID].to_list()
    print(f"{foot}: max |live - batch| in the kept mounting {worst}")
    # without the prior the stream's own warm-up estimate is a different frame (so the above is real)
    alone = stream(samples, foot, 204.8, LiveSettings(), block=205)
    assert not np.array_equal(alone.mounting_.as_matrix(), first.mounting[foot].as_matrix())
    assert [p.mounting.started for p in alone.mountings_.pieces_] == [FIRST]
    assert alone.mountings_.pieces_[0].mounting.mounting_id == f"{foot}-S2-1"


@pytest.mark.real_data
def test_a_prior_that_does_not_fit_the_stream_is_a_remount_between_sessions(real):
    recording, first = real
    moved = rotated_after(as_session(recording.samples, "S2"), "left", -1.0)
    live = stream(moved, "left", 204.8, LiveSettings(), block=205, prior=first.mountings["left"][-1])
    (piece,) = live.mountings_.pieces_
    assert piece.mounting.started == REMOUNT_BETWEEN and piece.mounting.mounting_id == "left-S2-1"
    assert "since mounting left-S1-1" in live.mountings_.remounts_[0]
    assert set(live.mountings_.label(live.strides_)[S.REMOUNT]) == {True}


@pytest.fixture(scope="module")
def sim():
    return (
        Simulator(SimulationSettings(duration_s=120.0, seed=11, keep_orientation=False)).simulate().samples_
    )


def test_a_pod_rotated_part_way_through_a_stream_starts_a_new_mounting(sim):
    plain = stream(sim, "left", 200.0, LiveSettings())
    assert [p.mounting.started for p in plain.mountings_.pieces_] == [FIRST]
    moved = rotated_after(sim, "left", 60.0)
    runs = [stream(moved, "left", 200.0, LiveSettings(), block=b) for b in (200, 37)]
    live = runs[0]
    first, second = live.mountings_.pieces_
    assert (first.mounting.mounting_id, second.mounting.mounting_id) == ("left-S01-1", "left-S01-2")
    assert second.mounting.started == REMOUNT_WITHIN and abs(second.mounting.start_t_s - 60.0) < 2.5
    assert second.switch_t_s > second.mounting.start_t_s
    assert len(live.mountings_.remounts_) == 1 and any("remount within" in w for w in live.warnings_)
    # block sizes change nothing: every decision falls at sample counts fixed by the data
    assert runs[1].mountings_.pieces_ == live.mountings_.pieces_
    assert runs[1].strides_.equals(live.strides_)

    rows = live.mountings_.label(live.strides_)
    ic = pl.col(S.IC_T)
    before = rows.filter(ic < second.mounting.start_t_s)
    stale = rows.filter((ic >= second.mounting.start_t_s) & (ic <= second.switch_t_s))
    after = rows.filter(ic > second.switch_t_s)
    assert set(before[S.MOUNTING_ID]) == {"left-S01-1"} and not before[S.REMOUNT].any()
    assert set(after[S.MOUNTING_ID]) == {"left-S01-2"} and after[S.REMOUNT].all()
    # measured in the old frame after the pod moved: kept, marked, not counted
    assert stale.height >= 5 and set(stale[S.MOUNTING_ID]) == {"left-S01-2"} and stale[S.REMOUNT].all()
    assert not stale[S.VALID].any() and REASON_REMOUNT in set(stale[S.REASON])
    assert (live.strides_.filter(ic <= second.switch_t_s)[S.VALID].sum()) > stale[S.VALID].sum()
    # after the switch the stream is measured in the new mounting as batch measures the same
    # rotated recording (batch cuts it at the jump, each piece in its own mounting); measured: the
    # medians agree within 0.02 deg. (Not the unrotated frame: the turned pod looks square to the
    # shoe along another of its axes, which moves the heading by the turn, in batch too.)
    batch = RecordingAnalyzer().analyze(moved, 200.0).result_
    assert [m.mounting_id for m in batch.mountings["left"]] == ["left-S01-1", "left-S01-2"]
    same = after.join(batch.strides, on=S.IC_T, suffix="_batch").filter(
        pl.col(S.VALID) & pl.col(f"{S.VALID}_batch")
    )
    assert same.height >= 10 and same[f"{S.MOUNTING_ID}_batch"].to_list() == same[S.MOUNTING_ID].to_list()
    for c, tol in WARMUP_TOLERANCE.items():
        diff = (same[c] - same[f"{c}_batch"]).abs().median()
        assert diff <= tol, (c, diff)
    # the session's numbers then hold only strides measured in the right frame
    assert rows.filter(pl.col(S.VALID))[S.MOUNTING_ID].n_unique() == 2


@pytest.mark.real_data
def test_the_real_recording_rotated_part_way_through_a_stream(real):
    recording, _ = real
    samples = as_session(recording.samples, "S3")
    for foot in S.FEET:
        plain = stream(samples, foot, 204.8, LiveSettings(), block=205)
        assert len(plain.mountings_.pieces_) == 1, plain.mountings_.remounts_
    t = samples.filter(pl.col(S.FOOT) == "left")[S.T].to_numpy()
    half = float(t[len(t) // 2])
    live = stream(rotated_after(samples, "left", half), "left", 204.8, LiveSettings(), block=205)
    assert [p.mounting.started for p in live.mountings_.pieces_] == [FIRST, REMOUNT_WITHIN]
    assert abs(live.mountings_.pieces_[1].mounting.start_t_s - half) < 2.5


def test_streams_started_together_check_for_remounts_at_different_samples():
    """A team's pods that start together do not all run their remount check in one packet period:
    each stream's first chunk is longer by a phase fixed by its keys (the same after a rebuild)."""
    rate, analysis = 200.0, AnalysisSettings()
    chunk = int(round(20.0 * rate))
    team = [(f"A{i:03d}", "S1", foot) for i in range(50) for foot in S.FEET]
    first = [LiveMountings(*keys, rate, analysis).boundaries(3 * chunk)[0] for keys in team]
    again = [LiveMountings(*keys, rate, analysis).boundaries(3 * chunk)[0] for keys in team]
    assert first == again == [chunk + chunk_phase(keys, chunk) for keys in team]
    assert all(chunk <= f < 2 * chunk for f in first)
    # spread over the chunk: no 100 ms packet period holds more than a few of the 100 checks
    per_packet = np.bincount((np.array(first) - chunk) // int(0.1 * rate))
    assert per_packet.max() <= 4 and np.ptp(first) > 0.8 * chunk
    # after the first, every chunk is `chunk_s` long
    m = LiveMountings(*team[0], rate, analysis)
    ends = m.boundaries(4 * chunk)
    assert np.all(np.diff(ends) == chunk)
