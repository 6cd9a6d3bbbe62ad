"""Durable analysis jobs: rows in the database, run in spawned worker processes.

An upload stores its file and a `queued` job in one transaction. `JobRunner` (one dispatcher
thread in the server) claims queued jobs oldest first, marks them `running` and hands them to a
`ProcessPoolExecutor` with the spawn start method (fork deadlocks polars), so the analysis never
runs in a request thread. A job analyses ALL stored recordings of its athlete-session and
replaces that session's partitions (strides, sessions, flags, curves) with
`analytics.sessions_store.write_session` (atomic per table, stale tables removed), so running a
job twice, or after a crash half-way, gives the same rows, never duplicates.

- Queued jobs of the same session are claimed together and share one run; two runs of one
  session never overlap (a later upload's job waits and then sees every recording).
- When several recordings cover the same foot, the newest upload of that foot is used.
- One source per session: the job marks the session `"source": "upload"` in the batch's
  done-marker (`analytics.batch.write_marker`, before writing, so a crash in between redoes the
  same thing). In a session a team batch filled (the upload route accepted it only with
  `replace=true`), the stored strides and curves of the feet no upload covers are kept (and listed
  in the marker's `batch_feet`, so later jobs keep them too): only the uploaded foot is replaced.
- A recording that cannot be analysed (e.g. no walking to align the mounting with) is listed in
  the job's warnings and the others are used; with none usable the job fails with each problem.
- On start, jobs left `running` by a crash are queued again (or failed after `job_max_attempts`).
- A worker process that dies (killed, out of memory) breaks the pool: it is replaced and the
  job re-queued until `job_max_attempts`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import func, select, text, update

from strideflow.analytics.settings import AnalysisSettings
from strideflow.hardware.errors import StrideflowError
from strideflow.service.db import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Athlete,
    Database,
    Job,
    RecordingRow,
    SessionRow,
    utcnow,
)
from strideflow.service.instances import Instance
from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service.jobs")

MAX_WARNINGS = 50  # warnings kept per job


class JobError(StrideflowError):
    """A job with no recording that could be analysed; the message lists each one's problem."""


