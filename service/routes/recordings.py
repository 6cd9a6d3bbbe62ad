"""POST /v1/recordings: store an uploaded recording durably and queue its analysis job.

Order of work, so that an acknowledged upload is never lost and a bad one never stored:
1. the ids follow the one id rule (`hardware.ids`, 422), the key may upload for this athlete
   (403/404 otherwise, see service.auth), and the session has no results of another source
   (409 naming it: a live stream, or a team batch run unless the form says `replace=true`, which
   then replaces the uploaded foot's results only; see `results_source`);
2. the file is copied to a temporary name under `uploads_dir` with a running sha256 and a byte
   count (413 past `max_upload_bytes`; the whole request body is capped while it is read, too),
   then flushed with fsync;
3. the same bytes for the same athlete, session and foot answer the existing job (idempotent);
4. its decoded size is checked against `max_upload_rows`, `max_upload_columns` and
   `max_upload_decoded_bytes` from its metadata, before it is decoded (`ingest.limits`, 413);
   then `ingest.read_recording` validates it in a worker thread (422 naming the ingest problem);
5. the file moves to `uploads/<sha256>/<file name>` (os.replace, directory fsync), the recording
   and a queued job are committed in one transaction, and the answer is 202 {"job_id"}.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Annotated, BinaryIO

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from strideflow.analytics.batch import BATCH_SOURCE, SOURCE, STREAM_SOURCE, UPLOAD_SOURCE, read_marker
from strideflow.analytics.partitions import STRIDES, check_id, has_partition
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.ids import ID_MAX_LENGTH, ID_PATTERN
from strideflow.hardware.schema import ATHLETE_ID, SESSION_ID
from strideflow.ingest import ReadSettings, read_recording
from strideflow.ingest.durable import fsync_dir
from strideflow.ingest.limits import FileLimits, FileTooLarge, check_file_limits
from strideflow.ingest.screen import screen_samples
from strideflow.service.auth import CurrentPrincipal, not_found, require_writer
from strideflow.service.db import QUEUED, Database, DatabaseError, Job, RecordingRow
from strideflow.service.deps import DbDep, RunnerDep, SettingsDep
from strideflow.service.live import WAL_DIRNAME, has_live_logs
from strideflow.service.schemas import ErrorBody, FileFormat, Foot, JobAccepted
from strideflow.service.settings import ServiceSettings

log = logging.getLogger("strideflow.service")

CHUNK_BYTES = 1024 * 1024
INCOMING_DIR = ".incoming"  # under uploads_dir: files being received, not yet acknowledged
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the small form fields around the file
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, detail=f"form field 'file': larger than the limit of {limit} bytes")


class CappedUploadRoute(APIRoute):
    """Route whose request body is refused (413) once it passes the upload limit, before parsing.

    The check wraps `receive`, so it holds for chunked bodies without Content-Length too; the
    HTTPException raised inside body parsing reaches the JSON error handler unchanged.
    """

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def capped(request: Request):
            max_file = request.app.state.settings.max_upload_bytes
            limit = max_file + FORM_OVERHEAD_BYTES
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(max_file)
            receive = request.receive
            seen = 0

            async def counted():
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise _too_large(max_file)
                return message

            return await handler(Request(request.scope, counted))

        return capped


router = APIRouter(prefix="/v1", tags=["recordings"], route_class=CappedUploadRoute)

_READ = ReadSettings()
_ID = {"pattern": ID_PATTERN.pattern, "max_length": ID_MAX_LENGTH}


def safe_filename(name: str | None) -> str:
    """The uploaded file's base name reduced to [A-Za-z0-9._-] (it may carry the foot, e.g. x_left.csv)."""
    base = Path(name or "").name
    cleaned = _SAFE_NAME.sub("_", base).strip("._")[:120]
    return cleaned or "recording"


