"""Live-stream load: K simulated 200 Hz devices streaming to a `strideflow serve` on loopback.

For rising K, K devices (K/2 athletes x 2 feet, one connection each) stream while one coach
subscriber listens to the team. Each device first forwards `WARMUP_BURST_S` of data at once (the
live analyzer needs its 20 s warm-up before it emits strides; a gateway would forward its backlog
the same way); once the subscriber has seen strides of every device (the server has worked
through the backlogs), all stream `seconds` more at realtime pace. Latency counts only strides
closed by a realtime packet received at least `SETTLE_S` after that start.
Per K it reports:

- `stream.k<K>.samples_per_s`: samples acknowledged per second of the run (K x 200 when the
  server keeps up);
- `stream.k<K>.dropped_samples`: samples sent but never acknowledged, plus gaps (must be 0);
- `stream.k<K>.toe_off_latency_p50_ms` / `_p99_ms` (the issue's measure): from the
  acknowledgement of the packet that carries a stride's toe-off sample (the packet is then durably
  received) to the subscriber receiving that stride's metrics: the pronation and toe-off metrics
  of its `stance` message, which goes out as soon as the swing after the toe-off has begun;
- `stream.k<K>.latency_p50_ms` / `_p99_ms`: from the server receiving the packet that closes a
  stride (the final `stride` message's `received_at`) to the subscriber receiving the full row,
  on the same clock;
- `stream.k<K>.final_toe_off_latency_p50_ms` / `_p99_ms`: toe-off packet to the final row (it
  closes at the foot-flat after the next swing, seconds later by construction);
- `stream.max_k_p99_under_250ms`: the largest K with toe-off latency p99 < 250 ms and nothing
  dropped.

The server is a subprocess (`strideflow serve --port P --data DIR`), so the client process and
the server share the machine's cores, as a gateway on the same host would.
Environment: `STRIDEFLOW_BENCH_PROCESSES` (e.g. "1,2": one run per server process count, rows
`stream.p<N>.k<K>...` for N > 1, `serve --workers N` on a throwaway database created on the
PostgreSQL server of `STRIDEFLOW_BENCH_DATABASE_URL`), `STRIDEFLOW_BENCH_STREAM_KS` (e.g.
"8,16,24"), `STRIDEFLOW_BENCH_STREAM_SECONDS` (realtime seconds per level) and
`STRIDEFLOW_BENCH_STREAM_LOCKSTEP=1` (every athlete the same samples, as before session 7: all
strides of a level fall in the same packet periods, the worst case for latency). Devices start
staggered over one packet period, as real pods do not start in lockstep; each athlete starts at its
own point of the walk (shifts spread over `PHASE_SPREAD_S`, about one stride), as a team does not
walk in step. The server runs `strideflow serve`'s default live analysis workers (one per core)
unless `STRIDEFLOW_LIVE_ANALYSIS_WORKERS` is set; the first level starts once the server's
processes are idle (the workers' start-up is not counted in it).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from strideflow.benchmarks._common import row

SAMPLING_RATE_HZ = 200.0
LATENCY_LIMIT_MS = 250.0
WARMUP_BURST_S = 21.0  # > analytics.live_analyzer.LiveSettings().warmup_s, so strides flow in realtime
SETTLE_S = 1.0
PHASE_SPREAD_S = 1.2  # athletes' starts spread over about one stride (~1.1 s walking)
TEAM = "BENCH"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`strideflow serve` as a subprocess on loopback, for tests and benchmarks."""

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        log_path: str | Path | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
    ):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else self.data_dir / f"serve-{self.port}.log"
        self.env = env  # extra environment variables (e.g. STRIDEFLOW_DATABASE_URL)
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> Server:
        """Start and wait until GET /health answers 200."""
        import httpx

        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        cmd = [sys.executable, "-c", "from strideflow.service.cli import main; main()"]
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--data", str(self.data_dir)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen([*cmd, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"server did not answer /health within {timeout_s} s; log: {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server (SIGKILL by default: no shutdown code runs)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """Graceful stop (SIGTERM: the lifespan stores pending results)."""
        self.kill(signal.SIGTERM)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def create_api_key(
    data_dir: str | Path, team: str, role: str, athlete_id: str | None = None, athletes: tuple[str, ...] = ()
) -> str:
    """A key in the data folder's database (created if needed), as `strideflow keys create` makes.

    `athletes` are registered in the team first (`strideflow athletes add`): streams and uploads are
    accepted only for registered athletes.
    """
    from strideflow.service.auth import create_key
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=Path(data_dir))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.create_all()
        for registered in athletes:
            db.ensure_athlete(team, registered)
        return create_key(db, team, role, athlete_id)
    finally:
        db.dispose()


