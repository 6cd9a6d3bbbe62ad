"""The athlete report: self-contained HTML whose numbers are those of the strides table."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from strideflow.analytics.curves import stride_curves
from strideflow.analytics.flags import FLAG, LATERAL_ROLL_OFF, METRIC, NOTE, THRESHOLD, VALUE
from strideflow.analytics.partitions import CURVES, FLAGS, SESSIONS, STRIDES, write_partition
from strideflow.analytics.pipeline import analyze_samples, summarize_strides
from strideflow.hardware import schema as S
from strideflow.hardware.simulator import write_dataset
from strideflow.service.cli import _register, app
from strideflow.service.report import (
    SECTION_TITLES,
    ReportError,
    load_files,
    load_results,
    render_html,
)
from strideflow.service.wording import flag_sentence

EXTERNAL = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//""", re.I
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """2 athletes x 3 dated sessions of 30 s walking, both feet (simulator)."""
    out = tmp_path_factory.mktemp("sim")
    write_dataset(out, athletes=2, minutes=0.5, seed=5, activity="walk", sessions=3)
    return out


@pytest.fixture(scope="module")
def results_root(dataset, tmp_path_factory) -> Path:
    """The dataset analysed into a results root (partitions layout, as `strideflow batch` writes)."""
    root = tmp_path_factory.mktemp("results")
    manifest = pl.read_csv(dataset / "manifest.csv")
    for (athlete, session), rows in manifest.group_by(S.ATHLETE_ID, S.SESSION_ID):
        samples = pl.concat([pl.read_parquet(dataset / p) for p in rows["path"]], how="diagonal_relaxed")
        result = analyze_samples(samples, float(rows["sampling_rate_hz"][0]))
        sessions = result.sessions.with_columns(pl.lit(rows[S.SESSION_DATE][0]).alias(S.SESSION_DATE))
        write_partition(root, STRIDES, result.strides, athlete, session)
        write_partition(root, SESSIONS, sessions, athlete, session)
        write_partition(root, FLAGS, result.flags, athlete, session)
        write_partition(root, CURVES, stride_curves(result), athlete, session)
    return root


def _summary_row(page: str, metric: str) -> list[str]:
    row = re.search(rf"<tr data-metric='{metric}'>(.*?)</tr>", page, re.S)
    assert row, f"no summary row for {metric}"
    return re.findall(r"<td>(.*?)</td>", row.group(1))


def _check_numbers(page: str, strides: pl.DataFrame) -> None:
    """Medians and steady counts in the summary equal those computed here from the strides table."""
    valid = strides.filter(pl.col(S.STEADY))
    for metric in (S.PRONATION_EXCURSION_DEG, S.TOE_OFF_ANGLE_DEG, S.TOE_OFF_PRONATION_DEG):
        cells = _summary_row(page, metric)
        for i, foot in enumerate(S.FEET):
            median = valid.filter(pl.col(S.FOOT) == foot)[metric].median()
            assert cells[2 + i].startswith(f"{median:.1f} ± "), (metric, foot, cells)
    for foot in S.FEET:
        n_valid = valid.filter(pl.col(S.FOOT) == foot).height
        n_all = strides.filter(pl.col(S.FOOT) == foot).height
        assert f"<td>{n_valid} of {n_all}</td>" in page


def _check_self_contained(page: str) -> None:
    assert not EXTERNAL.search(page), EXTERNAL.search(page).group(0)
    assert "<script" not in page and "<link" not in page and "<img" not in page
    for title in SECTION_TITLES:
        assert f"<h2>{title}</h2>" in page
    # Figures are inline SVG with labelled axes (units in the labels).
    assert page.count("<svg") >= 4
    for label in ("pronation angle (deg", "pitch (deg", "pronation excursion (deg)", "toe-off angle (deg)"):
        assert label in page


def test_report_from_files(dataset):
    files = sorted(dataset.glob("A001/S0[12]/*.parquet"))
    data = load_files(files)
    assert data.athlete_id == "A001" and data.session_id == "S02"
    assert set(data.history[S.SESSION_ID].to_list()) == {"S01", "S02"}
    page = render_html(data)
    _check_self_contained(page)
    _check_numbers(page, data.strides)
    # Two sessions: a trend table with the change of the shown session from the baseline
    # (mean of both sessions' medians here).
    medians = (
        pl.concat([load_files([f]).strides for f in files])
        .filter(pl.col(S.STEADY) & (pl.col(S.FOOT) == "left"))
        .group_by(S.SESSION_ID)
        .agg(pl.col(S.PRONATION_EXCURSION_DEG).median())
        .sort(S.SESSION_ID)[S.PRONATION_EXCURSION_DEG]
        .to_list()
    )
    change = medians[1] - (medians[0] + medians[1]) / 2
    cells = f"</td><td>left</td><td>[^<]+</td><td>{medians[1]:.1f}</td><td>{re.escape(f'{change:+.1f}')}</td>"
    assert re.search(r"pronation excursion \(deg\)" + cells, page)


def test_report_from_results_root_shows_latest_session_and_trends(results_root):
    data = load_results(results_root, athlete_id="A002")
    assert data.session_id == "S03"  # latest by session_date
    assert data.session_date is not None and data.curves is not None and data.trends is not None
    assert data.trends[S.SESSION_ID].n_unique() == 3
    page = render_html(data)
    _check_self_contained(page)
    _check_numbers(page, data.strides)
    assert data.strides[S.SESSION_ID].unique().to_list() == ["S03"]
    assert f"session S03 ({data.session_date})" in page
    # An earlier session on request, found from its id alone when one athlete has it.
    earlier = load_results(results_root, athlete_id="A002", session_id="S01")
    _check_numbers(render_html(earlier), earlier.strides)


def test_report_errors_name_the_problem(results_root, tmp_path):
    with pytest.raises(ReportError, match="A001, A002; add --athlete"):
        load_results(results_root, session_id="S01")
    with pytest.raises(ReportError, match="no results for athlete 'A009'"):
        load_results(results_root, athlete_id="A009")
    with pytest.raises(ReportError, match="has no session 'S07'"):
        load_results(results_root, athlete_id="A001", session_id="S07")
    with pytest.raises(ReportError, match="no results here"):
        load_results(tmp_path, athlete_id="A001")


def test_cli_writes_the_report_and_fails_cleanly(results_root, dataset, tmp_path):
    _register()
    runner = CliRunner()
    out = tmp_path / "r" / "report.html"
    res = runner.invoke(app, ["report", "--athlete", "A001", "--data", str(results_root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "athlete A001, session S03" in res.output
    _check_self_contained(out.read_text())
    res = runner.invoke(app, ["report", "--out", str(out)])
    assert res.exit_code != 0 and isinstance(res.exception, ReportError)


def test_flags_in_plain_words_with_threshold(dataset):
    row = {
        S.FOOT: "right",
        FLAG: LATERAL_ROLL_OFF,
        METRIC: S.TOE_OFF_PRONATION_DEG,
        VALUE: -6.25,
        THRESHOLD: -2.0,
        NOTE: "n",
    }
    text = flag_sentence(row)
    assert text.startswith("Right foot:") and "-6.2 deg" in text and "threshold of -2 deg" in text
    assert "big toe" in text
    strides = load_files(sorted(dataset.glob("A002/S01/*.parquet"))).strides
    _, flags = summarize_strides(strides)
    for r in flags.iter_rows(named=True):
        assert f"{r[THRESHOLD]:g}" in flag_sentence(r)
