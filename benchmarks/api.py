"""Speed of the HTTP API over loopback with a large results store (issue 6).

A store of synthetic strides (STRIDES_SCHEMA rows with plausible, varied values) is written
straight into the service's layout with `analytics.partitions` (strides, sessions and flags per
athlete-session, sessions/flags from `summarize_strides`), registered in the service database
with `catalog.sync_results`, and given an admin key. Full run: 100 athletes x 10 sessions x
1000 strides (500 per foot) = 1,000,000 strides; `--quick`: 10 x 5 x 1000 = 50,000. The store
is cached (`STRIDEFLOW_BENCH_CACHE`, default `<tmp>/strideflow-bench-api`) and rebuilt only
when its spec changes.

`strideflow serve` runs as a subprocess on 127.0.0.1 (one uvicorn process on the store's SQLite
database; see `STRIDEFLOW_BENCH_PROCESSES` below for more). The load comes from
`benchmarks/_loadgen.py` in a process of its own: `CONCURRENCY` keep-alive HTTP/1.1 connections,
each sending one request at a time from request heads built before the clock starts (random
athlete / session per request), for a fixed time per route after a 1 s warm-up. Rows per route:
`<route>.requests_per_s` (req/s), `<route>.p50_ms` and `<route>.p99_ms` (ms, per request, first
byte sent to last byte read), `<route>.serial_p50_ms` (ms, one connection: the server's own
time per request), `<route>.server_cpu_ms` (ms of the server process's CPU time per request in
the concurrent run: what other load on the machine changes least), `<route>.client_cpu_ms` (ms
of the load generator's CPU time per request: what the measurement itself takes from the
cores) and `<route>.errors` (answers that are not 200 with a non-empty page, must be 0). Plus
`store.strides` (strides stored), `store.partitions`, `store.build_s` (s; 0 when the cached
store was reused), `store.index_s` (s to bring the service's summary index up to date before
serving) and `machine.load_1min`. Client and server share the machine's cores, so req/s is a
floor for a dedicated server.

Environment: `STRIDEFLOW_BENCH_PROCESSES` (e.g. "1,2": one run per server process count; for
N > 1 `serve --workers N` on a throwaway database created on the PostgreSQL server of
`STRIDEFLOW_BENCH_DATABASE_URL`, into which the store is registered as `catalog.sync_results`
does, and rows `p<N>.<route>...`, `p<N>.store.index_s`; server CPU is then the sum over the
server's processes).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl

from strideflow.analytics import partitions
from strideflow.analytics.activity import activity_expr
from strideflow.benchmarks import _loadgen as loadgen
from strideflow.benchmarks._common import Row, row
from strideflow.hardware.schema import (
    ACTIVITY,
    ATHLETE_ID,
    CADENCE_SPM,
    CONTEXT,
    DUTY_FACTOR,
    FOOT,
    FOOT_FLAT_T,
    FOOT_PROGRESSION_ANGLE_DEG,
    FOOT_STRIKE_ANGLE_DEG,
    HEADING_CHANGE_DEG,
    HEEL_OFF_RATIO,
    HEEL_OFF_T,
    IC_T,
    IMPACT_G,
    MAX_PRONATION_VELOCITY_DPS,
    NEXT_IC_T,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    REASON,
    SESSION_DATE,
    SESSION_ID,
    SPEED_MPS,
    STANCE_TIME_S,
    STEADY,
    STRIDE_INDEX,
    STRIDE_LENGTH_M,
    STRIDE_TIME_S,
    STRIDES_SCHEMA,
    STRIKE_FOREFOOT_BELOW_DEG,
    STRIKE_REARFOOT_ABOVE_DEG,
    STRIKE_TYPE,
    SWING_TIME_S,
    TIME_TO_MAX_PRONATION_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    TOE_OFF_T,
    VALID,
    steady_expr,
)

TEAM = "bench-team"
STORE_VERSION = 3  # bump when the stored store changes (2: foot_progression_angle_deg; 3: strides row groups)
CONCURRENCY = 8
FIRST_DATE = dt.date(2026, 1, 5)
MEAN_STRIDE_S = 0.75  # s, a steady run


@dataclass(frozen=True)
class StoreSpec:
    """Size of the synthetic store: athletes x sessions x strides per session (both feet)."""

    athletes: int
    sessions: int
    strides_per_session: int
    seed: int = 0

    @property
    def strides(self) -> int:
        return self.athletes * self.sessions * self.strides_per_session

    def name(self) -> str:
        return (
            f"v{STORE_VERSION}-a{self.athletes}-s{self.sessions}-n{self.strides_per_session}-seed{self.seed}"
        )


FULL = StoreSpec(athletes=100, sessions=10, strides_per_session=1000)
QUICK = StoreSpec(athletes=10, sessions=5, strides_per_session=1000)
DURATION_S = 10.0  # per route, full run
QUICK_DURATION_S = 3.0


def athlete_id(i: int) -> str:
    return f"B{i + 1:04d}"


def session_id(k: int) -> str:
    return f"S{k + 1:02d}"


def synthetic_strides(athlete: str, session: str, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """`n` strides (half per foot) of one session in STRIDES_SCHEMA: consistent event times and
    metrics following DESIGN.md's definitions, values scattered like a steady run."""
    per_foot = n // 2
    frames = []
    for offset, foot in enumerate(("left", "right")):
        stride_time = rng.normal(MEAN_STRIDE_S, 0.03, per_foot).clip(0.5, 1.2)
        duty = rng.normal(0.38, 0.02, per_foot).clip(0.25, 0.6)
        ic = 2.0 + 0.5 * offset + np.concatenate([[0.0], np.cumsum(stride_time[:-1])])
        stance = duty * stride_time
        heel_off_ratio = rng.normal(0.55, 0.05, per_foot).clip(0.3, 0.8)
        length = rng.normal(2.4, 0.12, per_foot)
        strike = rng.normal(6.0, 5.0, per_foot)
        strike_type = np.where(
            strike > STRIKE_REARFOOT_ABOVE_DEG,
            "rearfoot",
            np.where(strike < STRIKE_FOREFOOT_BELOW_DEG, "forefoot", "midfoot"),
        )
        valid = rng.random(per_foot) > 0.03
        frames.append(
            pl.DataFrame(
                {
                    ATHLETE_ID: athlete,
                    SESSION_ID: session,
                    FOOT: foot,
                    STRIDE_INDEX: np.arange(per_foot, dtype=np.int64),
                    IC_T: ic,
                    FOOT_FLAT_T: ic + 0.3 * stance,
                    HEEL_OFF_T: ic + heel_off_ratio * stance,
                    TOE_OFF_T: ic + stance,
                    NEXT_IC_T: ic + stride_time,
                    STRIDE_TIME_S: stride_time,
                    STANCE_TIME_S: stance,
                    SWING_TIME_S: stride_time - stance,
                    CADENCE_SPM: 120.0 / stride_time,
                    STRIDE_LENGTH_M: length,
                    SPEED_MPS: length / stride_time,
                    FOOT_STRIKE_ANGLE_DEG: strike,
                    STRIKE_TYPE: strike_type,
                    PRONATION_EXCURSION_DEG: rng.normal(9.0 + offset, 2.0, per_foot),
                    MAX_PRONATION_VELOCITY_DPS: rng.normal(450.0, 60.0, per_foot),
                    TIME_TO_MAX_PRONATION_S: rng.normal(0.08, 0.01, per_foot),
                    TOE_OFF_PRONATION_DEG: rng.normal(2.0, 2.0, per_foot),
                    TOE_OFF_ANGLE_DEG: rng.normal(62.0, 4.0, per_foot),
                    PUSH_OFF_RATE_DPS: rng.normal(700.0, 80.0, per_foot),
                    HEEL_OFF_RATIO: heel_off_ratio,
                    IMPACT_G: rng.normal(9.0, 1.5, per_foot),
                    DUTY_FACTOR: duty,
                    FOOT_PROGRESSION_ANGLE_DEG: rng.normal(7.0, 5.0, per_foot),
                    VALID: valid,
                }
            )
        )
    reason = (
        pl.when(pl.col(VALID)).then(pl.lit(None, dtype=pl.String)).otherwise(pl.lit("shuffle")).alias(REASON)
    )
    return (
        pl.concat(frames)
        .with_columns(
            reason,
            activity_expr().alias(ACTIVITY),
            pl.lit(None, dtype=pl.Float64).alias(HEADING_CHANGE_DEG),
            pl.lit(None, dtype=pl.String).alias(CONTEXT),
        )
        .with_columns(steady_expr().alias(STEADY))
        .select([pl.col(c).cast(t) for c, t in STRIDES_SCHEMA.items()])
    )


