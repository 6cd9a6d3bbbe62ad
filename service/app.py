"""The FastAPI application: `create_app(settings)` wires storage, the job runner and every router."""

from __future__ import annotations

import shutil
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from strideflow.analytics.settings import AnalysisSettings
from strideflow.service.auth import KeyCache
from strideflow.service.db import Database
from strideflow.service.errors import install_error_handlers
from strideflow.service.instances import Instance
from strideflow.service.jobs import JobRunner
from strideflow.service.routes import routers
from strideflow.service.routes.recordings import INCOMING_DIR
from strideflow.service.settings import ServiceSettings

DESCRIPTION = """Per-stride pronation and toe-off metrics from shoe-mounted IMUs.

Every route except `/health` needs `Authorization: Bearer <key>` (`strideflow keys create`).
Admin and coach keys see their team, athlete keys only their own athlete; anything else is 404.
Lists answer `{"items": [...], "next_cursor": ...}`: pass `cursor=<next_cursor>` for the next page.
Errors answer `{"detail": "<what is wrong, naming the field>"}`.
"""


def _version() -> str:
    try:
        return version("strideflow")
    except PackageNotFoundError:
        return "0"


class SharedStoreError(RuntimeError):
    """Several server processes on one data folder without a store that connects them."""


def check_shared_store(db: Database, instance: Instance) -> None:
    """Refuse a second server process on the data folder when the store is the embedded SQLite:
    its live streams and subscribers would not see each other's (no broker between processes)."""
    if db.engine.dialect.name == "postgresql":
        return
    others = instance.others()
    if others:
        raise SharedStoreError(
            f"another strideflow server ({others[0]}) already serves the data folder "
            f"{instance.folder.parent} with the embedded SQLite store, which cannot connect the live "
            "streams of several server processes: stop it, or point every process at one PostgreSQL "
            "database (STRIDEFLOW_DATABASE_URL=postgresql+psycopg://...)"
        )


def create_app(settings: ServiceSettings | None = None, analysis: AnalysisSettings | None = None) -> FastAPI:
    """The service app. Its lifespan opens the database, starts the job worker (re-queueing jobs a
    crash left unfinished) and stops both on shutdown. `app.state.settings`, `app.state.db`,
    `app.state.jobs` (JobRunner), `app.state.analysis`: the analysis settings of upload jobs and
    live streams (`analysis`, default AnalysisSettings())."""
    settings = settings or ServiceSettings()
    analysis = analysis if analysis is not None else AnalysisSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for d in (settings.data_dir, settings.uploads_dir, settings.results_dir):
            d.mkdir(parents=True, exist_ok=True)
        # Uploads a crash interrupted before they were acknowledged: nobody holds a job for them.
        shutil.rmtree(settings.uploads_dir / INCOMING_DIR, ignore_errors=True)
        instance = Instance(settings.data_dir).acquire()
        db = Database(settings.resolved_database_url)
        try:
            check_shared_store(db, instance)
            await run_in_threadpool(db.create_all)
        except BaseException:
            instance.release()
            db.dispose()
            raise
        app.state.db = db
        app.state.instance = instance
        runner = await run_in_threadpool(JobRunner(settings, db, analysis, instance).start)
        app.state.jobs = runner
        try:
            yield
        finally:
            await run_in_threadpool(runner.stop)
            db.dispose()
            instance.release()

    app = FastAPI(
        title="strideflow",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.settings = settings
    app.state.analysis = analysis
    app.state.key_cache = KeyCache(settings.key_cache_s)
    install_error_handlers(app)
    for router in routers():
        app.include_router(router)
    return app