def _store_temporary(src: BinaryIO, tmp_dir: Path, filename: str, max_bytes: int) -> tuple[Path, str, int]:
    """Copy `src` to tmp_dir/filename with a running sha256; fsync; 413 past max_bytes."""
    tmp_dir.mkdir(parents=True)
    path = tmp_dir / filename
    digest = hashlib.sha256()
    size = 0
    with open(path, "wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return path, digest.hexdigest(), size


def _move_into_place(tmp_path: Path, uploads_dir: Path, sha256: str, filename: str) -> str:
    """Move the file to uploads/<sha256>/<filename> (content addressed); its path relative to uploads."""
    final_dir = uploads_dir / sha256
    final_dir.mkdir(parents=True, exist_ok=True)
    final = final_dir / filename
    if final.is_file():  # the same bytes under the same name are already stored
        tmp_path.unlink()
    else:
        os.replace(tmp_path, final)
        fsync_dir(final_dir)
        fsync_dir(uploads_dir)
    return f"{sha256}/{filename}"


def _existing_job(db: Database, dedup_key: str) -> str | None:
    with db.session() as s:
        return s.scalar(select(RecordingRow.job_id).where(RecordingRow.dedup_key == dedup_key))


def _register(db: Database, team_id: str, row: RecordingRow, session_date: dt.date | None) -> str:
    """Athlete, session, recording and a queued job in the database; the job id (existing on a race)."""
    db.ensure_athlete(team_id, row.athlete_id)
    db.ensure_session(row.athlete_id, row.session_id, session_date)
    job = Job(id=uuid.uuid4().hex, athlete_id=row.athlete_id, session_id=row.session_id, status=QUEUED)
    row.job_id = job.id
    try:
        with db.session() as s:
            s.add(job)
            s.flush()
            s.add(row)
    except IntegrityError:
        existing = _existing_job(db, row.dedup_key)
        if existing is None:
            raise
        return existing
    return job.id


def results_source(settings: ServiceSettings, db: Database, athlete_id: str, session_id: str) -> str | None:
    """Who stored this session's results: "stream", "upload", "batch", or None (nothing stored yet)."""
    if has_live_logs(settings.data_dir / WAL_DIRNAME, athlete_id, session_id):
        return STREAM_SOURCE
    if db.has_recordings(athlete_id, session_id):
        return UPLOAD_SOURCE
    marker = read_marker(settings.results_dir, athlete_id, session_id)
    if marker is not None:
        return marker.get(SOURCE, BATCH_SOURCE)
    # Partitions without a marker: a batch run that failed on a file of the session (it writes no
    # marker then); the service's own writers always leave one.
    return BATCH_SOURCE if has_partition(settings.results_dir, STRIDES, athlete_id, session_id) else None


def _check_source(
    settings: ServiceSettings, db: Database, athlete_id: str, session_id: str, replace: bool
) -> None:
    """409 naming the source when an upload would write into a session another source filled."""
    source = results_source(settings, db, athlete_id, session_id)
    where = f"session {session_id!r} of athlete {athlete_id!r}"
    if source == STREAM_SOURCE:
        raise HTTPException(
            409,
            detail=f"{where} is streamed live (source: stream); its stream log is the session's "
            "record, so an upload cannot replace it: upload into a new session id",
        )
    if source == BATCH_SOURCE and not replace:
        raise HTTPException(
            409,
            detail=f"{where} holds the results of a team batch run (source: batch); send replace=true "
            "to replace them for the uploaded foot (the other foot's are kept), or upload into a new "
            "session id",
        )


def _validate(path: Path, filename: str, limits: FileLimits, **kwargs) -> tuple[str, dt.date | None]:
    """Feet in the file ("left,right") and the day it says it was recorded (None if it does not);
    413 past the limits (checked before decoding), 422 naming the ingest problem (paths shown as
    the uploaded name)."""
    try:
        check_file_limits(path, limits, source=filename)
    except FileTooLarge as exc:
        raise HTTPException(413, detail=str(exc)) from None
    try:
        recording = read_recording(path, **kwargs)
        screen_samples(recording.samples, recording.sampling_rate_hz, recording.source)  # too short, standing
        started = recording.start_time
        return ",".join(recording.feet()), None if started is None else started.date()
    except StrideflowError as exc:
        raise HTTPException(422, detail=str(exc).replace(str(path), filename)) from None
    except Exception as exc:  # a reader bug must still answer as a rejected file, not a 500
        log.exception("ingest failed unexpectedly on an upload")
        raise HTTPException(
            422, detail=f"{filename}: cannot be read as a recording ({type(exc).__name__})"
        ) from None


@router.post(
    "/recordings",
    status_code=202,
    response_model=JobAccepted,
    responses={
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
        413: {"model": ErrorBody},
        422: {"model": ErrorBody},
    },
)
async def upload_recording(
    principal: CurrentPrincipal,
    settings: SettingsDep,
    db: DbDep,
    runner: RunnerDep,
    file: Annotated[UploadFile, File(description="Recording: CSV, gaitmap CSV or samples Parquet.")],
    athlete_id: Annotated[str, Form(**_ID)],
    session_id: Annotated[str, Form(**_ID)],
    # Optional fields are typed without None: a multipart field cannot be null, so the schema must
    # not offer null; leaving the field out gives the default.
    foot: Annotated[Foot, Form(description="Foot of a one-foot file without left/right in its name.")] = None,
    sampling_rate_hz: Annotated[
        float,
        Form(
            ge=_READ.min_rate_hz,
            le=_READ.max_rate_hz,
            description="Hz; needed for files without a time column (gaitmap: 204.8).",
        ),
    ] = None,
    format: Annotated[FileFormat, Form()] = FileFormat.auto,
    columns: Annotated[
        str,
        Form(
            max_length=2000, description="Column mapping for an unknown CSV: acc_x=COL,...,gyr_z=COL[,t=COL]."
        ),
    ] = None,
    units: Annotated[
        str, Form(max_length=200, description="Units of the file: acc=g|m/s^2,gyr=deg/s|rad/s.")
    ] = None,
    session_date: Annotated[
        dt.date,
        Form(
            description="Calendar date of the session, yyyy-mm-dd; default: the start time the file "
            "states (Physilog 'Created on', absolute timestamps), else the upload day (UTC)."
        ),
    ] = None,
    replace: Annotated[
        bool,
        Form(
            description="Replace the results a team batch run stored for this session, for the "
            "uploaded foot only (the other foot's batch results are kept). Without it such a session "
            "answers 409."
        ),
    ] = False,
) -> JobAccepted:
    """Store the file durably, validate it, and queue the analysis of its session: 202 {"job_id"}.

    Re-uploading the same bytes for the same athlete, session and foot answers the same job id.
    """
    check_id(ATHLETE_ID, athlete_id)
    check_id(SESSION_ID, session_id)
    require_writer(principal, athlete_id)
    # Only athletes registered in the key's team (`strideflow athletes add`, an athlete key, or a
    # synced batch): an unknown id and another team's id then answer the same 404, so an upload
    # cannot reveal which ids other teams use.
    owner = await run_in_threadpool(db.athlete_team, athlete_id)
    if owner != principal.team_id:
        raise not_found("athlete", athlete_id)

    # One source of results per session (batch, upload or stream): 409 naming the other one.
    await run_in_threadpool(_check_source, settings, db, athlete_id, session_id, replace)

    filename = safe_filename(file.filename)
    tmp_dir = settings.uploads_dir / INCOMING_DIR / uuid.uuid4().hex
    try:
        return await _accept(
            settings, db, runner, principal.team_id, file, filename, tmp_dir,
            athlete_id, session_id, foot, sampling_rate_hz, format, session_date,
            {"columns": columns or None, "units": units or None},
        )  # fmt: skip
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


async def _accept(
    settings: ServiceSettings,
    db: Database,
    runner,
    team_id: str,
    file: UploadFile,
    filename: str,
    tmp_dir: Path,
    athlete_id: str,
    session_id: str,
    foot: Foot | None,
    sampling_rate_hz: float | None,
    format: FileFormat,
    session_date: dt.date | None,
    read_options: dict[str, str | None],
) -> JobAccepted:
    tmp_path, sha256, size = await run_in_threadpool(
        _store_temporary, file.file, tmp_dir, filename, settings.max_upload_bytes
    )
    if size == 0:
        raise HTTPException(422, detail="form field 'file': the file is empty")
    foot_value = None if foot is None else foot.value
    dedup_key = f"{sha256}:{athlete_id}:{session_id}:{foot_value or '*'}"
    if any(read_options.values()):  # another mapping of the same bytes is another recording
        options_text = json.dumps(read_options, sort_keys=True)
        dedup_key += ":" + hashlib.sha256(options_text.encode()).hexdigest()[:16]
    existing = await run_in_threadpool(_existing_job, db, dedup_key)
    if existing is not None:
        return JobAccepted(job_id=existing)
    feet, recorded_on = await run_in_threadpool(
        _validate,
        tmp_path,
        filename,
        settings.file_limits,
        format=format.value,
        sampling_rate_hz=sampling_rate_hz,
        foot=foot_value,
        athlete_id=athlete_id,
        session_id=session_id,
        **read_options,
    )
    rel_path = await run_in_threadpool(_move_into_place, tmp_path, settings.uploads_dir, sha256, filename)
    row = RecordingRow(
        id=uuid.uuid4().hex,
        sha256=sha256,
        path=rel_path,
        filename=filename,
        size_bytes=size,
        athlete_id=athlete_id,
        session_id=session_id,
        foot=foot_value,
        feet=feet,
        format=format.value,
        sampling_rate_hz=sampling_rate_hz,
        read_options=json.dumps(read_options) if any(read_options.values()) else None,
        dedup_key=dedup_key,
    )
    # Every session has a date: the form's, else the recording's own start, else the upload day (UTC).
    session_date = session_date or recorded_on or dt.datetime.now(dt.UTC).date()
    try:
        job_id = await run_in_threadpool(_register, db, team_id, row, session_date)
    except DatabaseError:
        raise not_found("athlete", athlete_id) from None
    runner.wake()
    return JobAccepted(job_id=job_id)
