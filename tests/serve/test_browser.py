"""covplan serve in a real browser (Debian's /usr/bin/chromium driven by Playwright): add a facility
by clicking the map and see the figure covplan compare gives for the same plan; remove it and undo;
two pages stay in sync; nothing is requested from outside the local server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from browser import CHROME_FLAGS, CHROMIUM, require_chromium

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _covered(page, service: str = "elderly") -> int:
    return int(page.locator(f'tr[data-service="{service}"] .covered').inner_text().replace(",", ""))


def _pixel(page, lat: float, lon: float) -> tuple[float, float]:
    return tuple(page.evaluate(
        "([lat, lon]) => { const p = covplanMap.latLngToContainerPoint([lat, lon]);"
        " const r = document.getElementById('map').getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }",
        [lat, lon]))


def _wait_version(page, newer_than: int) -> int:
    page.wait_for_function(f"() => Number(document.body.dataset.version) > {newer_than}", timeout=20000)
    page.wait_for_timeout(200)
    return int(page.evaluate("() => document.body.dataset.version"))


def test_meeting_page_add_remove_undo_sync_and_compare(server, client, tmp_path):
    sync_api = require_chromium()
    outside: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_FLAGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 860})

            def route(r):  # noqa: ANN001
                if r.request.url.startswith(server):
                    r.continue_()
                else:
                    outside.append(r.request.url)
                    r.abort()

            ctx.route("**/*", route)
            pages = []
            for _ in range(2):
                p = ctx.new_page()
                p.on("pageerror", lambda e: errors.append(str(e)))
                p.goto(server + "/")
                p.wait_for_selector("body[data-ready='1']", timeout=20000)
                pages.append(p)
            a, b = pages
            base = _covered(a)
            v0 = int(a.evaluate("() => document.body.dataset.version"))
            # the biggest block of people without elderly care: zoom there and click the map
            unc = client.get("/api/layers/elderly").json()["uncovered"]
            lat, lon = max(unc, key=lambda u: u[2])[:2]
            a.evaluate("([lat, lon]) => { covplanMap.setView([lat, lon], 15, {animate: false}); }", [lat, lon])
            a.wait_for_timeout(300)
            a.mouse.click(*_pixel(a, lat, lon))
            a.wait_for_selector("#addform:not([hidden])")
            a.fill("#f-name", "浏览器测试日间照料中心")
            a.select_option("#f-service", "elderly")
            a.select_option("#f-ftype", "day_care")
            a.click("#f-add")
            v1 = _wait_version(a, v0)
            added = _covered(a)
            assert added > base
            # the other page follows (server push)
            _wait_version(b, v0)
            b.wait_for_function(f"() => Number(document.body.dataset.version) >= {v1}")
            b.wait_for_timeout(300)
            assert _covered(b) == added
            a.evaluate("() => { covplanMap.setZoom(12, {animate: false}); }")
            a.wait_for_timeout(1000)  # the layers of the new state
            # the screenshot of docs/使用说明.md is refreshed only when asked (a test run leaves the tree as it was)
            shot = DOCS / "serve.png" if os.environ.get("COVPLAN_UPDATE_DOCS") == "1" else tmp_path / "serve.png"
            a.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            # the same plan through covplan compare (the export): the same figure
            r = client.post("/api/export")
            assert r.status_code == 200, r.text
            exp = json.loads((Path(r.json()["folder"]) / "summary.json").read_text(encoding="utf-8"))
            assert round(exp["categories"]["elderly"]["population_covered"]) == added
            assert exp["comparison"]["plan"].endswith("方案1")
            # click the new facility, remove it: back to the baseline; undo: added again
            new = [f for f in client.get("/api/facilities").json()["features"] if f["properties"]["new"]]
            lon, lat = new[0]["geometry"]["coordinates"]
            a.keyboard.press("Escape")
            a.evaluate("([lat, lon]) => { covplanMap.setView([lat, lon], 16, {animate: false}); }", [lat, lon])
            a.wait_for_timeout(300)
            a.mouse.click(*_pixel(a, lat, lon))
            a.wait_for_selector(".p-remove")
            assert "浏览器测试日间照料中心" in a.locator(".leaflet-popup-content").inner_text()
            a.click(".p-remove")
            v2 = _wait_version(a, v1)
            assert _covered(a) == base
            a.click("#undo")
            _wait_version(a, v2)
            assert _covered(a) == added
            # the English toggle
            a.click("#lang")
            assert a.locator("#undo").inner_text() == "Undo"
        finally:
            browser.close()
    assert not errors, errors
    assert not outside, outside
