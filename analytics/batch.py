"""Team-wide batch: every recording of a dataset directory through the pipeline, on Dask.

(Over ~500 lines: the worker's task, the run's bookkeeping and the local cluster's setup are one
feature whose resume and failure rules read best together; the analysis itself is
`analytics.session_analysis.analyze_session`.)

`TeamBatch(settings).run(dataset_dir, out_dir)` lists the recordings (`analytics.discovery`),
submits ONE Dask task per athlete-session (both feet together, since the `sessions` table holds
their symmetry) and collects one small dict per task as tasks finish. The task runs on the
worker: it reads the session's files there, analyses them (`analytics.session_analysis`) and writes its
partitions of `strides`, `sessions` (with `session_date`), `flags` and, when
`write_curves` is on, `curves` (per-session mean/SD curves, `analytics.curves.session_curves`) into
`out_dir/<table>/athlete_id=A/session_id=S/part-0.parquet` (`analytics.sessions_store`, the
session writer the service's upload jobs use too, over `analytics.partitions`). No table
ever travels back to the client, so the client's memory does not grow with the dataset. The
workers must see `dataset_dir` and `out_dir` at the same paths (one machine, or a shared file
system when `scheduler=` points to a cluster).

Failures: an exception while reading or analysing a file is caught in the task and reported
in `RunSummary.failures` (athlete, session, file, error type and message); the other files of
the session and all other sessions go on. A session none of whose files could be analysed loses
its old partitions (they no longer describe its data). A session with a failed file gets no
done-marker, so every later run tries it again. Partitions of sessions that have left the dataset
are left alone.

One source per session: the done-marker also says who wrote the session's partitions
(`"source": "batch"`). The service writes `"source": "upload"` or `"stream"` in the same place
when an upload job or a live stream stores a session (`write_marker`), e.g. after an upload
replaced one foot of a batch session (`replace=true`). A run into such an output directory
does not overwrite those sessions and does not skip them silently either: each is reported in
`RunSummary.failures` (error type `SourceConflict`, naming the source and the marker to delete
to give the session back to the batch).

Mountings: each athlete's sessions run in date order (each task waits for the athlete's previous
one; athletes run in parallel), reading the athlete's stored mountings before the analysis and
recording the ones used after it (`analytics.mountings`, `OUT/_mountings/<athlete>.json`), so a
pod's mounting is kept from session to session until a remount is detected.

Resuming: after a session's partitions are written, the task writes a done-marker
`out_dir/_state/<athlete>/<session>.json` (atomically) holding `content_sha256`, the sha256 of
the session's files' bytes together with what the dataset says about them (foot, format, rate,
date), and `pipeline_sha256`, the sha256 of the strideflow version, the `AnalysisSettings` repr
and whether curves are written. A re-run skips a session whose marker matches both and whose
partitions exist, and redoes it otherwise; the marker is removed before a session is
rewritten. Partitions are replaced atomically (`os.replace`), so a run killed at any moment
leaves each partition either old or new, never half-written; temporary files a killed run
leaves behind are removed when the session is next visited. Only one run may write to an output
directory at a time (an exclusive lock on `out_dir/_state/.lock`).

Memory allocation: the local cluster's workers start with glibc malloc settings (`_MALLOC_ENV`)
that undo a Dask default costing half again the task's time in page faults; workers of a cluster
at `scheduler=` keep whatever their own start gave them (export the same two variables, e.g.
`MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864`, in the environment of
`dask worker --no-nanny`, or set them under `distributed.nanny.pre-spawn-environ`).

Numbers in `RunSummary`: `samples` and `recording_s` count the sessions analysed in this run
(not the skipped ones); `recording_s` adds each session's duration once (its feet record at
the same time), so `realtime_factor = recording_s / wall_s` is in athlete-seconds per second.
`peak_rss_mb` is the largest sum of resident memory over the client process, its child
processes (a local cluster's workers) and, with `scheduler=`, the workers the scheduler
reports, sampled every `BatchSettings.memory_sample_s`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import polars as pl

from strideflow.analytics import partitions
from strideflow.analytics.discovery import COLUMNS, FORMAT, PATH, SAMPLING_RATE_HZ, UNITS, find_recordings
from strideflow.analytics.mountings import DEFAULT_DEVICE, prior_mountings, read_mountings, record_mountings
from strideflow.analytics.pipeline import AnalysisSettings
from strideflow.analytics.session_analysis import RecordingFile, analyze_session
from strideflow.analytics.sessions_store import write_session
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import ATHLETE_ID, FOOT, SESSION_DATE, SESSION_ID
from strideflow.ingest.durable import write_atomic

STATE_DIR = "_state"
LOCK_FILE = ".lock"
RUN_SUMMARY = "run_summary.json"
CURVE_POINTS = 101
DONE, SKIPPED, FAILED, PARTIAL = "done", "skipped", "failed", "partial"
SOURCE = "source"  # done-marker key: who wrote the session's partitions
BATCH_SOURCE, UPLOAD_SOURCE, STREAM_SOURCE = "batch", "upload", "stream"
_THREAD_ENV = (
    "POLARS_MAX_THREADS",
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


# glibc malloc of the local workers. Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536, which also
# switches off glibc's adaptive mmap threshold: every array above 128 kB is then mapped fresh and
# unmapped when freed, so each task page-faults through all its arrays again (measured: ~400 k
# faults and ~1 s of system time per athlete-hour, +50 % on the task). Arrays up to 32 MiB (a
# 200 Hz hour is 17 MB per (N, 3) float array) come from the heap instead, and up to 64 MiB of
# freed heap is kept for the next task; the worker's peak memory grows by about 0.1 GB.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20)}


class BatchError(StrideflowError):
    """A batch run that cannot start: no scheduler at the address, output directory in use, ..."""


@dataclass(frozen=True)
class BatchSettings:
    """How a team batch runs.

    - `workers`: worker processes of the local Dask cluster; None = one per `threads_per_worker`
      cores available to this process. Ignored with `scheduler`.
    - `scheduler`: address of a running `dask.distributed` scheduler (`tcp://HOST:PORT`); None
      starts a local cluster of processes for the run and stops it afterwards.
    - `threads_per_worker`: task threads per local worker; also the polars/numba/BLAS thread count
      set in the workers this run starts.
    - `analysis`: pipeline settings, the same for every recording (part of the resume key).
    - `write_curves`: also write the `curves` table: each session's mean and SD stance and stride
      curves per foot (`analytics.curves.session_curves`; the per-stride curves would be as long
      as the samples).
    - `sampling_rate_hz`: Hz, used for files without a time column that the manifest gives no rate.
    - `memory_sample_s`: s between two samples of the run's resident memory.
    - `connect_timeout_s`: s to wait for the scheduler at `scheduler`.
    """

    workers: int | None = None
    scheduler: str | None = None
    threads_per_worker: int = 1
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    write_curves: bool = True
    sampling_rate_hz: float | None = None
    memory_sample_s: float = 0.1
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class RunSummary:
    """Outcome of one `TeamBatch.run`, also written as `out_dir/run_summary.json`.

    Counts are of recordings (files) and of sessions; `failures` has one entry per failed file:
    {athlete_id, session_id, paths, error_type, error}. Times in s, memory in MB (10^6 bytes).
    `wall_s` is the whole run (discovery, cluster start, tasks, summary); `startup_s` its part
    until the Dask client was connected with its workers, `tasks_s` the part from submitting the
    first task to the last result (the rest is discovery and stopping a local cluster);
    `samples_per_s` and `realtime_factor` are over `wall_s`. `worker_peak_rss_mb` is the largest
    peak resident memory (getrusage) of one worker process that ran a task.
    `stage_s` sums each stage's seconds over all tasks (hash, read, analyze, analyze.<step> where
    the analyzer reports `timings_s_`, curves, write).
    """

    recordings_total: int
    recordings_done: int
    recordings_skipped: int
    recordings_failed: int
    sessions_total: int
    sessions_done: int
    sessions_skipped: int
    sessions_failed: int
    failures: tuple[dict, ...]
    samples: int
    recording_s: float
    wall_s: float
    startup_s: float
    tasks_s: float
    samples_per_s: float
    realtime_factor: float
    stage_s: dict[str, float]
    peak_rss_mb: float
    worker_peak_rss_mb: float
    workers: int
    scheduler: str
    pipeline_sha256: str

    def to_dict(self) -> dict:
        """JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["failures"] = [dict(f) for f in self.failures]
        return out