def _write_athlete(root: Path, spec: StoreSpec, i: int) -> int:
    from strideflow.analytics.pipeline import summarize_strides

    rng = np.random.default_rng([spec.seed, i])
    a = athlete_id(i)
    parts = [synthetic_strides(a, session_id(k), spec.strides_per_session, rng) for k in range(spec.sessions)]
    strides = pl.concat(parts)
    sessions, flags = summarize_strides(strides)
    start = FIRST_DATE + dt.timedelta(days=int(rng.integers(0, 7)))
    dates = {session_id(k): (start + dt.timedelta(days=10 * k)).isoformat() for k in range(spec.sessions)}
    sessions = sessions.with_columns(pl.col(SESSION_ID).replace_strict(dates).alias(SESSION_DATE))
    written = 0
    for k in range(spec.sessions):
        s = session_id(k)
        for table, df in (
            (partitions.STRIDES, strides),
            (partitions.SESSIONS, sessions),
            (partitions.FLAGS, flags),
        ):
            part = df.filter(pl.col(SESSION_ID) == s)
            partitions.write_partition(root, table, part, a, s)
            written += 1
    return written


def build_store(data_dir: Path, spec: StoreSpec) -> tuple[Path, dict]:
    """Write the results store and database for `spec` under `data_dir` (reused if complete).

    Returns (data_dir, info) with info = {"admin_key", "athlete_key", "athlete", "build_s"}.
    """
    from strideflow.service.auth import create_key
    from strideflow.service.catalog import sync_results
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=data_dir)
    done = data_dir / "bench-store.json"
    if done.is_file():
        info = json.loads(done.read_text())
        if info.get("spec") == asdict(spec):
            return data_dir, info | {"build_s": 0.0}
    shutil.rmtree(data_dir, ignore_errors=True)
    t0 = time.perf_counter()
    settings.results_dir.mkdir(parents=True)
    for i in range(spec.athletes):
        _write_athlete(settings.results_dir, spec, i)
    db = Database(settings.resolved_database_url)
    try:
        db.create_all()
        sync_results(db, settings.results_dir, TEAM)
        info = {
            "spec": asdict(spec),
            "admin_key": create_key(db, TEAM, "admin"),
            "athlete_key": create_key(db, TEAM, "athlete", athlete_id(0)),
            "athlete": athlete_id(0),
        }
    finally:
        db.dispose()
    info["build_s"] = time.perf_counter() - t0
    done.write_text(json.dumps(info))  # written last: a half-built store is rebuilt
    return data_dir, info


