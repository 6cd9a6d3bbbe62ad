"""A live session is stored in, and records, the athlete's mounting as an uploaded session does (issue 15).

- an upload job's session of the real `imu_sample.csv` (athlete R1, session S1), then the same
  walk streamed into `WS /v1/stream` as session S2 by a named pod: the stream keeps the upload's
  mounting (`mounting_id`, `remount` false, its `mounting_uncertainty_deg` on strides and
  sessions), the mountings file adds S2 to it through `record_mountings`, and
  `GET /v1/athletes/R1/mountings` lists the live session under it;
- the mountings file's lock holds across processes: two processes recording into one athlete's
  file at once lose no update;
- a live session's toe-off flag is judged with its mounting's uncertainty by batch's rule.
"""

from __future__ import annotations

import multiprocessing

import polars as pl
import pytest
from fastapi.testclient import TestClient

from strideflow.analytics.flags import LATERAL_ROLL_OFF, TOE_OFF_FLAG_WITHHELD
from strideflow.analytics.mountings import DEFAULT_DEVICE, Mounting, read_mountings, record_mountings
from strideflow.analytics.partitions import SESSIONS, STRIDES, read_partition
from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware import schema as S
from strideflow.hardware.devices import RecordingReplayer
from strideflow.ingest import read_recording
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.db import Database
from strideflow.service.jobs import analyse_session
from strideflow.service.settings import ServiceSettings


def _stream(client: TestClient, key: str, device: RecordingReplayer, athlete: str, session: str) -> dict:
    """Every packet of `device` into WS /v1/stream, each acknowledged, then the end; the end's reply."""
    with client.websocket_connect("/v1/stream", headers={"Authorization": f"Bearer {key}"}) as ws:
        ws.send_json(
            {
                "athlete_id": athlete,
                "session_id": session,
                "foot": device.foot,
                "device_id": device.device_id,
                "sampling_rate_hz": device.sampling_rate_hz,
            }
        )
        assert ws.receive_json()["resume_from"] is None
        for seq in range(device.n_packets):
            ws.send_bytes(device.packet(seq))
            reply = ws.receive_json()
            assert reply.get("ack") == seq, reply
        ws.send_json({"end": True})
        return ws.receive_json()


