"""The one session writer shared by the team batch and the service's upload jobs."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from strideflow.analytics import partitions
from strideflow.analytics.batch import BatchSettings, run_session, session_jobs
from strideflow.analytics.discovery import find_recordings
from strideflow.analytics.flags import ASYMMETRY, FLAG, LOW_PRONATION, METRIC, VALUE
from strideflow.analytics.sessions_store import SessionStoreError, write_session
from strideflow.hardware.schema import (
    ATHLETE_ID,
    CONTEXT,
    FOOT,
    FOOT_STRIKE_ANGLE_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    METRICS,
    PRONATION_EXCURSION_DEG,
    REASON,
    SESSION_DATE,
    SESSION_ID,
    STANCE_TIME_S,
    STEADY,
    STRIDE_COUNT,
    STRIDE_INDEX,
    STRIDE_LENGTH_M,
    STRIDES_SCHEMA,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    VALID,
    session_iqr,
    session_median,
    symmetry_index,
)
from strideflow.hardware.simulator import write_dataset
from strideflow.service.jobs import analyse_session

A, S = "A7", "S3"
TABLES = partitions.TABLES
# Values that raise no flag by themselves (FlagSettings defaults), the same on both feet.
QUIET = {
    FOOT_STRIKE_ANGLE_DEG: 20.0,  # a heel strike: low_pronation is judged
    MAX_PRONATION_VELOCITY_DPS: 300.0,
    TOE_OFF_PRONATION_DEG: 1.0,
    TOE_OFF_ANGLE_DEG: 60.0,
    STANCE_TIME_S: 0.6,
    STRIDE_LENGTH_M: 1.4,
}


def _strides(
    foot: str, excursion_deg: list[float], invalid: dict[int, float] | None = None, session: str = S
) -> pl.DataFrame:
    """One foot's strides with the given pronation excursions (deg); `invalid`: index -> value."""
    values = list(excursion_deg) + list((invalid or {}).values())
    n = len(values)
    valid = [True] * len(excursion_deg) + [False] * (n - len(excursion_deg))
    cols: dict[str, list] = {c: [0.5] * n for c, d in STRIDES_SCHEMA.items() if d == pl.Float64()}
    cols.update({m: [v] * n for m, v in QUIET.items()})
    cols[PRONATION_EXCURSION_DEG] = values
    df = pl.DataFrame(
        {
            ATHLETE_ID: [A] * n,
            SESSION_ID: [session] * n,
            FOOT: [foot] * n,
            STRIDE_INDEX: list(range(n)),
            **cols,
            "strike_type": ["rearfoot"] * n,
            VALID: valid,
            REASON: [None if v else "too_long" for v in valid],
            "activity": ["walk"] * n,
            CONTEXT: [None] * n,
            STEADY: valid,
        },
        schema=STRIDES_SCHEMA,
    )
    assert set(METRICS) <= set(df.columns)
    return df


def _curves(foot: str, value: float) -> pl.DataFrame:
    return pl.DataFrame({FOOT: [foot, foot], "pct": [0.0, 50.0], "pronation_deg_mean": [value, value + 1]})


