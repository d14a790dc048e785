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
layers are written, so a half-written GeoPackage never appears. Meanwhile SQLite neither waits for
the disk after each transaction nor keeps its journal on disk (:data:`SCRATCH_SQLITE`).

Speed and memory (issue 11): the stored tables of the compact per-cell layers are handed to GDAL in
batches of :data:`STORE_BATCH_ROWS` rows through the Arrow C data interface
(:class:`coverage.report._arrow.ArrowStream`, no pyarrow needed), converted column by column
from the caller's arrays one batch at a time; pyogrio's row writer (one Python object per value)
remains for the small layers and as the fallback (GDAL < 3.8, column types the stream does not
take). Both write the same table. 16× demo (1.13 M cells): 9.8 → 3.8 s CPU, +0.55 → +0.06 GB.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyogrio
import shapely
from geopandas import GeoDataFrame
from geopandas.array import GeometryDtype

from coverage.errors import InputError
from coverage.report import _gdal
from coverage.report._arrow import ArrowStream
from coverage.report._util import atomic_target, is_missing

try:  # GDAL >= 3.8 takes column batches (Arrow C data interface); pyogrio >= 0.8 passes them on
    from pyogrio.raw import write_arrow
    _ARROW_WRITE = pyogrio.__gdal_version__ >= (3, 8, 0)
except ImportError:  # pragma: no cover - older pyogrio
    write_arrow = None
    _ARROW_WRITE = False

__all__ = ["Lattice", "gpkg_ready", "write_compact", "write_layers"]

log = logging.getLogger(__name__)

#: The attribute table of dictionary codes of compact layers (layer, field, code, value).
CODES_TABLE = "value_codes"

_LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


