"""Tests of the offline meeting map (coverage.report.map).

Real geometries are used throughout: Beijing 延庆 township polygons and Macau OSM POIs, roads and
WorldPop cells from ``shared/data``. **The coverage shares, the "uncovered" cells' service and the
candidate/proposed sites are made up for the test** (there is no real coverage result for these
places); only the geometries and names are real.
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
from shapely.geometry import Point

from coverage.crs import haversine_m, wgs84_to_gcj02
from coverage.errors import InputError
from coverage.report.map import write_map

from browser import open_map

FCLASS_TO = {  # OSM fclass → (category, ftype, Chinese type name)
    "school": ("school", "primary_school", "学校"),
    "kindergarten": ("school", "kindergarten", "幼儿园"),
    "college": ("school", "college", "高等院校"),
    "hospital": ("clinic", "hospital", "医院"),
    "clinic": ("clinic", "clinic", "诊所"),
    "pharmacy": ("clinic", "pharmacy", "药店"),
    "community_centre": ("elderly", "community_centre", "社区中心"),
    "sports_centre": ("fitness", "sports_centre", "体育中心"),
    "swimming_pool": ("fitness", "swimming_pool", "游泳池"),
    "pitch": ("fitness", "pitch", "运动场"),
}


# ----------------------------------------------------------------------------- data fixtures


@pytest.fixture(scope="module")
def yanqing_units(shared_data: Path) -> gpd.GeoDataFrame:
    u = gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson")
    u = u.rename(columns={"Name": "name"})[["name", "code", "geometry"]]
    u["code"] = u["code"].astype(str)
    u["kind"] = np.where(u["name"].str.endswith("街道"), "街道", "镇")
    rng = np.random.default_rng(7)  # MADE-UP shares, for drawing only
    u["share_school"] = rng.uniform(0.3, 1.0, len(u))
    u["share_elderly"] = rng.uniform(0.3, 1.0, len(u))
    return u.to_crs(4547)  # CGCS2000 / 3-degree GK CM 117E: the map must reproject


@pytest.fixture(scope="module")
def macau_facilities(shared_data: Path) -> gpd.GeoDataFrame:
    p = gpd.read_file(shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_pois_free_1.shp")
    p = p[p["fclass"].isin(list(FCLASS_TO))].copy()
    p["category"] = p["fclass"].map(lambda f: FCLASS_TO[f][0])
    p["ftype"] = p["fclass"].map(lambda f: FCLASS_TO[f][1])
    p["type_raw"] = p["fclass"].map(lambda f: FCLASS_TO[f][2])
    p["fid"] = "osm-" + p["osm_id"].astype(str)
    p["name"] = p["name"].fillna("")
    p["tier"] = "community"
    p["capacity"] = np.nan
    p["capacity_unit"] = ""
    p = p.sort_values("fid").reset_index(drop=True)
    return p[["fid", "name", "category", "ftype", "type_raw", "tier", "capacity", "capacity_unit",
              "geometry"]].to_crs(32649)


def _has(text: str, s: str) -> bool:
    """``s`` appears in the page, literally or JSON-escaped (folium writes names with tojson)."""
    return s in text or json.dumps(s)[1:-1] in text


class _AssetParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if tag in {"script", "link", "img", "iframe", "source", "embed"} and a.get(key):
                self.refs.append((tag, key, a[key]))
        if tag == "script" and not a.get("src"):
            self.inline_scripts += 1


# ----------------------------------------------------------------------------- fast tests


def test_no_external_js_css_and_layers_named(
    tmp_path, shared_data, yanqing_units, macau_facilities
) -> None:
    out = write_map(
        tmp_path / "map.html",
        units=yanqing_units,
        facilities=macau_facilities,
        uncovered=None,
        circles=None,
        urban_rural_circle=None,
        candidates=None,
        proposed=None,
        title="延庆区 测试地图",
        synthetic=True,
    )
    text = out.read_text(encoding="utf-8")
    parser = _AssetParser()
    parser.feed(text)
    # no <script src>, <link href>, <img src> … at all: everything is inline
    assert parser.refs == []
    assert parser.inline_scripts >= 2
    assert not re.search(r"""<(script|link)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "L.map(" in text or "L.map (" in text
    for name in ("乡镇（街道）边界", "乡镇（街道）名称", "乡镇覆盖率", "设施", "学校/教育", "医疗卫生",
                 "养老服务", "体育健身", "合成示例数据 / synthetic demo data", "图例", "示意图，不作为权属依据",
                 "审图号"):
        assert _has(text, name), name
    # every township of 延庆 is drawn (names come from the real file)
    for name in gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson")["Name"]:
        assert _has(text, name), name


