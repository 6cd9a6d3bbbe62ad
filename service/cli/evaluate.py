"""`strideflow evaluate INPUT... --reference REF... --out DIR`: strideflow against a user's reference."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from strideflow.analytics.pipeline import AnalysisSettings, analyze_recording
from strideflow.hardware.schema import IC_T, STRIDE_INDEX
from strideflow.ingest import read_recording
from strideflow.service.cli import app
from strideflow.service.cli.analyze import FileFormat, Foot
from strideflow.service.report.evaluate import (
    ALL,
    GROUP,
    KINDS,
    EvaluationError,
    agreement_table,
    evaluate_pair,
    load_reference,
    parse_mapping,
    write_outputs,
)

RefKind = StrEnum("RefKind", {k: k for k in KINDS})


class ClockFitMode(StrEnum):
    none = "none"
    offset = "offset"
    offset_drift = "offset+drift"


def _detected(path: Path, read_kwargs: dict, settings: AnalysisSettings, console: Console) -> pl.DataFrame:
    """A strides table as given (Parquet with stride_index and ic_t), else a recording analysed."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            schema = pl.read_parquet_schema(path)
        except Exception:  # noqa: BLE001 - not Parquet after all: let ingest name the problem
            schema = None
        if schema is not None and STRIDE_INDEX in schema and IC_T in schema:
            return pl.read_parquet(path)
    recording = read_recording(path, **read_kwargs)
    result = analyze_recording(recording, settings)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    return result.strides


@app.command()
def evaluate(
    inputs: list[Path] = typer.Argument(
        ..., help="Recordings (any format analyze reads) or strides tables (strides.parquet) to score."
    ),
    reference: list[Path] = typer.Option(
        ...,
        "--reference",
        help="Reference file(s), one per input in the same order, or one for all: per-stride event times "
        "and/or values (CSV/Parquet), or footprint positions (# header, stride_number,x_m,y_m).",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: tables (Parquet+CSV), evaluation.json, report.html."
    ),
    ref_columns: str | None = typer.Option(
        None,
        "--ref-columns",
        help="Reference columns as canonical=column, e.g. ic_t=start,next_ic_t=end,foot=foot.",
    ),
    ref_kind: RefKind = typer.Option(
        RefKind.auto, "--ref-kind", help="events, values or footprints (auto detects)."
    ),
    ref_time_unit: str = typer.Option(
        "s", "--ref-time-unit", help="Unit of the reference's event times: s, ms, samples."
    ),
    ref_rate: float | None = typer.Option(None, "--ref-rate", help="Hz, for event times in samples."),
    match_on: str | None = typer.Option(None, "--match-on", help="Event to match strides on (default ic_t)."),
    tolerance_s: float = typer.Option(0.1, "--tolerance-s", help="Largest |time difference| of a match, s."),
    clock: ClockFitMode = typer.Option(
        ClockFitMode.none,
        "--fit-clock",
        help="Fit the reference clock to strideflow's: none, offset, offset+drift.",
    ),
    foot: Foot | None = typer.Option(
        None, "--foot", help="Foot of one-foot recordings (and of order-aligned references)."
    ),
    format: FileFormat = typer.Option(FileFormat.auto, "--format", help="Format of the recordings."),
    rate: float | None = typer.Option(None, "--rate", help="Sampling rate, Hz, for recordings without time."),
    columns: str | None = typer.Option(
        None, "--columns", help="Column mapping of the recordings (as analyze)."
    ),
    units: str | None = typer.Option(None, "--units", help="Units of the recordings (as analyze)."),
) -> None:
    """Score strideflow's strides against a reference: matching, Bland-Altman, ICC, plots."""
    console = Console()
    if len(reference) not in (1, len(inputs)):
        raise EvaluationError(
            f"{len(reference)} references for {len(inputs)} inputs: give one, or one per input"
        )
    mapping = parse_mapping(ref_columns)
    refs = [
        load_reference(p, kind=ref_kind.value, columns=mapping, time_unit=ref_time_unit, rate_hz=ref_rate)
        for p in reference
    ]
    read_kwargs = {
        "format": format.value,
        "sampling_rate_hz": rate,
        "foot": None if foot is None else foot.value,
        "columns": columns,
        "units": units,
    }
    settings = AnalysisSettings()
    results = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=len(inputs))
        for i, path in enumerate(inputs):
            progress.update(task, description=f"analysing {path.name}")
            strides = _detected(path, read_kwargs, settings, console)
            ref = refs[i if len(refs) > 1 else 0]
            for note in ref.notes:
                console.print(f"[yellow]note:[/] {note}", highlight=False)
            group = path.stem if len(inputs) > 1 else Path(ref.source).stem
            results.append(
                evaluate_pair(
                    strides,
                    ref,
                    group,
                    tolerance_s=tolerance_s,
                    match_on=match_on,
                    fit=clock.value,
                    foot=None if foot is None else foot.value,
                )
            )
            progress.advance(task)
    metrics = list(dict.fromkeys(m for r in results for m in r.metrics))
    pairs = pl.concat([r.pairs for r in results], how="diagonal_relaxed")
    detection = pl.DataFrame([r.detection for r in results])
    stats = agreement_table(pairs, metrics)
    kinds = {r.detection["kind"] for r in results}
    method = (
        "Strides matched one-to-one on event time within the tolerance"
        if "events" in kinds
        else "Footprints/values carry no time: strides aligned by order with the one shift that minimises "
        "the median absolute difference of stride length (analytics.evaluation.align_by_order)"
    )
    meta = {"inputs": [str(p) for p in inputs], "references": [r.source for r in refs], "method": method}
    write_outputs(out, detection, pairs, stats, meta)

    table = Table(title="detection")
    for c in (GROUP, "n_detected", "n_reference", "n_matched", "recall", "precision"):
        table.add_column(c, justify="right")
    for r in detection.iter_rows(named=True):
        table.add_row(
            r[GROUP], str(r["n_detected"]), str(r["n_reference"]), str(r["n_matched"]),
            f"{r['recall']:.2f}", f"{r['precision']:.2f}",
        )  # fmt: skip
    console.print(table)
    table = Table(title="agreement (strideflow - reference)")
    for c in (GROUP, "metric", "n", "bias", "sd", "LoA", "median |err|", "MAE", "ICC(2,1) [95% CI]"):
        table.add_column(c, justify="right")
    for r in stats.iter_rows(named=True):
        table.add_row(
            r[GROUP], r["metric"], str(r["n"]), f"{r['bias']:.3f}", f"{r['sd']:.3f}",
            f"{r['loa_low']:.3f} .. {r['loa_high']:.3f}", f"{r['median_abs_error']:.3f}", f"{r['mae']:.3f}",
            "-" if r["icc"] != r["icc"] else f"{r['icc']:.2f} [{r['icc_low']:.2f}, {r['icc_high']:.2f}]",
            style="bold" if r[GROUP] == ALL else None,
        )  # fmt: skip
    console.print(table)
    console.print(f"wrote {out}/report.html, evaluation.json, matches/agreement/detection .parquet and .csv")
