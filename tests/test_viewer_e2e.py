"""The web viewer end to end: Debian's chromium driven by Playwright against a live service.

An operator signs in, opens an alarmed scan, zooms, toggles the heat map and gray view,
confirms, clears, draws a missed box; the decisions must then be in the database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
from station_helpers import (  # noqa: E402
    LiveServer,
    drag_box,
    dual_pair_bytes,
    png_bytes,
    tiny_model,
)

from detector.station import auth  # noqa: E402
from detector.station.app import create_app  # noqa: E402
from detector.station.detectors import make_handle  # noqa: E402
from detector.station.station import Station  # noqa: E402
from detector.station.store import Upload  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 15_000
_CANVAS_MEAN = """() => { const c = document.getElementById('base');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s / (d.length / 4); }"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin "
                                                     "(.ci/run installs it)"),
]


@pytest.fixture
def station(tmp_path):
    station = Station(tmp_path / "data", make_handle([tiny_model("dual")[0]]))
    high, low = dual_pair_bytes(shape=(120, 160))
    station.receive([Upload("high", high), Upload("low", low)])
    blank = png_bytes(np.full((40, 50), 65535, np.uint16))
    station.receive([Upload("file", blank)])  # unreadable: shown for manual check
    alarmed = station.receive([Upload("high", high), Upload("low", low)])
    assert alarmed.alarm and alarmed.status == "ok"
    return station


@pytest.fixture
def page():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def test_operator_reviews_scans_in_the_viewer(station, page):
    token = auth.add_operator(station.db, "bob")
    with LiveServer(create_app(station)) as server:
        page.goto(server.url + "/")
        page.fill("#token", "not-the-token-not-the-token")
        page.click("#login")
        sync_api.expect(page.locator("#login-error")).to_contain_text("not accepted")

        page.fill("#token", token)
        page.click("#login")
        sync_api.expect(page.locator("#operator")).to_have_text("bob")
        sync_api.expect(page.locator("#model-version")).to_contain_text("tiny-dual-1.0.0")
        sync_api.expect(page.locator("#queue li")).to_have_count(3)
        sync_api.expect(page.locator("#queue li[data-state=error]")).to_have_count(1)

        page.uncheck("#advance")  # several decisions on one scan here; moving on: below
        alarm = page.locator("#queue li[data-state=alarm]").first
        scan_id = alarm.get_attribute("data-id")
        alarm.click()
        sync_api.expect(page.locator("#scan-state")).to_contain_text("ALARM")
        sync_api.expect(page.locator("#boxes rect.detection").first).to_be_attached()
        assert page.evaluate("document.getElementById('base').width") == 160

        heat = page.locator("#heat")
        sync_api.expect(heat).to_be_hidden()
        page.click("#heat-toggle")
        sync_api.expect(heat).to_be_visible()
        page.locator("#heat-opacity").fill("30")
        assert page.evaluate("getComputedStyle(document.getElementById('heat')).opacity") == "0.3"
        page.locator("#viewport").focus()
        page.keyboard.press("h")
        sync_api.expect(heat).to_be_hidden()
        page.keyboard.press("g")
        assert page.is_checked("#gray-toggle")
        plain = page.evaluate(_CANVAS_MEAN)
        page.locator("#win-width").fill("40")  # a narrow window stretches the contrast
        page.locator("#win-level").fill("60")
        assert abs(page.evaluate(_CANVAS_MEAN) - plain) > 5
        before = page.inner_text("#zoom-label")
        page.mouse.move(*_centre(page))
        page.mouse.wheel(0, -300)
        sync_api.expect(page.locator("#zoom-label")).not_to_have_text(before)

        page.click("#confirm")
        sync_api.expect(page.locator("#decisions li[data-decision=confirm]")).to_have_count(1)
        page.locator("#viewport").focus()
        page.keyboard.press("x")
        sync_api.expect(page.locator("#decisions li[data-decision=clear]")).to_have_count(1)

        page.click("#missed")
        drag_box(page)
        sync_api.expect(page.locator("#boxes rect.drawn")).to_have_count(1)
        page.fill("#note", "second packet under the lining")
        page.click("#save-missed")
        sync_api.expect(page.locator("#decisions li[data-decision=missed]")).to_have_count(1)
        page.select_option("#filter", "")  # all scans: reviewed ones too
        page.click(f"#queue li[data-id='{scan_id}']")  # opened again: the saved box is drawn
        sync_api.expect(page.locator("#boxes rect.saved")).to_have_count(1)

    decisions = station.db.decisions(scan_id)
    assert [d.decision for d in decisions] == ["confirm", "clear", "missed"]
    assert {d.operator for d in decisions} == {"bob"}
    assert all(d.model_version == "tiny-dual-1.0.0" for d in decisions)
    (missed_box,) = decisions[2].boxes_xyxy
    x1, y1, x2, y2 = missed_box
    assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120 and x2 - x1 > 10
    assert decisions[2].note == "second packet under the lining"