@dataclass(frozen=True)
class BatchProgress:
    """Passed to `run(progress=...)` after each session: counts so far and the session's result."""

    recordings_done: int  # finished in any way: analysed, skipped or failed
    recordings_total: int
    samples: int  # analysed so far
    wall_s: float
    last: dict

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0


FileJob = RecordingFile  # one file of a session as the worker needs it


@dataclass(frozen=True)
class SessionJob:
    """Everything one task needs: which files, where to write, with which settings."""

    athlete_id: str
    session_id: str
    session_date: str | None
    files: tuple[FileJob, ...]
    out_dir: str
    analysis: AnalysisSettings
    write_curves: bool
    pipeline_sha256: str


# --- helpers used on the worker -----------------------------------------------------------------


def pipeline_sha256(settings: BatchSettings) -> str:
    """Stable hash of what decides a session's output besides its files: version and settings."""
    try:
        version = metadata.version("strideflow")
    except metadata.PackageNotFoundError:
        version = "unknown"
    curves = f"{settings.write_curves}:session-summary:{CURVE_POINTS}"
    text = f"strideflow {version}\n{settings.analysis!r}\ncurves={curves}"
    return hashlib.sha256(text.encode()).hexdigest()


def content_sha256(job: SessionJob) -> str:
    """sha256 over each file's bytes and what the dataset says about it (foot, format, rate, date)."""
    outer = hashlib.sha256(f"date={job.session_date}\n".encode())
    for f in sorted(job.files, key=lambda f: (f.foot or "", f.path)):
        with open(f.path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        mapping = "" if f.columns is None and f.units is None else f"|{f.columns}|{f.units}"
        outer.update(f"{f.foot}|{f.format}|{f.sampling_rate_hz}{mapping}|{digest}\n".encode())
    return outer.hexdigest()


def marker_path(out_dir: str | Path, athlete_id: str, session_id: str) -> Path:
    """Done-marker of one session."""
    partitions.check_id(ATHLETE_ID, athlete_id)
    partitions.check_id(SESSION_ID, session_id)
    return Path(out_dir) / STATE_DIR / athlete_id / f"{session_id}.json"


def _read_marker(path: Path) -> dict | None:
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def read_marker(out_dir: str | Path, athlete_id: str, session_id: str) -> dict | None:
    """A session's done-marker (None if absent or unreadable); `marker.get(SOURCE, BATCH_SOURCE)`
    is who wrote its partitions (markers written before the key existed are the batch's)."""
    return _read_marker(marker_path(out_dir, athlete_id, session_id))


def write_marker(out_dir: str | Path, athlete_id: str, session_id: str, state: dict) -> Path:
    """Replace a session's marker atomically with `state` (which should name its SOURCE)."""
    path = marker_path(out_dir, athlete_id, session_id)
    write_atomic(path, json.dumps(state, indent=1).encode())
    return path


def _remove_leftovers(job: SessionJob) -> None:
    """Temporary files a killed run left in this session's partitions and next to its marker.

    Only this session's own: another task may be writing its marker in the same folder right now.
    """
    out = Path(job.out_dir)
    for table in partitions.TABLES:
        folder = partitions.partition_dir(out, table, job.athlete_id, job.session_id)
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
    marker = marker_path(out, job.athlete_id, job.session_id)
    if marker.parent.is_dir():
        for tmp in marker.parent.glob(f".{marker.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _error(exc: BaseException) -> tuple[str, str]:
    return type(exc).__name__, str(exc) or repr(exc)


def _add(stage_s: dict[str, float], name: str, seconds: float) -> None:
    stage_s[name] = stage_s.get(name, 0.0) + float(seconds)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # ru_maxrss is in KiB on Linux


def run_session(job: SessionJob, after: object = None) -> dict:
    """The Dask task: analyse one athlete-session and write its partitions; returns a small dict.

    Whatever goes wrong is reported in the dict (never raised), so one session cannot stop a run.
    `after`: the result of the athlete's previous session's task (ignored: passing its future
    makes Dask run the athlete's sessions in date order, so each finds the mountings the one
    before stored).
    """
    stage_s: dict[str, float] = {}
    paths = [f.path for f in job.files]
    base = {
        ATHLETE_ID: job.athlete_id,
        SESSION_ID: job.session_id,
        "paths": paths,
        "failed": [],
        "done_paths": [],
        "samples": 0,
        "recording_s": 0.0,
        "strides": 0,
        "stage_s": stage_s,
        "pid": os.getpid(),
        "polars_threads": pl.thread_pool_size(),
    }
    t_start = time.perf_counter()
    try:
        return _run_session(job, base, stage_s) | {"peak_rss_mb": _peak_rss_mb()}
    except Exception as exc:  # noqa: BLE001 - e.g. the output folder is not writable
        name, text = _error(exc)
        failed = [
            {
                "path": p,
                "error_type": name,
                "error": f"athlete {job.athlete_id}, session {job.session_id}: {text}",
            }
            for p in paths
        ]
        return base | {"status": FAILED, "failed": failed, "wall_s": time.perf_counter() - t_start}


def _run_session(job: SessionJob, base: dict, stage_s: dict[str, float]) -> dict:
    t_start = time.perf_counter()
    out = Path(job.out_dir)
    paths = base["paths"]
    marker = marker_path(out, job.athlete_id, job.session_id)
    t0 = time.perf_counter()
    try:
        content = content_sha256(job)
    except OSError as exc:
        name, text = _error(exc)
        return base | {
            "status": FAILED,
            "failed": [{"path": p, "error_type": name, "error": text} for p in paths],
        }
    _add(stage_s, "hash", time.perf_counter() - t0)
    _remove_leftovers(job)
    previous = _read_marker(marker)
    owner = (previous or {}).get(SOURCE, BATCH_SOURCE)
    if owner != BATCH_SOURCE:
        problem = (
            f"athlete {job.athlete_id}, session {job.session_id}: its results in {out} were written by "
            f"the service (source: {owner}), not by a batch run; not overwritten (delete {marker} to "
            "let the batch write this session again)"
        )
        failed = [{"path": p, "error_type": "SourceConflict", "error": problem} for p in paths]
        return base | {"status": FAILED, "failed": failed, "wall_s": time.perf_counter() - t_start}
    if (
        previous is not None
        and previous.get("content_sha256") == content
        and previous.get("pipeline_sha256") == job.pipeline_sha256
        and all(
            partitions.has_partition(out, t, job.athlete_id, job.session_id)
            for t in previous.get("tables", ())
        )
    ):
        return base | {"status": SKIPPED, "done_paths": [], "wall_s": time.perf_counter() - t_start}
    marker.unlink(missing_ok=True)

    # One file at a time, keeping only its strides (and curves): a task holds at most one file's
    # samples and signals, whatever the session's length. The feet are independent up to the
    # sessions table, which is built from the strides of all of them at the end.
    prior = prior_mountings(read_mountings(out, job.athlete_id), DEFAULT_DEVICE, job.session_id)
    outcome = analyze_session(
        job.files,
        job.analysis,
        athlete_id=job.athlete_id,
        session_id=job.session_id,
        curves=job.write_curves,
        curve_points=CURVE_POINTS,
        catch=Exception,  # any failure of one file is reported, the rest go on
        covered_feet="fail",
        mountings=prior,
    )
    for name, seconds in outcome.stage_s.items():
        _add(stage_s, name, seconds)
    failed = [
        {
            "path": x.file.path,
            "error_type": x.error_type,
            "error": f"{x.file.path}: {x.error}" if x.stage == "analyze" else x.error,
        }
        for x in outcome.failures
    ]
    done = outcome.analyzed
    if not done:
        for table in partitions.TABLES:
            partitions.delete_partition(out, table, job.athlete_id, job.session_id)
        return base | {"status": FAILED, "failed": failed, "wall_s": time.perf_counter() - t_start}
    stored = write_session(
        out,
        job.athlete_id,
        job.session_id,
        outcome.strides_parts,
        outcome.curves_parts if job.write_curves else None,
        session_date=job.session_date,
        settings=job.analysis,
    )
    _add(stage_s, "analyze", stored.summarize_s)
    t0 = time.perf_counter()
    record_mountings(out, job.athlete_id, job.session_id, DEFAULT_DEVICE, outcome.mountings_used())
    samples = sum(d.samples for d in done)
    recording_s = max(d.duration_s for d in done)
    if not failed:
        state = {
            SOURCE: BATCH_SOURCE,
            ATHLETE_ID: job.athlete_id,
            SESSION_ID: job.session_id,
            "content_sha256": content,
            "pipeline_sha256": job.pipeline_sha256,
            "tables": sorted(stored.tables),
            "paths": paths,
            "samples": samples,
            "recording_s": recording_s,
            "strides": stored.strides.height,
        }
        write_atomic(marker, json.dumps(state, indent=1).encode())
    _add(stage_s, "write", stored.write_s + time.perf_counter() - t0)
    return base | {
        "status": PARTIAL if failed else DONE,
        "failed": failed,
        "done_paths": [d.file.path for d in done],
        "samples": samples,
        "recording_s": recording_s,
        "strides": stored.strides.height,
        "warnings": sum(len(d.warnings) for d in done),
        "wall_s": time.perf_counter() - t_start,
    }


# --- the client side -------------------------------------------------------------------------


class _MemorySampler:
    """Peak of the summed resident memory of this process tree (and of remote workers)."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.client = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="strideflow-rss", daemon=True)

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        total, pids = 0, set()
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
                pids.add(proc.pid)
            except psutil.Error:
                continue
        if self.client is not None:
            try:
                workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
            except Exception:  # noqa: BLE001 - the memory probe must never break the run
                workers = ()
            for w in workers:
                if w.get("pid") not in pids:
                    total += int(w.get("metrics", {}).get("memory", 0) or 0)
        self.peak_bytes = max(self.peak_bytes, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> _MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("distributed", "dask", "tornado", "bokeh")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def local_worker_count(settings: BatchSettings) -> int:
    """Workers of the local cluster: `settings.workers`, else the usable cores / threads per worker."""
    if settings.workers is not None:
        return settings.workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, settings.threads_per_worker))


@contextlib.contextmanager
def _dask_client(settings: BatchSettings) -> Iterator[object]:
    import dask
    from distributed import Client, LocalCluster

    if settings.scheduler is not None:
        try:
            client = Client(settings.scheduler, timeout=f"{settings.connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise BatchError(f"cannot connect to the Dask scheduler at {settings.scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    threads = str(max(1, settings.threads_per_worker))
    thread_env = {name: threads for name in _THREAD_ENV}
    spawn_env = thread_env | _MALLOC_ENV
    # Thread-pool sizes must be in the environment before the worker process imports polars or
    # numba (a spawned child may re-import the caller's main module first), so they go in through
    # the nanny's pre-spawn environment; the nanny sets them in this process too, undone below.
    saved = {name: os.environ.get(name) for name in spawn_env}
    pre_spawn = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": pre_spawn | spawn_env}):
            cluster = LocalCluster(
                n_workers=local_worker_count(settings),
                threads_per_worker=max(1, settings.threads_per_worker),
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                # no dashboard, and its bare HTTP server on a free loopback port, not on 8787
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
                env=thread_env,
            )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    lock_path = out / STATE_DIR / LOCK_FILE
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchError(f"{out}: another strideflow batch is writing to this output directory") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def session_jobs(recordings: pl.DataFrame, out_dir: str | Path, settings: BatchSettings) -> list[SessionJob]:
    """One job per athlete-session of a `find_recordings` table."""
    key = pipeline_sha256(settings)
    jobs = []
    for (athlete, session), part in recordings.group_by(ATHLETE_ID, SESSION_ID, maintain_order=True):
        files = tuple(
            FileJob(
                path=r[PATH],
                foot=r[FOOT],
                format=r[FORMAT],
                sampling_rate_hz=r[SAMPLING_RATE_HZ]
                if r[SAMPLING_RATE_HZ] is not None
                else settings.sampling_rate_hz,
                columns=r.get(COLUMNS),
                units=r.get(UNITS),
            )
            for r in part.iter_rows(named=True)
        )
        jobs.append(
            SessionJob(
                athlete_id=athlete,
                session_id=session,
                session_date=part[SESSION_DATE][0],
                files=files,
                out_dir=str(Path(out_dir).resolve()),
                analysis=settings.analysis,
                write_curves=settings.write_curves,
                pipeline_sha256=key,
            )
        )
    return jobs


def replaced_sessions(dataset_dir: str | Path, out_dir: str | Path) -> list[tuple[str, str]]:
    """(athlete, session) of the dataset whose results in `out_dir` a batch run would replace with
    those of other files: a marker is there, and its files are not the dataset's files of that session."""
    recordings = find_recordings(dataset_dir)
    out = Path(out_dir)
    replaced = []
    for (athlete, session), part in recordings.group_by(ATHLETE_ID, SESSION_ID, maintain_order=True):
        previous = read_marker(out, athlete, session)
        if previous is None:
            continue
        before = {str(Path(p).resolve()) for p in previous.get("paths", ())}
        if before != {str(Path(p).resolve()) for p in part[PATH].to_list()}:
            replaced.append((athlete, session))
    return replaced


def _job_bytes(job: SessionJob) -> int:
    try:
        return sum(os.path.getsize(f.path) for f in job.files)
    except OSError:
        return 0


class TeamBatch:
    """Runs the pipeline over a dataset directory on Dask; see the module docstring."""

    def __init__(self, settings: BatchSettings = BatchSettings()):
        self.settings = settings

    def run(
        self,
        dataset_dir: str | Path,
        out_dir: str | Path,
        progress: Callable[[BatchProgress], None] | None = None,
    ) -> TeamBatch:
        """Analyse every session not already done; fills `summary_` (RunSummary) and `results_`."""
        from distributed import as_completed

        s = self.settings
        if s.workers is not None and s.workers < 1:
            raise BatchError(f"workers must be >= 1, got {s.workers}")
        if s.threads_per_worker < 1:
            raise BatchError(f"threads_per_worker must be >= 1, got {s.threads_per_worker}")
        t_start = time.perf_counter()
        recordings = find_recordings(dataset_dir)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        jobs = session_jobs(recordings, out, s)
        n_files = sum(len(j.files) for j in jobs)
        results: list[dict] = []
        stage_s: dict[str, float] = {}
        counts = {"files_done": 0, "samples": 0, "recording_s": 0.0}
        with _exclusive(out), _quiet_logs(), _MemorySampler(s.memory_sample_s) as memory:
            with _dask_client(s) as client:
                if s.scheduler is not None:
                    memory.client = client
                n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
                startup_s = time.perf_counter() - t_start
                by_key = {}
                t_tasks = time.perf_counter()
                last: dict[str, object] = {}  # athlete -> the future of their latest session
                for job in sorted(jobs, key=lambda j: (j.athlete_id, str(j.session_date), j.session_id)):
                    fut = client.submit(
                        run_session,
                        job,
                        last.get(job.athlete_id),
                        key=f"strideflow-session-{job.athlete_id}-{job.session_id}-{uuid.uuid4().hex[:8]}",
                        pure=False,
                        priority=_job_bytes(job),  # the largest sessions first: shorter tail
                    )
                    by_key[fut.key] = (fut, job)
                    last[job.athlete_id] = fut
                for fut in as_completed([f for f, _ in by_key.values()]):
                    job = by_key.pop(fut.key)[1]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker that died on this task
                        name, text = _error(exc)
                        res = {
                            ATHLETE_ID: job.athlete_id,
                            SESSION_ID: job.session_id,
                            "paths": [f.path for f in job.files],
                            "status": FAILED,
                            "failed": [
                                {"path": f.path, "error_type": name, "error": text} for f in job.files
                            ],
                            "samples": 0,
                            "recording_s": 0.0,
                            "stage_s": {},
                        }
                    fut.release()
                    results.append(res)
                    for name, seconds in res.get("stage_s", {}).items():
                        _add(stage_s, name, seconds)
                    counts["files_done"] += len(res["paths"])
                    counts["samples"] += res["samples"]
                    counts["recording_s"] += res["recording_s"]
                    if progress is not None:
                        progress(
                            BatchProgress(
                                recordings_done=counts["files_done"],
                                recordings_total=n_files,
                                samples=counts["samples"],
                                wall_s=time.perf_counter() - t_start,
                                last=res,
                            )
                        )
                tasks_s = time.perf_counter() - t_tasks
                memory.client = None  # the client closes next; the sampler must not use it
        wall_s = time.perf_counter() - t_start
        failures = tuple(
            {
                ATHLETE_ID: r[ATHLETE_ID],
                SESSION_ID: r[SESSION_ID],
                "paths": [f["path"]],
                "error_type": f["error_type"],
                "error": f["error"],
            }
            for r in sorted(results, key=lambda r: (r[ATHLETE_ID], r[SESSION_ID]))
            for f in r["failed"]
        )
        status = [r["status"] for r in results]
        skipped_files = sum(len(r["paths"]) for r in results if r["status"] == SKIPPED)
        self.results_ = sorted(results, key=lambda r: (r[ATHLETE_ID], r[SESSION_ID]))
        self.summary_ = RunSummary(
            recordings_total=n_files,
            recordings_done=sum(len(r.get("done_paths", ())) for r in results),
            recordings_skipped=skipped_files,
            recordings_failed=len(failures),
            sessions_total=len(jobs),
            sessions_done=status.count(DONE),
            sessions_skipped=status.count(SKIPPED),
            sessions_failed=status.count(FAILED) + status.count(PARTIAL),
            failures=failures,
            samples=counts["samples"],
            recording_s=counts["recording_s"],
            wall_s=wall_s,
            startup_s=startup_s,
            tasks_s=tasks_s,
            samples_per_s=counts["samples"] / wall_s if wall_s > 0 else 0.0,
            realtime_factor=counts["recording_s"] / wall_s if wall_s > 0 else 0.0,
            stage_s=dict(sorted(stage_s.items())),
            peak_rss_mb=memory.peak_bytes / 1e6,
            worker_peak_rss_mb=max((r.get("peak_rss_mb", 0.0) for r in results), default=0.0),
            workers=n_workers,
            scheduler=s.scheduler or "local",
            pipeline_sha256=pipeline_sha256(s),
        )
        write_atomic(out / RUN_SUMMARY, json.dumps(self.summary_.to_dict(), indent=1).encode())
        return self


def run_batch(
    dataset_dir: str | Path,
    out_dir: str | Path,
    settings: BatchSettings = BatchSettings(),
    progress: Callable[[BatchProgress], None] | None = None,
) -> RunSummary:
    """Shorthand for `TeamBatch(settings).run(dataset_dir, out_dir, progress).summary_`."""
    return TeamBatch(settings).run(dataset_dir, out_dir, progress).summary_
