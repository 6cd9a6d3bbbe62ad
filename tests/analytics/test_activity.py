"""Walking or running per stride (analytics.activity), and the summaries split by it."""

from __future__ import annotations

import polars as pl
import pytest
from support.paths import SHARED_DATA

from strideflow.analytics.activity import RUN_BELOW_DUTY_FACTOR, activity_expr
from strideflow.analytics.flags import compute_flags
from strideflow.analytics.pipeline import analyze_samples
from strideflow.analytics.sessions import STRIDE_COUNT_VALID, compute_sessions
from strideflow.analytics.trends import trends_from_sessions
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import SimulationSettings, Simulator

FOOTPRINTS = SHARED_DATA / "footprints_walks"


def test_rule_known_answers():
    duty = pl.DataFrame({S.DUTY_FACTOR: [0.62, 0.5, 0.499, 0.35, None, float("nan")]})
    got = duty.select(activity_expr()).to_series().to_list()
    assert RUN_BELOW_DUTY_FACTOR == 0.5
    assert got == ["walk", "walk", "run", "run", None, None]


@pytest.fixture(scope="module")
def mixed():
    sim = Simulator(SimulationSettings(activity="mixed", duration_s=120, seed=3)).simulate()
    result = analyze_samples(sim.samples_, sim.settings.sampling_rate_hz)
    return sim, result


def test_activity_matches_simulator_truth(mixed):
    sim, result = mixed
    truth = sim.truth_strides_
    assert set(truth[S.ACTIVITY].unique()) == {"walk", "run"}
    matched = (
        result.strides.filter(pl.col(S.VALID))
        .sort(S.IC_T)
        .join_asof(
            truth.sort(S.IC_T).select(S.FOOT, S.IC_T, pl.col(S.ACTIVITY).alias("true_activity")),
            on=S.IC_T,
            by=S.FOOT,
            strategy="nearest",
            tolerance=0.05,
            check_sortedness=False,
        )
        .filter(pl.col("true_activity").is_not_null())
    )
    assert matched.height > 100
    assert set(matched["true_activity"]) == {"walk", "run"}
    assert (matched[S.ACTIVITY] == matched["true_activity"]).all()


def test_sessions_split_by_activity_and_pair_like_with_like(mixed):
    _, result = mixed
    sessions = result.sessions
    assert sessions.select(S.FOOT, S.ACTIVITY).sort(S.FOOT, S.ACTIVITY).rows() == [
        ("left", "run"),
        ("left", "walk"),
        ("right", "run"),
        ("right", "walk"),
    ]
    cadence = S.session_median(S.CADENCE_SPM)
    walk = sessions.filter(pl.col(S.ACTIVITY) == "walk")
    run = sessions.filter(pl.col(S.ACTIVITY) == "run")
    # Running cadence above walking, each row's median from its own strides only.
    assert run[cadence].min() > walk[cadence].max()
    for part in (walk, run):
        left, right = (part.filter(pl.col(S.FOOT) == f)[cadence].item() for f in S.FEET)
        si = part[S.symmetry_index(S.CADENCE_SPM)].to_list()
        assert si[0] == si[1] == pytest.approx(200 * (left - right) / (left + right))
        # stride counts add up to the foot's steady strides of that activity
        for foot in S.FEET:
            n = result.strides.filter(
                (pl.col(S.FOOT) == foot) & pl.col(S.STEADY) & (pl.col(S.ACTIVITY) == part[S.ACTIVITY][0])
            ).height
            assert part.filter(pl.col(S.FOOT) == foot)[S.STRIDE_COUNT].item() == n
    assert sessions[S.STRIDE_COUNT].sum() == result.strides[S.STEADY].sum()
    assert sessions[STRIDE_COUNT_VALID].sum() == result.strides[S.VALID].sum()


