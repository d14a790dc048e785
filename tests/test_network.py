"""Tests of coverage.network: tag parsing, the array builder, line joining and real data sources."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from shapely.geometry import LineString

from coverage import network, settings
from coverage.errors import InputError
from coverage.network import parse_maxspeed, parse_oneway


def test_parse_maxspeed():
    got = parse_maxspeed(["50", "50 km/h", "30 mph", "none", "RU:urban", None, 0, 60, "40;60", ["70", "80"], "signals"])
    exp = [50, 50, 30 * 1.609344, np.nan, np.nan, np.nan, np.nan, 60, 40, 70, np.nan]
    assert np.allclose(got, exp, equal_nan=True)


def test_parse_oneway_osm_and_geofabrik():
    assert parse_oneway(["yes", "true", "1", "-1", "reverse", "no", None, "False"]).tolist() == [1, 1, 1, -1, -1, 0, 0, 0]
    assert parse_oneway(["F", "T", "B", "B"]).tolist() == [1, -1, 0, 0]
    assert parse_oneway([None, "no"], junction=["roundabout", "roundabout"]).tolist() == [1, 0]
    assert parse_oneway([True, False]).tolist() == [1, 0]


def test_from_edges_dedupes_drops_small_components_and_builds_csr():
    # component A: 0-1-2 (3 nodes), component B: 3-4 (2 nodes), isolated 5
    x = np.arange(6, dtype=float)
    y = np.zeros(6)
    u = [0, 1, 1, 2, 0, 3, 4, 2]
    v = [1, 0, 2, 1, 1, 4, 3, 2]
    t = [1.0, 1.0, 2.0, 2.0, 0.5, 1.0, 1.0, 9.0]
    g = network.from_edges(x, y, u, v, t, np.array(t) * 80, min_component_nodes=3)
    assert g.n_nodes == 3 and g.x.tolist() == [0.0, 1.0, 2.0]
    assert g.summary()["components_dropped"] == 2
    # parallel 0->1 keeps 0.5; self loop 2->2 dropped
    A = g.csr().toarray()
    assert A[0, 1] == 0.5 and A[1, 0] == 1.0 and A[1, 2] == 2.0 and A[2, 1] == 2.0
    assert g.n_edges == 4 and g.indptr.tolist() == [0, 1, 3, 4]
    # the largest component is kept even when all are small
    g2 = network.from_edges(x, y, u, v, t, t, min_component_nodes=100)
    assert g2.n_nodes == 3 and g2.component.tolist() == [0, 0, 0]
    G = g.to_networkx()
    assert G.number_of_edges() == 4 and G[0][1]["minutes"] == 0.5
    e = g.edges_gdf()
    assert len(e) == 4 and np.allclose(e.length, np.abs(g.x[e.u] - g.x[e.v]))


def test_component_labels_largest_first():
    x = np.arange(7, dtype=float)
    y = np.zeros(7)
    u, v = [0, 2, 3, 5], [1, 3, 4, 6]  # {0,1}, {2,3,4}, {5,6}
    g = network.from_edges(x, y, u, v, [1] * 4, [1] * 4, min_component_nodes=1)
    assert g.component.tolist() == [1, 1, 0, 0, 0, 2, 2]


def _write_lines(path, lines, **cols):
    gdf = gpd.GeoDataFrame(cols, geometry=lines, crs="EPSG:32650")
    gdf.to_file(path, layer="roads", driver="GPKG")
    return path


@hsettings(max_examples=60, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.floats(0.0, 5.0)), max_size=3 * n),
    st.integers(1, 6),
)))
def test_from_edges_matches_a_networkx_reference(p):
    """CSR = quickest of parallel edges, sorted by (tail, head); nodes of weak components smaller
    than the minimum dropped (the largest always kept); components numbered largest first."""
    import networkx as nx

    n, edges, min_n = p
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    u = [e[0] for e in edges]
    v = [e[1] for e in edges]
    w = np.array([e[2] for e in edges], dtype=float)
    g = network.from_edges(x, y, u, v, w, w * 80.0, min_component_nodes=min_n)
    best = {}
    for a, b, t in edges:
        if a != b and ((a, b) not in best or t < best[(a, b)]):
            best[(a, b)] = t
    G = nx.Graph()
    G.add_nodes_from(range(n))
    G.add_edges_from(best)
    comps = sorted((sorted(c) for c in nx.connected_components(G)), key=lambda c: (-len(c), c[0]))
    kept = [c for c in comps if len(c) >= min_n] or comps[:1]
    keep_nodes = sorted(i for c in kept for i in c)
    new = {old: k for k, old in enumerate(keep_nodes)}
    assert g.n_nodes == len(keep_nodes) and np.array_equal(g.x, x[keep_nodes])
    exp = sorted((new[a], new[b], t) for (a, b), t in best.items() if a in new and b in new)
    got = list(zip(g.tails().tolist(), g.indices.tolist(), g.minutes.tolist()))
    assert got == exp
    comp_of = {new[i]: k for k, c in enumerate(kept) for i in c}
    assert g.component.tolist() == [comp_of[i] for i in range(g.n_nodes)]
    assert g.indptr.dtype == np.int64 and g.indices.dtype == np.int64


def test_read_lines_joins_at_shared_vertices_and_splits(tmp_path):
    # a cross drawn with a shared middle vertex, a T-junction ending on an interior vertex,
    # and a bridge crossing without a shared vertex (must stay unconnected to the cross there)
    lines = [
        LineString([(0, 0), (100, 0), (200, 0)]),
        LineString([(100, -100), (100, 0), (100, 100)]),
        LineString([(200, 0), (200, 50)]),
        LineString([(150, -50), (150, 50)]),  # bridge: crosses line 0 at (150, 0) with no vertex
    ]
    p = _write_lines(tmp_path / "r.gpkg", lines, highway=["primary", "residential", "service", "footway"],
                     oneway=["no", "yes", "no", "no"], maxspeed=["70", None, None, None])
    g = network.read_lines(p, mode="walk", layer="roads", crs="EPSG:32650", min_component_nodes=1)
    # nodes: (0,0) (100,0) (200,0) (100,-100) (100,100) (200,50) (150,-50) (150,50)
    assert g.n_nodes == 8
    assert g.n_edges == 2 * 6
    assert g.length_km() == pytest.approx((200 + 200 + 50 + 100) / 1000)
    # a closed ring and two different lines between the same two nodes keep all their length
    ring = [LineString([(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]),
            LineString([(0, 0), (5, -5), (10, 0)])]
    p2 = _write_lines(tmp_path / "ring.gpkg", ring, highway=["footway", "footway"])
    r = network.read_lines(p2, mode="walk", crs="EPSG:32650", min_component_nodes=1)
    assert r.length_km() * 1000 == pytest.approx(40 + 2 * 50**0.5)
    assert np.allclose(g.minutes, g.metres / (settings.WALK_KMH * 1000 / 60))
    d = network.read_lines(p, mode="drive", layer="roads", crs="EPSG:32650", min_component_nodes=1)
    # footway not drivable; residential one-way (2 directed edges), primary and service both ways
    assert d.n_nodes == 6 and d.n_edges == 2 * 2 + 2 + 2
    speed = d.metres / d.minutes * 60 / 1000
    assert sorted(set(np.round(speed, 6))) == [15.0, 30.0, 70.0]
    # one-way residential: (100,-100) -> (100,0) exists, reverse does not
    xy = {(float(a), float(b)): i for i, (a, b) in enumerate(zip(d.x, d.y))}
    A = d.csr().toarray()
    assert A[xy[(100.0, -100.0)], xy[(100.0, 0.0)]] > 0 and A[xy[(100.0, 0.0)], xy[(100.0, -100.0)]] == 0


@pytest.mark.parametrize("spacing", [0.1, 0.02])
def test_a_densely_drawn_line_does_not_hide_another_line_from_its_dangling_end(tmp_path, spacing):
    """An end whose own line has more than 16 vertices nearer than the other line's vertex still
    joins that vertex (the search looked at the 16 nearest vertices only)."""
    dense = [(i * spacing, 0.0) for i in range(int(round(10 / spacing)) + 1)] + [(100.0, 0.0)]
    lines = [LineString(dense), LineString([(-3.0, -50.0), (-3.0, 0.0), (-3.0, 50.0)])]
    p = _write_lines(tmp_path / "dense.gpkg", lines, highway=["residential", "residential"])
    g = network.read_lines(p, mode="drive", layer="roads", crs="EPSG:32650", join_m=5.0, min_component_nodes=1)
    assert g.stats["dangling_joined"] == 1  # (0, 0) onto (-3, 0); the other three ends are far from any line
    assert g.n_nodes == 4 and set(g.component.tolist()) == {0}  # (-3, ±50), (-3, 0), (100, 0): one network
    assert (0.0, 0.0) not in set(zip(g.x.tolist(), g.y.tolist()))  # the end became the vertex (-3, 0)
    # farther than join_m: counted as an almost-touching end, not joined
    far = network.read_lines(p, mode="drive", layer="roads", crs="EPSG:32650", join_m=2.0, min_component_nodes=1)
    assert far.stats["dangling_joined"] == 0 and far.stats["dangling_near"] == 1


def test_read_lines_without_class_and_without_crs(tmp_path):
    lines = [LineString([(108.0, 33.0), (108.001, 33.0)]), LineString([(108.001, 33.0), (108.001, 33.001)])]
    p = tmp_path / "noclass.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpd.GeoDataFrame({"eid": [0, 1]}, geometry=lines).to_file(p)
    p.with_suffix(".prj").unlink(missing_ok=True)
    with pytest.warns(UserWarning, match="EPSG:4326"):
        g = network.read_lines(p, mode="drive", min_component_nodes=1)
    assert g.crs.to_epsg() == 4545  # CGCS2000 3-degree zone, CM 108° E
    assert g.n_nodes == 3 and g.n_edges == 4
    assert np.allclose(g.metres / g.minutes * 60 / 1000, settings.DRIVE_KMH_UNKNOWN)


def test_speed_overrides(tmp_path):
    p = _write_lines(tmp_path / "r.gpkg", [LineString([(0, 0), (1000, 0)])], highway=["tertiary"])
    g = network.read_lines(p, mode="drive", crs="EPSG:32650", min_component_nodes=1, speeds={"tertiary": 20})
    assert g.minutes[0] == pytest.approx(3.0)
    w = network.read_lines(p, mode="walk", crs="EPSG:32650", min_component_nodes=1, speeds={"walk": 6.0})
    assert w.minutes[0] == pytest.approx(10.0)
    e = network.read_lines(p, mode="ebike", crs="EPSG:32650", min_component_nodes=1)
    assert e.minutes[0] == pytest.approx(60 / settings.EBIKE_KMH)


def test_walk_excludes_motorways_and_ebike_keeps_trunk(tmp_path):
    lines = [LineString([(0, 0), (100, 0)]), LineString([(100, 0), (200, 0)]), LineString([(200, 0), (300, 0)])]
    p = _write_lines(tmp_path / "r.gpkg", lines, highway=["motorway", "trunk", "footway"])
    assert network.read_lines(p, mode="walk", crs="EPSG:32650", min_component_nodes=1).length_km() == pytest.approx(0.1)
    assert network.read_lines(p, mode="ebike", crs="EPSG:32650", min_component_nodes=1).length_km() == pytest.approx(0.2)
    assert network.read_lines(p, mode="drive", crs="EPSG:32650", min_component_nodes=1).length_km() == pytest.approx(0.2)


# ------------------------------------------------------------------------------------ real data


def _lines_length_km(path, crs, keep=None):
    gdf = gpd.read_file(path)
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    if keep is not None:
        gdf = gdf[keep(gdf)]
    return float(gdf.to_crs(crs).length.sum() / 1000)


def test_macau_geofabrik_lines(shared_data):
    p = shared_data / "macau/osm_geofabrik_shp/gis_osm_roads_free_1.shp"
    w = network.read_lines(p, mode="walk", min_component_nodes=1)
    expect = _lines_length_km(p, w.crs, lambda d: ~d.fclass.isin(settings.WALK_EXCLUDE))
    assert w.length_km() == pytest.approx(expect, rel=0.01)
    d = network.read_lines(p, mode="drive")
    s = d.summary()
    assert 5_000 < s["nodes"] < 20_000 and s["components_kept"] >= 1
    assert 300 < s["length_km"] < 1_000
    # some Geofabrik one-ways (F) exist: fewer directed edges than twice the undirected pairs
    assert d.n_edges < 2 * (d.n_edges - (d.n_edges // 20))


def test_xixiang_lines_without_class_or_prj(shared_data):
    p = shared_data / "shaanxi_xixiang/road_network_pred_2021/edges.shp"
    with pytest.warns(UserWarning, match="EPSG:4326"):
        g = network.read_lines(p, mode="walk", min_component_nodes=1)
    assert g.crs.to_epsg() == 4545
    expect = _lines_length_km(p, g.crs)
    assert expect == pytest.approx(3028, rel=0.02)  # SOURCES.md
    assert g.length_km() == pytest.approx(expect, rel=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = network.read_lines(p, mode="drive")
    assert 8_000 < d.n_nodes < 40_000
    assert d.summary()["components_dropped"] > 0


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_sao_paulo_pbf(shared_data, mode):
    g = network.read_osm(shared_data / "sao_paulo/osm/spo_osm.pbf", mode=mode)
    assert g.crs.to_epsg() == 32723
    s = g.summary()
    if mode == "drive":
        assert 15_000 < s["nodes"] <= 16_237  # SOURCES.md: pyrosm driving 16,237 nodes
        assert g.n_edges < 2 * 18_239
    else:
        assert 15_000 < s["nodes"] < 25_000
        A = g.csr()
        assert (A != A.T).nnz == 0  # walking: every edge both ways, same time


def test_helsinki_pbf(shared_data):
    g = network.read_osm(shared_data / "helsinki/osm/Helsinki.osm.pbf", mode="drive")
    assert 1_000 < g.n_nodes <= 1_437  # SOURCES.md: 1,437 nodes
    w = network.read_osm(shared_data / "helsinki/osm/Helsinki.osm.pbf", mode="walk")
    assert w.n_nodes > g.n_nodes


@pytest.mark.slow
def test_shenzhen_osm_xml(shared_data):
    g = network.read_osm(shared_data / "shenzhen_futian/shenzhen_futian_drive_overpass_20241006.osm", mode="drive")
    s = g.summary()
    assert g.crs.to_epsg() == 4547  # CGCS2000 CM 114° E
    # unsimplified: every OSM node of a kept way (30,370 in the file); largest component thousands+
    assert 20_000 < s["nodes"] <= 30_370
    assert np.bincount(g.component)[0] > 4_497
    assert 600 < s["length_km"] < 1_500


def test_shenzhen_graphml(shared_data):
    g = network.from_graphml(shared_data / "shenzhen_futian/pcrl_ShenZhen_drive_osmnx194.graphml", mode="drive")
    assert g.n_nodes == 1_970 and 3_800 < g.n_edges <= 3_908
    assert g.osmid is not None and g.osmid.dtype == np.int64


def test_demo_roads(repo_root):
    p = repo_root / "data/roads/roads.gpkg"
    if not p.exists():
        pytest.skip("demo roads not generated yet")
    g = network.read_lines(p, mode="drive", layer="roads")
    assert g.crs.to_epsg() == 4545 and g.n_nodes > 100
    w = network.read_lines(p, mode="walk", layer="roads", crs="EPSG:4545", min_component_nodes=1)
    gdf = gpd.read_file(p, layer="roads")
    expect = float(gdf[~gdf.highway.isin(settings.WALK_EXCLUDE)].to_crs(4545).length.sum() / 1000)
    assert w.length_km() == pytest.approx(expect, rel=0.01)


def test_read_lines_several_modes_at_once_equals_one_by_one(shared_data):
    path = shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_roads_free_1.shp"
    both = network.read_lines(path, mode=("walk", "drive"))
    for mode in ("walk", "drive"):
        one = network.read_lines(path, mode=mode)
        g = both[mode]
        assert g.mode == mode
        np.testing.assert_array_equal(g.indptr, one.indptr)
        np.testing.assert_array_equal(g.indices, one.indices)
        np.testing.assert_allclose(g.minutes, one.minutes)
    assert both["walk"].n_edges != both["drive"].n_edges  # one-ways and classes differ by mode


# ------------------------------------------------------------------ Chinese road classes


@pytest.mark.parametrize(
    "value, cls",
    [
        ("G107", "primary"),  # ordinary national road (3 digits)
        ("G4", "motorway"),  # national expressway (1–2 digits)
        ("G4511", "motorway"),  # national expressway (4 digits)
        ("S302", "secondary"),
        ("S15", "motorway"),  # provincial expressway
        ("X215", "tertiary"),
        ("y008", "unclassified"),  # lower case as typed
        ("Z001", "unclassified"),
        ("C123", "unclassified"),
        ("G107;S256", "primary"),  # several route numbers: the higher class
        ("S256/G210", "primary"),
        ("420101", "primary"),  # GB/T 13923 codes
        (420201, "secondary"),
        (420301.0, "tertiary"),  # a code read as float from a DBF
        ("420400", "unclassified"),
        ("420500", "unclassified"),
        ("420800", "unclassified"),
        ("430200", ""),  # urban road code: not mapped (class_map needed)
        ("国道", "primary"),
        ("县道", "tertiary"),
        ("二级公路", "secondary"),
        ("城市支路", "residential"),
        ("高速公路", "motorway"),
        ("residential", "residential"),  # an OSM class in a non-OSM field (Overture ``class``)
        ("foo", ""),
        (None, ""),
    ],
)
def test_road_class_of_chinese_values(value, cls):
    assert network.road_class([value], osm=False).tolist() == [cls]


def test_road_class_map_first_and_bad_class_refused():
    out = network.road_class(["430200", "G107", "track"], class_map={430200: "residential", "g107": "trunk"}, osm=False)
    assert out.tolist() == ["residential", "trunk", "track"]
    # an OSM field keeps its values, class_map still applies
    assert network.road_class(["track", "path"], class_map={"track": "unclassified"}).tolist() == ["unclassified", "path"]
    with pytest.raises(InputError, match="class_map.*fast") as e:
        network.road_class(["a"], class_map={"a": "fast"})
    assert "道路等级未知" in str(e.value)


def test_find_class_field_prefers_osm_and_ignores_case():
    assert network.find_class_field(["name", "GBCODE", "highway"]) == ("highway", True)
    assert network.find_class_field(["NAME", "Gb", "RN"]) == ("Gb", False)
    assert network.find_class_field(["名称", "道路等级"]) == ("道路等级", False)
    assert network.find_class_field(["eid", "type"]) == (None, False)


def test_read_lines_gbk_shapefile_with_gb_codes_and_class_names(tmp_path):
    """A DLG-style road layer: GBK DBF without .cpg, GB codes, route numbers, Chinese names."""
    import pyogrio

    lines = [LineString([(0, 0), (1000, 0)]), LineString([(1000, 0), (2000, 0)]),
             LineString([(2000, 0), (3000, 0)]), LineString([(3000, 0), (4000, 0)])]
    gdf = gpd.GeoDataFrame({"GB": [420101, 420301, 420400, 430200], "RN": ["G210", "X305", "Y012", ""],
                            "NAME": ["国道210线", "城关至东山县道", "东山乡道", "城关镇解放路"],
                            "等级": ["国道", "县道", "乡道", "支路"]},
                           geometry=lines, crs="EPSG:32648")
    p = tmp_path / "LRDL.shp"
    pyogrio.write_dataframe(gdf, p, encoding="GBK")
    p.with_suffix(".cpg").unlink()
    d = network.read_lines(p, mode="drive", min_component_nodes=1, crs="EPSG:32648")
    kmh = sorted(set(np.round(d.metres / d.minutes * 60 / 1000, 6)))
    # GB picked before RN: 60 (国道), 40 (县道), 30 (乡道 and unmapped 430200)
    assert kmh == [30.0, 40.0, 60.0]
    # class_map for the urban road; the route-number field chosen explicitly
    d2 = network.read_lines(p, mode="drive", min_component_nodes=1, crs="EPSG:32648", class_map={430200: "service"})
    assert sorted(set(np.round(d2.metres / d2.minutes * 60 / 1000, 6))) == [15.0, 30.0, 40.0, 60.0]
    d3 = network.read_lines(p, mode="drive", min_component_nodes=1, crs="EPSG:32648", class_field="RN")
    assert sorted(set(np.round(d3.metres / d3.minutes * 60 / 1000, 6))) == [30.0, 40.0, 60.0]
    # the Chinese field name and values survive the GBK DBF (mojibake would not be found)
    d4 = network.read_lines(p, mode="drive", min_component_nodes=1, crs="EPSG:32648", class_field="等级")
    assert sorted(np.round(d4.metres / d4.minutes * 60 / 1000, 6)) == [30.0] * 4 + [40.0] * 2 + [60.0] * 2


def _shenzhen_ref_lines(shared_data, tmp_path):
    """Shenzhen OSM ways that carry a ``ref``, written with ``ref`` only (no highway)."""
    import json

    src = shared_data / "shenzhen_futian/shenzhen_futian_drive_overpass_20241006.json"
    els = json.loads(src.read_text(encoding="utf-8"))["elements"]
    xy = {e["id"]: (e["lon"], e["lat"]) for e in els if e["type"] == "node"}
    ways = [e for e in els if e["type"] == "way" and "ref" in e.get("tags", {})]
    gdf = gpd.GeoDataFrame(
        {"ref": [w["tags"]["ref"] for w in ways], "osm_highway": [w["tags"].get("highway") for w in ways]},
        geometry=[LineString([xy[n] for n in w["nodes"]]) for w in ways], crs=4326,
    )
    p = tmp_path / "sz_ref.gpkg"
    gdf.to_file(p, layer="roads")
    return p, gdf


def test_shenzhen_osm_route_numbers(shared_data, tmp_path):
    p, gdf = _shenzhen_ref_lines(shared_data, tmp_path)
    cls = network.road_class(gdf["ref"], osm=False)
    by_ref = dict(zip(gdf["ref"], cls))
    # real refs: G4 (京港澳高速) expressway, G107 national road, S550/Y304 provincial/township
    assert by_ref["G4"] == "motorway" and by_ref["G107"] == "primary"
    assert by_ref["S550"] == "secondary" and by_ref["Y304"] == "unclassified"
    # every G4 way is tagged motorway in OSM too
    assert set(gdf.loc[gdf["ref"] == "G4", "osm_highway"]) == {"motorway"}
    # "9" (a bare number) is not a route number: no class
    assert by_ref.get("9", "") == ""
    d = network.read_lines(p, mode="drive", class_field="ref", min_component_nodes=1)
    assert 100.0 in set(np.round(d.metres / d.minutes * 60 / 1000, 6))


# ---------------------------------------------------------------- segment index (snapping onto roads)


@hsettings(max_examples=60, deadline=None)
@given(st.integers(1, 25), st.data())
def test_segment_index_lists_every_road_once_and_reaches_every_point(n, data):
    c = st.floats(0.0, 2000.0, allow_nan=False, allow_subnormal=False)
    xy = data.draw(st.lists(st.tuples(c, c), min_size=n, max_size=n))
    raw = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.booleans()), max_size=3 * n))
    u = [a for a, b, both in raw] + [b for a, b, both in raw if both]
    v = [b for a, b, both in raw] + [a for a, b, both in raw if both]
    w = np.ones(len(u))
    g = network.from_edges([p[0] for p in xy], [p[1] for p in xy], u, v, w, w, mode="drive",
                           min_component_nodes=1)
    idx = network.segment_index(g)
    assert network.segment_index(g) is idx  # cached on the graph
    tails = g.tails()
    edge = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(tails, g.indices))}
    pairs = {(min(a, b), max(a, b)) for a, b in edge}
    lone = set(range(g.n_nodes)) - {x for p in pairs for x in p}
    got = [(int(a), int(b)) for a, b in zip(idx.a, idx.b)]
    assert len(got) == len(set(got)) == len(pairs) + len(lone)
    for s, (a, b) in enumerate(got):
        if a == b:
            assert a in lone and idx.e_ab[s] == idx.e_ba[s] == -1
            continue
        assert (min(a, b), max(a, b)) in pairs
        assert idx.e_ab[s] == edge.get((a, b), -1) and idx.e_ba[s] == edge.get((b, a), -1)
        assert s in idx.node_seg[idx.node_ptr[a]:idx.node_ptr[a + 1]]
        assert s in idx.node_seg[idx.node_ptr[b]:idx.node_ptr[b + 1]]
    # memory stays linear: at most two extra index points per segment
    assert len(idx.piece_seg) <= 2 * max(len(got), 1)
    # every point of every segment is within `reach` of the segment's own nodes or piece midpoints
    pts = np.c_[idx.px, idx.py]
    for s, (a, b) in enumerate(got):
        own = np.r_[a, b, g.n_nodes + np.flatnonzero(idx.piece_seg == s)]
        for f in np.linspace(0, 1, 11):
            q = np.array([g.x[a] + f * (g.x[b] - g.x[a]), g.y[a] + f * (g.y[b] - g.y[a])])
            assert np.hypot(*(pts[own] - q).T).min() <= idx.reach * (1 + 1e-9) + 1e-9


def test_segment_index_cuts_long_roads_into_pieces():
    # a 10 km road beside many 100 m streets: the long one gets pieces, the reach stays short
    x = np.r_[0.0, 10_000.0, np.arange(200) * 100.0]
    y = np.r_[0.0, 0.0, np.full(200, 500.0)]
    u = np.r_[0, np.arange(2, 201)]
    v = np.r_[1, np.arange(3, 202)]
    m = np.hypot(x[u] - x[v], y[u] - y[v])
    g = network.from_edges(x, y, np.r_[u, v], np.r_[v, u], np.r_[m, m] / 80, np.r_[m, m], min_component_nodes=1)
    idx = network.segment_index(g)
    assert idx.n_segments == 200
    # L = max(mean 149.5 m, 2 x median 100 m) = 200 m: 50 pieces of 200 m on the long road
    assert len(idx.piece_seg) == 50 and (idx.piece_seg == 0).all() and idx.reach == pytest.approx(100.0)
