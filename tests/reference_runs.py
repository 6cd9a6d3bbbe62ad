"""Reference runs of the three entry paths, and their stored fingerprint (tests/data/fingerprint/).

The runs (`reference_tables()`):

- `analyze`: `strideflow analyze` (the CLI command, in process) on the real recordings of
  ../shared/data/gaitmap_example at their rates (204.8 Hz: imu_sample, the two stair files;
  102.4 Hz: imu_sample_ic_stride, the two MS files): strides, sessions, flags.
- `batch`: a small deterministic simulated dataset (2 athletes, mixed walking and running, one
  foot's file with a short gap that is interpolated and a long one that splits it) through the
  team batch's per-session task (`analytics.batch.run_session`, what each Dask task runs):
  strides, sessions, flags and curves partitions, plus each task's status and failures.
- `jobs`: the service's upload job (`service.jobs.analyse_session`) on the real imu_sample.csv and
  on one simulated session: the partitions it writes.
- `live`: the live analyzer (`analytics.live_analyzer.LiveStrideAnalyzer`) replaying imu_sample.csv per
  foot in blocks of 97 samples with the default (20 s warm-up) settings, and the simulated file
  with gaps in blocks of 50: strides, provisional stance rows, emission latencies, warnings.

Each table is stored as Parquet (they are small) and compared exactly (`tests/e2e/test_fingerprint.py`).
Regenerate after an intentional change of behaviour (and say so in the commit):

    python tests/reference_runs.py

Real-data tables are left out (and their test skips) when the recordings are absent.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
FINGERPRINT_DIR = HERE / "data" / "fingerprint"
REAL_DATA = HERE.parent.parent / "shared" / "data" / "gaitmap_example"

REAL_RUNS = (  # (files, --rate, extra CLI arguments)
    (("imu_sample.csv", "imu_sample_healthy_stair_up.csv", "imu_sample_healthy_stair_down.csv"), 204.8, ()),
    (("imu_sample_ic_stride.csv",), 102.4, ()),
    (("imu_sample_ms_left.csv",), 102.4, ("--foot", "left", "--athlete", "ms", "--session", "s1")),
    (("imu_sample_ms_right.csv",), 102.4, ("--foot", "right", "--athlete", "ms", "--session", "s1")),
)
SIM_SEED = 11


def have_real_data() -> bool:
    return (REAL_DATA / "imu_sample.csv").exists()


def _analyze_runs(tmp: Path) -> dict[str, pl.DataFrame]:
    from typer.testing import CliRunner

    from strideflow.service.cli import _register, app

    _register()
    out: dict[str, pl.DataFrame] = {}
    for k, (files, rate, extra) in enumerate(REAL_RUNS):
        dest = tmp / f"analyze{k}"
        args = ["analyze", *[str(REAL_DATA / f) for f in files], "--rate", str(rate), "--out", str(dest)]
        result = CliRunner().invoke(app, [*args, *extra], catch_exceptions=False)
        if result.exit_code != 0:
            raise RuntimeError(f"strideflow {' '.join(args)} failed: {result.output}")
        for table in ("strides", "sessions", "flags"):
            out[f"analyze{k}_{table}"] = pl.read_parquet(dest / f"{table}.parquet")
    return out


def _simulated_dataset(root: Path) -> Path:
    """2 athletes x 1 session of 40 s, mixed; A001's left file gets a 40 ms and a 3 s hole, its
    right file's gyr_y is clipped at 97 % of its largest |value| (a saturated sensor)."""
    from strideflow.hardware import schema as S
    from strideflow.hardware.simulator.dataset import write_dataset

    manifest = write_dataset(root, athletes=2, minutes=40 / 60, seed=SIM_SEED, activity="mixed")
    listing = pl.read_csv(manifest)
    path = root / listing.filter((pl.col(S.ATHLETE_ID) == "A001") & (pl.col(S.FOOT) == "left"))["path"][0]
    samples = pl.read_parquet(path)
    t = samples[S.T]
    holes = ((t > 12.0) & (t < 12.04)) | ((t > 25.0) & (t < 28.0))
    samples.filter(~holes).write_parquet(path)
    path = root / listing.filter((pl.col(S.ATHLETE_ID) == "A001") & (pl.col(S.FOOT) == "right"))["path"][0]
    samples = pl.read_parquet(path)
    level = 0.97 * samples[S.GYR[1]].abs().max()
    samples.with_columns(pl.col(S.GYR[1]).clip(-level, level)).write_parquet(path)
    return root


