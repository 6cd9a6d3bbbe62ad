"""Speed of the orientation filters against baselines, measured in one run on the same data.

Rows (samples/s unless noted): `ahrs.madgwick`, `ahrs.mahony` (pure-Python reference, on a subset),
`imufusion.ahrs` (x-io Fusion's C filter called per sample from Python), `gaitmap.madgwick` (numba,
where gaitmap is installed; absent with the reason otherwise), `strideflow.madgwick` and
`strideflow.mahony` (one sensor, one core), `strideflow.madgwick_batched` and
`strideflow.mahony_batched` (many sensors, all cores), `strideflow.madgwick_stream` (chunks of
1024), `strideflow.fusion_stage` (samples DataFrame to orientation DataFrame, end to end),
compile time cold and cached (s), and ratios `ratio.*` (x). Data: a synthetic foot-like recording
(smooth turning up to ~400 deg/s with linear acceleration and noise) tiled to length; every tool
sees the same samples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

from strideflow.benchmarks._common import Row, best_time_s, row, synthetic_imu

RATE_HZ = 200.0

_COMPILE_SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np
from strideflow.fusion import _kernels  # noqa: F401
from strideflow.fusion.madgwick import Madgwick
from strideflow.fusion.mahony import Mahony
from strideflow.fusion.stage import estimate_orientation
from strideflow.benchmarks.fusion import stage_input
acc = np.tile([0.1, 0.2, 9.8], (64, 1)); gyr = np.tile([1.0, 2.0, 3.0], (64, 1))
Madgwick().estimate(acc, gyr, 200.0); Mahony().estimate(acc, gyr, 200.0)
Madgwick().estimate_many(acc[None], gyr[None], 200.0)
estimate_orientation(stage_input(64, 2), 200.0)
print(time.perf_counter() - t0)
"""