def test_deterministic_and_atomic(tmp_path, yanqing_units, macau_facilities) -> None:
    kw = dict(units=yanqing_units, facilities=macau_facilities, title="t", synthetic=False)
    a = write_map(tmp_path / "a.html", **kw).read_bytes()
    target = tmp_path / "b.html"
    target.write_text("old")
    b = write_map(target, **kw).read_bytes()
    assert a == b
    assert b"synthetic demo data" not in a
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html"]  # no temp files


def _points_in_html(text: str) -> list[list[float]]:
    found = re.findall(r'"coordinates": (\[[^\[\]]*\]), "type": "Point"', text)
    return [json.loads(m) for m in found]


def test_amap_shifts_overlays_to_gcj02(tmp_path) -> None:
    lon, lat = 115.9750, 40.4560  # 延庆城区
    fac = gpd.GeoDataFrame(
        {"fid": ["f1"], "name": ["测试卫生院"], "category": ["clinic"], "ftype": ["township_hc"],
         "type_raw": ["乡镇卫生院"], "tier": ["township"], "capacity": [20.0],
         "capacity_unit": ["床位"]},
        geometry=[Point(lon, lat)], crs=4326,
    ).to_crs(4547)
    plain = write_map(tmp_path / "none.html", facilities=fac, title="t", tiles="none")
    amap = write_map(tmp_path / "amap.html", facilities=fac, title="t", tiles="amap")
    (p0,) = _points_in_html(plain.read_text(encoding="utf-8"))
    (p1,) = _points_in_html(amap.read_text(encoding="utf-8"))
    assert p0 == pytest.approx([lon, lat], abs=2e-6)
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert p1 == pytest.approx([float(glon), float(glat)], abs=2e-6)
    shift = float(haversine_m(p0[0], p0[1], p1[0], p1[1]))
    assert 100.0 < shift < 1000.0  # the GCJ-02 offset is a few hundred metres
    text = amap.read_text(encoding="utf-8")
    assert "autonavi.com" in text and _has(text, "规模") and _has(text, "20 床位")


def test_tianditu_needs_key_and_bad_tiles(tmp_path) -> None:
    with pytest.raises(InputError) as err:
        write_map(tmp_path / "m.html", title="t", tiles="tianditu")
    assert "天地图" in str(err.value) and "Tianditu" in str(err.value)
    out = write_map(tmp_path / "m.html", title="t", tiles="tianditu", tianditu_key="abc123")
    assert "tk=abc123" in out.read_text(encoding="utf-8")
    with pytest.raises(InputError):
        write_map(tmp_path / "m.html", title="t", tiles="google")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.html"]


def test_missing_service_column_is_bilingual_error(tmp_path, macau_facilities) -> None:
    with pytest.raises(InputError) as err:
        write_map(tmp_path / "m.html", facilities=macau_facilities.drop(columns="category"),
                  title="t")
    assert "category" in str(err.value) and "缺少" in str(err.value)


# ----------------------------------------------------------------------------- browser test


