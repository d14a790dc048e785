"""Read facility layers and candidate sites, fixing GCJ-02/BD-09 offsets.

Tables (CSV in UTF-8, UTF-8 with BOM or GBK; XLSX) need longitude/latitude columns, found by their
headers (经度/纬度, lon/lat, lng, longitude/latitude, X/Y, lon_wgs84 …) or one "lon,lat" column
(坐标, Amap ``location``); ``columns=`` maps them explicitly. Vector files (GPKG/SHP/GeoJSON) give
points; polygons and lines are reduced to representative points. Type names are mapped with
:func:`coverage.categories.classify` (the type column first, the facility name when the type says
nothing); rows of no mission service are dropped and reported.

Declared systems (``crs=``): ``wgs84`` (also CGCS2000), ``gcj02`` (Amap/高德, Tencent), ``bd09``
(Baidu) or an EPSG code. :func:`check_declared_crs` tests whether a declaration looks wrong by the
GCJ-02 offset (300–700 m in China), against reference points such as road vertices.

Bad input raises :class:`coverage.errors.InputError` naming the file, the row and the field.
:func:`inspect_facilities` returns every problem instead. Rows of a table are numbered as Excel and
WPS show them: the file's first line is row 1, so with the header on line 1 the first data row is
row 2; title rows and empty rows above or between the data count too (:func:`read_table` keeps these
numbers as the frame's index). Features of a vector layer are numbered 1, 2, … in file order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.spatial import cKDTree

from coverage.categories import FTYPES, classify, unmapped_report
from coverage.crs import gcj02_to_wgs84, local_metric_crs, offset_metres, to_wgs84, wgs84_to_gcj02
from coverage.errors import InputError, Problem
from coverage.io import VECTOR_SUFFIXES, check_exists, parse_crs

log = logging.getLogger(__name__)

#: Output columns of :func:`read_facilities` (``docs/architecture.md``).
FACILITY_COLUMNS = ["fid", "name", "category", "ftype", "type_raw", "tier", "capacity", "capacity_unit", "source", "lon", "lat", "geometry"]
#: Output columns of :func:`read_candidates`.
CANDIDATE_COLUMNS = ["cid", "name", "kind", "nature", "capacity", "cost", "unit_name", "lon", "lat", "geometry"]

LON_FIELDS = ("经度", "lon", "lng", "long", "longitude", "x", "东经", "经度(度)")
LAT_FIELDS = ("纬度", "lat", "latitude", "y", "北纬", "纬度(度)")
_LON_PREFIX = re.compile(r"^(经度|lon|lng|longitude)", re.I)
_LAT_PREFIX = re.compile(r"^(纬度|lat|latitude)", re.I)
LONLAT_FIELDS = ("坐标", "location", "经纬度", "lnglat", "lonlat", "coordinates", "坐标(经度,纬度)")
NAME_FIELDS = ("名称", "name", "设施名称", "机构名称", "学校名称", "单位名称", "项目名称", "Name", "NAME")
TYPE_FIELDS = ("ftype", "设施类型", "类型", "设施类别", "类别", "type", "smallType", "fclass", "amenity", "小类", "category")
ID_FIELDS = ("fid", "编号", "id", "ID", "设施编号", "代码", "osm_id", "poiid")
TIER_FIELDS = ("级别", "tier", "层级", "等级")
UNIT_FIELDS = ("规模单位", "单位", "capacity_unit", "unit")
#: Capacity headers and the unit they imply ("" = take it from a unit column).
CAPACITY_FIELDS: dict[str, str] = {
    "capacity": "",
    "规模": "",
    "建设规模": "",
    "床位": "床位",
    "床位数": "床位",
    "学位": "学位",
    "学位数": "学位",
    "园位": "园位",
    "托位": "托位",
    "托位数": "托位",
    "面积(㎡)": "m²",
    "面积(m2)": "m²",
    "面积(m²)": "m²",
    "面积": "m²",
    "场地面积": "m²",
    "建筑面积": "m²",
    "beds": "床位",
    "area": "m²",
    "area_m2": "m²",
}
TIER_WORDS = {"县级": "county", "县": "county", "区级": "county", "市级": "county", "乡镇级": "township", "乡级": "township", "镇级": "township", "街道级": "township", "乡镇": "township", "村级": "village", "村": "village", "社区级": "community", "社区": "community"}
UNIT_WORDS = {"m2": "m²", "㎡": "m²", "平方米": "m²", "m²": "m²", "张": "床位", "床": "床位", "床位": "床位", "个": "", "学位": "学位", "园位": "园位", "托位": "托位"}


def _norm(h: Any) -> str:
    return re.sub(r"\s+", "", str(h)).replace("（", "(").replace("）", ")").lower()


def find_column(columns: Sequence[Any], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` among ``columns``, compared case- and space-insensitively.

    Parameters
    ----------
    columns : sequence
        A table's column names.
    candidates : sequence of str
        Accepted names in order of preference (e.g. :data:`LON_FIELDS`).

    Returns
    -------
    str or None
        The column name as written in the table.
    """
    norm = {_norm(c): c for c in columns}
    for c in candidates:
        if _norm(c) in norm:
            return norm[_norm(c)]
    return None


#: Rows searched for the header below title rows (a county's table title, units, date …).
HEADER_SEARCH_ROWS: int = 30
#: Magic bytes of Excel workbooks: XLSX/XLSM (a ZIP archive) and the old XLS (OLE2).
_XLSX_MAGIC, _XLS_MAGIC = b"PK\x03\x04", b"\xd0\xcf\x11\xe0"