def recording(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(acc m/s², gyr deg/s), n samples: a 20 s synthetic recording tiled to length."""
    base = synthetic_imu(min(n, 4000), RATE_HZ, seed=seed, rate_dps=300.0)
    reps = -(-n // base["acc_mps2"].shape[0])
    acc = np.ascontiguousarray(np.tile(base["acc_mps2"], (reps, 1))[:n])
    gyr = np.ascontiguousarray(np.tile(base["gyr_dps"], (reps, 1))[:n])
    return acc, gyr


def stage_input(n_per_foot: int, n_athletes: int):
    """A samples DataFrame: n_athletes athletes x 2 feet, n_per_foot samples each."""
    import polars as pl

    from strideflow.hardware.schema import ACC, ATHLETE_ID, FOOT, GYR, SESSION_ID, T

    acc, gyr = recording(n_per_foot)
    parts = []
    for a in range(n_athletes):
        for foot in ("left", "right"):
            cols = {
                ATHLETE_ID: pl.Series([f"athlete{a:03d}"]).new_from_index(0, n_per_foot),
                SESSION_ID: pl.Series(["2024-01-01"]).new_from_index(0, n_per_foot),
                FOOT: pl.Series([foot]).new_from_index(0, n_per_foot),
                T: np.arange(n_per_foot) / RATE_HZ,
            }
            cols.update({c: acc[:, i] for i, c in enumerate(ACC)})
            cols.update({c: gyr[:, i] for i, c in enumerate(GYR)})
            parts.append(pl.DataFrame(cols))
    return pl.concat(parts, rechunk=True)


def _rate(n: int, seconds: float) -> float:
    return n / seconds


def _ahrs_rows(acc, gyr, n: int) -> list[Row]:
    from ahrs.filters import Madgwick as AhrsMadgwick
    from ahrs.filters import Mahony as AhrsMahony

    g = np.radians(gyr[:n])
    a = acc[:n]
    t_mad = best_time_s(lambda: AhrsMadgwick(gyr=g, acc=a, frequency=RATE_HZ), repeats=2, budget_s=3)
    t_mah = best_time_s(lambda: AhrsMahony(gyr=g, acc=a, frequency=RATE_HZ), repeats=2, budget_s=3)
    return [
        row("ahrs.madgwick", _rate(n, t_mad), "samples/s", f"ahrs 0.4 pure Python, {n} samples"),
        row("ahrs.mahony", _rate(n, t_mah), "samples/s", f"ahrs 0.4 pure Python, {n} samples"),
    ]


def _imufusion_row(acc, gyr, n: int) -> Row:
    try:
        import imufusion
    except ImportError as exc:  # pragma: no cover - depends on the environment
        return row("imufusion.ahrs", None, "samples/s", f"imufusion not importable: {exc}")
    acc_g = np.ascontiguousarray(acc[:n] / 9.80665)
    g = np.ascontiguousarray(gyr[:n])

    def loop() -> None:
        ahrs = imufusion.Ahrs()
        ahrs.set_sample_period(1.0 / RATE_HZ)
        for i in range(n):
            ahrs.update_no_magnetometer(g[i], acc_g[i])
            ahrs.get_quaternion()  # reading the result is part of the per-sample cost

    t = best_time_s(loop, repeats=3, budget_s=4)
    return row("imufusion.ahrs", _rate(n, t), "samples/s", f"per-sample calls from Python, {n} samples")


_GAITMAP_SNIPPET = """
import sys, time
import numpy as np, pandas as pd
from gaitmap.trajectory_reconstruction.orientation_methods import MadgwickAHRS
a = np.load(sys.argv[1])
data = pd.DataFrame(a, columns=["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"])
rate = float(sys.argv[2])
MadgwickAHRS(beta=0.033).estimate(data.iloc[:100], sampling_rate_hz=rate)
best = float("inf")
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    MadgwickAHRS(beta=0.033).estimate(data, sampling_rate_hz=rate)
    best = min(best, time.perf_counter() - t0)
import gaitmap
print(len(a) / best, gaitmap.__version__)
"""


def _gaitmap_row(acc, gyr, n: int, repeats: int) -> Row:
    """gaitmap's numba MadgwickAHRS on the same samples: in this interpreter if gaitmap imports,
    else in the interpreter named by STRIDEFLOW_GAITMAP_PYTHON (gaitmap 2.6 pins numpy < 2.1, so
    it usually lives in a venv of its own), else absent with the reason."""
    python = os.environ.get("STRIDEFLOW_GAITMAP_PYTHON")
    try:
        import gaitmap  # noqa: F401

        python = sys.executable
    except ImportError as exc:
        if not python:
            return row(
                "gaitmap.madgwick",
                None,
                "samples/s",
                f"gaitmap not importable ({exc}); it pins numpy < 2.1, so install it in a separate venv "
                "and set STRIDEFLOW_GAITMAP_PYTHON to that venv's python",
            )
    with tempfile.TemporaryDirectory(prefix="strideflow-gaitmap-") as tmp:
        path = os.path.join(tmp, "imu.npy")
        np.save(path, np.column_stack([acc[:n], gyr[:n]]))
        proc = subprocess.run(
            [python, "-c", _GAITMAP_SNIPPET, path, str(RATE_HZ), str(repeats)],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return row("gaitmap.madgwick", None, "samples/s", f"gaitmap run failed with {python}: {last}")
    rate, version = proc.stdout.split()
    return row(
        "gaitmap.madgwick",
        float(rate),
        "samples/s",
        f"gaitmap {version} MadgwickAHRS (numba, incl. its pandas in/out), {n} samples, via {python}",
    )


def _compile_rows() -> list[Row]:
    """Cold compile (empty numba cache) and cached start, each in a fresh interpreter."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="strideflow-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for name in ("strideflow.compile_cold_s", "strideflow.compile_cached_s"):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", _COMPILE_SNIPPET], env=env, capture_output=True, text=True, check=False
            )
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                rows.append(row(name, None, "s", f"failed: {proc.stderr.strip().splitlines()[-1:]}"))
                continue
            rows.append(
                row(name, float(proc.stdout.strip()), "s", f"import + first calls; process wall {wall:.2f} s")
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    """Measure everything. Quick: 400 k samples per sensor (8 x 100 k batched), 2 repeats, 1 k for
    ahrs and 10 k for imufusion: about a fifth of the earlier quick sizes, whose run took 78-111 s on
    a loaded 2-core machine; the compile rows (fresh processes) cost the same either way."""
    from strideflow.fusion.madgwick import Madgwick
    from strideflow.fusion.mahony import Mahony
    from strideflow.fusion.stage import estimate_orientation
    from strideflow.fusion.stream import MadgwickStream

    n_single = 400_000 if quick else 5_000_000
    n_sensors, n_each = (8, 100_000) if quick else (16, 1_000_000)
    n_ahrs = 1_000 if quick else 10_000
    n_imufusion = 10_000 if quick else 200_000
    repeats = 2 if quick else 7

    rows: list[Row] = [
        row(
            "machine.load_1min",
            os.getloadavg()[0],
            "processes",
            "load average at start: other work on the machine lowers every speed row, the all-core ones most",
        )
    ]
    rows += _compile_rows()

    acc, gyr = recording(n_single)
    rows += _ahrs_rows(acc, gyr, n_ahrs)
    rows.append(_imufusion_row(acc, gyr, n_imufusion))
    rows.append(_gaitmap_row(acc, gyr, n_single, repeats))

    mad, mah = Madgwick(), Mahony()
    mad.estimate(acc[:64], gyr[:64], RATE_HZ)
    mah.estimate(acc[:64], gyr[:64], RATE_HZ)
    t = best_time_s(lambda: mad.estimate(acc, gyr, RATE_HZ), repeats)
    rows.append(row("strideflow.madgwick", _rate(n_single, t), "samples/s", "one sensor, one core"))
    t = best_time_s(lambda: mah.estimate(acc, gyr, RATE_HZ), repeats)
    rows.append(row("strideflow.mahony", _rate(n_single, t), "samples/s", "one sensor, one core"))

    acc_s = np.ascontiguousarray(np.broadcast_to(acc[:n_each], (n_sensors, n_each, 3)))
    gyr_s = np.ascontiguousarray(np.broadcast_to(gyr[:n_each], (n_sensors, n_each, 3)))
    mad.estimate_many(acc_s[:, :64], gyr_s[:, :64], RATE_HZ)
    mah.estimate_many(acc_s[:, :64], gyr_s[:, :64], RATE_HZ)
    total = n_sensors * n_each
    note = f"{n_sensors} sensors x {n_each} samples, all cores"
    t = best_time_s(lambda: mad.estimate_many(acc_s, gyr_s, RATE_HZ), repeats)
    rows.append(row("strideflow.madgwick_batched", _rate(total, t), "samples/s", note))
    t = best_time_s(lambda: mah.estimate_many(acc_s, gyr_s, RATE_HZ), repeats)
    rows.append(row("strideflow.mahony_batched", _rate(total, t), "samples/s", note))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        t = best_time_s(lambda: mad.estimate_many(acc_s, gyr_s, RATE_HZ), repeats)
    finally:
        numba.set_num_threads(threads)
    rows.append(
        row(
            "strideflow.madgwick_batched_one_core",
            _rate(total, t),
            "samples/s",
            f"{n_sensors} sensors, one thread",
        )
    )

    chunk = 1024
    n_stream = min(n_single, 500_000)

    def stream() -> None:
        s = MadgwickStream(sampling_rate_hz=RATE_HZ)
        for i in range(0, n_stream, chunk):
            s.update(acc[i : i + chunk], gyr[i : i + chunk])

    t = best_time_s(stream, repeats)
    rows.append(row("strideflow.madgwick_stream", _rate(n_stream, t), "samples/s", f"chunks of {chunk}"))

    per_foot = (n_single // 4) if quick else n_single // 2
    n_athletes = 2 if quick else 4
    df = stage_input(per_foot, n_athletes)
    estimate_orientation(df.head(64), RATE_HZ)
    t = best_time_s(lambda: estimate_orientation(df, RATE_HZ), repeats)
    rows.append(
        row(
            "strideflow.fusion_stage",
            _rate(df.height, t),
            "samples/s",
            f"{df.height} rows, {2 * n_athletes} feet: columns -> numpy -> filter -> orientation table",
        )
    )

    value = {r["name"]: r["value"] for r in rows}

    def ratio(name: str, num: str, den: str) -> None:
        a, b = value.get(num), value.get(den)
        if a is None or b is None:
            rows.append(row(f"ratio.{name}", None, "x", f"{den if b is None else num} absent"))
        else:
            rows.append(row(f"ratio.{name}", a / b, "x", f"{num} / {den}"))

    ratio("madgwick_vs_ahrs", "strideflow.madgwick", "ahrs.madgwick")
    ratio("mahony_vs_ahrs", "strideflow.mahony", "ahrs.mahony")
    ratio("madgwick_vs_imufusion", "strideflow.madgwick", "imufusion.ahrs")
    ratio("madgwick_vs_gaitmap", "strideflow.madgwick", "gaitmap.madgwick")
    ratio("madgwick_batched_vs_single", "strideflow.madgwick_batched", "strideflow.madgwick")
    ratio(
        "madgwick_batched_one_core_vs_single", "strideflow.madgwick_batched_one_core", "strideflow.madgwick"
    )
    ratio("madgwick_batched_vs_ahrs", "strideflow.madgwick_batched", "ahrs.madgwick")
    ratio("fusion_stage_vs_ahrs", "strideflow.fusion_stage", "ahrs.madgwick")
    return rows
