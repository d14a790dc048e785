"""The plan section of ``report.html`` (``covplan site`` and ``compare``): its figures are summary.json's.

On the demo county (``--category elderly --add 5``) the ranked sites, the totals, the optimality gap,
the marginal-gain curve and the before/after table by 乡镇 are read back from the HTML and compared
with ``summary.json`` and ``comparison.csv``; each site's road time to the nearest existing facility
is recomputed with a plain Dijkstra (tests/reference.py) on the graph with the points inserted;
Figure 2 (time to the nearest facility) counts people, its bins adding up to the service's people.
One real-data run (Macau, generated candidates) checks the section against its summary too.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from coverage import pipeline, settings
from coverage.cli import app
from reference import dijkstra, split_adj

pytestmark = pytest.mark.slow

MACAU = Path(__file__).resolve().parents[1] / "data" / "macau.yaml"


class Tables(HTMLParser):
    """Every ``<table>`` with its class and rows: row attributes and cells (text, class)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._cls = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"class": a.get("class", ""), "attrs": a, "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append({"attrs": a, "cells": []})
        elif tag in ("td", "th") and self.tables and self.tables[-1]["rows"]:
            self._cell, self._cls = [], a.get("class", "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1]["cells"].append(("".join(self._cell).strip(), self._cls))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(text: str, cls: str) -> list[dict]:
    p = Tables()
    p.feed(text)
    return [t for t in p.tables if t["class"] == cls]


def cell(row: dict, cls: str) -> str:
    return next(t for t, c in row["cells"] if cls in c.split())


def num(s: str) -> float:
    return float(s.replace(",", ""))


def run(*args: str) -> tuple[Path, str]:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return Path(args[args.index("--out") + 1]), res.output


@pytest.fixture(scope="module")
def site(tmp_path_factory, repo_root):
    out = tmp_path_factory.mktemp("site") / "out"
    run("site", str(repo_root / "scenarios" / "demo_baseline.yaml"), "--category", "elderly", "--add", "5",
        "--out", str(out))
    text = (out / "report.html").read_text(encoding="utf-8")
    return text, json.loads((out / "summary.json").read_text(encoding="utf-8")), out


def check_sites_table(text: str, siting: dict) -> None:
    """The ranked-site table and the summary sentence carry summary.json's figures, rounded."""
    (table,) = tables(text, "sites")
    rows = [r for r in table["rows"] if r["attrs"].get("class") == "site"]
    sites = siting["sites"]
    assert [int(r["attrs"]["data-rank"]) for r in rows] == [s["rank"] for s in sites] == list(range(1, len(sites) + 1))
    for r, s in zip(rows, sites, strict=True):
        assert r["cells"][1][0] == s["cid"]
        assert num(cell(r, "gain")) == round(s["new_covered"])
        assert num(cell(r, "cost")) == pytest.approx(s["cost_wan"], abs=0.05)
        assert num(cell(r, "per-person")) == round(s["cost_per_person_yuan"])
        assert s["cost_per_person_yuan"] == pytest.approx(s["cost_wan"] * 1e4 / s["new_covered"])
        assert num(cell(r, "minutes")) == pytest.approx(s["nearest_existing_min"], abs=0.05)
    total = next(r for r in table["rows"] if r["attrs"].get("class") == "total")
    assert num(cell(total, "gain")) == round(siting["new_covered"])
    assert num(cell(total, "cost")) == pytest.approx(sum(s["cost_wan"] for s in sites), abs=0.05)
    assert sum(s["new_covered"] for s in sites) == pytest.approx(siting["new_covered"])
    gap = re.search(r'class="opt-gap">([\d.]+)%<', text).group(1)
    assert float(gap) == pytest.approx(100 * siting["gap"], abs=0.005)
    assert num(re.search(r'class="total-gain">([\d,]+)<', text).group(1)) == round(siting["new_covered"])


def check_curve(text: str, siting: dict) -> None:
    """The marginal-gain bars are summary.json's curve: non-increasing, the sites' gains first."""
    curve, p = siting["marginal_curve"], len(siting["sites"])
    bars = re.findall(r'<rect class="gain" data-k="(\d+)" data-people="([\d.]+)"', text)
    assert [int(k) for k, _ in bars] == list(range(1, len(curve) + 1))
    np.testing.assert_allclose([float(v) for _, v in bars], curve, atol=0.01)
    assert all(a >= b - 1e-6 for a, b in zip(curve, curve[1:]))
    np.testing.assert_allclose(curve[:p], [s["new_covered"] for s in siting["sites"]])
    if len(curve) > p:
        said = re.search(rf"第{p + 1}个点位只能再新增覆盖 ([\d,]+) 人", text)
        assert said and num(said.group(1)) == round(curve[p])


def test_site_section_equals_summary(site) -> None:
    text, s, _ = site
    siting = s["siting"]
    assert len(siting["sites"]) == 5 and siting["model"] == "MCLP"
    check_sites_table(text, siting)
    check_curve(text, siting)
    assert len(siting["marginal_curve"]) == 8  # five sites and three beyond
    # why the gap list grows: proposed rows on top, the rest of the list accounted for
    g = siting["gap_rows"]
    assert g["plan"] == g["proposed"] + g["remaining"] and g["base"] == g["closed"] + g["kept"]
    assert g["remaining"] == g["kept"] + g["new"] and g["proposed"] == 5
    said = re.search(r"由现状 (\d+) 项变为方案后 (\d+) 项:其中 (\d+) 项", text)
    assert said and tuple(map(int, said.groups())) == (g["base"], g["plan"], g["proposed"])


def test_site_project_bank_note_gives_road_time(site) -> None:
    _, s, out = site
    bank = pd.read_excel(out / "gaps.xlsx", sheet_name="项目库")
    notes = bank.loc[bank["备注"].astype(str).str.startswith("选址第"), "备注"].tolist()
    assert len(notes) == 5
    for note, st in zip(notes, s["siting"]["sites"], strict=True):
        assert "直线" not in note
        assert f"{st['nearest_existing']}（电动自行车道路{st['nearest_existing_min']:.0f}分钟）" in note


def test_site_road_time_equals_a_plain_dijkstra(site, repo_root) -> None:
    """Road minutes from the nearest existing facility of the site's rule, recomputed without the engine."""
    check_road_times(repo_root / "scenarios" / "demo_baseline.yaml", site[1]["siting"]["sites"])


def check_road_times(scenario: Path, sites: list[dict]) -> None:
    model = pipeline.build_model(pipeline.load_inputs(scenario))
    inputs = model.inputs
    pts = gpd.GeoSeries(gpd.points_from_xy([x["lon"] for x in sites], [x["lat"] for x in sites]), crs=4326)
    for st, p in zip(sites, pts.to_crs(inputs.crs), strict=True):
        rule = inputs.preset.circle(st["nearest_rule"])
        assert rule.mode == st["nearest_mode"]
        g = model.graphs[st["nearest_mode"]]
        fac = inputs.facilities[inputs.facilities["ftype"].isin(rule.ftypes)]
        want = _reference_time(g, list(fac.geometry), p)
        assert st["nearest_existing_min"] == pytest.approx(want, abs=1e-3), st["cid"]


def _reference_time(g, sources: list, target) -> float:
    """Minutes from the nearest of ``sources`` to ``target``: brute-force snapping onto the nearest
    road segment (shapely), every point inserted as a node (reference.split_adj), walking legs at
    settings.SNAP_KMH capped at settings.SNAP_MAX_M, one plain Dijkstra from a virtual source."""
    tails = np.repeat(np.arange(g.n_nodes), np.diff(g.indptr))
    lines = shapely.linestrings(np.stack([np.c_[g.x[tails], g.y[tails]], np.c_[g.x[g.indices], g.y[g.indices]]], 1))
    m_per_min = settings.SNAP_KMH * 1000 / 60

    def snap(p):
        d = shapely.distance(lines, p)
        e = int(np.argmin(d))
        return (int(tails[e]), int(g.indices[e]), float(shapely.line_locate_point(lines[e], p, normalized=True))), float(d[e])

    snapped = [snap(p) for p in [*sources, target]]
    adj, node_of = split_adj(g.n_nodes, zip(tails.tolist(), g.indices.tolist(), g.minutes.tolist()),
                             [x[0] for x in snapped])
    adj["S"] = {}
    for k in range(len(sources)):
        leg = snapped[k][1]
        if leg <= settings.SNAP_MAX_M:
            adj["S"][node_of[k]] = min(leg / m_per_min, adj["S"].get(node_of[k], np.inf))
    dist = dijkstra(adj, "S")
    return dist.get(node_of[-1], np.inf) + snapped[-1][1] / m_per_min


def test_figure_2_counts_people(site) -> None:
    """The time histogram's bins plus the people beyond the axis are the service's people."""
    text, s, _ = site
    hists = re.findall(r'<polyline class="hist" data-label="([^"]+)" data-counts="([^"]+)" '
                       r'data-total="([\d.]+)" data-beyond="([\d.]+)"', text)
    labels = {"学校/教育": "school", "医疗卫生": "clinic", "养老服务": "elderly", "体育健身": "fitness"}
    assert {labels[h[0]] for h in hists} == set(labels.values())
    for label, counts, total, beyond in hists:
        people = s["categories"][labels[label]]["population"]
        assert float(total) == pytest.approx(people, abs=0.5)
        assert sum(map(float, counts.split())) + float(beyond) == pytest.approx(people, abs=0.5)
    assert "格网单元数" not in text and "按人计" in text
    caption = re.search(r"<figcaption>(图\d+ 到最近设施的出行时间[^<]*)<", text).group(1)
    assert "counting people" in caption


def test_provenance_block(site) -> None:
    text, s, _ = site
    run = s["run"]
    assert re.search(r'class="run-date">([^<]+)<', text).group(1) == run["date"]
    assert re.search(r'class="preset">([^<]+)<', text).group(1) == run["preset"]
    (table,) = tables(text, "sources")
    files = [r["cells"][1][0] for r in table["rows"][1:]]
    assert files == [x["file"] for x in run["sources"]]


def test_site_before_after_by_township(site) -> None:
    text, s, out = site
    check_before_after(text, out, {"elderly"})
    # the static map: every site numbered by its rank
    ranks = re.findall(r'<g class="site" data-rank="(\d+)">', text)
    assert sorted(map(int, ranks)) == [1, 2, 3, 4, 5]
    assert "http" not in text.split('id="site-map"')[1].split("</figure>")[0]


def check_before_after(text: str, out: Path, services: set[str]) -> None:
    """The before/after tables equal comparison.csv, row for row (whole people)."""
    cmp = pd.read_csv(out / "comparison.csv", dtype={"unit_code": str}, keep_default_na=False)
    found = tables(text, "before-after")
    assert {t["attrs"]["data-service"] for t in found} == services
    for t in found:
        c = cmp[cmp["service"] == t["attrs"]["data-service"]]
        rows = [r for r in t["rows"] if "data-code" in r["attrs"]]
        assert len(rows) == len(c)
        for r in rows:
            want = c[c["unit_code"] == r["attrs"]["data-code"]].iloc[0]
            for cls, col in (("before", "covered_base"), ("after", "covered_plan"), ("gained", "gained"),
                             ("lost", "lost")):
                assert abs(num(cell(r, cls)) - float(want[col])) <= 0.5 + 1e-6, (cls, r)


def test_compare_before_after(tmp_path, repo_root) -> None:
    out, _ = run("compare", str(repo_root / "scenarios" / "demo_baseline.yaml"),
                 str(repo_root / "scenarios" / "demo_plan.yaml"), "--out", str(tmp_path / "cmp"))
    text = (out / "report.html").read_text(encoding="utf-8")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    cmp = pd.read_csv(out / "comparison.csv", dtype={"unit_code": str}, keep_default_na=False)
    changed = set(cmp.loc[(cmp["gained"] > 0) | (cmp["lost"] > 0), "service"])
    assert "elderly" in changed
    check_before_after(text, out, changed)
    assert "方案比较 / Plan vs baseline" in text and "siting" not in s
    assert len(s["comparison"]["by_unit"]) == int((cmp["unit_code"] != "").sum())
    assert re.findall(r'<g class="site" data-rank="(\d+)">', text)  # the added facilities on the map


def test_plain_run_has_no_plan_section(tmp_path, repo_root) -> None:
    out, _ = run("run", str(repo_root / "scenarios" / "demo_baseline.yaml"), "--out", str(tmp_path / "r"))
    text = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="plan"' not in text and 'id="provenance"' in text
    assert "图1 各乡镇" in text and "图2 到最近设施" in text


def test_macau_site_section_equals_summary(tmp_path, shared_data) -> None:
    """Real data: Macau (OSM roads, WorldPop, OSM/高德 facilities), 20 generated candidates, 3 clinics."""
    out, _ = run("site", str(MACAU), "--category", "clinic", "--add", "3", "--generate", "20",
                 "--out", str(tmp_path / "macau"))
    text = (out / "report.html").read_text(encoding="utf-8")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    siting = s["siting"]
    assert 'id="plan"' in text and len(siting["sites"]) == 3
    check_sites_table(text, siting)
    check_curve(text, siting)
    check_before_after(text, out, {"clinic"})
    # a site is proposed where people lack a clinic within 15 minutes' walk: beyond it from the nearest one
    assert all(st["nearest_existing_min"] > 10 for st in siting["sites"])
    check_road_times(MACAU, siting["sites"])
