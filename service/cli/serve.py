"""`strideflow serve [--host] [--port] [--data DIR] [--workers N]`: run the HTTP API with uvicorn."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from strideflow.service.cli import app

FACTORY = "strideflow.service.cli.serve:app_from_environment"


def _log_to_console() -> None:
    """The service's own log lines (job re-queues, errors) next to uvicorn's, in its format."""
    service_log = logging.getLogger("strideflow")
    if not service_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)


def app_from_environment():
    """The app of one `serve --workers N` process, with the settings of the `STRIDEFLOW_*`
    variables `serve` set (uvicorn imports this in every worker process)."""
    from strideflow.hardware.heap import settle_collector
    from strideflow.service.app import create_app
    from strideflow.service.server import ReadTimeoutProtocol, switch_interval
    from strideflow.service.settings import ServiceSettings

    settings = ServiceSettings()
    _log_to_console()
    switch_interval(settings)
    # uvicorn imports the protocol class by name in each worker; its timeout is set here
    ReadTimeoutProtocol.read_timeout_s = float(settings.request_read_timeout_s)
    served = create_app(settings)
    settle_collector()  # this server process's (strideflow.hardware.heap)
    return served


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="TCP port (0: any free port, logged)."),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="Data folder: database, uploads, results (default: STRIDEFLOW_DATA_DIR or ./strideflow-data).",
    ),
    job_workers: int | None = typer.Option(None, "--job-workers", min=1, help="Analysis worker processes."),
    analysis_workers: int | None = typer.Option(
        None,
        "--analysis-workers",
        min=0,
        help="Worker processes for the live streams' analysis (default: STRIDEFLOW_LIVE_ANALYSIS_WORKERS, "
        "else one per core shared by the server processes; 0: a thread of each server process).",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Server processes on the port (more than one needs a PostgreSQL store: "
        "STRIDEFLOW_DATABASE_URL=postgresql+psycopg://...).",
    ),
) -> None:
    """Serve the HTTP API (OpenAPI at /docs); uploads are analysed by worker processes."""
    import uvicorn

    from strideflow.hardware.heap import settle_collector
    from strideflow.service.app import create_app
    from strideflow.service.server import PROTOCOL, switch_interval, uvicorn_options
    from strideflow.service.settings import ServiceSettings

    overrides: dict = {}
    if data is not None:
        overrides["data_dir"] = data
    if job_workers is not None:
        overrides["job_workers"] = job_workers
    if analysis_workers is None and "STRIDEFLOW_LIVE_ANALYSIS_WORKERS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        analysis_workers = cores // workers if cores > 1 else 0
    if analysis_workers is not None:
        overrides["live_analysis_workers"] = analysis_workers
    settings = ServiceSettings(**overrides)
    _log_to_console()
    switch_interval(settings)  # each `--workers` process sets its own (app_from_environment)
    # Read and idle timeouts (settings keep_alive_timeout_s, request_read_timeout_s, ws_ping_*).
    options = uvicorn_options(settings)
    if workers == 1:
        served = create_app(settings)
        settle_collector()  # the server process's (strideflow.hardware.heap)
        uvicorn.run(served, host=host, port=port, log_level="info", **options)
        return
    if not settings.resolved_database_url.startswith("postgresql"):
        typer.echo(
            f"error: --workers {workers} needs a PostgreSQL store, whose LISTEN/NOTIFY carries live rows "
            "between the server processes; the embedded SQLite store serves one process. Set "
            "STRIDEFLOW_DATABASE_URL=postgresql+psycopg://user:password@host/db (or run --workers 1)",
            err=True,
        )
        raise typer.Exit(2)
    # The worker processes build their app from the environment (uvicorn imports FACTORY in each).
    if data is not None:
        os.environ["STRIDEFLOW_DATA_DIR"] = str(data.resolve())
    if job_workers is not None:
        os.environ["STRIDEFLOW_JOB_WORKERS"] = str(job_workers)
    os.environ["STRIDEFLOW_LIVE_ANALYSIS_WORKERS"] = str(settings.live_analysis_workers)
    options["http"] = PROTOCOL
    uvicorn.run(FACTORY, factory=True, workers=workers, host=host, port=port, log_level="info", **options)
