"""Rendering the athlete report: one self-contained HTML file (inline CSS and SVG, nothing fetched).

`render_html(data)` draws a `ReportData`: summary table, pronation over stance, pitch over the
stride, metric distributions, trends against the baseline band, and the flags in plain words with
their heuristic thresholds. `write_report` writes it to a file.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from strideflow.analytics.curves import CURVES_SCHEMA, curve_summary
from strideflow.analytics.flags import (
    FLAG,
    FlagSettings,
)
from strideflow.analytics.sessions import STRIDE_COUNT_ALL, symmetry_text
from strideflow.hardware.schema import (
    ACTIVITY,
    CADENCE_SPM,
    FEET,
    FOOT,
    FOOT_STRIKE_ANGLE_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    PUSH_OFF_RATE_DPS,
    SESSION_ID,
    STANCE_TIME_S,
    STRIDE_COUNT,
    STRIDE_LENGTH_M,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    session_iqr,
    session_median,
    steady_of,
)
from strideflow.service.report.data import ReportData
from strideflow.service.report.plots import (
    TREND_BASELINE,
    TREND_MEDIAN,
    TREND_METRIC,
    activities_of,
    distributions_figure,
    figure_svg,
    pitch_figure,
    pronation_figure,
    trends_figure,
)
from strideflow.service.wording import (
    ACTIVITY_WORDS,
    METRIC_INFO,
    flag_sentence,
    metric_decimals,
    metric_label,
)

# Section titles (tests and the dashboard look for these).
TITLE_SUMMARY = "Summary"
TITLE_PRONATION = "Pronation over stance"
TITLE_PITCH = "Pitch over the stride"
TITLE_DISTRIBUTIONS = "Distributions"
TITLE_TRENDS = "Trends against baseline"
TITLE_FLAGS = "Flags"
SECTION_TITLES = (TITLE_SUMMARY, TITLE_PRONATION, TITLE_PITCH, TITLE_DISTRIBUTIONS, TITLE_TRENDS, TITLE_FLAGS)

SUMMARY_METRICS = (
    CADENCE_SPM,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
    FOOT_STRIKE_ANGLE_DEG,
    PRONATION_EXCURSION_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    PUSH_OFF_RATE_DPS,
)
TREND_METRICS = (
    PRONATION_EXCURSION_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    STANCE_TIME_S,
    STRIDE_LENGTH_M,
)

# ----------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:900px;
padding:1.5rem;color:#1d2430;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:2px solid #e3e7ee;
padding-bottom:.2rem;margin-top:2rem}.meta{color:#5b6575;font-size:.9rem}
table{border-collapse:collapse;font-size:.9rem;margin:.6rem 0}th,td{padding:.25rem .6rem;
border-bottom:1px solid #e3e7ee;text-align:right}th:first-child,td:first-child{text-align:left}
thead th{background:#f4f6fa}.left{color:#1f6fb4}.right{color:#e0701b}
.note{color:#5b6575;font-size:.85rem}.warn{background:#fff6e0;border-left:4px solid #f0b400;
padding:.4rem .8rem;font-size:.85rem}figure{margin:.5rem 0}svg{max-width:100%;height:auto}
ul.flags li{margin:.35rem 0}.flagname{font-family:monospace;background:#f4f6fa;padding:0 .3rem}
"""


