"""A road line layer read once per run: :class:`RoadLines` and :func:`read_road_lines`.

The inputs stage (:mod:`coverage.inputs`) reads the road file here to check it (it opens, holds
lines, its vertices for the facilities' ``crs:`` check) and hands what it read to the graph build
(:func:`coverage.network.from_lines`), so ``covplan run`` reads the file once. What is kept is
compact: the vertices of every LineString part (in the file's own CRS, as NumPy arrays, no shapely
objects), the part of each vertex, the feature of each part, and only the attribute fields the graph
build uses (road class, ``oneway``, ``maxspeed``).

The parts are those of :meth:`geopandas.GeoDataFrame.explode` on the non-empty geometries (a
MultiLineString gives its lines, a GeometryCollection its members), keeping the LineStrings, in file
order: exactly what :func:`coverage.network.read_lines` builds its graph from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray
from pyproj import CRS

from coverage.errors import InputError

log = logging.getLogger(__name__)

#: Names of the road-class field looked for when ``class_field=None`` (first match wins; case is
#: ignored). OSM fields first, then Chinese GIS fields: GB/T 13923 codes, route numbers, class names.
CLASS_FIELDS = ("highway", "fclass")
CN_CLASS_FIELDS = ("GB", "gbcode", "GB_CODE", "subtype", "RN", "ref", "道路等级", "行政等级", "公路等级", "技术等级", "等级", "class", "kind")

#: shapely type ids of line features (LineString, MultiLineString).
LINE_TYPE_IDS = (1, 5)


def find_class_field(columns: Sequence[str]) -> tuple[str | None, bool]:
    """The road-class field among ``columns`` and whether it holds OSM classes.

    OSM fields (:data:`CLASS_FIELDS`) win over Chinese ones (:data:`CN_CLASS_FIELDS`); names are
    compared without regard to case (``GBCODE``, ``gb``, ``Ref``).

    Returns
    -------
    tuple
        ``(field or None, is_osm)``.
    """
    low = {str(c).lower(): c for c in columns}
    for names, osm in ((CLASS_FIELDS, True), (CN_CLASS_FIELDS, False)):
        for n in names:
            if n.lower() in low:
                return low[n.lower()], osm
    return None, False


@dataclass(eq=False)
class RoadLines:
    """The lines of a road layer as arrays, in the file's own CRS.

    Attributes
    ----------
    path : Path
    layer : str, int or None
    crs : pyproj.CRS or None
        The CRS stored in the file (``None``: the file has none; a declared ``crs:`` is not applied).
    n_features : int
        Features in the layer (every geometry type, empty and missing geometries included).
    bounds : tuple of float
        Total bounds ``(minx, miny, maxx, maxy)`` of every geometry (NaN when there is none).
    xy : ndarray of float64, shape (n, 2)
        Vertices of the LineString parts, part after part.
    z : ndarray of float64 or None
        Their z (NaN for 2-D parts); ``None`` when no geometry has z.
    line : ndarray of int32
        Part number of each vertex (parts without vertices keep their number).
    part_feature : ndarray of int32
        Feature (row) number of each part.
    feature_type : ndarray of int8
        shapely type id of each feature's geometry (-1 missing).
    columns : tuple of str
        Every attribute field of the layer.
    fields : dict
        The attribute fields read (``{name: values per feature}``; text with one object per distinct
        value, ``None`` where missing).
    kinds : dict
        ``{geometry type: count}`` of the features, filled only when the layer holds no line feature
        (for the message that says what it holds instead).
    """

    path: Path
    layer: str | int | None
    crs: CRS | None
    n_features: int
    bounds: tuple[float, float, float, float]
    xy: NDArray[np.float64]
    z: NDArray[np.float64] | None
    line: NDArray[np.int32]
    part_feature: NDArray[np.int32]
    feature_type: NDArray[np.int8]
    columns: tuple[str, ...]
    fields: dict[str, NDArray] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def n_parts(self) -> int:
        """Number of LineString parts."""
        return int(self.part_feature.shape[0])

    @property
    def has_lines(self) -> bool:
        """Whether any feature is a LineString or MultiLineString."""
        return bool(np.isin(self.feature_type, LINE_TYPE_IDS).any())

    def line_feature_mask(self) -> NDArray[np.bool_] | None:
        """Which vertices belong to LineString/MultiLineString features (``None``: all of them)."""
        keep = np.isin(self.feature_type, LINE_TYPE_IDS)
        if keep.all() or not len(self.line):
            return None
        return keep[self.part_feature[self.line]]

    def part_values(self, name: str) -> NDArray:
        """Values of field ``name`` for each part (a feature's value repeated for each of its parts)."""
        return np.asarray(self.fields[name])[self.part_feature]

    def same_source(self, path: str | Path, layer: str | int | None) -> bool:
        """Whether these lines were read from ``path`` and ``layer``."""
        return Path(path) == self.path and layer == self.layer


@dataclass(eq=False)
class RoadLinesOnce:
    """Road lines handed from the inputs stage to one graph build, then let go.

    :attr:`coverage.inputs.Inputs.road_lines` holds one: :func:`coverage.model.build_model` takes the
    lines (:meth:`take`), so they are not kept beside the graphs for the rest of a run. A later build
    on the same inputs finds it empty and reads the file again (the same lines).
    """

    lines: RoadLines | None = None

    def take(self) -> RoadLines | None:
        """The lines (``None`` when there are none or they were taken); the holder is empty afterwards."""
        lines, self.lines = self.lines, None
        return lines


def _transformer(src: CRS, dst: CRS) -> Any:
    """``Transformer.from_crs(src, dst, always_xy=True)`` through geopandas' cache, shared with every ``to_crs`` of the run."""
    try:
        from geopandas.array import TransformerFromCRS as cached
    except ImportError:  # pragma: no cover - another geopandas
        from pyproj import Transformer

        cached = Transformer.from_crs
    return cached(src, dst, always_xy=True)


def transform_vertices(
    xy: NDArray[np.float64], z: NDArray[np.float64] | None, src: CRS, dst: CRS
) -> NDArray[np.float64]:
    """Vertices from ``src`` to ``dst`` as :meth:`geopandas.GeoSeries.to_crs` moves them.

    Nothing is done when the two CRS are exactly the same; otherwise one pyproj transformer
    (``always_xy``), with z for the vertices that have it (``z`` not NaN), as geopandas does for 3-D
    geometries. Element by element, so a subset of vertices comes out as it would with all of them.

    Parameters
    ----------
    xy : ndarray, shape (n, 2)
    z : ndarray or None
    src, dst : pyproj.CRS

    Returns
    -------
    ndarray, shape (n, 2)
        ``xy`` itself when nothing is to be done, else a new array.
    """
    if src.is_exact_same(dst):
        return xy
    t = _transformer(src, dst)
    x, y = xy[:, 0], xy[:, 1]
    if z is None:
        nx, ny = t.transform(x, y)
        return np.column_stack([nx, ny])
    out = np.empty_like(xy)
    flat = np.isnan(z)
    out[flat, 0], out[flat, 1] = t.transform(x[flat], y[flat])
    out[~flat, 0], out[~flat, 1], _ = t.transform(x[~flat], y[~flat], z[~flat])
    return out


def wanted_fields(
    columns: Sequence[str], class_field: str | None, oneway_field: str | None, maxspeed_field: str | None
) -> list[str]:
    """The fields of ``columns`` the graph build reads: the class field (given, else found), ``oneway``, ``maxspeed``."""
    cls = class_field if class_field is not None else find_class_field(columns)[0]
    return [c for c in dict.fromkeys([cls, oneway_field, maxspeed_field]) if c is not None and c in columns]


def _shared_values(values: NDArray) -> NDArray:
    """Text values with one object per distinct value (``None`` where missing); other arrays as they are.

    A road layer has a handful of classes but one string object per row as read: shared, the fields
    kept until the graph build take 8 bytes a row.
    """
    import pandas as pd

    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, uniq = pd.factorize(values, use_na_sentinel=True)
        table = np.empty(len(uniq) + 1, dtype=object)
        table[:-1] = uniq
        table[-1] = None
        return table[codes]
    return values


def _decode_lines(wkb: NDArray) -> tuple[NDArray[np.int8], NDArray[np.float64], NDArray[np.float64] | None, NDArray[np.int32], NDArray[np.int32]] | None:
    """``(feature_type, xy, z, line, part_feature)`` of WKB LineStrings/MultiLineStrings (``None`` missing).

    The same parts, vertices and numbering as shapely (``from_wkb``, ``get_parts``,
    ``get_coordinates``) on the non-empty geometries, decoded in one compiled pass. ``None`` when a
    feature is anything else (points, polygons, collections, curves, a one-point line that GEOS
    refuses): the caller then takes the shapely route.
    """
    try:
        lens = np.fromiter(map(len, wkb), dtype=np.int64, count=len(wkb))
        joined = b"".join(wkb)
    except TypeError:  # missing geometries
        lens = np.fromiter((0 if w is None else len(w) for w in wkb), dtype=np.int64, count=len(wkb))
        joined = b"".join(w for w in wkb if w is not None)
    offs = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum(lens, out=offs[1:])
    buf = np.frombuffer(joined, dtype=np.uint8)
    ftype, n_parts, n_verts, any_z = _wkb_count(buf, offs)
    if (ftype == 99).any():
        return None
    part_start = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum(n_parts, out=part_start[1:])
    vert_start = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum(n_verts, out=vert_start[1:])
    nv = int(vert_start[-1])
    bits = np.empty((nv, 2), dtype=np.uint64)
    zbits = np.empty(nv if any_z else 0, dtype=np.uint64)
    line = np.empty(nv, dtype=np.int32)
    feat = np.empty(int(part_start[-1]), dtype=np.int32)
    _wkb_fill(buf, offs, ftype, part_start, vert_start, bits, zbits, bool(any_z), line, feat)
    xy = bits.view(np.float64)
    z = zbits.view(np.float64) if any_z else None
    return ftype, xy, z, line, feat


@numba.njit(cache=True)
def _u32(buf: NDArray[np.uint8], pos: int, le: bool) -> int:  # pragma: no cover - compiled
    v = np.int64(0)
    for k in range(4):
        b = np.int64(buf[pos + k]) if le else np.int64(buf[pos + 3 - k])
        v |= b << (8 * k)
    return int(v)


@numba.njit(cache=True)
def _u64(buf: NDArray[np.uint8], pos: int, le: bool) -> np.uint64:  # pragma: no cover - compiled
    v = np.uint64(0)
    for k in range(8):
        b = np.uint64(buf[pos + k]) if le else np.uint64(buf[pos + 7 - k])
        v |= b << np.uint64(8 * k)
    return v


@numba.njit(cache=True)
def _header(buf: NDArray[np.uint8], pos: int) -> tuple[bool, int, bool, int, int]:  # pragma: no cover - compiled
    """``(little endian, base type, has z, values per point, header bytes)`` of the WKB at ``pos`` (ISO and EWKB)."""
    le = buf[pos] == 1
    t = _u32(buf, pos + 1, le)
    hdr = 5
    has_z = (t & 0x80000000) != 0
    has_m = (t & 0x40000000) != 0
    if (t & 0x20000000) != 0:
        hdr += 4  # EWKB SRID
    t &= 0x0FFFFFFF
    if t >= 3000:
        has_z, has_m, t = True, True, t - 3000
    elif t >= 2000:
        has_m, t = True, t - 2000
    elif t >= 1000:
        has_z, t = True, t - 1000
    return le, t, has_z, 2 + int(has_z) + int(has_m), hdr


@numba.njit(cache=True)
def _wkb_count(buf: NDArray[np.uint8], offs: NDArray[np.int64]) -> tuple:  # pragma: no cover - compiled
    """Per feature: shapely type id (-1 missing, 1, 5; 99 anything else), parts, vertices; and whether any part has z."""
    n = len(offs) - 1
    ftype = np.full(n, -1, dtype=np.int8)
    n_parts = np.zeros(n, dtype=np.int64)
    n_verts = np.zeros(n, dtype=np.int64)
    any_z = False
    for i in range(n):
        pos = offs[i]
        if offs[i + 1] == pos:
            continue
        le, t, hz, dims, hdr = _header(buf, pos)
        if t == 2:
            npts = _u32(buf, pos + hdr, le)
            ftype[i] = 1
            if npts == 1:
                ftype[i] = 99
            elif npts > 0:  # an empty line is no part
                n_parts[i] = 1
                n_verts[i] = npts
                any_z |= hz
        elif t == 5:
            ftype[i] = 5
            k = _u32(buf, pos + hdr, le)
            q = pos + hdr + 4
            nonempty = False
            verts = 0
            zz = False
            for _ in range(k):
                le2, t2, hz2, dims2, hdr2 = _header(buf, q)
                if t2 != 2:
                    ftype[i] = 99
                    break
                npts = _u32(buf, q + hdr2, le2)
                if npts == 1:
                    ftype[i] = 99
                    break
                nonempty |= npts > 0
                verts += npts
                zz |= hz2
                q += hdr2 + 4 + npts * dims2 * 8
            if nonempty and ftype[i] == 5:  # every part of a non-empty multi-line, empty ones too
                n_parts[i] = k
                n_verts[i] = verts
                any_z |= zz
        else:
            ftype[i] = 99
    return ftype, n_parts, n_verts, any_z


@numba.njit(cache=True)
def _wkb_fill(buf, offs, ftype, part_start, vert_start, bits, zbits, with_z, line, feat) -> None:  # noqa: PLR0913  # pragma: no cover - compiled
    """Write the vertices' bit patterns (x, y and z; z NaN for 2-D parts), part numbers and part features."""
    nan_bits = np.array([np.nan]).view(np.uint64)[0]
    for i in range(len(offs) - 1):
        if part_start[i + 1] == part_start[i]:
            continue
        pos = offs[i]
        le, t, hz, dims, hdr = _header(buf, pos)
        part = part_start[i]
        v = vert_start[i]
        if t == 2:
            k = 1
            q = pos
        else:
            k = _u32(buf, pos + hdr, le)
            q = pos + hdr + 4
        for _ in range(k):
            le2, t2, hz2, dims2, hdr2 = _header(buf, q)
            npts = _u32(buf, q + hdr2, le2)
            c = q + hdr2 + 4
            for _j in range(npts):
                bits[v, 0] = _u64(buf, c, le2)
                bits[v, 1] = _u64(buf, c + 8, le2)
                if with_z:
                    if hz2:
                        zbits[v] = _u64(buf, c + 16, le2)
                    else:
                        zbits[v] = nan_bits
                line[v] = part
                c += dims2 * 8
                v += 1
            feat[part] = i
            part += 1
            q = c


def read_road_lines(
    path: str | Path,
    layer: str | int | None = None,
    class_field: str | None = None,
    oneway_field: str | None = "oneway",
    maxspeed_field: str | None = "maxspeed",
    what: tuple[str, str] | None = None,
) -> RoadLines:
    """Read a road line layer (GPKG, SHP, GeoJSON …) into :class:`RoadLines`.

    One pass with :func:`pyogrio.raw.read` (WKB and the wanted fields only), then shapely on the
    whole array: no GeoDataFrame is built.

    Parameters
    ----------
    path : str or Path
    layer : str or int, optional
    class_field, oneway_field, maxspeed_field : str or None
        Fields to keep (see :func:`wanted_fields`); a field the layer lacks is skipped.
    what : (str, str), optional
        Chinese and English name of the layer: when given, a missing file or layer and a read
        failure raise the bilingual :class:`InputError` of :func:`coverage.io.read_vector`;
        otherwise the library's error is raised.

    Returns
    -------
    RoadLines
    """
    import pyogrio
    import shapely

    from coverage.io import check_exists, check_layer, dbf_encoding

    p = Path(path)
    if what is not None:
        p = check_exists(p, *what)
        if layer is not None:
            check_layer(p, layer)
    enc = dbf_encoding(p)
    kw: dict[str, Any] = {"layer": layer} if layer is not None else {}
    if enc is not None:
        log.info("%s: no .cpg file; attribute text read as %s", p.name, enc)
        kw["encoding"] = enc
    try:
        info = pyogrio.read_info(p, **kw)
        columns = tuple(str(c) for c in info["fields"])
        cols = wanted_fields(columns, class_field, oneway_field, maxspeed_field)
        meta, _fids, wkb, values = pyogrio.raw.read(p, columns=cols, **kw)
    except Exception as err:
        if what is None:
            raise
        raise InputError(
            f"无法读取{what[0]} {p.name}：{err}。请确认为 GPKG/SHP/GeoJSON 格式。",
            f"cannot read {what[1]} {p.name}: {err}. Use GPKG, SHP or GeoJSON.",
            file=p,
        ) from None
    fields = {str(name): _shared_values(values[i]) for i, name in enumerate(meta["fields"])}
    del values
    crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
    if wkb is None:
        wkb = np.empty(0, dtype=object)
    fast = _decode_lines(wkb)
    if fast is not None:  # LineStrings and MultiLineStrings only: decoded without shapely objects
        ftype, xy, z, line32, feat32 = fast
        if len(xy):
            bounds = (float(np.nanmin(xy[:, 0])), float(np.nanmin(xy[:, 1])), float(np.nanmax(xy[:, 0])), float(np.nanmax(xy[:, 1])))
        else:
            bounds = (np.nan, np.nan, np.nan, np.nan)
        return RoadLines(
            path=p, layer=layer, crs=crs, n_features=len(wkb), bounds=bounds, xy=xy, z=z, line=line32,
            part_feature=feat32, feature_type=ftype, columns=columns, fields=fields, kinds={},
        )
    geoms = shapely.from_wkb(wkb)
    del wkb
    n = len(geoms)
    ftype = shapely.get_type_id(geoms).astype(np.int8)
    if n and not np.isnan(shapely.bounds(geoms)).all():
        tb = shapely.total_bounds(geoms)
        bounds = (float(tb[0]), float(tb[1]), float(tb[2]), float(tb[3]))
    else:
        bounds = (np.nan, np.nan, np.nan, np.nan)
    # the parts of geopandas' explode on the non-empty geometries, LineStrings only
    full = (ftype >= 0) & ~shapely.is_empty(geoms)
    if (ftype[full] == 1).all():
        feat = np.flatnonzero(full)
        parts = geoms[feat]
    else:
        parts, idx = shapely.get_parts(geoms[full], return_index=True)
        feat = np.flatnonzero(full)[idx]
        is_line = shapely.get_type_id(parts) == 1
        parts, feat = parts[is_line], feat[is_line]
    has_z = bool(shapely.has_z(parts).any()) if len(parts) else False
    if has_z:
        xyz, line = shapely.get_coordinates(parts, include_z=True, return_index=True)
        xy, z = np.ascontiguousarray(xyz[:, :2]), xyz[:, 2].copy()
        del xyz
    else:
        xy, line = shapely.get_coordinates(parts, return_index=True)
        z = None
    kinds: dict[str, int] = {}
    if not np.isin(ftype, LINE_TYPE_IDS).any() and n:
        import geopandas as gpd

        kinds = {str(k): int(v) for k, v in gpd.GeoSeries(geoms).geom_type.value_counts().items()}
    return RoadLines(
        path=p, layer=layer, crs=crs, n_features=n, bounds=bounds,  # type: ignore[arg-type]
        xy=xy, z=z, line=line.astype(np.int32), part_feature=feat.astype(np.int32), feature_type=ftype,
        columns=columns, fields=fields, kinds=kinds,
    )


__all__ = ["CLASS_FIELDS", "CN_CLASS_FIELDS", "LINE_TYPE_IDS", "RoadLines", "RoadLinesOnce", "find_class_field", "read_road_lines", "transform_vertices", "wanted_fields"]