def _macau_layers(shared_data: Path, facilities: gpd.GeoDataFrame):
    """Real Macau layers: roads → reached areas, WorldPop cells, SAR outline (shares made up)."""
    import rasterio
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    from coverage.report.circles import reached_area

    metric = 32649
    roads = gpd.read_file(shared_data / "macau/osm_geofabrik_shp/gis_osm_roads_free_1.shp")
    roads = roads.to_crs(metric)
    coords = [np.asarray(g.coords) for g in roads.geometry]
    allxy = np.round(np.concatenate(coords), 1)
    nodes, inv = np.unique(allxy, axis=0, return_inverse=True)
    inv = inv.ravel()
    starts = np.cumsum([0] + [len(c) for c in coords])
    a = np.concatenate([inv[s : e - 1] for s, e in zip(starts[:-1], starts[1:])])
    b = np.concatenate([inv[s + 1 : e] for s, e in zip(starts[:-1], starts[1:])])
    w = np.hypot(*(nodes[a] - nodes[b]).T) + 1e-3
    g = csr_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(len(nodes),) * 2)
    g.sum_duplicates()
    circles = []
    fac = facilities.to_crs(metric)
    for service in ("school", "clinic"):
        pts = np.column_stack([fac[fac.category == service].geometry.x,
                               fac[fac.category == service].geometry.y])
        src = [int(np.argmin(np.hypot(*(nodes - p).T))) for p in pts]
        dist = dijkstra(g, indices=src, min_only=True, limit=1000.0)  # 1 km walk (made up)
        poly = reached_area(nodes[:, 0], nodes[:, 1], g.indptr, g.indices, np.isfinite(dist))
        circles.append({"service": service, "geometry": poly})
    circles = gpd.GeoDataFrame(circles, crs=metric)

    with rasterio.open(shared_data / "macau/worldpop/mac_pd_2020_1km.tif") as src_r:
        dens = src_r.read(1)
        rows, cols = np.nonzero(dens > 0)
        xs, ys = rasterio.transform.xy(src_r.transform, rows, cols)
    cells = gpd.GeoDataFrame({"pop": dens[rows, cols] * 0.85}, geometry=gpd.points_from_xy(xs, ys),
                             crs=4326)  # ~0.85 km² per 30″ cell at 22° N
    cells = cells.to_crs(metric)
    cells = cells[~cells.within(circles.union_all())]  # "uncovered": outside both circles
    uncovered = pd.concat([cells.assign(service="clinic"), cells.assign(service="elderly")])
    uncovered = gpd.GeoDataFrame(uncovered, crs=metric)

    outline = gpd.read_file(shared_data / "china_admin/seed_admin_boundaries_amap.gpkg",
                            layer="wgs84_converted")
    outline = outline[outline["adcode"].astype(str) == "820000"]
    units = gpd.GeoDataFrame({"code": ["820000"], "name": ["澳门特别行政区"], "kind": ["其他"],
                              "share_school": [0.91], "share_clinic": [0.62]},
                             geometry=outline.geometry.values, crs=outline.crs)
    urc = gpd.GeoDataFrame({"name": ["15公里城乡服务圈"]},
                           geometry=[Point(113.5439, 22.1987)], crs=4326).to_crs(metric)
    urc["geometry"] = urc.buffer(4000)
    cand = fac.iloc[::7][["geometry"]].assign(name="候选", category="elderly")
    prop = fac.iloc[3:5][["geometry"]].assign(name="规划日间照料中心", category="elderly")
    return units, circles, uncovered, urc, cand, prop


@pytest.mark.browser
@pytest.mark.slow
def test_map_in_headless_chromium(tmp_path, shared_data, macau_facilities, repo_root) -> None:
    units, circles, uncovered, urc, cand, prop = _macau_layers(shared_data, macau_facilities)
    out = write_map(
        tmp_path / "map.html",
        units=units, facilities=macau_facilities, uncovered=uncovered, circles=circles,
        urban_rural_circle=urc, candidates=cand, proposed=prop,
        title="澳门 测试地图（覆盖率为虚构）", synthetic=True, tiles="none",
    )
    shot = repo_root / "tests" / "_artifacts" / "map.png"
    rep = open_map(out, tmp_path / "profile", shot)

    assert rep.errors == []
    assert rep.requests == [rep.url], f"unexpected network requests: {rep.requests[:5]}"
    # one entry per kind of layer (the switcher picks the service), then the common layers
    assert rep.overlays == ["乡镇（街道）边界", "乡镇（街道）名称", "乡镇覆盖率", "服务圈", "15公里城乡服务圈",
                            "未覆盖人口", "设施", "候选点位", "规划新增设施"]
    assert rep.services == ["学校/教育", "医疗卫生", "养老服务", "体育健身"]  # every service with a layer
    assert "图例" in rep.legend and "学校" in rep.legend and "未覆盖人口" in rep.legend
    assert rep.banner == "合成示例数据 / synthetic demo data"
    # the first service is shown: its facilities are Leaflet layers, the others' are not
    assert (macau_facilities["category"] == "school").sum() < rep.n_layers < len(macau_facilities)
    assert shot.stat().st_size > 10_000