def decode_text(raw: bytes, p: Path | None = None) -> tuple[str, str]:
    """Decode a text table's bytes: UTF-8 (with or without BOM) when it decodes strictly, else GB18030.

    GB18030 is a superset of GBK and GB2312, the "ANSI" code page of Chinese Windows in which Excel
    saves "CSV (逗号分隔)". UTF-8 is tried first because a Chinese text that is valid UTF-8 is
    practically never GBK, while most GBK text is invalid UTF-8.

    Parameters
    ----------
    raw : bytes
        The file's content.
    p : Path, optional
        File named in the error.

    Returns
    -------
    tuple
        ``(text, encoding)`` with encoding ``"utf-8"``, ``"utf-8-sig"`` or ``"gb18030"``.

    Raises
    ------
    InputError
        The bytes are an Excel workbook (a .xlsx/.xls saved or renamed with a text suffix) or
        neither encoding decodes them.
    """
    if raw.startswith((_XLSX_MAGIC, _XLS_MAGIC)):
        real = ".xlsx" if raw.startswith(_XLSX_MAGIC) else ".xls"
        name = p.name if p is not None else "the file"
        raise InputError(
            f"{name} 实际上是 Excel 文件（{real}），只是文件名为 {p.suffix if p is not None else '.csv'}。请把文件改名为 {Path(name).stem}{real} 后再用，或在 Excel 中“另存为 CSV UTF-8”。",
            f"{name} is an Excel file saved with a {p.suffix if p is not None else '.csv'} name; rename it to {Path(name).stem}{real} (or save it from Excel as \"CSV UTF-8\").",
            file=p, code="not_text",
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return raw[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(
            f"无法识别文件编码（已尝试 UTF-8、GBK/GB18030；第 {line} 行有无法解码的字节）。请在 Excel 中另存为“CSV UTF-8（逗号分隔）”。",
            f"cannot decode the file (tried UTF-8 and GBK/GB18030; undecodable bytes on line {line}); save it from Excel as \"CSV UTF-8 (comma delimited)\".",
            file=p, row=line, code="bad_encoding",
        ) from None


def _is_header(cells: Sequence[Any], columns: dict) -> bool:
    """True when a row holds the coordinate headers (lon and lat, one "lon,lat" column, or the configured ``columns:`` names)."""
    names = [str(c).strip().lstrip("\ufeff") for c in cells if c is not None and c == c and str(c).strip()]
    if not names:
        return False
    wanted = [columns[k] for k in ("lon", "lat", "lonlat") if columns.get(k)]
    if wanted:
        return all(w in names for w in wanted)
    lon = find_column(names, LON_FIELDS) or any(_LON_PREFIX.match(n) for n in names)
    lat = find_column(names, LAT_FIELDS) or any(_LAT_PREFIX.match(n) for n in names)
    return bool((lon and lat) or find_column(names, LONLAT_FIELDS))


def _frame(rows: list[list[Any]], columns: dict, p: Path, where_zh: str, where_en: str, col: _Collector | None) -> pd.DataFrame:
    """A table from raw rows, with the header found below any title rows."""
    h = 0
    if rows and not _is_header(rows[0], columns):
        h = next((i for i, r in enumerate(rows[:HEADER_SEARCH_ROWS]) if _is_header(r, columns)), 0)
        if h > 0:
            title = next((str(c).strip() for r in rows[:h] for c in r if c is not None and c == c and str(c).strip()), "")
            zh = f"{where_zh}前 {h} 行是标题（“{title[:30]}”），以第 {h + 1} 行为表头；提示中的行号与 Excel/WPS 左侧的行号一致。"
            en = f"{where_en}: the first {h} row(s) are a title ({title[:30]!r}); row {h + 1} of the file was used as the header. Row numbers in messages are those Excel/WPS shows."
            if col is not None:
                col.add(zh, en, file=p, row=h + 1, field="header", severity="warning", code="header_below_title")
            else:
                log.warning("%s: %s", p.name, en)
    if not rows:
        return pd.DataFrame()
    header = ["" if c is None or c != c else str(c).strip().lstrip("\ufeff") for c in rows[h]]
    width = max([len(header)] + [len(r) for r in rows[h + 1 :]])
    header += [""] * (width - len(header))
    seen: dict[str, int] = {}
    names = []
    for i, c in enumerate(header):
        c = c or f"Unnamed: {i}"
        if c in seen:  # duplicate headers: a, a.1, a.2 (as pandas)
            seen[c] += 1
            c = f"{c}.{seen[c]}"
        else:
            seen[c] = 0
        names.append(c)
    body = [list(r) + [None] * (width - len(r)) for r in rows[h + 1 :]]
    # index = the row number Excel/WPS shows (the file's first row is 1; the header is row h + 1)
    df = pd.DataFrame(body, columns=names, dtype=object, index=pd.RangeIndex(h + 2, h + 2 + len(body)))
    return df.map(lambda v: None if v is None or (isinstance(v, str) and v.strip() == "") or (isinstance(v, float) and v != v) else v)


def excel_sheets(p: Path) -> list[str]:
    """Sheet names of an Excel workbook (empty when it cannot be opened)."""
    try:
        return [str(n) for n in pd.ExcelFile(p).sheet_names]
    except Exception:  # noqa: BLE001 - any reader error means "no list to show"
        return []


def sheet_hint(p: Path, sheet: Any, columns: dict | None = None) -> tuple[str, str]:
    """Sentences (zh, en) naming a workbook's sheets and the ones that hold coordinate headers.

    Empty strings for a non-Excel file or a workbook of one sheet.
    """
    if p.suffix.lower() not in (".xlsx", ".xlsm", ".xls"):
        return "", ""
    names = excel_sheets(p)
    if len(names) < 2:
        return "", ""
    used = names[sheet] if isinstance(sheet, int) and 0 <= sheet < len(names) else (str(sheet) if sheet is not None else names[0])
    good = []
    for n in names:
        if n == used:
            continue
        try:
            head = pd.read_excel(p, sheet_name=n, header=None, nrows=HEADER_SEARCH_ROWS, dtype=object)
        except Exception:  # noqa: BLE001
            continue
        if any(_is_header(r, dict(columns or {})) for r in head.itertuples(index=False)):
            good.append(n)
    zh = f" 工作簿有 {len(names)} 个工作表：{'、'.join(names)}（当前读取“{used}”）。"
    en = f" The workbook has {len(names)} sheets: {', '.join(names)} (read: {used!r})."
    if good:
        zh += f"工作表“{'、'.join(good)}”含经纬度列：请在情景文件该设施来源下写 sheet: {good[0]}。"
        en += f" Sheet(s) {', '.join(map(repr, good))} have longitude/latitude columns: add sheet: {good[0]} to this facility source in the scenario."
    else:
        zh += "若数据在其他工作表，请在情景文件中写 sheet: 工作表名。"
        en += " If the data is on another sheet, add sheet: NAME to this facility source in the scenario."
    return zh, en


def read_table(p: Path, sheet: Any = None, columns: dict | None = None, col: "_Collector | None" = None) -> pd.DataFrame:
    """Read a CSV/TXT (UTF-8 or GBK, :func:`decode_text`) or Excel table as text cells.

    Title rows above the header are skipped: the header is the first row that holds the coordinate
    columns (a warning names it). Empty cells are None; wholly empty rows are dropped. The index of
    the frame is each row's number as Excel/WPS shows it (1-based, counting the title rows, the
    header and the dropped empty rows), the number that messages give.
    """
    import csv
    import io

    columns = dict(columns or {})
    suffix = p.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        try:
            raw = pd.read_excel(p, sheet_name=sheet if sheet is not None else 0, header=None, dtype=object)
        except (ValueError, KeyError) as err:
            names = excel_sheets(p)
            raise InputError(
                f"无法读取 Excel 工作表 {sheet!r}：{err}。工作簿中的工作表：{'、'.join(names)}。",
                f"cannot read Excel sheet {sheet!r}: {err}. The workbook's sheets are: {', '.join(names)}.",
                file=p, field="sheet",
            ) from None
        rows = [list(r) for r in raw.itertuples(index=False)]
        where_zh, where_en = (f"工作表“{sheet}”" if sheet is not None else ""), (f"sheet {sheet!r}" if sheet is not None else p.name)
    else:
        text, _enc = decode_text(p.read_bytes(), p)
        first = text.split("\n", 1)[0]
        delim = "\t" if "\t" in first and "," not in first else ","
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter=delim, skipinitialspace=True))
        except csv.Error as err:
            raise InputError(f"CSV 格式错误：{err}", f"malformed CSV: {err}", file=p) from None
        where_zh, where_en = "", p.name
    df = _frame(rows, columns, p, where_zh, where_en, col)
    df = df.dropna(how="all") if len(df) else df
    return df


