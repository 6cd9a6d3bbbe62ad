"""Shared fixtures. Real recordings are read from ../shared/data/gaitmap_example (never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strideflow.analytics.pipeline import analyze_samples
from strideflow.benchmarks._common import SIMULATOR_ANALYSIS
from strideflow.hardware.simulator import SimulationSettings, Simulator

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "gaitmap_example"


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