def index_store(data_dir: Path, database_url: str | None = None) -> float:
    """Bring the service's summary index and strides items of a (possibly older cached) store up to
    date, as `catalog.sync_results` and a first page do; returns the seconds it took.
    `database_url`: another database than the store's SQLite file (already registered)."""
    from strideflow.service import strides_page, summary_index
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=data_dir, database_url=database_url)
    t0 = time.perf_counter()
    db = Database(settings.resolved_database_url)
    try:
        db.create_all()
        summary_index.refresh(db, settings.results_dir)
    finally:
        db.dispose()
    strides_page.refresh_items(settings.results_dir)
    return time.perf_counter() - t0


def register_store(data_dir: Path, database_url: str) -> str:
    """Register the store's results in the (empty) database at `database_url` as `strideflow
    serve` on that database would see them after `catalog.sync_results`; returns an admin key."""
    from strideflow.service.auth import create_key
    from strideflow.service.catalog import sync_results
    from strideflow.service.db import Database

    db = Database(database_url)
    try:
        db.create_all()
        sync_results(db, data_dir / "results", TEAM)
        return create_key(db, TEAM, "admin")
    finally:
        db.dispose()


def cache_dir(spec: StoreSpec) -> Path:
    """Where the store of `spec` is kept between runs (outside the repository)."""
    base = os.environ.get("STRIDEFLOW_BENCH_CACHE") or Path(tempfile.gettempdir()) / "strideflow-bench-api"
    return Path(base) / spec.name()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`strideflow serve --data DIR` on a free loopback port, as a subprocess (context manager)."""

    def __init__(
        self, data_dir: Path, startup_timeout_s: float = 120.0, env: dict | None = None, workers: int = 1
    ):
        self.data_dir = data_dir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        self.env = env  # the server's environment (None: this process's)
        self.workers = workers  # `serve --workers`

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:  # refused while starting, or an HTTP error
            return False

    def __enter__(self) -> Server:
        self.log = tempfile.TemporaryFile()
        cmd = [sys.executable, "-c", "from strideflow.service.cli import main; main()"]
        cmd += ["serve", "--data", str(self.data_dir), "--port", str(self.port)]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = self.output()
                self.__exit__()
                raise RuntimeError(f"strideflow serve did not start:\n{text[-3000:]}")
            time.sleep(0.2)
        return self

    def pids(self) -> list[int]:
        """The server's processes: this one and its children (uvicorn workers, job workers)."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        return [proc.pid, *(p.pid for p in proc.children(recursive=True))]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def route_requests(spec: StoreSpec) -> dict[str, callable]:
    """Route name -> function(rng) giving (path, params) of one request for a random target."""

    session_s = MEAN_STRIDE_S * spec.strides_per_session / 2  # mean stride time x strides per foot

    def pick(rng: random.Random) -> tuple[str, str]:
        return athlete_id(rng.randrange(spec.athletes)), session_id(rng.randrange(spec.sessions))

    def athletes(rng):
        return "/v1/athletes", {"limit": 100}

    def sessions(rng):
        a, _ = pick(rng)
        return f"/v1/athletes/{a}/sessions", {}

    def strides(rng):
        a, s = pick(rng)
        t0 = rng.uniform(0.0, 0.5 * session_s)  # a window of 40 % of the session: a full page at 1M
        params = {ATHLETE_ID: a, "foot": "left", "t_from": t0, "t_to": t0 + 0.4 * session_s, "limit": 100}
        return f"/v1/sessions/{s}/strides", params

    def trends(rng):
        a, _ = pick(rng)
        return f"/v1/athletes/{a}/trends", {"metric": PRONATION_EXCURSION_DEG}

    return {"athletes": athletes, "sessions": sessions, "strides": strides, "trends": trends}


