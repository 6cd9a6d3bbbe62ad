"""Figures of the athlete report, drawn with matplotlib's object API (no pyplot state, thread-safe).

Each function takes result tables and returns a `matplotlib.figure.Figure`; `figure_svg` turns one
into an inline `<svg>` element (text kept as text, no metadata, nothing fetched when viewed).
Left foot blue, right foot orange throughout; every axis is labelled with its unit.
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from strideflow.analytics.curves import PCT, PHASE, STANCE, STRIDE, curve_mean, curve_sd
from strideflow.hardware.schema import (
    ACTIVITY,
    DUTY_FACTOR,
    FEET,
    FOOT,
    FOOT_FLAT_T,
    FOOT_STRIKE_ANGLE_DEG,
    IC_T,
    MAX_PRONATION_VELOCITY_DPS,
    PITCH_DEG,
    PRONATION_DEG,
    PRONATION_EXCURSION_DEG,
    PRONATION_WINDOW_STANCE_FRACTION,
    STRIDE_TIME_S,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    steady_of,
)
from strideflow.service.wording import ACTIVITY_WORDS, METRIC_INFO, metric_label

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable, crisp
matplotlib.rcParams["svg.hashsalt"] = "strideflow"  # stable element ids from run to run

FOOT_COLORS = {"left": "#1f6fb4", "right": "#e0701b"}

DISTRIBUTION_METRICS = (
    PRONATION_EXCURSION_DEG,
    MAX_PRONATION_VELOCITY_DPS,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
)


def figure_svg(fig: Figure) -> str:
    """The figure as an inline `<svg>` element (no XML prolog, DOCTYPE or metadata block)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")


def activities_of(frame: pl.DataFrame) -> list[str | None]:
    """The activities (walk/run) a curves summary or strides table holds, most strides first;
    [None] when it has no activity column (results stored before the split)."""
    if ACTIVITY not in frame.columns or frame.height == 0:
        return [None]
    counts = frame.group_by(ACTIVITY).len().sort("len", ACTIVITY, descending=[True, False], nulls_last=True)
    return counts.get_column(ACTIVITY).to_list()


def _of_activity(frame: pl.DataFrame, activity: str | None) -> pl.DataFrame:
    if activity is None or ACTIVITY not in frame.columns:
        return frame
    return frame.filter(pl.col(ACTIVITY) == activity)


def _clip_band(ax, means: list[np.ndarray], sds: list[np.ndarray]) -> None:
    """Y limits from the mean curves plus a typical band (the median SD, at most 3x it at any point),
    so a few percent of stance with a huge SD cannot stretch the chart; the bands are clipped to it."""
    finite = [m[np.isfinite(m)] for m in means if np.isfinite(m).any()]
    if not finite:
        return
    lo = min(float(m.min()) for m in finite)
    hi = max(float(m.max()) for m in finite)
    sd_all = np.concatenate([s[np.isfinite(s)] for s in sds]) if sds else np.zeros(0)
    pad = 3.0 * float(np.median(sd_all)) if sd_all.size else 0.0
    pad = max(pad, 0.05 * (hi - lo), 1.0)
    ax.set_ylim(lo - pad, hi + pad)


def _activity_title(title: str, activity: str | None) -> str:
    return title if activity is None else f"{title} ({ACTIVITY_WORDS.get(activity, activity)})"


def _foot_curve(summary: pl.DataFrame, foot: str, phase: str, angle: str) -> tuple[np.ndarray, ...]:
    part = summary.filter((pl.col(FOOT) == foot) & (pl.col(PHASE) == phase)).sort(PCT)
    return (
        part[PCT].to_numpy(),
        part[curve_mean(angle)].fill_null(np.nan).to_numpy().astype(float),
        part[curve_sd(angle)].fill_null(0.0).to_numpy().astype(float),
    )


