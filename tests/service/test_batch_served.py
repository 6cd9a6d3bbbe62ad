"""`strideflow batch` into a folder a server serves refuses to replace sessions with other files."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from strideflow.analytics.batch import read_marker
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.simulator import write_dataset
from strideflow.service.cli import _register
from strideflow.service.cli import app as cli

pytestmark = pytest.mark.slow


def _batch(dataset, out, *extra):
    return CliRunner().invoke(cli, ["batch", str(dataset), "--out", str(out), "--workers", "1", *extra])


def test_batch_refuses_to_replace_a_served_teams_sessions_unless_asked(tmp_path):
    _register()
    served, other = tmp_path / "served", tmp_path / "other"
    write_dataset(served, athletes=1, minutes=0.3, seed=1, activity="walk")
    write_dataset(other, athletes=1, minutes=0.3, seed=2, activity="walk")  # same ids A001/S01
    data = tmp_path / "data"
    data.mkdir()
    (data / "strideflow.db").write_bytes(b"")  # a served data folder: its results are what users see
    out = data / "results"
    assert _batch(served, out).exit_code == 0
    before = read_marker(out, "A001", "S01")
    assert _batch(served, out).exit_code == 0, "re-running the same files is no replacement"

    r = _batch(other, out)
    assert isinstance(r.exception, StrideflowError)
    assert "A001/S01" in str(r.exception) and "--replace" in str(r.exception)
    assert read_marker(out, "A001", "S01") == before, "a refused run must not touch the served results"

    r = _batch(other, out, "--replace")
    assert r.exit_code == 0, r.output
    assert read_marker(out, "A001", "S01")["paths"] != before["paths"]