def test_flags_and_trends_compare_like_with_like():
    def stride(session, foot, activity, excursion, cadence):
        duty = 0.62 if activity == "walk" else 0.36
        return {
            S.ATHLETE_ID: "A",
            S.SESSION_ID: session,
            S.FOOT: foot,
            S.DUTY_FACTOR: duty,
            S.PRONATION_EXCURSION_DEG: excursion,
            S.CADENCE_SPM: cadence,
            S.VALID: True,
            S.ACTIVITY: activity,
        }

    rows = []
    for foot in S.FEET:
        for _ in range(12):
            rows += [stride("S1", foot, "walk", 8.0, 110.0), stride("S2", foot, "walk", 8.0, 110.0)]
            rows += [stride("S3", foot, "run", 2.0, 170.0)]
            rows += [stride("S4", foot, "walk", 8.0, 110.0)]
    strides = pl.DataFrame(rows)
    strides = strides.with_columns(
        pl.lit(None, dtype=pl.Float64).alias(m) for m in S.METRICS if m not in strides.columns
    )
    sessions = compute_sessions(strides).with_columns(
        pl.col(S.SESSION_ID)
        .replace({"S1": "2026-01-01", "S2": "2026-01-08", "S3": "2026-01-15", "S4": "2026-01-22"})
        .alias(S.SESSION_DATE)
    )
    trends = trends_from_sessions(sessions, [S.CADENCE_SPM], baseline_sessions=2).collect()
    walk = trends.filter((pl.col(S.ACTIVITY) == "walk") & (pl.col(S.FOOT) == "left")).sort(S.SESSION_DATE)
    assert walk[S.SESSION_ID].to_list() == ["S1", "S2", "S4"]
    # the walking session after a running one is no "drop": unchanged against the walking baseline
    assert walk["change_from_baseline"].to_list() == [0.0, 0.0, 0.0]
    assert walk["slope_per_30d"].drop_nulls().to_list() == [0.0, 0.0]
    run = trends.filter((pl.col(S.ACTIVITY) == "run") & (pl.col(S.FOOT) == "left"))
    assert run[S.SESSION_ID].to_list() == ["S3"] and run["baseline"].item() == 170.0
    flags = compute_flags(sessions)
    low = flags.filter(pl.col("flag") == "low_pronation")
    assert set(zip(low[S.SESSION_ID], low[S.ACTIVITY], strict=True)) == {("S3", "run")}


def test_real_walk_is_walking(real_data):
    from strideflow.analytics.pipeline import analyze_recording
    from strideflow.ingest import read_recording

    result = analyze_recording(read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8))
    assert set(result.sessions[S.ACTIVITY]) == {"walk"}
    steady = result.strides.filter(pl.col(S.STEADY))
    assert steady.height > 40
    assert set(steady[S.ACTIVITY]) == {"walk"}
    assert set(
        analyze_recording(read_recording(real_data / "imu_sample.csv", sampling_rate_hz=204.8)).sessions[
            S.ACTIVITY
        ]
    ) == {"walk"}


@pytest.mark.parametrize("walk", [44])
def test_real_footprint_walk_with_running_strides(walk):
    path = FOOTPRINTS / f"SensorConnectData_{walk}.csv"
    if not path.exists():
        pytest.skip(f"footprint walks not found at {FOOTPRINTS} (needs ../shared/data/footprints_walks)")
    from strideflow.analytics.pipeline import analyze_recording
    from strideflow.ingest import read_recording

    result = analyze_recording(read_recording(path))
    valid = result.strides.filter(pl.col(S.VALID))
    by = {a: valid.filter(pl.col(S.ACTIVITY) == a) for a in ("walk", "run")}
    # walk 44 holds both: walking strides with double support, running-like ones with a flight phase
    assert by["walk"].height >= 10 and by["run"].height >= 10
    assert by["walk"][S.DUTY_FACTOR].min() >= 0.5 > by["run"][S.DUTY_FACTOR].max()
    assert set(result.sessions[S.ACTIVITY]) == {"walk", "run"}
