"""GET /v1/jobs/{job_id}: status of an upload's analysis job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.concurrency import run_in_threadpool

from strideflow.service.auth import CurrentPrincipal, can_see, not_found
from strideflow.service.db import Job
from strideflow.service.deps import DbDep
from strideflow.service.schemas import READ_ERRORS, JobOut

router = APIRouter(prefix="/v1", tags=["jobs"])


def job_out(job: Job) -> JobOut:
    return JobOut(
        job_id=job.id,
        status=job.status,
        error=job.error,
        athlete_id=job.athlete_id,
        session_id=job.session_id,
        recording_ids=list(job.recording_ids or []),
        stride_count=job.stride_count,
        warnings=list(job.warnings or []),
        attempts=job.attempts,
        created=job.created,
        started=job.started,
        finished=job.finished,
    )


@router.get("/jobs/{job_id}", response_model=JobOut, responses=READ_ERRORS)
async def get_job(
    job_id: Annotated[str, Path(max_length=64)], principal: CurrentPrincipal, db: DbDep
) -> JobOut:
    """Status (queued / running / done / failed) and, when failed, the error naming the problem."""

    def load() -> JobOut | None:
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return None
            out = job_out(job)
        return out if can_see(principal, db.athlete_team(out.athlete_id), out.athlete_id) else None

    out = await run_in_threadpool(load)
    if out is None:
        raise not_found("job", job_id)
    return out