def row_numbers(df: pd.DataFrame) -> np.ndarray:
    """The row number a planner sees for each row of ``df`` (as :func:`read_table` numbers them).

    Parameters
    ----------
    df : pandas.DataFrame
        A frame from :func:`read_table` (its integer index holds the numbers Excel/WPS shows), or
        any other frame, e.g. a vector layer's attributes, numbered 1, 2, … in order.

    Returns
    -------
    numpy.ndarray
        One 1-based row number per row of ``df``.
    """
    idx = df.index
    if isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1:
        return np.arange(1, len(df) + 1)
    return np.asarray(idx, dtype=np.int64)


class _Collector:
    """Raise the first error (strict) or collect every problem."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.problems: list[Problem] = []

    def add(self, zh: str, en: str, file=None, row=None, field=None, severity: str = "error", code: str | None = None) -> None:
        prob = Problem(zh=zh, en=en, file=str(file) if file is not None else None, row=row, field=field, severity=severity,
                       code=code)
        if severity == "warning" and self.strict:  # collected problems are printed by the caller
            log.warning(str(prob))
        if self.strict and severity == "error":
            raise InputError.from_problem(prob)
        self.problems.append(prob)


def _rows_text(rows: np.ndarray, limit: int = 8) -> str:
    nums = [int(r) for r in rows]
    txt = ", ".join(map(str, nums[:limit]))
    return txt + (f" … (+{len(nums) - limit})" if len(nums) > limit else "")


def _parse_coords(df: pd.DataFrame, p: Path, columns: dict, col: _Collector, sheet: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, str]] | None:
    """Return lon/x, lat/y arrays and the mask of good rows (or None when no columns)."""
    lon_c = columns.get("lon") or find_column(df.columns, LON_FIELDS)
    lat_c = columns.get("lat") or find_column(df.columns, LAT_FIELDS)
    # columns such as lon_wgs84 / lon_gcj02: take one only when it is the only candidate
    for key, cur, pat in (("lon", lon_c, _LON_PREFIX), ("lat", lat_c, _LAT_PREFIX)):
        if cur is None:
            hits = [c for c in df.columns if pat.match(str(c).strip())]
            if len(hits) > 1:
                col.add(
                    f"有多列可能是{'经度' if key == 'lon' else '纬度'}：{', '.join(hits)}。请在情景文件中用 columns: {{{key}: 列名}} 指定，并把 crs: 设为该列的坐标系。",
                    f"several columns could be the {'longitude' if key == 'lon' else 'latitude'}: {', '.join(hits)}. Choose one with columns: {{{key}: COLUMN}} in the scenario and set crs: to that column's system.",
                    file=p, field=key,
                )
                return None
            if hits:
                if key == "lon":
                    lon_c = hits[0]
                else:
                    lat_c = hits[0]
    both_c = columns.get("lonlat") or (None if (lon_c and lat_c) else find_column(df.columns, LONLAT_FIELDS))
    for key in ("lon", "lat", "lonlat"):
        if columns.get(key) and columns[key] not in df.columns:
            col.add(
                f"配置的列 '{columns[key]}' 不在表中，现有列：{', '.join(df.columns)}。",
                f"configured column '{columns[key]}' is not in the table; columns are: {', '.join(df.columns)}.",
                file=p, field=columns[key],
            )
            return None
    if not (lon_c and lat_c) and not both_c:
        hint_zh, hint_en = sheet_hint(p, sheet, columns)
        col.add(
            f"找不到经度/纬度列。现有列：{', '.join(map(str, df.columns))}。请使用表头 经度、纬度（或 lon、lat），或在情景文件中写 columns: {{lon: 列名, lat: 列名}}。{hint_zh}",
            f"no longitude/latitude columns found; columns are: {', '.join(map(str, df.columns))}. Name them 经度/纬度 or lon/lat, or map them with columns: {{lon: COL, lat: COL}} in the scenario.{hint_en}",
            file=p, field="经度/纬度 lon/lat",
        )
        return None
    if both_c and not (lon_c and lat_c):
        parts = df[both_c].astype("object").map(lambda v: re.split(r"[,，;\s]+", str(v).strip()) if v == v and v is not None else [])
        xs = parts.map(lambda t: t[0] if len(t) == 2 else None)
        ys = parts.map(lambda t: t[1] if len(t) == 2 else None)
        fields = (both_c, both_c)
    else:
        xs, ys = df[lon_c], df[lat_c]
        fields = (lon_c, lat_c)
    x = pd.to_numeric(xs.astype("object").map(lambda v: str(v).strip() if v is not None and v == v else None), errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(ys.astype("object").map(lambda v: str(v).strip() if v is not None and v == v else None), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    nums = row_numbers(df)
    for arr, raw, f, zh_name in ((x, xs, fields[0], "经度"), (y, ys, fields[1], "纬度")):
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            r = bad[0]
            v = raw.iloc[r]
            shown = "空" if v is None or v != v or str(v).strip() == "" else repr(v)
            shown_en = "empty" if shown == "空" else repr(v)
            col.add(
                f"第 {nums[r]} 行{zh_name}不是数字（{shown}）。共 {len(bad)} 行有此问题：第 {_rows_text(nums[bad])} 行。请填写十进制度数，如 106.71。",
                f"row {nums[r]}: {f} is not a number ({shown_en}); {len(bad)} row(s) affected: {_rows_text(nums[bad])}. Write decimal degrees such as 106.71.",
                file=p, row=int(nums[r]), field=f,
            )
    return x, y, ok, fields


def _check_lonlat(x: np.ndarray, y: np.ndarray, ok: np.ndarray, p: Path, fields: tuple[str, str], col: _Collector,
                  nums: np.ndarray) -> np.ndarray:
    """Detect swapped and implausible lon/lat; return the mask of good rows (``nums``: row numbers shown)."""
    good = ok.copy()
    # whole-file swap: lat column looks like Chinese longitudes and vice versa
    xm, ym = np.nanmedian(np.where(ok, x, np.nan)) if ok.any() else np.nan, np.nanmedian(np.where(ok, y, np.nan)) if ok.any() else np.nan
    swapped_rows = ok & (np.abs(y) > 90) & (np.abs(x) <= 90)
    if ok.any() and 3 <= xm <= 54 and 73 <= ym <= 136:
        swapped_rows = ok & (x >= 3) & (x <= 54) & (y >= 73) & (y <= 136)
    if swapped_rows.any():
        r = np.flatnonzero(swapped_rows)
        col.add(
            f"经度和纬度可能填反了：第 {nums[r[0]]} 行 经度={x[r[0]]:g}、纬度={y[r[0]]:g}（共 {len(r)} 行：第 {_rows_text(nums[r])} 行）。中国的经度约 73–136，纬度约 3–54，请交换两列。",
            f"longitude and latitude look swapped: row {nums[r[0]]} has lon={x[r[0]]:g}, lat={y[r[0]]:g} ({len(r)} row(s): {_rows_text(nums[r])}). In China longitude is about 73–136 and latitude 3–54; swap the columns.",
            file=p, row=int(nums[r[0]]), field=f"{fields[0]}/{fields[1]}",
        )
        good &= ~swapped_rows
    out = good & ((np.abs(x) > 180) | (np.abs(y) > 90))
    if out.any():
        r = np.flatnonzero(out)
        col.add(
            f"第 {nums[r[0]]} 行坐标超出经纬度范围（{x[r[0]]:g}, {y[r[0]]:g}），共 {len(r)} 行：第 {_rows_text(nums[r])} 行。若为投影坐标，请在情景文件中把 crs: 设为其 EPSG 代码（如 4545）。",
            f"row {nums[r[0]]}: coordinates ({x[r[0]]:g}, {y[r[0]]:g}) are outside the lon/lat range ({len(r)} row(s): {_rows_text(nums[r])}). If they are projected, set crs: to their EPSG code (e.g. 4545) in the scenario.",
            file=p, row=int(nums[r[0]]), field=f"{fields[0]}/{fields[1]}",
        )
        good &= ~out
    zero = good & (x == 0) & (y == 0)
    if zero.any():
        r = np.flatnonzero(zero)
        col.add(
            f"第 {nums[r[0]]} 行坐标为 (0, 0)，应是缺失值（共 {len(r)} 行：第 {_rows_text(nums[r])} 行）。请补上坐标。",
            f"row {nums[r[0]]}: coordinates are (0, 0), probably missing ({len(r)} row(s): {_rows_text(nums[r])}); fill them in.",
            file=p, row=int(nums[r[0]]), field=f"{fields[0]}/{fields[1]}",
        )
        good &= ~zero
    return good


def _number(v: Any) -> float:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return np.nan
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    m = re.search(r"-?\d+(?:\.\d+)?", str(v).replace(",", ""))
    return float(m.group(0)) if m else np.nan


def _capacity(df: pd.DataFrame, ftypes: pd.Series, columns: dict, p: Path, col: _Collector, nums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(df)
    cap = np.full(n, np.nan)
    unit = np.array([""] * n, dtype=object)
    unit_c = columns.get("capacity_unit") or find_column(df.columns, UNIT_FIELDS)
    if columns.get("capacity"):
        cands = [(columns["capacity"], CAPACITY_FIELDS.get(_norm(columns["capacity"]), ""))]
    else:
        cands = []
        norm = {_norm(c): c for c in df.columns}
        for h, u in CAPACITY_FIELDS.items():
            if _norm(h) in norm and norm[_norm(h)] not in [c for c, _ in cands]:
                cands.append((norm[_norm(h)], u))
    if not cands:
        return cap, unit
    want = np.array([FTYPES[f].capacity_unit if isinstance(f, str) and f in FTYPES else "" for f in ftypes], dtype=object)
    equiv = {"园位": "学位"}
    for c, u in cands:
        vals = df[c].map(_number).to_numpy(dtype=float)
        raw = df[c]
        badtxt = np.flatnonzero(np.isnan(vals) & raw.map(lambda v: v is not None and v == v and str(v).strip() != "").to_numpy(bool))
        if len(badtxt):
            col.add(
                f"第 {nums[badtxt[0]]} 行规模“{raw.iloc[badtxt[0]]}”不是数字，按缺失处理。",
                f"row {nums[badtxt[0]]}: capacity {raw.iloc[badtxt[0]]!r} is not a number; treated as missing.",
                file=p, row=int(nums[badtxt[0]]), field=c, severity="warning",
            )
        if u:
            units_here = np.full(n, u, dtype=object)
        elif unit_c is not None:
            units_here = df[unit_c].map(lambda v: UNIT_WORDS.get(str(v).strip(), str(v).strip()) if v is not None and v == v else "").to_numpy(dtype=object)
        else:
            units_here = want.copy()
        match = np.array([a == b or equiv.get(a) == b or equiv.get(b) == a for a, b in zip(units_here, want)])
        # take this column where the row still has no value and the unit fits the type (or the
        # column is the only one)
        take = np.isnan(cap) & ~np.isnan(vals) & (match | (len(cands) == 1) | (units_here == ""))
        cap[take] = vals[take]
        unit[take] = units_here[take]
    neg = np.flatnonzero(cap < 0)
    if len(neg):
        col.add(
            f"第 {nums[neg[0]]} 行规模为负数（{cap[neg[0]]:g}），按缺失处理。",
            f"row {nums[neg[0]]}: capacity is negative ({cap[neg[0]]:g}); treated as missing.",
            file=p, row=int(nums[neg[0]]), field=cands[0][0], severity="warning",
        )
        cap[neg] = np.nan
    return cap, unit


def _to_lonlat(x: np.ndarray, y: np.ndarray, kind: str, crs: CRS | None) -> tuple[np.ndarray, np.ndarray]:
    if kind in ("wgs84", "gcj02", "bd09"):
        return to_wgs84(x, y, kind)
    if kind == "file" or crs is None:
        return x, y
    t = Transformer.from_crs(crs, 4326, always_xy=True)
    lon, lat = t.transform(x, y)
    return np.asarray(lon, float), np.asarray(lat, float)


def _load(
    path: str | Path,
    crs: Any,
    layer: Any,
    columns: dict | None,
    sheet: Any,
    col: _Collector,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray] | None:
    """Read a table or layer; return (attributes, lon, lat, good-row mask) in WGS-84."""
    p = check_exists(path, "设施", "facility")
    columns = dict(columns or {})
    try:
        kind, c = parse_crs(crs, p)
    except InputError as err:
        col.add(err.problem.zh, err.problem.en, file=p, field="crs")
        return None
    if p.suffix.lower() in VECTOR_SUFFIXES:
        from coverage.io import read_vector

        gdf = read_vector(p, layer=layer, what_zh="设施", what_en="facility")
        if gdf.empty:
            col.add("图层为空（0 个要素）。", "the layer is empty (0 features).", file=p, field=str(layer) if layer is not None else None)
            return None
        g = gdf.geometry
        empty = (g.isna() | g.is_empty).to_numpy()
        if empty.any():
            r = np.flatnonzero(empty)
            col.add(
                f"第 {r[0] + 1} 个要素没有几何（共 {len(r)} 个）。",
                f"feature {r[0] + 1} has no geometry ({len(r)} feature(s)).",
                file=p, row=int(r[0] + 1), field="geometry",
            )
        pts = np.asarray(g.values)
        nonpt = ~empty & (g.geom_type != "Point").to_numpy()
        pts = pts.copy()
        pts[nonpt] = shapely.point_on_surface(pts[nonpt])
        xy = np.full((len(pts), 2), np.nan)
        xy[~empty] = shapely.get_coordinates(pts[~empty])[:, :2] if (~empty).any() else xy[~empty]
        if kind == "file":
            src = gdf.crs
            if src is not None and not src.is_geographic:
                lon, lat = Transformer.from_crs(src, 4326, always_xy=True).transform(xy[:, 0], xy[:, 1])
            else:
                lon, lat = xy[:, 0], xy[:, 1]
        elif kind in ("gcj02", "bd09") and gdf.crs is not None and not gdf.crs.is_geographic:
            col.add(
                f"crs: {crs} 表示经纬度，但图层是投影坐标（{gdf.crs.to_string()}）。",
                f"crs: {crs} means lon/lat, but the layer is projected ({gdf.crs.to_string()}).",
                file=p, field="crs",
            )
            return None
        else:
            lon, lat = _to_lonlat(xy[:, 0], xy[:, 1], kind, c)
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        good = ~empty & np.isfinite(lon) & np.isfinite(lat)
        good = _check_lonlat(lon, lat, good, p, ("x", "y"), col, np.arange(1, len(gdf) + 1))
        return pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True), lon, lat, good
    df = read_table(p, sheet, columns, col)
    if df.empty:
        hint_zh, hint_en = sheet_hint(p, sheet, columns)
        col.add(f"表格没有数据行。{hint_zh}", f"the table has no data rows.{hint_en}", file=p, field="sheet" if hint_zh else None)
        return None
    parsed = _parse_coords(df, p, columns, col, sheet)
    if parsed is None:
        return None
    x, y, ok = parsed[:3]
    fields = parsed[3]
    if kind in ("wgs84", "gcj02", "bd09", "geographic", "file"):
        good = _check_lonlat(x, y, ok, p, fields, col, row_numbers(df))
        lon, lat = _to_lonlat(np.where(good, x, 0.0), np.where(good, y, 0.0), "wgs84" if kind == "file" else kind, c)
    else:
        lon, lat = _to_lonlat(np.where(ok, x, 0.0), np.where(ok, y, 0.0), kind, c)
        good = _check_lonlat(lon, lat, ok, p, fields, col, row_numbers(df))
    lon, lat = np.where(good, lon, np.nan), np.where(good, lat, np.nan)
    return df, lon, lat, good


def _text_col(df: pd.DataFrame, c: str | None, n: int) -> pd.Series:
    if c is None:
        return pd.Series([""] * n, dtype=object)
    return df[c].astype("object").map(lambda v: "" if v is None or v != v else str(v).strip()).reset_index(drop=True)


def inspect_facilities(
    path: str | Path,
    crs: Any = None,
    target_crs: Any = None,
    layer: str | int | None = None,
    columns: dict[str, str] | None = None,
    sheet: str | int | None = None,
    ftype: str | None = None,
) -> tuple[gpd.GeoDataFrame | None, list[Problem]]:
    """Read facilities like :func:`read_facilities` but return every problem instead of raising.

    Rows with bad coordinates are dropped; the problems name them. Returns ``(None, problems)``
    when the file cannot be read at all.
    """
    col = _Collector(strict=False)
    try:
        gdf = _read_facilities(path, crs, target_crs, layer, columns, sheet, ftype, col)
    except InputError as err:
        col.problems.append(err.problem)
        gdf = None
    return gdf, col.problems


def read_facilities(
    path: str | Path,
    crs: Any = None,
    target_crs: Any = None,
    layer: str | int | None = None,
    columns: dict[str, str] | None = None,
    sheet: str | int | None = None,
    ftype: str | None = None,
) -> gpd.GeoDataFrame:
    """Read one facility file into the facility form of ``docs/architecture.md``.

    Parameters
    ----------
    path : str or Path
        CSV (UTF-8, UTF-8 with BOM or GBK), XLSX, or a GPKG/SHP/GeoJSON point (or polygon) layer.
    crs : str or int, optional
        Declared system of the coordinates: ``"wgs84"``, ``"gcj02"`` (Amap/高德), ``"bd09"`` (Baidu)
        or an EPSG code (then the lon/lat columns hold projected X/Y). Default: tables WGS-84,
        vector files the CRS stored in the file.
    target_crs : CRS-like, optional
        CRS of ``geometry``; default the internal metric CRS at the facilities' centre.
    layer : str or int, optional
        Layer of a multi-layer file.
    columns : dict, optional
        Map from our field to the source column: ``lon``, ``lat``, ``lonlat`` (one "lon,lat"
        column), ``name``, ``type``, ``id``, ``capacity``, ``capacity_unit``, ``tier``.
    sheet : str or int, optional
        Excel sheet (default the first).
    ftype : str, optional
        Facility-type key for every row (for files of one type without a type column).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``fid, name, category, ftype, type_raw, tier, capacity, capacity_unit, source, lon,
        lat, geometry`` (points). Rows whose type maps to no mission service are dropped (logged;
        see :func:`coverage.categories.unmapped_report`).

    Raises
    ------
    InputError
        Missing file, missing lon/lat columns, non-numeric or empty coordinates (with the row),
        swapped lon/lat, coordinates out of range, unknown ``crs``.
    """
    return _read_facilities(path, crs, target_crs, layer, columns, sheet, ftype, _Collector(strict=True))


def _read_facilities(path, crs, target_crs, layer, columns, sheet, ftype, col: _Collector) -> gpd.GeoDataFrame | None:
    p = Path(path)
    columns = dict(columns or {})
    loaded = _load(p, crs, layer, columns, sheet, col)
    if loaded is None:
        return None
    df, lon, lat, good = loaded
    nums = row_numbers(df)  # the row numbers a planner sees (Excel/WPS), or feature numbers
    df = df.reset_index(drop=True)
    n = len(df)
    if ftype is not None and ftype not in FTYPES:
        col.add(
            f"未知的设施类型 ftype: {ftype}。可用：{', '.join(FTYPES)}。",
            f"unknown ftype {ftype!r}; valid keys: {', '.join(FTYPES)}.",
            file=p, field="ftype",
        )
        return None
    name_c = columns.get("name") or find_column(df.columns, NAME_FIELDS)
    type_c = columns.get("type") or find_column(df.columns, TYPE_FIELDS)
    id_c = columns.get("id") or find_column(df.columns, ID_FIELDS)
    tier_c = columns.get("tier") or find_column(df.columns, TIER_FIELDS)
    for key in ("name", "type", "id", "tier", "capacity", "capacity_unit"):
        if columns.get(key) and columns[key] not in df.columns:
            col.add(
                f"配置的列 '{columns[key]}' 不在表中，现有列：{', '.join(map(str, df.columns))}。",
                f"configured column '{columns[key]}' is not in the table; columns are: {', '.join(map(str, df.columns))}.",
                file=p, field=columns[key],
            )
            return None
    names = _text_col(df, name_c, n)
    types = _text_col(df, type_c, n)
    if ftype is not None:
        cls = pd.DataFrame({"category": [FTYPES[ftype].service] * n, "ftype": [ftype] * n, "rule": ["given"] * n})
        types = types.where(types != "", FTYPES[ftype].label)
    else:
        cls = classify(types) if type_c is not None else classify([""] * n)
        nothing = cls["rule"].isna().to_numpy()
        if nothing.any():  # fall back to the facility name (e.g. 城关镇中心卫生院)
            by_name = classify(names[nothing])
            ok_name = by_name["category"].notna().to_numpy()
            idx = np.flatnonzero(nothing)[ok_name]
            cls.loc[idx, ["category", "ftype"]] = by_name.loc[ok_name, ["category", "ftype"]].to_numpy()
            cls.loc[idx, "rule"] = "name: " + by_name.loc[ok_name, "rule"].astype(str).to_numpy()
    mapped = cls["category"].notna().to_numpy()
    if (~mapped).any():
        rep = unmapped_report(types[~mapped].where(types[~mapped] != "", names[~mapped]))
        if len(rep):
            top = "; ".join(f"{r.name}×{r.count}" for r in rep.head(10).itertuples())
            col.add(
                f"{int((~mapped).sum())} 行的设施类型无法归入四类服务，已忽略：{top}。如需纳入，请把类型改为标准名称（如 村卫生室、幼儿园）或 ftype 代码。",
                f"{int((~mapped).sum())} row(s) have a type that maps to no service and were skipped: {top}. To include them, use a standard type name (e.g. 村卫生室, 幼儿园) or an ftype key.",
                file=p, field=type_c or name_c, severity="warning", code="types_unmapped",
            )
    ids = _text_col(df, id_c, n)
    stem = p.stem
    fid = np.array([i if i else f"{stem}-{nums[r]}" for r, i in enumerate(ids)], dtype=object)
    dup = pd.Series(np.where(good & mapped, fid, np.array(None, dtype=object))).pipe(lambda x: x.notna() & x.duplicated(keep=False)).to_numpy()
    if dup.any():
        r = np.flatnonzero(dup)
        n_ids = len(set(fid[r]))
        first = np.flatnonzero(fid == fid[r[0]])
        col.add(
            f"{n_ids} 个编号重复（共 {len(r)} 行；如 {fid[r[0]]}：第 {_rows_text(nums[first])} 行），已在重复编号后加行号。",
            f"{n_ids} id(s) are not unique ({len(r)} rows; e.g. {fid[r[0]]}: rows {_rows_text(nums[first])}); the row number was appended.",
            file=p, row=int(nums[r[0]]), field=id_c, severity="warning", code="duplicate_ids",
        )
        fid[r] = [f"{fid[i]}-{nums[i]}" for i in r]
    tier_raw = _text_col(df, tier_c, n)
    default_tier = cls["ftype"].map(lambda f: FTYPES[f].tier if isinstance(f, str) and f in FTYPES else "")
    tier = [TIER_WORDS.get(t, t if t in ("county", "township", "village", "community") else d) for t, d in zip(tier_raw, default_tier)]
    cap, unit = _capacity(df, cls["ftype"], columns, p, col, nums)
    # rows without a unit (e.g. capacity not given) get their type's default unit
    unit = np.array([u if u else (FTYPES[f].capacity_unit if isinstance(f, str) and f in FTYPES else "") for u, f in zip(unit, cls["ftype"])], dtype=object)
    keep = good & mapped
    src_rows = nums
    out = pd.DataFrame(
        {
            "fid": fid,
            "name": names.to_numpy(dtype=object),
            "category": cls["category"].to_numpy(dtype=object),
            "ftype": cls["ftype"].to_numpy(dtype=object),
            "type_raw": types.to_numpy(dtype=object),
            "tier": np.asarray(tier, dtype=object),
            "capacity": cap,
            "capacity_unit": unit,
            "source": [f"{p.name}:{r}" for r in src_rows],
            "lon": lon,
            "lat": lat,
        }
    )[keep].reset_index(drop=True)
    if target_crs is None:
        target_crs = local_metric_crs(float(np.median(out["lon"])), float(np.median(out["lat"]))) if len(out) else 4326
    geom = gpd.points_from_xy(out["lon"], out["lat"], crs=4326)
    gdf = gpd.GeoDataFrame(out, geometry=geom, crs=4326).to_crs(target_crs)
    for c in ("fid", "name", "category", "ftype", "type_raw", "tier", "capacity_unit", "source"):
        gdf[c] = gdf[c].astype(str)
    return gdf


def read_candidates(
    path: str | Path,
    crs: Any = None,
    target_crs: Any = None,
    layer: str | int | None = None,
    columns: dict[str, str] | None = None,
    sheet: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read candidate sites (备选用地) for siting.

    Parameters
    ----------
    path, crs, target_crs, layer, sheet
        As in :func:`read_facilities`.
    columns : dict, optional
        Map from ``lon``, ``lat``, ``lonlat``, ``id``, ``name``, ``kind`` (类型), ``nature``
        (建设性质), ``capacity`` (可用面积/规模), ``cost`` (估算投资(万元)), ``unit_name`` (乡镇) to the
        source columns; detected when not given.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``cid, name, kind, nature, capacity, cost, unit_name, lon, lat, geometry``.
    """
    gdf, problems = _candidates(path, crs, target_crs, layer, columns, sheet, strict=True)
    return gdf