def _partitions(root: Path, prefix: str) -> dict[str, pl.DataFrame]:
    from strideflow.analytics import partitions

    out = {}
    for table in partitions.TABLES:
        files = sorted(root.glob(f"{table}/athlete_id=*/session_id=*/*.parquet"))
        if not files:
            continue
        frames = []
        for f in files:
            df = pl.read_parquet(f, hive_partitioning=False)
            athlete = f.parent.parent.name.split("=", 1)[1]
            session = f.parent.name.split("=", 1)[1]
            frames.append(df.with_columns(_partition=pl.lit(f"{athlete}/{session}")))
        out[f"{prefix}_{table}"] = pl.concat(frames, how="diagonal_relaxed")
    return out


def _batch_run(dataset: Path, tmp: Path) -> dict[str, pl.DataFrame]:
    from strideflow.analytics.batch import BatchSettings, run_session, session_jobs
    from strideflow.analytics.discovery import find_recordings

    dest = tmp / "batch"
    jobs = session_jobs(find_recordings(dataset), dest, BatchSettings())
    status = []
    for job in jobs:
        r = run_session(job)
        failed = "; ".join(f"{Path(f['path']).name}: {f['error_type']}" for f in r["failed"])
        status.append(
            {
                "session": f"{job.athlete_id}/{job.session_id}",
                "status": r["status"],
                "strides": r["strides"],
                "samples": r["samples"],
                "failed": failed,
            }
        )
    return {"batch_status": pl.DataFrame(status), **_partitions(dest, "batch")}


def _jobs_run(dataset: Path, tmp: Path) -> dict[str, pl.DataFrame]:
    from strideflow.hardware import schema as S
    from strideflow.service.jobs import analyse_session

    dest = tmp / "jobs"
    runs = []
    if have_real_data():
        runs.append(
            (
                "real",
                "walk",
                [
                    {
                        "id": "r1",
                        "path": str(REAL_DATA / "imu_sample.csv"),
                        "filename": "imu_sample.csv",
                        "format": "auto",
                        "sampling_rate_hz": 204.8,
                        "foot": None,
                    }
                ],
            )
        )
    listing = pl.read_csv(dataset / "manifest.csv").filter(pl.col(S.ATHLETE_ID) == "A002")
    runs.append(
        (
            "A002",
            listing[S.SESSION_ID][0],
            [
                {
                    "id": f"s{i}",
                    "path": str(dataset / r["path"]),
                    "filename": Path(r["path"]).name,
                    "format": "auto",
                    "sampling_rate_hz": None,
                    "foot": r[S.FOOT],
                }
                for i, r in enumerate(listing.iter_rows(named=True))
            ],
        )
    )
    status = []
    for athlete, session, recordings in runs:
        r = analyse_session(str(dest), athlete, session, "2025-01-06", recordings)
        status.append(
            {
                "session": f"{athlete}/{session}",
                "error": r.get("error"),
                "stride_count": r.get("stride_count"),
                "warnings": "\n".join(r.get("warnings", [])),
            }
        )
    return {"jobs_status": pl.DataFrame(status), **_partitions(dest, "jobs")}


def _live_replay(samples: pl.DataFrame, fs: float, block: int, name: str) -> dict[str, pl.DataFrame]:
    from strideflow.analytics.live_analyzer import LiveStrideAnalyzer
    from strideflow.hardware import schema as S
    from strideflow.ingest.stream_receiver import SampleBlock

    strides, stances, emissions, warnings = [], [], [], []
    for foot in S.FEET:
        part = samples.filter(pl.col(S.FOOT) == foot).sort(S.T)
        if part.height == 0:
            continue
        t = part[S.T].to_numpy()
        acc, gyr = part.select(S.ACC).to_numpy(), part.select(S.GYR).to_numpy()
        # samples at the largest |gyr| of the recording count as saturated (the clipped file)
        gyr_abs = np.abs(gyr).max(axis=1)
        sat = np.isclose(gyr_abs, gyr_abs.max(), rtol=1e-9, atol=0.0)
        sat = sat if sat.sum() > 1 else None
        live = LiveStrideAnalyzer(part[S.ATHLETE_ID][0], part[S.SESSION_ID][0], foot, fs)
        pushed, stance_rows = [], []
        for i in range(0, len(t), block):
            sl = slice(i, i + block)
            out = live.push(SampleBlock(t[sl], acc[sl], gyr[sl], saturated=None if sat is None else sat[sl]))
            pushed.append(out.strides)
            stance_rows.append(out.stances)
        pushed.append(live.finish().strides)
        assert pl.concat(stance_rows).equals(live.stances_)
        assert pl.concat(pushed).equals(live.strides_)
        strides.append(live.strides_)
        stances.append(live.stances_.with_columns(pl.lit(foot).alias(S.FOOT)))
        emissions.append(live.emissions_.with_columns(pl.lit(foot).alias(S.FOOT)))
        warnings += [{S.FOOT: foot, "warning": w} for w in live.warnings_]
    return {
        f"{name}_strides": pl.concat(strides),
        f"{name}_stances": pl.concat(stances),
        f"{name}_emissions": pl.concat(emissions),
        f"{name}_warnings": pl.DataFrame(warnings, schema={S.FOOT: pl.String, "warning": pl.String}),
    }