def _valid(strides: pl.DataFrame, foot: str) -> pl.DataFrame:
    """The foot's steady strides (`schema.steady_of`), which the statistics are taken over."""
    return strides.filter((pl.col(FOOT) == foot) & steady_of(strides.columns))


def pronation_figure(summary: pl.DataFrame, strides: pl.DataFrame, activity: str | None = None) -> Figure:
    """Mean +/- SD pronation over stance per foot, with IC, max pronation and toe-off marked.

    `summary` is `analytics.curves.curve_summary` by foot (and activity); `strides` the same
    session's strides (the legend quotes their median pronation excursion). `activity` (walk/run)
    draws only that activity's curves and strides; the bands are clipped to the chart.
    """
    summary, strides = _of_activity(summary, activity), _of_activity(strides, activity)
    fig = Figure(figsize=(8.0, 4.2))
    ax = fig.add_subplot()
    drawn = False
    means, sds = [], []
    for foot in FEET:
        pct, mean, sd = _foot_curve(summary, foot, STANCE, PRONATION_DEG)
        if pct.size == 0 or not np.isfinite(mean).any():
            continue
        drawn = True
        means.append(mean)
        sds.append(sd)
        color = FOOT_COLORS[foot]
        excursion = _valid(strides, foot)[PRONATION_EXCURSION_DEG].median()
        label = f"{foot}" + ("" if excursion is None else f" (median excursion {excursion:.1f} deg)")
        ax.fill_between(pct, mean - sd, mean + sd, color=color, alpha=0.18, linewidth=0)
        ax.plot(pct, mean, color=color, linewidth=2, label=label)
        window = pct <= 100.0 * PRONATION_WINDOW_STANCE_FRACTION
        i_max = int(np.nanargmax(np.where(window, mean, -np.inf)))
        ax.plot([pct[0]], [mean[0]], "o", color=color, markersize=7, markeredgecolor="black")
        ax.plot([pct[i_max]], [mean[i_max]], "^", color=color, markersize=9, markeredgecolor="black")
        ax.plot([pct[-1]], [mean[-1]], "s", color=color, markersize=7, markeredgecolor="black")
        ax.annotate(
            f"max pronation {foot}",
            (pct[i_max], mean[i_max]),
            xytext=(8, 10 if foot == "left" else -14),
            textcoords="offset points",
            fontsize=8,
            color=color,
        )
    if drawn:
        ax.plot([], [], "o", color="white", markeredgecolor="black", label="IC (0 %)")
        ax.plot([], [], "^", color="white", markeredgecolor="black", label="max pronation")
        ax.plot([], [], "s", color="white", markeredgecolor="black", label="toe-off (100 %)")
        ax.legend(fontsize=8, loc="best")
    else:
        _no_data(ax, "no steady strides with curves")
    ax.axhline(0.0, color="#999", linewidth=0.8)
    ax.set_xlim(0, 100)
    _clip_band(ax, means, sds)
    ax.set_xlabel("stance (% from initial contact to toe-off)")
    ax.set_ylabel("pronation angle (deg, eversion +)")
    ax.set_title(_activity_title("Pronation over stance, mean ± SD", activity))
    ax.grid(alpha=0.3)
    return fig