def _devices(k: int, seconds: float, lockstep: bool = False):
    """K devices: one simulated session's two feet per athlete. Each athlete starts at its own point
    of the walk (a shift of 0-`PHASE_SPREAD_S` s, spread evenly), as a team does not walk in step;
    `lockstep`: every athlete the same samples (shared arrays), so all strides fall in the same
    packet periods."""
    from strideflow.hardware.devices import SimulatedDevice
    from strideflow.hardware.simulator import SimulationSettings

    spread = 0.0 if lockstep else PHASE_SPREAD_S
    base = SimulatedDevice.simulate(
        SimulationSettings(
            duration_s=WARMUP_BURST_S + seconds + spread, sampling_rate_hz=SAMPLING_RATE_HZ, seed=11
        )
    )
    n = int(round((WARMUP_BURST_S + seconds) * SAMPLING_RATE_HZ))
    devices = []
    for i in range(k):
        athlete, src = i // 2, base[i % 2]
        device_id = f"b{athlete:03d}-{src.foot[0].upper()}"
        if lockstep:
            dev = src.renamed(device_id)
        else:
            # golden-ratio sequence: any number of athletes spread evenly over the shift range
            off = int(round(((athlete * 0.6180339887) % 1.0) * spread * SAMPLING_RATE_HZ))
            dev = _shifted(src, off, n, device_id)
        devices.append((f"ATH{athlete:03d}", dev))
    return devices


def _shifted(dev, start: int, n: int, device_id: str):
    """The device's samples [start, start + n) from t = 0 s, under another id."""
    from strideflow.hardware.devices import SimulatedDevice

    counts = dev.counts_[start : start + n].astype(float)
    return SimulatedDevice(
        dev.t_s[start : start + n] - dev.t_s[start],
        counts[:, :3] / dev.acc_scale,
        counts[:, 3:] / dev.gyr_scale,
        foot=dev.foot,
        device_id=device_id,
        sampling_rate_hz=dev.sampling_rate_hz,
        profile=dev.profile,
        samples_per_packet=dev.samples_per_packet,
    )


def _acked_time(series: list[tuple[float, int]], toe_off_t: float | None) -> float | None:
    """When (time.time) the device's packet holding the sample at `toe_off_t` (s from the stream's
    first sample) was acknowledged, i.e. durably received; None if unknown. `series` is in ack
    order, so its sample counts only grow: a binary search (a scan cost the client a growing share
    of its CPU as the run went on)."""
    if toe_off_t is None:
        return None
    index = int(round(toe_off_t * SAMPLING_RATE_HZ))
    i = bisect.bisect_right(series, index, key=lambda ack: ack[1])
    return series[i][0] if i < len(series) else None


