"""The dashboard in a real browser: headless Debian Chromium driven by Playwright.

A small simulated team is analysed by `strideflow batch` into a data dir, registered in the
service's database, given keys, and served by `strideflow serve` on a free port. The page must
log in with a key, render the team and athlete views with the API's numbers, show no console
errors, and show an athlete key nothing but its own athlete.

Screenshots go to pytest's tmp dir; with STRIDEFLOW_UPDATE_DOCS=1 the team view and a report
screenshot are also copied to docs/ (how the README's pictures are made).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.browser import BROWSER_TESTS
from support.paths import REPO

from strideflow.benchmarks.stream import free_port
from strideflow.hardware.simulator import write_dataset

TEAM = "demo-team"
DOCS = REPO / "docs"

pytestmark = BROWSER_TESTS


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from strideflow.service.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(base URL, admin key, athlete key of A002, data dir, http client) of a running server."""
    from strideflow.service.auth import create_key
    from strideflow.service.catalog import sync_results
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    root = tmp_path_factory.mktemp("dashboard")
    dataset, data = root / "team", root / "data"
    write_dataset(dataset, athletes=3, minutes=0.5, seed=21, activity="walk", sessions=2)
    settings = ServiceSettings(data_dir=data)
    _cli("batch", str(dataset), "--out", str(settings.results_dir), "--workers", "1")
    db = Database(settings.resolved_database_url)
    db.create_all()
    assert sync_results(db, settings.results_dir, TEAM) == 6
    coach = create_key(db, TEAM, "coach")
    athlete = create_key(db, TEAM, "athlete", "A002")
    db.dispose()

    port = free_port()
    log = open(root / "serve.log", "w")  # noqa: SIM115 - closed after the server stops
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from strideflow.service.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--data",
            str(data),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(root / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield {
                "base": base,
                "coach": coach,
                "athlete": athlete,
                "data": data,
                "http": client,
                "tmp": root,
            }
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _api(demo, key: str, path: str) -> dict:
    r = demo["http"].get(path, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, (path, r.text)
    return r.json()


def _page(browser, console: list[str]):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.on(
        "console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    return ctx, page


def _login(page, demo, key: str) -> None:
    page.goto(demo["base"] + "/")
    page.fill("#api-key", key)
    page.click("#login-button")
    page.wait_for_selector("#view[data-ready='#/team']", timeout=30_000)


def _fmt(value: float | None, decimals: int) -> str:
    return "–" if value is None else f"{value:.{decimals}f}"


def _save(page, demo, name: str, docs_name: str | None = None, **kwargs) -> Path:
    path = demo["tmp"] / name
    page.screenshot(path=str(path), **kwargs)
    assert path.stat().st_size > 10_000
    if docs_name and os.environ.get("STRIDEFLOW_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / docs_name)
    return path


def test_team_and_athlete_views_render_the_api_numbers(demo, browser):
    console: list[str] = []
    ctx, page = _page(browser, console)
    try:
        _login(page, demo, demo["coach"])
        # Team view: one row per athlete the API lists, latest-session medians as the API gives them.
        athletes = _api(demo, demo["coach"], "/v1/athletes")["items"]
        assert [a["athlete_id"] for a in athletes] == ["A001", "A002", "A003"]
        rows = page.locator("#team-table tbody tr")
        assert rows.count() == 3
        for a in athletes:
            sessions = _api(demo, demo["coach"], f"/v1/athletes/{a['athlete_id']}/sessions")["items"]
            latest = sessions[-1]
            row = page.locator(f"#team-table tbody tr[data-row='{a['athlete_id']}']")
            assert row.locator("td[data-col='latest']").inner_text() == latest["session_id"]
            for foot in latest["feet"]:
                cell = row.locator(f"td[data-col='pronation_excursion_deg.{foot['foot']}']")
                assert cell.inner_text() == _fmt(foot["median"]["pronation_excursion_deg"], 1)
            flags = _api(
                demo, demo["coach"], f"/v1/sessions/{latest['session_id']}/flags?athlete_id={a['athlete_id']}"
            )
            shown = row.locator("td[data-col='flags'] .flag")
            assert shown.count() == len(flags["items"])
        bars = page.locator("svg[data-chart='team-pronation'] rect.bar")
        assert bars.count() == 6
        assert (
            page.locator("svg[data-chart='team-pronation'] .chart-title")
            .text_content()
            .startswith("Pronation excursion")
        )
        # Sorting: the athlete column descending puts A003 first.
        header = page.locator("#team-table th[data-col='athlete']")
        header.click()
        header.click()
        assert rows.first.get_attribute("data-row") == "A003"
        _save(page, demo, "team.png", "dashboard-team.png", full_page=True)

        # Athlete view.
        page.click("#team-table a[href='#/athlete/A001']")
        page.wait_for_selector("#view[data-ready='#/athlete/A001']", timeout=30_000)
        sessions = _api(demo, demo["coach"], "/v1/athletes/A001/sessions")["items"]
        sid = sessions[-1]["session_id"]
        strides = _api(demo, demo["coach"], f"/v1/sessions/{sid}/strides?athlete_id=A001&limit=500")["items"]
        assert page.locator("#strides-table tbody tr").count() == len(strides)
        first = strides[0]
        row = page.locator(f"#strides-table tbody tr[data-row='{first['foot']}-{first['stride_index']}']")
        assert row.locator("td[data-col='toe_off_angle_deg']").inner_text() == _fmt(
            first["toe_off_angle_deg"], 1
        )
        for metric in ("pronation_excursion_deg", "max_pronation_velocity_dps", "toe_off_angle_deg"):
            chart = page.locator(f"svg[data-chart='trend-{metric}']")
            assert chart.locator("path.line").count() >= 2  # left and right medians (+ baselines)
            assert chart.locator("circle").count() == 2 * len(sessions)
        # one curve pair per activity: this walking team has walking curves only
        assert page.locator("svg[data-chart^='stance-pronation_deg']").count() == 1
        curve = page.locator("svg[data-chart='stance-pronation_deg-walk']")
        assert curve.locator(".chart-title").text_content() == "Pronation over stance (mean ± SD) (walking)"
        lines = curve.locator("path.line")
        assert lines.count() == 2
        # 101 points per curve, as the API's curves route returns them.
        points = _api(
            demo, demo["coach"], f"/v1/sessions/{sid}/curves?athlete_id=A001&phase=stance&limit=1000"
        )["items"]
        assert len([p for p in points if p["foot"] == "left"]) == 101
        assert lines.first.get_attribute("d").count("L") == 100
        assert page.locator("svg[data-chart='stride-pitch_deg-walk'] polygon.band").count() == 2
        _save(page, demo, "athlete.png", "dashboard-athlete.png", full_page=True)
        assert console == [], console
    finally:
        ctx.close()


def test_athlete_key_sees_only_its_own_athlete(demo, browser):
    console: list[str] = []
    ctx, page = _page(browser, console)
    try:
        _login(page, demo, demo["athlete"])
        rows = page.locator("#team-table tbody tr")
        assert rows.count() == 1
        assert rows.first.get_attribute("data-row") == "A002"
        assert "A001" not in page.locator("#view").inner_text()
        assert page.locator("#who").inner_text() == "athlete view: A002"
        page.evaluate("location.hash = '#/athlete/A001'")
        page.wait_for_selector("#view[data-ready='#/athlete/A001']", timeout=30_000)
        assert "Not found" in page.locator("#view-error").inner_text()
        assert page.locator("#strides-table").count() == 0
        # The only console messages are the browser's notes on the refused (404) request.
        assert all("404" in m for m in console), console
        # Logging out forgets the key.
        page.click("#logout")
        assert page.evaluate("sessionStorage.getItem('strideflow.apiKey')") is None
        assert page.locator("#login").is_visible()
    finally:
        ctx.close()


def test_wrong_key_is_refused_and_no_data_without_one(demo, browser):
    assert demo["http"].get("/v1/athletes").status_code == 401
    page_html = demo["http"].get("/")
    assert page_html.status_code == 200 and "api-key" in page_html.text
    assert demo["http"].get("/static/dashboard.js").status_code == 200
    assert demo["http"].get("/static/..%2Fapp.py").status_code == 404
    console: list[str] = []
    ctx, page = _page(browser, console)
    try:
        page.goto(demo["base"] + "/")
        page.fill("#api-key", "sf_" + "0" * 32 + "_nope")
        page.click("#login-button")
        page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
        assert "not accepted" in page.locator("#login-error").inner_text()
    finally:
        ctx.close()


def test_report_screenshot(demo, browser, tmp_path):
    from strideflow.service.report import load_results, write_report

    out = write_report(load_results(demo["data"] / "results", athlete_id="A001"), tmp_path / "report.html")
    ctx = browser.new_context(viewport={"width": 1000, "height": 1700})
    try:
        page = ctx.new_page()
        page.goto(out.as_uri())
        assert page.locator("section#pronation-over-stance svg").count() == 1
        _save(page, demo, "report.png", "report.png")
    finally:
        ctx.close()


def test_a_slow_earlier_view_never_overwrites_the_current_route(demo, browser):
    # Open the team view with its athlete list held back, move to #/live, then let the list
    # through: the team table must not replace the Live view (it used to, under the Live heading).
    console: list[str] = []
    ctx, page = _page(browser, console)
    held = []

    def hold_first(route):  # the team view's list (not the ?limit=2 probe); later ones pass
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/v1/athletes", hold_first)
    try:
        page.goto(demo["base"] + "/#/team")
        page.fill("#api-key", demo["coach"])
        page.click("#login-button")
        page.wait_for_function("() => document.querySelector('#view h1')?.textContent === 'Team'")
        page.wait_for_timeout(300)
        assert held, "the team view's athlete list was not requested"
        page.evaluate("location.hash = '#/live'")
        page.wait_for_selector("#view[data-ready='#/live']", timeout=30_000)
        held[0].continue_()
        page.wait_for_timeout(1500)  # time for the stale team view to finish rendering
        heading = page.locator("#view h1").all_inner_texts()
        assert heading == ["Live"], heading
        assert page.locator("#live-status").count() == 1
        assert page.get_attribute("#view", "data-ready") == "#/live"
    finally:
        ctx.close()
    assert not [c for c in console if "pageerror" in c], console


def test_trend_axis_in_date_order_and_activities_apart(demo, browser):
    """Sessions uploaded out of date order (one undated: dated by its upload day), one of them mixed
    walking and running: the trend axis and every line follow the dates; walking and running are
    separate lines, curves and stride labels."""
    from strideflow.service.auth import create_key
    from strideflow.service.db import Database
    from strideflow.service.settings import ServiceSettings

    db = Database(ServiceSettings(data_dir=demo["data"]).resolved_database_url)
    admin = create_key(db, TEAM, "admin")
    db.ensure_athlete(TEAM, "A009")
    db.dispose()
    walk, mixed = demo["tmp"] / "team", demo["tmp"] / "mixed"
    write_dataset(mixed, athletes=1, minutes=1.5, seed=9, activity="mixed")
    headers = {"Authorization": f"Bearer {admin}"}
    uploads = [("SC", mixed, None), ("SB", walk, "2025-03-01"), ("SA", walk, "2025-01-01")]
    for session, root, date in uploads:  # the undated one first, the earliest last
        for foot in ("left", "right"):
            path = root / "A001" / "S01" / f"{foot}.parquet"
            data = {"athlete_id": "A009", "session_id": session, "foot": foot}
            if date:
                data["session_date"] = date
            r = demo["http"].post(
                "/v1/recordings", headers=headers, files={"file": (path.name, path.read_bytes())}, data=data
            )
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 300
            while (job := _api(demo, admin, f"/v1/jobs/{r.json()['job_id']}"))["status"] not in (
                "done",
                "failed",
            ):
                assert time.monotonic() < deadline, job
                time.sleep(0.3)
            assert job["status"] == "done", job
    sessions = _api(demo, admin, "/v1/athletes/A009/sessions")["items"]
    assert [s["session_id"] for s in sessions] == ["SA", "SB", "SC"]
    assert sessions[2]["session_date"] == dt.datetime.now(dt.UTC).date().isoformat()  # its upload day
    console: list[str] = []
    ctx, page = _page(browser, console)
    try:
        _login(page, demo, admin)
        page.evaluate("location.hash = '#/athlete/A009'")
        page.wait_for_selector("#view[data-ready='#/athlete/A009']", timeout=30_000)
        chart = page.locator("svg[data-chart='trend-pronation_excursion_deg']")
        tips = chart.locator("text.x-tick title").all_text_contents()
        assert [t.split(" · ")[0] for t in tips] == ["SA", "SB", "SC"]
        labels = chart.locator("text.x-tick").evaluate_all("ns => ns.map(n => n.firstChild.textContent)")
        assert labels[:2] == ["01-01", "03-01"]
        names = chart.locator("g.series").evaluate_all("gs => gs.map(g => g.getAttribute('data-series'))")
        assert {"left walk", "right walk", "left run", "right run"} <= set(names)
        # every line runs forwards in time and stays on the axis
        box = chart.evaluate("s => s.viewBox.baseVal.width")
        for d in chart.locator("g.series path.line").evaluate_all("ps => ps.map(p => p.getAttribute('d'))"):
            xs = [float(seg.split(",")[0]) for seg in d.replace("M", "L").split("L") if seg]
            assert xs == sorted(xs) and all(0 <= x <= box for x in xs), d
        # the latest session (mixed) has one curve pair per activity and labels its strides
        assert page.locator("svg[data-chart='stance-pronation_deg-walk']").count() == 1
        assert page.locator("svg[data-chart='stance-pronation_deg-run']").count() == 1
        kinds = page.locator("#strides-table td[data-col='activity']").all_inner_texts()
        valid = page.locator("#strides-table td[data-col='valid']").all_inner_texts()
        assert set(kinds) - {"–"} == {"walk", "run"}
        # only a stride from standing has no activity (its duty factor needs an IC it lacks)
        assert {v for k, v in zip(kinds, valid, strict=True) if k == "–"} <= {"yes (gait_start)"}
        _save(page, demo, "athlete-mixed.png", "dashboard-activity.png", full_page=True)
        assert console == [], console
    finally:
        ctx.close()