@pytest.mark.real_data
def test_a_live_session_keeps_and_records_the_uploaded_sessions_mounting(real_data, tmp_path):
    settings = ServiceSettings(data_dir=tmp_path / "data", job_workers=1)
    results = settings.results_dir
    path = real_data / "imu_sample.csv"
    # session S1 as the upload job analyses it (the job's own function, in this process)
    spec = {"path": str(path), "format": "auto", "sampling_rate_hz": 204.8, "foot": None}
    done = analyse_session(str(results), "R1", "S1", None, [spec | {"filename": path.name, "id": 1}])
    assert "error" not in done, done
    (left_s1,) = [m for m in read_mountings(results, "R1") if m.foot == "left"]
    assert left_s1.mounting_id == "left-S1-1" and left_s1.device_id == DEFAULT_DEVICE

    db = Database(settings.resolved_database_url)
    db.create_all()
    key = create_key(db, "team", "admin")
    db.ensure_athlete("team", "R1")
    db.dispose()
    recording = read_recording(path, sampling_rate_hz=204.8)
    device = RecordingReplayer.from_samples(recording.samples, 204.8, "left", device_id="pod-L")
    with TestClient(create_app(settings)) as client:
        ended = _stream(client, key, device, "R1", "S2")
        assert ended["ended"] is True and ended["strides"] > 20
        listed = client.get("/v1/athletes/R1/mountings", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200, listed.text
        rows = {r["mounting_id"]: r for r in listed.json()["items"]}
    # the stored live session: measured in the upload's mounting, as an uploaded session would be
    strides = read_partition(results, STRIDES, "R1", "S2")
    assert strides.height == ended["strides"]
    assert set(strides[S.MOUNTING_ID]) == {"left-S1-1"} and not strides[S.REMOUNT].any()
    assert set(strides[S.MOUNTING_UNCERTAINTY_DEG]) == {left_s1.uncertainty_deg}
    session = read_partition(results, SESSIONS, "R1", "S2").row(0, named=True)
    assert session[S.MOUNTING_ID] == "left-S1-1" and session[S.REMOUNT] is False
    assert session[S.MOUNTING_UNCERTAINTY_DEG] == left_s1.uncertainty_deg
    # the mountings file: S2 added to the kept mounting (stored under the files' device), counted once
    kept = [m for m in read_mountings(results, "R1") if m.mounting_id == "left-S1-1"]
    assert len(kept) == 1 and kept[0].sessions == ("S1", "S2")
    assert dict(kept[0].session_strides)["S2"] == strides.height
    assert rows["left-S1-1"]["sessions"] == ["S1", "S2"] and rows["left-S1-1"]["device_id"] == DEFAULT_DEVICE
    assert set(rows) == {"left-S1-1", "right-S1-1"}


def _record_many(root: str, prefix: str, mounting, times: int, together) -> None:
    """`times` sessions, each beginning its own mounting (a lost update loses a row)."""
    from dataclasses import replace

    together.wait(120)  # both processes have imported: they write at the same time
    for k in range(times):
        session = f"{prefix}{k}"
        m = replace(
            mounting, mounting_id=f"left-{session}-1", first_session_id=session, last_session_id=session
        )
        record_mountings(root, "A1", session, "pod", [(m, k + 1)])


def test_the_mountings_lock_holds_across_processes(tmp_path):
    """Two processes recording into one athlete's mountings file at once (live stores and upload jobs
    of `serve --workers 2`) lose no update. Without the lock a run lost 6 of 80 rows."""
    mounting = Mounting(
        mounting_id="left-S0-1",
        foot="left",
        q_wxyz=(1.0, 0.0, 0.0, 0.0),
        shoe_axis_source="square",
        uncertainty_deg=3.0,
        up_dev=(0.0, 0.0, 1.0),
        swing_axis_dev=(0.0, 1.0, 0.0),
        up_scatter_deg=1.0,
        swing_scatter_deg=3.0,
        gravity_spread_deg=1.0,
        started="first",
        reason="",
        first_session_id="S0",
        last_session_id="S0",
    )
    times = 60
    ctx = multiprocessing.get_context("spawn")
    together = ctx.Barrier(2)
    args = [(str(tmp_path), prefix, mounting, times, together) for prefix in ("SA", "SB")]
    workers = [ctx.Process(target=_record_many, args=a) for a in args]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0
    stored = read_mountings(tmp_path, "A1")
    assert sorted(m.mounting_id for m in stored) == sorted(
        f"left-{s}{k}-1" for s in ("SA", "SB") for k in range(times)
    )
    assert sum(m.n_strides for m in stored) == 2 * sum(range(1, times + 1))


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("uncertainty_deg", "flag"), [(1.0, LATERAL_ROLL_OFF), (15.0, TOE_OFF_FLAG_WITHHELD)]
)
def test_a_live_store_withholds_the_toe_off_flag_as_batch_does(real_data, tmp_path, uncertainty_deg, flag):
    """The stored live session carries its mounting's uncertainty, so the flag rule of batch judges
    it: a toe-off pronation below the threshold is flagged with a certain frame and withheld, with
    batch's note, when the uncertainty at the toe-off angle could explain it. (The real walk is
    healthy; its toe-off pronation is set to -8 deg to stand for a lateral roll-off.)"""
    from dataclasses import replace

    from support.live import stream

    from strideflow.analytics.flags import FLAG, NOTE
    from strideflow.analytics.live_analyzer import LiveSettings
    from strideflow.analytics.live_mountings import LivePiece
    from strideflow.analytics.partitions import FLAGS
    from strideflow.service.live import WAL_DIRNAME
    from strideflow.service.live.store import SessionStore

    recording = read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)
    samples = recording.samples.with_columns(
        pl.lit("R1").alias(S.ATHLETE_ID), pl.lit("S1").alias(S.SESSION_ID)
    )
    live = stream(samples, "left", 204.8, LiveSettings(), block=205)
    (piece,) = live.mountings_.pieces_
    pieces = (LivePiece(replace(piece.mounting, uncertainty_deg=uncertainty_deg)),)
    strides = live.strides_.with_columns(pl.lit(-8.0).alias(S.TOE_OFF_PRONATION_DEG))
    store = SessionStore(tmp_path / "results", tmp_path / WAL_DIRNAME, AnalysisSettings())
    store._store("R1", "S1", [strides], {"left"}, None, [("pod-L", "left", pieces)])
    flags = read_partition(tmp_path / "results", FLAGS, "R1", "S1")
    toe_off = flags.filter(pl.col("metric") == S.TOE_OFF_PRONATION_DEG)
    assert toe_off[FLAG].to_list() == [flag]
    if flag == TOE_OFF_FLAG_WITHHELD:
        assert (
            "lateral_roll_off not judged" in toe_off[NOTE][0] and "mounting uncertainty" in toe_off[NOTE][0]
        )
    stored = read_partition(tmp_path / "results", SESSIONS, "R1", "S1")
    assert stored[S.MOUNTING_UNCERTAINTY_DEG].to_list() == [uncertainty_deg]
    assert [m.mounting_id for m in read_mountings(tmp_path / "results", "R1")] == [piece.mounting.mounting_id]
