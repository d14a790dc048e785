"""Tests of the boundary, unit and village readers."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from coverage.crs import gcj02_to_wgs84, haversine_m
from coverage.errors import InputError
from coverage.io.boundaries import infer_kind, read_boundary, read_units, read_villages

DEMO = Path(__file__).resolve().parents[2] / "data" / "boundaries"


def test_infer_kind():
    assert infer_kind("阳坊镇") == "镇"
    assert infer_kind("建外街道") == "街道"
    assert infer_kind("建外街道办事处") == "街道"
    assert infer_kind("三间房乡") == "乡"
    assert infer_kind("某某民族乡") == "乡"
    assert infer_kind("开发区", "110105400000") == "其他"
    assert infer_kind("某地区", "110105021000") == "街道"  # code digits 7–9 = 021
    assert infer_kind("某地区", "110105102000") == "镇"
    assert infer_kind("某地区", "110105205000") == "乡"
    assert infer_kind("某镇", "", kind="街道") == "街道"  # an explicit field wins


# one kind rule for read units (infer_kind) and approximate townships (admin.township_kind): the
# names each of the two former rules knew, written out by hand
_KIND_NAMES = [
    ("巴彦苏木", "乡"),  # Inner Mongolia's 乡 (was 其他 for read units)
    ("城关办事处", "街道"),  # a bare 办事处 (was 其他 for read units)
    ("东街道办事处", "街道"),
    ("阳坊镇人民政府", "镇"),  # a seat's name (was 其他 for approximate townships)
    ("西阳回族乡政府", "乡"),
    ("镇江街道", "街道"),
    ("南口地区", "其他"),
    ("人民政府", "其他"),
]


@pytest.mark.parametrize(("name", "kind"), _KIND_NAMES)
def test_one_kind_rule_for_read_and_approximate_units(name, kind):
    from coverage.io import admin

    assert infer_kind(name) == kind
    assert admin.township_kind(name) == kind


def test_beijing_units(shared_data):
    files = sorted((shared_data / "beijing_subdistricts").glob("*-all.geojson"))
    u = read_units(files)
    assert len(u) == 343
    assert list(u.columns[:4]) == ["code", "name", "kind", "geometry"]
    # integer 12-digit codes become strings without decimals
    assert u["code"].str.fullmatch(r"\d{12}").all()
    assert "110114104000" in set(u["code"])  # 阳坊镇, an integer in the file
    # kind from the name suffix: compare with a hand-written rule on the raw names
    raw = gpd.GeoDataFrame(gpd.pd.concat([gpd.read_file(f) for f in files], ignore_index=True))
    expect = raw["Name"].map(lambda n: "街道" if n.endswith("街道") else "镇" if n.endswith("镇") else "乡" if n.endswith("乡") else "?")
    assert (expect != "?").all()
    assert u.set_index("name")["kind"].sort_index().tolist() == expect.set_axis(raw["Name"]).sort_index().tolist()
    assert u.crs.is_projected
    # area close to the 16,403 km² of SOURCES.md
    assert abs(u.area.sum() / 1e6 - 16403) < 60
    assert u.geometry.is_valid.all()


def test_units_field_mapping_and_errors(tmp_path):
    g = gpd.GeoDataFrame(
        {"XZQDM": [620802100000.0, 620802001000.0], "XZQMC": ["柳湖镇", "城关"], "TYPE": [None, "街道"]},
        geometry=[Polygon([(0, 0), (1, 0), (1, 1)]), Polygon([(1, 0), (2, 0), (2, 1)])],
        crs=4326,
    )
    p = tmp_path / "u.gpkg"
    g.to_file(p, layer="units")
    u = read_units(p, fields={"code": "XZQDM", "name": "XZQMC", "kind": "TYPE"})
    assert u["code"].tolist() == ["620802100000", "620802001000"]
    assert u["kind"].tolist() == ["镇", "街道"]
    with pytest.raises(InputError) as e:
        read_units(p, fields={"code": "NOPE"})
    assert "NOPE" in str(e.value) and "u.gpkg" in str(e.value)
    with pytest.raises(InputError) as e:
        read_units(p, layer="missing")
    assert "missing" in str(e.value) and "units" in str(e.value)
    with pytest.raises(InputError) as e:
        read_units(tmp_path / "none.gpkg")
    assert "找不到" in str(e.value) and "not found" in str(e.value)
    g2 = g.assign(XZQDM=[1, 1])
    g2.to_file(tmp_path / "dup.gpkg")
    with pytest.raises(InputError) as e:
        read_units(tmp_path / "dup.gpkg", fields={"code": "XZQDM", "name": "XZQMC"})
    assert "重复" in str(e.value) and "more than once" in str(e.value)


def test_invalid_geometry_repaired(tmp_path):
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    assert not bowtie.is_valid
    g = gpd.GeoDataFrame({"name": ["甲镇"], "code": ["1"]}, geometry=[bowtie], crs=4326)
    g.to_file(tmp_path / "b.gpkg")
    u = read_units(tmp_path / "b.gpkg", target_crs=4326)
    assert u.geometry.is_valid.all()
    assert u.geometry.iloc[0].area == pytest.approx(0.5)
    b = read_boundary(tmp_path / "b.gpkg", target_crs=4326)
    assert len(b) == 1 and b.geometry.is_valid.all()


def test_wuhan_boundary(shared_data):
    b = read_boundary(shared_data / "wuhan" / "boundary" / "wuhan-boundary.shp")
    assert len(b) == 1
    assert b.crs.to_epsg() == 4547  # CGCS2000 / 3-degree GK CM 114E
    assert 8400 < b.area.iloc[0] / 1e6 < 8700  # Wuhan: about 8,569 km²


def test_amap_gcj02_layer_matches_converted(shared_data, tmp_path):
    f = shared_data / "china_admin" / "seed_admin_boundaries_amap.gpkg"
    gcj = gpd.read_file(f, layer="gcj02_original")
    wgs = gpd.read_file(f, layer="wgs84_converted")
    for code in ["620802", "520382", "341103", "610724"]:
        gi = gcj.index[gcj["adcode"].astype(str) == code][0]
        wi = wgs.index[wgs["adcode"].astype(str) == code][0]
        a = shapely.get_coordinates(gcj.geometry[gi])
        b = shapely.get_coordinates(wgs.geometry[wi])
        assert a.shape == b.shape
        lon, lat = gcj02_to_wgs84(a[:, 0], a[:, 1])
        assert haversine_m(lon, lat, b[:, 0], b[:, 1]).max() < 1.0
    # the reader's crs="gcj02" does the same conversion (崆峒区, written to a small file)
    gcj[gcj["adcode"].astype(str) == "620802"].to_file(tmp_path / "kt.gpkg")
    b1 = read_boundary(tmp_path / "kt.gpkg", crs="gcj02", target_crs=4326).geometry.iloc[0]
    ref = wgs.geometry[wgs.index[wgs["adcode"].astype(str) == "620802"][0]]
    a = shapely.get_coordinates(b1)
    b = shapely.get_coordinates(ref)
    assert a.shape == b.shape
    assert haversine_m(a[:, 0], a[:, 1], b[:, 0], b[:, 1]).max() < 1.0


def test_villages_assigned_by_spatial_join(tmp_path):
    units = gpd.GeoDataFrame(
        {"code": ["A", "B"], "name": ["甲镇", "乙乡"], "kind": ["镇", "乡"]},
        geometry=[Polygon([(0, 0), (10, 0), (10, 10), (0, 10)]), Polygon([(10, 0), (20, 0), (20, 10), (10, 10)])],
        crs=4545,
    )
    v = gpd.GeoDataFrame(
        {"name": ["一村", "二村", "三村"], "code": [1, 2, 3]},
        geometry=[Point(5, 5), Point(15, 5), Point(25, 5)],  # the third lies outside: nearest = B
        crs=4545,
    )
    v.to_file(tmp_path / "v.gpkg")
    out = read_villages(tmp_path / "v.gpkg", units=units)
    assert out["unit_code"].tolist() == ["A", "B", "B"]
    assert out["code"].tolist() == ["1", "2", "3"]
    assert list(out.columns[:4]) == ["code", "name", "unit_code", "geometry"]
    # polygons use their representative point
    vp = v.assign(geometry=v.buffer(1.0))
    vp.to_file(tmp_path / "vp.gpkg")
    assert read_villages(tmp_path / "vp.gpkg", units=units)["unit_code"].tolist() == ["A", "B", "B"]


@pytest.mark.skipif(not (DEMO / "townships.gpkg").exists(), reason="demo data not generated yet")
def test_demo_boundaries():
    county = read_boundary(DEMO / "county.gpkg", layer="county")
    cq = read_boundary(DEMO / "county.gpkg", layer="chengqu", target_crs=county.crs)
    assert cq.geometry.iloc[0].within(county.geometry.iloc[0].buffer(1.0))
    u = read_units(DEMO / "townships.gpkg", layer="townships", target_crs=county.crs)
    assert {"seat_lon", "seat_lat"} <= set(u.columns)
    assert set(u["kind"]) <= {"街道", "镇", "乡"} and (u["kind"] == "街道").any()
    assert abs(u.area.sum() - county.area.iloc[0]) / county.area.iloc[0] < 0.01
    v = read_villages(DEMO / "villages.gpkg", layer="villages", units=u)
    assert set(v["unit_code"]) <= set(u["code"])
    assert "remote" in v.columns