def _fmt(value, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _summary_table(data: ReportData) -> str:
    """One table per activity of the session (walking and running are never averaged together)."""
    kinds = activities_of(data.sessions)
    if kinds == [None] or len(kinds) == 1:
        head = "" if kinds[0] is None else f"<h3>{ACTIVITY_WORDS.get(kinds[0], kinds[0]).capitalize()}</h3>"
        return head + _activity_table(data.sessions)
    return "".join(
        f"<h3>{ACTIVITY_WORDS.get(k, str(k)).capitalize()}</h3>"
        + _activity_table(data.sessions.filter(pl.col(ACTIVITY).eq_missing(k)))
        for k in kinds
    )


def _activity_table(sessions: pl.DataFrame) -> str:
    rows = {r[FOOT]: r for r in sessions.iter_rows(named=True)}
    any_row = next(iter(rows.values()), {})
    out = [
        "<table><thead><tr><th>metric</th><th>unit</th><th class='left'>left</th>"
        "<th class='right'>right</th><th>L/R</th></tr></thead><tbody>"
    ]
    counts = []
    for foot in FEET:
        r = rows.get(foot)
        total = None if r is None else r.get(STRIDE_COUNT_ALL, r[STRIDE_COUNT])
        counts.append("–" if r is None else f"{r[STRIDE_COUNT]} of {total}")
    out.append(f"<tr><td>steady strides</td><td></td><td>{counts[0]}</td><td>{counts[1]}</td><td></td></tr>")
    for metric in SUMMARY_METRICS:
        label, unit, d = METRIC_INFO[metric]
        cells = []
        for foot in FEET:
            r = rows.get(foot)
            med = None if r is None else r.get(session_median(metric))
            iqr = None if r is None else r.get(session_iqr(metric))
            cells.append(
                "–" if med is None else f"{med:.{d}f}" + ("" if iqr is None else f" ± {iqr / 2:.{d}f}")
            )
        si = symmetry_text(any_row, metric).replace("-", "−") if any_row else "–"
        out.append(
            f"<tr data-metric='{metric}'><td>{html.escape(label)}</td><td>{html.escape(unit)}</td>"
            f"<td>{cells[0]}</td><td>{cells[1]}</td><td>{si}</td></tr>"
        )
    out.append("</tbody></table>")
    out.append(
        "<p class='note'>Median ± half the inter-quartile range of the steady strides (valid, no turn "
        "or gait start); L/R: symmetry index "
        "SI = 200 (L − R) / (L + R) in %, or for the signed angles (foot strike, toe-off pronation) "
        "the difference L − R in degrees; positive = left larger.</p>"
    )
    return "".join(out)


def _trend_band(history: pl.DataFrame, metrics: Sequence[str]) -> dict[tuple[str, str], float]:
    """Half-width of the baseline band per (metric, foot): half the median within-session IQR."""
    band = {}
    for metric in metrics:
        col = session_iqr(metric)
        if col not in history.columns:
            continue
        for foot, value in history.group_by(FOOT).agg(pl.col(col).median()).iter_rows():
            if value is not None:
                band[(metric, foot)] = float(value) / 2.0
    return band


def _trends_section(data: ReportData) -> str:
    trends = data.trends
    if trends is None or trends.height == 0:
        return "<p class='note'>No trend to show (see the notes above).</p>"
    metrics = tuple(m for m in TREND_METRICS if m in set(trends[TREND_METRIC].to_list()))
    if not metrics:
        return "<p class='note'>No trend to show: none of the key metrics has session medians.</p>"
    n_sessions = trends[SESSION_ID].n_unique()
    parts = [
        f"<figure>{figure_svg(trends_figure(trends, _trend_band(data.history, metrics), metrics))}</figure>",
        f"<p class='note'>Session medians over {n_sessions} session(s). Dashed line: the athlete's "
        "baseline; shaded band: baseline ± half the typical within-session IQR, i.e. the usual "
        "stride-to-stride spread. A median outside the band has moved by more than that spread.</p>",
    ]
    latest = trends.filter(pl.col(SESSION_ID) == data.session_id)
    if latest.height:
        parts.append(
            "<table><thead><tr><th>metric</th><th>foot</th><th>baseline</th>"
            f"<th>session {html.escape(data.session_id)}</th><th>change</th><th>change %</th>"
            "</tr></thead><tbody>"
        )
        for r in latest.sort(TREND_METRIC, FOOT).iter_rows(named=True):
            if r[TREND_METRIC] not in metrics:
                continue
            d = metric_decimals(r[TREND_METRIC])
            change = r.get("change_from_baseline")
            pct = r.get("change_pct")
            parts.append(
                f"<tr><td>{html.escape(metric_label(r[TREND_METRIC]))}</td><td>{r[FOOT]}</td>"
                f"<td>{_fmt(r[TREND_BASELINE], d)}</td><td>{_fmt(r[TREND_MEDIAN], d)}</td>"
                f"<td>{'–' if change is None else f'{change:+.{d}f}'}</td>"
                f"<td>{'–' if pct is None else f'{pct:+.1f}'}</td></tr>"
            )
        parts.append("</tbody></table>")
    return "".join(parts)


def _flags_section(data: ReportData) -> str:
    flags = data.flags
    parts = []
    if flags.height == 0:
        parts.append("<p>No flag raised in this session.</p>")
    else:
        parts.append("<ul class='flags'>")
        for r in flags.iter_rows(named=True):
            parts.append(
                f"<li><span class='flagname'>{html.escape(r[FLAG])}</span> "
                f"{html.escape(flag_sentence(r))}</li>"
            )
        parts.append("</ul>")
    s = FlagSettings()
    parts.append(
        "<p class='note'>Flags are configurable heuristics, not a diagnosis (defaults in "
        "<code>analytics/flags.py</code>, <code>FlagSettings</code>): pronation excursion below "
        f"{s.low_pronation_excursion_deg:g} deg, max pronation velocity above "
        f"{s.fast_pronation_velocity_dps:g} deg/s, toe-off pronation below "
        f"{s.lateral_roll_off_below_deg:g} deg, "
        f"toe-off angle below {s.short_toe_off_below_deg:g} deg"
        + (
            f", |left/right symmetry index| of {', '.join(s.asymmetry_metrics)} above "
            f"{s.asymmetry_si_pct:g} %"
            if s.asymmetry_metrics
            else " (left/right symmetry is shown, not flagged: no fixed threshold has a source)"
        )
        + f"; a foot needs {s.min_strides} steady strides before it is flagged.</p>"
    )
    return "".join(parts)


def _section(title: str, body: str) -> str:
    anchor = title.lower().replace(" ", "-")
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>{body}</section>"


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (inline CSS and SVG, no external resource)."""
    title = f"strideflow report: athlete {data.athlete_id}"
    date = f" ({data.session_date})" if data.session_date else ""
    meta = (
        f"session {html.escape(data.session_id)}{html.escape(date)} · from {html.escape(data.source)} · "
        f"made {dt.date.today().isoformat()}"
    )
    warnings = "".join(f"<p class='warn'>{html.escape(w)}</p>" for w in data.warnings)
    warnings += "".join(f"<p class='warn remount'>{html.escape(r)}</p>" for r in data.remounts)
    curves = data.curves if data.curves is not None else pl.DataFrame(schema=CURVES_SCHEMA)
    # Stored results hold each session's summary already; files analysed here give per-stride curves.
    summary = curves if STRIDE_COUNT in curves.columns else curve_summary(curves)
    no_curves = "<p class='note'>No stride curves for this session.</p>"
    # One chart per activity: walking and running strides never share a mean or a band.
    kinds = activities_of(summary)
    pron = (
        no_curves
        if curves.height == 0
        else "".join(
            f"<figure>{figure_svg(pronation_figure(summary, data.strides, kind))}</figure>" for kind in kinds
        )
        + "<p class='note'>Pronation angle (eversion positive on both feet) of the steady strides, "
        "resampled from initial contact (0 %) to toe-off (100 %); line: mean, band: ± 1 SD. "
        "Triangle: the mean curve's maximum within the first 60 % of stance.</p>"
    )
    pitch = (
        no_curves
        if curves.height == 0
        else "".join(
            f"<figure>{figure_svg(pitch_figure(summary, data.strides, kind))}</figure>" for kind in kinds
        )
        + "<p class='note'>Pitch (toes up positive) from initial contact to the next one. Arrows: "
        "foot-strike angle (pitch before contact relative to foot-flat) and toe-off angle (foot-flat "
        "pitch minus toe-off pitch); dotted line: the foot-flat level.</p>"
    )
    valid_kinds = activities_of(data.strides.filter(steady_of(data.strides.columns)))
    dist = "".join(
        f"<figure>{figure_svg(distributions_figure(data.strides, activity=kind))}</figure>"
        for kind in valid_kinds
    )
    body = "".join(
        [
            _section(TITLE_SUMMARY, _summary_table(data)),
            _section(TITLE_PRONATION, pron),
            _section(TITLE_PITCH, pitch),
            _section(TITLE_DISTRIBUTIONS, dist),
            _section(TITLE_TRENDS, _trends_section(data)),
            _section(TITLE_FLAGS, _flags_section(data)),
        ]
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='meta'>{meta}</p>{warnings}{body}"
        "<p class='note'>strideflow measures; it does not diagnose.</p></body></html>"
    )


def write_report(data: ReportData, out: str | Path) -> Path:
    """Write `render_html(data)` to `out` (parent folders created); returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return out
