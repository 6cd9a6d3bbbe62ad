"""Where the repository and the read-only shared data are, for tests in any folder."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