def _centre(page) -> tuple[float, float]:
    box = page.locator("#viewport").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _sign_in(page, server, token: str) -> list[str]:
    """Sign in to the viewer; the ids of the station fixture's two readable scans, newest
    first, once the queue shows all three."""
    page.goto(server.url + "/")
    page.fill("#token", token)
    page.click("#login")
    sync_api.expect(page.locator("#queue li")).to_have_count(3)
    return [li.get_attribute("data-id")
            for li in page.locator("#queue li:not([data-state=error])").all()]


def test_a_decision_goes_to_the_scan_on_screen_when_scans_load_out_of_order(station, page):
    """The operator opens scan A, whose image is slow to come, and moves on to B before A has
    loaded: B is what is drawn, and the decision key saves on B, never on A (A's late answer
    is dropped); a key pressed while a scan is still loading saves nothing."""
    with LiveServer(create_app(station)) as server:
        slow_id, fast_id = _sign_in(page, server, auth.add_operator(station.db, "ann"))
        release = []
        page.route(f"**/api/scans/{slow_id}/image.png", lambda route: release.append(route))
        page.click(f"#queue li[data-id='{slow_id}']")
        sync_api.expect(page.locator("#scan-state")).to_contain_text("loading")
        page.locator("#viewport").focus()
        page.keyboard.press("x")  # while A loads: nothing is saved
        sync_api.expect(page.locator("#action-status")).to_contain_text("not loaded")
        page.click(f"#queue li[data-id='{fast_id}']")
        sync_api.expect(page.locator("#scan-state")).to_contain_text(f"{fast_id}: ALARM")
        page.wait_for_function("() => true")
        assert release, "the slow scan's image was never requested"
        release[0].continue_()  # A's image arrives after B is on screen
        page.wait_for_timeout(500)
        sync_api.expect(page.locator("#scan-state")).to_contain_text(fast_id)
        page.locator("#viewport").focus()
        page.keyboard.press("x")
        sync_api.expect(page.locator("#action-status")).to_contain_text(f"saved: clear ({fast_id})")
    assert [d.decision for d in station.db.decisions(fast_id)] == ["clear"]
    assert station.db.decisions(slow_id) == []


def test_the_queue_pages_to_older_scans_and_filters_alarms_to_review(station, page):
    """More scans waiting than one page (200): the oldest are one click away ("older
    scans"), never out of reach; "alarms to review" asks for exactly those."""
    import json
    from urllib.parse import parse_qs, urlparse

    token = auth.add_operator(station.db, "ann")
    asked = []

    def fake_queue(route):
        query = parse_qs(urlparse(route.request.url).query)
        asked.append(query)
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        total = limit + 3
        scans = [{"id": f"20261201T000000-{i:08x}", "status": "ok", "alarm": True,
                  "kind": "dual", "review": "unreviewed"}
                 for i in range(offset, min(total, offset + limit))]
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"scans": scans, "model": {}}))

    with LiveServer(create_app(station)) as server:
        page.route("**/api/scans?*", fake_queue)
        page.goto(server.url + "/")
        page.fill("#token", token)
        page.click("#login")
        sync_api.expect(page.locator("#queue li")).to_have_count(200)
        sync_api.expect(page.locator("#more")).to_be_visible()
        page.click("#more")
        sync_api.expect(page.locator("#queue li")).to_have_count(203)
        sync_api.expect(page.locator("#more")).to_be_hidden()
        page.select_option("#filter", "alarm=true&review=unreviewed")
        sync_api.expect(page.locator("#queue li")).to_have_count(200)
    assert asked[-1]["alarm"] == ["true"] and asked[-1]["review"] == ["unreviewed"]


def test_new_scans_appear_in_the_queue_without_a_refresh(station, page):
    """A scan the watch folder (or another client) adds while the operator works shows up by
    itself, and the refresh does not move the queue's scroll position."""
    page.add_init_script("localStorage.setItem('concealscan.queuePollMs', '300')")
    with LiveServer(create_app(station)) as server:
        _sign_in(page, server, auth.add_operator(station.db, "ann"))
        high, low = dual_pair_bytes(shape=(120, 160))
        new = station.receive([Upload("high", high), Upload("low", low)])
        sync_api.expect(page.locator("#queue li")).to_have_count(4)
        sync_api.expect(page.locator(f"#queue li[data-id='{new.id}']")).to_be_visible()
        for _ in range(60):  # a long queue, scrolled down: the poll keeps it where it was
            station.receive([Upload("high", high), Upload("low", low)])
        sync_api.expect(page.locator("#queue li")).to_have_count(64)
        page.eval_on_selector("aside", "a => { a.scrollTop = 400; }")
        page.wait_for_timeout(1000)  # several polls
        assert page.eval_on_selector("aside", "a => a.scrollTop") == 400


