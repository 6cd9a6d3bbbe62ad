"""Shared fixtures. Real recordings are read from ../shared/data/gaitmap_example (never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "gaitmap_example"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Folder of the real gaitmap example recordings; skips the test when it is absent."""
    if not (REAL_DATA / "imu_sample.csv").exists():
        pytest.skip(f"real recordings not found at {REAL_DATA} (needs ../shared/data/gaitmap_example)")
    return REAL_DATA
