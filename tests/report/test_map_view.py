"""One service per view: the meeting map in headless Chromium at 1366×768 (issue 14).

The demo is run once; the page must open on the worst-covered service (computed here from
summary.json), show only that service's choropleth, uncovered people and facilities (checked on the
Leaflet layers the map holds, against summary.json and the facility layer of layers.gpkg), switch to
another service with a click, label every 乡镇, carry a north arrow and the source/date block with the
示意图 and 审图号 notes, make no network request and fit a 1366×768 screen. A ``covplan site
--category clinic`` run opens on 医疗卫生, and the real-data Macau run opens on its worst-covered
service with its unit labelled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from typer.testing import CliRunner

from browser import CHROME_FLAGS, CHROMIUM, require_chromium
from coverage import pipeline, plans
from coverage.cli import app

pytestmark = pytest.mark.browser

#: Service labels as a planner reads them (independent of coverage.categories).
LONG = {"school": "学校/教育", "clinic": "医疗卫生", "elderly": "养老服务", "fitness": "体育健身"}
SHORT = {"school": "学校", "clinic": "医疗", "elderly": "养老", "fitness": "体育"}

#: What the page holds: per Leaflet layer on the map, the choropleth tooltips, the uncovered-people
#: tooltips and the facility names; the visible 乡镇 labels and the boxes of the page furniture.
_INSPECT = """() => {
  const m = Object.values(window).find(v => v instanceof L.Map);
  const out = {choro: [], uncovered: [], facilities: [], labels: [], shown: null, title: "", boxes: {},
               legend: "", source: "", north: 0, scroll: 0, client: 0, whatif: null};
  m.eachLayer(l => {
    if (!(l instanceof L.Path)) return;
    const tip = l.getTooltip && l.getTooltip() ? l.getTooltip().getContent() : "";
    const p = l.feature && l.feature.properties;
    if (l instanceof L.Polygon && typeof tip === "string" && tip.includes("覆盖率")) out.choro.push(tip);
    else if (l instanceof L.CircleMarker && typeof tip === "string" && tip.includes("未覆盖人口")) out.uncovered.push(tip);
    else if (l instanceof L.CircleMarker && p && "_fill" in p) out.facilities.push(p["名称"]);
  });
  document.querySelectorAll(".cov-unit-label span").forEach(s => {
    const r = s.getBoundingClientRect();
    out.labels.push([s.textContent, s.style.visibility !== "hidden", [r.left, r.top, r.right, r.bottom]]);
  });
  const sw = document.querySelector(".cov-switcher");
  out.shown = sw ? sw.getAttribute("data-service") : null;
  out.title = document.querySelector(".cov-title").textContent;
  out.tab = document.title;
  const lg = document.querySelector(".cov-legend");
  out.legend = lg.innerText; out.scroll = lg.scrollHeight; out.client = lg.clientHeight;
  out.source = document.querySelector(".cov-source").innerText;
  out.north = document.querySelectorAll(".cov-north svg").length;
  const sel = document.getElementById("cov-wi-service");
  out.whatif = sel ? sel.selectedOptions[0].getAttribute("data-key") : null;
  for (const [k, q] of Object.entries({title: ".cov-title", banner: ".cov-banner", legend: ".cov-legend",
      switcher: ".cov-switcher", layers: ".leaflet-control-layers", source: ".cov-source",
      north: ".cov-north", zoom: ".leaflet-control-zoom", scale: ".leaflet-control-scale",
      whatif: "#cov-whatif"})) {
    const e = document.querySelector(q);
    if (e) { const r = e.getBoundingClientRect(); out.boxes[k] = [r.left, r.top, r.right, r.bottom]; }
  }
  return out;
}"""


def _view(html: Path, profile: Path, clicks: tuple[str, ...] = (), shot: Path | None = None) -> list[dict[str, Any]]:
    """Open ``html`` at 1366×768 and inspect it, then again after clicking each switcher value in ``clicks``."""
    sync_api = require_chromium()
    url = html.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    views = []
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=str(CHROMIUM), args=CHROME_FLAGS,
                                                    headless=True, viewport={"width": 1366, "height": 768})
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("request", lambda r: requests.append(r.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            page.goto(url, wait_until="load")
            page.wait_for_selector(".leaflet-container")
            page.wait_for_timeout(800)  # the opening fitBounds zoom animation
            if shot is not None:
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot))
            views.append(page.evaluate(_INSPECT))
            for key in clicks:
                page.click(f'.cov-switcher input[value="{key}"]')  # a real mouse click on the radio button
                page.wait_for_timeout(200)
                views.append(page.evaluate(_INSPECT))
        finally:
            ctx.close()
    for v in views:
        v["errors"], v["requests"] = errors, [r for r in requests if r != url]
    return views


def _worst(summary: dict) -> str:
    shares = {k: c["share_covered"] for k, c in summary["categories"].items() if c["share_covered"] is not None}
    return min(shares, key=shares.get)


def _check_one_service(view: dict, key: str, summary: dict, gpkg: Path) -> None:
    """Only ``key``'s layers are on the map, and they hold ``key``'s figures (summary.json, layers.gpkg)."""
    facilities = gpd.read_file(gpkg, layer="facilities")
    uncovered = gpd.read_file(gpkg, layer="uncovered")
    assert view["shown"] == key
    assert view["title"].endswith(f"· {LONG[key]}覆盖") and view["tab"] == view["title"]
    cat = summary["categories"][key]
    # choropleth: one polygon per 乡镇 with the service's share of summary.json
    want = {u["name"]: f"{100 * u['share']:.1f}%" for u in cat["by_unit"] if u["share"] is not None}
    got = {}
    for tip in view["choro"]:
        m = re.fullmatch(r"乡镇（街道）：(.+)<br>(\S+)覆盖率：(.+)", tip)
        assert m, tip
        assert m.group(2) == SHORT[key], tip  # no other service's choropleth is on
        got[m.group(1)] = m.group(3)
    assert got == want
    # uncovered people: only this service's points, and together the people summary.json counts as not covered
    people = []
    for tip in view["uncovered"]:
        m = re.fullmatch(r"(\S+)未覆盖人口：(\d+)人", tip)
        assert m and m.group(1) == SHORT[key], tip
        people.append(int(m.group(2)))
    # layers.gpkg's uncovered layer keeps the cells with at least half a person lacking the service
    lack = float(uncovered[f"uncovered_{key}"].sum())
    assert abs(sum(people) - lack) <= 0.5 * len(people) + 1, (sum(people), lack)
    assert sum(people) <= cat["population"] - cat["population_covered"] + 0.5 * len(people)
    # facilities: exactly this service's, every one of them
    own = facilities[facilities["category"] == key]
    assert len(view["facilities"]) == len(own) > 0
    assert sorted(view["facilities"]) == sorted(own["name"].fillna("").astype(str))
    assert f"{LONG[key]}设施" in view["legend"]
    assert not any(f"{LONG[o]}设施" in view["legend"] for o in LONG if o != key)


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _check_layout(view: dict, need: set[str]) -> None:
    """1366×768: the furniture is on screen, nothing overlaps, the legend needs no scrolling."""
    boxes = view["boxes"]
    assert need <= set(boxes)
    for name, (x0, y0, x1, y1) in boxes.items():
        assert 0 <= x0 < x1 <= 1366 and 0 <= y0 < y1 <= 768, (name, boxes[name])
    names = sorted(boxes)
    clash = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if _overlap(boxes[a], boxes[b])]
    assert clash == []
    assert view["scroll"] <= view["client"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    out = tmp_path_factory.mktemp("view") / "demo"
    pipeline.run_scenario(repo_root / "scenarios" / "demo_baseline.yaml", out)
    return out


def test_demo_opens_on_the_worst_covered_service_and_switches(demo: Path, tmp_path: Path, repo_root: Path) -> None:
    summary = json.loads((demo / "summary.json").read_text(encoding="utf-8"))
    units = gpd.read_file(demo / "layers.gpkg", layer="units")
    worst = _worst(summary)
    other = "school" if worst != "school" else "clinic"
    first, switched = _view(demo / "map.html", tmp_path / "profile", (other,),
                            shot=repo_root / "tests" / "_artifacts" / "demo_map_1366.png")
    assert first["errors"] == [] and first["requests"] == []

    _check_one_service(first, worst, summary, demo / "layers.gpkg")
    assert first["title"].startswith(summary["scenario"])  # the scenario is named
    assert first["whatif"] == worst  # the 情景推演 panel follows the map
    _check_one_service(switched, other, summary, demo / "layers.gpkg")
    assert switched["whatif"] == other

    # every 乡镇 is labelled; shown labels never overlap
    labels = {name for name, _, _ in first["labels"]}
    assert labels == set(units["name"])
    shown = [box for _, vis, box in first["labels"] if vis]
    assert len(shown) >= 0.8 * len(units)
    assert not any(_overlap(a, b) for i, a in enumerate(shown) for b in shown[i + 1:])

    # north arrow and the source/date block
    assert first["north"] == 1
    run = summary["run"]
    src = first["source"]
    assert f"制图日期：{run['date']}" in src and run["preset"] in src and "标准预设" in src
    for s in run["sources"]:
        assert s["file"] in src, s
    assert "示意图，不作为权属依据" in src and "审图号" in src and "合成示例数据" in src

    for view in (first, switched):
        _check_layout(view, {"title", "banner", "legend", "switcher", "layers", "source", "north", "scale", "whatif"})


@pytest.mark.slow
def test_site_run_opens_on_its_category(tmp_path: Path, repo_root: Path) -> None:
    run = plans.site_scenario(repo_root / "scenarios" / "demo_baseline.yaml", tmp_path / "site", "clinic", add=2)
    assert run.plan.summary["siting"]["service"] == "clinic"
    (view,) = _view(tmp_path / "site" / "map.html", tmp_path / "profile",
                    shot=repo_root / "tests" / "_artifacts" / "site_map_1366.png")
    assert view["errors"] == [] and view["requests"] == []
    _check_one_service(view, "clinic", run.plan.summary, tmp_path / "site" / "layers.gpkg")
    assert "选址方案" in view["title"]
    _check_layout(view, {"title", "banner", "legend", "switcher", "layers", "source", "north", "scale", "whatif"})


@pytest.mark.slow
def test_macau_real_data_opens_on_one_service_with_its_unit_labelled(tmp_path: Path, repo_root: Path,
                                                                    shared_data: Path) -> None:
    out = tmp_path / "macau"
    res = CliRunner().invoke(app, ["run", str(repo_root / "tests" / "data" / "macau.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert any(c["share_covered"] is None for c in summary["categories"].values())  # elderly: no data
    (view,) = _view(out / "map.html", tmp_path / "profile")
    assert view["errors"] == [] and view["requests"] == []
    worst = _worst(summary)
    assert worst == "clinic"  # 95 % of people within reach of a clinic; schools, fitness higher
    _check_one_service(view, worst, summary, out / "layers.gpkg")
    assert [(n, vis) for n, vis, _ in view["labels"]] == [("澳门特别行政区", True)]
    assert "示意图" in view["source"] and "合成示例数据" not in view["source"]
    assert "mac_pd_2020_1km.tif" in view["source"]
    _check_layout(view, {"title", "legend", "switcher", "layers", "source", "north", "scale"})
