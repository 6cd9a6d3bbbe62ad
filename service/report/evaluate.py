"""`strideflow evaluate`: detected strides against a user's reference, as tables, JSON and one HTML page.

A reference is one of
- **events**: a table with per-stride event times (`ic_t`, `toe_off_t`, `next_ic_t`, ...) and
  optionally per-stride values (`stride_length_m`, `stance_time_s`, ...) and keys (`foot`, ...).
  Strides are matched one-to-one on one event time within a tolerance (`analytics.evaluation.
  match_strides`), after an optional clock fit (offset and drift, reported);
- **values**: per-stride values without times, in walking order: aligned by order (below);
- **footprints**: the positions of consecutive footprints of one foot (`# ...` comment line, then
  `stride_number,x_m,y_m`): stride k's length is the distance between footprints k-1 and k.
  Footprints carry no time, so the detected strides (in time order, valid or not) and the
  reference strides (in walking order) are aligned by one shift, the one that minimises the
  median absolute stride-length difference over their overlap (at least half of the shorter
  sequence, `analytics.evaluation.align_by_order`); every overlapping pair with a valid detected
  stride is a match. A stride missed or added in the middle of a walk shifts everything after it:
  those pairs stay in the statistics (they are real disagreement), which the reader sees as
  outliers in the Bland-Altman plot.

Columns of the reference are named with a mapping `canonical=column` (canonical names are the
`strides` table's: event times, metrics, `athlete_id`, `session_id`, `foot`); event times may be
given in s, ms or samples (with the rate). Agreement per metric (bias, SD, limits of agreement,
median absolute error, MAE, ICC(2,1) with 95 % CI) comes from `analytics.evaluation.agreement`,
per group (one group per recording/reference pair) and over all pairs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from strideflow.analytics.evaluation import (
    AGREEMENT_COLUMNS,
    DETECTED_ROW,
    REFERENCE_ROW,
    ClockFit,
    agreement,
    align_by_order,
    fit_clock,
    match_strides,
)
from strideflow.hardware.errors import StrideflowError
from strideflow.hardware.schema import (
    ATHLETE_ID,
    EVENT_TIMES,
    FEET,
    FOOT,
    IC_T,
    NEXT_IC_T,
    SESSION_ID,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    STRIDE_TIME_S,
    STRIDES_SCHEMA,
    TOE_OFF_T,
    VALID,
)
from strideflow.ingest.csvfile import foot_from_name

EVENTS, VALUES, FOOTPRINTS = "events", "values", "footprints"
KINDS = ("auto", EVENTS, VALUES, FOOTPRINTS)
TIME_UNITS = {"s": 1.0, "ms": 1e-3}
SAMPLES = "samples"
GROUP = "group"
ALL = "all"
_KEYS = (ATHLETE_ID, SESSION_ID, FOOT)
_METRICS = tuple(c for c, t in STRIDES_SCHEMA.items() if t.is_numeric() and c not in ("stride_index",))


class EvaluationError(StrideflowError):
    """A reference or an evaluation request that cannot be used; the message names file and field."""


@dataclass
class Reference:
    kind: str
    table: pl.DataFrame  # canonical column names; times in s
    source: str
    notes: list[str] = field(default_factory=list)


def parse_mapping(text: str | None) -> dict[str, str]:
    """`canonical=column,...` of the reference (`ic_t=start,foot=foot`)."""
    if not text or not text.strip():
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise EvaluationError(f"--ref-columns: {item.strip()!r} is not canonical=column")
        if key not in (*_KEYS, *_METRICS):
            raise EvaluationError(
                f"--ref-columns: {key!r} is not a strides column (event times, metrics, {', '.join(_KEYS)})"
            )
        out[key] = value
    return out


def _is_footprints(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines()[:3]]
    header = next((line for line in lines if line and not line.startswith("#")), "")
    cells = [c.strip().lower() for c in header.split(",")]
    return bool(lines) and lines[0].startswith("#") and "x_m" in cells and "y_m" in cells


def _read_table(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(path)
        return pl.read_csv(path, comment_prefix="#", infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise EvaluationError(f"{path}: cannot read the reference table ({exc})") from None


def load_footprints(path: Path) -> Reference:
    """Footprint positions -> one reference stride per consecutive pair (stride_length_m, m)."""
    table = _read_table(path)
    missing = [c for c in ("x_m", "y_m") if c not in table.columns]
    if missing:
        raise EvaluationError(f"{path}: no column {missing[0]} (columns: {table.columns})")
    try:
        xy = table.select("x_m", "y_m").cast(pl.Float64).to_numpy()
    except pl.exceptions.PolarsError:
        raise EvaluationError(f"{path}: x_m and y_m must be numbers") from None
    if not np.isfinite(xy).all():
        bad = int(np.flatnonzero(~np.isfinite(xy).all(axis=1))[0])
        raise EvaluationError(f"{path}, row {bad + 1} of the footprints: x_m or y_m is missing")
    if xy.shape[0] < 2:
        raise EvaluationError(f"{path}: fewer than two footprints")
    lengths = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    notes = []
    first = path.read_text(errors="replace").splitlines()[0]
    declared = dict(part.split("=", 1) for part in first.lstrip("# ").split() if "=" in part)
    n_declared = declared.get("numberOfStrides")
    if n_declared is not None and n_declared.isdigit() and int(n_declared) != lengths.size:
        notes.append(f"{path.name}: header says {n_declared} strides, positions give {lengths.size}")
    ref = pl.DataFrame({"reference_stride": np.arange(1, lengths.size + 1), STRIDE_LENGTH_M: lengths})
    return Reference(FOOTPRINTS, ref, str(path), notes)


def load_reference(
    path: str | Path,
    *,
    kind: str = "auto",
    columns: dict[str, str] | None = None,
    time_unit: str = "s",
    rate_hz: float | None = None,
) -> Reference:
    """Read a reference file (CSV or Parquet) into canonical columns; see the module doc."""
    path = Path(path)
    if kind not in KINDS:
        raise EvaluationError(f"--ref-kind {kind!r} is not one of {', '.join(KINDS)}")
    if not path.is_file():
        raise EvaluationError(f"{path}: reference file does not exist")
    if kind == FOOTPRINTS or (
        kind == "auto"
        and path.suffix.lower() == ".csv"
        and _is_footprints(path.read_text(errors="replace")[:4096])
    ):
        return load_footprints(path)
    table = _read_table(path)
    columns = columns or {}
    for canonical, column in columns.items():
        if column not in table.columns:
            raise EvaluationError(
                f"{path}: --ref-columns {canonical}={column}: no such column (columns: {table.columns})"
            )
    if table.height == 0:
        raise EvaluationError(f"{path}: no rows")
    seen = table.columns
    table = table.select(
        [pl.col(col).alias(can) for can, col in columns.items()]
        + [pl.col(c) for c in table.columns if c in (*_KEYS, *_METRICS) and c not in columns]
    )
    events = [c for c in EVENT_TIMES if c in table.columns]
    scale = TIME_UNITS.get(time_unit)
    if time_unit == SAMPLES:
        if rate_hz is None or not rate_hz > 0:
            raise EvaluationError(f"{path}: event times in samples need --ref-rate HZ")
        scale = 1.0 / rate_hz
    if scale is None:
        raise EvaluationError(f"--ref-time-unit {time_unit!r} is not s, ms or samples")
    numeric = [c for c in table.columns if c in _METRICS]
    for c in numeric:
        cast = table.get_column(c).cast(pl.Float64, strict=False)
        bad = cast.is_null() & table.get_column(c).is_not_null()
        if bad.any():
            row = int(bad.arg_max()) + 2
            raise EvaluationError(f"{path}, row {row}, column {columns.get(c, c)}: not a number")
        table = table.with_columns(cast.alias(c))
    table = table.with_columns([(pl.col(c) * scale).alias(c) for c in events])
    if FOOT in table.columns:
        feet = [foot_from_name(str(v)) if v not in FEET else v for v in table.get_column(FOOT).to_list()]
        if any(f is None for f in feet):
            bad = next(i for i, f in enumerate(feet) if f is None)
            raise EvaluationError(
                f"{path}, row {bad + 2}, column {columns.get(FOOT, FOOT)}: "
                f"{table[FOOT][bad]!r} is not left or right"
            )
        table = table.with_columns(pl.Series(FOOT, feet, dtype=pl.String))
    if IC_T in table.columns and NEXT_IC_T in table.columns and STRIDE_TIME_S not in table.columns:
        table = table.with_columns((pl.col(NEXT_IC_T) - pl.col(IC_T)).alias(STRIDE_TIME_S))
    if IC_T in table.columns and TOE_OFF_T in table.columns and STANCE_TIME_S not in table.columns:
        table = table.with_columns((pl.col(TOE_OFF_T) - pl.col(IC_T)).alias(STANCE_TIME_S))
    metrics = [c for c in table.columns if c in _METRICS]
    if not metrics:
        raise EvaluationError(
            f"{path}: no event time or per-stride value among the columns {seen}; "
            "name them with --ref-columns canonical=column (e.g. ic_t=start,stride_length_m=length)"
        )
    found = EVENTS if events else VALUES
    if kind not in ("auto", found):
        raise EvaluationError(
            f"{path}: --ref-kind {kind} but the reference has {'event times' if events else 'no event times'}"
        )
    return Reference(found, table, str(path))


@dataclass
class PairResult:
    """One recording (or strides table) against one reference."""

    group: str
    pairs: pl.DataFrame  # group, foot, detected_row, reference_row, <metric>_detected/_reference
    detection: dict
    metrics: list[str]


def _metric_pairs(
    detected: pl.DataFrame,
    reference: pl.DataFrame,
    det_rows: np.ndarray,
    ref_rows: np.ndarray,
    metrics: list[str],
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {DETECTED_ROW: det_rows, REFERENCE_ROW: ref_rows}
    for m in metrics:
        out[f"{m}_detected"] = detected.get_column(m).cast(pl.Float64).to_numpy()[det_rows]
        out[f"{m}_reference"] = reference.get_column(m).cast(pl.Float64).to_numpy()[ref_rows]
    return out


def evaluate_pair(
    detected: pl.DataFrame,
    reference: Reference,
    group: str,
    *,
    tolerance_s: float = 0.1,
    match_on: str | None = None,
    fit: str = "none",
    foot: str | None = None,
) -> PairResult:
    """Match one strides table to one reference and pair up every metric both have."""
    det = detected.sort(*[k for k in _KEYS if k in detected.columns], IC_T)
    ref = reference.table
    metrics = [m for m in ref.columns if m in _METRICS and m in det.columns]
    detection: dict = {GROUP: group, "reference": reference.source, "kind": reference.kind}
    if reference.kind == EVENTS:
        on = match_on or next((c for c in (IC_T, TOE_OFF_T, *EVENT_TIMES) if c in ref.columns), None)
        if on not in ref.columns or on not in det.columns:
            raise EvaluationError(f"{reference.source}: no event column {on!r} to match on")
        clock = ClockFit(0.0, 0.0, 0)
        if fit != "none":
            valid_det = det.filter(pl.col(VALID)) if VALID in det.columns else det
            clock = fit_clock(
                valid_det[on].to_numpy(), ref[on].to_numpy(), tolerance_s, fit_drift=fit == "offset+drift"
            )
            ref = ref.with_columns(
                [pl.Series(c, clock.apply(ref[c].to_numpy())) for c in EVENT_TIMES if c in ref.columns]
            )
        match = match_strides(det, ref, tolerance_s=tolerance_s, on=on)
        det_rows = match.matches[DETECTED_ROW].to_numpy()
        ref_rows = match.matches[REFERENCE_ROW].to_numpy()
        detection |= {
            "match_on": on,
            "tolerance_s": tolerance_s,
            "n_detected": match.n_detected,
            "n_reference": match.n_reference,
            "n_matched": match.n_matched,
            "recall": match.recall,
            "precision": match.precision,
            "clock_offset_s": clock.offset_s,
            "clock_drift_ppm": clock.drift * 1e6,
            "clock_pairs": clock.n_pairs,
        }
    else:
        feet = det[FOOT].unique().to_list() if FOOT in det.columns else []
        if foot is not None:
            det = det.filter(pl.col(FOOT) == foot)
        elif len(feet) > 1:
            raise EvaluationError(
                f"{reference.source}: the reference is one foot's strides in order, the recording has "
                "both feet: pass --foot"
            )
        if STRIDE_LENGTH_M in metrics or not metrics:
            key = STRIDE_LENGTH_M
        else:
            key = metrics[0]
        if key not in det.columns or key not in ref.columns:
            raise EvaluationError(f"{reference.source}: no {key} on both sides to align by order")
        shift, cost = align_by_order(det[key].to_numpy(), ref[key].to_numpy())
        n_det, n_ref = det.height, ref.height
        i = np.arange(max(0, -shift), min(n_det, n_ref - shift))
        valid = det[VALID].to_numpy()[i] if VALID in det.columns else np.ones(i.size, dtype=bool)
        det_rows, ref_rows = i[valid], (i + shift)[valid]
        n_valid = int(det[VALID].sum()) if VALID in det.columns else n_det
        detection |= {
            "match_on": f"order of {key}",
            "alignment_shift": int(shift),
            "alignment_median_abs": cost,
            "n_detected": n_valid,
            "n_reference": n_ref,
            "n_matched": int(det_rows.size),
            "recall": det_rows.size / n_ref if n_ref else math.nan,
            "precision": det_rows.size / n_valid if n_valid else math.nan,
        }
    cols = _metric_pairs(det, ref, det_rows, ref_rows, metrics)
    pairs = pl.DataFrame(cols).with_columns(pl.lit(group).alias(GROUP))
    if FOOT in det.columns:
        pairs = pairs.with_columns(pl.Series(FOOT, det[FOOT].to_numpy()[det_rows], dtype=pl.String))
    return PairResult(group, pairs, detection, metrics)


def agreement_table(pairs: pl.DataFrame, metrics: list[str]) -> pl.DataFrame:
    """Agreement per group and metric, then over all groups (`group` = "all")."""
    rows = []
    groups = pairs[GROUP].unique(maintain_order=True).to_list()
    for g in [*groups, ALL] if len(groups) > 1 else groups:
        part = pairs if g == ALL else pairs.filter(pl.col(GROUP) == g)
        for m in metrics:
            stats = agreement(part[f"{m}_detected"].to_numpy(), part[f"{m}_reference"].to_numpy())
            if m in EVENT_TIMES:  # clock times of a walk: ICC would only say time goes on
                stats |= {"icc": math.nan, "icc_low": math.nan, "icc_high": math.nan}
            rows.append({GROUP: g, "metric": m, **stats})
    schema = {GROUP: pl.String, "metric": pl.String, **{c: pl.Float64 for c in AGREEMENT_COLUMNS}}
    schema["n"] = pl.Int64
    return pl.DataFrame(rows, schema=schema)


# --- report -------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _unit(metric: str) -> str:
    """The unit in a column name (`stride_length_m` -> m); event times are in s."""
    if metric in EVENT_TIMES:
        return "s"
    suffix = metric.rsplit("_", 1)[-1]
    return {"m": "m", "s": "s", "deg": "deg", "dps": "deg/s", "mps": "m/s", "spm": "steps/min", "g": "g"}.get(
        suffix, "1"
    )


def metric_figure(pairs: pl.DataFrame, metric: str, stats: dict):
    """Identity plot (detected against reference) and Bland-Altman plot of one metric."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2))
    ax_id, ax_ba = fig.subplots(1, 2)
    unit = _unit(metric)
    groups = pairs[GROUP].unique(maintain_order=True).to_list()
    cmap = matplotlib.colormaps["tab10"]
    for i, g in enumerate(groups):
        part = pairs.filter(pl.col(GROUP) == g)
        d = part[f"{metric}_detected"].to_numpy()
        r = part[f"{metric}_reference"].to_numpy()
        color = cmap(i % 10)
        ax_id.scatter(r, d, s=12, color=color, label=g, alpha=0.8)
        ax_ba.scatter((d + r) / 2, d - r, s=12, color=color, alpha=0.8)
    d_all = pairs[f"{metric}_detected"].to_numpy()
    r_all = pairs[f"{metric}_reference"].to_numpy()
    ok = np.isfinite(d_all) & np.isfinite(r_all)
    if ok.any():
        lo, hi = float(min(d_all[ok].min(), r_all[ok].min())), float(max(d_all[ok].max(), r_all[ok].max()))
        ax_id.plot([lo, hi], [lo, hi], color="black", lw=1, label="identity")
    for value, style, label in (
        (stats["bias"], "-", f"bias {stats['bias']:.3g}"),
        (stats["loa_low"], "--", f"LoA {stats['loa_low']:.3g}"),
        (stats["loa_high"], "--", f"LoA {stats['loa_high']:.3g}"),
    ):
        if np.isfinite(value):
            ax_ba.axhline(value, color="black", ls=style, lw=1, label=label)
    ax_id.set_xlabel(f"reference ({unit})")
    ax_id.set_ylabel(f"strideflow ({unit})")
    ax_id.set_title(f"{metric}: identity")
    ax_ba.set_xlabel(f"mean of both ({unit})")
    ax_ba.set_ylabel(f"strideflow - reference ({unit})")
    ax_ba.set_title(f"{metric}: Bland-Altman (n = {stats['n']})")
    if len(groups) <= 12:
        ax_id.legend(fontsize=7)
    ax_ba.legend(fontsize=7)
    return fig


