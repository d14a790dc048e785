"""Tests of the facility and candidate readers and of the declared-CRS check."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely

from coverage.crs import haversine_m, wgs84_to_gcj02, wgs84_to_bd09
from coverage.errors import InputError
from coverage.io.facilities import FACILITY_COLUMNS, check_declared_crs, inspect_facilities, read_candidates, read_facilities

DEMO = Path(__file__).resolve().parents[2] / "data" / "facilities"
AMAP = ("macau", "amap_poi_csv", "macau_amap_medical_healthcare.csv")


def _csv(tmp_path: Path, text: str, name: str = "f.csv", encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


GOOD = "编号,名称,类型,规模,经度,纬度\nA1,城关镇中心卫生院,中心卫生院,40,107.90,35.29\nA2,南村村卫生室,村卫生室,,107.95,35.31\n"


def test_minimal_csv_columns(tmp_path):
    g = read_facilities(_csv(tmp_path, GOOD))
    assert list(g.columns) == FACILITY_COLUMNS
    assert g["fid"].tolist() == ["A1", "A2"]
    assert g["ftype"].tolist() == ["township_health_center", "village_clinic"]
    assert g["category"].tolist() == ["clinic", "clinic"]
    assert g["tier"].tolist() == ["township", "village"]
    assert g["capacity"].iloc[0] == 40 and np.isnan(g["capacity"].iloc[1])
    assert g["capacity_unit"].tolist() == ["床位", "床位"]
    assert g["source"].tolist() == ["f.csv:2", "f.csv:3"]  # rows as Excel/WPS number them (header = 1)
    assert g.crs.is_projected
    # geometry = lon/lat projected: back-projection recovers them
    back = g.to_crs(4326)
    assert np.allclose(back.geometry.x, g["lon"]) and np.allclose(back.geometry.y, g["lat"])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_encodings(tmp_path, encoding):
    g = read_facilities(_csv(tmp_path, GOOD, encoding=encoding))
    assert g["name"].iloc[0] == "城关镇中心卫生院"


def test_english_headers_and_combined_column(tmp_path):
    p = _csv(tmp_path, "id,name,type,lng,lat\n1,X kindergarten,kindergarten,107.9,35.3\n")
    assert read_facilities(p)["ftype"].tolist() == ["kindergarten"]
    p = _csv(tmp_path, 'name,type,location\nA,小学,"107.9,35.3"\n', "loc.csv")
    g = read_facilities(p)
    assert g["lon"].iloc[0] == pytest.approx(107.9) and g["lat"].iloc[0] == pytest.approx(35.3)
    assert g["fid"].iloc[0] == "loc-2"  # no id column: <file stem>-<row as Excel shows it>


def test_gcj02_and_bd09_declared(tmp_path):
    lon, lat = np.array([107.9, 107.95]), np.array([35.29, 35.31])
    glon, glat = wgs84_to_gcj02(lon, lat)
    blon, blat = wgs84_to_bd09(lon, lat)
    for (x, y), crs in (((glon, glat), "gcj02"), ((blon, blat), "bd09"), ((lon, lat), "wgs84")):
        p = _csv(tmp_path, "名称,类型,经度,纬度\n" + "".join(f"F{i},小学,{x[i]:.9f},{y[i]:.9f}\n" for i in range(2)), f"{crs}.csv")
        g = read_facilities(p, crs=crs)
        assert haversine_m(g["lon"], g["lat"], lon, lat).max() < 0.5


def test_projected_crs_declared(tmp_path):
    from pyproj import Transformer

    p = _csv(tmp_path, "名称,类型,X,Y\n甲,小学,491000,3906000\n")
    g = read_facilities(p, crs="EPSG:4545")  # CGCS2000 / 3-degree GK CM 108E
    lon, lat = Transformer.from_crs(4545, 4326, always_xy=True).transform(491000, 3906000)
    assert g["lon"].iloc[0] == pytest.approx(lon) and g["lat"].iloc[0] == pytest.approx(lat)


def test_amap_gcj02_vs_wgs84_columns(shared_data):
    f = shared_data.joinpath(*AMAP)
    a = read_facilities(f, crs="gcj02", columns={"lon": "lon_gcj02", "lat": "lat_gcj02"})
    b = read_facilities(f, crs="wgs84", columns={"lon": "lon_wgs84", "lat": "lat_wgs84"})
    assert len(a) == len(b) > 600
    assert (a["fid"].to_numpy() == b["fid"].to_numpy()).all()
    assert haversine_m(a["lon"], a["lat"], b["lon"], b["lat"]).max() < 1.0
    assert set(a["category"]) == {"clinic"}
    # 药房 rows are dropped, hospitals kept
    assert not a["type_raw"].str.contains("药房").any()
    assert (a["ftype"] == "county_hospital").sum() >= 82


def test_amap_all_files_without_mapping_are_ambiguous(shared_data):
    # the Amap CSVs have lon_gcj02 AND lon_wgs84: with no columns= the reader must not guess
    f = shared_data.joinpath(*AMAP)
    with pytest.raises(InputError) as e:
        read_facilities(f)
    assert "columns" in str(e.value) and "经度" in str(e.value) and "lon_gcj02" in str(e.value)


def test_declared_crs_check_macau(shared_data):
    f = shared_data.joinpath(*AMAP)
    roads = gpd.read_file(shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_roads_free_1.shp")
    right = read_facilities(f, crs="wgs84", columns={"lon": "lon_wgs84", "lat": "lat_wgs84"})
    wrong = read_facilities(f, crs="wgs84", columns={"lon": "lon_gcj02", "lat": "lat_gcj02"})
    assert check_declared_crs(right, roads) is None
    prob = check_declared_crs(wrong, roads, declared="wgs84", file=f)
    assert prob is not None and prob.field == "crs" and prob.file == str(f)
    assert "gcj02" in prob.zh and "gcj02" in prob.en and "坐标系" in prob.zh
    # the opposite mistake: a WGS-84 file declared gcj02
    wrong2 = read_facilities(f, crs="gcj02", columns={"lon": "lon_wgs84", "lat": "lat_wgs84"})
    p2 = check_declared_crs(wrong2, roads, declared="gcj02")
    assert p2 is not None and "wgs84" in p2.en


def test_declared_crs_check_synthetic():
    """Facilities placed on a road grid: right → None, shifted by the GCJ-02 offset → flagged."""
    rng = np.random.default_rng(1)
    lon0, lat0 = 107.9, 35.3
    gx = lon0 + np.arange(0, 0.2, 0.01)
    roads = np.array([(x, lat0 + t) for x in gx for t in np.linspace(0, 0.2, 200)])  # N–S roads every ~900 m
    idx = rng.choice(len(roads), 200, replace=False)
    fac = roads[idx] + rng.normal(0, 0.00005, (200, 2))
    assert check_declared_crs(fac, roads) is None
    glon, glat = wgs84_to_gcj02(fac[:, 0], fac[:, 1])
    assert check_declared_crs(np.column_stack([glon, glat]), roads) is not None
    # outside China there is no offset: never flagged
    assert check_declared_crs(fac - [200, 0], roads - [200, 0]) is None


def test_geofabrik_pois(shared_data):
    d = shared_data / "macau" / "osm_geofabrik_shp"
    pts = read_facilities(d / "gis_osm_pois_free_1.shp")
    polys = read_facilities(d / "gis_osm_pois_a_free_1.shp")
    # counts from SOURCES.md: school 5 + 68, kindergarten 2 + 7, hospital 4 + 5, clinic 15 + 7
    both = pd.concat([pts, polys])
    raw = pd.concat([gpd.read_file(d / "gis_osm_pois_free_1.shp"), gpd.read_file(d / "gis_osm_pois_a_free_1.shp")])
    assert (both["type_raw"] == "school").sum() == (raw["fclass"] == "school").sum() == 73
    assert (both["ftype"] == "kindergarten").sum() == 9
    assert (both["type_raw"] == "hospital").sum() == 9
    assert polys.geom_type.eq("Point").all()
    # polygons are reduced to a point inside them
    raw_a = gpd.read_file(d / "gis_osm_pois_a_free_1.shp").to_crs(polys.crs)
    first = raw_a[raw_a["fclass"] == "school"].iloc[0]
    row = polys[polys["type_raw"] == "school"].iloc[0]
    assert first.geometry.buffer(0.01).contains(row.geometry)
    assert pts["lon"].between(113.5, 113.65).all()


def test_xlsx_with_two_capacity_columns(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "设施"
    ws.append(["序号", "名称", "类型", "地址", "经度", "纬度", "床位", "面积(㎡)"])
    ws.append([1, "柳湖镇区域养老服务中心", "区域养老服务中心", "柳湖镇", 107.95, 35.27, 60, 1500])
    ws.append([2, "柳湖村健身路径", "健身路径", "柳湖村", 107.96, 35.28, None, 200])
    p = tmp_path / "ef.xlsx"
    wb.save(p)
    g = read_facilities(p, crs="wgs84", sheet="设施")
    assert g["ftype"].tolist() == ["regional_elderly_center", "fitness_path"]
    assert g["capacity"].tolist() == [60, 200]
    assert g["capacity_unit"].tolist() == ["床位", "m²"]
    assert g["fid"].tolist() == ["ef-2", "ef-3"]  # 序号 is not an id: <stem>-<row as Excel shows it>
    with pytest.raises(InputError) as e:
        read_facilities(p, sheet="nope")
    assert "sheet" in str(e.value)


# --- bad input: every message names file, row and field, in Chinese and English ---------------


def _err(path, **kw) -> InputError:
    with pytest.raises(InputError) as e:
        read_facilities(path, **kw)
    return e.value


def test_missing_lonlat_columns(tmp_path):
    e = _err(_csv(tmp_path, "名称,类型,地址\n甲,小学,某村\n"))
    assert e.problem.file.endswith("f.csv")
    assert "经度" in e.problem.zh and "longitude" in e.problem.en
    assert "地址" in e.problem.zh  # lists the columns found


@pytest.mark.parametrize(
    ("bad", "shown_en"),
    [("abc", "'abc'"), ("", "empty"), ("107,9", "'107,9'")],
)
def test_non_numeric_coordinates(tmp_path, bad, shown_en):
    text = f'名称,类型,经度,纬度\n甲,小学,107.9,35.3\n乙,小学,107.8,35.2\n丙,小学,"{bad}",35.1\n'
    e = _err(_csv(tmp_path, text))
    assert e.problem.row == 4  # 丙 is on line 4 of the file (header = line 1), as Excel shows it
    assert e.problem.field == "经度"
    assert "第 4 行" in e.problem.zh and "row 4" in e.problem.en and shown_en in e.problem.en
    assert "f.csv" in str(e)


def test_swapped_lonlat(tmp_path):
    e = _err(_csv(tmp_path, "名称,类型,经度,纬度\n甲,小学,35.3,107.9\n乙,小学,35.2,107.8\n"))
    assert "填反" in e.problem.zh and "swapped" in e.problem.en and e.problem.row == 2
    e = _err(_csv(tmp_path, "名称,类型,经度,纬度\n甲,小学,107.9,35.3\n乙,小学,35.2,107.8\n"))
    assert "swapped" in e.problem.en and e.problem.row == 3


def test_out_of_range(tmp_path):
    e = _err(_csv(tmp_path, "名称,类型,经度,纬度\n甲,小学,107.9,35.3\n乙,小学,36491000,3906000\n"))
    assert e.problem.row == 3 and "EPSG" in e.problem.en and "超出" in e.problem.zh


def test_unknown_crs(tmp_path):
    e = _err(_csv(tmp_path, GOOD), crs="mars")
    assert e.problem.field == "crs" and "mars" in e.problem.en and "坐标系" in e.problem.zh
    assert e.problem.file.endswith("f.csv")


def test_missing_file(tmp_path):
    e = _err(tmp_path / "nope.csv")
    assert "nope.csv" in str(e) and "找不到" in e.problem.zh and "not found" in e.problem.en


def test_inspect_collects_every_problem(tmp_path):
    text = "名称,类型,经度,纬度\n甲,小学,107.9,35.3\n乙,小学,,35.2\n丙,药店,107.7,35.1\n丁,小学,35.1,107.7\n"
    g, probs = inspect_facilities(_csv(tmp_path, text))
    assert g["name"].tolist() == ["甲"]
    kinds = {(p.severity, p.row) for p in probs}
    assert ("error", 3) in kinds and ("error", 5) in kinds
    assert any(p.severity == "warning" and "药店" in p.zh for p in probs)


def test_candidates(tmp_path):
    p = _csv(tmp_path, "编号,名称,类型,建设性质,可用面积,估算投资(万元),乡镇,经度,纬度\nC1,原小学校舍,闲置校舍,改建,1200,110,柳湖镇,107.9,35.3\n")
    c = read_candidates(p)
    assert list(c.columns) == ["cid", "name", "kind", "nature", "capacity", "cost", "unit_name", "lon", "lat", "geometry"]
    assert c.iloc[0][["cid", "kind", "nature", "capacity", "cost", "unit_name"]].tolist() == ["C1", "闲置校舍", "改建", 1200, 110, "柳湖镇"]


@pytest.mark.skipif(not (DEMO / "facilities.csv").exists(), reason="demo data not generated yet")
def test_demo_files():
    f = read_facilities(DEMO / "facilities.csv", crs="wgs84")
    raw = pd.read_csv(DEMO / "facilities.csv", encoding="utf-8-sig")
    assert set(f["category"]) == {"school", "clinic"}
    # every row except non-mission types (e.g. 药店) is kept, ids from 编号
    assert set(f["fid"]) <= set(raw["编号"])
    assert len(f) >= len(raw) - 3
    x = read_facilities(DEMO / "elderly_fitness_amap.xlsx", crs="gcj02")
    assert set(x["category"]) == {"elderly", "fitness"}
    c = read_candidates(DEMO / "candidates.csv", crs="wgs84")
    assert len(c) == len(pd.read_csv(DEMO / "candidates.csv", encoding="utf-8-sig"))
