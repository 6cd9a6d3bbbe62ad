"""Accuracy of the whole analysis against simulator truth: stride detection, event timing, metrics.

Each simulated athlete walks one session and runs another with the simulator's defaults (noise,
gyro bias, gyro gain and cross-axis errors of 1 % and 0.5 deg, impact rocking that reaches the gyro,
push-off about an oblique MTP axis, toe-out drawn 0-20 deg per athlete, mounting rotation, ADC and
range clipping; straight bouts with turns). The samples go through the same pipeline as a recording
(`analytics.pipeline.analyze_samples`, mounting estimated from the data); detected strides are
matched one-to-one to the true strides by toe-off time within 60 ms
(`analytics.evaluation.match_strides`), and each metric is compared over the matched pairs where
both the detected and the true stride are valid.

Rows (DESIGN.md naming `<metric>.<statistic>`):
- `stride.recall_pct`, `stride.precision_pct` (valid detected vs valid true strides);
- `<event>.median_abs_ms`, `<event>.p95_abs_ms` for ic_t, foot_flat_t, heel_off_t, toe_off_t;
- per numeric metric: `.mae`, `.p95_abs`, `.bias` (mean signed error, detected - truth), and
  `.mape_pct` where the metric is positive by definition; `foot_progression_angle_deg.mae` is the
  toe-out against the truth's, which is about the shoe's axis (the analysis frame's x is the
  walking direction unless the mounting is known, so it reads ~0 there);
- `stride_length_m.walk.mape_pct`, `stride_length_m.run.mape_pct`;
- `strike_type.accuracy_pct`, `toe_off_pronation_sign.accuracy_pct` (all strides) and
  `toe_off_pronation_sign.clear_accuracy_pct` (strides whose true value is at least 2 deg from 0,
  `.clear_share_pct` of them);
- `athletes`, `strides.matched` (how much data the figures rest on);
- `true_mounting.*`: the same rows (without bias) when the simulator's known mounting rotation is
  undone instead of estimated, i.e. the analysis runs in the shoe frame; shows how much of each
  error the mounting estimate (and its heading, the walking direction) causes;
- `toe_out.*`: the same rows (with bias) with every athlete toed out `TOE_OUT_SCENARIO_DEG` on
  both feet;
- `no_toe_out.*`: the same rows (with bias) with the shoes along the walking direction (toe-out 0,
  everything else on), which isolates the gyro gain errors, impact rocking and oblique push-off.
- `square_mount.*`: the same rows (with bias) with the pods turned at most 1 deg on the shoe
  (`square_mounting`; the simulator's default square pods are turned up to 2 deg).
- `calibrated.*`: the same rows (with bias) as the default, each session starting with the
  simulator's toe-tap field calibration (`hardware.simulator.calibration`: standing, heel-down toe
  taps of each foot, standing), analysed with the product defaults (heading `auto`, which takes the
  calibration when it finds one). The taps turn the shoe about an axis drawn per athlete ~1 deg
  off its own y (an assumption, see that module), which the calibration inherits.
- `shoe_axis.heading_abs_error_deg.median` / `.p95` (per scenario): the heading of the analysis
  frame's x against the shoe's true axis, over the sessions' feet; `shoe_axis.calibration_pct`:
  the share of feet whose heading came from a toe-tap calibration.
- `askew_mount.*`: the same rows (with bias) with the simulator's askew pods (2-15 deg about every
  axis, yaw included: a pod turned on its mount), whose shoe axis walking data cannot reveal,
  analysed with the walking-direction heading, the fallback (`SIMULATOR_ANALYSIS`): its error is
  the toe-out.
The default, `toe_out`, `no_toe_out`, `square_mount` and `calibrated` rows use the product's defaults on the
simulator's default pods, mounted square on the shoe as real pods are (`imu.draw_mounting`:
rolled 5-20 deg by the slope of the upper, pitched +-5 deg, turned +-2 deg): the shoe axis from
the pod's own axis (`hardware.shoe_axis`), the path the real recordings take.
- `compliant_mount.*`: the same rows (with bias) with every pod on a compliant mount
  (`SimulationSettings.mount_compliance_s2` = `kinematics.MOUNT_COMPLIANCE_S2`): the pod tilts on
  the shoe with the shoe's angular acceleration, which the analysis' rigid lever reads as the foot's
  own turn; its level is the real fast footprint walks' anchor error (issue 17, item 5);
  `compliant_rolling_stance.*` (full run only): the same with the `rolling_stance` runners.
- `instep_pod.*`: the same rows (with bias) with every athlete's push-off as the LORD footprint
  pod reads it (issue 17): toe-off angles drawn from `LORD_POD_TOE_OFF_RANGE_DEG` walking and
  running, and the walkers' late push-off (`LORD_WALK_PUSH_OFF_SHAPE`);
- `gyr_delay.*` (full run only): the same rows when the pods' gyro samples lag the
  accelerometer's by 5 ms (`DELAY_PROFILE`), as measured on the real LORD pod of the footprint
  walks, which the pipeline does not estimate;
- `rolling_stance.*` (full run only): the same rows with every runner's stance rolling at
  `ROLLING_STANCE_DPS` from foot-flat to heel-off (`GaitParams.stance_roll_dps`): no still sample
  in a running stance, as on the real fast footprint strides; analysed with the true mounting
  (the mounting estimate needs still periods; compare with `true_mounting.*`);
- `gyro_range_500.*` and `gyro_range_500_as_read.*` (full run only): the same rows on pods whose
  gyro clips at 500 deg/s per axis (`CLIPPED_GYRO_PROFILE`, the range of the real LORD pod of the
  footprint walks, which its fast strides exceed), every stride with a clipped sample kept valid in
  the truth (the motion is a stride; the simulator's own saturation flag is what a real pod's
  calibrated output does not give) and, in the first, the clipped runs rebuilt the way the LORD
  reader rebuilds them (`ingest.clipping`);
- `real.*` (when `../shared/data` is there): the real recordings against their independent
  references, beside the simulator rows. Per footprint walk NN (`real.walkNN.`, one LORD pod,
  read through the SensorConnect reader, strides paired with the measured footprints by order):
  `strides.expected`, `strides.detected`, `strides.found_pct` (detected strides within 0.3 m of
  their footprint stride), `strides.valid_pct`, `stride_length.bias_cm` and
  `stride_length.median_abs_cm` (valid strides), `distance.error_pct` (all strides),
  `first_stride.error_cm` (the stride from standing, invalid "gait_start" but measured); and
  `real.ic_stride.ic_t.median_abs_ms`, `.bias_ms`, `.sd_ms` against the motion-capture ICs of
  `imu_sample_ic_stride.csv`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from strideflow.analytics.evaluation import match_strides
from strideflow.analytics.pipeline import AnalysisSettings, analyze_samples
from strideflow.benchmarks._common import SIMULATOR_ANALYSIS, Row, parallel_map, row
from strideflow.hardware import schema as S
from strideflow.hardware.profiles import DEFAULT_PROFILE, PROFILES, DeviceProfile
from strideflow.hardware.simulator.kinematics import MOUNT_COMPLIANCE_S2
from strideflow.hardware.simulator.simulator import SATURATION_REASON

TOLERANCE_S = 0.060
CLEAR_TOE_OFF_PRONATION_DEG = 2.0
ACTIVITIES = ("walk", "run")
EVENTS = (S.IC_T, S.FOOT_FLAT_T, S.HEEL_OFF_T, S.TOE_OFF_T)
# Metrics that are positive by definition: a percentage error is meaningful for these.
POSITIVE = (
    S.STRIDE_TIME_S,
    S.STANCE_TIME_S,
    S.SWING_TIME_S,
    S.CADENCE_SPM,
    S.STRIDE_LENGTH_M,
    S.SPEED_MPS,
    S.MAX_PRONATION_VELOCITY_DPS,
    S.PUSH_OFF_RATE_DPS,
    S.IMPACT_G,
    S.DUTY_FACTOR,
)
UNITS = {
    S.STRIDE_TIME_S: "s",
    S.STANCE_TIME_S: "s",
    S.SWING_TIME_S: "s",
    S.CADENCE_SPM: "steps/min",
    S.STRIDE_LENGTH_M: "m",
    S.SPEED_MPS: "m/s",
    S.FOOT_STRIKE_ANGLE_DEG: "deg",
    S.PRONATION_EXCURSION_DEG: "deg",
    S.MAX_PRONATION_VELOCITY_DPS: "deg/s",
    S.TIME_TO_MAX_PRONATION_S: "s",
    S.TOE_OFF_PRONATION_DEG: "deg",
    S.TOE_OFF_ANGLE_DEG: "deg",
    S.PUSH_OFF_RATE_DPS: "deg/s",
    S.HEEL_OFF_RATIO: "1",
    S.IMPACT_G: "g",
    S.DUTY_FACTOR: "1",
    S.FOOT_PROGRESSION_ANGLE_DEG: "deg",
}
ACTIVITY = "activity"
TOE_OUT_SCENARIO_DEG = 15.0  # the toe_out scenario: both feet, every athlete (imu_sample.csv: 14-16)


def square_mounting(rng: np.random.Generator, foot: str):
    """foot -> device rotation of a pod sitting square on the shoe's lateral upper: rolled 5-20 deg
    (the upper's slope, outward on each foot), pitched within +-5 deg, turned within +-1 deg."""
    from scipy.spatial.transform import Rotation

    roll = rng.uniform(5.0, 20.0) * (1.0 if foot == "left" else -1.0)
    return Rotation.from_euler("XYZ", [roll, rng.uniform(-5.0, 5.0), rng.uniform(-1.0, 1.0)], degrees=True)


DELAY_PROFILE = replace(DEFAULT_PROFILE, name="gyro-delay-5ms", gyr_delay_s=0.005)
# deg/s: the gyro range of the real LORD pod of the footprint walks (`hardware.profiles`)
CLIPPED_GYRO_PROFILE = replace(
    DEFAULT_PROFILE, name="gyro-500dps", gyr_range_dps=PROFILES["lord-3dm-gx5-25"].gyr_range_dps
)
# deg/s: the real running-like stances' minimum gyro norm (footprint walks 35, 43, 44: median 38)
ROLLING_STANCE_DPS = 35.0
REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOOTPRINT_WALKS = (31, 32, 33, 34, 35, 36, 42, 43, 44, 45)


def simulate_and_analyze(
    athlete: int,
    activity: str,
    duration_s: float,
    settings: AnalysisSettings | None = None,
    true_mounting: bool = False,
    profile: DeviceProfile = DEFAULT_PROFILE,
    toe_out_deg: float | None = None,
    square_mount: bool = False,
    askew: bool = False,
    stance_roll_dps: float | None = None,
    clipped_gyr: str | None = None,
    calibration: bool = False,
    tap_axis_deg: float | None = None,
    mount_compliance_s2: float = 0.0,
    instep_pod: bool = False,
) -> pl.DataFrame:
    """Matched (detected, truth) stride pairs of one simulated session: columns `<name>` and `<name>_true`.

    `true_mounting`: undo the simulator's known mounting instead of estimating it (a diagnostic
    that separates the mounting estimate's share of the error from the rest of the pipeline).
    `toe_out_deg`: both feet toe out this much (deg); None: the athlete's own drawn toe-out.
    `square_mount`: pods square on the shoe (`square_mounting`) analysed with the product defaults.
    `askew`: the simulator's askew pods (`mount_style="askew"`) analysed with the walking-direction
    heading, the fallback (`SIMULATOR_ANALYSIS`). `settings`: None, the product defaults (or the
    fallback for `askew`).
    `stance_roll_dps`: the athlete's running stance rolls at this rate (deg/s) instead of standing still.
    `clipped_gyr`: None, or "as_read" / "rebuilt": true strides with a clipped gyro sample (at the
    profile's range) stay valid, and with "rebuilt" the clipped runs are rebuilt as the LORD reader
    does (`ingest.clipping.rebuild_clipped`) before the analysis.
    `calibration`: the session starts with a toe-tap calibration (`SimulationSettings.calibration`),
    whose taps turn about an axis `tap_axis_deg` off the shoe's y (None: the athlete's drawn one).
    `mount_compliance_s2`: the pods sit on a compliant mount (`SimulationSettings.mount_compliance_s2`).
    `instep_pod`: the athlete's push-off as the LORD footprint pod reads it (toe-off angles drawn from
    `LORD_POD_TOE_OFF_RANGE_DEG`, the walkers' late push-off `LORD_WALK_PUSH_OFF_SHAPE`).
    Each foot's shoe-axis heading error (deg, analysis x against the true shoe x, about the true
    up) and heading source are added as `_heading_error_deg` and `_heading_source`.
    """
    if settings is None:
        settings = SIMULATOR_ANALYSIS if askew else AnalysisSettings()
    from strideflow.hardware.mounting import apply_mounting
    from strideflow.hardware.simulator import SimulationSettings, Simulator
    from strideflow.hardware.simulator.params import (
        LORD_POD_TOE_OFF_RANGE_DEG,
        LORD_WALK_PUSH_OFF_SHAPE,
        sample_athlete,
    )

    seed = (athlete, 1 if activity == "walk" else 2)
    gait = None
    if stance_roll_dps is not None or instep_pod:
        # the athlete the simulator draws from this seed (its first spawned stream), changed below
        gait = sample_athlete(np.random.default_rng(np.random.SeedSequence(seed).spawn(7)[0]))
    if stance_roll_dps is not None:
        gait = replace(gait, run=replace(gait.run, stance_roll_dps=stance_roll_dps))
    if instep_pod:
        rng = np.random.default_rng((*seed, 17))
        walk_deg, run_deg = rng.uniform(*LORD_POD_TOE_OFF_RANGE_DEG, size=2)
        gait = replace(
            gait,
            walk=replace(gait.walk, toe_off_angle_deg=walk_deg, push_off_shape=LORD_WALK_PUSH_OFF_SHAPE),
            run=replace(gait.run, toe_off_angle_deg=run_deg),
        )
    mounts = None
    if square_mount:
        rng = np.random.default_rng((*seed, 15))
        mounts = {foot: square_mounting(rng, foot) for foot in S.FEET}
        settings = AnalysisSettings()
    sim = Simulator(
        SimulationSettings(
            activity=activity,
            duration_s=duration_s,
            seed=seed,
            athlete_id=f"A{athlete:03d}",
            session_id=f"{activity}",
            keep_orientation=False,
            profile=profile,
            toe_out_deg=toe_out_deg,
            mounting_rotations=mounts,
            mount_style="askew" if askew else "square",
            athlete=gait,
            calibration=calibration,
            tap_axis_deg=tap_axis_deg,
            mount_compliance_s2=mount_compliance_s2,
        )
    ).simulate()
    samples = sim.samples_
    truth = sim.truth_strides_
    if clipped_gyr is not None:
        truth = truth.with_columns(
            (pl.col(S.VALID) | (pl.col(S.REASON) == SATURATION_REASON)).alias(S.VALID),
            pl.when(pl.col(S.REASON) == SATURATION_REASON)
            .then(None)
            .otherwise(pl.col(S.REASON))
            .alias(S.REASON),
        )
    if clipped_gyr == "rebuilt":
        samples = _rebuilt_gyr(samples, profile.gyr_range_dps)
    if true_mounting:
        samples = apply_mounting(samples, {foot: rot.inv() for foot, rot in sim.mounting_.items()})
        settings = replace(settings, align_mounting=False)
    result = analyze_samples(samples, sim.settings.sampling_rate_hz, settings)
    pairs = pair_strides(result.strides, truth, activity)
    if true_mounting:
        return pairs
    rows = []
    for foot in S.FEET:
        if foot in result.mounting:
            used = result.mountings.get(foot)
            rows.append(
                {
                    S.FOOT: foot,
                    "_heading_error_deg": _heading_error_deg(result.mounting[foot], sim.mounting_[foot]),
                    "_heading_source": used[0].shoe_axis_source if used else None,
                    "_session": f"A{athlete:03d}/{activity}/{foot}",
                }
            )
    schema = {S.FOOT: pl.String, "_heading_error_deg": pl.Float64, "_heading_source": pl.String}
    heading = pl.DataFrame(rows, schema={**schema, "_session": pl.String})
    return pairs.join(heading, left_on=pl.coalesce(S.FOOT, f"{S.FOOT}_true"), right_on=S.FOOT, how="left")


def _heading_error_deg(device_to_foot, foot_to_device) -> float:
    """Heading (deg, about the true foot-flat up) of the analysis frame's x against the shoe's x."""
    up = foot_to_device.apply([0.0, 0.0, 1.0])
    x_true = foot_to_device.apply([1.0, 0.0, 0.0])
    x_est = device_to_foot.as_matrix()[0]
    x_est = x_est - (x_est @ up) * up
    return float(np.degrees(np.arctan2(np.cross(x_true, x_est) @ up, x_true @ x_est)))


def _rebuilt_gyr(samples: pl.DataFrame, range_dps: float) -> pl.DataFrame:
    """Each foot's gyro with the runs clipped at `range_dps` rebuilt (`ingest.clipping`)."""
    from strideflow.ingest.clipping import rebuild_clipped

    parts = []
    for _, part in samples.group_by(S.FOOT, maintain_order=True):
        t = part[S.T].to_numpy()
        parts.append(
            part.with_columns(
                pl.Series(c, rebuild_clipped(t, part[c].to_numpy(), range_dps)[0]) for c in S.GYR
            )
        )
    return pl.concat(parts)


def pair_strides(detected: pl.DataFrame, truth: pl.DataFrame, activity: str) -> pl.DataFrame:
    """Detected and true strides side by side (one row per matched pair) plus detection counts.

    Every true stride appears once: matched pairs have the detected columns filled. Detected
    valid strides without a match are added with null truth (false positives).
    """
    truth_valid = truth.filter(pl.col(S.VALID)).select(list(S.STRIDES_SCHEMA))
    m = match_strides(detected, truth_valid, tolerance_s=TOLERANCE_S, only_valid=True)
    det_rows = detected.with_row_index("_d")
    ref_rows = truth_valid.with_row_index("_r")
    pairs = m.matches.select(pl.col("detected_row").alias("_d"), pl.col("reference_row").alias("_r"))
    true_cols = ref_rows.rename({c: f"{c}_true" for c in S.STRIDES_SCHEMA})
    matched = (
        true_cols.join(pairs, on="_r", how="left")
        .join(det_rows, on="_d", how="left")
        .with_columns(pl.col("_d").is_not_null().alias("_matched"), pl.lit(False).alias("_false_positive"))
    )
    used = set(pairs["_d"].to_list())
    unmatched = det_rows.filter(pl.col(S.VALID) & ~pl.col("_d").is_in(list(used))).with_columns(
        pl.lit(False).alias("_matched"), pl.lit(True).alias("_false_positive")
    )
    out = pl.concat([matched, unmatched], how="diagonal_relaxed")
    return out.with_columns(pl.lit(activity).alias(ACTIVITY))


def summarize(pairs: pl.DataFrame) -> list[Row]:
    """Benchmark rows from the stride pairs of every simulated session."""
    rows: list[Row] = []
    n_true = pairs.filter(~pl.col("_false_positive")).height
    n_matched = pairs.filter(pl.col("_matched")).height
    n_false = pairs.filter(pl.col("_false_positive")).height
    rows.append(row("stride.recall_pct", 100.0 * n_matched / max(n_true, 1), "%"))
    rows.append(row("stride.precision_pct", 100.0 * n_matched / max(n_matched + n_false, 1), "%"))
    rows.append(row("strides.matched", n_matched, "strides"))
    if "_heading_error_deg" in pairs.columns:
        feet = (
            pairs.select("_session", "_heading_error_deg", "_heading_source").drop_nulls("_session").unique()
        )
        err = feet["_heading_error_deg"].drop_nulls().abs().to_numpy()
        if err.size:
            rows.append(row("shoe_axis.heading_abs_error_deg.median", float(np.median(err)), "deg"))
            rows.append(row("shoe_axis.heading_abs_error_deg.p95", float(np.percentile(err, 95)), "deg"))
            share = float((feet["_heading_source"] == "calibration").mean() * 100.0)
            rows.append(row("shoe_axis.calibration_pct", share, "%"))
    matched = pairs.filter(pl.col("_matched"))
    for event in EVENTS:
        err_ms = ((matched[event] - matched[f"{event}_true"]).abs() * 1000.0).drop_nulls().to_numpy()
        if err_ms.size:
            rows.append(row(f"{event}.median_abs_ms", float(np.median(err_ms)), "ms"))
            rows.append(row(f"{event}.p95_abs_ms", float(np.percentile(err_ms, 95)), "ms"))
    both = matched.filter(pl.col(S.VALID) & pl.col(f"{S.VALID}_true"))
    for metric in S.METRICS:
        d = both.select(
            (pl.col(metric) - pl.col(f"{metric}_true")).alias("e"),
            pl.col(f"{metric}_true").alias("t"),
            ACTIVITY,
        ).drop_nulls()
        if d.height == 0:
            continue
        e = d["e"].to_numpy()
        unit = UNITS[metric]
        rows.append(row(f"{metric}.mae", float(np.mean(np.abs(e))), unit))
        rows.append(row(f"{metric}.p95_abs", float(np.percentile(np.abs(e), 95)), unit))
        rows.append(row(f"{metric}.bias", float(np.mean(e)), unit))
        if metric in POSITIVE:
            ok = d.filter(pl.col("t").abs() > 0)
            rows.append(row(f"{metric}.mape_pct", float((ok["e"] / ok["t"]).abs().mean() * 100.0), "%"))
    for activity in ACTIVITIES:
        d = both.filter(pl.col(ACTIVITY) == activity)
        if d.height:
            ape = (
                ((d[S.STRIDE_LENGTH_M] - d[f"{S.STRIDE_LENGTH_M}_true"]) / d[f"{S.STRIDE_LENGTH_M}_true"])
                .abs()
                .drop_nulls()
            )
            if ape.len():
                rows.append(row(f"{S.STRIDE_LENGTH_M}.{activity}.mape_pct", float(ape.mean() * 100.0), "%"))
    strikes = both.select(S.STRIKE_TYPE, f"{S.STRIKE_TYPE}_true").drop_nulls()
    if strikes.height:
        hit = (strikes[S.STRIKE_TYPE] == strikes[f"{S.STRIKE_TYPE}_true"]).mean()
        rows.append(row("strike_type.accuracy_pct", float(hit * 100.0), "%"))
    signs = both.select(S.TOE_OFF_PRONATION_DEG, f"{S.TOE_OFF_PRONATION_DEG}_true").drop_nulls()
    if signs.height:
        got = np.sign(signs[S.TOE_OFF_PRONATION_DEG].to_numpy())
        true = signs[f"{S.TOE_OFF_PRONATION_DEG}_true"].to_numpy()
        rows.append(
            row("toe_off_pronation_sign.accuracy_pct", float(np.mean(got == np.sign(true)) * 100.0), "%")
        )
        # Where the true roll-off is clearly medial or lateral (|truth| >= 2 deg), for context:
        # a stride rolling off within a degree of neutral has no meaningful sign.
        clear = np.abs(true) >= CLEAR_TOE_OFF_PRONATION_DEG
        if clear.any():
            rows.append(
                row(
                    "toe_off_pronation_sign.clear_accuracy_pct",
                    float(np.mean(got[clear] == np.sign(true[clear])) * 100.0),
                    "%",
                )
            )
            rows.append(row("toe_off_pronation_sign.clear_share_pct", float(np.mean(clear) * 100.0), "%"))
    return rows


def _one(args: tuple) -> pl.DataFrame:
    (
        athlete,
        activity,
        duration_s,
        true_mounting,
        profile,
        toe_out_deg,
        square,
        roll,
        askew,
        clipped,
        cal,
        tap,
        compliance,
        instep,
    ) = args
    return simulate_and_analyze(
        athlete,
        activity,
        duration_s,
        true_mounting=true_mounting,
        profile=profile,
        toe_out_deg=toe_out_deg,
        square_mount=square,
        stance_roll_dps=roll,
        askew=askew,
        clipped_gyr=clipped,
        calibration=cal,
        tap_axis_deg=tap,
        mount_compliance_s2=compliance,
        instep_pod=instep,
    )


def collect_pairs(
    n_athletes: int,
    duration_s: float,
    workers: int | None = None,
    true_mounting: bool = False,
    profile: DeviceProfile = DEFAULT_PROFILE,
    toe_out_deg: float | None = None,
    square_mount: bool = False,
    stance_roll_dps: float | None = None,
    askew: bool = False,
    clipped_gyr: str | None = None,
    calibration: bool = False,
    tap_axis_deg: float | None = None,
    mount_compliance_s2: float = 0.0,
    instep_pod: bool = False,
) -> pl.DataFrame:
    """Stride pairs of `n_athletes` athletes, each one walking and one running session."""
    jobs = [
        (
            a,
            act,
            duration_s,
            true_mounting,
            profile,
            toe_out_deg,
            square_mount,
            stance_roll_dps,
            askew,
            clipped_gyr,
            calibration,
            tap_axis_deg,
            mount_compliance_s2,
            instep_pod,
        )
        for a in range(1, n_athletes + 1)
        for act in ACTIVITIES
    ]
    parts = parallel_map(_one, jobs, workers)
    return pl.concat(parts, how="diagonal_relaxed")


def run(quick: bool = False) -> list[Row]:
    """Accuracy rows; quick: 8 athletes x 20 s per activity, else 50 athletes x 60 s."""
    n_athletes, duration_s = (8, 20.0) if quick else (50, 60.0)
    t0 = time.perf_counter()
    pairs = collect_pairs(n_athletes, duration_s)
    rows = [row("athletes", n_athletes, "athletes"), row("session.duration_s", duration_s, "s")]
    rows += summarize(pairs)
    # Diagnostic: the same sessions with the simulator's true mounting undone instead of estimated.
    diagnostic = summarize(collect_pairs(n_athletes, duration_s, true_mounting=True))
    rows += [
        {**r, "name": f"true_mounting.{r['name']}"} for r in diagnostic if not r["name"].endswith(".bias")
    ]
    # Scenarios: every athlete toed out the same on both feet, and no toe-out at all.
    for prefix, toe_out in (("toe_out", TOE_OUT_SCENARIO_DEG), ("no_toe_out", 0.0)):
        scenario = summarize(collect_pairs(n_athletes, duration_s, toe_out_deg=toe_out))
        rows += [{**r, "name": f"{prefix}.{r['name']}"} for r in scenario]
    square = summarize(collect_pairs(n_athletes, duration_s, square_mount=True))
    rows += [{**r, "name": f"square_mount.{r['name']}"} for r in square]
    calibrated = summarize(collect_pairs(n_athletes, duration_s, calibration=True))
    rows += [{**r, "name": f"calibrated.{r['name']}"} for r in calibrated]
    askew = summarize(collect_pairs(n_athletes, duration_s, askew=True))
    rows += [{**r, "name": f"askew_mount.{r['name']}"} for r in askew]
    compliant = summarize(collect_pairs(n_athletes, duration_s, mount_compliance_s2=MOUNT_COMPLIANCE_S2))
    rows += [{**r, "name": f"compliant_mount.{r['name']}"} for r in compliant]
    instep = summarize(collect_pairs(n_athletes, duration_s, instep_pod=True))
    rows += [{**r, "name": f"instep_pod.{r['name']}"} for r in instep]
    if not quick:
        delayed = summarize(collect_pairs(n_athletes, duration_s, profile=DELAY_PROFILE))
        rows += [{**r, "name": f"gyr_delay.{r['name']}"} for r in delayed]
        # with the true mounting: the mounting estimate needs still periods, which a session of
        # rolling running stances does not have (compare with the true_mounting rows)
        rolling = summarize(
            collect_pairs(n_athletes, duration_s, true_mounting=True, stance_roll_dps=ROLLING_STANCE_DPS)
        )
        rows += [{**r, "name": f"rolling_stance.{r['name']}"} for r in rolling]
        compliant_rolling = summarize(
            collect_pairs(
                n_athletes,
                duration_s,
                true_mounting=True,
                stance_roll_dps=ROLLING_STANCE_DPS,
                mount_compliance_s2=MOUNT_COMPLIANCE_S2,
            )
        )
        rows += [{**r, "name": f"compliant_rolling_stance.{r['name']}"} for r in compliant_rolling]
        for prefix, clipped in (("gyro_range_500", "rebuilt"), ("gyro_range_500_as_read", "as_read")):
            scenario = summarize(
                collect_pairs(n_athletes, duration_s, profile=CLIPPED_GYRO_PROFILE, clipped_gyr=clipped)
            )
            rows += [{**r, "name": f"{prefix}.{r['name']}"} for r in scenario]
    rows += real_data_rows()
    rows.append(row("benchmark.wall_s", time.perf_counter() - t0, "s"))
    return rows


def footprint_rows(walk: int, strides: pl.DataFrame, footprints_xy: np.ndarray) -> list[Row]:
    """Rows of one footprint walk: its strides (any order) against the measured footprints."""
    ref = np.linalg.norm(np.diff(footprints_xy, axis=0), axis=1)
    st = strides.sort(S.IC_T)
    length = st[S.STRIDE_LENGTH_M].fill_null(np.nan).to_numpy()
    name = f"real.walk{walk}"
    out = [
        row(f"{name}.strides.expected", len(ref), "strides"),
        row(f"{name}.strides.detected", st.height, "strides"),
        row(f"{name}.distance.error_pct", 100.0 * (np.nansum(length) / ref.sum() - 1.0), "%"),
    ]
    if st.height != len(ref):
        note = "detected and footprint strides differ in number: not paired"
        return out + [row(f"{name}.strides.found_pct", None, "%", note)]
    err = length - ref
    valid = st[S.VALID].to_numpy()
    found = np.abs(err) < 0.30
    e_cm = 100.0 * err[valid & np.isfinite(err)]
    return out + [
        row(f"{name}.strides.found_pct", 100.0 * np.mean(found), "%"),
        row(f"{name}.strides.valid_pct", 100.0 * np.mean(valid), "%"),
        row(f"{name}.stride_length.bias_cm", float(np.mean(e_cm)), "cm"),
        row(f"{name}.stride_length.median_abs_cm", float(np.median(np.abs(e_cm))), "cm"),
        row(f"{name}.first_stride.error_cm", 100.0 * float(err[0]), "cm"),
    ]


def real_data_rows(root: Path = REAL_DATA) -> list[Row]:
    """`real.*` rows (see the module doc); one row with a note when the recordings are absent."""
    from strideflow.analytics.pipeline import analyze_recording
    from strideflow.ingest import read_recording

    walks, gaitmap = root / "footprints_walks", root / "gaitmap_example"
    rows: list[Row] = []
    if walks.is_dir():
        for walk in FOOTPRINT_WALKS:
            strides = analyze_recording(read_recording(walks / f"SensorConnectData_{walk}.csv")).strides
            xy = np.loadtxt(walks / f"footprints_{walk}.csv", delimiter=",", comments="#", skiprows=2)[:, 1:3]
            rows += footprint_rows(walk, strides, xy)
    else:
        rows.append(row("real.walks", None, "", f"footprint walks not found at {walks}"))
    if (gaitmap / "imu_sample_ic_stride.csv").exists():
        fs = 102.4
        strides = analyze_recording(
            read_recording(gaitmap / "imu_sample_ic_stride.csv", sampling_rate_hz=fs)
        ).strides
        borders = pl.read_csv(gaitmap / "stride_borders_sample_ic_stride.csv")
        errors = []
        for foot in S.FEET:
            mine = strides.filter(pl.col(S.FOOT) == foot)
            ic = np.unique(np.concatenate([mine[S.IC_T].to_numpy(), mine[S.NEXT_IC_T].to_numpy()]))
            ref = borders.filter(pl.col("foot") == foot)
            ref_s = np.unique(np.concatenate([ref["start"].to_numpy(), ref["end"].to_numpy()])) / fs
            if len(ic):
                errors.append(ic[np.abs(ic[:, None] - ref_s[None, :]).argmin(axis=0)] - ref_s)
        e_ms = 1000.0 * np.concatenate(errors) if errors else np.zeros(0)
        rows += [
            row(
                "real.ic_stride.ic_t.median_abs_ms",
                float(np.median(np.abs(e_ms))) if len(e_ms) else None,
                "ms",
            ),
            row("real.ic_stride.ic_t.bias_ms", float(np.mean(e_ms)) if len(e_ms) else None, "ms"),
            row("real.ic_stride.ic_t.sd_ms", float(np.std(e_ms)) if len(e_ms) else None, "ms"),
        ]
    else:
        rows.append(row("real.ic_stride", None, "", f"gaitmap example data not found at {gaitmap}"))
    return rows