def test_known_answer_two_feet_two_parts(tmp_path):
    left = _strides("left", [float(v) for v in range(1, 13)], invalid={12: 100.0})  # 1..12 deg + an outlier
    right = _strides("right", [2.0] * 12)
    # parts as two recordings would give them: right first, the left one in reverse order
    out = write_session(
        tmp_path,
        A,
        S,
        [right, left.reverse()],
        [_curves("right", 5.0), _curves("left", 7.0)],
        session_date="2025-03-04",
    )
    assert out.deleted == ()

    strides = partitions.read_partition(tmp_path, partitions.STRIDES, A, S)
    assert strides.height == 25
    assert strides.select(FOOT, STRIDE_INDEX).rows() == [("left", i) for i in range(13)] + [
        ("right", i) for i in range(12)
    ]
    assert_frame_equal(strides, out.strides.select(strides.columns))

    sessions = partitions.read_partition(tmp_path, partitions.SESSIONS, A, S).sort(FOOT)
    med, iqr, si = (f(PRONATION_EXCURSION_DEG) for f in (session_median, session_iqr, symmetry_index))
    assert sessions[FOOT].to_list() == ["left", "right"]
    assert sessions[STRIDE_COUNT].to_list() == [12, 12]  # the invalid outlier does not count
    assert sessions[med].to_list() == pytest.approx([6.5, 2.0])
    assert sessions[iqr].to_list() == pytest.approx([5.5, 0.0])  # linear quartiles of 1..12: 3.75, 9.25
    assert sessions[si].to_list() == pytest.approx([200 * 4.5 / 8.5] * 2)  # 200 (L - R) / (L + R)
    assert sessions[SESSION_DATE].to_list() == ["2025-03-04"] * 2

    flags = partitions.read_partition(tmp_path, partitions.FLAGS, A, S)
    got = sorted(flags.select(FOOT, FLAG, METRIC).rows(), key=str)
    # no asymmetry flag by default (issue 18: no fixed threshold has a source); the index is stored
    assert got == [("right", LOW_PRONATION, PRONATION_EXCURSION_DEG)]
    assert ASYMMETRY not in flags[FLAG].to_list()
    assert flags.filter(pl.col(FLAG) == LOW_PRONATION)[VALUE].item() == pytest.approx(2.0)

    curves = partitions.read_partition(tmp_path, partitions.CURVES, A, S)
    assert curves.select(FOOT, "pronation_deg_mean").rows() == [
        ("right", 5.0),
        ("right", 6.0),
        ("left", 7.0),
        ("left", 8.0),
    ]


def test_rewrite_without_flags_or_curves_leaves_no_stale_tables(tmp_path):
    write_session(
        tmp_path, A, S, [_strides("left", [2.0] * 12), _strides("right", [8.0] * 12)], [_curves("left", 1)]
    )
    assert partitions.read_partition(tmp_path, partitions.FLAGS, A, S).height == 1  # low pronation
    assert partitions.has_partition(tmp_path, partitions.CURVES, A, S)

    out = write_session(tmp_path, A, S, [_strides("left", [6.0] * 12), _strides("right", [6.0] * 12)])
    assert out.deleted == (partitions.CURVES,)
    assert not partitions.has_partition(tmp_path, partitions.CURVES, A, S)
    # an analysed session with nothing flagged keeps an empty flags partition (as the batch did)
    assert partitions.read_partition(tmp_path, partitions.FLAGS, A, S).height == 0
    sessions = partitions.read_partition(tmp_path, partitions.SESSIONS, A, S)
    assert sessions[session_median(PRONATION_EXCURSION_DEG)].to_list() == [6.0, 6.0]
    # no date: the column is there, null, so every sessions partition has the same schema
    assert sessions.schema[SESSION_DATE] == pl.String() and sessions[SESSION_DATE].is_null().all()
    # other sessions are not touched
    write_session(tmp_path, A, "S4", [_strides("left", [6.0] * 12, session="S4")], session_date="2025-03-05")
    both = partitions.scan_table(tmp_path, partitions.SESSIONS, athlete_id=A).collect()
    assert sorted(both[SESSION_ID].unique()) == ["S3", "S4"]


