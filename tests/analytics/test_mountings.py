"""One mounting per athlete, device and foot, kept across sessions; remounts found (issue 15 item 3).

- a pod rotated part-way through a recording (simulated, and a real recording rotated by the
  same rotation maths the sensor model uses) starts a new mounting at the rotation, and the
  unrotated recordings (every real file in shared/) keep one mounting;
- a mounting kept across two sessions of one device gives the same frame (the same rotation,
  bit for bit, and the same mounting id in the strides and sessions);
- on the real footprint walks (one pod, one foot, ten walks) the walks of one mount stay one
  mounting while the pod's different mount from walk 42 on is a remount;
- the store: the team batch's mountings file, a session analysed again counts once, and the
  sessions of one athlete reuse the mounting through the batch;
- the API lists them (role checks: the role matrix of test_api_roles walks the route).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from scipy.spatial.transform import Rotation
from support.mounting import RECORDINGS, read_foot
from support.paths import SHARED_DATA

from strideflow.analytics.mountings import (
    DEFAULT_DEVICE,
    FIRST,
    REMOUNT_BETWEEN,
    REMOUNT_WITHIN,
    MountingTracker,
    mountings_path,
    prior_mountings,
    read_mountings,
    record_mountings,
)
from strideflow.analytics.pipeline import RecordingAnalyzer
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware.motion_math import rotate_rows
from strideflow.hardware.schema import ACC, FOOT, GYR, MOUNTING_ID, REMOUNT, T
from strideflow.hardware.simulator.imu import draw_gyr_gain
from strideflow.hardware.simulator.params import sample_athlete
from strideflow.hardware.simulator.simulator import SimulationSettings, Simulator
from strideflow.ingest import read_recording

WALKS = SHARED_DATA / "footprints_walks"
SETTINGS = AnalysisSettings()
TURN = Rotation.from_euler("zx", [20.0, 8.0], degrees=True)  # a pod knocked on its mount


def rotated_after(acc: np.ndarray, gyr: np.ndarray, start: int, turn: Rotation = TURN):
    """The device turned on the shoe by `turn` from row `start` on (device-frame vectors rotate)."""
    acc, gyr = acc.copy(), gyr.copy()
    m = np.ascontiguousarray(turn.as_matrix())
    acc[start:] = rotate_rows(m, np.ascontiguousarray(acc[start:]))
    gyr[start:] = rotate_rows(m, np.ascontiguousarray(gyr[start:]))
    return acc, gyr


def track(acc, gyr, fs, keys=("A", "S1", "left"), prior=None, t=None):
    t = np.arange(len(acc)) / fs if t is None else t
    return MountingTracker(SETTINGS).estimate(acc, gyr, t, fs, keys, "here", prior)


@pytest.fixture(scope="module")
def sim():
    return Simulator(SimulationSettings(duration_s=120.0, seed=11, keep_orientation=False)).simulate()


def foot_arrays(samples: pl.DataFrame, foot: str):
    part = samples.filter(pl.col(FOOT) == foot)
    return part.select(ACC).to_numpy(), part.select(GYR).to_numpy(), part[T].to_numpy()


def test_a_simulated_pod_rotated_part_way_starts_a_new_mounting(sim):
    acc, gyr, t = foot_arrays(sim.samples_, "left")
    kept = track(acc, gyr, 200.0, t=t)
    assert [p.mounting.started for p in kept.pieces_] == [FIRST]
    half = len(acc) // 2
    moved = track(*rotated_after(acc, gyr, half), 200.0, t=t)
    assert [p.mounting.started for p in moved.pieces_] == [FIRST, REMOUNT_WITHIN]
    cut = moved.pieces_[1].start_row
    assert abs(t[cut] - t[half]) < 2.5, "the new mounting begins at the rotation (within a stride or two)"
    # each piece's frame is its own: the second's foot-flat up is the first's, turned with the pod
    # (its heading is re-chosen by the square-mount rule, so only the up direction is compared)
    first, second = (np.array(p.mounting.up_dev) for p in moved.pieces_)
    assert np.degrees(np.arccos(np.clip(TURN.apply(first) @ second, -1, 1))) < 1.5
    assert len(moved.remounts_) == 1 and "t = " in moved.remounts_[0]


def test_the_whole_pipeline_labels_strides_and_sessions_with_the_remount(sim):
    acc, gyr, t = foot_arrays(sim.samples_, "left")
    half = len(acc) // 2
    acc, gyr = rotated_after(acc, gyr, half)
    left = sim.samples_.filter(pl.col(FOOT) == "left").with_columns(
        *[pl.Series(c, acc[:, i]) for i, c in enumerate(ACC)],
        *[pl.Series(c, gyr[:, i]) for i, c in enumerate(GYR)],
    )
    result = RecordingAnalyzer().analyze(left, 200.0).result_
    ids = [m.mounting_id for m in result.mountings["left"]]
    assert ids == ["left-S01-1", "left-S01-2"]
    strides = result.strides
    before = strides.filter(pl.col("ic_t") < t[half] - 2.0)
    after = strides.filter(pl.col("ic_t") > t[half] + 2.0)
    assert set(before[MOUNTING_ID]) == {"left-S01-1"} and not before[REMOUNT].any()
    assert set(after[MOUNTING_ID]) == {"left-S01-2"} and after[REMOUNT].all()
    row = result.sessions.row(0, named=True)
    assert row[MOUNTING_ID] == "left-S01-2" and row[REMOUNT] is True
    assert any("remount within the recording" in w for w in result.warnings)


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "foot", "rate"), RECORDINGS)
def test_real_recordings_keep_one_mounting_and_a_rotation_part_way_is_found(real_data, name, foot, rate):
    acc, gyr = read_foot(real_data, name, foot)
    kept = track(acc, gyr, rate)
    assert [p.mounting.started for p in kept.pieces_] == [FIRST], kept.remounts_
    if name not in ("imu_sample.csv", "imu_sample_ms_left.csv", "imu_sample_ms_right.csv"):
        return  # the short stair and pathological files have fewer than 2 x 10 strides either side
    half = len(acc) // 2
    moved = track(*rotated_after(acc, gyr, half), rate)
    assert [p.mounting.started for p in moved.pieces_] == [FIRST, REMOUNT_WITHIN], moved.remounts_
    assert abs(moved.pieces_[1].start_row - half) < 2.5 * rate


def _two_sessions(seed: int):
    """Two sessions of one athlete with the same pods, mounted the same way."""
    rng = np.random.default_rng(seed)
    mounts = {f: Rotation.from_euler("xyz", rng.uniform(-12, 12, 3), degrees=True) for f in ("left", "right")}
    gains = {f: draw_gyr_gain(rng, SimulationSettings().profile) for f in ("left", "right")}
    athlete = sample_athlete(rng)
    out = []
    for k in (1, 2):
        settings = SimulationSettings(
            duration_s=60.0,
            seed=[seed, k],
            session_id=f"S0{k}",
            mounting_rotations=mounts,
            gyr_gains=gains,
            athlete=athlete,
            keep_orientation=False,
        )
        out.append(Simulator(settings).simulate().samples_)
    return out


def test_a_mounting_kept_across_two_sessions_gives_identical_frames():
    first, second = _two_sessions(5)
    one = RecordingAnalyzer().analyze(first, 200.0).result_
    prior = {f: ms[-1] for f, ms in one.mountings.items()}
    alone = RecordingAnalyzer().analyze(second, 200.0).result_
    two = RecordingAnalyzer().analyze(second, 200.0, mountings=prior).result_
    for foot in ("left", "right"):
        assert [m.mounting_id for m in two.mountings[foot]] == [prior[foot].mounting_id]
        assert two.mountings[foot][0].q_wxyz == prior[foot].q_wxyz
        # the very same rotation, not a re-estimate that happens to be close
        assert np.array_equal(two.mounting[foot].as_matrix(), one.mounting[foot].as_matrix())
        assert not np.array_equal(alone.mounting[foot].as_matrix(), one.mounting[foot].as_matrix())
    assert set(two.strides[MOUNTING_ID]) == {"left-S01-1", "right-S01-1"}
    assert not two.strides[REMOUNT].any()
    assert two.sessions[MOUNTING_ID].to_list() == ["left-S01-1", "right-S01-1"]


def test_a_prior_mounting_that_does_not_fit_is_a_remount_between_sessions():
    first, second = _two_sessions(6)
    one = RecordingAnalyzer().analyze(first, 200.0).result_
    prior = {f: ms[-1] for f, ms in one.mountings.items()}
    acc, gyr, t = foot_arrays(second, "left")
    moved = track(*rotated_after(acc, gyr, 0), 200.0, keys=("A001", "S02", "left"), prior=prior["left"], t=t)
    assert [p.mounting.started for p in moved.pieces_] == [REMOUNT_BETWEEN]
    assert moved.pieces_[0].mounting.mounting_id == "left-S02-1"
    assert "since mounting left-S01-1" in moved.remounts_[0]


@pytest.mark.real_data
@pytest.mark.skipif(not WALKS.is_dir(), reason=f"footprint walks not found at {WALKS}")
def test_footprint_walks_one_mount_per_group_and_the_remount_between_groups():
    """Walks 31-36 (one mount) chained as sessions keep walk 31's mounting; walk 42 on a different
    mount (its foot-flat up is 60-80 deg away) starts a new one."""
    prior, seen = None, []
    for trial in (31, 32, 33, 34, 35, 36, 42, 43):
        rec = read_recording(WALKS / f"SensorConnectData_{trial}.csv")
        acc, gyr = rec.samples.select(ACC).to_numpy(), rec.samples.select(GYR).to_numpy()
        tracker = track(acc, gyr, rec.sampling_rate_hz, keys=("walker", f"W{trial}", "left"), prior=prior)
        assert len(tracker.pieces_) == 1, tracker.remounts_
        prior = tracker.pieces_[0].mounting
        seen.append(prior.mounting_id)
    assert seen == ["left-W31-1"] * 6 + ["left-W42-1"] * 2


def test_the_store_keeps_one_row_per_mounting_and_counts_a_session_once(tmp_path):
    first, second = _two_sessions(7)
    one = RecordingAnalyzer().analyze(first, 200.0).result_
    used = [(ms[-1], 10) for ms in one.mountings.values()]
    record_mountings(tmp_path, "A001", "S01", DEFAULT_DEVICE, used)
    record_mountings(tmp_path, "A001", "S01", DEFAULT_DEVICE, used)  # analysed again
    stored = read_mountings(tmp_path, "A001")
    assert [m.mounting_id for m in stored] == ["left-S01-1", "right-S01-1"]
    assert [m.n_strides for m in stored] == [10, 10]
    assert prior_mountings(stored, DEFAULT_DEVICE, "S01") == {}  # S01 analysed again: decided afresh
    prior = prior_mountings(stored, DEFAULT_DEVICE, "S02")
    two = RecordingAnalyzer().analyze(second, 200.0, mountings=prior).result_
    record_mountings(tmp_path, "A001", "S02", DEFAULT_DEVICE, [(ms[-1], 7) for ms in two.mountings.values()])
    stored = read_mountings(tmp_path, "A001")
    assert [(m.mounting_id, m.sessions, m.n_strides) for m in stored] == [
        ("left-S01-1", ("S01", "S02"), 17),
        ("right-S01-1", ("S01", "S02"), 17),
    ]
    assert np.array_equal(stored[0].rotation.as_matrix(), one.mounting["left"].as_matrix())
    # S01 analysed again now keeps the mounting S02 was measured in
    assert prior_mountings(stored, DEFAULT_DEVICE, "S01") == {m.foot: m for m in stored}
    # files carry no device id: a stream's pod (a named device) may be the files' one and starts from
    # their mounting; a mounting stored for one named device is not another named device's
    assert prior_mountings(stored, "pod-1", "S03") == {m.foot: m for m in stored}
    pod_mounting = replace(stored[0], mounting_id="left-S03-1", device_id=None)
    record_mountings(tmp_path, "A001", "S03", "pod-1", [(pod_mounting, 5)])
    now = read_mountings(tmp_path, "A001")
    assert prior_mountings(now, "pod-2", "S04")["left"].mounting_id == "left-S01-1"
    assert prior_mountings(now, "pod-1", "S04")["left"].mounting_id == "left-S03-1"
    # and a session of files takes the foot's latest mounting, whichever device began it
    assert prior_mountings(now, DEFAULT_DEVICE, "S04")["left"].mounting_id == "left-S03-1"


def test_the_batch_reuses_an_athletes_mounting_and_the_api_shows_it(tmp_path):
    """Two sessions of one athlete with the same pods (the simulated dataset keeps each athlete's
    pods mounted the same way): the batch's second session is measured in the first's mounting,
    and the API lists it (the role checks of the route: test_api_roles walks every route)."""
    from fastapi.testclient import TestClient

    from strideflow.analytics import partitions
    from strideflow.analytics.batch import BatchSettings, run_session, session_jobs
    from strideflow.analytics.discovery import find_recordings
    from strideflow.hardware.simulator import write_dataset
    from strideflow.service.app import create_app
    from strideflow.service.auth import create_key
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    dataset = tmp_path / "dataset"
    write_dataset(dataset, athletes=1, minutes=0.75, seed=4, sessions=2)
    settings = ServiceSettings(data_dir=tmp_path / "data", job_workers=1)
    results = settings.results_dir
    jobs = session_jobs(find_recordings(dataset), results, BatchSettings(workers=1))
    for job in sorted(jobs, key=lambda j: j.session_id):  # as TeamBatch chains them
        assert run_session(job)["status"] == "done"
    stored = read_mountings(results, "A001")
    assert [(m.mounting_id, m.sessions) for m in stored] == [
        ("left-S01-1", ("S01", "S02")),
        ("right-S01-1", ("S01", "S02")),
    ]
    second = partitions.read_partition(results, partitions.SESSIONS, "A001", "S02")
    assert set(second[MOUNTING_ID]) == {"left-S01-1", "right-S01-1"} and not second[REMOUNT].any()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.create_all()
    key = create_key(db, "team", "coach")
    db.ensure_athlete("team", "A001")
    db.ensure_session("A001", "S02")
    db.dispose()
    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        listed = client.get("/v1/athletes/A001/mountings", headers=auth)
        assert listed.status_code == 200, listed.text
        rows = listed.json()["items"]
        assert [r["mounting_id"] for r in rows] == ["left-S01-1", "right-S01-1"]
        assert rows[0]["sessions"] == ["S01", "S02"] and rows[0]["n_strides"] > 0
        assert rows[0]["started"] == FIRST and rows[0]["device_id"] == DEFAULT_DEVICE
        session = client.get("/v1/athletes/A001/sessions", headers=auth).json()["items"][0]
        assert {f["mounting_id"] for f in session["feet"]} == {"left-S01-1", "right-S01-1"}
        assert all(f["remount"] is False for f in session["feet"])
        assert client.get("/v1/athletes/nobody/mountings", headers=auth).status_code == 404


def test_short_or_gappy_direction_series_give_no_remount_and_no_error():
    from strideflow.hardware.remount import RemountDetector

    rng = np.random.default_rng(0)
    up = np.tile([0.0, 0.0, 1.0], (30, 1)) + rng.normal(0, 0.01, (30, 3))
    swing = np.tile([0.0, 1.0, 0.0], (30, 1)) + rng.normal(0, 0.01, (30, 3))
    swing[::3] = np.nan  # strides without enough swing samples
    for n in (0, 1, 5, 19, 30):
        det = RemountDetector().detect(up[:n], swing[:n])
        assert det.remounts_ == []
    jumped = up.copy()
    jumped[15:] = Rotation.from_euler("x", 10, degrees=True).apply(jumped[15:])
    assert RemountDetector().detect(jumped, swing).remounts_ == [15]


def test_a_damaged_mountings_file_is_named_not_a_traceback(tmp_path):
    from strideflow.analytics.mountings import mountings_path
    from strideflow.hardware.errors import StrideflowError

    path = mountings_path(tmp_path, "A001")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StrideflowError, match="_mountings/A001.json: not a mountings file"):
        read_mountings(tmp_path, "A001")
    with pytest.raises(StrideflowError, match="athlete"):
        mountings_path(tmp_path, "../etc")


def test_walking_and_running_bouts_of_one_recording_are_not_remounts(tmp_path):
    """The swing axis moves with the gait (walk <-> run) by more than 15 deg in these mixed
    recordings (the old floor, which declared false remounts here); the default floor must not."""

    from strideflow.hardware.mounting import MountingEstimator
    from strideflow.hardware.remount import RemountDetector, RemountSettings, stride_swing_axes
    from strideflow.hardware.simulator import write_dataset

    write_dataset(tmp_path, athletes=4, minutes=8, seed=2026, activity="mixed")
    settings = AnalysisSettings()
    largest_swing_jump, old_floor_remounts = 0.0, 0
    for path in sorted(tmp_path.glob("*/*/*.parquet")):
        samples = pl.read_parquet(path)
        acc, gyr = samples.select(ACC).to_numpy(), samples.select(GYR).to_numpy()
        est = MountingEstimator(replace(settings.mounting, heading="walking")).estimate(acc, gyr, 200.0)
        swing = stride_swing_axes(gyr, est.strides_, est.axis_dev_, settings.remount.swing_gyr_dps)
        default = RemountDetector(settings.remount).detect(est.stride_up_dev_, swing)
        assert default.remounts_ == [], (path, default.jumps_)
        old = RemountDetector(RemountSettings(min_swing_jump_deg=15.0)).detect(est.stride_up_dev_, swing)
        old_floor_remounts += len(old.remounts_)
        largest_swing_jump = max(largest_swing_jump, float(np.nanmax(default.contrast_deg_[:, 1])))
    assert 15.0 < largest_swing_jump < settings.remount.min_swing_jump_deg
    assert old_floor_remounts >= 1


def test_a_killed_writers_temporary_file_is_swept_by_the_next_write(tmp_path):
    """A run killed inside the atomic write leaves `.A001.json.<id>.tmp`; its session has no marker
    and is analysed again, and that write (under the athlete's lock) removes the leftover."""
    first, _ = _two_sessions(7)
    one = RecordingAnalyzer().analyze(first, 200.0).result_
    used = [(ms[-1], 10) for ms in one.mountings.values()]
    path = mountings_path(tmp_path, "A001")
    path.parent.mkdir(parents=True, exist_ok=True)
    leftover = path.parent / f".{path.name}.deadbeef.tmp"
    leftover.write_bytes(b'{"athlete_id": "A001", "mount')
    other = path.parent / ".A002.json.deadbeef.tmp"  # another athlete's: not this write's to judge
    other.write_bytes(b"{")
    record_mountings(tmp_path, "A001", "S01", DEFAULT_DEVICE, used)
    assert not leftover.exists() and other.exists()
    assert [m.mounting_id for m in read_mountings(tmp_path, "A001")] == ["left-S01-1", "right-S01-1"]
