"""The dashboard's Live view in a real browser (headless Debian Chromium driven by Playwright).

`strideflow serve` runs on a free port with a fresh data dir; the Live view is opened with a coach
key (all athletes, and filtered to one athlete), an athlete key and an athlete key asking for
another athlete. Then `strideflow stream --device sim --speed max` streams two simulated athletes.
The cards must show the stored strides' numbers (matched by foot and ic_t, to the displayed
precision), every provisional row must have been shown as provisional and then replaced by its
final row, invalid strides carry their reason, turns their context, and each key sees only what it may.

With STRIDEFLOW_UPDATE_DOCS=1 a real-time stream is also shown and caught mid-stride for
docs/dashboard-live.png (about 30 s more).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import polars as pl
import pytest
from support.browser import BROWSER_TESTS
from support.paths import REPO

from strideflow.analytics.partitions import STRIDES, has_partition, read_partition
from strideflow.benchmarks.stream import Server, create_api_key
from strideflow.hardware.schema import (
    CONTEXT,
    FOOT,
    IC_T,
    MAX_PRONATION_VELOCITY_DPS,
    PRONATION_EXCURSION_DEG,
    REASON,
    STANCE_TIME_S,
    STRIKE_TYPE,
    TOE_OFF_ANGLE_DEG,
    TOE_OFF_PRONATION_DEG,
    VALID,
)

TEAM = "live-team"
SESSION = "LIVE1"
# athlete -> (seed, activity) of its simulated pods
STREAMS = {"A001": (3, "walk"), "A002": (4, "run")}
DOCS = REPO / "docs"
# Metrics shown on a card and the decimals the page shows them with (METRICS in dashboard.js).
SHOWN = {
    PRONATION_EXCURSION_DEG: 1,
    MAX_PRONATION_VELOCITY_DPS: 0,
    TOE_OFF_PRONATION_DEG: 1,
    TOE_OFF_ANGLE_DEG: 1,
    STANCE_TIME_S: 3,
}
HISTORY = 30  # strides per foot in the sparklines (LIVE_HISTORY)
RECENT = 8  # rows of a card's table (LIVE_RECENT)

pytestmark = BROWSER_TESTS

# Records every stride row the page puts into the DOM: kind, whether it is drawn in italics and
# its badge, so the test sees provisional rows that were replaced a moment later.
OBSERVE = """() => {
  window.__rows = [];
  const note = (tr) => {
    const athlete = tr.closest("[data-athlete]").getAttribute("data-athlete");
    window.__rows.push({
      athlete, foot: tr.getAttribute("data-foot"), ic_t: Number(tr.getAttribute("data-ic-t")),
      kind: tr.getAttribute("data-kind"), italic: getComputedStyle(tr.cells[2]).fontStyle === "italic",
      badge: tr.querySelector(".badge").textContent,
    });
  };
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) {
      if (n.nodeType === 1) n.querySelectorAll("table.live-recent tbody tr").forEach(note);
    }
  }).observe(document.getElementById("live-athletes"), { childList: true, subtree: true });
}"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from strideflow.service.cli import main; main()", *args]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL, keys and data dir of a running `strideflow serve` with an empty data dir."""
    root = tmp_path_factory.mktemp("live")
    data = root / "data"
    keys = {
        "admin": create_api_key(data, TEAM, "admin", athletes=tuple(STREAMS)),
        "coach": create_api_key(data, TEAM, "coach"),
        "athlete2": create_api_key(data, TEAM, "athlete", "A002"),
    }
    handle = Server(data, log_path=root / "serve.log")  # stopped and started again by a test
    try:
        handle.start()
        base = f"http://127.0.0.1:{handle.port}"
        yield {"base": base, "port": handle.port, "data": data, "tmp": root, "handle": handle, **keys}
    finally:
        handle.stop()


def _open_live(browser, server, key: str, hash_: str, console: list[str], width: int = 1280):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    page.on(
        "console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.goto(f"{server['base']}/{hash_}")
    page.fill("#api-key", key)
    page.click("#login-button")
    page.wait_for_selector(f"#view[data-ready='{hash_}']", timeout=30_000)
    return ctx, page


def _wait_state(page, state: str) -> None:
    page.wait_for_selector(f"#live-status[data-state='{state}']", timeout=30_000)


def _fmt(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{decimals}f}"


def _stored(server, athlete: str, session: str = SESSION) -> pl.DataFrame:
    results = server["data"] / "results"
    deadline = time.monotonic() + 30
    while not has_partition(results, STRIDES, athlete, session):
        assert time.monotonic() < deadline, f"no stored strides for {athlete}"
        time.sleep(0.2)
    return read_partition(results, STRIDES, athlete, session).sort(FOOT, IC_T)


def _match(stored: pl.DataFrame, foot: str, ic_t: float) -> dict:
    rows = stored.filter((pl.col(FOOT) == foot) & ((pl.col(IC_T) - ic_t).abs() < 1e-6)).to_dicts()
    assert len(rows) == 1, (foot, ic_t, rows)
    return rows[0]


def _status(row: dict) -> str:
    if not row[VALID]:
        return f"invalid: {row[REASON]}"
    return f"final: {row[CONTEXT]}" if row[CONTEXT] else "final"


def _count(page, attr: str) -> int:
    return int(page.locator("#live-counts").get_attribute(f"data-{attr}"))


def _docs_screenshot(server, page) -> None:
    """docs/dashboard-live.png: A001 streaming in real time, caught while a card is provisional."""
    proc = subprocess.Popen(
        _cli(
            "stream", "--device", "sim", "--to", f"ws://127.0.0.1:{server['port']}", "--key", server["admin"],
            "--athlete", "A001", "--session", "LIVE2", "--minutes", "1", "--seed", "5",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Nothing is emitted before the 20 s warm-up; then the view fills and goes on live.
        page.wait_for_selector(".live-athlete[data-session='LIVE2']", timeout=60_000)
        page.wait_for_function(
            "document.querySelectorAll('.live-card[data-foot=\"left\"] tbody tr').length >= 8"
            " && document.querySelector('.live-card.provisional') !== null",
            timeout=60_000,
        )
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "dashboard-live.png"), full_page=True)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_live_view_shows_each_stride_as_stored(server, browser):
    consoles: dict[str, list[str]] = {name: [] for name in ("coach", "one", "athlete", "other")}
    opened = []
    try:
        ctx, coach = _open_live(browser, server, server["coach"], "#/live", consoles["coach"])
        opened.append(ctx)
        _wait_state(coach, "live")
        assert "every athlete of team live-team" in coach.locator("#live-status").inner_text()
        assert coach.locator("#live-filter").is_visible()
        coach.evaluate(OBSERVE)

        # The filter form: a coach watching A001 only.
        ctx, one = _open_live(browser, server, server["coach"], "#/live", consoles["one"])
        opened.append(ctx)
        _wait_state(one, "live")
        one.fill("#live-athlete", "A001")
        one.click("#live-watch")
        one.wait_for_selector("#view[data-ready='#/live/A001']")
        _wait_state(one, "live")
        assert one.locator("#live-status").inner_text() == "live: athlete A001"

        # An athlete key: its own strides only, no filter to choose.
        ctx, athlete = _open_live(
            browser, server, server["athlete2"], "#/live", consoles["athlete"], width=1000
        )
        opened.append(ctx)
        _wait_state(athlete, "live")
        assert athlete.locator("#live-status").inner_text() == "live: athlete A002"
        assert not athlete.locator("#live-filter").is_visible()

        # An athlete key asking for another athlete: closed with the server's reason, no retry.
        ctx, other = _open_live(
            browser, server, server["athlete2"], "#/live/A001", consoles["other"], width=1000
        )
        opened.append(ctx)
        _wait_state(other, "closed")
        status = other.locator("#live-status")
        assert status.get_attribute("data-code") == "4403"
        assert "closed (4403): athlete keys see only their own strides" in status.inner_text()

        streams = [
            subprocess.Popen(
                _cli(
                    "stream", "--device", "sim", "--to", f"ws://127.0.0.1:{server['port']}",
                    "--key", server["admin"], "--athlete", athlete_id, "--session", SESSION,
                    "--speed", "max", "--minutes", "0.5", "--seed", str(seed), "--activity", activity,
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for athlete_id, (seed, activity) in STREAMS.items()
        ]  # fmt: skip
        for proc in streams:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out
        stored = {a: _stored(server, a) for a in STREAMS}
        n1, n2 = len(stored["A001"]), len(stored["A002"])
        assert n1 > 20 and n2 > 20

        # Every final row published reached the pages that may see it.
        coach.wait_for_function(f"document.getElementById('live-counts').dataset.stride === '{n1 + n2}'")
        one.wait_for_function(f"document.getElementById('live-counts').dataset.stride === '{n1}'")
        athlete.wait_for_function(f"document.getElementById('live-counts').dataset.stride === '{n2}'")

        for athlete_id, table in stored.items():
            section = coach.locator(f".live-athlete[data-athlete='{athlete_id}']")
            assert section.get_attribute("data-session") == SESSION
            for foot in ("left", "right"):
                mine = table.filter(pl.col(FOOT) == foot)
                card = section.locator(f".live-card[data-foot='{foot}']")
                # The headline is the foot's latest stride, final now that the stream has ended.
                latest = mine.row(-1, named=True)
                assert float(card.get_attribute("data-ic-t")) == pytest.approx(latest[IC_T], abs=1e-9)
                assert card.get_attribute("data-kind") == "stride"
                assert card.locator("h3 .badge").inner_text() == _status(latest)
                for metric, decimals in SHOWN.items():
                    shown = card.locator(f"dl.latest dd[data-metric='{metric}']").inner_text()
                    assert shown == _fmt(latest[metric], decimals), (athlete_id, foot, metric)
                assert card.locator("dd[data-metric='strike_type']").inner_text() == latest[STRIKE_TYPE]
                # The recent-strides table: the last RECENT strides, newest first, as stored.
                rows = card.locator("table.live-recent tbody tr")
                assert rows.count() == min(RECENT, len(mine))
                expected_ic = mine[IC_T].to_list()[::-1][:RECENT]
                for i in range(rows.count()):
                    tr = rows.nth(i)
                    ref = _match(table, foot, float(tr.get_attribute("data-ic-t")))
                    assert ref[IC_T] == pytest.approx(expected_ic[i], abs=1e-9)
                    assert tr.get_attribute("data-kind") == "stride"
                    assert tr.locator("td[data-col='status']").inner_text() == _status(ref)
                    assert ("invalid" in (tr.get_attribute("class") or "")) == (not ref[VALID])
                    assert tr.locator("td[data-col='strike_type']").get_attribute("title") == ref[STRIKE_TYPE]
                    for metric, decimals in SHOWN.items():
                        shown = tr.locator(f"td[data-col='{metric}']").inner_text()
                        assert shown == _fmt(ref[metric], decimals), (athlete_id, foot, ref[IC_T], metric)
                # Sparklines: one point per valid stride of the last HISTORY, per foot.
                window = mine.tail(HISTORY)
                for metric in (TOE_OFF_PRONATION_DEG, PRONATION_EXCURSION_DEG):
                    valid = window.filter(pl.col(VALID) & pl.col(metric).is_not_nan()).height
                    path = coach.locator(
                        f"svg[data-spark='{athlete_id}-{metric}'] g[data-foot='{foot}'] path"
                    )
                    assert int(path.get_attribute("data-points")) == valid
            # The simulated walk and run end in a turn: its strides are valid (measured), shown as
            # final with their context, not greyed (checked row by row above with `_status`).
            assert table.filter(pl.col(CONTEXT) == "turn").height > 0
            # Invalid strides, if any, are greyed, with the reason.
            grey = section.locator("tr.invalid")
            for i in range(grey.count()):
                tr = grey.nth(i)
                ref = _match(table, tr.get_attribute("data-foot"), float(tr.get_attribute("data-ic-t")))
                assert not ref[VALID]
                assert tr.locator(".badge").inner_text() == f"invalid: {ref[REASON]}"
                assert (
                    tr.locator("td").first.evaluate("n => getComputedStyle(n).color") == "rgb(154, 163, 178)"
                )

        # Provisional rows were shown as provisional (italic, badge) and replaced in place by the
        # final row with the same foot and ic_t; none is left over.
        seen = coach.evaluate("window.__rows")
        provisional = {(r["athlete"], r["foot"], r["ic_t"]) for r in seen if r["kind"] == "stance"}
        for r in seen:
            if r["kind"] == "stance":
                assert r["italic"] and (r["badge"] == "provisional" or r["badge"].startswith("invalid: ")), r
        assert all(not r["italic"] for r in seen if r["kind"] == "stride")
        finals = {(r["athlete"], r["foot"], r["ic_t"]) for r in seen if r["kind"] == "stride"}
        assert len(provisional) > 20
        # In a burst a row can leave a card's table (RECENT rows) before its final row arrives;
        # the final rows of most provisional rows are seen in place.
        assert len(provisional & finals) > len(provisional) / 2
        # A stride's final row is published up to ~2 s after its stance row (the zero-velocity
        # margin of the running anchors, issue 17): wait for the last ones before comparing.
        coach.wait_for_function(
            "() => { const c = document.getElementById('live-counts');"
            " return c.dataset.replaced === c.dataset.stance; }",
            timeout=15_000,
        )
        assert _count(coach, "replaced") == _count(coach, "stance") > 0
        assert coach.locator(".live-athlete tr.provisional, .live-card.provisional").count() == 0
        for athlete_id, table in stored.items():
            keys = {(athlete_id, f, t) for f, t in table.select(FOOT, IC_T).iter_rows()}
            assert {k for k in provisional if k[0] == athlete_id} <= keys

        # What each key saw.
        assert one.locator(".live-athlete").evaluate_all("ns => ns.map(n => n.dataset.athlete)") == ["A001"]
        assert athlete.locator(".live-athlete").evaluate_all("ns => ns.map(n => n.dataset.athlete)") == [
            "A002"
        ]
        assert athlete.locator(".live-card[data-athlete='A001']").count() == 0
        assert "A001" not in athlete.locator("#live-athletes").inner_text()
        assert other.locator(".live-card").count() == 0
        assert other.locator("#live-status").get_attribute("data-state") == "closed"

        # Leaving the view closes the socket for good.
        coach.click("#nav-team")
        coach.wait_for_selector("#view[data-ready='#/team']", timeout=30_000)
        assert coach.locator("#live-status").count() == 0

        path = server["tmp"] / "dashboard-live.png"
        one.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        if os.environ.get("STRIDEFLOW_UPDATE_DOCS") == "1":
            _docs_screenshot(server, one)

        for name, messages in consoles.items():
            assert messages == [], (name, messages)
    finally:
        for ctx in opened:
            ctx.close()


def test_live_view_shows_a_refused_key_and_does_not_retry(server, browser):
    console: list[str] = []
    ctx, page = _open_live(browser, server, "sf_" + "0" * 32 + "_nope", "#/live", console)
    try:
        _wait_state(page, "closed")
        status = page.locator("#live-status")
        assert status.get_attribute("data-code") == "4401"
        assert status.inner_text() == "closed (4401): invalid API key"
        time.sleep(1.5)  # longer than the first backoff: still closed, no new attempt
        assert status.get_attribute("data-state") == "closed"
        assert all("401" in m for m in console), console  # the REST calls' refusals
    finally:
        ctx.close()


def test_live_view_reconnects_with_backoff_after_the_server_restarts(server, browser):
    console: list[str] = []
    ctx, page = _open_live(browser, server, server["coach"], "#/live", console)
    try:
        _wait_state(page, "live")
        server["handle"].stop()
        _wait_state(page, "reconnecting")
        status = page.locator("#live-status")
        assert "reconnecting in 1 s" in status.inner_text()
        # The next attempts find no server and wait longer each time.
        page.wait_for_function(
            "document.getElementById('live-status').textContent.includes('reconnecting in 2 s')",
            timeout=10_000,
        )
        assert status.get_attribute("data-code") == "1006"
        server["handle"].start()
        _wait_state(page, "live")
        assert status.inner_text() == "live: every athlete of team live-team"
        # Only the browser's notes on the refused connections were logged: the WebSocket's, and
        # the devices poll's (GET /v1/streams every 5 s) when the outage outlasts a poll.
        assert all("WebSocket connection to" in m or "ERR_CONNECTION_REFUSED" in m for m in console), console
    finally:
        ctx.close()


def test_live_view_replays_what_it_missed_while_offline(server, browser):
    """A page that loses its connection resumes with `since` and shows every stride published
    meanwhile, once (the server replays at least once; the page drops what it has)."""
    console: list[str] = []
    ctx, page = _open_live(browser, server, server["coach"], "#/live/A001", console)
    try:
        _wait_state(page, "live")
        ctx.set_offline(True)
        page.evaluate("live.ws.close()")  # an open socket outlives the emulation: drop it too
        _wait_state(page, "reconnecting")
        done = subprocess.run(
            _cli(
                "stream", "--device", "sim", "--to", f"ws://127.0.0.1:{server['port']}",
                "--key", server["admin"], "--athlete", "A001", "--session", "REPLAY1",
                "--speed", "max", "--minutes", "0.5", "--seed", "5", "--activity", "walk",
            ),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        n = len(_stored(server, "A001", "REPLAY1"))
        assert n > 20
        assert _count(page, "stride") == 0, "the page was offline: nothing can have arrived"
        ctx.set_offline(False)
        page.wait_for_function(
            f"document.getElementById('live-counts').dataset.stride === '{n}'", timeout=30_000
        )
        _wait_state(page, "live")
        section = page.locator(".live-athlete[data-athlete='A001']")
        assert section.get_attribute("data-session") == "REPLAY1"
        time.sleep(0.5)  # nothing more (no duplicates) arrives
        assert _count(page, "stride") == n
        assert all("WebSocket" in m or "ERR_INTERNET_DISCONNECTED" in m for m in console), console
    finally:
        ctx.close()


def test_live_view_lists_the_devices_streaming_now(server, browser):
    console: list[str] = []
    ctx, page = _open_live(browser, server, server["coach"], "#/live", console)
    proc = subprocess.Popen(
        _cli(
            "stream", "--device", "sim", "--to", f"ws://127.0.0.1:{server['port']}",
            "--key", server["admin"], "--athlete", "A002", "--session", "DEVICES1",
            "--speed", "realtime", "--minutes", "0.25", "--seed", "9", "--foot", "left",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_state(page, "live")
        page.wait_for_selector("#live-devices[data-count='1']", timeout=30_000)
        text = page.locator("#live-devices").inner_text()
        assert text.startswith("Streaming now (1): A002 left (") and "last packet" in text, text
        proc.terminate()  # the device goes away without ending: still held, shown disconnected
        page.wait_for_function(
            "document.getElementById('live-devices').textContent.includes('disconnected')", timeout=30_000
        )
        assert not console, console
    finally:
        proc.kill()
        proc.wait()
        ctx.close()


def test_team_row_of_a_streaming_athlete_shows_stored_figures_marked_live(server, browser):
    """Issue 18: the team row of an athlete who is streaming showed only dashes. While the live
    session has no stored strides (warm-up) the row shows the previous analysed session's figures
    and says so; once strides are stored, the live session's own; both marked "live" with a link
    to the Live view. Every figure is one the API served to the page."""
    admin = server["admin"]
    stream = (
        "stream", "--device", "sim", "--to", f"ws://127.0.0.1:{server['port']}", "--key", admin,
        "--athlete", "A001", "--seed", "6",
    )  # fmt: skip
    done = subprocess.run(
        _cli(*stream, "--session", "TEAMPREV", "--speed", "max", "--minutes", "0.5"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen(
        _cli(*stream, "--session", "TEAMLIVE", "--speed", "realtime", "--minutes", "0.75"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    console: list[str] = []
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    served: list[dict] = []  # every /v1/athletes/A001/sessions page the dashboard received

    def keep(response) -> None:
        if "/v1/athletes/A001/sessions" in response.url and response.ok:
            served.append({s["session_id"]: s for s in response.json()["items"]})

    page.on("response", keep)
    row = page.locator("#team-table tbody tr[data-row='A001']")

    def shown_figures_match(session_id: str) -> None:
        """The row's pronation medians and stride counts are those of `session_id` in a response."""
        cells = {
            foot: row.locator(f"td[data-col='pronation_excursion_deg.{foot}']").inner_text()
            for foot in ("left", "right")
        }
        options = []
        for page_items in served:
            s = page_items.get(session_id)
            if s and s["feet"]:
                med = {f["foot"]: f["median"]["pronation_excursion_deg"] for f in s["feet"]}
                options.append({foot: _fmt(med.get(foot), 1) for foot in ("left", "right")})
        assert cells in options, (session_id, cells, options)
        assert "–" not in cells.values()

    try:
        # The stream's hello registers TEAMLIVE; open the team view before its first strides are stored.
        deadline = time.monotonic() + 30
        while not (server["data"] / "stream-wal").exists() or not any(
            "TEAMLIVE" in str(p) for p in (server["data"] / "stream-wal").rglob("*")
        ):
            assert time.monotonic() < deadline, "the live stream never started"
            time.sleep(0.2)
        page.goto(f"{server['base']}/#/team")
        page.fill("#api-key", server["coach"])
        page.click("#login-button")
        page.wait_for_selector("#view[data-ready='#/team']", timeout=30_000)
        row.locator("a.badge.live").wait_for(timeout=30_000)
        assert row.locator("td[data-col='latest']").inner_text().startswith("TEAMLIVE live")
        assert row.locator("a.badge.live").get_attribute("href") == "#/live/A001"
        if not has_partition(server["data"] / "results", STRIDES, "A001", "TEAMLIVE"):
            # warm-up: the previous analysed session's figures, named
            note = row.locator(".figures-from")
            previous = note.get_attribute("data-session")
            assert previous == "TEAMPREV", previous
            assert f"figures of {previous}" in note.inner_text()
            shown_figures_match(previous)
        # The view refreshes itself while someone is live: the live session's own stored figures.
        page.wait_for_function(
            "() => { const r = document.querySelector(\"#team-table tr[data-row='A001']\");"
            " return r && r.querySelector('.badge.live') && !r.querySelector('.figures-from'); }",
            timeout=90_000,
        )
        shown_figures_match("TEAMLIVE")
        assert proc.wait(timeout=120) == 0
        # Ended: no live marker, the session's final figures.
        page.reload()
        page.wait_for_selector("#view[data-ready='#/team']", timeout=30_000)
        assert row.locator("a.badge.live").count() == 0 and row.locator(".figures-from").count() == 0
        # the newest session (the list orders one day's sessions by id: TEAMPREV after TEAMLIVE)
        assert row.locator("td[data-col='latest']").inner_text() == "TEAMLIVE"
        shown_figures_match("TEAMLIVE")
        assert not console, console
    finally:
        proc.kill()
        proc.wait()
        ctx.close()
