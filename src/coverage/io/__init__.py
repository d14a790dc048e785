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

import logging

import numpy as np
from pyproj import CRS

from coverage.crs import local_metric_crs
from coverage.errors import InputError

log = logging.getLogger(__name__)

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
    norm = str(value).strip().lower().replace("_", "").replace("-", "")
    key = {k.replace("-", "").replace("_", ""): v for k, v in LONLAT_KEYWORDS.items()}.get(norm)
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


#: Records of a DBF looked at by :func:`dbf_encoding` (enough for any county layer; bounded for
#: province-wide files).
DBF_SAMPLE_RECORDS: int = 50_000


def _dbf_of(path: Path) -> Path | None:
    """The ``.dbf`` beside a ``.shp`` (any case of the suffix), or the path itself for a ``.dbf``."""
    suffix = path.suffix.lower()
    if suffix == ".dbf":
        return path if path.exists() else None
    if suffix != ".shp":
        return None
    for ext in (".dbf", ".DBF", ".Dbf"):
        q = path.with_suffix(ext)
        if q.exists():
            return q
    return None


def _has_cpg(dbf: Path) -> bool:
    return any(dbf.with_suffix(ext).exists() for ext in (".cpg", ".CPG", ".Cpg"))


def _dbf_texts(dbf: Path, max_records: int = DBF_SAMPLE_RECORDS) -> list[bytes]:
    """Non-ASCII byte strings of a DBF: field names and character-field values (trailing blanks cut)."""
    raw = dbf.read_bytes()
    if len(raw) < 32:
        return []
    n_rec = int.from_bytes(raw[4:8], "little")
    hlen = int.from_bytes(raw[8:10], "little")
    rlen = int.from_bytes(raw[10:12], "little")
    fields: list[tuple[bytes, str, int, int]] = []  # name, type, offset in record, width
    pos, off = 32, 1  # byte 0 of a record is the deletion flag
    while pos + 32 <= min(hlen, len(raw)) and raw[pos] != 0x0D:
        d = raw[pos : pos + 32]
        width = d[16]
        fields.append((d[:11].split(b"\0")[0], chr(d[11]), off, width))
        off += width
        pos += 32
    out = [name for name, *_ in fields if max(name, default=0) > 127]
    text_fields = [(o, w) for _, t, o, w in fields if t in "CM"]
    for r in range(min(n_rec, max_records)):
        rec = raw[hlen + r * rlen : hlen + (r + 1) * rlen]
        if len(rec) < rlen:
            break
        for o, w in text_fields:
            v = rec[o : o + w].rstrip(b" \0")
            if v and max(v) > 127:
                out.append(v)
    return out


def _decodes(values: list[bytes], encoding: str, cut_tail: bool = False) -> bool:
    """True when every value decodes strictly; ``cut_tail`` forgives a character cut at the field width (a UTF-8 character of 2–4 bytes truncated by a fixed-width DBF field)."""
    for v in values:
        try:
            v.decode(encoding)
        except UnicodeDecodeError as err:
            if not (cut_tail and err.start >= len(v) - 3 and err.reason == "unexpected end of data"):
                return False
    return True


def dbf_encoding(path: str | Path) -> str | None:
    """Text encoding of a shapefile's attribute table when no ``.cpg`` file states it.

    A ``.cpg`` file, when present, is honoured (GDAL reads it; ``None`` is returned). Without one,
    GDAL assumes ISO-8859-1 and Chinese names come out as mojibake (``³Ç¹ØÕò`` for 城关镇). The
    bytes of the field names and of every character field are then tried: strict UTF-8 first
    (a character cut at the field width is forgiven), then GB18030 (a superset of GBK and GB2312,
    the default of Chinese Windows and of ArcGIS/MapGIS exports).

    Parameters
    ----------
    path : str or Path
        A ``.shp`` or ``.dbf`` file; any other file (GPKG, GeoJSON: always UTF-8) gives ``None``.

    Returns
    -------
    str or None
        ``"UTF-8"`` or ``"GB18030"``; ``None`` when a ``.cpg`` exists, the file is not a shapefile,
        all text is ASCII, or neither encoding decodes every value (then GDAL's default applies).
    """
    dbf = _dbf_of(Path(path))
    if dbf is None or _has_cpg(dbf):
        return None
    try:
        texts = _dbf_texts(dbf)
    except OSError:
        return None
    if not texts:
        return None
    if _decodes(texts, "utf-8", cut_tail=True):
        return "UTF-8"
    if _decodes(texts, "gb18030"):
        return "GB18030"
    log.warning("%s: no .cpg and the text is neither UTF-8 nor GB18030; read with GDAL's default encoding", dbf.name)
    return None


