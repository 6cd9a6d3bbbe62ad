"""Orientation accuracy against simulator truth: roll and pitch at foot-flat and over whole stances.

Each simulated athlete (noise, gyro and accelerometer bias, a random mounting rotation of a few to
15 deg per axis, ADC quantisation and clipping) is recorded on both feet in three scenarios:

- `walk`: walking bouts with turns, gait drawn from the simulator's walking ranges;
- `run`: running bouts, gait drawn from the running ranges;
- `run_10g`: the same runners with every impact raised to `IMPACT_G_RANGE` (the simulator's
  continuous peak) at `IMPACT_FREQ_HZ_RANGE`, so that the sampled peak |acc| after every initial
  contact is >= 10 g (checked and reported as `run_10g.impact_g.min_measured`; the 16 g range of
  the default device clips the hardest ones, as a real sensor would).

The samples go through the product's orientation path: the mounting rotation and the per-sample
roll and pitch of the product come from `analytics.pipeline.analyze_samples` itself (the signals
table it builds from `hardware.frames.roll_pitch_deg`), so the product rows describe exactly what
the pipeline reports. The other configurations run on the same foot-frame samples (mounting
estimated by the pipeline, zero-velocity detection with the pipeline's settings):

- `madgwick`: Madgwick with the ahrs defaults (the reference-equivalent filter);
- `madgwick_rejection`: Madgwick ignoring the accelerometer while | |a| - g | > 0.1 g;
- `mahony`: Mahony with the ahrs defaults;
- `zero_velocity`: gyro strapdown levelled on every detected foot-flat
  (`fusion.zupt.zero_velocity_aided_orientation`).

Errors are estimate minus truth (roll wrapped to +-180 deg); heading is ignored. Masks come from
the truth strides: foot-flat = the true still period [foot-flat start, heel-off] of each stride
(the simulator's `foot_flat_t` is its middle), stance = [ic_t, toe_off_t].

Rows (unit deg unless noted), for the product: `<angle>.<stat>` over walk and run together and
`<scenario>.<angle>.<stat>` per scenario; for every configuration the same prefixed with its name,
`<config>.<scenario>.<angle>.<stat>`. Statistics: `rmse_foot_flat`, `rmse_stance`,
`max_abs_foot_flat` (worst sample of any foot-flat), `bias_foot_flat` (mean signed error),
`pct_foot_flats_within_1_5` (share of foot-flats whose every sample is within 1.5 deg, %).
Scenario rows `<scenario>.impact_g.min_measured` / `.median_measured` (g, the sampled peak
|acc| within 50 ms after each true IC), `athletes`, `foot_flats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl

from strideflow.analytics.pipeline import AnalysisSettings, analyze_samples
from strideflow.benchmarks._common import SIMULATOR_ANALYSIS, Row, parallel_map, row
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.mahony import Mahony
from strideflow.fusion.settings import AccelerationRejection, MadgwickSettings, MahonySettings
from strideflow.fusion.zero_velocity import ZeroVelocityDetector
from strideflow.fusion.zupt import zero_velocity_aided_orientation
from strideflow.hardware import schema as S
from strideflow.hardware.frames import roll_pitch_deg
from strideflow.hardware.mounting import apply_mounting

SCENARIOS = ("walk", "run", "run_10g")
# The shoes point along the walking direction here (no toe-out): the pipeline's mounting heading is
# the walking direction, and roll about it is not roll about a toed-out shoe's axis. Toe-out is
# measured by `bench accuracy` (its `toe_out.*` rows and the drawn 0-20 deg of its default).
TOE_OUT_DEG = 0.0
SCENARIO_ACTIVITY = {"walk": "walk", "run": "run", "run_10g": "run"}
SCENARIO_SEED = {"walk": 1, "run": 2, "run_10g": 2}  # run_10g: the same runners as run
# run_10g: continuous impact peak (g) and ringing frequency (Hz) drawn per runner. At 200 Hz a
# ringing of f Hz can be sampled as low as cos(pi f / 200) of its peak (0.77 at 45 Hz), and the
# stride-to-stride variability spreads it further, so the peak is set well above 10 g.
IMPACT_G_RANGE = (17.0, 22.0)
IMPACT_FREQ_HZ_RANGE = (35.0, 45.0)
IMPACT_TARGET_G = 10.0
ANGLES = (S.ROLL_DEG, S.PITCH_DEG)
PRODUCT = "product"
FLAT_TOLERANCE_DEG = 1.5

# Targets of issue 3, deg
TARGET_RMSE_FOOT_FLAT_DEG = 1.0
TARGET_RMSE_STANCE_DEG = 2.0
TARGET_MAX_ABS_FOOT_FLAT_IMPACT_DEG = 1.5


@dataclass(frozen=True)
class OrientationConfig:
    """One way to turn foot-frame samples into orientation: a filter with its settings."""

    name: str
    method: Literal["madgwick", "mahony", "zero_velocity"]
    madgwick: MadgwickSettings = field(default_factory=MadgwickSettings)
    mahony: MahonySettings = field(default_factory=MahonySettings)


CONFIGS: tuple[OrientationConfig, ...] = (
    OrientationConfig("madgwick", "madgwick"),
    OrientationConfig(
        "madgwick_rejection", "madgwick", madgwick=MadgwickSettings(acc_rejection=AccelerationRejection())
    ),
    OrientationConfig("mahony", "mahony"),
    OrientationConfig("zero_velocity", "zero_velocity"),
)


def product_config(settings: AnalysisSettings = AnalysisSettings()) -> OrientationConfig:
    """The configuration `analytics.pipeline` uses with these settings (named after the match in CONFIGS)."""
    for c in CONFIGS:
        if c.method == settings.orientation and (c.method != "madgwick" or c.madgwick == settings.madgwick):
            return c
    return OrientationConfig(PRODUCT, settings.orientation, madgwick=settings.madgwick)


@dataclass(frozen=True)
class OrientationAccuracySettings:
    """What to simulate and compare.

    athletes: simulated athletes per scenario (each gives two feet); duration_s: session length, s;
    scenarios: subset of SCENARIOS; configs: configurations besides the product's own path;
    analysis: the product settings whose orientation path is measured; true_mounting: also run
    everything with the simulator's known mounting undone (diagnostic); workers: processes (None:
    up to 2).
    """

    athletes: int = 50
    duration_s: float = 60.0
    scenarios: tuple[str, ...] = SCENARIOS
    configs: tuple[OrientationConfig, ...] = CONFIGS
    analysis: AnalysisSettings = field(default_factory=lambda: SIMULATOR_ANALYSIS)
    true_mounting: bool = True
    workers: int | None = None


def simulate(athlete: int, scenario: str, duration_s: float):
    """The simulated session of one athlete in one scenario (a `Simulator` after `simulate()`)."""
    from strideflow.hardware.simulator import SimulationSettings, Simulator
    from strideflow.hardware.simulator.params import sample_athlete

    activity = SCENARIO_ACTIVITY[scenario]
    seed = (athlete, SCENARIO_SEED[scenario], 7)
    settings = SimulationSettings(
        activity=activity,
        duration_s=duration_s,
        seed=seed,
        athlete_id=f"A{athlete:03d}",
        session_id=scenario,
        toe_out_deg=TOE_OUT_DEG,
    )
    if scenario == "run_10g":
        # Same draw as the simulator makes from the seed, then only the impact raised.
        params = sample_athlete(np.random.default_rng(np.random.SeedSequence(seed).spawn(7)[0]))
        rng = np.random.default_rng((athlete, 10))
        impact, freq = float(rng.uniform(*IMPACT_G_RANGE)), float(rng.uniform(*IMPACT_FREQ_HZ_RANGE))
        params = replace(params, run=replace(params.run, impact_g=impact, impact_freq_hz=freq))
        settings = replace(settings, athlete=params)
    return Simulator(settings).simulate()


def estimate_orientation(
    config: OrientationConfig,
    acc: np.ndarray,
    gyr: np.ndarray,
    zero_velocity: np.ndarray,
    fs: float,
    t: np.ndarray,
) -> np.ndarray:
    """(N, 4) wxyz orientation of foot-frame samples (acc m/s², gyr deg/s) by one configuration."""
    if config.method == "madgwick":
        return Madgwick(config.madgwick).estimate(acc, gyr, sampling_rate_hz=fs).orientation_
    if config.method == "mahony":
        return Mahony(config.mahony).estimate(acc, gyr, sampling_rate_hz=fs).orientation_
    if config.method == "zero_velocity":
        return zero_velocity_aided_orientation(acc, gyr, zero_velocity, fs, t)
    raise ValueError(f"unknown orientation method {config.method!r}")


def _wrap_deg(x: np.ndarray) -> np.ndarray:
    return (x + 180.0) % 360.0 - 180.0


def _period_index(t: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Index of the [start, stop] period (sorted, disjoint) holding each t, else -1."""
    i = np.searchsorted(start, t, side="right") - 1
    inside = (i >= 0) & (t <= stop[np.clip(i, 0, None)])
    return np.where(inside, i, -1)


