"""HTTP routes, one module per resource; `routers()` lists every router `create_app` includes."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every router of the service (a new route module adds itself here, one line)."""
    from strideflow.service.routes import (
        athletes,
        curves,
        dashboard,
        flags,
        health,
        jobs,
        recordings,
        sessions,
        stream,
        streams,
    )

    return [
        health.router,
        recordings.router,
        jobs.router,
        athletes.router,
        sessions.router,
        curves.router,
        flags.router,
        dashboard.router,
        stream.router,
        streams.router,
    ]