def check_layer(path: Path, layer: str | int) -> None:
    """Raise a bilingual :class:`InputError` when the file ``path`` has no layer named ``layer``.

    An integer ``layer`` (a position) and a file whose layers cannot be listed pass.
    """
    import pyogrio

    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception:  # noqa: BLE001
        names = []
    if names and not isinstance(layer, int) and str(layer) not in names:
        raise InputError(
            f"{path.name} 中没有图层 '{layer}'，现有图层：{', '.join(names)}。",
            f"{path.name} has no layer '{layer}'; its layers are: {', '.join(names)}.",
            file=path,
            field="layer",
        )


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

    A shapefile without a ``.cpg`` is decoded as :func:`dbf_encoding` detects (UTF-8 or GB18030).
    A layer without a CRS whose coordinates all lie within lon/lat ranges is taken as WGS-84
    (logged); otherwise a missing CRS is an error.
    """
    import geopandas as gpd

    p = check_exists(path, what_zh, what_en)
    if layer is not None:
        check_layer(p, layer)
    enc = dbf_encoding(p)
    if enc is not None:
        log.info("%s: no .cpg file; attribute text read as %s", p.name, enc)
    try:
        gdf = gpd.read_file(p, layer=layer, engine="pyogrio", where=where, **({"encoding": enc} if enc else {}))
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


def lonlat_geometries_to_wgs84(geoms: Any, system: str) -> np.ndarray:
    """Every vertex of lon/lat geometries declared in ``system`` converted to WGS-84.

    The one conversion of whole layers (declared ``crs: gcj02``/``bd09``, Amap boundary files);
    :func:`coverage.crs.to_wgs84` on the vertices through :func:`shapely.transform`.

    Parameters
    ----------
    geoms : GeoSeries or array of shapely geometries
        Geometries in degrees.
    system : {"gcj02", "bd09", "wgs84"}
        Their declared system.

    Returns
    -------
    numpy.ndarray
        Object array of the converted geometries (not repaired: a shift may rarely break validity).
    """
    import shapely

    from coverage.crs import to_wgs84

    def _f(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], system)
        return np.column_stack([lon, lat])

    return shapely.transform(np.asarray(getattr(geoms, "values", geoms)), _f)


def declared_crs(file_crs: CRS | None, crs: Any, file: str | Path | None = None) -> tuple[str, CRS | None]:
    """The CRS of a layer's coordinates once a declared ``crs`` is applied (:func:`apply_declared_crs`).

    Parameters
    ----------
    file_crs : pyproj.CRS or None
        The CRS stored in the file.
    crs : str, int or None
        The declaration (:func:`parse_crs`).
    file : path, optional
        Named in messages.

    Returns
    -------
    (str, CRS or None)
        ``(kind, CRS)``: kind ``"file"`` keeps ``file_crs``; ``"gcj02"``/``"bd09"`` mean the vertices
        are to be converted to WGS-84 (EPSG:4326); otherwise the declared CRS overrides the file's.

    Raises
    ------
    InputError
        ``gcj02``/``bd09`` declared for a projected layer.
    """
    kind, c = parse_crs(crs, file)
    if kind == "file":
        return kind, file_crs
    if kind in ("gcj02", "bd09"):
        if file_crs is not None and not file_crs.is_geographic:
            raise InputError(
                f"crs: {crs} 表示经纬度（度），但 {Path(str(file)).name if file else '该图层'} 是投影坐标（{file_crs.to_string()}）。",
                f"crs: {crs} means lon/lat degrees, but {Path(str(file)).name if file else 'the layer'} is projected ({file_crs.to_string()}).",
                file=file,
                field="crs",
            )
        return kind, CRS.from_epsg(4326)
    return kind, c


def apply_declared_crs(gdf, crs: Any, file: str | Path | None = None):
    """Apply a declared ``crs`` to a layer read from a file.

    ``"gcj02"``/``"bd09"`` convert every vertex to WGS-84 (the file must hold lon/lat degrees);
    ``"wgs84"`` or an EPSG code overrides the CRS stored in the file; ``None`` keeps it.
    """
    kind, c = declared_crs(gdf.crs, crs, file)
    if kind == "file":
        return gdf
    if kind in ("gcj02", "bd09"):
        out = gdf.copy()
        out.geometry = lonlat_geometries_to_wgs84(gdf.geometry, kind)
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
    "check_layer",
    "declared_crs",
    "dbf_encoding",
    "lonlat_geometries_to_wgs84",
    "metric_crs_for",
    "parse_crs",
    "read_vector",
    "to_target",
]
