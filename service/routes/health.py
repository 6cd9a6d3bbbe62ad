"""GET /health: liveness without a key (database reachable); job counts of the key's team with one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from strideflow.service.auth import _bearer, authenticate
from strideflow.service.deps import DbDep
from strideflow.service.jobs import job_counts
from strideflow.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(
    db: DbDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Health:
    """200 while the service and its database answer; no API key needed.

    Without a (valid) key it says nothing about any team; with one, the job counts are those of
    the key's team only.
    """
    principal = None
    if credentials is not None:
        principal = await run_in_threadpool(authenticate, db, credentials.credentials)
    if principal is None:
        await run_in_threadpool(db.ping)
        return Health()
    counts = await run_in_threadpool(job_counts, db, principal.team_id)
    return Health(jobs_queued=counts.get("queued", 0), jobs_running=counts.get("running", 0))