def inspect_candidates(path, crs=None, target_crs=None, layer=None, columns=None, sheet=None) -> tuple[gpd.GeoDataFrame | None, list[Problem]]:
    """Like :func:`read_candidates` but return every problem instead of raising."""
    try:
        return _candidates(path, crs, target_crs, layer, columns, sheet, strict=False)
    except InputError as err:
        return None, [err.problem]


def _candidates(path, crs, target_crs, layer, columns, sheet, strict: bool):
    col = _Collector(strict=strict)
    p = Path(path)
    columns = dict(columns or {})
    loaded = _load(p, crs, layer, columns, sheet, col)
    if loaded is None:
        return None, col.problems
    df, lon, lat, good = loaded
    nums = row_numbers(df)  # the row numbers a planner sees (Excel/WPS), or feature numbers
    df = df.reset_index(drop=True)
    n = len(df)
    pick = lambda key, cands: columns.get(key) or find_column(df.columns, cands)  # noqa: E731
    ids = _text_col(df, pick("id", ID_FIELDS + ("序号",)), n)
    cid = np.array([i if i else f"{p.stem}-{nums[r]}" for r, i in enumerate(ids)], dtype=object)
    cap_c = pick("capacity", ("可用面积", "可用面积(㎡)", "用地面积", "面积", "规模", "capacity", "area"))
    cost_c = pick("cost", ("估算投资(万元)", "估算投资", "投资(万元)", "投资", "cost"))
    out = pd.DataFrame(
        {
            "cid": cid,
            "name": _text_col(df, pick("name", NAME_FIELDS), n).to_numpy(dtype=object),
            "kind": _text_col(df, pick("kind", ("类型", "用地类型", "kind", "type")), n).to_numpy(dtype=object),
            "nature": _text_col(df, pick("nature", ("建设性质", "性质", "nature")), n).to_numpy(dtype=object),
            "capacity": df[cap_c].map(_number).to_numpy(float) if cap_c else np.full(n, np.nan),
            "cost": df[cost_c].map(_number).to_numpy(float) if cost_c else np.full(n, np.nan),
            "unit_name": _text_col(df, pick("unit_name", ("乡镇", "乡镇(街道)", "所属乡镇", "unit_name", "township")), n).to_numpy(dtype=object),
            "lon": lon,
            "lat": lat,
        }
    )[good].reset_index(drop=True)
    if target_crs is None:
        target_crs = local_metric_crs(float(np.median(out["lon"])), float(np.median(out["lat"]))) if len(out) else 4326
    gdf = gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out["lon"], out["lat"], crs=4326), crs=4326).to_crs(target_crs)
    for c in ("cid", "name", "kind", "nature", "unit_name"):
        gdf[c] = gdf[c].astype(str)
    return gdf, col.problems


