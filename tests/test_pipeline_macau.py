"""Real-data end to end on Macau (OSM Geofabrik + WorldPop 1 km spread over buildings + Amap).

The scenario is ``tests/data/macau.yaml``. The CLI is run once (module fixture); its outputs are
checked against independent computations: the WorldPop total inside the outline (numpy/shapely),
the clinic 15-minute walking coverage (networkx Dijkstra from a virtual source), the project-bank
header of DESIGN §4.4, and the GCJ-02 → WGS-84 conversion of the Amap rows (their own
``lon_wgs84, lat_wgs84`` columns).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import openpyxl
import pandas as pd
import pytest
import rasterio
import shapely
from pyproj import Geod
from typer.testing import CliRunner

from coverage import settings
from coverage.cli import app

pytestmark = pytest.mark.slow

SCENARIO = Path(__file__).resolve().parent / "data" / "macau.yaml"
FILES = ["summary.json", "coverage_by_unit.csv", "gaps.xlsx", "layers.gpkg", "map.html", "report.html"]
#: DESIGN.md §4.4, in this order.
PROJECT_BANK = [
    "序号", "年度", "服务领域", "设施类别", "项目名称", "建设性质", "县(区)", "乡镇(街道)", "村(社区)", "经度", "纬度",
    "建设规模", "服务人口", "新增覆盖人口", "对应指标", "指标性质", "估算投资(万元)", "牵头单位", "优先级", "备注",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("macau") / "out"
    res = CliRunner().invoke(app, ["run", str(SCENARIO), "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out


def _outline(shared_data):
    return gpd.read_file(
        shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg", layer="wgs84_converted",
        where="adcode = '820000'",
    ).to_crs(4326)


def test_validate_ok(shared_data):
    res = CliRunner().invoke(app, ["validate", str(SCENARIO)])
    assert res.exit_code == 0, res.output


def test_validate_missing_spread_layer(tmp_path, shared_data):
    text = SCENARIO.read_text(encoding="utf-8").replace("../../../shared/data", str(shared_data))
    text = text.replace("gis_osm_buildings_a_free_1.shp", "no_such_buildings.shp")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "no_such_buildings.shp" in res.output


def test_all_files_written(run_dir):
    assert sorted(p.name for p in run_dir.iterdir() if p.name != ".covplan-manifest.json") == sorted(FILES)


def test_population_total_is_worldpop_inside_outline(run_dir, shared_data):
    tif = shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif"
    with rasterio.open(tif) as s:
        d = s.read(1).astype("float64")
        t = s.transform
        ok = (d != s.nodata) & np.isfinite(d)
    rows, cols = np.indices(d.shape)
    top, bot = np.radians(t.f + t.e * rows), np.radians(t.f + t.e * (rows + 1))
    km2 = 6371008.8**2 * math.radians(t.a) * np.abs(np.sin(top) - np.sin(bot)) / 1e6
    cx, cy = t * (cols + 0.5, rows + 0.5)
    inside = shapely.contains_xy(_outline(shared_data).union_all(), cx, cy)
    ref = float((d * km2)[ok & inside].sum())
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["population_total"] == pytest.approx(ref, rel=0.005)


def test_clinic_coverage_matches_networkx(run_dir, shared_data):
    from coverage import network
    from coverage.standards import load_preset

    rule = next(r for r in load_preset("cn-default").active_circles() if r.id == "clinic_urban_15min")
    cells = gpd.read_file(run_dir / "layers.gpkg", layer="demand_cells")
    fac = gpd.read_file(run_dir / "layers.gpkg", layer="facilities")
    # the outline is the 城区 and spread_over keeps every populated cell inside it
    assert cells["urban"].astype(bool).all()
    g = network.read_lines(
        shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_roads_free_1.shp", mode="walk",
        class_field="fclass", crs=cells.crs,
    )
    import reference

    # independent of the engine: shapely's STRtree finds the nearest road segment of every point,
    # every snapped point is inserted into the graph as a real node, then networkx's Dijkstra
    tails = g.tails()
    lines = shapely.linestrings(np.stack([np.c_[g.x[tails], g.y[tails]], np.c_[g.x[g.indices], g.y[g.indices]]], 1))
    tree = shapely.STRtree(lines)
    m_per_min = settings.WALK_KMH * 1000 / 60
    clinics = fac[fac["ftype"].isin(rule.ftypes)]
    assert len(clinics) > 50
    pts = np.concatenate([clinics.geometry.to_numpy(), cells.geometry.to_numpy()])
    (_, e), leg = tree.query_nearest(pts, return_distance=True, all_matches=False)
    t = shapely.line_locate_point(lines[e], pts, normalized=True)
    adj, node_of = reference.split_adj(
        g.n_nodes, zip(tails.tolist(), g.indices.tolist(), g.minutes.tolist()),
        list(zip(tails[e].tolist(), g.indices[e].tolist(), t.tolist())))
    G = nx.DiGraph()
    G.add_weighted_edges_from(((a, b, w) for a, nb in adj.items() for b, w in nb.items()), weight="minutes")
    src = "virtual source"
    for k in range(len(clinics)):
        if leg[k] <= settings.SNAP_MAX_M:
            w = leg[k] / m_per_min
            if not G.has_edge(src, node_of[k]) or G[src][node_of[k]]["minutes"] > w:
                G.add_edge(src, node_of[k], minutes=w)
    dist, _paths = nx.multi_source_dijkstra(G, {src}, cutoff=rule.threshold, weight="minutes")
    covered = 0.0
    for k, pop in enumerate(cells["pop"], start=len(clinics)):
        tt = dist.get(node_of[k], math.inf) + leg[k] / m_per_min
        if leg[k] <= settings.SNAP_MAX_M and tt <= rule.threshold:
            covered += pop
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    got = summary["categories"]["clinic"]["population_covered"]
    assert got == pytest.approx(covered, rel=1e-6)
    assert 0.5 < covered / cells["pop"].sum() < 1.0


def test_gaps_header_is_project_bank(run_dir):
    wb = openpyxl.load_workbook(run_dir / "gaps.xlsx", read_only=True)
    ws = wb.worksheets[0]
    header = [c.value for c in next(ws.iter_rows(min_row=1, max_row=1))]
    assert header == PROJECT_BANK


def test_amap_facilities_converted_to_wgs84(run_dir, shared_data):
    fac = gpd.read_file(run_dir / "layers.gpkg", layer="facilities")
    amap = fac[fac["source"].str.startswith("macau_amap_")]
    assert len(amap) > 500
    geod = Geod(ellps="WGS84")
    worst = 0.0
    for name, part in amap.groupby(amap["source"].str.rsplit(":", n=1).str[0]):
        raw = pd.read_csv(shared_data / "macau" / "amap_poi_csv" / name, encoding="utf-8-sig")
        rows = part["source"].str.rsplit(":", n=1).str[-1].astype(int).to_numpy()
        # source rows are numbered as Excel/WPS shows them: the header is row 1, the first data row 2
        ref = raw.iloc[rows - 2]
        assert (ref["name"].astype(str).to_numpy() == part["name"].astype(str).to_numpy()).all()
        _a, _b, d = geod.inv(part["lon"].to_numpy(), part["lat"].to_numpy(), ref["lon_wgs84"].to_numpy(), ref["lat_wgs84"].to_numpy())
        worst = max(worst, float(np.max(d)))
        # and the metric point is the same place
        pts = gpd.GeoSeries(gpd.points_from_xy(ref["lon_wgs84"], ref["lat_wgs84"]), crs=4326).to_crs(fac.crs)
        assert np.max(pts.distance(gpd.GeoSeries(part.geometry.values, crs=fac.crs)).to_numpy()) < 1.0
        # the raw GCJ-02 positions are hundreds of metres away: the conversion did happen
        _a, _b, off = geod.inv(part["lon"].to_numpy(), part["lat"].to_numpy(), ref["lon_gcj02"].to_numpy(), ref["lat_gcj02"].to_numpy())
        assert np.min(off) > 100
    assert worst < 1.0


def test_compare_a_plan_on_real_data(tmp_path):
    """Two hypothetical day-care centres: Macau's elderly coverage rises from zero, nobody loses."""
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["compare", str(SCENARIO), str(SCENARIO.with_name("macau_plan.yaml")),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    cmp = pd.read_csv(out / "comparison.csv", dtype={"unit_code": str}, keep_default_na=False)
    el = cmp[(cmp["service"] == "elderly") & (cmp["unit_code"] == "")].iloc[0]
    assert el["covered_base"] == 0 and el["gained"] > 0 and el["lost"] == 0
    assert (cmp["lost"] == 0).all()
    other = cmp[(cmp["service"] != "elderly") & (cmp["unit_code"] == "")]
    assert (other["gained"] == 0).all()  # day care centres serve nobody else


def test_site_on_real_data_with_generated_candidates(tmp_path, monkeypatch):
    """Macau has no candidate layer: `--generate` proposes sites where the unserved old people live.

    Run twice: the same files, byte for byte (the solver's seconds go to the terminal, not to
    summary.json)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790000000")
    outs = []
    for k in range(2):
        out = tmp_path / f"site{k}"
        res = CliRunner().invoke(app, ["site", str(SCENARIO), "--category", "elderly", "--add", "3",
                                       "--generate", "12", "--out", str(out)])
        assert res.exit_code == 0, res.output + repr(res.exception)
        assert "求解 / solved in" in res.output
        outs.append(out)
    for name in sorted(p.name for p in outs[0].iterdir()):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    out = outs[0]
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert len(s["siting"]["selected"]) == 3 and all(c.startswith("G") for c in s["siting"]["selected"])
    assert s["siting"]["gap"] <= 0.01
    assert s["categories"]["elderly"]["population_covered"] == pytest.approx(s["siting"]["new_covered"], rel=1e-6)


def test_same_inputs_give_the_same_files(tmp_path, monkeypatch, run_dir):
    """With ``SOURCE_DATE_EPOCH`` fixed, two runs write byte-identical files: the workbook and the
    GeoPackage carry the run's date, not the clock's (openpyxl's save time, GDAL's last_change)."""
    import zipfile

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790000000")  # 2026-09-21
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        res = CliRunner().invoke(app, ["run", str(SCENARIO), "--out", str(out)])
        assert res.exit_code == 0, res.output + repr(res.exception)
        outs.append(out)
    for name in FILES:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    with zipfile.ZipFile(outs[0] / "gaps.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(2026, 9, 21, 0, 0, 0)}
        assert b"2026-09-21T00:00:00Z</dcterms:modified>" in z.read("docProps/core.xml")
    import sqlite3
    con = sqlite3.connect(outs[0] / "layers.gpkg")
    try:
        assert {r[0] for r in con.execute("SELECT last_change FROM gpkg_contents")} == {"2026-09-21T00:00:00.000Z"}
    finally:
        con.close()
    # the workbook reads back the same as one written without a fixed date
    import openpyxl
    a, b = openpyxl.load_workbook(outs[0] / "gaps.xlsx"), openpyxl.load_workbook(run_dir / "gaps.xlsx")
    assert a.sheetnames == b.sheetnames
    for ws in a.sheetnames:
        assert [[c.value for c in r] for r in a[ws].iter_rows()] == [[c.value for c in r] for r in b[ws].iter_rows()], ws
