"""Team-day batch speed and memory: strideflow's `TeamBatch` against two baselines, in one run.

(Over ~500 lines: one benchmark: the cached workload, strideflow's run and the two baselines it is
measured against must stay comparable.)

Workload: a simulated team day (`strideflow simulate`'s simulator, mixed walking and running,
both feet, 200 Hz), 100 athletes x 1 session x 60 min = 100 athlete-hours, 144 M samples
(`--quick`: 4 athletes x 15 min). It is generated once, in parallel, and cached outside the
repository in `$STRIDEFLOW_CACHE/bench/<params>/` (default `~/.cache/strideflow/bench/...`);
the cache key holds the sizes, seed, activity, rate and a hash of the simulator's source.

Rows (DESIGN.md names; speeds in samples/s, both feet counted):

- `strideflow.pipeline`: `TeamBatch(BatchSettings(workers=2))` over the whole team day, end to
  end (discovery, Dask cluster start, reading every Parquet file, the analysis, writing the
  partitions); `strideflow.realtime_factor` (athlete-seconds per wall second),
  `strideflow.wall_s`, `strideflow.team_day_s` (100 athlete-hours at that rate: measured in the
  full run, projected in the quick one), `strideflow.peak_rss` (MB, client + workers) and
  `strideflow.stage.<stage>_s` (seconds summed over the tasks of both workers);
- the same sessions' first `subset` seconds (athlete A001, both feet) through three pipelines
  on one core each: `strideflow.pipeline_one_core` (read_recording + analyze_recording),
  `ahrs_pandas.pipeline` (the `ahrs` package's Madgwick per file plus a per-stride pandas loop
  for the same kind of metrics, written as a hand-made script would be) and `gaitmap.pipeline`
  (gaitmap's published pipeline: gravity and PCA alignment, Barth DTW stride segmentation,
  Rampp event detection, stride-level trajectory, temporal and spatial parameters; run in the
  interpreter named by `STRIDEFLOW_GAITMAP_PYTHON`, absent with the reason otherwise);
- ratios: `strideflow_vs_gaitmap.ratio` and `strideflow_vs_ahrs_pandas.ratio` (the team batch on
  two cores against the baseline on one, as the issue states its target) and the same with
  `_one_core` (one core each, same samples);
- memory scaling: `strideflow.peak_rss_1x`, `_10x`, `_100x` (MB) for team batches of 2, 20 and
  200 one-minute athlete-sessions (quick: 2 and 20; 1x is one session per worker, so every
  size keeps both workers busy), and `strideflow.peak_rss_growth` (x, largest over smallest):
  1 when memory does not grow with the number of recordings.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strideflow.benchmarks._common import Row, parallel_map, row

RATE_HZ = 200.0
ACTIVITY = "mixed"
SEED = 2026
TEAM_DAY_SAMPLES = 100 * 3600 * RATE_HZ * 2  # 100 athlete-hours, both feet
SINGLE_THREAD_ENV = {
    "POLARS_MAX_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class BatchBenchSize:
    """How much work one benchmark run does.

    athletes x minutes: the team-day workload (one session each, both feet); subset_s: seconds
    of athlete A001 given to the one-core pipelines and baselines; scaling: numbers of
    `scaling_minutes`-long athlete-sessions for the memory rows (empty skips them); workers:
    TeamBatch worker processes; gaitmap: run the gaitmap baseline when an interpreter is set.
    """

    athletes: int = 100
    minutes: float = 60.0
    subset_s: float = 300.0
    scaling: tuple[int, ...] = (2, 20, 200)
    scaling_minutes: float = 1.0
    workers: int = 2
    gaitmap: bool = True


FULL = BatchBenchSize()
QUICK = BatchBenchSize(athletes=4, minutes=15.0, subset_s=60.0, scaling=(2, 20))


# ------------------------------------------------------------------------------------------
# the cached, simulated dataset
# ------------------------------------------------------------------------------------------
def cache_root() -> Path:
    """`$STRIDEFLOW_CACHE/bench`, else `~/.cache/strideflow/bench`: outside the repository."""
    base = os.environ.get("STRIDEFLOW_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "strideflow") / "bench"


def _simulator_hash() -> str:
    """Short hash of the simulator's source: a changed simulator makes a new dataset."""
    import strideflow.hardware.simulator as sim

    digest = hashlib.sha256()
    for path in sorted(Path(sim.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def _simulate_athlete(job: tuple[str, int, float, int, str, float]) -> list[dict]:
    """Simulate athlete `index` alone and file it under its own id; its manifest rows."""
    import polars as pl

    from strideflow.hardware.schema import ATHLETE_ID
    from strideflow.hardware.simulator import write_dataset

    out_dir, index, minutes, seed, activity, rate_hz = job
    out = Path(out_dir)
    athlete_id = f"A{index + 1:03d}"
    with tempfile.TemporaryDirectory(dir=out, prefix=f".sim-{athlete_id}-") as tmp:
        # Each athlete from its own seed; write_dataset names its only athlete A001.
        manifest = write_dataset(
            tmp,
            athletes=1,
            minutes=minutes,
            seed=seed * 100_003 + index,
            activity=activity,
            sampling_rate_hz=rate_hz,
        )
        rows = pl.read_csv(manifest).to_dicts()
        for r in rows:
            rel = Path(athlete_id) / Path(r["path"]).relative_to("A001")
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            frame = pl.read_parquet(Path(tmp) / r["path"])
            frame.with_columns(pl.lit(athlete_id, dtype=pl.String).alias(ATHLETE_ID)).write_parquet(out / rel)
            r["path"], r[ATHLETE_ID] = rel.as_posix(), athlete_id
    return rows


def dataset(
    athletes: int,
    minutes: float,
    *,
    seed: int = SEED,
    activity: str = ACTIVITY,
    rate_hz: float = RATE_HZ,
    workers: int | None = None,
) -> Path:
    """Directory of a simulated team (one session per athlete, both feet, with manifest.csv),
    generated in parallel the first time and reused afterwards."""
    import polars as pl

    name = f"team-{athletes}x{minutes:g}min-{activity}-{rate_hz:g}hz-seed{seed}-sim{_simulator_hash()}"
    final = cache_root() / name
    if (final / "manifest.csv").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}-"))
    try:
        jobs = [(str(building), a, minutes, seed, activity, rate_hz) for a in range(athletes)]
        rows = [r for part in parallel_map(_simulate_athlete, jobs, workers) for r in part]
        pl.DataFrame(rows).sort("path").write_csv(building / "manifest.csv")
        (building / "params.json").write_text(
            json.dumps(
                {
                    "athletes": athletes,
                    "minutes": minutes,
                    "seed": seed,
                    "activity": activity,
                    "sampling_rate_hz": rate_hz,
                }
            )
            + "\n"
        )
        try:
            os.replace(building, final)  # atomic: a half-built dataset is never used
        except OSError:  # another run finished it first
            if not (final / "manifest.csv").is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------
# strideflow: the team batch
# ------------------------------------------------------------------------------------------
def team_batch(dataset_dir: Path, workers: int):
    """RunSummary of a fresh TeamBatch run over `dataset_dir` (output in a temporary folder)."""
    from strideflow.analytics.batch import BatchSettings, TeamBatch

    with tempfile.TemporaryDirectory(prefix="strideflow-bench-batch-") as out:
        return TeamBatch(BatchSettings(workers=workers)).run(dataset_dir, out).summary_


# ------------------------------------------------------------------------------------------
# one core each, on the same subset
# ------------------------------------------------------------------------------------------
def _subset_files(dataset_dir: Path, seconds: float, out: Path) -> list[tuple[Path, str]]:
    """The first `seconds` of athlete A001's session, per foot, as Parquet (and .npy of acc, gyr
    for gaitmap's interpreter, which may lack a Parquet reader); [(parquet path, foot)]."""
    import polars as pl

    manifest = pl.read_csv(dataset_dir / "manifest.csv").filter(pl.col("athlete_id") == "A001")
    files = []
    for path, foot in manifest.select("path", "foot").iter_rows():
        frame = pl.read_parquet(dataset_dir / path).filter(pl.col("t") < seconds)
        target = out / f"{foot}.parquet"
        frame.write_parquet(target)
        acc_gyr = frame.select("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z").to_numpy()
        np.save(out / f"{foot}.npy", np.ascontiguousarray(acc_gyr))
        files.append((target, foot))
    return files


def strideflow_session(files: list[tuple[str, str]]) -> dict:
    """read_recording + analyze_recording of each file, timed after a warm-up (numba cache load)."""
    from strideflow.analytics.pipeline import analyze_recording
    from strideflow.ingest import read_recording

    analyze_recording(read_recording(files[0][0]))  # warm-up: numba functions from the cache
    t0 = time.perf_counter()
    samples = strides = 0
    for path, _ in files:
        rec = read_recording(path)
        result = analyze_recording(rec)
        samples += rec.samples.height
        strides += result.strides.height
    return {"seconds": time.perf_counter() - t0, "samples": samples, "strides": strides}


def ahrs_pandas_session(files: list[tuple[str, str]]) -> dict:
    """The hand-made baseline: per file, pandas in, the `ahrs` Madgwick, still periods from the
    gyro norm, then a loop over strides computing their timing and pronation/toe-off metrics."""
    import pandas as pd
    from ahrs.filters import Madgwick

    t0 = time.perf_counter()
    samples = strides = 0
    reports = []
    for path, foot in files:
        df = pd.read_parquet(path)
        fs = 1.0 / df["t"].diff().median()
        acc = df[["acc_x", "acc_y", "acc_z"]].to_numpy()
        gyr = np.radians(df[["gyr_x", "gyr_y", "gyr_z"]].to_numpy())
        q = Madgwick(gyr=gyr, acc=acc, frequency=fs).Q
        w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
        roll = np.degrees(np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)))
        df["pitch"] = np.degrees(np.arcsin(np.clip(2 * (w * y - z * x), -1, 1)))
        df["pronation"] = roll if foot == "left" else -roll
        df["gyr_norm"] = np.degrees(np.linalg.norm(gyr, axis=1))
        df["acc_norm_g"] = np.linalg.norm(acc, axis=1) / 9.81
        # Still (foot flat): gyro norm below 50 deg/s over a 50 ms window.
        still = df["gyr_norm"].rolling(int(0.05 * fs), center=True, min_periods=1).max() < 50
        df["still"] = still
        # A stride runs from the end of one still period (push-off) to the end of the next;
        # IC is the first sample after swing where the acceleration peaks (heel strike).
        ends = np.flatnonzero(still.to_numpy()[:-1] & ~still.to_numpy()[1:])
        rows = []
        for k in range(len(ends) - 1):
            stride = df.iloc[ends[k] + 1 : ends[k + 1] + 1]
            if len(stride) < 0.4 * fs or len(stride) > 2.5 * fs:
                continue
            swing_end = stride["still"].to_numpy().argmax()
            if swing_end == 0:
                continue
            window = stride.iloc[: swing_end + int(0.1 * fs)]
            ic = window["acc_norm_g"].idxmax()
            after_ic = df.loc[ic : stride.index[-1]]
            stance = after_ic[after_ic["still"]]
            if stance.empty:
                continue
            toe_off = stride.index[-1]
            stance_s = (toe_off - ic) / fs
            early = after_ic.iloc[: max(int(0.6 * len(after_ic)), 1)]
            rows.append(
                {
                    "ic_t": df.at[ic, "t"],
                    "stride_time_s": len(stride) / fs,
                    "stance_time_s": stance_s,
                    "pronation_excursion_deg": early["pronation"].max() - df.at[ic, "pronation"],
                    "max_pronation_velocity_dps": early["pronation"].diff().max() * fs,
                    "toe_off_angle_deg": stance["pitch"].mean() - df.at[toe_off, "pitch"],
                    "toe_off_pronation_deg": df.at[toe_off, "pronation"] - stance["pronation"].mean(),
                    "impact_g": df.loc[ic : ic + int(0.05 * fs), "acc_norm_g"].max(),
                }
            )
        table = pd.DataFrame(rows)
        if len(table):
            table["cadence_spm"] = 120.0 / table["stride_time_s"]
            reports.append(table.median(numeric_only=True))  # the per-foot summary it prints
        samples += len(df)
        strides += len(table)
    return {"seconds": time.perf_counter() - t0, "samples": samples, "strides": strides}