def pitch_figure(summary: pl.DataFrame, strides: pl.DataFrame, activity: str | None = None) -> Figure:
    """Mean +/- SD pitch over the stride per foot, with foot-flat, toe-off and the two angles marked.

    Foot-strike angle = pitch just before IC minus pitch at foot-flat; toe-off angle = pitch at
    foot-flat minus pitch at toe-off (DESIGN.md); the medians of `strides` are quoted.
    `activity` (walk/run) draws only that activity; the bands are clipped to the chart.
    """
    summary, strides = _of_activity(summary, activity), _of_activity(strides, activity)
    fig = Figure(figsize=(8.0, 4.2))
    ax = fig.add_subplot()
    lines = []
    means, sds = [], []
    for foot in FEET:
        pct, mean, sd = _foot_curve(summary, foot, STRIDE, PITCH_DEG)
        if pct.size == 0 or not np.isfinite(mean).any():
            continue
        means.append(mean)
        sds.append(sd)
        color = FOOT_COLORS[foot]
        valid = _valid(strides, foot)
        ax.fill_between(pct, mean - sd, mean + sd, color=color, alpha=0.18, linewidth=0)
        ax.plot(pct, mean, color=color, linewidth=2, label=foot)
        toe_off_pct = valid[DUTY_FACTOR].median()
        flat_pct = valid.select(
            (100.0 * (pl.col(FOOT_FLAT_T) - pl.col(IC_T)) / pl.col(STRIDE_TIME_S)).median()
        ).item()
        strike, toe_off = valid[FOOT_STRIKE_ANGLE_DEG].median(), valid[TOE_OFF_ANGLE_DEG].median()
        if flat_pct is not None and toe_off_pct is not None:
            toe_off_pct *= 100.0
            flat = float(np.interp(flat_pct, pct, mean))
            at_toe_off = float(np.interp(toe_off_pct, pct, mean))
            ax.axhline(flat, color=color, linestyle=":", linewidth=1)
            ax.plot([flat_pct], [flat], "D", color=color, markeredgecolor="black", markersize=6)
            ax.plot([toe_off_pct], [at_toe_off], "s", color=color, markeredgecolor="black", markersize=7)
            ax.plot([0.0], [mean[0]], "o", color=color, markeredgecolor="black", markersize=7)
            ax.annotate(
                "",
                xy=(toe_off_pct, at_toe_off),
                xytext=(toe_off_pct, flat),
                arrowprops={"arrowstyle": "->", "color": color},
            )
            ax.annotate(
                "",
                xy=(1.5, mean[0]),
                xytext=(1.5, flat),
                arrowprops={"arrowstyle": "->", "color": color},
            )
        if strike is not None and toe_off is not None:
            lines.append(
                f"{foot}: foot-strike angle {strike:.1f} deg, toe-off angle {toe_off:.1f} deg (medians)"
            )
    if lines:
        ax.plot([], [], "o", color="white", markeredgecolor="black", label="IC")
        ax.plot([], [], "D", color="white", markeredgecolor="black", label="foot-flat (dotted level)")
        ax.plot([], [], "s", color="white", markeredgecolor="black", label="toe-off")
        ax.legend(fontsize=8, loc="lower left")
        ax.text(
            0.99,
            0.98,
            "\n".join(lines),
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#ccc"},
        )
    else:
        _no_data(ax, "no steady strides with curves")
    ax.set_xlim(0, 100)
    _clip_band(ax, means, sds)
    ax.set_xlabel("stride (% from initial contact to the next initial contact)")
    ax.set_ylabel("pitch (deg, toes up +)")
    ax.set_title(_activity_title("Pitch over the stride, mean ± SD", activity))
    ax.grid(alpha=0.3)
    return fig