def test_uncovered_points_merged_into_blocks_keep_every_person(monkeypatch) -> None:
    """Above MAP_MAX_POINTS a service's points are summed into blocks; nobody is lost."""
    from coverage.report import map as map_

    rng = np.random.default_rng(5)
    n = 5000
    xy = rng.uniform(0, 20_000, (n, 2)) + [500_000, 3_900_000]
    pts = gpd.GeoDataFrame({"service": ["school"] * n + ["clinic"] * 10,
                            "pop": np.r_[rng.uniform(1, 30, n), np.ones(10)]},
                           geometry=gpd.points_from_xy(np.r_[xy[:, 0], xy[:10, 0]], np.r_[xy[:, 1], xy[:10, 1]]),
                           crs=32649)
    monkeypatch.setattr(map_, "MAP_MAX_POINTS", 800)
    out = map_._merge_points(pts, max_points=800)
    school = out[out["service"] == "school"]
    assert len(school) <= 800 and len(out[out["service"] == "clinic"]) == 10
    assert school["pop"].sum() == pytest.approx(pts.loc[pts["service"] == "school", "pop"].sum())


def test_compact_encoding_round_trips_to_a_metre() -> None:
    from shapely.geometry import Polygon

    from coverage.report.map import _encode

    poly = Polygon([(113.5, 22.1), (113.6, 22.1), (113.6, 22.2), (113.5, 22.2)],
                   [[(113.52, 22.12), (113.53, 22.12), (113.53, 22.13)]])
    enc = _encode(gpd.GeoDataFrame(geometry=[poly, Point(113.512345, 22.187654)], crs=4326))
    s = enc["s"]

    def ring(a):
        xy = np.cumsum(np.asarray(a, dtype=float).reshape(-1, 2), axis=0) / s
        return xy

    shell, hole = enc["g"][0]
    assert enc["t"] == ["Polygon", "Point"]
    assert np.allclose(ring(shell), np.asarray(poly.exterior.coords), atol=1e-5)
    assert np.allclose(ring(hole), np.asarray(poly.interiors[0].coords), atol=1e-5)
    assert np.allclose(np.asarray(enc["g"][1]) / s, [113.512345, 22.187654], atol=1e-5)


# ----------------------------------------------------------------------------- one service per view


def _shown(text: str) -> str:
    """The service the page opens on (the switcher's first call) and its title."""
    return re.search(r"show\(\"(\w+)\"\);\n\}\)\(\);", text).group(1)


def test_service_chosen_and_titled(tmp_path, yanqing_units, macau_facilities) -> None:
    kw = dict(units=yanqing_units, facilities=macau_facilities, title="延庆区 现状评估")
    text = write_map(tmp_path / "e.html", service="elderly", **kw).read_text(encoding="utf-8")
    assert _shown(text) == "elderly"
    assert '<div class="cov-title">延庆区 现状评估 · 养老服务覆盖</div>' in text
    assert "<title>延庆区 现状评估 · 养老服务覆盖</title>" in text
    # only the shown service's legend blocks are visible when the page opens
    assert '<div data-cov-service="elderly"><div class=\'cov-legend-h\'>养老服务设施' in text
    assert '<div data-cov-service="school" style="display:none"><div class=\'cov-legend-h\'>学校/教育设施' in text
    # no choice, or a service without any layer: the first service in the usual order
    for service in (None, "transport"):
        text = write_map(tmp_path / "d.html", service=service, **kw).read_text(encoding="utf-8")
        assert _shown(text) == "school" and "· 学校/教育覆盖" in text


def test_source_block_names_files_date_preset_and_the_notes(tmp_path, yanqing_units) -> None:
    run = {"date": "2026-01-02", "preset": "cn-default", "preset_title": "全国默认预设",
           "sources": [{"key": "scenario", "file": "x.yaml"}, {"key": "area.boundary", "file": "b.gpkg"},
                       {"key": "area.urban", "file": "b.gpkg"}], "synthetic": False}
    text = write_map(tmp_path / "m.html", units=yanqing_units, title="t", run=run).read_text(encoding="utf-8")
    block = re.search(r'<div class="cov-source" id="cov-source">(.*?)</div></div>', text).group(1)
    assert "数据来源：x.yaml、b.gpkg<" in block  # each file once
    assert "制图日期：2026-01-02" in block and "标准预设：全国默认预设（cn-default）" in block
    assert "示意图，不作为权属依据。公开出版或展示的地图须依法送审并取得审图号。" in block
    assert "合成示例数据" not in text
    plain = write_map(tmp_path / "n.html", title="t", synthetic=True).read_text(encoding="utf-8")
    assert "审图号" in plain and "合成示例数据（synthetic demo data）" in plain and "制图日期" not in plain