def _live_runs(dataset: Path) -> dict[str, pl.DataFrame]:
    from strideflow.hardware import schema as S
    from strideflow.ingest import read_recording

    out = {}
    if have_real_data():
        rec = read_recording(REAL_DATA / "imu_sample.csv", sampling_rate_hz=204.8)
        out |= _live_replay(rec.samples, rec.sampling_rate_hz, 97, "live_real")
    listing = pl.read_csv(dataset / "manifest.csv").filter(pl.col(S.ATHLETE_ID) == "A001")
    raw = pl.concat([pl.read_parquet(dataset / p) for p in listing["path"]], how="diagonal_relaxed")
    out |= _live_replay(raw, float(listing["sampling_rate_hz"][0]), 50, "live_sim")
    return out


def reference_tables() -> dict[str, pl.DataFrame]:
    """Every table of the reference runs, by name (real-data ones only when the data is there)."""
    tmp = Path(tempfile.mkdtemp(prefix="strideflow-fingerprint-"))
    try:
        dataset = _simulated_dataset(tmp / "dataset")
        out = _analyze_runs(tmp) if have_real_data() else {}
        out |= _batch_run(dataset, tmp)
        out |= _jobs_run(dataset, tmp)
        out |= _live_runs(dataset)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Float columns may differ by this much, absolute, or relative to the stored value where it is
# above 1 in magnitude (see tests/e2e/test_fingerprint.py for why); everything else must be identical.
FLOAT_TOLERANCE = 1e-12


def differences(
    name: str, stored: pl.DataFrame, current: pl.DataFrame, tolerance: float = FLOAT_TOLERANCE
) -> list[str]:
    """What differs between two versions of a table beyond `tolerance`, in words; [] when none."""
    if stored.schema != current.schema:
        return [f"{name}: schema {dict(current.schema)} != stored {dict(stored.schema)}"]
    if stored.height != current.height:
        return [f"{name}: {current.height} rows, stored {stored.height}"]
    problems = []
    for column in stored.columns:
        a, b = stored[column], current[column]
        if a.equals(b):
            continue
        if a.dtype.is_float():
            x, y = a.to_numpy(), b.to_numpy()
            same_nan = np.isnan(x) == np.isnan(y)
            diff = np.abs(np.where(np.isnan(x), 0.0, x) - np.where(np.isnan(y), 0.0, y))
            bound = tolerance * np.maximum(1.0, np.abs(np.where(np.isnan(x), 0.0, x)))
            if same_nan.all() and (diff <= bound).all():
                continue
            problems.append(
                f"{name}.{column}: max |diff| {np.max(diff):.3g} over {int(np.count_nonzero(diff))} rows"
                + ("" if same_nan.all() else f", NaN/null differs on {int(np.count_nonzero(~same_nan))}")
            )
        else:
            rows = [i for i, (u, v) in enumerate(zip(a.to_list(), b.to_list(), strict=True)) if u != v]
            problems.append(f"{name}.{column}: {len(rows)} rows differ, first row {rows[0]}")
    return problems


def write_fingerprint(tables: dict[str, pl.DataFrame]) -> None:
    if FINGERPRINT_DIR.exists():
        shutil.rmtree(FINGERPRINT_DIR)
    FINGERPRINT_DIR.mkdir(parents=True)
    for name, df in sorted(tables.items()):
        df.write_parquet(FINGERPRINT_DIR / f"{name}.parquet", compression="zstd", compression_level=19)


if __name__ == "__main__":
    if not have_real_data():
        sys.exit(f"real recordings not found at {REAL_DATA}: the fingerprint needs them")
    tables = reference_tables()
    write_fingerprint(tables)
    total = sum(f.stat().st_size for f in FINGERPRINT_DIR.iterdir())
    print(f"wrote {len(tables)} tables, {total / 1e3:.0f} kB, to {FINGERPRINT_DIR}")
