"""Readers for the inputs of a scenario, each returning the in-memory forms of ``docs/architecture.md``.

* :mod:`coverage.io.boundaries` — county outline, 乡镇/街道 units, 行政村 points or polygons;
* :mod:`coverage.io.facilities` — facility tables (CSV/XLSX/GPKG/SHP/GeoJSON, GCJ-02/BD-09 fixes),
  candidate sites;
* :mod:`coverage.io.population` — population rasters (clip, reproject, age groups).

This package module also holds the small helpers the readers share (declared-CRS parsing, reading
a vector layer with a bilingual error, choosing the internal metric CRS). Submodules are imported
explicitly (``from coverage.io import facilities``); importing :mod:`coverage.io` itself is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS

from coverage.crs import local_metric_crs
from coverage.errors import InputError

#: Keywords of lon/lat systems accepted for ``crs:`` (besides EPSG codes).
LONLAT_KEYWORDS: dict[str, str] = {
    "wgs84": "wgs84",
    "wgs 84": "wgs84",
    "epsg:4326": "wgs84",
    "4326": "wgs84",
    "cgcs2000": "wgs84",
    "epsg:4490": "wgs84",
    "4490": "wgs84",
    "gcj02": "gcj02",
    "gcj": "gcj02",
    "amap": "gcj02",
    "高德": "gcj02",
    "火星坐标": "gcj02",
    "bd09": "bd09",
    "baidu": "bd09",
    "百度": "bd09",
}

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml", ".zip")


def parse_crs(value: Any, file: str | Path | None = None) -> tuple[str, CRS | None]:
    """Interpret a declared ``crs:`` value.

    Parameters
    ----------
    value : str, int or None
        ``"wgs84"``, ``"gcj02"``, ``"bd09"`` (case, ``-``/``_`` ignored), an EPSG code (``4545``,
        ``"EPSG:4545"``) or any string pyproj understands. ``None`` means "as in the file".
    file : path, optional
        File named in the error message.

    Returns
    -------
    tuple
        ``(kind, crs)``: kind is ``"wgs84"``, ``"gcj02"``, ``"bd09"`` (lon/lat degrees, crs is
        EPSG:4326), ``"projected"``/``"geographic"`` (crs given) or ``"file"`` (value None).

    Raises
    ------
    InputError
        Unknown keyword or code.
    """
    if value is None:
        return "file", None
    key = str(value).strip().lower().replace("_", "").replace("-", "")
    key = {k.replace("-", "").replace("_", ""): v for k, v in LONLAT_KEYWORDS.items()}.get(key)
    if key is not None:
        return key, CRS.from_epsg(4326)
    try:
        crs = CRS.from_user_input(int(value) if str(value).strip().isdigit() else str(value).strip())
    except Exception:  # noqa: BLE001 - pyproj raises several types
        raise InputError(
            f"无法识别的坐标系 crs: {value!r}。请填写 wgs84、gcj02（高德/腾讯）、bd09（百度）或 EPSG 代码（如 4545）。",
            f"unknown crs {value!r}; use wgs84, gcj02 (Amap/Tencent), bd09 (Baidu) or an EPSG code such as 4545.",
            file=file,
            field="crs",
        ) from None
    if crs.is_geographic:
        return "geographic", crs
    return "projected", crs


def check_exists(path: str | Path, what_zh: str, what_en: str) -> Path:
    """Return ``Path(path)`` or raise a bilingual :class:`InputError` when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"找不到{what_zh}文件：{p}。请检查路径（相对路径以情景 YAML 文件所在目录为准）。",
            f"{what_en} file not found: {p}. Check the path (relative paths are resolved from the scenario YAML's folder).",
            file=p,
        )
    return p