async def _run_load(
    url: str, admin_key: str, coach_key: str, k: int, seconds: float, session: str, lockstep: bool = False
) -> dict:
    from websockets.asyncio.client import connect

    from strideflow.hardware.devices import stream_device

    devices = _devices(k, seconds, lockstep)
    for _, dev in devices:  # encoded before the run (cached per device): the load costs the client less
        for seq in range(dev.n_packets):
            dev.packet(seq)
    cpu0 = time.process_time()
    latencies: list[float] = []
    in_server: list[float] = []
    from_toe_off: list[float] = []  # ack of the packet carrying the toe-off -> stance message
    final_from_toe_off: list[float] = []  # ... -> final stride message
    strides_seen = 0
    period = devices[0][1].samples_per_packet / SAMPLING_RATE_HZ
    first_timed_seq = int(WARMUP_BURST_S / period)
    warmed_up: set[str] = set()  # devices whose warm-up strides have reached the subscriber
    all_warm = asyncio.Event()
    acks: dict[str, list[tuple[float, int]]] = {d.device_id: [] for _, d in devices}
    machine: list = [None, None]  # the machine's CPU times at the start and end of realtime
    async with connect(
        url + "/v1/stream/subscribe", additional_headers={"Authorization": f"Bearer {coach_key}"}, proxy=None
    ) as sub:
        json.loads(await sub.recv())
        live_from = [float("inf")]

        async def listen() -> None:
            nonlocal strides_seen
            async for raw in sub:
                now = time.time()
                msg = json.loads(raw)
                if msg.get("session_id") != session:
                    continue
                timed = msg.get("closed_by") == "packet" and msg["closed_by_seq"] >= first_timed_seq
                timed = timed and msg["received_at"] >= live_from[0] + SETTLE_S
                if msg.get("type") == "stance":
                    t_ack = _acked_time(acks[msg["device_id"]], msg.get("toe_off_t"))
                    if timed and t_ack is not None:
                        from_toe_off.append((now - t_ack) * 1e3)
                    continue
                if msg.get("type") != "stride":
                    continue
                strides_seen += 1
                warmed_up.add(msg["device_id"])
                if len(warmed_up) == k:
                    all_warm.set()
                if timed:
                    latencies.append((now - msg["received_at"]) * 1e3)
                    in_server.append((msg["published_at"] - msg["received_at"]) * 1e3)
                    t_ack = _acked_time(acks[msg["device_id"]], msg.get("toe_off_t"))
                    if t_ack is not None:
                        final_from_toe_off.append((now - t_ack) * 1e3)

        listener = asyncio.ensure_future(listen())

        async def after_burst() -> None:
            # Realtime starts once the server has analysed every device's warm-up backlog.
            await all_warm.wait()
            live_from[0] = min(live_from[0], time.time())
            if machine[0] is None:
                machine[0] = _machine_times()

        async def one(i: int, athlete: str, dev):
            await asyncio.sleep(period * i / max(k, 1))
            return await stream_device(
                dev,
                url,
                admin_key,
                athlete,
                session,
                speed="realtime",
                burst_s=WARMUP_BURST_S,
                after_burst=after_burst,
                on_ack=lambda r: acks[r.device_id].append((time.time(), r.samples_acked)),
            )

        reports = await asyncio.gather(*[one(i, a, d) for i, (a, d) in enumerate(devices)])
        machine[1] = _machine_times()
        await asyncio.sleep(0.5)  # strides closed by the last packets are still on their way
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    client_cpu_s = time.process_time() - cpu0
    sent = sum(r.samples for r in reports)
    acked = sum(r.samples_acked for r in reports)
    gaps = sum(b - a + 1 for r in reports for a, b in r.gaps)
    # Sustained rate: samples acknowledged across all devices over the realtime phase's middle.
    t_end = min(a[-1][0] for a in acks.values())
    t_begin = t_end - (seconds - SETTLE_S)

    def acked_at(series: list[tuple[float, int]], t: float) -> int:
        times = np.asarray([x for x, _ in series])
        i = int(np.searchsorted(times, t, side="right")) - 1
        return series[i][1] if i >= 0 else 0

    sustained = sum(acked_at(a, t_end) - acked_at(a, t_begin) for a in acks.values()) / (t_end - t_begin)
    lat = np.asarray(latencies)
    return {
        "k": k,
        "samples_per_s": sustained,
        "dropped": sent - acked + gaps,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "server_p99_ms": float(np.percentile(in_server, 99)) if in_server else float("nan"),
        "toe_off_p50_ms": float(np.percentile(from_toe_off, 50)) if from_toe_off else float("nan"),
        "toe_off_p99_ms": float(np.percentile(from_toe_off, 99)) if from_toe_off else float("nan"),
        "toe_off_timed": len(from_toe_off),
        "final_toe_off_p50_ms": (
            float(np.percentile(final_from_toe_off, 50)) if final_from_toe_off else float("nan")
        ),
        "final_toe_off_p99_ms": (
            float(np.percentile(final_from_toe_off, 99)) if final_from_toe_off else float("nan")
        ),
        "strides": strides_seen,
        "timed": int(lat.size),
        "client_cpu_s": client_cpu_s,
        **_machine_shares(*machine),
    }