def test_township_labels_inside_their_township(tmp_path, shared_data, yanqing_units) -> None:
    from shapely.geometry import Point as P

    text = write_map(tmp_path / "m.html", units=yanqing_units, title="t").read_text(encoding="utf-8")
    points = json.loads(re.search(r"M = \[\];\n  (\[\[.*?\]\])\.forEach", text).group(1))
    real = gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson").to_crs(4326)
    assert sorted(p[2] for p in points) == sorted(real["Name"])
    outline = dict(zip(real["Name"], real.geometry))
    for lat, lon, name in points:  # the label sits inside its own township, well away from its edge
        poly = outline[name]
        assert poly.contains(P(lon, lat)), name
        # at least 80 % of the radius of the largest circle inside the (largest part of the) township
        part = max(getattr(poly, "geoms", [poly]), key=lambda g: g.area)
        radius = shapely.maximum_inscribed_circle(part, 1e-5).length
        assert poly.boundary.distance(P(lon, lat)) > 0.8 * radius, name
    areas = [outline[p[2]].area for p in points]
    assert areas == sorted(areas, reverse=True)  # larger townships claim their place first


def test_map_service_is_the_siting_category_or_the_worst_covered() -> None:
    from coverage.pipeline import map_service

    cats = {"school": {"share_covered": 0.6}, "clinic": {"share_covered": 0.9},
            "elderly": {"share_covered": None}, "fitness": {"share_covered": 0.6}}
    assert map_service({"categories": cats}) == "school"  # tie with fitness: the usual order
    cats["fitness"]["share_covered"] = 0.59
    assert map_service({"categories": cats}) == "fitness"  # elderly has no data: not "worst"
    assert map_service({"categories": cats, "siting": {"service": "clinic"}}) == "clinic"
    assert map_service({"categories": {"elderly": {"share_covered": None}}}) is None


def test_page_text_is_not_read_as_a_template(tmp_path, yanqing_units, macau_facilities) -> None:
    """A title holding Jinja syntax (a planner may type braces) is shown as typed, not evaluated."""
    title = "规划{{ 1 + 1 }}方案{% if x %}甲{% endif %}"
    fac = macau_facilities.copy()
    fac.loc[fac.index[0], "name"] = "卫生站{{ 2 + 2 }}{% raw %}"  # in a compact layer's data
    text = write_map(tmp_path / "m.html", units=yanqing_units, facilities=fac, title=title,
                     synthetic=False).read_text(encoding="utf-8")
    import html as html_

    assert f'<div class="cov-title">{html_.escape(title)} · ' in text
    assert "{{ 2 + 2 }}{% raw %}" in text  # the name as typed (JSON may escape its Chinese)


@pytest.mark.parametrize("seed", range(6))
def test_simplified_outlines_stay_valid_polygons(seed: int) -> None:
    """The map simplifies circles and units with plain Douglas–Peucker and no validity check:
    GEOS repairs what it breaks. Ragged, holed, touching random outlines (unions of random discs
    and boxes, as served areas are) simplified at three tolerances come back valid polygons or
    multipolygons, with nearly the same area where the tolerance is small against the shapes."""
    from coverage.report.map import _simplified

    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(8):
        pts = shapely.points(rng.uniform(0, 5000, (60, 2)))
        discs = shapely.buffer(pts, rng.uniform(20, 400, 60), quad_segs=rng.integers(1, 6))
        boxes = shapely.box(*rng.uniform(0, 5000, 2), *(rng.uniform(0, 5000, 2) + 300))
        shapes.append(shapely.union_all(np.r_[discs, [boxes]]))
    gdf = gpd.GeoDataFrame(geometry=shapes, crs=32650)
    for tol, rtol in ((1.0, 0.002), (25.0, 0.06), (150.0, None)):
        out = _simplified(gdf, tol).geometry.to_numpy()
        assert shapely.is_valid(out).all()
        assert set(shapely.get_type_id(out[~shapely.is_empty(out)]).tolist()) <= {3, 6}
        if rtol is not None:  # chords cut the discs' arcs: a little less area
            np.testing.assert_allclose(shapely.area(out), shapely.area(np.asarray(shapes)), rtol=rtol)
