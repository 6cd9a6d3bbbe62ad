"""Shared benchmark helpers: machine description, timing, report (rich table + JSON), synthetic IMU.

Report format (DESIGN.md): {"benchmark": NAME, "machine": "...", "date": ISO-8601,
"rows": [{"name": "...", "value": 1.0, "unit": "..."}]}. Speed rows are `<tool>.<what>` in
samples/s; ratios are `ratio.<what>` with unit "x".
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from strideflow.analytics.pipeline import RUNNING_MOUNTING, AnalysisSettings
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.frames import rotation_from_wxyz, wxyz_from_rotation
from strideflow.hardware.mounting import MountingSettings

Row = dict[str, object]


def row(name: str, value: float | None, unit: str, note: str | None = None) -> Row:
    """One report row; value None means "absent" and then `note` says why."""
    out: Row = {"name": name, "value": None if value is None else float(value), "unit": unit}
    if note:
        out["note"] = note
    return out


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU, cores, OS, Python and the numeric libraries that decide the speed."""
    import numba

    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
    )


def parallel_map(fn: Callable, jobs: Iterable, workers: int | None = None) -> list:
    """`[fn(j) for j in jobs]` over `workers` processes (default: up to 2, the cores here).

    Workers are spawned, never forked: forking a process whose polars thread pool is running can
    deadlock the child. `fn` must be a module-level function.
    """
    jobs = list(jobs)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 2:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, jobs))


def best_time_s(fn: Callable[[], object], repeats: int = 5, budget_s: float = 5.0) -> float:
    """Best wall time of `fn()` over up to `repeats` calls (stops early past `budget_s`).

    The best, not the mean: other processes only ever add time, so the minimum is the closest
    estimate of what the code costs.
    """
    best = float("inf")
    spent = 0.0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
        best = min(best, elapsed)
        spent += elapsed
        if spent > budget_s:
            break
    return best


def report(name: str, rows: list[Row], json_path: str | Path | None = None, console=None) -> dict:
    """Print the rows as a table and, if asked, write the JSON report; returns the report dict."""
    from rich.console import Console
    from rich.table import Table

    doc = {
        "benchmark": name,
        "machine": machine(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
    }
    table = Table(title=f"benchmark {name}  ({doc['date']})", caption=doc["machine"])
    table.add_column("name")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("note")
    for r in rows:
        value = r["value"]
        shown = "absent" if value is None else _format_value(float(value))
        table.add_row(str(r["name"]), shown, str(r["unit"]), str(r.get("note", "")))
    (console or Console()).print(table)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def run_benchmark(
    name: str, quick: bool, json_path: str | Path | None = None, status=contextlib.nullcontext()
) -> dict:
    """Run `benchmarks/<name>.py`'s `run(quick)` inside `status` (a context manager, e.g. a spinner),
    then print and optionally write its report. Every benchmark's `strideflow.bench` entry point."""
    module = importlib.import_module(f"strideflow.benchmarks.{name}")
    run = getattr(module, "run", None)
    if run is None:
        raise StrideflowError(f"benchmarks/{name}.py has no run(quick) function")
    with status:
        rows = run(quick)
    return report(name, rows, json_path)


def _format_value(value: float) -> str:
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-2):
        return f"{value:.3e}"
    return f"{value:,.3f}"


# ------------------------------------------------------------------------------------------
# synthetic IMU with known orientation
# ------------------------------------------------------------------------------------------
def synthetic_imu(
    n: int,
    sampling_rate_hz: float = 200.0,
    seed: int = 0,
    rate_dps: float = 200.0,
    lin_acc_mps2: float = 3.0,
    noise: bool = True,
) -> dict[str, np.ndarray]:
    """A sensor turning smoothly in all axes, with known orientation.

    Angular rate: a sum of random sinusoids (0.3-3 Hz, about `rate_dps` deg/s peak), integrated
    exactly (constant rate within a step) into the true orientation `q_true` (N, 4, sensor to
    world). acc (m/s²) = R^T (g up + linear acceleration), mag (µT) = R^T of a 50 µT field
    inclined 60 deg down towards world +y; white noise on top when `noise`. Keys: t, acc_mps2,
    gyr_dps, mag_ut, q_true.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sampling_rate_hz
    freqs = rng.uniform(0.3, 3.0, (3, 4))
    phases = rng.uniform(0, 2 * np.pi, (3, 4))
    amps = rng.uniform(0.2, 0.5, (3, 4)) * rate_dps
    gyr_true = np.stack(
        [(amps[i] * np.sin(2 * np.pi * freqs[i] * t[:, None] + phases[i])).sum(axis=1) for i in range(3)],
        axis=1,
    )
    dt = 1.0 / sampling_rate_hz
    angle = np.linalg.norm(gyr_true, axis=1) * np.pi / 180 * dt
    axis = gyr_true / np.maximum(np.linalg.norm(gyr_true, axis=1, keepdims=True), 1e-300)
    steps = Rotation.from_rotvec(axis * angle[:, None])
    r = Rotation.from_rotvec([0.4, 0.0, 0.0]) * Rotation.from_rotvec([0.0, 0.2, 0.0])
    q = np.empty((n, 4))
    q[0] = wxyz_from_rotation(r)
    for i in range(1, n):  # the rate of sample i acts from i-1 to i, as the filters integrate it
        r = r * steps[i]
        q[i] = wxyz_from_rotation(r)
    lin = lin_acc_mps2 * np.column_stack(
        [np.sin(2 * np.pi * 1.1 * t), np.sin(2 * np.pi * 0.7 * t + 1), 0.5 * np.sin(2 * np.pi * 1.9 * t)]
    )
    world_to_sensor = rotation_from_wxyz(q).inv()
    acc = world_to_sensor.apply(lin + np.array([0.0, 0.0, 9.80665]))
    field = 50.0 * np.array([0.0, np.cos(np.radians(60)), -np.sin(np.radians(60))])
    mag = world_to_sensor.apply(field)
    gyr = gyr_true.copy()
    if noise:
        acc += rng.normal(0, 0.05, acc.shape)
        gyr += rng.normal(0, 0.3, gyr.shape)
        mag += rng.normal(0, 0.5, mag.shape)
    return {"t": t, "acc_mps2": acc, "gyr_dps": gyr, "mag_ut": mag, "q_true": q}


# The walking-direction heading, the fallback for a pod whose shoe axis is not known: the
# `askew_mount.*` accuracy rows (pods turned 2-15 deg on the shoe) and the tests and benchmarks
# written against the walking-direction frame use it. The simulator's default pods sit square on
# the shoe (hardware.simulator.imu.draw_mounting), which the product's defaults handle.
SIMULATOR_ANALYSIS = AnalysisSettings(
    mounting=MountingSettings(heading="walking"),
    mounting_fallback=replace(RUNNING_MOUNTING, heading="walking"),
)
