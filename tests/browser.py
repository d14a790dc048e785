"""Open a local HTML page in Debian's headless Chromium (driven by Playwright) and report what
happened: JS errors, every network request, layer-control entries, the service switcher's choices,
legend and banner text.

Used by the map tests. Requires ``/usr/bin/chromium`` (CI installs Debian's ``chromium`` package and
sets ``COVPLAN_REQUIRE_BROWSER=1``, which turns a missing browser into a failure, not a skip).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PageReport:
    """What the browser saw."""

    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    overlays: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    legend: str = ""
    banner: str = ""
    n_layers: int = 0


def require_chromium():
    """Return playwright's sync API, or skip (fail under CI) when Chromium or Playwright is missing."""
    need = os.environ.get("COVPLAN_REQUIRE_BROWSER") == "1"
    if not CHROMIUM.exists():
        if need:
            pytest.fail("/usr/bin/chromium missing but COVPLAN_REQUIRE_BROWSER=1")
        pytest.skip("/usr/bin/chromium not installed (CI installs Debian's chromium package)")
    return pytest.importorskip("playwright.sync_api")


def open_map(html: Path, profile: Path, screenshot: Path) -> PageReport:
    """Load ``html`` from disk, block and record every other request, and take a screenshot."""
    sync_api = require_chromium()
    url = html.resolve().as_uri()
    rep = PageReport(url=url)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        # Playwright passes the user-data dir itself (it refuses a --user-data-dir argument).
        ctx = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROME_FLAGS, headless=True,
            viewport={"width": 1280, "height": 860},
        )
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("request", lambda r: rep.requests.append(r.url))
            page.on("pageerror", lambda e: rep.errors.append(str(e)))
            page.on("console", lambda m: rep.errors.append(m.text) if m.type == "error" else None)
            # Record *and* block anything but the page itself, so nothing can leak out.
            page.route("**/*", lambda route: route.continue_() if route.request.url == url
                       else route.abort())
            page.goto(url, wait_until="load")
            page.wait_for_selector(".leaflet-container")
            page.wait_for_timeout(500)
            labels = page.locator(".leaflet-control-layers-overlays label")
            rep.overlays = [labels.nth(i).inner_text().strip() for i in range(labels.count())]
            radios = page.locator(".cov-switcher label")
            rep.services = [radios.nth(i).inner_text().strip() for i in range(radios.count())]
            rep.legend = page.locator(".cov-legend").inner_text()
            if page.locator(".cov-banner").count():
                rep.banner = page.locator(".cov-banner").inner_text()
            rep.n_layers = page.evaluate(
                "() => { const m = Object.values(window).find(v => v instanceof L.Map);"
                " let n = 0; m.eachLayer(() => { n += 1; }); return n; }"
            )
            page.screenshot(path=str(screenshot))
        finally:
            ctx.close()
    return rep
