"""One GeoPackage ``layers.gpkg`` with every layer of a run, for QGIS/ArcGIS users.

Typical layers: ``demand`` (cells with their ``t_<rule>`` times), ``facilities``, ``circles``,
``units`` (乡镇/街道 with coverage), ``gaps``, ``candidates``, ``sites``. Layer names must be ASCII
identifiers so every GIS and every SQLite tool can open them; attribute *values* and column names
may be Chinese and are stored as UTF-8.

Columns whose dtype a GeoPackage cannot store are converted before writing:

* lists, tuples, sets, dicts and arrays → JSON text (``ensure_ascii=False``, so Chinese stays
  readable);
* booleans → integers 0/1 (``NULL`` where missing), because GeoPackage has no boolean that every
  reader honours;
* ``inf`` and ``-inf`` → ``NULL``. Travel times are ``inf`` beyond the threshold or without road
  access; in the GeoPackage such a cell has an empty (``NULL``) time. Read ``NULL`` as "not reached
  within the threshold" and look at ``no_road`` to tell the two apart;
* a second geometry column → WKT text;
* categoricals → text;
* a column named ``fid`` (the facility id, text) is kept as an ordinary field; the GeoPackage
  primary key is then named ``gpkg_fid`` instead of the default ``fid``; unsigned 64-bit integers → signed 64-bit (or float when too large); any other
  object value → its ``str``.

The file is written to a temporary file in the same directory and renamed over ``path`` when all
layers are written, so a half-written GeoPackage never appears.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyogrio
from geopandas import GeoDataFrame
from geopandas.array import GeometryDtype

from coverage.errors import InputError
from coverage.report._util import atomic_target, is_missing

__all__ = ["gpkg_ready", "write_layers"]

log = logging.getLogger(__name__)

_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


def write_layers(
    path: str | os.PathLike[str],
    layers: Mapping[str, GeoDataFrame],
    *,
    spatial_index_skip: Collection[str] = (),
) -> Path:
    """Write several layers into one GeoPackage, atomically.

    Parameters
    ----------
    path : str or path-like
        Output ``.gpkg``. An existing file is replaced only when every layer was written.
    layers : mapping of str to geopandas.GeoDataFrame
        Layer name → table, written in the given order. Names must be ASCII identifiers (letter,
        then letters, digits or ``_``; at most 63 characters; unique ignoring case). A plain
        :class:`pandas.DataFrame` without geometry is written as an attribute-only table. Columns
        are converted with :func:`gpkg_ready` (``inf`` → ``NULL``, bool → 0/1, lists/dicts → JSON).
    spatial_index_skip : collection of str
        Layers written without the GeoPackage R-tree. An R-tree costs about 60 bytes per feature;
        for a layer with one point per 100 m cell that is a third of the file, and QGIS reads the
        layer without it (it can add one: layer properties → Create spatial index).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    coverage.errors.InputError
        When ``layers`` is empty, a name is not an ASCII identifier or repeats another ignoring
        case, a value is not a (Geo)DataFrame, or two column names of a layer differ only by case.
    """
    if not layers:
        raise InputError(
            "没有要写入 GeoPackage 的图层。",
            "No layers to write to the GeoPackage; pass at least one.",
            file=str(path),
        )
    seen: dict[str, str] = {}
    for name, df in layers.items():
        if not isinstance(name, str) or not _LAYER_NAME.match(name):
            raise InputError(
                f"图层名 {name!r} 不合规:须以英文字母开头,只含英文字母、数字和下划线,最长63个字符。",
                f"Layer name {name!r} is not an ASCII identifier (letter first, then letters, "
                "digits or '_', at most 63 characters); rename it.",
                file=str(path),
                field=str(name),
            )
        if name.lower() in seen:
            raise InputError(
                f"图层名 {name!r} 与 {seen[name.lower()]!r} 重复(不区分大小写)。",
                f"Layer name {name!r} repeats {seen[name.lower()]!r} (GeoPackage ignores case).",
                file=str(path),
                field=name,
            )
        seen[name.lower()] = name
        if not isinstance(df, pd.DataFrame):
            raise InputError(
                f"图层 {name!r} 不是表格。",
                f"Layer {name!r} must be a GeoDataFrame or DataFrame, got {type(df).__name__}.",
                file=str(path),
                field=name,
            )

    with atomic_target(path, suffix=".gpkg") as tmp:
        for name, df in layers.items():
            ready = gpkg_ready(df, layer=name)
            kwargs: dict[str, Any] = {"driver": "GPKG", "layer": name}
            if any(c.lower() == "fid" for c in ready.columns):
                # GeoPackage names its integer primary key "fid"; our facilities carry a text
                # ``fid`` column, so the primary key gets another name.
                kwargs.setdefault("layer_options", {})["FID"] = _pk_name(ready.columns)
            if name in spatial_index_skip:
                kwargs.setdefault("layer_options", {})["SPATIAL_INDEX"] = "NO"
            if isinstance(ready, GeoDataFrame):
                kwargs["promote_to_multi"] = _mixed_single_multi(ready)
                if len(ready) == 0:
                    kwargs["geometry_type"] = "Unknown"
            pyogrio.write_dataframe(ready, tmp, **kwargs)
    return Path(path)


def gpkg_ready(df: pd.DataFrame, layer: str = "") -> pd.DataFrame:
    """Return a copy of ``df`` whose columns a GeoPackage can store.

    Parameters
    ----------
    df : pandas.DataFrame or geopandas.GeoDataFrame
        The table. It is not modified.
    layer : str
        Layer name, used in error messages only.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        Same type and rows, default integer index (a *named* index becomes a column), with:
        ``±inf`` → NaN (``NULL``); bool → nullable ``Int8`` 0/1; list/tuple/set/dict/array values →
        JSON text; categoricals → text; uint64 → int64 (float when too large); other non-string
        object values → ``str``; non-string column names → ``str``.

    Raises
    ------
    coverage.errors.InputError
        When two column names differ only by case (SQLite would refuse them).
    """
    # shallow: converted columns are replaced, never written into, so the caller's arrays are not
    # duplicated (a million-cell layer would otherwise be copied whole before writing)
    out = df.copy(deep=False)
    if out.index.name is not None and out.index.name not in out.columns:
        out = out.reset_index()
    else:
        out.index = pd.RangeIndex(len(out))
    geom_name = None
    if isinstance(out, GeoDataFrame):
        active = out._geometry_column_name
        if active is not None and active in out.columns:
            geom_name = active
        else:  # a GeoDataFrame without an active geometry is an attribute table
            out = pd.DataFrame(out)
    renames = {c: str(c) for c in out.columns if not isinstance(c, str)}
    if renames:
        out = out.rename(columns=renames)
        geom_name = renames.get(geom_name, geom_name)
    lowered: dict[str, str] = {}
    for c in out.columns:
        if c.lower() in lowered:
            raise InputError(
                f"图层 {layer!r} 的字段 {c!r} 与 {lowered[c.lower()]!r} 只差大小写,GeoPackage 无法区分。",
                f"Columns {c!r} and {lowered[c.lower()]!r} of layer {layer!r} differ only by case; "
                "GeoPackage cannot store both. Rename one.",
                field=c,
            )
        lowered[c.lower()] = c

    for c in list(out.columns):
        if c == geom_name:
            continue
        if isinstance(out[c].dtype, GeometryDtype):  # a second geometry column: store as WKT
            out[c] = pd.Series(
                [None if g is None or g.is_empty else g.wkt for g in out[c]], index=out.index, dtype=object
            )
            continue
        out[c] = _convert(out[c])
    return out


def _convert(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _convert(s.astype(object).where(s.notna(), None))
    if pd.api.types.is_bool_dtype(dtype):
        return s.astype("Int8")
    if pd.api.types.is_float_dtype(dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(values).any():
            values = np.where(np.isinf(values), np.nan, values)
            return pd.Series(values, index=s.index, name=s.name)
        return s
    if pd.api.types.is_unsigned_integer_dtype(dtype) and dtype.itemsize == 8:
        arr = s.to_numpy()
        if arr.size and arr.max() > np.iinfo(np.int64).max:
            return s.astype(float)
        return s.astype("int64")
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return s
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return s
    # object column: inspect the values
    values = s.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return s  # text with gaps (the common case), checked in C rather than value by value
    present = [v for v in values if not is_missing(v)]
    if present and all(isinstance(v, bool | np.bool_) for v in present):
        return pd.Series(
            pd.array([None if is_missing(v) else int(bool(v)) for v in values], dtype="Int8"),
            index=s.index, name=s.name,
        )
    if present and all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
                       for v in present):
        num = np.array([np.nan if is_missing(v) else float(v) for v in values], dtype=float)
        num[np.isinf(num)] = np.nan
        if all(isinstance(v, int | np.integer) for v in present):
            return pd.Series(pd.array([None if is_missing(v) else int(v) for v in values], dtype="Int64"),
                             index=s.index, name=s.name)
        return pd.Series(num, index=s.index, name=s.name)
    if all(isinstance(v, str) for v in present):
        return s
    return pd.Series(np.array([_text(v) for v in values], dtype=object), index=s.index, name=s.name)


def _text(v: Any) -> str | None:
    if is_missing(v):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, list | tuple | set | frozenset | dict | np.ndarray):
        return json.dumps(_jsonable(v), ensure_ascii=False, sort_keys=isinstance(v, dict))
    if isinstance(v, float) and np.isinf(v):
        return None
    return str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, set | frozenset):
        return sorted((_jsonable(x) for x in v), key=str)
    if isinstance(v, list | tuple | np.ndarray):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


def _pk_name(columns: Any) -> str:
    taken = {str(c).lower() for c in columns}
    name, k = "gpkg_fid", 2
    while name in taken:
        name, k = f"gpkg_fid{k}", k + 1
    return name


def _mixed_single_multi(gdf: GeoDataFrame) -> bool:
    """True when a layer mixes e.g. Polygon and MultiPolygon (then all are promoted to Multi)."""
    types = set(gdf.geom_type.dropna().unique())
    return len(types) > 1 and any(t.startswith("Multi") for t in types)