def _in_single_thread_process(fn, arg):
    """fn(arg) in a fresh spawned process whose polars/numba/BLAS use one thread."""
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    os.environ.update(SINGLE_THREAD_ENV)
    try:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            future = pool.submit(fn, arg)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return future.result()


_GAITMAP_SNIPPET = r"""
import json, sys, time
import numpy as np, pandas as pd
from gaitmap.preprocessing import align_dataset_to_gravity
from gaitmap.preprocessing.sensor_alignment import PcaAlignment
from gaitmap.utils.coordinate_conversion import convert_to_fbf
from gaitmap.stride_segmentation import BarthDtw
from gaitmap.event_detection import RamppEventDetection
from gaitmap.trajectory_reconstruction import StrideLevelTrajectory
from gaitmap.parameters import TemporalParameterCalculation, SpatialParameterCalculation

rate = float(sys.argv[1])
paths = dict(arg.split("=", 1) for arg in sys.argv[2:])
cols = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]

def pipeline(n=None):
    data = {f"{foot}_sensor": pd.DataFrame(np.load(p)[:n], columns=cols) for foot, p in paths.items()}
    # The simulated gyros carry a 1-2 deg/s bias, so gaitmap's default stillness threshold
    # (2.5 deg/s) finds no static window: it is raised to 10 deg/s; shorter windows last.
    for window_s in (0.7, 0.3):
        try:
            aligned = align_dataset_to_gravity(
                data, sampling_rate_hz=rate, window_length_s=window_s, static_signal_th=10.0
            )
            break
        except ValueError:
            if window_s == 0.3:
                raise
    data = aligned
    data = PcaAlignment(target_axis="y", pca_plane_axis=("gyr_x", "gyr_y")).align(data).aligned_data_
    bf = convert_to_fbf(data, left_like="left_", right_like="right_")
    dtw = BarthDtw().segment(data=bf, sampling_rate_hz=rate)
    ed = RamppEventDetection().detect(data=bf, stride_list=dtw.stride_list_, sampling_rate_hz=rate)
    events = ed.min_vel_event_list_
    traj = StrideLevelTrajectory().estimate(data=data, stride_event_list=events, sampling_rate_hz=rate)
    temporal = TemporalParameterCalculation().calculate(stride_event_list=events, sampling_rate_hz=rate)
    spatial = SpatialParameterCalculation().calculate(
        stride_event_list=events, positions=traj.position_, orientations=traj.orientation_,
        sampling_rate_hz=rate,
    )
    return sum(len(v) for v in spatial.parameters_.values()), sum(len(np.load(p)[:n]) for p in paths.values())

pipeline(int(60 * rate))  # warm-up: numba compilation is not counted
t0 = time.perf_counter()
strides, samples = pipeline()
seconds = time.perf_counter() - t0
import gaitmap
out = {"seconds": seconds, "samples": samples, "strides": strides, "version": gaitmap.__version__}
print(json.dumps(out))
"""


