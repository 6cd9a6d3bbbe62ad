"""Trends: known answers on a hand-made sessions table, pruning by athlete, and simulator truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from strideflow.analytics import partitions
from strideflow.analytics.trends import (
    BASELINE,
    CHANGE_FROM_BASELINE,
    CHANGE_PCT,
    KEY_METRICS,
    MEDIAN,
    METRIC,
    SLOPE_PER_30D,
    SYMMETRY_INDEX,
    TRENDS_SCHEMA,
    TrendCalculator,
    TrendError,
    TrendSettings,
    compute_trends,
)
from strideflow.hardware.schema import (
    ATHLETE_ID,
    CADENCE_SPM,
    FOOT,
    PRONATION_EXCURSION_DEG,
    SESSION_DATE,
    SESSION_ID,
    STEADY,
    STRIDE_COUNT,
    session_median,
    symmetry_index,
)

PE = PRONATION_EXCURSION_DEG


def _write_sessions(root: Path, athlete: str, rows: list[tuple[str, str | None, float | None, float | None]]):
    """rows: (session_id, date, left median, right median) of pronation excursion."""
    for session, date, left, right in rows:
        si = None if left is None or right is None else 200 * (left - right) / (abs(left) + abs(right))
        df = pl.DataFrame(
            {
                FOOT: ["left", "right"],
                STRIDE_COUNT: [20, 21],
                session_median(PE): [left, right],
                symmetry_index(PE): [si, si],
                session_median(CADENCE_SPM): [110.0, 111.0],
                SESSION_DATE: [date, date],
            },
            schema_overrides={
                session_median(PE): pl.Float64,
                symmetry_index(PE): pl.Float64,
                SESSION_DATE: pl.String,
            },
        )
        partitions.write_partition(root, partitions.SESSIONS, df, athlete, session)


def test_baseline_change_and_slope_known_answer(tmp_path):
    # Left: 8 + 0.1 deg/day exactly; ids deliberately out of date order; S9 has no date (last).
    day0 = dt.date(2025, 3, 1)
    rows = [
        ("S3", (day0 + dt.timedelta(days=20)).isoformat(), 10.0, 7.0),
        ("S1", day0.isoformat(), 8.0, 6.0),
        ("S2", (day0 + dt.timedelta(days=10)).isoformat(), 9.0, None),
        ("S4", (day0 + dt.timedelta(days=40)).isoformat(), 12.0, 4.0),
        ("S9", None, 5.0, 5.0),
    ]
    _write_sessions(tmp_path, "ath", rows)
    t = compute_trends(tmp_path, athlete_id="ath", metric=PE, settings=TrendSettings(baseline_sessions=3))
    assert t.schema == pl.Schema(TRENDS_SCHEMA)
    left = t.filter(pl.col(FOOT) == "left")
    assert left[SESSION_ID].to_list() == ["S1", "S2", "S3", "S4", "S9"]
    assert left[BASELINE].to_list() == pytest.approx([9.0] * 5)  # mean of 8, 9, 10 (first 3 by date)
    assert left[CHANGE_FROM_BASELINE].to_list() == pytest.approx([-1.0, 0.0, 1.0, 3.0, -4.0])
    assert left[CHANGE_PCT].to_list() == pytest.approx([-100 / 9, 0.0, 100 / 9, 300 / 9, -400 / 9])
    slopes = left[SLOPE_PER_30D].to_list()
    assert slopes[0] is None and slopes[1:4] == pytest.approx([3.0, 3.0, 3.0])
    assert slopes[4] == pytest.approx(3.0)  # undated: the slope so far
    # Right: S2 has no median, so the baseline is S1, S3, S4 = (6 + 7 + 4) / 3.
    right = t.filter(pl.col(FOOT) == "right")
    assert right[BASELINE][0] == pytest.approx(17 / 3)
    assert right[CHANGE_FROM_BASELINE].to_list()[1] is None
    x, y = np.array([0.0, 20.0, 40.0]), np.array([6.0, 7.0, 4.0])
    assert right[SLOPE_PER_30D][3] == pytest.approx(30 * np.polyfit(x, y, 1)[0])
    assert right[SLOPE_PER_30D][2] == pytest.approx(30 * (7.0 - 6.0) / 20.0)
    # symmetry index on both foot rows of a session
    s3 = t.filter(pl.col(SESSION_ID) == "S3")[SYMMETRY_INDEX].to_list()
    assert s3 == pytest.approx([200 * 3 / 17] * 2)
    # a smaller baseline
    t1 = compute_trends(tmp_path, athlete_id="ath", metric=PE, settings=TrendSettings(baseline_sessions=1))
    assert t1.filter(pl.col(FOOT) == "left")[BASELINE][0] == pytest.approx(8.0)


def test_only_the_athletes_partitions_are_read(tmp_path):
    _write_sessions(tmp_path, "A1", [("S1", "2025-01-01", 8.0, 7.0), ("S2", "2025-01-15", 9.0, 7.5)])
    _write_sessions(tmp_path, "Z9", [("S1", "2025-01-01", 8.0, 7.0)])
    calc = TrendCalculator().compute(tmp_path, athlete_id="A1", metric=PE)
    plan = calc.plan_.explain()
    assert "athlete_id=A1" in plan and "athlete_id=Z9" not in plan
    # Corrupt the other athlete's file: pruning means it is never opened.
    victim = partitions.partition_dir(tmp_path, partitions.SESSIONS, "Z9", "S1") / partitions.PART_FILE
    victim.write_bytes(b"not parquet at all")
    assert compute_trends(tmp_path, athlete_id="A1", metric=PE).height == 4
    with pytest.raises(pl.exceptions.PolarsError):
        compute_trends(tmp_path, metric=PE)  # all athletes: the corrupt file is read


def test_errors_and_empty(tmp_path):
    assert compute_trends(tmp_path).is_empty()
    _write_sessions(tmp_path, "A1", [("S1", "2025-01-01", 8.0, 7.0)])
    assert compute_trends(tmp_path, athlete_id="nobody").is_empty()
    with pytest.raises(TrendError, match="not_a_metric"):
        compute_trends(tmp_path, metric="not_a_metric")
    with pytest.raises(partitions.PartitionError, match="athlete_id"):
        compute_trends(tmp_path, athlete_id="../etc")
    with pytest.raises(TrendError, match="baseline_sessions"):
        compute_trends(tmp_path, settings=TrendSettings(baseline_sessions=0))
    # default metrics: those stored (pronation excursion and cadence here)
    assert set(compute_trends(tmp_path)[METRIC]) == {PE, CADENCE_SPM}


# Largest allowed |estimate - truth| of a change from baseline (any session) and of the slope over
# all four sessions, per metric (units: the metric's, and per 30 days). Measured errors on this
# dataset are about half of these.
TOLERANCE = {
    # 0.3 before issue 15: each stride's toe-out now varies (1.5 deg SD), which the walking-direction
    # frame turns into roll at the strike pitch; measured 0.31 deg off on one session here
    PRONATION_EXCURSION_DEG: 0.5,
    # 10 before issue 15: the gyro gain errors (1 %, drawn per session) and the impact rocking now
    # move each session's rates; measured 10.7 deg/s off on one slope here
    "max_pronation_velocity_dps": 15.0,
    # 0.6 before issue 15: each stride's toe-out varies (1.5 deg SD), which the walking-direction
    # frame turns into roll at the toe-off pitch (~tan(60 deg) x), and the gain errors scale with the
    # drifting toe-off angle; measured 0.92 deg off on one change and 1.18 deg/30 d on one slope here
    "toe_off_pronation_deg": 1.5,
    "toe_off_angle_deg": 1.2,  # 0.8 before issue 15 (gain errors, oblique push-off): 0.88 measured
    "push_off_rate_dps": 6.0,
    CADENCE_SPM: 1.5,
    "stance_time_s": 0.015,
    "stride_length_m": 0.015,
    "foot_progression_angle_deg": 1.5,  # no drift; session medians of 1.5 deg SD strides move a little
}

# The pods' gyro gain errors (issue 15: 1 %, 0.5 deg, kept per pod across sessions) and their yaw on
# the shoe bias toe-off pronation per pod: a fixed offset the changes do not see (measured 1.13 deg
# here; 1.64 deg since the simulated push-off rolls about an oblique axis, whose roll rate at toe-off
# turns the toe-off timing error into roll). 2.5 deg is the default rows' measured MAE in `bench
# accuracy` (issue 15's 1.5 deg target is not met: the +-2 deg pod yaw no gait cue recovers).
LEVEL_TOLERANCE = {"toe_off_pronation_deg": 2.5}


@pytest.mark.slow
def test_trends_follow_the_simulated_drift(tmp_path):
    from strideflow.analytics.batch import BatchSettings, TeamBatch
    from strideflow.benchmarks._common import SIMULATOR_ANALYSIS
    from strideflow.hardware.simulator import write_dataset

    data, out = tmp_path / "data", tmp_path / "out"
    # Shoes along the walking direction: the pipeline's frame is the walking direction until the
    # shoe axis is estimated (issue 15), and a toed-out shoe offsets angles about its axis there.
    write_dataset(data, athletes=2, minutes=1.0, sessions=4, seed=2, toe_out_deg=0.0)
    # ... and the simulator's pods sit askew on the shoe, so the walking heading (SIMULATOR_ANALYSIS)
    batch = BatchSettings(workers=2, analysis=SIMULATOR_ANALYSIS)
    assert TeamBatch(batch).run(data, out).summary_.sessions_done == 8
    n = 2
    trends = compute_trends(out, settings=TrendSettings(baseline_sessions=n))
    assert set(trends[METRIC]) == set(KEY_METRICS) == set(TOLERANCE)
    truth = pl.read_parquet(data / "truth_strides.parquet")
    dates = pl.read_csv(data / "manifest.csv").select(
        ATHLETE_ID, SESSION_ID, FOOT, pl.col(SESSION_DATE).str.to_date()
    )
    signs_checked = 0
    for metric, tol in TOLERANCE.items():
        medians = (
            truth.filter(pl.col(STEADY))
            .group_by(ATHLETE_ID, SESSION_ID, FOOT)
            .agg(pl.col(metric).median().alias("truth"))
            .join(dates, on=[ATHLETE_ID, SESSION_ID, FOOT])
            .sort(ATHLETE_ID, FOOT, SESSION_DATE)
        )
        for (athlete, foot), g in medians.group_by(ATHLETE_ID, FOOT, maintain_order=True):
            est = trends.filter(
                (pl.col(ATHLETE_ID) == athlete) & (pl.col(FOOT) == foot) & (pl.col(METRIC) == metric)
            ).sort(SESSION_DATE)
            assert est[SESSION_ID].to_list() == g[SESSION_ID].to_list()
            y = g["truth"].to_numpy()
            days = (g[SESSION_DATE] - g[SESSION_DATE][0]).dt.total_days().to_numpy().astype(float)
            true_change = y - y[:n].mean()
            assert est[CHANGE_FROM_BASELINE].to_numpy() == pytest.approx(true_change, abs=tol), (
                metric,
                athlete,
            )
            true_slope = 30.0 * np.polyfit(days, y, 1)[0]
            assert est[SLOPE_PER_30D][-1] == pytest.approx(true_slope, abs=tol), (metric, athlete, foot)
            if abs(true_slope) > 2 * tol:
                assert np.sign(est[SLOPE_PER_30D][-1]) == np.sign(true_slope)
                assert np.sign(est[CHANGE_FROM_BASELINE][-1]) == np.sign(true_change[-1])
                signs_checked += 1
            # the absolute level may carry the pipeline's bias (a few %); the changes above may not
            level_tol = max(tol, 0.1 * np.abs(y).max(), LEVEL_TOLERANCE.get(metric, 0.0))
            assert est[MEDIAN].to_numpy() == pytest.approx(y, abs=level_tol), (metric, athlete, foot)
    assert signs_checked >= 6  # the drift is large enough to show its direction for several metrics
