"""Read the county outline, the 乡镇/街道 units and the 行政村 layer.

Every reader accepts GPKG, SHP and GeoJSON (via pyogrio), repairs invalid polygons with
``shapely.make_valid`` and returns geometries in the internal metric CRS (``target_crs``, or the
:func:`coverage.crs.local_metric_crs` of the layer when not given). Pass the same ``target_crs`` to
every reader of one scenario. ``crs="gcj02"``/``"bd09"`` converts a layer exported from Amap/Baidu.
``where`` is an OGR SQL attribute filter (e.g. ``"adcode = '820000'"``) to take one county out of a
file of many.

Unit kinds (:func:`infer_kind`, the one rule, also used by :mod:`coverage.io.admin` for approximate
townships) follow the Chinese statistical division code: a name ending in 街道, 街道办事处 or
办事处 is a ``街道``, in 镇 a ``镇``, in 乡 (民族乡 included) or 苏木 a ``乡`` (after dropping a
trailing 人民政府/政府: seat names); when the name says nothing, digits 7–9 of a 12-digit code
decide (001–099 街道, 100–199 镇, 200–399 乡); otherwise ``其他``.
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

from coverage.errors import InputError
from coverage.io import apply_declared_crs, metric_crs_for, read_vector

log = logging.getLogger(__name__)

PathLike = str | Path

CODE_FIELDS = ("code", "CODE", "Code", "adcode", "ADCODE", "xzqdm", "XZQDM", "编码", "代码", "区划代码", "行政区划代码", "统计用区划代码", "gb")
NAME_FIELDS = ("name", "Name", "NAME", "名称", "xzqmc", "XZQMC", "乡镇名称", "村名称", "村名")
KIND_FIELDS = ("kind", "Kind", "KIND", "类型", "类别", "type", "level")
UNIT_CODE_FIELDS = ("unit_code", "township_code", "town_code", "乡镇代码", "乡镇编码", "所属乡镇代码", "parentCode", "parent_code")

#: Unit kinds.
KINDS = ("街道", "镇", "乡", "其他")


def _fix_geometry(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Repair invalid polygons with ``make_valid`` (keeps every part, e.g.

    both lobes of a bow-tie) and record each repair in ``gdf.attrs["repaired"]`` (1-based feature,
    reason, relative area change) so that the reading path reports it instead of repairing silently.
    """
    geom = np.asarray(gdf.geometry.values)
    bad = ~shapely.is_valid(geom)
    if not bad.any():
        return gdf
    log.info("repairing %d invalid geometries with make_valid", int(bad.sum()))
    fixed = geom.copy()
    fixed[bad] = shapely.make_valid(fixed[bad])
    repaired = []
    for i in np.flatnonzero(bad):
        g = fixed[i]
        # make_valid may return collections with stray lines: keep the polygonal part
        if g.geom_type == "GeometryCollection":
            polys = [p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")]
            fixed[i] = shapely.union_all(polys) if polys else g
        # the area of an invalid polygon is ill-defined (a bow-tie's signed lobes cancel); compare
        # with the area enclosed by its shell drawn as lines, which is what a planner drew
        before = float(shapely.polygonize(shapely.get_parts(shapely.node(shapely.boundary(geom[i])))).area) if geom[i] is not None else 0.0
        after = float(fixed[i].area)
        repaired.append({
            "row": int(i) + 1,
            "reason": shapely.is_valid_reason(geom[i]),
            "area_change": (after - before) / before if before > 0 else 0.0,
        })
    gdf = gdf.copy()
    gdf.geometry = fixed
    gdf.attrs["repaired"] = repaired
    return gdf


def _read_many(
    path: PathLike | Sequence[PathLike], layer, crs, what_zh: str, what_en: str, where: str | None = None
) -> gpd.GeoDataFrame:
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    parts: list[gpd.GeoDataFrame] = []
    for p in paths:
        g = read_vector(p, layer=layer, what_zh=what_zh, what_en=what_en, where=where)
        g = apply_declared_crs(g, crs, p)
        if g.empty:
            raise InputError(
                f"{Path(p).name} 的{what_zh}图层是空的（0 个要素）。",
                f"the {what_en} layer of {Path(p).name} is empty (0 features).",
                file=p,
                field=str(layer) if layer is not None else None,
            )
        if parts and g.crs != parts[0].crs:
            g = g.to_crs(parts[0].crs)
        parts.append(g)
    gdf = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
    gdf = gdf[~(gdf.geometry.isna() | gdf.geometry.is_empty)].reset_index(drop=True)
    return _fix_geometry(gdf)


def _pick(gdf: pd.DataFrame, fields: dict | None, key: str, candidates: Sequence[str], file) -> str | None:
    if fields and fields.get(key):
        col = fields[key]
        if col not in gdf.columns:
            raise InputError(
                f"配置的{key}字段 '{col}' 不在文件中，现有字段：{', '.join(map(str, gdf.columns))}。",
                f"configured {key} field '{col}' is not in the file; its fields are: {', '.join(map(str, gdf.columns))}.",
                file=file,
                field=col,
            )
        return col
    for c in candidates:
        if c in gdf.columns:
            return c
    lower = {str(c).lower(): c for c in gdf.columns}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None


def normalise_code(value: Any) -> str:
    """Turn a division code into a string: integers and floats lose any ``.0``; NaN → ``""``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else str(value)
    s = str(value).strip()
    if re.fullmatch(r"\d+\.0+", s):
        s = s.split(".")[0]
    return s


def infer_kind(name: str, code: str = "", kind: Any = None) -> str:
    """Kind of a unit (``街道``, ``镇``, ``乡`` or ``其他``).

    In order: a kind field that names a kind; the name (``…街道`` / ``…街道办事处`` / ``…办事处`` →
    街道, ``…镇`` → 镇, ``…乡`` including 民族乡 and ``…苏木``, Inner Mongolia's 乡 → 乡, after
    dropping a trailing ``人民政府``/``政府``); digits 7–9 of a 12-digit code; else 其他 (地区,
    farms, development zones).

    Parameters
    ----------
    name : str
        Unit name, e.g. ``阳坊镇`` (or its seat, ``阳坊镇人民政府``).
    code : str
        12-digit statistical code, used when the name does not say.
    kind : str, optional
        Value of a kind field in the source; wins when it names a kind.

    Returns
    -------
    str
    """
    if kind is not None and not (isinstance(kind, float) and np.isnan(kind)):
        k = str(kind).strip()
        for token, out in (("街道", "街道"), ("subdistrict", "街道"), ("street", "街道"), ("镇", "镇"), ("town", "镇"), ("乡", "乡")):
            if token in k.lower():
                return out
    n = re.sub(r"(人民政府|政府)$", "", str(name or "").strip())
    if n.endswith(("街道", "办事处")):  # 街道办事处, or a bare 城关办事处
        return "街道"
    if n.endswith("镇"):
        return "镇"
    if n.endswith(("乡", "苏木")):
        return "乡"
    c = str(code or "")
    if re.fullmatch(r"\d{9}(\d{3})?", c):
        d = int(c[6:9])
        if 1 <= d <= 99:
            return "街道"
        if 100 <= d <= 199:
            return "镇"
        if 200 <= d <= 399:
            return "乡"
    return "其他"


def read_boundary(
    path: PathLike | Sequence[PathLike],
    layer: str | int | None = None,
    target_crs: Any = None,
    crs: Any = None,
    where: str | None = None,
) -> gpd.GeoDataFrame:
    """Read an area outline (county boundary, 城区 polygon) and dissolve it into one feature.

    Parameters
    ----------
    path : path or list of paths
        GPKG, SHP or GeoJSON with polygons.
    layer : str or int, optional
        Layer name for multi-layer files (GPKG); default the first layer.
    target_crs : CRS-like, optional
        Output CRS; default the internal metric CRS of the outline.
    crs : str or int, optional
        Declared CRS: ``"gcj02"``/``"bd09"`` convert vertices to WGS-84; an EPSG code overrides a
        wrong or missing CRS; ``None`` keeps the file's.

    Returns
    -------
    geopandas.GeoDataFrame
        One row, column ``geometry`` (valid polygon or multipolygon).

    Raises
    ------
    InputError
        Missing file, unknown layer, empty layer, or no polygons.
    """
    gdf = _read_many(path, layer, crs, "边界", "boundary", where)
    polys = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polys.empty:
        raise InputError(
            f"边界文件 {Path(str(path)).name} 中没有面要素（几何类型：{', '.join(gdf.geom_type.unique())}）。",
            f"boundary file {Path(str(path)).name} has no polygons (geometry types: {', '.join(gdf.geom_type.unique())}).",
            file=path if isinstance(path, (str, Path)) else None,
        )
    out = gpd.GeoDataFrame(geometry=[shapely.make_valid(polys.union_all())], crs=gdf.crs)
    out = out.to_crs(target_crs if target_crs is not None else metric_crs_for(out))
    out.attrs["repaired"] = gdf.attrs.get("repaired", [])
    return out


def read_units(
    path: PathLike | Sequence[PathLike],
    layer: str | int | None = None,
    fields: dict[str, str] | None = None,
    target_crs: Any = None,
    crs: Any = None,
    where: str | None = None,
) -> gpd.GeoDataFrame:
    """Read the 乡镇/街道 units.

    Parameters
    ----------
    path : path or list of paths
        GPKG, SHP or GeoJSON with polygons (a list is concatenated, e.g. one GeoJSON per district).
    layer : str or int, optional
        Layer name for multi-layer files.
    fields : dict, optional
        Source field for ``code``, ``name`` and ``kind``, e.g. ``{"code": "XZQDM", "name": "XZQMC"}``.
        Fields not given are detected (code/CODE/adcode/编码/代码…, name/Name/名称…, kind/类型…).
    target_crs : CRS-like, optional
        Output CRS; default the internal metric CRS of the layer.
    crs : str or int, optional
        Declared CRS, as in :func:`read_boundary`.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``code`` (str; integer codes are written without decimals), ``name``, ``kind``
        (``街道``/``镇``/``乡``/``其他``, from the kind field, else the name suffix, else the code),
        ``geometry``, followed by the other source fields.

    Raises
    ------
    InputError
        Missing file or field, empty layer, no name field, duplicate codes.
    """
    file = path if isinstance(path, (str, Path)) else None
    gdf = _read_many(path, layer, crs, "乡镇/街道", "units", where)
    code_f = _pick(gdf, fields, "code", CODE_FIELDS, file)
    name_f = _pick(gdf, fields, "name", NAME_FIELDS, file)
    kind_f = _pick(gdf, fields, "kind", KIND_FIELDS, file)
    if name_f is None:
        raise InputError(
            f"乡镇/街道图层中找不到名称字段，现有字段：{', '.join(map(str, gdf.columns))}。请在情景文件 fields: {{name: 字段名}} 中指定。",
            f"no name field in the units layer; fields are: {', '.join(map(str, gdf.columns))}. Set fields: {{name: FIELD}} in the scenario.",
            file=file,
            field="name",
        )
    names = gdf[name_f].astype("object").map(lambda v: "" if v is None or v != v else str(v).strip())
    if code_f is None:
        log.warning("units: no code field; using U001, U002, … in file order")
        codes = pd.Series([f"U{i + 1:03d}" for i in range(len(gdf))], index=gdf.index)
    else:
        codes = gdf[code_f].astype("object").map(normalise_code)
    kinds_src = gdf[kind_f].astype("object") if kind_f is not None else pd.Series([None] * len(gdf), index=gdf.index)
    kinds = [infer_kind(n, c, k) for n, c, k in zip(names, codes, kinds_src)]
    dup = codes[codes.duplicated(keep=False) & (codes != "")]
    if len(dup):
        first = dup.iloc[0]
        rows = [int(i) + 1 for i in dup.index[dup == first]]
        raise InputError(
            f"乡镇/街道代码 {first} 重复（第 {rows} 个要素）。每个单元需要唯一代码。",
            f"unit code {first} appears more than once (features {rows}); each unit needs a unique code.",
            file=file,
            row=rows[0],
            field=code_f,
        )
    extra = gdf.drop(columns=[c for c in (code_f, name_f, kind_f, gdf.geometry.name) if c is not None])
    extra = extra.drop(columns=[c for c in extra.columns if c in ("code", "name", "kind", "geometry")])
    out = gpd.GeoDataFrame(
        {"code": codes.astype(str).values, "name": names.astype(str).values, "kind": kinds},
        geometry=gdf.geometry.values,
        crs=gdf.crs,
    )
    out = pd.concat([out, extra.reset_index(drop=True)], axis=1)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=gdf.crs)
    out = out.to_crs(target_crs if target_crs is not None else metric_crs_for(out))
    out.attrs["repaired"] = gdf.attrs.get("repaired", [])
    return out


def read_villages(
    path: PathLike | Sequence[PathLike],
    layer: str | int | None = None,
    fields: dict[str, str] | None = None,
    units: gpd.GeoDataFrame | None = None,
    target_crs: Any = None,
    crs: Any = None,
    where: str | None = None,
) -> gpd.GeoDataFrame:
    """Read the 行政村 layer (points or polygons).

    Parameters
    ----------
    path : path or list of paths
        GPKG, SHP or GeoJSON.
    layer : str or int, optional
        Layer name for multi-layer files.
    fields : dict, optional
        Source fields for ``code``, ``name`` and ``unit_code``; others are detected.
    units : geopandas.GeoDataFrame, optional
        Units from :func:`read_units`. When the layer has no unit-code field, each village gets the
        code of the unit containing it (its representative point); villages outside every unit get
        the nearest unit (logged).
    target_crs : CRS-like, optional
        Output CRS; default ``units.crs`` if given, else the layer's internal metric CRS.
    crs : str or int, optional
        Declared CRS, as in :func:`read_boundary`.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``code``, ``name``, ``unit_code`` (``""`` when unknown), ``geometry``, followed by the
        other source fields (e.g. ``remote``).
    """
    file = path if isinstance(path, (str, Path)) else None
    gdf = _read_many(path, layer, crs, "行政村", "villages", where)
    code_f = _pick(gdf, fields, "code", CODE_FIELDS, file)
    name_f = _pick(gdf, fields, "name", NAME_FIELDS, file)
    unit_f = _pick(gdf, fields, "unit_code", UNIT_CODE_FIELDS, file)
    n = len(gdf)
    names = gdf[name_f].astype("object").map(lambda v: "" if v is None or v != v else str(v).strip()) if name_f else pd.Series([""] * n)
    codes = gdf[code_f].astype("object").map(normalise_code) if code_f else pd.Series([f"V{i + 1:04d}" for i in range(n)])
    if target_crs is None:
        target_crs = units.crs if units is not None else metric_crs_for(gdf)
    geom = gpd.GeoSeries(gdf.geometry.values, crs=gdf.crs).to_crs(target_crs)
    if unit_f is not None:
        ucodes = gdf[unit_f].astype("object").map(normalise_code).values
    elif units is not None:
        ucodes = assign_units(geom, units.to_crs(target_crs))
    else:
        ucodes = np.array([""] * n, dtype=object)
    used = [c for c in (code_f, name_f, unit_f, gdf.geometry.name) if c is not None]
    extra = gdf.drop(columns=used)
    extra = extra.drop(columns=[c for c in extra.columns if c in ("code", "name", "unit_code", "geometry")])
    out = gpd.GeoDataFrame(
        {"code": np.asarray(codes, dtype=object).astype(str), "name": np.asarray(names, dtype=object).astype(str), "unit_code": np.asarray(ucodes, dtype=object).astype(str)},
        geometry=geom.values,
        crs=target_crs,
    )
    out = pd.concat([out, extra.reset_index(drop=True)], axis=1)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=target_crs)


def assign_units(geoms: gpd.GeoSeries, units: gpd.GeoDataFrame, nearest: bool = True) -> np.ndarray:
    """Code of the unit containing each geometry's representative point.

    Parameters
    ----------
    geoms : geopandas.GeoSeries
        Points or polygons, same CRS as ``units``.
    units : geopandas.GeoDataFrame
        Units with ``code``.
    nearest : bool
        Give points outside every unit the nearest unit's code (else ``""``).

    Returns
    -------
    numpy.ndarray of str
        One code per geometry; overlapping units resolve to the first in ``units`` order.
    """
    pts = geoms.representative_point().values
    tree = shapely.STRtree(np.asarray(units.geometry.values))
    inp, tgt = tree.query(np.asarray(pts), predicate="within")
    out = np.full(len(pts), "", dtype=object)
    order = np.lexsort((tgt, inp))  # first unit (lowest index) wins
    inp, tgt = inp[order], tgt[order]
    first = np.ones(len(inp), bool)
    first[1:] = inp[1:] != inp[:-1]
    codes = units["code"].astype(str).values
    out[inp[first]] = codes[tgt[first]]
    missing = np.flatnonzero(out == "")
    if len(missing) and nearest:
        log.info("%d features lie outside every unit; assigned to the nearest unit", len(missing))
        near = tree.nearest(np.asarray(pts)[missing])
        out[missing] = codes[near]
    return out


__all__ = ["KINDS", "assign_units", "infer_kind", "normalise_code", "read_boundary", "read_units", "read_villages"]
