"""Live messages to subscribers carry the stream's mounting, so a coach watching sees a remount (issue 15,
item 3): a simulated pod turned on the shoe part-way through a stream into `WS /v1/stream`; the
`stance` and `stride` messages of `WS /v1/stream/subscribe` carry `mounting_id`, `remount` and
`mounting_uncertainty_deg` as the stored rows do, the new mounting's from the moment the stream
switches to it; row by row, the messages' labels are the store's (`label_strides`).
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from scipy.spatial.transform import Rotation

from strideflow.analytics.live_mountings import LivePiece, label_strides
from strideflow.analytics.mountings import FIRST, REMOUNT_BETWEEN, REMOUNT_WITHIN, Mounting
from strideflow.analytics.partitions import STRIDES, read_partition
from strideflow.hardware import schema as S
from strideflow.hardware.devices import RecordingReplayer
from strideflow.hardware.simulator import SimulationSettings, Simulator
from strideflow.service.app import create_app
from strideflow.service.auth import create_key
from strideflow.service.db import Database
from strideflow.service.live.publish import stream_mountings, stride_messages
from strideflow.service.settings import ServiceSettings

TURN_T_S = 60.0
TURN = Rotation.from_euler("zx", [20.0, 8.0], degrees=True)  # a pod knocked on its mount
MOUNTING_FIELDS = (S.MOUNTING_ID, S.REMOUNT, S.MOUNTING_UNCERTAINTY_DEG)


def turned_after(samples: pl.DataFrame, foot: str, t0_s: float) -> pl.DataFrame:
    """One foot's samples with the device turned on the shoe by TURN from `t0_s` on."""
    part = samples.filter(pl.col(S.FOOT) == foot).sort(S.T)
    rows = part[S.T].to_numpy() >= t0_s
    acc, gyr = part.select(S.ACC).to_numpy().copy(), part.select(S.GYR).to_numpy().copy()
    acc[rows], gyr[rows] = TURN.apply(acc[rows]), TURN.apply(gyr[rows])
    return part.with_columns(
        *[pl.Series(c, acc[:, i]) for i, c in enumerate(S.ACC)],
        *[pl.Series(c, gyr[:, i]) for i, c in enumerate(S.GYR)],
    )


def test_subscribers_see_the_mounting_and_a_remount_found_live(tmp_path):
    samples = (
        Simulator(SimulationSettings(duration_s=120.0, seed=11, keep_orientation=False)).simulate().samples_
    )
    device = RecordingReplayer.from_samples(
        turned_after(samples, "left", TURN_T_S), 200.0, "left", device_id="pod-L"
    )
    settings = ServiceSettings(data_dir=tmp_path / "data", job_workers=1)
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.resolved_database_url)
    db.create_all()
    key = create_key(db, "team", "admin")
    db.ensure_athlete("team", "A1")
    db.dispose()
    auth = {"Authorization": f"Bearer {key}"}
    hello = {
        "athlete_id": "A1",
        "session_id": "S1",
        "foot": "left",
        "device_id": "pod-L",
        "sampling_rate_hz": 200.0,
    }
    with TestClient(create_app(settings)) as client:
        with client.websocket_connect("/v1/stream/subscribe", headers=auth) as sub:
            assert "subscribed" in sub.receive_json()
            with client.websocket_connect("/v1/stream", headers=auth) as ws:
                ws.send_json(hello)
                assert ws.receive_json()["resume_from"] is None
                for seq in range(device.n_packets):
                    ws.send_bytes(device.packet(seq))
                    assert ws.receive_json().get("ack") == seq
                ws.send_json({"end": True})
                ended = ws.receive_json()
            assert ended["ended"] is True and ended["strides"] > 60
            messages = []
            while sum(m["type"] == "stride" for m in messages) < ended["strides"]:
                messages.append(sub.receive_json())
    strides = [m for m in messages if m["type"] == "stride"]
    stances = [m for m in messages if m["type"] == "stance"]
    assert len(strides) == ended["strides"] and len(stances) >= len(strides) - 2
    for m in messages:
        assert all(f in m for f in MOUNTING_FIELDS), m
    stored = read_partition(settings.results_dir, STRIDES, "A1", "S1").sort(S.IC_T)
    assert stored.height == len(strides)
    first, second = "left-S1-1", "left-S1-2"
    assert set(stored[S.MOUNTING_ID]) == {first, second}  # the stream found the turn
    # the new mounting starts near the turn; the stream switches to it some strides later
    new = stored.filter(pl.col(S.MOUNTING_ID) == second)
    start_t = float(new[S.IC_T].min())
    assert abs(start_t - TURN_T_S) < 2.5
    got = pl.DataFrame(
        {
            S.IC_T: [m[S.IC_T] for m in strides],
            "published_at": [m["published_at"] for m in strides],
            **{f"{c}_msg": [m[c] for m in strides] for c in (*MOUNTING_FIELDS, S.VALID)},
        }
    ).sort(S.IC_T)
    both = stored.join(got, on=S.IC_T, how="inner")
    assert both.height == stored.height
    # before the turn: the first mounting, no remount, in the messages as in the store
    before = both.filter(pl.col(S.IC_T) < start_t)
    assert set(before[f"{S.MOUNTING_ID}_msg"]) == {first} and not before[f"{S.REMOUNT}_msg"].any()
    # the uncertainty is the largest of the stream's mountings so far (the stored one, of them all)
    sent = before[f"{S.MOUNTING_UNCERTAINTY_DEG}_msg"].to_numpy()
    assert np.all(np.isfinite(sent)) and np.all(sent <= before[S.MOUNTING_UNCERTAINTY_DEG].to_numpy())
    # once the stream switched (its first message naming the new mounting), every stride message
    # says what the store says: the new mounting, remount true, and the rows measured in the old
    # frame after the turn invalid
    switched = both.filter(pl.col(f"{S.MOUNTING_ID}_msg") == second)
    assert switched.height >= 20 and switched[f"{S.REMOUNT}_msg"].all()
    since = float(switched["published_at"].min())
    after = both.filter(pl.col("published_at") >= since)
    assert after[f"{S.MOUNTING_ID}_msg"].to_list() == after[S.MOUNTING_ID].to_list()
    assert after[f"{S.REMOUNT}_msg"].to_list() == after[S.REMOUNT].to_list()
    assert after[f"{S.VALID}_msg"].to_list() == after[S.VALID].to_list()
    assert after[f"{S.MOUNTING_UNCERTAINTY_DEG}_msg"].to_list() == after[S.MOUNTING_UNCERTAINTY_DEG].to_list()
    # the rows pushed between the turn and its detection keep the first mounting's id in their
    # messages (a message is not recalled); the store relabels them, so a client that needs the
    # final labels reads them from the REST API
    stale = both.filter((pl.col(S.IC_T) >= start_t) & (pl.col("published_at") < since))
    assert stale.height >= 5
    assert set(stale[f"{S.MOUNTING_ID}_msg"]) == {first} and set(stale[S.MOUNTING_ID]) == {second}
    stance_ids = {m[S.MOUNTING_ID] for m in stances}
    assert stance_ids == {first, second}
    assert np.all(np.isfinite([m[S.MOUNTING_UNCERTAINTY_DEG] for m in stances]))