# --- the work, in the worker process ------------------------------------------------------------
def _die_with_parent() -> None:
    """Pool initializer: on Linux, get SIGKILLed when the server process dies (no orphan workers)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def analyse_session(
    results_dir: str,
    athlete_id: str,
    session_id: str,
    session_date: str | None,
    recordings: list[dict],
    settings: AnalysisSettings | None = None,
) -> dict:
    """Analyse a session's recordings (newest first) and replace its partitions.

    Returns {"stride_count", "warnings", "recording_ids"} or {"error": message}; errors are
    returned, not raised, so that messages survive the trip between processes intact (with the
    stored file paths replaced by the uploaded file names). `settings`: the service's analysis
    settings (`JobRunner.analysis`, from `create_app`; None: the defaults).
    """
    settings = settings if settings is not None else AnalysisSettings()
    try:
        return _analyse_session(Path(results_dir), athlete_id, session_id, session_date, recordings, settings)
    except Exception as exc:
        msg = str(exc) or type(exc).__name__
        if not isinstance(exc, StrideflowError):
            msg = f"{type(exc).__name__}: {msg}"
        return {"error": _public(msg, recordings)}


def _public(text: str, recordings: list[dict]) -> str:
    for r in recordings:
        text = text.replace(r["path"], r["filename"])
    return text


def _analyse_session(
    results_dir: Path,
    athlete_id: str,
    session_id: str,
    session_date: str | None,
    recordings: list[dict],
    settings: AnalysisSettings,
) -> dict:
    from strideflow.analytics.mountings import (
        DEFAULT_DEVICE,
        prior_mountings,
        read_mountings,
        record_mountings,
    )
    from strideflow.analytics.session_analysis import RecordingFile, analyze_session
    from strideflow.analytics.sessions_store import write_session

    files = [
        RecordingFile(
            path=spec["path"],
            format=spec["format"],
            sampling_rate_hz=spec["sampling_rate_hz"],
            foot=spec["foot"],
            label=spec["filename"],
            columns=spec.get("columns"),
            units=spec.get("units"),
        )
        for spec in recordings
    ]
    ids = {spec["path"]: spec["id"] for spec in recordings}
    # Uploaded files carry no device id: an athlete's foot is taken as one device (DEFAULT_DEVICE),
    # whose stored mounting the batch and the upload jobs share (analytics.mountings).
    prior = prior_mountings(read_mountings(results_dir, athlete_id), DEFAULT_DEVICE, session_id)
    # One recording that cannot be analysed must not block the session's others; the newest
    # upload of a foot (recordings come newest first) is the one used.
    outcome = analyze_session(
        files,
        settings,
        athlete_id=athlete_id,
        session_id=session_id,
        curves=True,
        catch=StrideflowError,
        covered_feet="skip",
        mountings=prior,
    )
    errors = [f"{x.file.name}: {x.error}" for x in outcome.failures]
    if not outcome.analyzed:
        raise JobError("; ".join(errors) or "the session has no recordings")
    analyzed = {a.file.path: a for a in outcome.analyzed}
    skipped = {f.path for f in outcome.skipped}
    warnings = [f"not analysed: {e}" for e in errors]
    for f in files:  # in the order of the recordings
        if f.path in skipped:
            warnings.append(f"{f.name}: not used, newer uploads cover its feet")
        elif f.path in analyzed:
            warnings.extend(analyzed[f.path].warnings)
    covered = {foot for a in outcome.analyzed for foot in a.feet}
    strides_parts, curves_parts = outcome.strides_parts, outcome.curves_parts
    kept = _keep_batch_feet(results_dir, athlete_id, session_id, covered, strides_parts, curves_parts)
    if kept:
        warnings.append(
            f"kept the team batch's results of the {' and '.join(kept)} foot (no upload covers it)"
        )
    stored = write_session(
        results_dir,
        athlete_id,
        session_id,
        strides_parts,
        curves_parts,
        session_date,
        settings=settings,
    )
    record_mountings(results_dir, athlete_id, session_id, DEFAULT_DEVICE, outcome.mountings_used())
    warnings = [_public(w, recordings) for w in warnings]
    if len(warnings) > MAX_WARNINGS:
        warnings = [*warnings[:MAX_WARNINGS], f"{len(warnings) - MAX_WARNINGS} more warnings not listed"]
    return {
        "stride_count": stored.strides.height,
        "warnings": warnings,
        "recording_ids": [ids[a.file.path] for a in outcome.analyzed],
    }


def _keep_batch_feet(
    results_dir: Path,
    athlete_id: str,
    session_id: str,
    covered: set[str],
    strides_parts: list,
    curves_parts: list,
) -> list[str]:
    """Add the stored batch rows of feet no recording covers to the parts; mark the session an upload's.

    Returns the feet kept. Without a batch origin (no marker, or an upload's without `batch_feet`)
    nothing is kept: the session's results are its uploads' alone.
    """
    from strideflow.analytics.batch import BATCH_SOURCE, SOURCE, UPLOAD_SOURCE, read_marker, write_marker
    from strideflow.analytics.partitions import CURVES, STRIDES, read_partition
    from strideflow.hardware.schema import FOOT

    marker = read_marker(results_dir, athlete_id, session_id)
    stored = read_partition(results_dir, STRIDES, athlete_id, session_id)
    batch_feet: set[str] = set()
    if marker is not None and stored is not None:
        if marker.get(SOURCE, BATCH_SOURCE) == BATCH_SOURCE:
            batch_feet = set(stored.get_column(FOOT).unique().to_list())
        else:
            batch_feet = set(marker.get("batch_feet") or ())
    keep = sorted(batch_feet - covered)
    state = {SOURCE: UPLOAD_SOURCE, "batch_feet": keep}
    if marker is not None and marker.get(SOURCE, BATCH_SOURCE) == BATCH_SOURCE:
        state["replaced_batch_marker"] = marker
    elif marker is not None and "replaced_batch_marker" in marker:
        state["replaced_batch_marker"] = marker["replaced_batch_marker"]
    write_marker(results_dir, athlete_id, session_id, state)
    if keep:
        strides_parts.append(stored.filter(pl.col(FOOT).is_in(keep)))
        curves = read_partition(results_dir, CURVES, athlete_id, session_id)
        if curves is not None and FOOT in curves.columns and curves_parts:
            curves_parts.append(curves.filter(pl.col(FOOT).is_in(keep)))
    return keep


# --- the dispatcher, in the server process --------------------------------------------------------
@dataclass
class _Claim:
    job_ids: list[str]
    athlete_id: str
    session_id: str
    session_date: str | None
    recordings: list[dict]

    @property
    def key(self) -> tuple[str, str]:
        return (self.athlete_id, self.session_id)


def requeue_unfinished(
    db: Database, max_attempts: int, alive: Callable[[str | None], bool] | None = None
) -> int:
    """Queue jobs left `running` by a crash again (failed once they used `max_attempts`); how many.

    `alive(claimed_by)`: whether the server process that claimed a job still runs (its jobs are
    left alone); None: no other process, every running job is re-queued.
    """
    with db.session() as s:
        stale = s.scalars(select(Job).where(Job.status == RUNNING)).all()
        if alive is not None:
            stale = [job for job in stale if not alive(job.claimed_by)]
        for job in stale:
            if job.attempts >= max_attempts:
                job.status = FAILED
                job.error = f"interrupted {job.attempts} times (server or worker died); not retried"
                job.finished = utcnow()
            else:
                job.status = QUEUED
        return len(stale)


def job_counts(db: Database, team_id: str | None = None) -> dict[str, int]:
    """Number of jobs per status (of one team's athletes, if given)."""
    stmt = select(Job.status, func.count()).group_by(Job.status)
    if team_id is not None:
        stmt = stmt.join(Athlete, Athlete.id == Job.athlete_id).where(Athlete.team_id == team_id)
    with db.session() as s:
        rows = s.execute(stmt).all()
    return {status: n for status, n in rows}


def _lock_claims(s) -> None:
    """Serialise job claims of all server processes until the transaction ends, so that a
    session's jobs are claimed by one process and two runs of a session never overlap: a
    PostgreSQL transaction-level advisory lock; on SQLite a first write takes the database's
    write lock (and makes the transaction read the newest data)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(7215032)"))
    else:
        s.execute(update(Job).where(Job.id.is_(None)).values(status=Job.status))


class JobRunner:
    """Claims queued jobs and runs them in `settings.job_workers` spawned processes.

    Several server processes on one database each run a JobRunner: a claim marks the jobs
    `running` with this process's id (`claimed_by`) under a lock every process takes
    (`_lock_claims`), skipping sessions another process runs, so no job runs twice. Jobs of a
    process that died (its `service.instances` lock is free) are queued again by the others.
    """

    REQUEUE_INTERVAL_S = 10.0

    def __init__(
        self,
        settings: ServiceSettings,
        db: Database,
        analysis: AnalysisSettings | None = None,
        instance: Instance | None = None,
    ):
        self.settings = settings
        self.db = db
        self.analysis = analysis if analysis is not None else AnalysisSettings()
        self.instance = instance
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ProcessPoolExecutor | None = None
        self.stop_timeout_s = 30.0

    def start(self) -> JobRunner:
        """Re-queue crashed jobs and start the dispatcher thread."""
        n = requeue_unfinished(self.db, self.settings.job_max_attempts, self._alive)
        if n:
            log.info("re-queued %d job(s) interrupted by a previous shutdown", n)
        self._pool = self._new_pool()
        self._thread = threading.Thread(target=self._loop, name="strideflow-jobs", daemon=True)
        self._thread.start()
        return self

    @property
    def _alive(self) -> Callable[[str | None], bool] | None:
        return None if self.instance is None else self.instance.is_alive

    def wake(self) -> None:
        """Tell the dispatcher that a job was queued."""
        self._wake.set()

    def stop(self) -> None:
        """Finish running jobs (up to `stop_timeout_s`, then kill their workers: they stay queued)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.settings.job_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent,
        )

    def _loop(self) -> None:
        inflight: dict[Future, tuple[_Claim, ProcessPoolExecutor]] = {}
        last_requeue = time.monotonic()
        while not self._stopping.is_set():
            try:
                if self.instance is not None and time.monotonic() - last_requeue > self.REQUEUE_INTERVAL_S:
                    last_requeue = time.monotonic()
                    n = requeue_unfinished(self.db, self.settings.job_max_attempts, self._alive)
                    if n:
                        log.info("re-queued %d job(s) of a server process that died", n)
                free = self.settings.job_workers - len(inflight)
                if free > 0:
                    busy = {claim.key for claim, _ in inflight.values()}
                    for claim in self._claim(free, busy):
                        pool = self._pool
                        fut = pool.submit(
                            analyse_session,
                            str(self.settings.results_dir),
                            claim.athlete_id,
                            claim.session_id,
                            claim.session_date,
                            claim.recordings,
                            self.analysis,
                        )
                        inflight[fut] = (claim, pool)
                if inflight:
                    done, _ = wait(list(inflight), timeout=0.5, return_when=FIRST_COMPLETED)
                    for fut in done:
                        self._finish(*inflight.pop(fut), fut)
                else:
                    self._wake.wait(1.0)
                    self._wake.clear()
            except Exception:  # never let the dispatcher die; the job rows stay as they are
                log.exception("job dispatcher error")
                time.sleep(1.0)
        self._shutdown(inflight)

    def _shutdown(self, inflight: dict) -> None:
        if inflight:
            done, _ = wait(list(inflight), timeout=self.stop_timeout_s)
            for fut in done:
                self._finish(*inflight.pop(fut), fut)
        pool = self._pool
        if pool is None:
            return
        if inflight:
            # Jobs still running stay `running` in the database and are re-queued on the next start.
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def _claim(self, free: int, busy: set[tuple[str, str]]) -> list[_Claim]:
        claims: list[_Claim] = []
        with self.db.session() as s:
            _lock_claims(s)
            queued = s.scalars(select(Job).where(Job.status == QUEUED).order_by(Job.created, Job.id)).all()
            if not queued:
                return claims
            # sessions another server process runs now are not claimed (nor are this one's: busy)
            running = s.execute(select(Job.athlete_id, Job.session_id).where(Job.status == RUNNING)).all()
            busy = busy | {tuple(r) for r in running}
            groups: dict[tuple[str, str], list[Job]] = {}
            for job in queued:
                key = (job.athlete_id, job.session_id)
                if key not in busy and (key in groups or len(groups) < free):
                    groups.setdefault(key, []).append(job)
            now = utcnow()
            for (athlete_id, session_id), jobs in groups.items():
                for job in jobs:
                    job.status, job.started, job.finished, job.error = RUNNING, now, None, None
                    job.attempts += 1
                    job.claimed_by = None if self.instance is None else self.instance.id
                rows = s.scalars(
                    select(RecordingRow)
                    .where(RecordingRow.athlete_id == athlete_id, RecordingRow.session_id == session_id)
                    .order_by(RecordingRow.created.desc(), RecordingRow.id)
                ).all()
                date = s.scalar(
                    select(SessionRow.session_date).where(
                        SessionRow.athlete_id == athlete_id, SessionRow.session_id == session_id
                    )
                )
                uploads = self.settings.uploads_dir
                specs = [
                    {
                        "id": r.id,
                        "path": str((uploads / r.path).resolve()),
                        "filename": r.filename,
                        "foot": r.foot,
                        "format": r.format,
                        "sampling_rate_hz": r.sampling_rate_hz,
                        **(json.loads(r.read_options) if r.read_options else {}),
                    }
                    for r in rows
                ]
                claims.append(
                    _Claim(
                        [j.id for j in jobs],
                        athlete_id,
                        session_id,
                        None if date is None else date.isoformat(),
                        specs,
                    )
                )
        return claims

    def _index(self, claim: _Claim) -> None:
        """Rebuild the API's index rows and strides items of a session just written (before its jobs
        show done)."""
        from strideflow.service import strides_page, summary_index

        try:
            summary_index.refresh(self.db, self.settings.results_dir, [claim.athlete_id])
            strides_page.ensure_items(self.settings.results_dir, claim.athlete_id, claim.session_id)
        except Exception:  # index and items rebuild themselves on the next read; the results are stored
            log.exception("indexing athlete %r, session %r failed", claim.athlete_id, claim.session_id)

    def _finish(self, claim: _Claim, pool: ProcessPoolExecutor, fut: Future) -> None:
        now = utcnow()
        try:
            out = fut.result()
        except Exception as exc:  # the worker process died: BrokenProcessPool, or cancelled at shutdown
            if isinstance(exc, BrokenProcessPool) and pool is self._pool and not self._stopping.is_set():
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            if self._stopping.is_set():
                return  # stays running -> re-queued on the next start
            with self.db.session() as s:
                for job in s.scalars(select(Job).where(Job.id.in_(claim.job_ids))).all():
                    if job.attempts >= self.settings.job_max_attempts:
                        job.status, job.finished = FAILED, now
                        job.error = f"the analysis worker died ({type(exc).__name__}) {job.attempts} times"
                    else:
                        job.status = QUEUED
            return
        values: dict = {"finished": now}
        if "error" not in out:
            self._index(claim)
        if "error" in out:
            values.update(status=FAILED, error=out["error"])
        else:
            values.update(
                status=DONE,
                error=None,
                stride_count=out["stride_count"],
                warnings=out["warnings"],
                recording_ids=out["recording_ids"],
            )
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id.in_(claim.job_ids)).values(**values))