def _lonlat_of(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(obj, (gpd.GeoDataFrame, gpd.GeoSeries)):
        if isinstance(obj, gpd.GeoDataFrame) and {"lon", "lat"} <= set(obj.columns):
            return obj["lon"].to_numpy(float), obj["lat"].to_numpy(float)
        g = obj.geometry if isinstance(obj, gpd.GeoDataFrame) else obj
        if g.crs is not None and not g.crs.equals(CRS.from_epsg(4326)):
            g = g.to_crs(4326)
        xy = shapely.get_coordinates(np.asarray(g.values))
        return xy[:, 0], xy[:, 1]
    a = np.asarray(obj, dtype=float)
    return a[:, 0], a[:, 1]


def check_declared_crs(
    gdf_wgs84: Any,
    reference_points_wgs84: Any,
    declared: str = "wgs84",
    min_drop: float = 0.4,
    file: str | Path | None = None,
    quantile: float = 0.9,
) -> Problem | None:
    """Test whether a layer's declared lon/lat system looks wrong by the GCJ-02 offset.

    The facilities (already converted to WGS-84 under their declaration) are compared with a
    trusted WGS-84 reference layer (road vertices, OSM POIs). Let ``d0`` be the ``quantile`` (default
    the 90th percentile) of the distance from each facility to its nearest reference point. The
    layer is moved once by *removing* the GCJ-02 offset (as if it were really GCJ-02) and once by
    *adding* it (as if it were really WGS-84 but converted as GCJ-02), giving ``d−`` and ``d+``.
    When the better of the two is below ``(1 − min_drop) · d0`` the declaration is probably wrong.

    Why the 90th percentile and not the median: in a dense city the road vertices are so close
    together that a 500 m shift still lands most points near *some* road, and the median hardly
    moves (Macau Amap POIs vs OSM road vertices: 17.8 m right, 19.2 m wrong). The tail does move:
    points shifted into water, parks or blocks are far from any road (90th percentile 34 m right,
    65 m wrong; in the other two Macau files 39/92 m and 54/158 m). A correct declaration never
    gained from either shift in these tests.

    Parameters
    ----------
    gdf_wgs84 : GeoDataFrame or (N, 2) array
        Facilities: ``lon``/``lat`` columns, or point geometries (any CRS), or an array of lon/lat.
    reference_points_wgs84 : GeoDataFrame, GeoSeries or (M, 2) array
        Reference points or geometries (all vertices are used).
    declared : str
        The declared system, for the message.
    min_drop : float
        Relative drop of the median nearest distance that counts as evidence (default 0.4).
    file : path, optional
        File named in the problem.

    Returns
    -------
    Problem or None
        A problem (``error`` when the drop exceeds 60 %, else ``warning``) or None when the
        declaration looks right, when there are fewer than 5 facilities, or outside China (no
        offset there).
    """
    lon, lat = _lonlat_of(gdf_wgs84)
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    if len(lon) < 5 or float(np.median(offset_metres(lon, lat))) < 50:
        return None
    rlon, rlat = _lonlat_of(reference_points_wgs84)
    if len(rlon) < 5:
        return None
    lat0 = float(np.median(lat))
    kx = 111320.0 * np.cos(np.radians(lat0))
    ky = 110574.0

    def xy(a, b):
        return np.column_stack([a * kx, b * ky])

    tree = cKDTree(xy(rlon, rlat))
    def stat(a, b) -> float:
        return float(np.quantile(tree.query(xy(a, b))[0], quantile))

    d0 = stat(lon, lat)
    dm = stat(*gcj02_to_wgs84(lon, lat))  # the layer was really GCJ-02
    dp = stat(*wgs84_to_gcj02(lon, lat))  # the layer was really WGS-84 (wrongly converted)
    best, truth = (dm, "gcj02") if dm <= dp else (dp, "wgs84")
    if d0 <= 0 or best > (1.0 - min_drop) * d0:
        return None
    drop = 1.0 - best / d0
    off = float(np.median(offset_metres(lon, lat)))
    return Problem(
        zh=(
            f"坐标系声明可能有误：按 crs: {declared} 读入时，设施到参考图层（道路/POI）最近距离的 {quantile:.0%} 分位数为 {d0:.0f} 米；"
            f"若按 {truth} 处理则为 {best:.0f} 米（下降 {drop:.0%}，GCJ-02 偏移约 {off:.0f} 米）。请核对来源：高德/腾讯导出为 gcj02，百度为 bd09，天地图/OSM/GPS 为 wgs84。"
        ),
        en=(
            f"the declared crs may be wrong: read as crs: {declared}, the {quantile:.0%} quantile of the distance from the facilities to the nearest reference point "
            f"(roads/POIs) is {d0:.0f} m; treated as {truth} it is {best:.0f} m ({drop:.0%} lower; the GCJ-02 offset here is about {off:.0f} m). "
            f"Check the source: Amap/Tencent exports are gcj02, Baidu bd09, Tianditu/OSM/GPS wgs84."
        ),
        file=str(file) if file is not None else None,
        field="crs",
        severity="error" if drop > 0.6 else "warning",
    )


#: Punctuation, spaces and bracketed parts dropped before names are compared; a bracketed branch
#: (（分园）, (分校)) is kept, its brackets dropped.
_NAME_NOISE = re.compile(r"[（(](?![^）)]*分)[^）)]*[）)]|[\s\-_·•,，.。、:：;；'\"“”‘’/\\|（）()]+")
#: Words that make a longer name another site of the same institution (圣家学校分教处, …学校托儿所).
_OTHER_SITE = re.compile(r"分(园|校|院|部|教|所|点|站|中心)|[东西南北新]院|新校|校区|托儿所|幼儿园|幼稚园|托育")


def _name_key(name: Any) -> str:
    import unicodedata

    if name is None or (isinstance(name, float) and name != name):
        return ""
    return _NAME_NOISE.sub("", unicodedata.normalize("NFKC", str(name)).lower())


def name_similarity(a: Any, b: Any) -> float:
    """Similarity of two facility names in [0, 1], judged on their distinctive parts.

    Spaces, punctuation and bracketed notes (（本部）) are dropped, then the common ending (诊所,
    医疗中心, 小学 …) is cut off so that two different clinics of one street (广慈医疗中心 / 爱康医疗中心)
    do not look alike. When one remainder contains the other (城关镇 / 城关 for 城关镇中心卫生院 /
    城关中心卫生院) the similarity is the ``difflib`` ratio of the whole names, or 0 when the extra
    words name another site (分校, 分园, 分教处, 校区, 托儿所 …); otherwise it is the ratio of the
    remainders (第一 / 第二 for 第一小学 / 第二小学: 0.5). 0 when either name is empty: nameless
    points are never taken for each other.
    """
    from difflib import SequenceMatcher

    x, y = _name_key(a), _name_key(b)
    if not x or not y:
        return 0.0
    ops = SequenceMatcher(None, x, y, autojunk=False).get_opcodes()
    differ = "|".join(x[i1:i2] + "|" + y[j1:j2] for tag, i1, i2, j1, j2 in ops if tag != "equal")
    if _OTHER_SITE.search(differ):
        return 0.0
    n = 0
    while n < min(len(x), len(y)) and x[-1 - n] == y[-1 - n]:
        n += 1
    rx, ry = x[: len(x) - n], y[: len(y) - n]
    if rx in ry or ry in rx:
        return SequenceMatcher(None, x, y).ratio()
    return SequenceMatcher(None, rx, ry).ratio()


def duplicate_facilities(
    gdf: gpd.GeoDataFrame,
    max_m: float = 100.0,
    match: str = "category",
    min_similarity: float = 0.6,
    priority: str | None = None,
) -> pd.DataFrame:
    """Find facilities that are the same place listed twice (OSM and Amap, two lists, a typo).

    Two facilities are duplicates when they are at most ``max_m`` metres apart, have the same
    ``match`` column (service ``category``, or ``ftype`` for a stricter test) and names at least
    ``min_similarity`` alike (:func:`name_similarity`). Duplicates are grouped transitively; in each
    group the row with the lowest ``priority`` value is kept (ties: the first row), the others are
    listed as dropped.

    Parameters
    ----------
    gdf : GeoDataFrame
        Point facilities (``read_facilities`` output or any layer with ``name`` and ``match``
        columns); a geographic CRS is projected to the local metric CRS.
    max_m : float
        Largest distance between duplicates, metres (prepare: 100 m; a "same name and type" warning:
        50 m with ``match="ftype"`` and ``min_similarity=1``).
    match : str
        Column that must be equal.
    min_similarity : float
        Smallest name similarity.
    priority : str, optional
        Column of ranks, lower wins (prepare: 0 the planner's file, 1 Amap/Baidu, 2 OSM).

    Returns
    -------
    pandas.DataFrame
        One row per dropped facility: ``drop`` and ``keep`` (index labels of ``gdf``),
        ``name_drop``, ``name_keep``, ``distance_m``, ``similarity``; empty when none.
    """
    cols = ["drop", "keep", "name_drop", "name_keep", "distance_m", "similarity"]
    if len(gdf) < 2:
        return pd.DataFrame(columns=cols)
    g = gdf
    if g.crs is not None and g.crs.is_geographic:
        c = g.geometry.union_all().centroid
        g = g.to_crs(local_metric_crs(c.x, c.y))
    xy = shapely.get_coordinates(shapely.centroid(np.asarray(g.geometry.values)))
    pairs = cKDTree(xy).query_pairs(max_m, output_type="ndarray")
    keyv = gdf[match].astype(str).to_numpy()
    names = gdf["name"].to_numpy(dtype=object)
    parent = np.arange(len(gdf))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    best_link: dict[tuple[int, int], tuple[float, float]] = {}
    for i, j in pairs:
        if keyv[i] != keyv[j] or keyv[i] in ("", "nan", "None"):
            continue
        sim = name_similarity(names[i], names[j])
        if sim < min_similarity:
            continue
        best_link[(int(i), int(j))] = (float(np.hypot(*(xy[i] - xy[j]))), sim)
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    if not best_link:
        return pd.DataFrame(columns=cols)
    rank = gdf[priority].to_numpy(dtype=float) if priority else np.zeros(len(gdf))
    groups: dict[int, list[int]] = {}
    for i in {k for pair in best_link for k in pair}:
        groups.setdefault(root(i), []).append(i)
    rows = []
    for members in groups.values():
        keep = min(members, key=lambda k: (rank[k], k))
        for k in sorted(members):
            if k == keep:
                continue
            d, sim = best_link.get((min(k, keep), max(k, keep)), (float(np.hypot(*(xy[k] - xy[keep]))), name_similarity(names[k], names[keep])))
            rows.append((gdf.index[k], gdf.index[keep], names[k], names[keep], round(d, 1), round(sim, 3)))
    return pd.DataFrame(rows, columns=cols)


__all__ = [
    "CANDIDATE_COLUMNS",
    "FACILITY_COLUMNS",
    "check_declared_crs",
    "decode_text",
    "duplicate_facilities",
    "excel_sheets",
    "find_column",
    "inspect_candidates",
    "inspect_facilities",
    "name_similarity",
    "read_candidates",
    "read_facilities",
    "read_table",
    "sheet_hint",
]