def read_vector(
    path: str | Path,
    layer: str | int | None = None,
    what_zh: str = "图层",
    what_en: str = "layer",
    where: str | None = None,
):
    """Read a vector layer with geopandas/pyogrio, raising a bilingual :class:`InputError` on failure.

    ``where`` is an OGR SQL attribute filter (e.g. ``"adcode = '820000'"``) for files that hold more
    features than the area (a province's counties, say).

    A layer without a CRS whose coordinates all lie within lon/lat ranges is taken as WGS-84
    (logged); otherwise a missing CRS is an error.
    """
    import geopandas as gpd
    import pyogrio

    p = check_exists(path, what_zh, what_en)
    if layer is not None:
        try:
            names = [str(n) for n in pyogrio.list_layers(p)[:, 0]]
        except Exception:  # noqa: BLE001
            names = []
        if names and not isinstance(layer, int) and str(layer) not in names:
            raise InputError(
                f"{p.name} 中没有图层 '{layer}'，现有图层：{', '.join(names)}。",
                f"{p.name} has no layer '{layer}'; its layers are: {', '.join(names)}.",
                file=p,
                field="layer",
            )
    try:
        gdf = gpd.read_file(p, layer=layer, engine="pyogrio", where=where)
    except Exception as err:  # noqa: BLE001
        raise InputError(
            f"无法读取{what_zh} {p.name}：{err}。请确认为 GPKG/SHP/GeoJSON 格式。",
            f"cannot read {what_en} {p.name}: {err}. Use GPKG, SHP or GeoJSON.",
            file=p,
        ) from None
    if gdf.crs is None and len(gdf):
        b = gdf.total_bounds
        if -180 <= b[0] <= b[2] <= 180 and -90 <= b[1] <= b[3] <= 90:
            gdf = gdf.set_crs(4326)
        else:
            raise InputError(
                f"{p.name} 没有坐标系信息（缺少 .prj），且坐标不是经纬度。请在情景文件中用 crs: 指定 EPSG 代码。",
                f"{p.name} has no CRS (missing .prj) and its coordinates are not lon/lat; declare it with crs: EPSG code in the scenario.",
                file=p,
                field="crs",
            )
    if where and gdf.empty:
        raise InputError(
            f"{p.name} 中没有满足筛选条件 where: {where} 的要素。",
            f"no feature of {p.name} matches the filter where: {where}.",
            file=p, field="where",
        )
    return gdf


def apply_declared_crs(gdf, crs: Any, file: str | Path | None = None):
    """Apply a declared ``crs`` to a layer read from a file.

    ``"gcj02"``/``"bd09"`` convert every vertex to WGS-84 (the file must hold lon/lat degrees);
    ``"wgs84"`` or an EPSG code overrides the CRS stored in the file; ``None`` keeps it.
    """
    import shapely

    from coverage.crs import to_wgs84

    kind, c = parse_crs(crs, file)
    if kind == "file":
        return gdf
    if kind in ("gcj02", "bd09"):
        if gdf.crs is not None and not gdf.crs.is_geographic:
            raise InputError(
                f"crs: {crs} 表示经纬度（度），但 {Path(str(file)).name if file else '该图层'} 是投影坐标（{gdf.crs.to_string()}）。",
                f"crs: {crs} means lon/lat degrees, but {Path(str(file)).name if file else 'the layer'} is projected ({gdf.crs.to_string()}).",
                file=file,
                field="crs",
            )

        def _f(xy: np.ndarray) -> np.ndarray:
            lon, lat = to_wgs84(xy[:, 0], xy[:, 1], kind)
            return np.column_stack([lon, lat])

        out = gdf.copy()
        out.geometry = shapely.transform(np.asarray(gdf.geometry.values), _f)
        return out.set_crs(4326, allow_override=True)
    return gdf.set_crs(c, allow_override=True)


def metric_crs_for(gdf) -> CRS:
    """Internal metric CRS for a layer: :func:`coverage.crs.local_metric_crs` at its centre."""
    b = gdf.to_crs(4326).total_bounds if gdf.crs is not None and not gdf.crs.equals(CRS.from_epsg(4326)) else gdf.total_bounds
    return local_metric_crs((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)


def to_target(gdf, target_crs: Any = None):
    """Reproject ``gdf`` to ``target_crs`` (``None`` → :func:`metric_crs_for` the layer)."""
    if target_crs is None:
        target_crs = metric_crs_for(gdf)
    return gdf.to_crs(target_crs)


__all__ = [
    "LONLAT_KEYWORDS",
    "apply_declared_crs",
    "check_exists",
    "metric_crs_for",
    "parse_crs",
    "read_vector",
    "to_target",
]
