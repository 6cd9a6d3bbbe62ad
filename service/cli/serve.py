"""`strideflow serve [--host] [--port] [--data DIR]`: run the HTTP API with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from strideflow.service.cli import app


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
) -> None:
    """Serve the HTTP API (OpenAPI at /docs); uploads are analysed by worker processes."""
    import uvicorn

    from strideflow.service.app import create_app
    from strideflow.service.server import uvicorn_options
    from strideflow.service.settings import ServiceSettings

    overrides: dict = {}
    if data is not None:
        overrides["data_dir"] = data
    if job_workers is not None:
        overrides["job_workers"] = job_workers
    settings = ServiceSettings(**overrides)
    # The service's own log lines (job re-queues, errors) next to uvicorn's, in its format.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    service_log = logging.getLogger("strideflow")
    service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)
    # Read and idle timeouts (settings keep_alive_timeout_s, request_read_timeout_s, ws_ping_*).
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", **uvicorn_options(settings))
