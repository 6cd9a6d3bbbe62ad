"""GET /health: liveness without a key (database reachable, job queue length)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from strideflow.service.deps import DbDep
from strideflow.service.jobs import job_counts
from strideflow.service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(db: DbDep) -> Health:
    """200 while the service and its database answer; no API key needed."""
    counts = await run_in_threadpool(job_counts, db)
    return Health(jobs_queued=counts.get("queued", 0), jobs_running=counts.get("running", 0))