def _mounting(mounting_id: str, started: str, start_t_s: float, uncertainty_deg: float | None) -> Mounting:
    return Mounting(
        mounting_id=mounting_id,
        foot="left",
        q_wxyz=(1.0, 0.0, 0.0, 0.0),
        shoe_axis_source="square",
        uncertainty_deg=uncertainty_deg,
        up_dev=(0.0, 0.0, 1.0),
        swing_axis_dev=(0.0, 1.0, 0.0),
        up_scatter_deg=1.0,
        swing_scatter_deg=2.0,
        gravity_spread_deg=1.0,
        started=started,
        reason="",
        first_session_id="S1",
        last_session_id="S1",
        start_t_s=start_t_s,
    )


@pytest.mark.parametrize("kind", ["stride", "stance"])
def test_message_labels_equal_the_stored_labels_row_by_row(kind):
    """The messages' per-row labels are `label_strides`' (what the store writes), on every case it
    has: rows before, during (measured in the old frame: invalid) and after each switch, an IC
    exactly on a bound, another foot's row, a row without IC, a given frame; and null uncertainty
    when one mounting has none."""
    schema = S.STRIDES_SCHEMA if kind == "stride" else S.STANCE_SCHEMA
    ic = [*np.arange(0.0, 100.0, 2.5), 40.0, 55.0, 70.0, None]
    rows = pl.DataFrame(
        [
            {c: None for c in schema}
            | {S.IC_T: t, S.VALID: i % 7 != 3, S.REASON: None if i % 7 != 3 else "gap", S.FOOT: "left"}
            for i, t in enumerate(ic)
        ]
        + [{c: None for c in schema} | {S.IC_T: 60.0, S.VALID: True, S.FOOT: "right"}],
        schema=schema,
    )
    cases = [
        (),
        (LivePiece(_mounting("left-S0-1", FIRST, 0.0, 3.0)),),
        (
            LivePiece(_mounting("left-S0-1", FIRST, 0.0, 3.0)),
            LivePiece(_mounting("left-S1-2", REMOUNT_WITHIN, 40.0, 3.4), switch_t_s=55.0),
            LivePiece(_mounting("left-S1-3", REMOUNT_WITHIN, 70.0, 2.9), switch_t_s=82.5),
        ),
        (
            LivePiece(replace(_mounting("left-S0-1", REMOUNT_BETWEEN, 0.0, None), first_session_id="S0")),
            LivePiece(_mounting("left-S1-2", REMOUNT_WITHIN, 40.0, 3.4), switch_t_s=55.0),
        ),
    ]
    keep = (*MOUNTING_FIELDS, S.VALID, S.REASON, S.IC_T, S.FOOT)
    for pieces in cases:
        stored = label_strides(rows, pieces, "left", "S1").select(keep).to_dicts()
        sent = stride_messages(rows, kind, mountings=(pieces, "left", "S1"))
        assert [{k: m[k] for k in keep} for m in sent] == stored, pieces


def test_a_given_frame_has_no_mounting_in_its_messages():
    """With the frame given (no mounting estimated) the columns are there and null, as in the table."""
    row = {c: None for c in S.STANCE_SCHEMA} | {
        S.IC_T: 1.0,
        S.VALID: True,
        S.FOOT: "left",
        S.SESSION_ID: "S1",
    }
    rows = pl.DataFrame([row], schema=S.STANCE_SCHEMA)
    stream = SimpleNamespace(analyzer=SimpleNamespace(), hello=SimpleNamespace(foot="left", session_id="S1"))
    (message,) = stride_messages(rows, "stance", mountings=stream_mountings(stream))
    assert all(message[f] is None for f in MOUNTING_FIELDS)