def _html_table(df: pl.DataFrame, digits: int = 4) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in df.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_outputs(
    out: Path, detection: pl.DataFrame, pairs: pl.DataFrame, stats: pl.DataFrame, meta: dict
) -> None:
    """matches / agreement / detection as Parquet and CSV, evaluation.json, report.html."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("matches", pairs), ("agreement", stats), ("detection", detection)):
        df.write_parquet(out / f"{name}.parquet")
        df.write_csv(out / f"{name}.csv")

    def clean(rows: list[dict]) -> list[dict]:
        return [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows
        ]

    summary = {**meta, "detection": clean(detection.to_dicts()), "agreement": clean(stats.to_dicts())}
    (out / "evaluation.json").write_text(json.dumps(summary, indent=2, default=str))
    overall = stats.filter(pl.col(GROUP) == ALL) if (stats[GROUP] == ALL).any() else stats
    figures = []
    for row in overall.iter_rows(named=True):
        fig = metric_figure(pairs, row["metric"], row)
        figures.append(
            f'<h3>{html.escape(row["metric"])}</h3><img alt="{html.escape(row["metric"])}" '
            f'src="data:image/png;base64,{_png(fig)}">'
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strideflow evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>strideflow against the reference</h1>
<p>{html.escape(meta.get("method", ""))}</p>
<h2>Detection</h2>{_html_table(detection)}
<h2>Agreement (detected - reference; LoA = bias &plusmn; 1.96 SD; ICC(2,1) with 95 % CI)</h2>
{_html_table(stats)}
<h2>Plots (all groups)</h2>{"".join(figures)}
</body></html>
"""
    (out / "report.html").write_text(page)