def test_strides_are_written_first(tmp_path, monkeypatch):
    write_session(tmp_path, A, S, [_strides("left", [2.0] * 12)], [_curves("left", 1)])
    calls = []
    real_write = partitions.write_partition

    def write(root, table, df, athlete_id, session_id):
        calls.append(("write", table))
        if table == partitions.SESSIONS:
            raise OSError("disk full")
        return real_write(root, table, df, athlete_id, session_id)

    monkeypatch.setattr(partitions, "write_partition", write)
    monkeypatch.setattr(partitions, "delete_partition", lambda *a: calls.append(("delete", a[1])))
    with pytest.raises(OSError, match="disk full"):
        write_session(tmp_path, A, S, [_strides("left", [6.0] * 12)])
    assert calls == [("write", partitions.STRIDES), ("write", partitions.SESSIONS)]
    # the crash left new strides beside the old summary, which the stored strides can rebuild
    assert (
        partitions.read_partition(tmp_path, partitions.STRIDES, A, S)[PRONATION_EXCURSION_DEG].unique().item()
        == 6.0
    )
    old = partitions.read_partition(tmp_path, partitions.SESSIONS, A, S)
    assert old[session_median(PRONATION_EXCURSION_DEG)].item() == 2.0

    calls.clear()
    monkeypatch.setattr(partitions, "write_partition", lambda root, table, *a: calls.append(("write", table)))
    write_session(tmp_path, A, S, [_strides("left", [6.0] * 12)])
    assert calls == [("write", t) for t in (partitions.STRIDES, partitions.SESSIONS, partitions.FLAGS)] + [
        ("delete", partitions.CURVES)
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strides_parts": []}, "no strides to write"),
        ({"session_date": "04/03/2025"}, "session_date='04/03/2025' is not an ISO date"),
        ({"session_date": "20250304"}, "session_date='20250304' is not an ISO date"),
        ({"athlete_id": "../x"}, "athlete_id='../x' is not a valid id"),
        (
            {"strides_parts": [_strides("left", [6.0] * 3), _strides("right", [6.0] * 3, session="S9")]},
            r"strides_parts\[1\] row 0: session_id='S9', but the session being written is session_id='S3'",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(tmp_path, kwargs, message):
    args = {
        "athlete_id": A,
        "session_id": S,
        "strides_parts": [_strides("left", [6.0] * 3), _strides("right", [6.0] * 3)],
    } | kwargs
    with pytest.raises((SessionStoreError, partitions.PartitionError), match=message):
        write_session(tmp_path, **args)
    assert not (tmp_path / partitions.STRIDES).exists()  # nothing written


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """1 athlete x 2 sessions x 0.5 min walking, both feet; the first session has no date."""
    out = tmp_path_factory.mktemp("team")
    write_dataset(out, athletes=1, minutes=0.5, sessions=2, seed=5)
    manifest = pl.read_csv(out / "manifest.csv", infer_schema=False)
    first = pl.col(SESSION_ID) == manifest[SESSION_ID].min()
    manifest.with_columns(
        pl.when(first).then(None).otherwise(pl.col(SESSION_DATE)).alias(SESSION_DATE)
    ).write_csv(out / "manifest.csv")
    return out


def test_batch_task_and_service_job_store_the_same_tables(dataset, tmp_path):
    """The two callers differ in choosing recordings and handling errors, not in what they store."""
    recordings = find_recordings(dataset)
    batch_out, service_out = tmp_path / "batch", tmp_path / "service"
    jobs = session_jobs(recordings, batch_out, BatchSettings())
    assert sorted(j.session_date is None for j in jobs) == [False, True]
    for job in jobs:
        res = run_session(job)
        assert res["status"] == "done", res["failed"]
        specs = [
            {"id": str(i), "path": f.path, "filename": Path(f.path).name, "foot": f.foot, "format": f.format}
            | {"sampling_rate_hz": f.sampling_rate_hz}
            for i, f in enumerate(job.files)
        ]
        got = analyse_session(str(service_out), job.athlete_id, job.session_id, job.session_date, specs)
        assert "error" not in got, got
        assert got["stride_count"] == res["strides"] > 20
        for table in TABLES:
            b = partitions.read_partition(batch_out, table, job.athlete_id, job.session_id)
            s = partitions.read_partition(service_out, table, job.athlete_id, job.session_id)
            assert b is not None and s is not None, table
            assert_frame_equal(b, s)
        dates = partitions.read_partition(batch_out, partitions.SESSIONS, job.athlete_id, job.session_id)
        assert dates[SESSION_DATE].to_list() == [job.session_date] * 2
    # one schema over dated and undated sessions: a scan of the whole table works
    assert partitions.scan_table(service_out, partitions.SESSIONS).collect().height == 4
