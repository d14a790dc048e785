"""The road file is read once per run, and the graphs built from what was read are the old ones.

``network.read_lines`` / ``network.from_lines`` decode the WKB themselves, share the mode-independent
work across modes and skip per-mode sorts. Here every array of every graph is compared with a
reference build that takes the old route one mode at a time: geopandas reads and explodes the layer
and moves it with ``to_crs``, ``np.unique(axis=0)`` numbers the vertices, the tags are parsed entry
by entry (lists, not arrays), the speeds come from a plain loop over the documented rules and
``network.from_edges`` (its own sort) builds each mode. Only the splitting of lines into segments
(``_join_dangling``, ``_split``, unchanged) is shared with the code under test.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pyproj import CRS
from shapely.geometry import LineString, MultiLineString, Point

from coverage import inputs as inputs_mod
from coverage import model as model_mod
from coverage import network, pipeline, settings
from coverage.crs import local_metric_crs
from coverage.errors import InputError
from coverage.io.roads import read_road_lines
from coverage.scenario import parse_scenario

MODES = ["drive", "ebike", "walk"]


# ------------------------------------------------------------------------------------ reference


def _kmh(mode: str, cls: str, maxspeed: float) -> float:
    """Speed of one way by the rules of the network module docstring (NaN: not usable)."""
    if mode == "walk":
        return math.nan if cls and cls in settings.WALK_EXCLUDE else settings.WALK_KMH
    if mode == "ebike":
        return math.nan if cls and cls in set(settings.WALK_EXCLUDE) - {"trunk", "trunk_link"} else settings.EBIKE_KMH
    base = cls[:-5] if cls.endswith("_link") else cls
    v = {k: float(s) for k, s in settings.DRIVE_KMH.items() if k != "unknown"}.get(base, math.nan)
    if cls == "":
        v = settings.DRIVE_KMH_UNKNOWN
    return maxspeed if math.isfinite(v) and math.isfinite(maxspeed) else v  # a tagged maxspeed wins


def reference_graphs(path, layer=None, modes=MODES, crs=None, join_m=0.0, snap_m=0.01, min_component_nodes=None):
    """The graphs of the old read_lines, one mode at a time (see the module docstring)."""
    gdf = gpd.read_file(path, **({"layer": layer} if layer is not None else {}))
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    gdf = gdf.explode(index_parts=False, ignore_index=True)
    gdf = gdf[gdf.geom_type == "LineString"]
    if crs is None:
        lonlat = gdf.geometry.to_crs(4326) if not gdf.crs.is_geographic else gdf.geometry
        b = lonlat.total_bounds
        dst = local_metric_crs((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
    else:
        dst = CRS.from_user_input(crs)
    coords, line = shapely.get_coordinates(gdf.geometry.to_crs(dst).to_numpy(), return_index=True)
    keys = np.round(coords / snap_m).astype(np.int64)
    _, first_pos, vid = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    vid = vid.ravel()
    vx, vy = coords[first_pos, 0], coords[first_pos, 1]
    start = np.r_[True, line[1:] != line[:-1]]
    end = np.r_[line[1:] != line[:-1], True]
    vid, dangling = network._join_dangling(vid, line, start | end, vx, vy, line[first_pos], join_m)
    uses = np.bincount(vid, minlength=len(first_pos))
    is_break = start | end | (uses[vid] > 1)
    step = np.r_[0.0, np.where(start[1:], 0.0, np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1])))]
    eu, ev, elen, eline = network._split(is_break, line, vid, np.cumsum(step))

    field, osm = network.find_class_field(list(gdf.columns))
    cls = network.road_class(list(gdf[field]), osm=osm) if field else np.full(len(gdf), "", object)
    ow = network.parse_oneway(list(gdf["oneway"])) if "oneway" in gdf else np.zeros(len(gdf), np.int8)
    ms = network.parse_maxspeed(list(gdf["maxspeed"])) if "maxspeed" in gdf else np.full(len(gdf), np.nan)
    out = {}
    for mode in modes:
        kmh = np.array([_kmh(mode, cls[i], ms[i]) for i in eline])
        ok = np.isfinite(kmh) & (kmh > 0)
        minutes = elen / (kmh * 1000.0 / 60.0)
        o = ow[eline] if mode == "drive" else np.zeros(len(eline), np.int8)
        fwd, bwd = ok & (o >= 0), ok & (o <= 0)
        g = network.from_edges(
            vx, vy, np.r_[eu[fwd], ev[bwd]], np.r_[ev[fwd], eu[bwd]], np.r_[minutes[fwd], minutes[bwd]],
            np.r_[elen[fwd], elen[bwd]], mode=mode, crs=crs if crs is not None else dst,
            min_component_nodes=min_component_nodes, drop_unused=True,
            stats={"source": str(path), "ways_in": len(eu), "ways_used": int(ok.sum())},
        )
        if g.n_nodes == 0:
            raise InputError(f"no road for {mode}", f"no road for {mode}")
        g.stats.update(dangling)
        out[mode] = g
    return out


def assert_same_graphs(got: dict, ref: dict) -> None:
    assert list(got) == list(ref)
    for mode, g in got.items():
        r = ref[mode]
        for name in ("x", "y", "indptr", "indices", "minutes", "metres", "component"):
            a, b = getattr(g, name), getattr(r, name)
            assert a.dtype == b.dtype and a.shape == b.shape, (mode, name)
            assert np.array_equal(a, b), (mode, name)
        assert g.crs == r.crs and g.mode == r.mode and g.osmid is None
        assert g.stats == r.stats and list(g.stats) == list(r.stats), mode


# ------------------------------------------------------------------------------------ random layers

_CLASSES = [None, "primary", "residential", "footway", "motorway", "trunk_link", "service", "track", "unclassified"]
_ONEWAY = [None, "yes", "no", "-1"]
_SPEED = [None, "50", "30 mph", "none", "80"]


@st.composite
def _layers(draw):
    pt = st.tuples(st.integers(0, 6), st.integers(0, 6))
    n = draw(st.integers(1, 12))
    geoms, attrs = [], []
    for _ in range(n):
        parts = draw(st.lists(st.lists(pt, min_size=2, max_size=6), min_size=1, max_size=3))
        parts = [[(x * 40.0 + 500_000.0, y * 40.0 + 3_800_000.0) for x, y in p] for p in parts]
        if len(parts) == 1 and draw(st.booleans()):
            geoms.append(LineString(parts[0]))
        else:
            geoms.append(MultiLineString(parts))
        attrs.append((draw(st.sampled_from(_CLASSES)), draw(st.sampled_from(_ONEWAY)), draw(st.sampled_from(_SPEED))))
    return geoms, attrs


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layer=_layers(), crs=st.sampled_from([None, "EPSG:32649", "EPSG:3857"]), join_m=st.sampled_from([0.0, 30.0]))
def test_random_layers_give_the_reference_graphs(tmp_path, layer, crs, join_m):
    geoms, attrs = layer
    p = tmp_path / "r.gpkg"
    gpd.GeoDataFrame(
        {"highway": [a[0] for a in attrs], "oneway": [a[1] for a in attrs], "maxspeed": [a[2] for a in attrs]},
        geometry=geoms, crs="EPSG:32649",
    ).to_file(p, layer="roads")
    try:
        ref = reference_graphs(p, "roads", crs=crs, join_m=join_m, min_component_nodes=1)
    except Exception as err:  # noqa: BLE001 - e.g. no road usable for a mode: both must refuse alike
        with pytest.raises(type(err)):
            network.read_lines(p, mode=MODES, layer="roads", crs=crs, join_m=join_m, min_component_nodes=1)
        return
    got = network.read_lines(p, mode=MODES, layer="roads", crs=crs, join_m=join_m, min_component_nodes=1)
    assert_same_graphs(got, ref)


def test_3d_lines_and_a_mixed_layer(tmp_path):
    """Lines with z (transformed with it, as geopandas does) and a layer with points (the shapely route)."""
    lines = [
        LineString([(500_000, 3_800_000, 10), (500_100, 3_800_000, 20), (500_100, 3_800_050, 5)]),
        LineString([(500_100, 3_800_000, 0), (500_200, 3_800_000, 0)]),
        MultiLineString([[(500_000, 3_800_000), (500_000, 3_800_100)], [(500_000, 3_800_100), (500_050, 3_800_120)]]),
    ]
    p = tmp_path / "z.gpkg"
    gpd.GeoDataFrame({"highway": ["primary", None, "residential"]}, geometry=lines, crs="EPSG:32649").to_file(p, layer="roads")
    assert read_road_lines(p, "roads").z is not None
    for crs in (None, "EPSG:32649"):
        got = network.read_lines(p, mode=MODES, layer="roads", crs=crs, min_component_nodes=1)
        assert_same_graphs(got, reference_graphs(p, "roads", crs=crs, min_component_nodes=1))
    mixed = [*lines, Point(500_000, 3_800_000), None]
    p2 = tmp_path / "mixed.gpkg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gpd.GeoDataFrame({"highway": ["primary", None, "track", "x", "y"]}, geometry=mixed, crs="EPSG:32649").to_file(p2, layer="roads")
    rl = read_road_lines(p2, "roads")
    assert rl.n_features == 5 and rl.has_lines and rl.feature_type.tolist() == [1, 1, 5, 0, -1]
    got = network.read_lines(p2, mode=MODES, layer="roads", crs="EPSG:32649", min_component_nodes=1)
    assert_same_graphs(got, reference_graphs(p2, "roads", crs="EPSG:32649", min_component_nodes=1))


def test_wkb_decoder_matches_shapely_on_big_endian_and_ewkb():
    from coverage.io import roads

    geoms = np.array([
        LineString([(0, 0), (1.5, 2.25), (3, -4)]), None, LineString(),
        MultiLineString([[(1, 1), (2, 2)], [(5, 5, ), (6, 7)]]),
        shapely.from_wkt("MULTILINESTRING (EMPTY, (1 2, 3 4))"),
        shapely.from_wkt("LINESTRING Z (1 2 3, 4 5 6)"),
    ], dtype=object)
    for kw in ({"byte_order": 0}, {"byte_order": 1}, {"flavor": "extended", "include_srid": True}, {"flavor": "iso"}):
        wkb = np.array([None if g is None else shapely.to_wkb(shapely.set_srid(g, 4326), **kw) for g in geoms], dtype=object)
        ftype, xy, z, line, feat = roads._decode_lines(wkb)
        full = np.array([g is not None and not g.is_empty for g in geoms])
        parts, idx = shapely.get_parts(geoms[full], return_index=True)
        exp_xyz, exp_line = shapely.get_coordinates(parts, include_z=True, return_index=True)
        assert ftype.tolist() == [1, -1, 1, 5, 5, 1]
        assert np.array_equal(xy, exp_xyz[:, :2]) and np.array_equal(line, exp_line)
        assert np.array_equal(z, exp_xyz[:, 2], equal_nan=True)
        assert np.array_equal(feat, np.flatnonzero(full)[idx])
    # anything but lines: the shapely route
    assert roads._decode_lines(np.array([shapely.to_wkb(Point(1, 2))], dtype=object)) is None


# ------------------------------------------------------------------------------------ real layers


@pytest.mark.parametrize("name, layer, join_m", [
    ("macau/osm_geofabrik_shp/gis_osm_roads_free_1.shp", None, 0.0),  # fclass, F/T/B one-ways, maxspeed
    ("shaanxi_xixiang/road_network_pred_2021/edges.shp", None, 10.0),  # no class, no .prj, dangling ends joined
])
def test_real_layers_give_the_reference_graphs(shared_data, name, layer, join_m):
    p = shared_data / name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = network.read_lines(p, mode=MODES, layer=layer, join_m=join_m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = reference_graphs(p, layer, join_m=join_m)
    assert_same_graphs(got, ref)
    assert [str(w.message) for w in caught] == (
        [f"{p.name}: 路网图层没有坐标系（缺少 .prj），按 EPSG:4326 经纬度处理 / the road layer has no CRS (no .prj); assuming EPSG:4326 lon/lat"]
        if "xixiang" in name else []
    )


def _count_road_reads(monkeypatch, road_path: Path) -> list[str]:
    """Record every read of ``road_path`` through pyogrio (geopandas reads through it too)."""
    seen: list[str] = []
    for mod, name in ((pyogrio.raw, "read"), (pyogrio, "read_dataframe"), (gpd, "read_file")):
        orig = getattr(mod, name)

        def spy(path, *a, __orig=orig, __name=name, **k):
            if Path(str(path)).resolve() == road_path.resolve():
                seen.append(__name)
            return __orig(path, *a, **k)

        monkeypatch.setattr(mod, name, spy)
    return seen


def test_a_run_reads_the_road_file_once_and_builds_the_reference_graphs(monkeypatch):
    yml = pipeline.demo_scenario_path()
    sc, _, _ = parse_scenario(yml)
    road = Path(sc.network.roads.path)
    seen = _count_road_reads(monkeypatch, road)
    inp = pipeline.load_inputs(yml)
    assert inp.road_lines.lines is not None and seen == ["read"]
    m = pipeline.build_model(inp)
    assert seen == ["read"]  # the graph build took the lines the inputs read
    assert inp.road_lines.lines is None and m.inputs.road_lines.lines is None  # not kept for the rest of the run
    monkeypatch.undo()
    ref = reference_graphs(road, sc.network.roads.layer, modes=list(m.graphs), crs=inp.crs)
    assert_same_graphs(m.graphs, ref)
    # a second build on the same inputs reads the file again and gets the same graphs
    again = model_mod.read_roads(sc.network, list(m.graphs), inp.crs)
    assert_same_graphs(again, ref)


def test_road_vertices_for_the_crs_check_are_those_of_the_old_reading():
    yml = pipeline.demo_scenario_path()
    sc, probs, y = parse_scenario(yml)
    layer = sc.network.roads
    g = gpd.read_file(layer.path, layer=layer.layer)
    xy = shapely.get_coordinates(g.geometry.to_crs(4326).to_numpy())
    for max_points in (10_000, 10**9):
        exp = xy[np.linspace(0, len(xy) - 1, max_points).astype(int)] if len(xy) > max_points else xy
        got, lines = inputs_mod._road_points(sc, inputs_mod._Reader(y, list(probs)), max_points=max_points)
        assert lines is not None and np.array_equal(got, exp)
