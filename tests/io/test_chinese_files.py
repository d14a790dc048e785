"""Chinese GIS files: GBK/GB18030 shapefile DBFs and CSVs, Excel oddities, title rows, sheets."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely

from coverage.errors import InputError
from coverage.io import dbf_encoding, read_vector
from coverage.io.boundaries import read_units
from coverage.io.facilities import decode_text, inspect_facilities, read_facilities

AMAP = ("macau", "amap_poi_csv", "macau_amap_medical_healthcare.csv")
NAMES = ["城关镇中心卫生院", "东山村卫生室", "西河乡敬老院"]


def _points(names=NAMES) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"名称": names, "类型": ["中心卫生院", "村卫生室", "敬老院"][: len(names)]},
        geometry=[shapely.Point(106.0 + i / 100, 33.0) for i in range(len(names))], crs=4326,
    )


def _shp(gdf: gpd.GeoDataFrame, path: Path, encoding: str, cpg: bool = False) -> Path:
    pyogrio.write_dataframe(gdf, path, encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink()
    return path


# ------------------------------------------------------------------------------ DBF encodings


@pytest.mark.parametrize("encoding, expect", [("GBK", "GB18030"), ("UTF-8", "UTF-8")])
def test_dbf_encoding_without_cpg(tmp_path, encoding, expect):
    p = _shp(_points(), tmp_path / "f.shp", encoding)
    assert dbf_encoding(p) == expect
    assert dbf_encoding(p.with_suffix(".dbf")) == expect
    g = read_vector(p)
    assert list(g.columns[:2]) == ["名称", "类型"] and g["名称"].tolist() == NAMES


def test_dbf_without_cpg_is_mojibake_for_gdal(tmp_path):
    """The problem being solved: GDAL alone reads a GBK DBF without .cpg as Latin-1."""
    p = _shp(_points(), tmp_path / "f.shp", "GBK")
    assert "城关镇中心卫生院" not in gpd.read_file(p).iloc[:, 0].tolist()


def test_dbf_cpg_is_honoured_and_ascii_or_gpkg_give_none(tmp_path):
    p = _shp(_points(), tmp_path / "f.shp", "GBK", cpg=True)
    assert dbf_encoding(p) is None  # GDAL reads the .cpg itself
    assert read_vector(p)["名称"].tolist() == NAMES
    a = _shp(gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.Point(1, 1)], crs=4326), tmp_path / "a.shp", "UTF-8")
    assert dbf_encoding(a) is None
    g = tmp_path / "f.gpkg"
    _points().to_file(g)
    assert dbf_encoding(g) is None


def test_dbf_utf8_cut_at_field_width_is_still_utf8(tmp_path):
    # a 10-byte field holding 4 Chinese characters (12 bytes in UTF-8) is cut inside a character
    p = tmp_path / "cut.shp"
    pyogrio.write_dataframe(_points(), p, encoding="UTF-8", layer_options={"RESIZE": "NO"})
    p.with_suffix(".cpg").unlink()
    dbf = p.with_suffix(".dbf")
    raw = bytearray(dbf.read_bytes())
    hlen = int.from_bytes(raw[8:10], "little")
    # the first field's first value: overwrite its last byte with the lead byte of a 3-byte char
    width = raw[32 + 16]
    raw[hlen + 1 + width - 1] = 0xE5
    dbf.write_bytes(bytes(raw))
    assert dbf_encoding(p) == "UTF-8"


def test_gbk_units_shapefile_real_township_names(shared_data, tmp_path):
    """Real 乡镇 polygons (Beijing 延庆) saved as a GBK shapefile without .cpg, as ArcGIS does."""
    src = gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson")
    src = src[["Name", "code", "geometry"]].rename(columns={"Name": "乡镇名称", "code": "代码"})
    src["代码"] = src["代码"].astype(str)
    p = _shp(src, tmp_path / "乡镇.shp", "GBK")
    u = read_units(p, fields={"name": "乡镇名称", "code": "代码"})
    assert sorted(u["name"]) == sorted(src["乡镇名称"])
    assert "八达岭镇" in set(u["name"])


def test_gbk_facility_shapefile_real_osm_names(shared_data, tmp_path):
    pois = gpd.read_file(shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_pois_free_1.shp")
    pois = pois[pois["fclass"].isin(["school", "hospital", "clinic"]) & pois["name"].str.contains("[\u4e00-\u9fff]", na=False)]
    pois = pois[[all(_gbk_ok(n)) for n in pois["name"]]][["name", "fclass", "geometry"]].reset_index(drop=True)
    assert len(pois) >= 5
    p = _shp(pois, tmp_path / "pois.shp", "GBK")
    g = read_facilities(p, columns={"type": "fclass"})
    assert set(g["name"]) <= set(pois["name"]) and len(g) == len(pois)


def _gbk_ok(name: str):
    for ch in name:
        try:
            ch.encode("gbk")
            yield True
        except UnicodeEncodeError:
            yield False


# ------------------------------------------------------------------------------ CSV and Excel


def test_decode_text_order():
    assert decode_text("名称".encode("utf-8"))[1] == "utf-8"
    assert decode_text(b"\xef\xbb\xbf" + "名称".encode("utf-8"))[1] == "utf-8-sig"
    assert decode_text("城关镇中心卫生院".encode("gbk")) == ("城关镇中心卫生院", "gb18030")
    with pytest.raises(InputError, match="GB18030"):
        decode_text(b"\x81\x30\xff\xff")


def test_real_amap_csv_saved_by_excel_in_gb18030_with_title_rows(shared_data, tmp_path):
    """The Macau Amap export as a Chinese-Windows Excel user saves it: GB18030 with two title rows."""
    src = shared_data.joinpath(*AMAP)
    text = src.read_text(encoding="utf-8-sig")
    p = tmp_path / "医疗设施.csv"
    p.write_bytes(("澳门医疗卫生设施清单（高德导出）,,,\n单位：个；日期：2025年,,,\n" + text).encode("gb18030"))
    ref = read_facilities(src, crs="gcj02", columns={"lon": "lon_gcj02", "lat": "lat_gcj02"})
    g, probs = inspect_facilities(p, crs="gcj02", columns={"lon": "lon_gcj02", "lat": "lat_gcj02"})
    assert g["name"].tolist() == ref["name"].tolist() and len(g) > 500
    head = [q for q in probs if q.field == "header"]
    assert len(head) == 1 and head[0].row == 3 and head[0].severity == "warning"
    assert "第 3 行为表头" in head[0].zh and "row 3" in head[0].en and "澳门医疗卫生设施清单" in head[0].zh
    # without columns: the header is found by its lon_/lat_ columns too (then several are reported)
    _, probs2 = inspect_facilities(p, crs="gcj02")
    assert any(q.field == "header" for q in probs2) and any("lon_gcj02" in q.en for q in probs2)


def test_gbk_csv_title_row_then_header(tmp_path):
    p = tmp_path / "学校.csv"
    p.write_bytes("某县中小学名单\n\n学校名称,类型,经度,纬度\n城关一中,初中,107.9,35.3\n东关小学,小学,107.91,35.31\n".encode("gbk"))
    g = read_facilities(p)
    assert g["name"].tolist() == ["城关一中", "东关小学"] and g["ftype"].tolist() == ["junior", "primary"]
    assert g["source"].tolist() == ["学校.csv:4", "学校.csv:5"]  # the rows Excel/WPS shows: title, blank, header, data


def test_xlsx_renamed_csv_is_named(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["名称", "经度", "纬度"])
    wb.active.append(["城关小学", 107.9, 35.3])
    p = tmp_path / "设施.csv"
    wb.save(p)
    with pytest.raises(InputError) as e:
        read_facilities(p)
    assert "实际上是 Excel 文件" in e.value.problem.zh and "设施.xlsx" in e.value.problem.zh
    assert "rename it to 设施.xlsx" in e.value.problem.en


def test_xlsx_title_rows_and_data_on_another_sheet(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "说明"
    ws.append(["本表由县卫健局提供"])
    data = wb.create_sheet("卫生机构")
    data.append(["某县医疗卫生机构一览表（2024年）"])
    data.append(["序号", "机构名称", "类别", "经度", "纬度"])
    data.append([1, "城关镇中心卫生院", "中心卫生院", 107.9, 35.3])
    data.append([2, "南村卫生室", "村卫生室", 107.95, 35.31])
    p = tmp_path / "卫生.xlsx"
    wb.save(p)
    with pytest.raises(InputError) as e:
        read_facilities(p)
    prob = e.value.problem
    assert "说明、卫生机构" in prob.zh and "sheet: 卫生机构" in prob.zh
    assert "add sheet: 卫生机构" in prob.en
    g, probs = inspect_facilities(p, sheet="卫生机构")
    assert g["name"].tolist() == ["城关镇中心卫生院", "南村卫生室"]
    assert [q.row for q in probs if q.field == "header"] == [2]
    with pytest.raises(InputError, match="说明, 卫生机构"):
        read_facilities(p, sheet="Sheet9")


# ------------------------------------------------------------------------------ duplicates


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("城关镇中心卫生院", "城关中心卫生院", True),
        ("东关小学", "东关村小学", True),
        ("圣家学校（本部）", "圣家学校", True),
        ("北京协和医院澳门医学中心", "协和医院澳门医学中心", True),
        ("同善堂第二診所", "同善堂第二诊所", True),  # traditional vs simplified (OSM vs Amap, Macau)
        ("广慈医疗中心", "爱康医疗中心", False),  # same ending, different clinics
        ("第一小学", "第二小学", False),
        ("李氏中医综合诊疗所", "一峰堂中医综合诊所", False),
        ("红星幼儿园", "红星幼儿园（分园）", False),  # a branch is another site
        ("圣家学校", "圣家学校分教处", False),
        ("圣玛沙利罗学校", "圣玛沙利罗学校慈惠托儿所", False),
        ("", "东关小学", False),
    ],
)
def test_name_similarity(a, b, same):
    from coverage.io.facilities import name_similarity

    assert (name_similarity(a, b) >= 0.75) is same
    assert name_similarity(a, b) == pytest.approx(name_similarity(b, a))


def test_duplicate_facilities_keeps_the_best_ranked_copy():
    from coverage.io.facilities import duplicate_facilities

    # metres in a local metric CRS: an OSM, an Amap and a planner copy of one clinic within 60 m,
    # a same-named kindergarten 30 m away (other service), a far namesake, a different clinic 20 m away
    g = gpd.GeoDataFrame(
        {"name": ["城关镇中心卫生院", "城关中心卫生院", "城关镇中心卫生院（本部）", "城关镇中心卫生院", "城关镇中心卫生院", "李氏诊所"],
         "category": ["clinic", "clinic", "clinic", "school", "clinic", "clinic"],
         "rank": [2, 1, 0, 0, 1, 2]},
        geometry=gpd.points_from_xy([0, 40, 20, 30, 500, 10], [0, 0, 50, 0, 0, 15]), crs="EPSG:4547",
        index=[10, 11, 12, 13, 14, 15],
    )
    d = duplicate_facilities(g, max_m=100, priority="rank")
    assert sorted(d["drop"]) == [10, 11] and set(d["keep"]) == {12}
    assert (d["distance_m"] <= 100).all() and (d["similarity"] >= 0.6).all()
    # stricter use (warnings): identical names (bracketed notes aside) within 60 m
    strict = duplicate_facilities(g, max_m=60, match="category", min_similarity=1.0)
    assert sorted(strict["drop"].tolist() + strict["keep"].tolist()) == [10, 12]
    # lon/lat input is projected first: 0.0004° ≈ 41 m at 35° N
    ll = gpd.GeoDataFrame({"name": ["东关小学", "东关村小学"], "category": ["school", "school"]},
                          geometry=gpd.points_from_xy([107.9, 107.9004], [35.3, 35.3]), crs=4326)
    assert len(duplicate_facilities(ll, max_m=50)) == 1 and len(duplicate_facilities(ll, max_m=30)) == 0
    assert duplicate_facilities(ll.iloc[:1]).empty