REQUESTS_PER_ROUTE = 2000  # request heads built per route and cycled (random targets)


def request_heads(spec: StoreSpec, host: str, port: int, key: str, name: str, seed: int) -> list[str]:
    """`REQUESTS_PER_ROUTE` request heads of route `name` for random targets (latin-1 text)."""
    make = route_requests(spec)[name]
    rng = random.Random(seed)
    return [
        loadgen.request_head(host, port, key, *make(rng)).decode("latin-1") for _ in range(REQUESTS_PER_ROUTE)
    ]


def _summary(phase: dict) -> dict:
    lat = np.asarray(phase["latencies_s"]) * 1000.0
    n = max(lat.size, 1)
    out = {
        "requests": int(lat.size),
        "requests_per_s": lat.size / phase["wall_s"],
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "client_cpu_ms": 1000.0 * phase["client_cpu_s"] / n,
        "errors": phase["errors"],
        "error_examples": phase["error_examples"],
    }
    if phase["server_cpu_s"] is not None:
        out["server_cpu_ms"] = 1000.0 * phase["server_cpu_s"] / n
    if phase.get("database_cpu_s") is not None:
        out["database_cpu_ms"] = 1000.0 * phase["database_cpu_s"] / n
    return out


def measure(
    base_url: str,
    key: str,
    spec: StoreSpec,
    duration_s: float,
    concurrency: int = CONCURRENCY,
    server_pid: int | list[int] | None = None,
    serial_duration_s: float | None = None,
    warmup_s: float = 1.0,
    database_match: str | None = None,
) -> dict:
    """Drive every route with `loadgen` in its own process: `concurrency` connections for
    `duration_s` each, then (if `serial_duration_s`) one connection. Per route: requests,
    requests_per_s, p50_ms, p99_ms, client_cpu_ms (the load generator's CPU per request), errors
    (count), error_examples and, given the server's pid or pids (Linux), server_cpu_ms (the
    server processes' CPU time per request) and, given `database_match` (text in the command
    line of a local PostgreSQL's backends of this run), database_cpu_ms; serial runs are under
    `serial.<route>`."""
    url = urlsplit(base_url)
    phases = []
    for i, name in enumerate(route_requests(spec)):
        heads = request_heads(spec, url.hostname, url.port, key, name, seed=i)
        phases.append({"name": name, "heads": heads, "concurrency": concurrency,
                       "duration_s": duration_s, "warmup_s": warmup_s})  # fmt: skip
        if serial_duration_s:
            phases.append({"name": f"serial.{name}", "heads": heads, "concurrency": 1,
                           "duration_s": serial_duration_s, "warmup_s": 0.2})  # fmt: skip
    pids = [server_pid] if isinstance(server_pid, int) else server_pid
    job = {"host": url.hostname, "port": url.port, "server_pids": pids, "phases": phases}
    if database_match:
        job["database_match"] = database_match
    proc = subprocess.run(
        [sys.executable, "-m", "strideflow.benchmarks._loadgen"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {name: _summary(phase) for name, phase in json.loads(proc.stdout)["phases"].items()}


def run(quick: bool = False) -> list[Row]:
    spec = QUICK if quick else FULL
    data_dir, info = build_store(cache_dir(spec), spec)
    stored = partitions.scan_table(data_dir / "results", partitions.STRIDES).select(pl.len()).collect().item()
    n_parts = sum(1 for _ in (data_dir / "results" / partitions.STRIDES).glob("*/*/" + partitions.PART_FILE))
    rows = [
        row("store.strides", stored, "strides"),
        row("store.partitions", n_parts, "athlete-sessions"),
        row(
            "store.build_s", info["build_s"], "s", "0: cached store reused" if info["build_s"] == 0 else None
        ),
    ]
    rows.append(row("store.index_s", index_store(data_dir), "s", "summary index brought up to date"))
    duration_s = QUICK_DURATION_S if quick else DURATION_S
    processes = _env_ints("STRIDEFLOW_BENCH_PROCESSES", (1,))
    pg_url = os.environ.get("STRIDEFLOW_BENCH_DATABASE_URL")
    if max(processes) > 1 and not pg_url:
        raise RuntimeError(
            "STRIDEFLOW_BENCH_PROCESSES > 1 needs STRIDEFLOW_BENCH_DATABASE_URL=postgresql+psycopg://... "
            "(a PostgreSQL server where the benchmark may create a throwaway database)"
        )
    for n in processes:
        if n == 1:
            with Server(data_dir) as server:
                results = measure(
                    server.base_url,
                    info["admin_key"],
                    spec,
                    duration_s=duration_s,
                    server_pid=server.pids(),
                    serial_duration_s=duration_s / 3,
                )
            rows += _route_rows("", spec, results, "one server process, the store's SQLite database")
            continue
        from sqlalchemy.engine import make_url

        from strideflow.benchmarks.stream import _postgres_database

        with _postgres_database(pg_url) as url:
            t0 = time.perf_counter()
            admin_key = register_store(data_dir, url)
            index_s = index_store(data_dir, url) + time.perf_counter() - t0
            rows.append(
                row(f"p{n}.store.index_s", index_s, "s", "store registered and indexed in PostgreSQL")
            )
            env = {**os.environ, "STRIDEFLOW_DATABASE_URL": url}
            with Server(data_dir, env=env, workers=n) as server:
                results = measure(
                    server.base_url,
                    admin_key,
                    spec,
                    duration_s=duration_s,
                    server_pid=server.pids(),
                    serial_duration_s=duration_s / 3,
                    database_match=f" {make_url(url).database} ",
                )
            rows += _route_rows(f"p{n}.", spec, results, f"serve --workers {n} on PostgreSQL")
    rows.append(
        row("machine.load_1min", os.getloadavg()[0], "load", "other work on the machine during the run")
    )
    return rows


def _env_ints(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = os.environ.get(name, "").strip()
    return tuple(int(x) for x in value.split(",") if x.strip()) if value else default


def _route_rows(prefix: str, spec: StoreSpec, results: dict, server_note: str) -> list[Row]:
    """The rows of one server set-up (`prefix` + route names)."""
    rows = []
    note = f"{CONCURRENCY} concurrent connections, admin key, client and server on the same cores"
    note += f"; {server_note}"
    for name in route_requests(spec):
        res, serial = results[name], results[f"serial.{name}"]
        rows.append(row(f"{prefix}{name}.requests_per_s", res["requests_per_s"], "req/s", note))
        note = None
        rows.append(row(f"{prefix}{name}.p50_ms", res["p50_ms"], "ms"))
        rows.append(row(f"{prefix}{name}.p99_ms", res["p99_ms"], "ms"))
        rows.append(
            row(
                f"{prefix}{name}.serial_p50_ms",
                serial["p50_ms"],
                "ms",
                "one connection: the server's own time",
            )
        )
        rows.append(
            row(
                f"{prefix}{name}.server_cpu_ms",
                res["server_cpu_ms"],
                "ms",
                "server processes' CPU time per request (concurrent run): the least load-dependent figure",
            )
        )
        rows.append(
            row(
                f"{prefix}{name}.client_cpu_ms",
                res["client_cpu_ms"],
                "ms",
                "load generator CPU time per request",
            )
        )
        if "database_cpu_ms" in res:
            rows.append(
                row(
                    f"{prefix}{name}.database_cpu_ms",
                    res["database_cpu_ms"],
                    "ms",
                    "PostgreSQL backends' CPU time per request (a server on this machine)",
                )
            )
        errors = res["errors"] + serial["errors"]
        examples = res["error_examples"] + serial["error_examples"]
        rows.append(row(f"{prefix}{name}.errors", errors, "requests", "; ".join(examples[:2]) or None))
    return rows