def test_keys_and_state_that_must_not_leak_between_scans(station, page):
    """A note typed for one scan is not saved on the next; Ctrl+C copies, never confirms; a
    held key records one decision; each scan opens in the full contrast window with the heat
    map as its box says; after a decision the next scan opens."""
    with LiveServer(create_app(station)) as server:
        first, second = _sign_in(page, server, auth.add_operator(station.db, "ivy"))
        page.click(f"#queue li[data-id='{first}']")
        sync_api.expect(page.locator("#scan-state")).to_contain_text(f"{first}: ")
        sync_api.expect(page.locator("#scan-state")).to_contain_text("review:")  # loaded
        page.fill("#note", "meant for the first scan")
        page.locator("#win-width").fill("20")
        page.click("#heat-toggle")
        page.click(f"#queue li[data-id='{second}']")
        sync_api.expect(page.locator("#scan-state")).to_contain_text(f"{second}: ")
        sync_api.expect(page.locator("#scan-state")).to_contain_text("review:")  # loaded
        assert page.input_value("#note") == ""
        assert page.input_value("#win-width") == "255"
        sync_api.expect(page.locator("#heat")).to_be_visible()
        page.locator("#viewport").focus()
        page.keyboard.press("Control+c")
        page.keyboard.down("c")  # held: the first press and its repeats
        page.keyboard.down("c")
        page.keyboard.up("c")
        sync_api.expect(page.locator("#action-status")).to_contain_text("saved: confirm")
        sync_api.expect(page.locator("#scan-state")).not_to_contain_text(second)  # moved on
    assert [d.decision for d in station.db.decisions(second)] == ["confirm"]
    assert station.db.decisions(second)[0].note == ""
    assert station.db.decisions(first) == []


def test_after_a_decision_the_keys_move_from_where_the_scan_stood(station, page):
    """With "then next scan" unticked, a decision takes the scan out of "to review"; J then
    opens the scan now in its place, not the top of the queue; while a missed box is being
    drawn, X saves nothing (the box would be dropped)."""
    with LiveServer(create_app(station)) as server:
        newest, oldest = _sign_in(page, server, auth.add_operator(station.db, "joe"))
        page.uncheck("#advance")
        page.click(f"#queue li[data-id='{newest}']")
        sync_api.expect(page.locator("#scan-state")).to_contain_text("review:")
        page.locator("#viewport").focus()
        page.keyboard.press("m")
        page.keyboard.press("x")
        sync_api.expect(page.locator("#action-status")).to_contain_text("save the missed box")
        page.keyboard.press("Escape")
        error = page.locator("#queue li[data-state=error]").get_attribute("data-id")
        page.click(f"#queue li[data-id='{error}']")  # the middle of the three
        sync_api.expect(page.locator("#scan-state")).to_contain_text("review:")
        page.locator("#viewport").focus()
        page.keyboard.press("x")
        sync_api.expect(page.locator("#action-status")).to_contain_text(f"saved: clear ({error})")
        sync_api.expect(page.locator("#queue li")).to_have_count(2)  # it left "to review"
        page.keyboard.press("j")
        sync_api.expect(page.locator("#queue li.selected")).to_have_attribute("data-id", oldest)


def test_operators_sign_in_while_health_says_scans_cannot_be_stored(station, page):
    """Health answers 503 (a folder turned unwritable, a full disk): the queue can still be
    reviewed, so the operator is signed in (also from a saved session) and the problem stays on
    screen; no error text says "undefined" (a 503 from health has problems, not a detail)."""
    problem = "data/scans/.staging: Permission denied; owned by root"
    station.storage_problems = lambda *_: [problem]
    page.add_init_script("localStorage.setItem('concealscan.queuePollMs', '300')")
    with LiveServer(create_app(station)) as server:
        _sign_in(page, server, auth.add_operator(station.db, "ann"))
        sync_api.expect(page.locator("#storage-warning")).to_be_visible()
        sync_api.expect(page.locator("#storage-warning")).to_contain_text(problem)
        sync_api.expect(page.locator("#queue li")).to_have_count(3)

        page.reload()  # the saved session signs in again, not out
        sync_api.expect(page.locator("#operator")).to_have_text("ann")
        sync_api.expect(page.locator("#storage-warning")).to_contain_text(problem)

        station.storage_problems = lambda *_: []  # fixed: the next poll takes the warning away
        sync_api.expect(page.locator("#storage-warning")).to_be_hidden()

        page.route("**/api/scans?*", lambda route: route.fulfill(
            status=503, content_type="application/json",
            body='{"status": "error", "problems": ["the disk is full"]}'))
        page.click("#refresh")
        status = page.locator("#action-status")
        sync_api.expect(status).to_contain_text("503: the disk is full")
        assert "undefined" not in status.inner_text()
