"""Shared fixtures. Real recordings are read from ../shared/data/gaitmap_example (never copied)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from strideflow.analytics.pipeline import analyze_samples
from strideflow.benchmarks._common import SIMULATOR_ANALYSIS
from strideflow.hardware.simulator import SimulationSettings, Simulator

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "gaitmap_example"

# PostgreSQL runs of the service tests (.ci/run): with STRIDEFLOW_TEST_DATABASE_URL set to a
# server's maintenance database (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres),
# every service database the tests open in this process (a `sqlite:///<data_dir>/strideflow.db`)
# becomes a database of its own on that server, created on first use and dropped at the end, so
# each test's data folder still starts empty, as with SQLite.
TEST_DATABASE_URL = os.environ.get("STRIDEFLOW_TEST_DATABASE_URL")
_pg_databases: dict[str, str] = {}


def _pg_url_for(sqlite_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if sqlite_url not in _pg_databases:
        name = "sf_test_" + hashlib.sha1(sqlite_url.encode()).hexdigest()[:24]
        admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        _pg_databases[sqlite_url] = make_url(TEST_DATABASE_URL).set(database=name).render_as_string(False)
    return _pg_databases[sqlite_url]


if TEST_DATABASE_URL:
    from strideflow.service import db as _db

    _sqlite_init = _db.Database.__init__

    def _database_init(self, url: str):
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            # An empty file where the SQLite database would be: the CLI's "is there a database in
            # --data" check (service/cmd_keys.py) and served-folder detection look for it.
            sqlite_file = Path(url[len("sqlite:///") :])
            if sqlite_file.parent.is_dir():
                sqlite_file.touch()
            url = _pg_url_for(url)
        _sqlite_init(self, url)

    _db.Database.__init__ = _database_init


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases():
    yield
    if not _pg_databases:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in _pg_databases.values():
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real gaitmap example recordings; skips the test when it is absent."""
    if not (REAL_DATA / "imu_sample.csv").exists():
        pytest.skip(f"real recordings not found at {REAL_DATA} (needs ../shared/data/gaitmap_example)")
    return REAL_DATA


@pytest.fixture(scope="session")
def live_simulated():
    """(samples, rate, batch result) of two athletes walking and running 40 s, mounting rotated."""
    out = []
    for athlete in (1, 2):
        for activity in ("walk", "run"):
            sim = Simulator(
                SimulationSettings(
                    activity=activity,
                    duration_s=40.0,
                    seed=(athlete, 7),
                    athlete_id=f"A{athlete}",
                    session_id=activity,
                    keep_orientation=False,
                )
            ).simulate()
            fs = sim.settings.sampling_rate_hz
            out.append((sim.samples_, fs, analyze_samples(sim.samples_, fs, SIMULATOR_ANALYSIS)))
    return out


@pytest.fixture(scope="module")
def browser():
    """Chromium (tests/support/browser.py) under Playwright; skips when the package is missing.

    Per module: Playwright's sync API keeps an event loop running in the main thread while it is
    open, and later modules call asyncio.run()."""
    from support.browser import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright Python package is not installed"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