def measured_impacts_g(samples: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Peak sampled |acc| (g) within 50 ms after each true IC, per foot and stride (what a filter sees)."""
    out = []
    for foot, part in samples.partition_by(S.FOOT, as_dict=True).items():
        t = part[S.T].to_numpy()
        norm = np.linalg.norm(part.select(S.ACC).to_numpy(), axis=1) / S.STANDARD_GRAVITY_MPS2
        ic = truth.filter(pl.col(S.FOOT) == foot[0])[S.IC_T].to_numpy()
        lo = np.searchsorted(t, ic)
        hi = np.searchsorted(t, ic + S.IMPACT_WINDOW_S, side="right")
        peak = np.array([norm[a:b].max() if b > a else np.nan for a, b in zip(lo, hi, strict=True)])
        out.append(pl.DataFrame({S.FOOT: [foot[0]] * len(ic), S.IC_T: ic, S.IMPACT_G: peak}))
    return pl.concat(out)


def stride_errors(
    sim,
    configs: Sequence[OrientationConfig],
    analysis: AnalysisSettings = SIMULATOR_ANALYSIS,
    true_mounting: bool = False,
) -> pl.DataFrame:
    """Per foot, stride and configuration: squared-error sums, counts and worst errors of roll and pitch.

    Columns: config, foot, stride_index, n_stance, n_flat and per angle `<angle>_ss_stance`,
    `<angle>_ss_flat`, `<angle>_sum_flat`, `<angle>_max_abs_flat` (deg², deg, deg) and
    `<angle>_at_flat_t` (error at the sample nearest the true foot_flat_t, deg).
    `true_mounting`: undo the simulator's known mounting instead of estimating it (diagnostic: what
    is left without the mounting estimate's error).
    """
    fs = sim.settings.sampling_rate_hz
    samples = sim.samples_
    if true_mounting:
        samples = apply_mounting(samples, {foot: rot.inv() for foot, rot in sim.mounting_.items()})
        analysis = replace(analysis, align_mounting=False)
    result = analyze_samples(samples, fs, analysis)
    parts = []
    for foot in S.FEET:
        truth = sim.truth_orientation_.filter(pl.col(S.FOOT) == foot).sort(S.T)
        strides = sim.truth_strides_.filter(pl.col(S.FOOT) == foot).sort(S.IC_T)
        t = truth[S.T].to_numpy()
        ho = strides[S.HEEL_OFF_T].to_numpy()
        flat_start = 2.0 * strides[S.FOOT_FLAT_T].to_numpy() - ho
        stance_i = _period_index(t, strides[S.IC_T].to_numpy(), strides[S.TOE_OFF_T].to_numpy())
        flat = _period_index(t, flat_start, ho) >= 0
        keep = stance_i >= 0
        at_flat_t = np.zeros(len(t), dtype=bool)
        at_flat_t[
            np.clip(np.rint((strides[S.FOOT_FLAT_T].to_numpy() - t[0]) * fs).astype(np.int64), 0, len(t) - 1)
        ] = True
        true_angles = {a: truth[a].to_numpy() for a in ANGLES}

        estimates: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        sig = result.signals[foot].sort(S.T)
        if not np.array_equal(sig[S.T].to_numpy(), t):
            raise RuntimeError(f"{foot}: the pipeline's signals do not cover every sample")
        estimates[PRODUCT] = (sig[S.ROLL_DEG].to_numpy(), sig[S.PITCH_DEG].to_numpy())
        foot_frame = apply_mounting(
            samples.filter(pl.col(S.FOOT) == foot).sort(S.T), {foot: result.mounting[foot]}
        )
        acc = np.ascontiguousarray(foot_frame.select(S.ACC).to_numpy(), dtype=float)
        gyr = np.ascontiguousarray(foot_frame.select(S.GYR).to_numpy(), dtype=float)
        zv = ZeroVelocityDetector(analysis.zero_velocity).detect(acc, gyr, fs).zero_velocity_
        for c in configs:
            estimates[c.name] = roll_pitch_deg(estimate_orientation(c, acc, gyr, zv, fs, t))

        for name, (roll, pitch) in estimates.items():
            err = {
                S.ROLL_DEG: _wrap_deg(roll - true_angles[S.ROLL_DEG]),
                S.PITCH_DEG: pitch - true_angles[S.PITCH_DEG],
            }
            df = pl.DataFrame(
                {
                    "stride_index": stance_i[keep],
                    "flat": flat[keep],
                    "at_flat_t": at_flat_t[keep],
                    **{a: err[a][keep] for a in ANGLES},
                }
            )
            agg = df.group_by("stride_index").agg(
                pl.len().alias("n_stance"),
                pl.col("flat").sum().alias("n_flat"),
                *[(pl.col(a) ** 2).sum().alias(f"{a}_ss_stance") for a in ANGLES],
                *[(pl.col(a) ** 2).filter(pl.col("flat")).sum().alias(f"{a}_ss_flat") for a in ANGLES],
                *[pl.col(a).filter(pl.col("flat")).sum().alias(f"{a}_sum_flat") for a in ANGLES],
                *[pl.col(a).abs().filter(pl.col("flat")).max().alias(f"{a}_max_abs_flat") for a in ANGLES],
                *[pl.col(a).filter(pl.col("at_flat_t")).first().alias(f"{a}_at_flat_t") for a in ANGLES],
            )
            parts.append(agg.with_columns(pl.lit(name).alias("config"), pl.lit(foot).alias(S.FOOT)))
    return pl.concat(parts, how="vertical_relaxed")


def _one(args) -> tuple[pl.DataFrame, pl.DataFrame]:
    athlete, scenario, duration_s, configs, analysis, true_mounting = args
    sim = simulate(athlete, scenario, duration_s)
    errors = [stride_errors(sim, configs, analysis).with_columns(pl.lit("estimated").alias("mounting"))]
    if true_mounting:
        errors.append(
            stride_errors(sim, configs, analysis, True).with_columns(pl.lit("true").alias("mounting"))
        )
    errors = pl.concat(errors).with_columns(
        pl.lit(scenario).alias("scenario"), pl.lit(athlete).alias("athlete")
    )
    impacts = measured_impacts_g(sim.samples_, sim.truth_strides_).with_columns(
        pl.lit(scenario).alias("scenario")
    )
    return errors, impacts


class OrientationAccuracy:
    """Simulate athletes and measure every configuration's roll and pitch errors against truth.

    After `estimate()`: `errors_` (one row per mounting, scenario, athlete, foot, stride and
    configuration, see `stride_errors`), `impacts_` (sampled impact peaks per stride, g), `summary_`
    (one row per mounting, configuration and scenario, plus scenario "all" = walk and run; the
    statistics of the module docstring).
    """

    def __init__(self, settings: OrientationAccuracySettings = OrientationAccuracySettings()):
        self.settings = settings

    def estimate(self) -> OrientationAccuracy:
        """Run all simulations (spread over `workers` processes) and summarise."""
        s = self.settings
        jobs = [
            (a, sc, s.duration_s, s.configs, s.analysis, s.true_mounting)
            for sc in s.scenarios
            for a in range(1, s.athletes + 1)
        ]
        parts = parallel_map(_one, jobs, s.workers)
        self.errors_ = pl.concat([p[0] for p in parts], how="vertical_relaxed")
        self.impacts_ = pl.concat([p[1] for p in parts], how="vertical_relaxed")
        self.summary_ = summarize(self.errors_)
        return self


STAT_UNITS = {
    "rmse_foot_flat": "deg",
    "rmse_stance": "deg",
    "max_abs_foot_flat": "deg",
    "max_abs_at_foot_flat_t": "deg",
    "bias_foot_flat": "deg",
    "pct_foot_flats_within_1_5": "%",
}


def _stats() -> list[pl.Expr]:
    out = []
    for a in ANGLES:
        has_flat = pl.col("n_flat") > 0
        out += [
            (pl.col(f"{a}_ss_flat").sum() / pl.col("n_flat").sum()).sqrt().alias(f"{a}.rmse_foot_flat"),
            (pl.col(f"{a}_ss_stance").sum() / pl.col("n_stance").sum()).sqrt().alias(f"{a}.rmse_stance"),
            pl.col(f"{a}_max_abs_flat").max().alias(f"{a}.max_abs_foot_flat"),
            pl.col(f"{a}_at_flat_t").abs().max().alias(f"{a}.max_abs_at_foot_flat_t"),
            (pl.col(f"{a}_sum_flat").sum() / pl.col("n_flat").sum()).alias(f"{a}.bias_foot_flat"),
            (pl.col(f"{a}_max_abs_flat").filter(has_flat) <= FLAT_TOLERANCE_DEG)
            .mean()
            .mul(100.0)
            .alias(f"{a}.pct_foot_flats_within_1_5"),
        ]
    return [
        *out,
        pl.col("athlete").n_unique().alias("athletes"),
        (pl.col("n_flat") > 0).sum().alias("foot_flats"),
    ]


def summarize(errors: pl.DataFrame) -> pl.DataFrame:
    """Per mounting, configuration and scenario (and "all" = walk + run): the statistics above."""
    keys = ["mounting", "config"]
    per = errors.group_by(*keys, "scenario").agg(_stats())
    pooled = (
        errors.filter(pl.col("scenario").is_in(["walk", "run"]))
        .group_by(*keys)
        .agg(_stats())
        .with_columns(pl.lit("all").alias("scenario"))
        .select(per.columns)
    )
    return pl.concat([per, pooled]).sort(*keys, "scenario")


def _config_order(summary: pl.DataFrame) -> list[str]:
    return [PRODUCT] + sorted(set(summary["config"].to_list()) - {PRODUCT})


def rows_from(summary: pl.DataFrame, impacts: pl.DataFrame, product: OrientationConfig) -> list[Row]:
    """Benchmark rows: the product's first (unprefixed), then every configuration prefixed by its name,
    then the true-mounting diagnostics prefixed `true_mounting.`."""
    rows: list[Row] = []
    for mounting in ("estimated", "true"):
        part_m = summary.filter(pl.col("mounting") == mounting)
        for config in _config_order(part_m) if part_m.height else []:
            part = part_m.filter(pl.col("config") == config)
            note = f"product: {product.name}" if config == PRODUCT else None
            if config == product.name:
                note = "the product default"
            for scenario in ["all", *SCENARIOS]:
                r = part.filter(pl.col("scenario") == scenario)
                if r.height == 0:
                    continue
                prefix = (
                    ("true_mounting." if mounting == "true" else "")
                    + ("" if config == PRODUCT else f"{config}.")
                    + ("" if scenario == "all" else f"{scenario}.")
                )
                for a in ANGLES:
                    for stat, unit in STAT_UNITS.items():
                        rows.append(row(f"{prefix}{a}.{stat}", r[f"{a}.{stat}"][0], unit, note))
                if config == PRODUCT and mounting == "estimated":
                    rows.append(row(f"{prefix}athletes", r["athletes"][0], "athletes"))
                    rows.append(row(f"{prefix}foot_flats", r["foot_flats"][0], "foot-flats"))
                    imp = impacts.filter(pl.col("scenario") == scenario)[S.IMPACT_G].drop_nans().drop_nulls()
                    if scenario != "all" and imp.len():
                        rows.append(row(f"{prefix}impact_g.min_measured", imp.min(), "g"))
                        rows.append(row(f"{prefix}impact_g.median_measured", imp.median(), "g"))
    return rows


MARKDOWN_COLUMNS = (
    ("rmse_foot_flat", "RMSE foot-flat"),
    ("rmse_stance", "RMSE stance"),
    ("max_abs_at_foot_flat_t", "max at foot_flat_t"),
    ("max_abs_foot_flat", "max over foot-flats"),
    ("pct_foot_flats_within_1_5", "% foot-flats within 1.5"),
)


def markdown(summary: pl.DataFrame, product: OrientationConfig) -> str:
    """The summary as a markdown table: a line per mounting, configuration, scenario; cells roll / pitch."""
    head = (
        "| mounting | configuration | scenario | "
        + " | ".join(h for _, h in MARKDOWN_COLUMNS)
        + " | foot-flats |"
    )
    lines = [head, "|" + " --- |" * (len(MARKDOWN_COLUMNS) + 4)]
    for mounting in ("estimated", "true"):
        part_m = summary.filter(pl.col("mounting") == mounting)
        for config in _config_order(part_m) if part_m.height else []:
            name = f"product ({product.name})" if config == PRODUCT else config
            for scenario in ["all", *SCENARIOS]:
                r = part_m.filter((pl.col("config") == config) & (pl.col("scenario") == scenario))
                if r.height == 0:
                    continue
                cells = []
                for stat, _ in MARKDOWN_COLUMNS:
                    fmt = "{:.0f}" if stat.startswith("pct") else "{:.2f}"
                    cells.append(" / ".join(fmt.format(r[f"{a}.{stat}"][0]) for a in ANGLES))
                lines.append(
                    f"| {mounting} | {name} | {scenario} | "
                    + " | ".join(cells)
                    + f" | {r['foot_flats'][0]} |"
                )
    return "\n".join(lines)


def run(quick: bool = False) -> list[Row]:
    """The benchmark: 50 athletes x 60 s per scenario, or 6 x 20 s with `quick`."""
    settings = (
        OrientationAccuracySettings(athletes=6, duration_s=20.0) if quick else OrientationAccuracySettings()
    )
    acc = OrientationAccuracy(settings).estimate()
    return rows_from(acc.summary_, acc.impacts_, product_config(settings.analysis))


if (
    __name__ == "__main__"
):  # markdown table for the README: python -m strideflow.benchmarks.orientation [--quick]
    import sys

    _settings = (
        OrientationAccuracySettings(athletes=6, duration_s=20.0)
        if "--quick" in sys.argv
        else OrientationAccuracySettings()
    )
    _acc = OrientationAccuracy(_settings).estimate()
    print(markdown(_acc.summary_, product_config(_settings.analysis)))
