"""Settings of the HTTP service: one pydantic-settings class, read from `STRIDEFLOW_*` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from strideflow.ingest.limits import FileLimits

MIB = 1024 * 1024

# how the live streams' logs are made durable (`ServiceSettings.live_log_sync`)
LogSync = Literal["file_system", "files"]
LOG_SYNCS = get_args(LogSync)


class ServiceSettings(BaseSettings):
    """Where the service keeps its data and how much work it accepts.

    - `data_dir`: root of everything the service stores: the SQL database (by default), the
      uploaded files (`uploads/`) and the result tables (`results/`, the analytics.partitions
      layout that `strideflow batch --out <data_dir>/results` writes too).
    - `database_url`: SQLAlchemy URL; None means `sqlite:///<data_dir>/strideflow.db` (WAL mode,
      foreign keys on). A PostgreSQL URL works too.
    - `max_upload_bytes`: largest accepted recording file, bytes (default 256 MiB); larger -> 413.
    - `max_upload_rows` / `max_upload_columns` / `max_upload_decoded_bytes`: largest table an
      uploaded file may decode to (default 10 million rows, 256 columns, 1 GiB), checked from
      the Parquet metadata or by counting a CSV's (or inflating a gzip's) lines in chunks before
      the file is decoded (`ingest.limits`); larger -> 413.
    - `job_workers`: analysis worker processes (each a spawned process, not a thread).
    - `live_analysis_workers`: worker processes that run the live streams' analysis, each owning
      the analyzers of a disjoint set of streams (`service.live.workers`); 0 runs it on a thread of
      the server process. `strideflow serve` uses one per core unless this is set.
    - `live_store_process`: whether the live sessions are stored by a store process of each server
      process (`service.live.store_process`, at a lower CPU priority) instead of threads of the
      server process (off by default: an idle A/B at 128 pods showed no CPU saved by it and a higher
      p99, benchmarks/README.md, session 15).
    - `live_log_sync`: how the live streams' logs are made durable before their packets are
      acknowledged: "file_system" (default) makes the logs of one commit that share a file system
      durable with one `syncfs` of it (Linux 5.8 or later; elsewhere, and for a lone log, each is
      fsynced); "files" fsyncs each log. A syncfs also writes back whatever else waits to be
      written on that file system, so where other programs write much to the file system of
      `data_dir`, "files" keeps the acknowledgements from waiting for them.
    - `job_max_attempts`: runs of one job before a worker that keeps dying marks it failed.
    - `page_size_default` / `page_size_max`: rows per page of list routes when `limit` is not given
      / the largest `limit` accepted.
    - `stream_idle_timeout_s`: a live stream with no connection and no packet for this long is
      ended as if its client had sent `end` (results final and stored, log closed), s.
    - `keep_alive_timeout_s`: an idle HTTP keep-alive connection is closed after this, s
      (uvicorn `timeout_keep_alive`).
    - `request_read_timeout_s`: a client that sends no byte of its request (headers or body) for
      this long is disconnected, so slow clients cannot hold connections (s; `strideflow serve`'s
      HTTP protocol, `service.server.ReadTimeoutProtocol`).
    - `ws_ping_interval_s` / `ws_ping_timeout_s`: WebSocket pings; a peer that does not answer
      one within the timeout is disconnected (uvicorn `ws_ping_interval`/`ws_ping_timeout`).
    - `key_cache_s`: a server process remembers a valid API key for this long instead of looking
      it up on every request, so a revoked key stops working in every process within it (s; 0:
      looked up on every request).
    - `switch_interval_s`: how long a thread of a `strideflow serve` process may hold the
      interpreter while another waits for it (`sys.setswitchinterval`; Python's default 0.005 s).
      The event loop (frames in, acks, rows out) shares the interpreter with the live store's
      thread and waits up to the interval for it at each hand-over (`service.server.switch_interval`).
    - `access_log`: log a line per HTTP request (uvicorn's access log; off by default: formatting
      and writing it costs about as much as answering a cached request).
    """

    model_config = SettingsConfigDict(env_prefix="STRIDEFLOW_", extra="ignore")

    data_dir: Path = Path("strideflow-data")
    database_url: str | None = None
    max_upload_bytes: int = Field(default=256 * MIB, gt=0)
    max_upload_rows: int = Field(default=10_000_000, gt=0)
    max_upload_columns: int = Field(default=256, gt=0)
    max_upload_decoded_bytes: int = Field(default=1024 * MIB, gt=0)
    job_workers: int = Field(default=1, ge=1)
    live_analysis_workers: int = Field(default=0, ge=0)
    live_store_process: bool = False
    live_log_sync: LogSync = "file_system"
    job_max_attempts: int = Field(default=3, ge=1)
    page_size_default: int = Field(default=100, ge=1)
    page_size_max: int = Field(default=1000, ge=1)
    stream_idle_timeout_s: float = Field(default=1800.0, gt=0)
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    request_read_timeout_s: float = Field(default=30.0, gt=0)
    ws_ping_interval_s: float = Field(default=20.0, gt=0)
    ws_ping_timeout_s: float = Field(default=20.0, gt=0)
    key_cache_s: float = Field(default=1.0, ge=0)
    switch_interval_s: float = Field(default=0.0005, gt=0)
    access_log: bool = False

    @property
    def file_limits(self) -> FileLimits:
        """The upload limits as `ingest.limits.FileLimits`."""
        return FileLimits(self.max_upload_rows, self.max_upload_columns, self.max_upload_decoded_bytes)

    @property
    def results_dir(self) -> Path:
        """Root of the result tables (analytics.partitions layout)."""
        return self.data_dir / "results"

    @property
    def uploads_dir(self) -> Path:
        """Uploaded recording files, one folder per content hash."""
        return self.data_dir / "uploads"

    @property
    def resolved_database_url(self) -> str:
        """`database_url`, or the SQLite file inside `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'strideflow.db').resolve()}"