def _env_ints(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    value = os.environ.get(name, "").strip()
    return tuple(int(x) for x in value.split(",") if x.strip()) if value else default


@contextlib.contextmanager
def _postgres_database(url: str):
    """A throwaway database on the PostgreSQL server of `url` (a SQLAlchemy URL), dropped afterwards."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    from strideflow.service.live.publish import psycopg_dsn

    name = f"sf_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(psycopg_dsn(url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _keys(data_dir: Path, url: str | None, athletes: tuple[str, ...]) -> tuple[str, str]:
    if url is None:
        return create_api_key(data_dir, TEAM, "admin", athletes=athletes), create_api_key(
            data_dir, TEAM, "coach"
        )
    from strideflow.service.auth import create_key
    from strideflow.service.db import Database

    db = Database(url)
    try:
        db.create_all()
        for athlete in athletes:
            db.ensure_athlete(TEAM, athlete)
        return create_key(db, TEAM, "admin"), create_key(db, TEAM, "coach")
    finally:
        db.dispose()


def _machine_times() -> tuple[float, float, float]:
    """The whole machine's CPU seconds so far, summed over its cores: (idle, steal, all)."""
    import psutil

    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    # guest time is counted in user time already (Linux)
    total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return idle, getattr(t, "steal", 0.0), total


def _machine_shares(start, end) -> dict:
    """Idle and steal over the realtime phase in % of all cores (NaN if it never began)."""
    if start is None or end is None or end[2] <= start[2]:
        return {"machine_idle_pct": float("nan"), "machine_steal_pct": float("nan")}
    span = end[2] - start[2]
    return {
        "machine_idle_pct": 100.0 * (end[0] - start[0]) / span,
        "machine_steal_pct": 100.0 * (end[1] - start[1]) / span,
    }


def _cpu_s(proc) -> tuple[float, float]:
    """CPU seconds of a server process and its children (uvicorn workers, job workers, live
    analysis workers), and of its live analysis workers alone."""
    import psutil

    total = analysis = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
            if any("worker_main" in part for part in p.cmdline()):  # service.live.workers
                analysis += t.user + t.system
    return total, analysis


def _settle(proc, quiet_s: float = 0.5, quiet_cpu_s: float = 0.05, timeout_s: float = 60.0) -> None:
    """Wait until the server and its children (the live analysis workers import the analysis when
    they start, ~1-2 s of CPU each after /health answers) use under `quiet_cpu_s` of CPU over
    `quiet_s`, so that the first level's CPU per stride counts that level's work only."""
    deadline = time.monotonic() + timeout_s
    before = _cpu_s(proc)[0]
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = _cpu_s(proc)[0]
        if now - before < quiet_cpu_s:
            return
        before = now


def run(quick: bool = False) -> list:
    """Rows for `strideflow bench stream` (see the module docstring)."""
    from strideflow.hardware.heap import settle_collector

    ks = (2, 8) if quick else (2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 200, 256)
    ks = _env_ints("STRIDEFLOW_BENCH_STREAM_KS", ks)
    seconds = float(os.environ.get("STRIDEFLOW_BENCH_STREAM_SECONDS") or (8.0 if quick else 30.0))
    processes = _env_ints("STRIDEFLOW_BENCH_PROCESSES", (1,))
    pg_url = os.environ.get("STRIDEFLOW_BENCH_DATABASE_URL")
    lockstep = os.environ.get("STRIDEFLOW_BENCH_STREAM_LOCKSTEP", "") not in ("", "0")
    if max(processes) > 1 and not pg_url:
        raise RuntimeError(
            "STRIDEFLOW_BENCH_PROCESSES > 1 needs STRIDEFLOW_BENCH_DATABASE_URL=postgresql+psycopg://... "
            "(a PostgreSQL server where the benchmark may create a throwaway database)"
        )
    rows: list = []
    load_before = os.getloadavg()[0]
    settle_collector()  # this bench process's load client, once (hardware.heap)
    for n in processes:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(_postgres_database(pg_url)) if n > 1 else None
            rows += _run_processes(n, ks, seconds, url, lockstep)
    rows.append(
        row(
            "machine.load_avg_1m",
            load_before,
            "runnable",
            f"before the run ({os.cpu_count()} cores); other processes take CPU from server and clients",
        )
    )
    return rows


def _run_processes(
    n: int, ks: tuple[int, ...], seconds: float, database_url: str | None, lockstep: bool = False
) -> list:
    """The rows of one process count (`serve --workers n`); names `stream.k...` for one process,
    `stream.p<n>.k...` for more."""
    from strideflow.hardware.devices import run_client

    prefix = "stream" if n == 1 else f"stream.p{n}"
    tmp = Path(tempfile.mkdtemp(prefix="strideflow-bench-stream-"))
    rows: list = []
    best_k = 0
    try:
        admin, coach = _keys(tmp, database_url, tuple(f"ATH{i:03d}" for i in range(max(ks) // 2)))
        env = None if database_url is None else {"STRIDEFLOW_DATABASE_URL": database_url}
        with Server(tmp, env=env, workers=n) as server:
            import psutil

            proc = psutil.Process(server.proc.pid)
            _settle(proc)
            for k in ks:
                (cpu0, analysis0), t0 = _cpu_s(proc), time.perf_counter()
                res = run_client(
                    _run_load(server.url, admin, coach, k, seconds, session=f"load-k{k}", lockstep=lockstep)
                )
                (cpu1, analysis1), t1 = _cpu_s(proc), time.perf_counter()
                busy = (cpu1 - cpu0) / (t1 - t0)
                strides_per_s = res["strides"] / (t1 - t0)
                rows += [
                    row(
                        f"{prefix}.k{k}.samples_per_s",
                        res["samples_per_s"],
                        "samples/s",
                        f"offered {k * SAMPLING_RATE_HZ:g}",
                    ),
                    row(f"{prefix}.k{k}.dropped_samples", res["dropped"], "samples"),
                    row(
                        f"{prefix}.k{k}.toe_off_latency_p50_ms",
                        res["toe_off_p50_ms"],
                        "ms",
                        "packet carrying a stride's toe-off acknowledged -> its stance metrics at the "
                        f"subscriber; {res['toe_off_timed']} strides timed",
                    ),
                    row(f"{prefix}.k{k}.toe_off_latency_p99_ms", res["toe_off_p99_ms"], "ms"),
                    row(
                        f"{prefix}.k{k}.latency_p50_ms",
                        res["p50_ms"],
                        "ms",
                        f"packet closing a stride received -> final row at the subscriber; "
                        f"{res['timed']} of {res['strides']} strides timed",
                    ),
                    row(f"{prefix}.k{k}.latency_p99_ms", res["p99_ms"], "ms"),
                    row(
                        f"{prefix}.k{k}.final_toe_off_latency_p50_ms",
                        res["final_toe_off_p50_ms"],
                        "ms",
                        "toe-off packet -> final row (closes at the foot-flat after the next swing)",
                    ),
                    row(f"{prefix}.k{k}.final_toe_off_latency_p99_ms", res["final_toe_off_p99_ms"], "ms"),
                    row(
                        f"{prefix}.k{k}.server_p99_ms",
                        res["server_p99_ms"],
                        "ms",
                        "closing packet received -> stride published, inside the server",
                    ),
                    row(
                        f"{prefix}.k{k}.server_cpu_pct",
                        100 * busy,
                        "%",
                        f"CPU of the {n} server process(es) over the whole level, incl. warm-up backlog "
                        "(100 = 1 core)",
                    ),
                    row(
                        f"{prefix}.k{k}.server_cpu_ms_per_stride",
                        1e3 * (cpu1 - cpu0) / max(res["strides"], 1),
                        "ms",
                        f"server CPU over the level / strides delivered ({strides_per_s:.0f} strides/s, "
                        "each with its stance row; all packet handling included)",
                    ),
                    row(
                        f"{prefix}.k{k}.server_outside_analysis_cpu_ms_per_stride",
                        1e3 * (cpu1 - cpu0 - (analysis1 - analysis0)) / max(res["strides"], 1),
                        "ms",
                        "the same without the live analysis worker processes: the server process(es) "
                        "(packets, logs, acks, messages to and from the workers, store, publishing)",
                    ),
                    row(
                        f"{prefix}.k{k}.client_cpu_pct",
                        100 * res["client_cpu_s"] / (t1 - t0),
                        "%",
                        "CPU of the benchmark's own process (devices and subscriber; packets encoded "
                        "before the run), on the same cores",
                    ),
                    row(
                        f"{prefix}.k{k}.machine_idle_pct",
                        res["machine_idle_pct"],
                        "%",
                        "of all cores, idle over the realtime phase (whole machine): near 0, the cores were "
                        "full, and every burst of work queues the packets behind it",
                    ),
                    row(
                        f"{prefix}.k{k}.machine_steal_pct",
                        res["machine_steal_pct"],
                        "%",
                        "of all cores, taken by the hypervisor over the realtime phase",
                    ),
                ]
                if res["dropped"] == 0 and res["toe_off_p99_ms"] < LATENCY_LIMIT_MS:
                    best_k = k
                else:
                    break
        note = (
            f"largest K of {list(ks)} ({seconds:g} s realtime each, {n} server process(es)) "
            f"with toe-off -> stance metrics p99 < {LATENCY_LIMIT_MS:g} ms, 0 dropped; athletes "
            + ("in lockstep" if lockstep else f"out of step (starts spread over {PHASE_SPREAD_S:g} s)")
        )
        if best_k == ks[-1]:
            note += "; not reached: try larger K"
        rows.append(row(f"{prefix}.max_k_p99_under_250ms", best_k, "devices", note))
        print(
            f"{n} process(es): largest K with toe-off latency p99 < {LATENCY_LIMIT_MS:g} ms and no "
            f"drops: {best_k}",
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
