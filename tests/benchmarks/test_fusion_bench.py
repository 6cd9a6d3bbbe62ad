"""`strideflow bench`: discovery, errors, report format; the fusion benchmark end to end (slow)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from strideflow.benchmarks._common import report, row
from strideflow.service.cli import bench as cmd_bench


def cli() -> typer.Typer:
    # a group app of its own, so the test does not depend on which other commands exist yet
    app = typer.Typer()
    app.command()(cmd_bench.bench)

    @app.command()
    def other() -> None:
        """Placeholder second command: makes typer treat the app as a group."""

    return app


def test_unknown_benchmark_lists_available_ones():
    assert "fusion" in cmd_bench.available_benchmarks()
    assert all(not n.startswith("_") for n in cmd_bench.available_benchmarks())
    result = CliRunner().invoke(cli(), ["bench", "nope", "--quick"])
    assert result.exit_code != 0
    assert isinstance(result.exception, cmd_bench.BenchmarkError)
    assert "unknown benchmark 'nope'" in str(result.exception)
    assert "fusion" in str(result.exception)


def test_report_writes_design_json(tmp_path):
    path = tmp_path / "out" / "r.json"
    rows = [
        row("strideflow.madgwick", 1.5e7, "samples/s"),
        row("gaitmap.madgwick", None, "samples/s", "absent"),
    ]
    report("fusion", rows, path)
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "fusion"
    assert isinstance(doc["machine"], str) and "cores" in doc["machine"]
    assert doc["rows"][0] == {"name": "strideflow.madgwick", "value": 1.5e7, "unit": "samples/s"}
    assert doc["rows"][1]["value"] is None and doc["rows"][1]["note"] == "absent"


@pytest.mark.slow
def test_fusion_benchmark_quick(tmp_path):
    path = tmp_path / "fusion.json"
    result = CliRunner().invoke(cli(), ["bench", "fusion", "--quick", "--json", str(path)])
    assert result.exit_code == 0, result.output
    doc = json.loads(path.read_text())
    values = {r["name"]: r for r in doc["rows"]}
    for name in (
        "ahrs.madgwick",
        "imufusion.ahrs",
        "strideflow.madgwick",
        "strideflow.madgwick_batched",
        "strideflow.mahony",
        "strideflow.fusion_stage",
    ):
        assert values[name]["unit"] == "samples/s"
        assert values[name]["value"] > 0
    assert values["strideflow.compile_cold_s"]["unit"] == "s"
    assert "gaitmap.madgwick" in values  # measured, or absent with the reason
    # a ratio is the quotient of the rows it names
    ratio = values["ratio.madgwick_vs_ahrs"]["value"]
    assert ratio == pytest.approx(values["strideflow.madgwick"]["value"] / values["ahrs.madgwick"]["value"])


def test_every_benchmark_module_is_registered_with_a_run():
    # pyproject's `strideflow.bench` entry points must list each public module of benchmarks/
    import importlib
    import pkgutil

    import strideflow.benchmarks as pkg

    modules = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    assert cmd_bench.available_benchmarks() == modules
    assert all(callable(importlib.import_module(f"strideflow.benchmarks.{m}").run) for m in modules)
