"""Row numbers in messages are the ones Excel/WPS shows, for CSV and XLSX alike.

The same facility table is written as a UTF-8 CSV, a GBK CSV and an XLSX workbook, with and without
title rows above the header and with an empty row between the data. Every message (bad coordinate,
swapped lon/lat, bad capacity, duplicate id) and every ``source`` must name the row where the
value sits in the file: checked independently by reading that row back with openpyxl (XLSX) or as
that line of the text (CSV; the tables have no quoted line breaks, so line = row).
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from coverage.io.facilities import inspect_facilities, read_table

HEADER = ["编号", "名称", "类型", "规模", "经度", "纬度"]
DATA = [
    ["A1", "城关镇中心卫生院", "中心卫生院", "40", "107.90", "35.29"],
    ["A2", "南村村卫生室", "村卫生室", "很多", "107.95", "35.31"],  # capacity not a number
    None,  # an empty row between the data
    ["A3", "北村村卫生室", "村卫生室", "", "abc", "35.32"],  # longitude not a number
    ["A1", "东村村卫生室", "村卫生室", "", "107.93", "35.30"],  # id A1 again
    ["A5", "西村村卫生室", "村卫生室", "", "35.28", "107.91"],  # lon/lat swapped
]
TITLES = [["某县医疗卫生机构一览表（2024年）"], ["单位：个"]]


def _rows(titles: bool) -> list[list[str]]:
    return (TITLES if titles else []) + [HEADER] + [r if r is not None else [] for r in DATA]


def _write(tmp_path: Path, kind: str, titles: bool) -> Path:
    rows = _rows(titles)
    if kind == "xlsx":
        p = tmp_path / f"t{int(titles)}.xlsx"
        wb = openpyxl.Workbook()
        for r in rows:
            wb.active.append(r)
        wb.save(p)
        return p
    p = tmp_path / f"t{int(titles)}_{kind}.csv"
    text = "\n".join(",".join(r) for r in rows) + "\n"
    p.write_bytes(text.encode("utf-8" if kind == "utf8" else "gbk"))
    return p


def _cell(p: Path, row: int, col: str) -> str:
    """The value in ``row`` (as Excel numbers it) under the header ``col``, read without our reader."""
    if p.suffix == ".xlsx":
        ws = openpyxl.load_workbook(p).active
        head = [c.value for r in ws.iter_rows(max_row=5) for c in r if c.value == col]
        assert head, col
        j = next(c.column for r in ws.iter_rows(max_row=5) for c in r if c.value == col)
        return str(ws.cell(row=row, column=j).value)
    enc = "utf-8" if "utf8" in p.name else "gbk"
    lines = p.read_bytes().decode(enc).split("\n")
    j = HEADER.index(col)
    return lines[row - 1].split(",")[j]


@pytest.mark.parametrize("titles", [False, True])
@pytest.mark.parametrize("kind", ["utf8", "gbk", "xlsx"])
def test_messages_name_the_row_excel_shows(tmp_path, kind, titles):
    p = _write(tmp_path, kind, titles)
    g, probs = inspect_facilities(p)
    by_code = {}
    for q in probs:
        by_code.setdefault(q.code or q.field, q)
    # the longitude 'abc'
    bad = next(q for q in probs if q.field == "经度" and "不是数字" in q.zh)
    assert _cell(p, bad.row, "经度") == "abc"
    assert f"第 {bad.row} 行" in bad.zh and f"row {bad.row}" in bad.en
    # swapped lon/lat
    sw = next(q for q in probs if "填反" in q.zh)
    assert _cell(p, sw.row, "经度") == "35.28"
    # capacity that is not a number
    cap = next(q for q in probs if q.field == "规模")
    assert _cell(p, cap.row, "规模") == "很多"
    # duplicate id: the warning names the first row of the id, and the rows appended are real rows
    dup = by_code["duplicate_ids"]
    assert _cell(p, dup.row, "编号") == "A1"
    # every kept facility's source row holds its name
    for src, name in zip(g["source"], g["name"]):
        file, row = src.rsplit(":", 1)
        assert file == p.name and _cell(p, int(row), "名称") == name
    # ids appended with the row number: A1-<row> where the row holds that facility
    for fid, name in zip(g["fid"], g["name"]):
        if fid.startswith("A1-"):
            assert _cell(p, int(fid.split("-")[1]), "名称") == name
    # the same numbers whatever the file type: the offset is the title rows only
    shift = len(TITLES) if titles else 0
    assert bad.row == 5 + shift and sw.row == 7 + shift and cap.row == 3 + shift


def test_header_warning_and_read_table_index_agree(tmp_path):
    p = _write(tmp_path, "xlsx", True)
    _g, probs = inspect_facilities(p)
    head = next(q for q in probs if q.code == "header_below_title")
    assert head.row == 3 and _cell(p, 3, "名称") == "名称"
    df = read_table(p)
    # the empty row 6 is dropped, the others keep the number Excel shows
    assert df.index.tolist() == [4, 5, 7, 8, 9]
    assert df.loc[7, "名称"] == "北村村卫生室"


def test_real_amap_csv_row_numbers(shared_data, tmp_path):
    """The Macau Amap export with one longitude blanked: the message names its line in the file."""
    src = shared_data / "macau" / "amap_poi_csv" / "macau_amap_medical_healthcare.csv"
    lines = src.read_text(encoding="utf-8-sig").split("\n")
    head = lines[0].split(",")
    assert "lon_wgs84" in head
    # pick a data line without quotes (so that splitting on commas is exact) far into the file
    k = next(i for i in range(200, len(lines)) if '"' not in lines[i] and lines[i])
    parts = lines[k].split(",")
    parts[head.index("lon_wgs84")] = ""
    lines[k] = ",".join(parts)
    p = tmp_path / "amap.csv"
    p.write_text("\n".join(lines), encoding="utf-8")
    _g, probs = inspect_facilities(p, crs="wgs84", columns={"lon": "lon_wgs84", "lat": "lat_wgs84"})
    bad = next(q for q in probs if q.field == "lon_wgs84")
    # the file has quoted cells with commas but no line breaks inside cells: row = line
    assert bad.row == k + 1
    # the same through pandas' own reader (header = row 1, so data row i is row i + 2)
    raw = pd.read_csv(p, dtype=str)
    assert raw["lon_wgs84"].isna().to_numpy().nonzero()[0].tolist() == [k - 1]