class Lattice(NamedTuple):
    """Cell centres of a north-up grid, whose points a compact layer need not store (:func:`write_compact`).

    The point of the row with key ``k`` (``cell = row * ncols + col``) is ``(x[k % ncols],
    y[k // ncols])``, ``ncols = len(x)``. A million points cost 33 MB in a GeoPackage (8 bytes of
    header, 21 of WKB and one of record header each); on a lattice the view builds each point from
    one stored point per grid column and row (the table ``<layer>__lattice``), exactly the same
    bytes.

    Attributes
    ----------
    x : numpy.ndarray of float64
        Centre x of each grid column.
    y : numpy.ndarray of float64
        Centre y of each grid row.
    """

    x: np.ndarray
    y: np.ndarray

    def fits(self, keys: Any, geometry: Any) -> bool:
        """Whether every geometry is the point of its key, bit for bit (else the layer stores its points)."""
        k = np.asarray(keys)
        if not len(k):
            return False
        if not np.issubdtype(k.dtype, np.integer):
            return False
        geoms = np.asarray(geometry, dtype=object)
        if (shapely.get_type_id(geoms) != 0).any() or shapely.is_empty(geoms).any() or shapely.has_z(geoms).any():
            return False
        nx = len(self.x)
        if k.min() < 0 or k.max() >= nx * len(self.y):
            return False
        xy = shapely.get_coordinates(geoms)
        return bool(np.array_equal(xy[:, 0], self.x[k % nx]) and np.array_equal(xy[:, 1], self.y[k // nx]))


def write_layers(  # noqa: PLR0913 - the compact-layer options are keyword-only
    path: str | os.PathLike[str],
    layers: Mapping[str, GeoDataFrame | Callable[[], GeoDataFrame | None]],
    *,
    spatial_index_skip: Collection[str] = (),
    compact: Mapping[str, Mapping[str, int | None]] | None = None,
    sides: Mapping[str, Mapping[str, str]] | None = None,
    rows_of: Mapping[str, str] | None = None,
    keys: Mapping[str, str] | None = None,
    lattices: Mapping[str, Lattice] | None = None,
    date: str | None = None,
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
        A layer may also be given as a function returning its table, or None for no such layer,
        called when the layer's turn comes (so a layer still being computed in another thread
        is written after the others).
    spatial_index_skip : collection of str
        Layers written without the GeoPackage R-tree. An R-tree costs about 60 bytes per feature;
        for a layer with one point per 100 m cell that is a third of the file, and QGIS reads the
        layer without it (it can add one: layer properties → Create spatial index).
    compact : mapping, optional
        Layer name → ``{column: decimals}``: those layers are stored compactly (see
        :func:`write_compact`) and read through a view of the same name with the same columns.
        ``decimals`` is the precision kept for a numeric column, ``None`` dictionary-codes a text
        column.
    sides : mapping, optional
        Layer name → ``{column: "urban" | "rural"}`` for :func:`write_compact`.
    rows_of : mapping, optional
        Compact layer → the compact layer written before it whose rows it joins on its key
        (:func:`write_compact`).
    keys : mapping, optional
        Compact layer → its unique integer key column (stored as the primary key).
    lattices : mapping, optional
        Compact layer → the :class:`Lattice` its points lie on, keyed by its key column: the points
        are then built by the view instead of stored (when every point is its key's, bit for bit;
        otherwise they are stored). A layer joined to it by ``rows_of`` shares them.
    date : str, optional
        ISO date (``YYYY-MM-DD``) recorded as every layer's ``last_change`` instead of the clock's
        time (GDAL's ``OGR_CURRENT_DATE``), so the same inputs give the same file.

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
        if not callable(df):
            _check_table(path, name, df)

    compact = compact or {}
    written: dict[str, tuple[GeoDataFrame, Lattice | None]] = {}
    stamp = {"OGR_CURRENT_DATE": f"{date}T00:00:00.000Z"} if date and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) else {}
    with atomic_target(path, suffix=".gpkg") as tmp, _scratch_sqlite(stamp):
        for name, table in layers.items():
            df = table() if callable(table) else table
            if df is None:
                continue
            _check_table(path, name, df)
            # the compact writer scales numbers itself: they skip the inf → NaN copy
            as_is = list(compact.get(name, {}))
            ready = gpkg_ready(df, layer=name, as_is=as_is)
            if (name in compact and isinstance(ready, GeoDataFrame) and len(ready)
                    and not any(c.lower() == "fid" for c in ready.columns)):
                other = (rows_of or {}).get(name)
                used = write_compact(tmp, name, ready, compact[name], (sides or {}).get(name),
                                     rows_of=(other, written[other][0], compact[other]) if other in written else None,
                                     key=(keys or {}).get(name),
                                     lattice=written[other][1] if other in written else (lattices or {}).get(name))
                written[name] = (ready, used)
                continue
            if as_is:  # not compact after all: convert every column
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


def _check_table(path: str | os.PathLike[str], name: str, df: Any) -> None:
    """Refuse a layer that is not a (Geo)DataFrame."""
    if not isinstance(df, pd.DataFrame):
        raise InputError(
            f"图层 {name!r} 不是表格。",
            f"Layer {name!r} must be a GeoDataFrame or DataFrame, got {type(df).__name__}.",
            file=str(path),
            field=name,
        )


#: GDAL settings while a GeoPackage is written into its temporary file: SQLite neither waits for the
#: disk after each transaction nor keeps its rollback journal on disk. A crash leaves only the
#: temporary file, which is never renamed into place (the same guarantee as without them).
SCRATCH_SQLITE = {"OGR_SQLITE_SYNCHRONOUS": "OFF", "OGR_SQLITE_JOURNAL": "MEMORY"}


@contextmanager
def _scratch_sqlite(more: Mapping[str, str] | None = None) -> Iterator[None]:
    """Apply :data:`SCRATCH_SQLITE` and ``more`` (GDAL config options are process-wide) and restore the previous values."""
    options = {**SCRATCH_SQLITE, **(more or {})}
    before = {k: pyogrio.get_gdal_config_option(k) for k in options}
    pyogrio.set_gdal_config_options(options)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(before)


def write_compact(path: str | os.PathLike[str], name: str, gdf: GeoDataFrame,  # noqa: C901 - one pass per column kind
                  spec: Mapping[str, int | None], sides: Mapping[str, str] | None = None,
                  rows_of: tuple[str, GeoDataFrame, Mapping[str, int | None]] | None = None,
                  key: str | None = None, lattice: Lattice | None = None) -> Lattice | None:
    """Write a large layer compactly: scaled integers and coded text, read through a view.

    SQLite stores every non-integral REAL in 8 bytes, a text value in full on every row and one
    header byte per column and row. For a layer of a million cells that is most of the file. Here
    the numeric columns named in ``spec`` are stored as integers of ``value × 10**decimals`` (1–3
    bytes for people to 0.01 and minutes to 0.1; ``NULL`` for NaN and ``±inf``), the text columns
    with ``decimals=None`` as integer codes into the attribute table ``value_codes`` (``layer``,
    ``field``, ``code``, ``value``), and a column of a rule that applies only to urban cells shares
    its stored column with one of a rural-only rule (``sides``), each read where its rule applies.
    The layer ``name`` a GIS opens is a view over the stored table ``<name>__store`` (a plain SQLite
    table, not registered as a layer) that divides, looks up and splits again, so it shows the same
    columns in the same order and units, rounded to the stated precision, and ``NULL`` where a
    side's rule does not apply. The stored table is converted and handed to GDAL a batch of rows at
    a time (Arrow path, see the module notes), so only text codes are held for the whole layer.

    Parameters
    ----------
    path : str or path-like
        An existing or new GeoPackage.
    name : str
        Layer name (an ASCII identifier; see :func:`write_layers`).
    gdf : geopandas.GeoDataFrame
        The layer, already converted with :func:`gpkg_ready`.
    spec : mapping of str to int or None
        ``{column: decimals}``; columns not named are stored as they are.
    sides : mapping of str to str, optional
        ``{column: "urban" | "rural"}`` for columns of rules that apply to one side only (the
        layer's ``urban`` column says which cell is which).
    rows_of : tuple, optional
        ``(layer, table, spec)`` of a compact layer written before (with the same ``key``) whose
        rows this layer's rows are a subset of: the geometry and the columns both layers have are
        read from that layer's stored table, joined on ``key``, instead of being stored twice.
    key : str, optional
        A unique integer column (``cell``) stored as the table's primary key, so it costs no
        space; it is also the view's ``fid``.
    lattice : Lattice, optional
        The grid the points lie on, by ``key``: when every point is its key's (or, with
        ``rows_of``, when that layer's points were built from this lattice), no point is stored;
        the view builds each from the table ``<name>__lattice`` (one point per grid column and
        row, not registered as a layer) — the same bytes a stored point has.

    Returns
    -------
    Lattice or None
        The lattice the view's points are built from, or None when the points are stored.
    """
    store = f"{name}__store"
    geom = gdf.geometry.name
    shared: set[str] = set()
    if rows_of is not None:
        shared = {c for c in gdf.columns if c in rows_of[1].columns and c not in ("urban", key)} | {geom}
    urban = gdf["urban"].to_numpy(dtype=float) == 1 if sides and "urban" in gdf.columns else None
    pairs: dict[str, tuple[str, str]] = {}  # stored column → (urban column, rural column)
    if urban is not None and sides:
        u_cols = [c for c in gdf.columns if sides.get(c) == "urban" and c in spec]
        r_cols = [c for c in gdf.columns if sides.get(c) == "rural" and c in spec]
        for u in u_cols:
            r = next((x for x in r_cols if spec[x] == spec[u]), None)
            if r is not None:
                r_cols.remove(r)
                pairs[f"{u}__{r}"] = (u, r)
    paired = {c: k for k, (u, r) in pairs.items() for c in (u, r)}
    columns: list[_Stored] = []
    codes_rows: list[pd.DataFrame] = []
    for c in gdf.columns:
        if c in shared or (c in paired and c != pairs[paired[c]][0]):
            continue
        col = paired.get(c, c)
        if spec.get(c, 0) is None:
            codes, uniques = _factorize([gdf[x] for x in (pairs[col] if c in paired else (c,))],
                                        urban if c in paired else None)
            columns.append(_Stored(col, "codes", (codes,)))
            codes_rows.append(pd.DataFrame({"layer": name, "field": col, "code": np.arange(len(uniques), dtype=np.int32),
                                            "value": [str(x) for x in uniques]}))
        elif c in spec:
            sources = tuple(_floats(gdf[x]) for x in (pairs[col] if c in paired else (c,)))
            columns.append(_Stored(col, "scaled", (*sources, urban) if c in paired else sources, int(spec[c])))  # type: ignore[arg-type]
        elif c != geom:
            columns.append(_Stored(col, "plain", (gdf[c],)))
    if lattice is not None and key is not None and rows_of is None:
        lattice = lattice if lattice.fits(gdf[key].to_numpy(), gdf.geometry.array) else None
        if lattice is not None and not _write_lattice(path, f"{name}__lattice", lattice, gdf.crs):
            lattice = None
    elif key is None:
        lattice = None
    geometry = gdf.geometry.array if rows_of is None and lattice is None else None
    _write_store(path, store, len(gdf), columns, geometry, gdf.crs if geometry is not None else None, key)
    if not codes_rows:  # the table exists even without codes: see the note on GDAL below
        codes_rows.append(pd.DataFrame({"layer": pd.Series([], dtype=object), "field": pd.Series([], dtype=object),
                                        "code": pd.Series([], dtype=np.int32), "value": pd.Series([], dtype=object)}))
    pyogrio.write_dataframe(pd.concat(codes_rows, ignore_index=True), path, driver="GPKG", layer=CODES_TABLE,
                            append=CODES_TABLE in {n for n, _ in pyogrio.list_layers(path)})
    cols, source = [], f"{_quote(store)} AS s"
    for c in gdf.columns:
        if c == geom and lattice is not None and key is not None:
            cols.append(f'{_lattice_point(rows_of[0] if rows_of else name, lattice, f"s.{_quote(key)}")} AS "geom"')
        elif c == geom:
            cols.append(f'{"d" if rows_of is not None else "s"}."geom" AS "geom"')
        elif c in shared and rows_of is not None:
            cols.append(f"{_view_column(rows_of[0], c, c, rows_of[2], None, alias='d')} AS {_quote(c)}")
        else:
            cols.append(f"{_view_column(name, c, paired.get(c, c), spec, sides)} AS {_quote(c)}")
    fid = f"s.{_quote(key)}" if key else "s.fid"
    if rows_of is not None:
        if key is None:
            raise ValueError("rows_of needs the key both layers share")
        source += f" JOIN {_quote(rows_of[0] + '__store')} AS d ON d.{_quote(key)} = s.{_quote(key)}"
    like = rows_of[0] if rows_of else (f"{name}__lattice" if lattice is not None else store)  # registered as
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA synchronous = OFF")  # a temporary file (see SCRATCH_SQLITE)
        with con:
            con.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {CODES_TABLE}_key ON {CODES_TABLE} (layer, field, code)")
            con.execute(f"CREATE VIEW {_quote(name)} AS SELECT {fid} AS fid, {', '.join(cols)} FROM {source}")
            con.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, min_x, min_y, "
                "max_x, max_y, srs_id) SELECT ?, 'features', ?, ?, last_change, min_x, min_y, max_x, max_y, srs_id "
                "FROM gpkg_contents WHERE table_name = ?",
                (name, name, f"compact: stored in {store} (scaled integers, codes in {CODES_TABLE})", like),
            )
            con.execute(
                "INSERT INTO gpkg_geometry_columns SELECT ?, column_name, geometry_type_name, srs_id, z, m "
                "FROM gpkg_geometry_columns WHERE table_name = ?", (name, like),
            )
            if lattice is not None and rows_of is None and key is not None:  # the extent of the points, not the grid's
                k = gdf[key].to_numpy()
                x, y = lattice.x[k % len(lattice.x)], lattice.y[k // len(lattice.x)]
                con.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = ?",
                            (float(x.min()), float(y.min()), float(x.max()), float(y.max()), name))
            # the stored tables are not layers of their own: GDAL (and so QGIS) lists only
            # registered tables once an attribute table (value_codes) is registered
            for meta in ("gpkg_geometry_columns", "gpkg_contents", "gpkg_ogr_contents"):
                con.executemany(f"DELETE FROM {meta} WHERE table_name = ?", [(store,), (f"{name}__lattice",)])
    finally:
        con.close()
    return lattice


def _write_lattice(path: str | os.PathLike[str], table: str, lattice: Lattice, crs: Any) -> bool:
    """Write the points of a :class:`Lattice` (point ``i``: column ``i``'s x, row ``i``'s y; ``fid = i + 1``).

    Returns False, leaving no table, when GDAL did not write them as :func:`_lattice_point` reads
    them (a GeoPackage header of 8 bytes, no envelope, then little-endian 2D point WKB).
    """
    n = max(len(lattice.x), len(lattice.y))
    xs = np.concatenate([lattice.x, np.full(n - len(lattice.x), lattice.x[-1])])
    ys = np.concatenate([lattice.y, np.full(n - len(lattice.y), lattice.y[-1])])
    pyogrio.write_dataframe(GeoDataFrame({"i": np.arange(n, dtype=np.int64)}, geometry=shapely.points(xs, ys), crs=crs),
                            path, driver="GPKG", layer=table, layer_options={"SPATIAL_INDEX": "NO"})
    con = sqlite3.connect(path)
    try:
        bad = con.execute(f"SELECT count(*) FROM {_quote(table)} WHERE fid != i + 1 OR length(geom) != 29 "
                          "OR substr(geom, 1, 2) != CAST('GP' AS BLOB) OR substr(geom, 4, 1) != x'01' "
                          "OR substr(geom, 9, 5) != x'0101000000'").fetchone()[0]
        if bad:
            with con:
                con.execute(f"DROP TABLE {_quote(table)}")
                for meta in ("gpkg_geometry_columns", "gpkg_contents", "gpkg_ogr_contents"):
                    con.execute(f"DELETE FROM {meta} WHERE table_name = ?", (table,))
            log.debug("lattice points not in the expected encoding: %s stores its points", table)
    finally:
        con.close()
    return not bad


def _lattice_point(layer: str, lattice: Lattice, key_sql: str) -> str:
    """The SQL of a view's point built from the lattice table of ``layer`` (see :func:`_write_lattice`)."""
    table, nx = _quote(f"{layer}__lattice"), len(lattice.x)
    at = f"(SELECT g.geom FROM {table} AS g WHERE g.fid = {{}} + 1)"
    return (f"CAST(substr({at.format(f'{key_sql} % {nx}')}, 1, 21) || "
            f"substr({at.format(f'{key_sql} / {nx}')}, 22, 8) AS BLOB)")


def _factorize(sources: list[pd.Series], urban: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int32, ``-1`` for missing) and sorted distinct values of a text column, as ``pd.factorize(sort=True)`` gives them.

    ``sources`` is the column, or its urban and rural columns (``urban`` says which to read on each
    row). A categorical column is coded from its categories, without one Python string per row.
    """
    parts = []
    for s in sources:
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, cats = s.cat.codes.to_numpy(), np.asarray(s.cat.categories, dtype=object)
        else:
            codes, cats = pd.factorize(s)
            cats = np.asarray(cats, dtype=object)
        parts.append((np.asarray(codes, dtype=np.int32), cats))  # int32: a million rows, 4 bytes each
    # the codes that occur, by counting (a million-row column: no sort)
    union = np.unique(np.concatenate([cats[_present(codes, len(cats))] for codes, cats in parts]))
    mapped = [np.where(codes >= 0, np.searchsorted(union, cats).astype(np.int32)[np.maximum(codes, 0)]
                       if len(cats) else np.int32(-1), np.int32(-1))
              for codes, cats in parts]
    code = mapped[0] if urban is None else np.where(urban, mapped[0], mapped[1])
    used = _present(code, len(union))  # values of the rows, in order
    remap = np.full(len(union) + 1, -1, dtype=np.int32)
    remap[used] = np.arange(len(used), dtype=np.int32)
    return remap[code], union[used]


def _present(codes: np.ndarray, n: int) -> np.ndarray:
    """The distinct codes ``>= 0`` among ``codes`` (each ``< n``), ascending: ``np.unique`` by counting."""
    return np.flatnonzero(np.bincount(codes[codes >= 0], minlength=n))


class _Stored(NamedTuple):
    """One column of a compact layer's stored table, converted batch by batch (:func:`_stored_part`).

    ``kind`` is ``"codes"`` (``sources``: the int32 codes, ``-1`` for missing), ``"scaled"``
    (``sources``: the float values, or urban values, rural values and the urban mask of a shared
    column; stored as ``round(value × 10**decimals)``, ``NULL`` where not finite) or ``"plain"``
    (``sources``: the column as it is).
    """

    name: str
    kind: str
    sources: tuple[Any, ...]
    decimals: int = 0


#: Rows converted and handed to GDAL at a time by the Arrow path of :func:`write_compact`.
STORE_BATCH_ROWS = 65_536
#: Arrow formats of the plain (unconverted) column dtypes the Arrow path takes; others use pyogrio's
#: row-by-row writer.
_PLAIN_FORMATS = {"int8": b"c", "int16": b"s", "int32": b"i", "int64": b"l", "float64": b"g",
                  "Int8": b"c", "Int16": b"s", "Int32": b"i", "Int64": b"l", "Float64": b"g"}
_GEOM_TYPES = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
               6: "MultiPolygon", 7: "GeometryCollection"}


def _stored_part(col: _Stored, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``start:stop`` of a stored column as ``(values, valid)`` (``valid`` None: no ``NULL``)."""
    if col.kind == "codes":
        codes = col.sources[0][start:stop]
        return codes, codes >= 0
    if col.kind == "scaled":
        if len(col.sources) == 3:
            u, r, urban = col.sources
            v = np.where(urban[start:stop], u[start:stop], r[start:stop])
        else:
            v = col.sources[0][start:stop]
        ok = np.isfinite(v)
        scaled = np.zeros(len(v), dtype=np.int64)
        scaled[ok] = np.round(v[ok] * 10.0 ** col.decimals)
        return scaled, ok
    s = col.sources[0].iloc[start:stop]
    dtype = str(s.dtype)
    fill = np.nan if dtype.lower() == "float64" else 0
    values = s.to_numpy(dtype=dtype.lower(), na_value=fill)
    valid = ~s.isna().to_numpy() if dtype[0].isupper() or dtype == "float64" else None
    return values, valid


def _floats(s: pd.Series) -> np.ndarray:
    """A column as float64 (``NaN`` for what is not a number), without a copy when it is float64 already."""
    if s.dtype == np.float64:
        return s.to_numpy()
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _point_wkb(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, None]:
    """Little-endian 2D point WKB of non-empty points, built from their coordinates in one pass."""
    m = len(geoms)
    rec = np.empty((m, 21), dtype=np.uint8)
    rec[:, 0] = 1  # little endian
    rec[:, 1:5] = np.frombuffer(np.array(1, dtype="<u4").tobytes(), dtype=np.uint8)  # wkbPoint
    rec[:, 5:] = np.ascontiguousarray(shapely.get_coordinates(geoms), dtype="<f8").view(np.uint8).reshape(m, 16)
    return np.arange(0, 21 * (m + 1), 21, dtype=np.int32), rec.reshape(-1), None


def _any_wkb(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """WKB of any geometries (``NULL`` for missing ones), as Arrow binary buffers."""
    wkb = shapely.to_wkb(geoms)
    valid = np.array([w is not None for w in wkb], dtype=bool)
    sizes = np.array([len(w) if w is not None else 0 for w in wkb], dtype=np.int64)
    offsets = np.zeros(len(wkb) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("a batch of geometries exceeds 2 GB of WKB")
    data = np.frombuffer(b"".join(w for w in wkb if w is not None), dtype=np.uint8)
    return offsets.astype(np.int32), data, (None if valid.all() else valid)


def _geometry_column(geometry: Any) -> tuple[str, Any] | None:
    """The layer type and a batch maker of a geometry column for the Arrow path, or None when pyogrio must write it.

    Mirrors pyogrio's choice of layer type: one geometry type (missing geometries aside), 2D.
    """
    geoms = np.asarray(geometry, dtype=object)
    ids = shapely.get_type_id(geoms)
    types = np.unique(ids[ids >= 0])
    if len(types) != 1 or int(types[0]) not in _GEOM_TYPES:
        return None
    present = ids >= 0
    empty = shapely.is_empty(geoms)
    if shapely.has_z(geoms[present & ~empty]).any():
        return None
    if int(types[0]) == 0 and present.all() and not empty.any():
        return _GEOM_TYPES[0], lambda a, b: _point_wkb(geoms[a:b])
    return _GEOM_TYPES[int(types[0])], lambda a, b: _any_wkb(geoms[a:b])


def _crs_text(crs: Any) -> str | None:
    """The CRS as pyogrio passes it to GDAL (``EPSG:<code>`` when it has one, else WKT1_GDAL)."""
    if not crs:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt("WKT1_GDAL")


def _write_store(path: str | os.PathLike[str], store: str, n: int, columns: list[_Stored],
                 geometry: Any, crs: Any, key: str | None) -> None:
    """Write the stored table of a compact layer: through GDAL's Arrow interface when it can, else with pyogrio.

    Both give the same table (columns, types, values); the Arrow path hands GDAL whole batches of
    :data:`STORE_BATCH_ROWS` rows instead of one Python value at a time (2–3× faster for a
    million cells) and never holds more than a batch of converted columns.
    """
    options = {"SPATIAL_INDEX": "NO"} if geometry is not None else {}
    if key:
        options["FID"] = key
    fmts = {"codes": b"i", "scaled": b"l"}
    arrow: list[Any] = []
    for c in columns:
        fmt = fmts.get(c.kind) or _PLAIN_FORMATS.get(str(c.sources[0].dtype))
        if fmt is None or c.name == "geom":
            arrow = []
            break
        arrow.append((c.name, fmt, lambda a, b, c=c: _stored_part(c, a, b)))
    geom = _geometry_column(geometry) if geometry is not None and arrow else None
    if arrow and (geometry is None or geom is not None) and _ARROW_WRITE:
        if geom is not None:
            arrow.insert(0, ("geom", b"z", geom[1]))
        stream = ArrowStream(n, arrow, batch_rows=STORE_BATCH_ROWS)
        # pyogrio holds the GIL while GDAL inserts the rows: where GDAL's C API is reachable, pyogrio
        # only creates the layer and its fields (no rows) and the rows go through ctypes, which
        # lets the run's other threads go on meanwhile (the same GDAL calls, the same table)
        direct = _gdal.available()
        try:
            with warnings.catch_warnings():  # a layer without CRS is written as before, without a warning
                warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
                write_arrow(ArrowStream(0, arrow) if direct else stream, path, layer=store, driver="GPKG",
                            geometry_name="geom" if geom else None, geometry_type=geom[0] if geom else None,
                            crs=_crs_text(crs) if geom else None, layer_options=options)
        except Exception as exc:
            if stream.error is not None:  # the cause, not pyogrio's "error while accessing batch"
                raise stream.error from exc
            raise
        _plain_key(path, store)  # still empty on the direct path: no rows to copy
        if direct:
            _gdal.append_batches(path, store, stream, geometry_name="geom" if geom else None)
        return
    data: dict[str, Any] = {}
    for c in columns:
        if c.kind == "plain":
            data[c.name] = c.sources[0].to_numpy()
            continue
        values, valid = _stored_part(c, 0, n)
        data[c.name] = pd.array(values, dtype="Int32" if c.kind == "codes" else "Int64")
        data[c.name][~valid] = pd.NA  # type: ignore[operator]
    if geometry is not None:
        pyogrio.write_dataframe(GeoDataFrame(data, geometry=geometry, crs=crs), path, driver="GPKG", layer=store,
                                layer_options=options)
    else:
        pyogrio.write_dataframe(pd.DataFrame(data), path, driver="GPKG", layer=store, layer_options=options)
    _plain_key(path, store)


def _plain_key(path: str | os.PathLike[str], table: str) -> None:
    """Declare the integer primary key of a stored table without ``AUTOINCREMENT``.

    GDAL declares every table's key ``INTEGER PRIMARY KEY AUTOINCREMENT``, with which SQLite checks
    and updates ``sqlite_sequence`` on every insert: about 0.5 µs a row, a quarter of the insert's
    time (0.6 s of the 16× demo's 1.5 M stored rows). The stored tables of compact layers are not
    layers of their own (their views are) and are written once, so they need no ``AUTOINCREMENT``
    (which only keeps a deleted row's key from being used again). The table is made again with the
    same columns, key and triggers: before its rows are appended (the fast path, an empty table) or
    with its rows copied (pyogrio's path, which writes the rows as it creates the table).
    """
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA synchronous = OFF")  # a temporary file (see SCRATCH_SQLITE)
        row = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        if row is None or "PRIMARY KEY AUTOINCREMENT" not in row[0]:
            return
        triggers = [t for (t,) in con.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                                              (table,))]
        plain = row[0].replace("PRIMARY KEY AUTOINCREMENT", "PRIMARY KEY", 1)
        with con:
            if con.execute(f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})").fetchone()[0]:
                kept = f"{table}__with_rows"
                con.execute(f"ALTER TABLE {_quote(table)} RENAME TO {_quote(kept)}")
                con.execute(plain)
                con.execute(f"INSERT INTO {_quote(table)} SELECT * FROM {_quote(kept)}")
                con.execute(f"DROP TABLE {_quote(kept)}")
            else:
                con.execute(f"DROP TABLE {_quote(table)}")
                con.execute(plain)
            for sql in triggers:  # dropped with the table (or left on the renamed one, now dropped)
                con.execute(sql)
            con.execute("DELETE FROM sqlite_sequence WHERE name IN (?, ?)", (table, f"{table}__with_rows"))
    finally:
        con.close()


def _view_column(layer: str, column: str, stored: str, spec: Mapping[str, int | None],
                 sides: Mapping[str, str] | None, alias: str = "s") -> str:
    """The SQL expression of one column of a compact layer's view (see :func:`write_compact`)."""
    q = f"{alias}.{_quote(stored)}"
    if column not in spec:
        return q
    side = (sides or {}).get(column) if stored != column else None
    if side is not None:
        q = f"CASE WHEN {alias}.\"urban\" = {1 if side == 'urban' else 0} THEN {q} END"
    if spec[column] is None:
        return (f"(SELECT k.value FROM {CODES_TABLE} AS k WHERE k.layer = '{layer}' AND k.field = "
                f"'{stored.replace(chr(39), chr(39) * 2)}' AND k.code = {q})")
    return f"CAST({q} / {10.0 ** int(spec[column])!r} AS REAL)"  # type: ignore[arg-type]


def _quote(identifier: str) -> str:
    """An SQLite identifier in double quotes."""
    return '"' + identifier.replace('"', '""') + '"'


def gpkg_ready(df: pd.DataFrame, layer: str = "", *, as_is: Collection[str] = ()) -> pd.DataFrame:
    """Return a copy of ``df`` whose columns a GeoPackage can store.

    Parameters
    ----------
    df : pandas.DataFrame or geopandas.GeoDataFrame
        The table. It is not modified.
    layer : str
        Layer name, used in error messages only.
    as_is : collection of str
        Columns of a compact layer passed on unconverted when they are float (no ``±inf`` → NaN
        copy: the compact writer scales them itself and stores what is not finite as ``NULL``) or
        categoricals of text (the writer codes them from their categories).

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
        if c == geom_name or (c in as_is and (pd.api.types.is_float_dtype(out[c].dtype) or _text_categories(out[c]))):
            continue
        if isinstance(out[c].dtype, GeometryDtype):  # a second geometry column: store as WKT
            out[c] = pd.Series(
                [None if g is None or g.is_empty else g.wkt for g in out[c]], index=out.index, dtype=object
            )
            continue
        out[c] = _convert(out[c])
    return out


def _text_categories(s: pd.Series) -> bool:
    """Whether ``s`` is a categorical whose categories are all text."""
    return isinstance(s.dtype, pd.CategoricalDtype) and all(isinstance(v, str) for v in s.cat.categories)


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