def distributions_figure(
    strides: pl.DataFrame, metrics: tuple[str, ...] = DISTRIBUTION_METRICS, activity: str | None = None
) -> Figure:
    """Histograms of steady strides' metrics, left and right overlaid, medians as dashed lines;
    `activity` (walk/run): that activity's strides only (two gaits make two-peaked histograms)."""
    strides = _of_activity(strides, activity)
    cols = 2
    rows = (len(metrics) + cols - 1) // cols
    fig = Figure(figsize=(8.0, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        values = {f: _valid(strides, f)[metric].drop_nulls().drop_nans().to_numpy() for f in FEET}
        pooled = np.concatenate(list(values.values()))
        if pooled.size == 0:
            _no_data(ax, "no steady strides")
        else:
            bins = np.histogram_bin_edges(pooled, bins=min(20, max(5, pooled.size // 3)))
            for foot, v in values.items():
                if v.size == 0:
                    continue
                ax.hist(v, bins=bins, color=FOOT_COLORS[foot], alpha=0.5, label=f"{foot} (n={v.size})")
                ax.axvline(float(np.median(v)), color=FOOT_COLORS[foot], linestyle="--", linewidth=1.5)
            ax.legend(fontsize=7)
        ax.set_xlabel(metric_label(metric))
        ax.set_ylabel("strides")
        ax.set_title(_activity_title(METRIC_INFO.get(metric, (metric,))[0], activity), fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


# Columns of analytics.trends.compute_trends used here.
TREND_METRIC, TREND_MEDIAN, TREND_BASELINE = "metric", "median", "baseline"
TREND_SESSION_DATE, TREND_SESSION_ID = "session_date", "session_id"


def trends_figure(
    trends: pl.DataFrame, band: dict[tuple[str, str], float], metrics: tuple[str, ...]
) -> Figure:
    """Session medians of each metric over time per foot against the athlete's baseline band.

    `trends` has one row per (metric, foot, session) with `median` and `baseline`; `band` maps
    (metric, foot) to the band's half-width in the metric's unit (drawn as baseline +/- band).
    Sessions are placed by `session_date` when every session has one, else in session order.
    With an `activity` column, walking and running are separate lines (running dotted, squares).
    """
    cols = 2
    rows = max(1, (len(metrics) + cols - 1) // cols)
    fig = Figure(figsize=(8.0, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    dated = TREND_SESSION_DATE in trends.columns and trends[TREND_SESSION_DATE].null_count() == 0
    order = (
        trends.select(TREND_SESSION_ID, *([TREND_SESSION_DATE] if dated else []))
        .unique()
        .sort([TREND_SESSION_DATE, TREND_SESSION_ID] if dated else [TREND_SESSION_ID])
    )
    position = {s: i for i, s in enumerate(order[TREND_SESSION_ID].to_list())}
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        part = trends.filter(pl.col(TREND_METRIC) == metric)
        any_line = False
        kinds = activities_of(part)
        for kind in kinds:
            for foot in FEET:
                rows_f = _of_activity(part, kind).filter(pl.col(FOOT) == foot)
                if dated:
                    rows_f = rows_f.sort(TREND_SESSION_DATE, TREND_SESSION_ID)
                    x = [np.datetime64(str(d)[:10]) for d in rows_f[TREND_SESSION_DATE].to_list()]
                else:
                    rows_f = rows_f.sort(TREND_SESSION_ID)
                    x = [position[s] for s in rows_f[TREND_SESSION_ID].to_list()]
                y = rows_f[TREND_MEDIAN].fill_null(np.nan).to_numpy().astype(float)
                if not np.isfinite(y).any():
                    continue
                any_line = True
                color = FOOT_COLORS[foot]
                # Walking and running are separate lines, each against its own baseline.
                running = kind == "run" and len(kinds) > 1
                baseline = rows_f[TREND_BASELINE].drop_nulls()
                if baseline.len():
                    b = float(baseline[-1])
                    half = band.get((metric, foot), 0.0)
                    if not running:
                        ax.axhspan(b - half, b + half, color=color, alpha=0.12, linewidth=0)
                    ax.axhline(b, color=color, linestyle="--", linewidth=1)
                word = ACTIVITY_WORDS.get(kind, kind)
                label = foot if len(kinds) == 1 or kind is None else f"{foot} {word}"
                ax.plot(x, y, "s:" if running else "o-", color=color, label=label, markersize=5)
        if any_line:
            ax.legend(fontsize=7)
        else:
            _no_data(ax, "no session medians")
        if not dated:
            ax.set_xticks(list(position.values()), list(position.keys()), fontsize=7)
        else:
            for label in ax.get_xticklabels():
                label.set_rotation(30)
                label.set_fontsize(7)
        ax.set_xlabel("session date" if dated else "session")
        ax.set_ylabel(metric_label(metric))
        ax.set_title(METRIC_INFO.get(metric, (metric,))[0], fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