def gaitmap_session(npy: dict[str, Path]) -> tuple[dict | None, str]:
    """(timing dict or None, note) of gaitmap's pipeline on the per-foot .npy files."""
    python = os.environ.get("STRIDEFLOW_GAITMAP_PYTHON")
    if not python:
        try:
            import gaitmap  # noqa: F401

            python = sys.executable
        except ImportError:
            return None, (
                "gaitmap not importable here and STRIDEFLOW_GAITMAP_PYTHON not set (gaitmap pins "
                "numpy < 2.1: install gaitmap and gaitmap-mad in a venv of their own and point the "
                "variable at its python)"
            )
    args = [f"{foot}={path}" for foot, path in npy.items()]
    env = {**os.environ, **SINGLE_THREAD_ENV}
    proc = subprocess.run(
        [python, "-c", _GAITMAP_SNIPPET, str(RATE_HZ), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"gaitmap pipeline failed with {python}: {last[:300]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out, f"gaitmap {out['version']} via {python}, {out['strides']} strides found"


# ------------------------------------------------------------------------------------------
# the benchmark
# ------------------------------------------------------------------------------------------
def _rate(result: dict | None) -> float | None:
    return None if result is None else result["samples"] / result["seconds"]


def _ratio(name: str, num: float | None, den: float | None, note: str) -> Row:
    if num is None or den is None or den <= 0:
        return row(name, None, "x", "a side is absent: " + note)
    return row(name, num / den, "x", note)


def measure(size: BatchBenchSize) -> list[Row]:
    """Every row of the benchmark for one workload size (see the module docstring)."""
    t_start = time.perf_counter()
    rows: list[Row] = [
        row(
            "machine.load_1min",
            os.getloadavg()[0],
            "processes",
            "load average at start: other work on the machine lowers every speed row",
        )
    ]
    t0 = time.perf_counter()
    team = dataset(size.athletes, size.minutes, workers=size.workers)
    rows.append(row("workload.prepare_s", time.perf_counter() - t0, "s", f"generate or find {team}"))

    summary = team_batch(team, size.workers)
    what = (
        f"TeamBatch, {size.workers} workers, {size.athletes} athletes x {size.minutes:g} min, both feet, "
        f"{RATE_HZ:g} Hz, {summary.samples:,} samples, {summary.recordings_done} files"
    )
    rows += [
        row("workload.samples", summary.samples, "samples", what),
        row("workload.athlete_hours", summary.recording_s / 3600.0, "h"),
        row("strideflow.pipeline", summary.samples_per_s, "samples/s", what + ", end to end"),
        row("strideflow.realtime_factor", summary.realtime_factor, "x", "athlete-seconds per wall second"),
        row("strideflow.wall_s", summary.wall_s, "s", f"of which cluster start {summary.startup_s:.2f} s"),
        row(
            "strideflow.team_day_s",
            TEAM_DAY_SAMPLES / summary.samples_per_s if summary.samples_per_s > 0 else None,
            "s",
            "100 athlete-hours (144 M samples) "
            + ("measured" if summary.samples >= TEAM_DAY_SAMPLES * 0.99 else "projected from the rate above")
            + "; target < 60 s",
        ),
        row("strideflow.peak_rss", summary.peak_rss_mb, "MB", "client + workers; target < 2000 MB"),
    ]
    if summary.recordings_failed:
        rows.append(row("strideflow.failed_recordings", summary.recordings_failed, "files"))
    rows += [
        row(f"strideflow.stage.{name}_s", seconds, "s", "summed over the tasks of all workers")
        for name, seconds in summary.stage_s.items()
    ]

    with tempfile.TemporaryDirectory(prefix="strideflow-bench-subset-") as tmp:
        files = _subset_files(team, size.subset_s, Path(tmp))
        jobs = [(str(p), foot) for p, foot in files]
        subset = f"athlete A001, first {size.subset_s:g} s, both feet, one process, one thread"
        ours = _in_single_thread_process(strideflow_session, jobs)
        try:
            ahrs, ahrs_note = _in_single_thread_process(ahrs_pandas_session, jobs), ""
        except ImportError as exc:  # pandas is a test extra, not a dependency
            ahrs, ahrs_note = None, f"baseline not run: {exc}"
        if size.gaitmap:
            gm, gm_note = gaitmap_session({foot: Path(tmp) / f"{foot}.npy" for _, foot in files})
        else:
            gm, gm_note = None, "skipped for this size"
    one_core, ahrs_rate, gm_rate = _rate(ours), _rate(ahrs), _rate(gm)
    rows += [
        row(
            "strideflow.pipeline_one_core",
            one_core,
            "samples/s",
            f"{subset}: read_recording + analyze_recording, {ours['strides']} strides",
        ),
        row(
            "ahrs_pandas.pipeline",
            ahrs_rate,
            "samples/s",
            f"{subset}: ahrs Madgwick + per-stride pandas loop, {ahrs['strides']} strides"
            if ahrs
            else ahrs_note,
        ),
        row("gaitmap.pipeline", gm_rate, "samples/s", f"{subset}: {gm_note}" if gm else gm_note),
        _ratio(
            "strideflow_vs_gaitmap.ratio",
            summary.samples_per_s,
            gm_rate,
            "team batch on all workers over gaitmap on one core (the issue's target: ~50 x)",
        ),
        _ratio(
            "strideflow_vs_ahrs_pandas.ratio",
            summary.samples_per_s,
            ahrs_rate,
            "team batch on all workers over the ahrs + pandas script on one core",
        ),
        _ratio("strideflow_vs_gaitmap.ratio_one_core", one_core, gm_rate, "one core each, same samples"),
        _ratio(
            "strideflow_vs_ahrs_pandas.ratio_one_core", one_core, ahrs_rate, "one core each, same samples"
        ),
    ]

    peaks = {}
    for k, count in zip(("1x", "10x", "100x"), size.scaling, strict=False):
        small = dataset(count, size.scaling_minutes, workers=size.workers)
        result = team_batch(small, size.workers)
        peaks[k] = result.peak_rss_mb
        rows.append(
            row(
                f"strideflow.peak_rss_{k}",
                result.peak_rss_mb,
                "MB",
                f"TeamBatch over {count} athlete-session(s) of {size.scaling_minutes:g} min, both feet "
                f"({result.recordings_done} files)",
            )
        )
    if len(peaks) > 1:
        values = list(peaks.values())
        rows.append(
            row(
                "strideflow.peak_rss_growth",
                values[-1] / values[0],
                "x",
                f"peak RSS at {list(peaks)[-1]} over 1x the recordings (1 = no growth)",
            )
        )
    rows.append(row("benchmark.wall_s", time.perf_counter() - t_start, "s"))
    return rows


def run(quick: bool = False) -> list[Row]:
    """The team-day benchmark; quick: 4 athletes x 15 min, 60 s subset, memory at 1x and 10x."""
    return measure(QUICK if quick else FULL)
