"""The Arrow path of ``layers.gpkg`` (issue 11): the compact stored tables are handed to GDAL in
column batches (``coverage.report._arrow.ArrowStream``) instead of pyogrio's row-by-row writer.

Every check compares with pyogrio's own row-by-row writer (``pyogrio.write_dataframe``), which the
project used before, as the independent reference: the same table definition and the same rows.
The per-cell layers of a demo run and of a real run (Macau: OSM roads, WorldPop, Amap POIs) are
compared whole, stored table by stored table, and read back through the views with pyogrio and
plain sqlite3. Random data below are MADE-UP TEST DATA.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyogrio.raw import write_arrow

from coverage import pipeline
from coverage.report import gpkg
from coverage.report import _gdal
from coverage.report._arrow import ArrowStream

MACAU = Path(__file__).resolve().parents[1] / "data" / "macau.yaml"


def _table(path: Path, name: str, order: str) -> tuple[str, list[tuple]]:
    """The CREATE statement and all rows (in ``order``) of one SQLite table."""
    with sqlite3.connect(path) as con:
        sql = con.execute("select sql from sqlite_master where name = ?", (name,)).fetchone()[0]
        rows = con.execute(f'select * from "{name}" order by {order}').fetchall()
    return sql, rows


# --- the stream itself, against pyogrio's row writer ------------------------------------------

def _random_frame(n: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)

    def nullable(dtype: str, hi: int) -> pd.arrays.IntegerArray:
        a = pd.array(rng.integers(-hi, hi, n), dtype=dtype)
        a[rng.random(n) < 0.3] = pd.NA
        return a

    f = rng.normal(size=n) * 1e3
    f[rng.random(n) < 0.2] = np.nan
    return gpd.GeoDataFrame(
        {"cell": rng.choice(10 * n + 10, n, replace=False).astype(np.int64),
         "i8": rng.integers(0, 2, n).astype(np.int8), "n8": nullable("Int8", 100), "n16": nullable("Int16", 30_000),
         "n32": nullable("Int32", 2**31 - 1), "n64": nullable("Int64", 2**62), "f": f},
        geometry=gpd.points_from_xy(rng.random(n) * 1e6, rng.random(n) * 1e6 + 3e6), crs=4545,
    )


def _columns(df: gpd.GeoDataFrame) -> list:
    """ArrowStream columns of a frame of the dtypes above (geometry as WKB)."""
    wkb = shapely.to_wkb(np.asarray(df.geometry.array))
    fmts = {"int64": b"l", "int8": b"c", "Int8": b"c", "Int16": b"s", "Int32": b"i", "Int64": b"l", "float64": b"g"}

    def geom(a: int, b: int):
        sizes = np.array([len(w) for w in wkb[a:b]])
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32), np.frombuffer(b"".join(wkb[a:b]), np.uint8), None

    cols = [("geom", b"z", geom)]
    for c in df.columns.drop("geometry"):
        s = df[c]

        def make(a: int, b: int, s: pd.Series = s):
            part = s.iloc[a:b]
            dt = str(s.dtype).lower()
            return part.to_numpy(dtype=dt, na_value=np.nan if dt == "float64" else 0), ~part.isna().to_numpy()

        cols.append((c, fmts[str(s.dtype)], make))
    return cols


@pytest.mark.parametrize(("n", "batch_rows"), [(1, 5), (57, 1), (57, 8), (57, 57), (1000, 300)])
def test_arrow_stream_writes_what_pyogrio_writes(tmp_path: Path, n: int, batch_rows: int) -> None:
    """Nullable int8/16/32/64, float64 with NaN, a key as primary key and points, in any batch size:
    the same CREATE TABLE and the same rows (geometry blobs included) as pyogrio's row writer."""
    df = _random_frame(n, seed=n + batch_rows)
    opts = {"SPATIAL_INDEX": "NO", "FID": "cell"}
    ref, new = tmp_path / "ref.gpkg", tmp_path / "new.gpkg"
    pyogrio.write_dataframe(df, ref, layer="t", layer_options=opts)
    stream = ArrowStream(n, _columns(df), batch_rows=batch_rows)
    write_arrow(stream, new, layer="t", driver="GPKG", geometry_name="geom", geometry_type="Point",
                crs="EPSG:4545", layer_options=opts)
    assert _table(new, "t", "cell") == _table(ref, "t", "cell")
    back = pyogrio.read_dataframe(new, layer="t", fid_as_index=True)
    assert back.index.tolist() == sorted(df["cell"])
    assert not stream._batches  # every batch was released by the consumer


def test_arrow_stream_reports_a_failing_batch(tmp_path: Path) -> None:
    """An error while a batch is made reaches the caller as an exception, not a short table."""

    def boom(a: int, b: int):
        if a >= 10:
            raise ValueError("no data")
        return np.arange(a, b, dtype=np.int64), None

    stream = ArrowStream(30, [("v", b"l", boom)], batch_rows=10)
    with pytest.raises(RuntimeError, match="batch"):
        write_arrow(stream, tmp_path / "x.gpkg", layer="t", driver="GPKG")
    assert isinstance(stream.error, ValueError)


@pytest.mark.skipif(not _gdal.available(), reason="GDAL's C API is not reachable through pyogrio here")
@pytest.mark.parametrize(("n", "batch_rows"), [(0, 4), (57, 8), (1000, 300)])
def test_rows_appended_through_gdal_c_api_as_pyogrio_writes_them(tmp_path: Path, n: int, batch_rows: int) -> None:
    """pyogrio creates the layer and its fields from the schema (no rows), then the rows go to
    GDAL's own OGR_L_WriteArrowBatch (through ctypes, without the GIL): the same table as
    pyogrio's row writer; every batch released."""
    df = _random_frame(n, seed=7 + n)
    opts = {"SPATIAL_INDEX": "NO", "FID": "cell"}
    ref, new = tmp_path / "ref.gpkg", tmp_path / "new.gpkg"
    pyogrio.write_dataframe(df, ref, layer="t", layer_options=opts, geometry_type="Point")
    cols = _columns(df)
    write_arrow(ArrowStream(0, cols), new, layer="t", driver="GPKG", geometry_name="geom", geometry_type="Point",
                crs="EPSG:4545", layer_options=opts)
    stream = ArrowStream(n, cols, batch_rows=batch_rows)
    _gdal.append_batches(new, "t", stream, geometry_name="geom")
    assert _table(new, "t", "cell") == _table(ref, "t", "cell")
    assert pyogrio.read_info(new, layer="t")["features"] == n
    assert not stream._batches


@pytest.mark.skipif(not _gdal.available(), reason="GDAL's C API is not reachable through pyogrio here")
def test_append_batches_reports_errors_and_closes_the_file(tmp_path: Path) -> None:
    """A batch that cannot be made raises its own error; a missing layer or file is named; the
    file is closed in every case (it can be written again at once)."""
    path = tmp_path / "x.gpkg"
    write_arrow(ArrowStream(0, [("v", b"l", None)]), path, layer="t", driver="GPKG")

    def boom(a: int, b: int):
        if a >= 10:
            raise ValueError("no data")
        return np.arange(a, b, dtype=np.int64), None

    with pytest.raises(ValueError, match="no data"):
        _gdal.append_batches(path, "t", ArrowStream(30, [("v", b"l", boom)], batch_rows=10))
    with pytest.raises(RuntimeError, match="no layer 'nope'"):
        _gdal.append_batches(path, "nope", ArrowStream(3, [("v", b"l", boom)]))
    with pytest.raises(RuntimeError, match="could not open"):
        _gdal.append_batches(tmp_path / "missing.gpkg", "t", ArrowStream(3, [("v", b"l", boom)]))
    _gdal.append_batches(path, "t", ArrowStream(5, [("v", b"l", lambda a, b: (np.arange(a, b) * 2, None))]))
    with sqlite3.connect(path) as con:  # the first batch of the failed call, then the five rows
        assert [r[0] for r in con.execute("select v from t order by fid")] == [*range(10), 0, 2, 4, 6, 8]


def test_stored_tables_without_gdal_c_api_are_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where GDAL's C API cannot be reached (e.g. Windows), pyogrio writes the rows itself: the
    same stored tables and views as the ctypes path."""
    layers, kw = _layers_of(pipeline.demo_scenario_path())
    a = gpkg.write_layers(tmp_path / "a.gpkg", layers, spatial_index_skip=list(layers), **kw)
    monkeypatch.setattr(_gdal, "available", lambda: False)
    b = gpkg.write_layers(tmp_path / "b.gpkg", layers, spatial_index_skip=list(layers), **kw)
    for name in ("demand_cells__store", "uncovered__store"):
        assert _table(a, name, "cell") == _table(b, name, "cell")
    pd.testing.assert_frame_equal(pyogrio.read_dataframe(a, layer="demand_cells"),
                                  pyogrio.read_dataframe(b, layer="demand_cells"))


def test_compact_layer_without_crs(tmp_path: Path, recwarn) -> None:
    """No CRS: written as before (no CRS, no warning), values as given."""
    gdf = gpd.GeoDataFrame({"cell": [4, 2], "pop": [1.234, np.inf]}, geometry=gpd.points_from_xy([1, 2], [3, 4]))
    path = gpkg.write_layers(tmp_path / "n.gpkg", {"cells": gdf}, compact={"cells": {"pop": 2}}, keys={"cells": "cell"})
    back = pyogrio.read_dataframe(path, layer="cells").set_index("cell")
    assert back.crs is None and back.loc[4, "pop"] == pytest.approx(1.23) and np.isnan(back.loc[2, "pop"])
    assert not [w for w in recwarn if "crs" in str(w.message)]


# --- compact layers: stored tables as the row writer stored them, views as before -------------

def _reference_store(path: Path, name: str, gdf: gpd.GeoDataFrame, spec: dict, sides: dict | None,
                     rows_of: tuple | None, key: str) -> None:
    """The stored table as the previous (row-by-row) writer built it: scaled Int64, Int32 codes,
    urban/rural pairs sharing a column, shared columns left to the other layer."""
    geom = gdf.geometry.name
    shared = {c for c in gdf.columns if c in rows_of[1].columns and c not in ("urban", key)} | {geom} if rows_of else set()
    urban = gdf["urban"].to_numpy(dtype=float) == 1 if sides else None
    pairs = {}
    if sides:
        r_cols = [c for c in gdf.columns if sides.get(c) == "rural" and c in spec]
        for u in [c for c in gdf.columns if sides.get(c) == "urban" and c in spec]:
            r = next((x for x in r_cols if spec[x] == spec[u]), None)
            if r is not None:
                r_cols.remove(r)
                pairs[f"{u}__{r}"] = (u, r)
    paired = {c: k for k, (u, r) in pairs.items() for c in (u, r)}
    data = {}
    for c in gdf.columns:
        if c in shared or (c in paired and c != pairs[paired[c]][0]):
            continue
        col, values = paired.get(c, c), gdf[c]
        if c in paired:
            values = gdf[pairs[col][0]].where(urban, gdf[pairs[col][1]])
        if spec.get(c, 0) is None:
            codes, _ = pd.factorize(values, sort=True)
            data[col] = pd.array(np.where(codes < 0, 0, codes), dtype="Int32")
            data[col][codes < 0] = pd.NA
        elif c in spec:
            v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            ok = np.isfinite(v)
            scaled = np.zeros(len(v), dtype=np.int64)
            scaled[ok] = np.round(v[ok] * 10.0 ** spec[c])
            data[col] = pd.array(scaled, dtype="Int64")
            data[col][~ok] = pd.NA
        else:
            data[col] = values.to_numpy()
    if rows_of is None:
        data.pop(geom, None)
        frame = gpd.GeoDataFrame(data, geometry=gdf.geometry.array, crs=gdf.crs)
        pyogrio.write_dataframe(frame, path, layer=f"{name}__store", layer_options={"SPATIAL_INDEX": "NO", "FID": key})
    else:
        pyogrio.write_dataframe(pd.DataFrame(data), path, layer=f"{name}__store", layer_options={"FID": key})
    # the stored tables declare their key without AUTOINCREMENT (written once; SQLite skips the
    # sqlite_sequence update on every insert): the same table written again so
    with sqlite3.connect(path) as con:
        table = f"{name}__store"
        sql = con.execute("select sql from sqlite_master where name = ?", (table,)).fetchone()[0]
        assert "PRIMARY KEY AUTOINCREMENT" in sql  # as GDAL writes it
        con.execute(f'create table "plain" as select * from "{table}"')
        con.execute(f'drop table "{table}"')
        con.execute(sql.replace("PRIMARY KEY AUTOINCREMENT", "PRIMARY KEY"))
        con.execute(f'insert into "{table}" select * from "plain"')
        con.execute('drop table "plain"')


def _layers_of(scenario: Path) -> tuple[dict, dict]:
    """The two per-cell layers of a run and the write_layers settings, as pipeline.write_outputs makes them."""
    result = pipeline.evaluate_model(pipeline.build_model(pipeline.load_inputs(scenario)))
    preset = result.model.inputs.preset
    layers = {"demand_cells": pipeline.cells_layer(result),
              "uncovered": pipeline.uncovered_layer(result, pipeline.lacking(result))}
    metres = {r.column for r in [*preset.active_circles(), preset.urban_rural()] if r is not None and r.unit != "minutes"}
    kw = {"compact": {k: pipeline.compact_spec(layers[k], metres) for k in layers},
          "sides": {"demand_cells": pipeline.rule_sides(preset)}, "rows_of": {"uncovered": "demand_cells"},
          "keys": dict.fromkeys(layers, "cell")}
    return layers, kw


@pytest.fixture(scope="module", params=["demo", pytest.param("macau", marks=pytest.mark.slow)])
def run_layers(request, shared_data) -> tuple[dict, dict]:
    return _layers_of(pipeline.demo_scenario_path() if request.param == "demo" else MACAU)


def test_compact_stored_tables_as_the_row_writer_wrote_them(tmp_path: Path, run_layers) -> None:
    """Each stored table of a real run (definition and every row) equals the row writer's; the
    views read back with pyogrio equal the inputs rounded to the stated precision."""
    layers, kw = run_layers
    path = gpkg.write_layers(tmp_path / "layers.gpkg", layers, spatial_index_skip=list(layers), **kw)
    ref = tmp_path / "ref.gpkg"
    cells = gpkg.gpkg_ready(layers["demand_cells"])
    _reference_store(ref, "demand_cells", cells, kw["compact"]["demand_cells"], kw["sides"]["demand_cells"], None, "cell")
    _reference_store(ref, "uncovered", gpkg.gpkg_ready(layers["uncovered"]), kw["compact"]["uncovered"], None,
                     ("demand_cells", cells), "cell")
    for name in ("demand_cells__store", "uncovered__store"):
        got, want = _table(path, name, "cell"), _table(ref, name, "cell")
        assert got[0] == want[0]
        assert len(got[1]) == len(layers[name.split("__")[0]]) > 0
        assert got[1] == want[1], name
    back = pyogrio.read_dataframe(path, layer="demand_cells").set_index("cell").loc[layers["demand_cells"]["cell"]]
    src = layers["demand_cells"].set_index("cell")
    v = src["pop"].to_numpy(dtype=float)
    np.testing.assert_allclose(back["pop"].to_numpy(dtype=float), np.round(v * 100) / 100, atol=1e-9)
    assert back["unit_code"].tolist() == src["unit_code"].astype(str).tolist()
    assert np.array_equal(back.geometry.x.to_numpy(), src.geometry.x.to_numpy())
    with sqlite3.connect(path) as con:  # the views answer plain SQLite too (no GDAL)
        n_view = con.execute("select count(*), sum(pop is null) from demand_cells").fetchone()
        n_unc = con.execute("select count(*) from uncovered").fetchone()[0]
    assert n_view == (len(src), 0) and n_unc == len(layers["uncovered"])
    for lay in ("demand_cells", "uncovered", "value_codes"):
        assert len(pyogrio.read_dataframe(path, layer=lay)) > 0


def test_compact_polygons_and_missing_geometries_take_the_wkb_path(tmp_path: Path) -> None:
    """A compact layer of polygons with a missing and an empty geometry: same stored table as the
    row writer (not only points have a fast path)."""
    rng = np.random.default_rng(3)
    geoms = list(shapely.buffer(shapely.points(rng.random((6, 2)) * 1000), 10, quad_segs=2))
    geoms[2], geoms[4] = None, shapely.Polygon()
    gdf = gpd.GeoDataFrame({"cell": np.arange(6) * 3, "pop": rng.random(6) * 9, "unit_code": list("aabbcc"),
                            "urban": [1, 0, 1, 0, 1, 0]}, geometry=geoms, crs=4545)
    spec = {"pop": 2, "unit_code": None}
    path = gpkg.write_layers(tmp_path / "p.gpkg", {"cells": gdf}, compact={"cells": spec}, keys={"cells": "cell"})
    ref = tmp_path / "ref.gpkg"
    _reference_store(ref, "cells", gpkg.gpkg_ready(gdf), spec, None, None, "cell")
    assert _table(path, "cells__store", "cell") == _table(ref, "cells__store", "cell")
    back = pyogrio.read_dataframe(path, layer="cells")
    assert back.geometry.isna().sum() + back.geometry.is_empty.sum() == 2


@pytest.mark.parametrize("rows", [0, 57])
def test_plain_key_keeps_the_table_its_rows_and_triggers(tmp_path: Path, rows: int) -> None:
    """A stored table's key loses AUTOINCREMENT (SQLite then skips sqlite_sequence on every insert);
    columns, rows and triggers stay; GDAL still appends to it and reads it."""
    gdf = _random_frame(rows, 5) if rows else _random_frame(3, 5).iloc[:0]
    path = tmp_path / "k.gpkg"
    pyogrio.write_dataframe(gdf, path, layer="t", layer_options={"SPATIAL_INDEX": "NO"})
    before = _table(path, "t", "fid")
    with sqlite3.connect(path) as con:
        triggers = sorted(r[0] for r in con.execute("select sql from sqlite_master where type = 'trigger' and tbl_name = 't'"))
    assert "PRIMARY KEY AUTOINCREMENT" in before[0] and len(triggers) == 2
    gpkg._plain_key(path, "t")
    after = _table(path, "t", "fid")
    assert after[0] == before[0].replace("PRIMARY KEY AUTOINCREMENT", "PRIMARY KEY")
    assert after[1] == before[1]
    with sqlite3.connect(path) as con:
        assert sorted(r[0] for r in con.execute("select sql from sqlite_master where type = 'trigger' and tbl_name = 't'")) == triggers
        assert con.execute("select count(*) from sqlite_master where name = 't__with_rows'").fetchone()[0] == 0
    more = _random_frame(4, 6)
    pyogrio.write_dataframe(more, path, layer="t", append=True)
    back = pyogrio.read_dataframe(path, layer="t")
    assert len(back) == rows + 4
    assert pyogrio.read_info(path, layer="t")["features"] == rows + 4  # the count triggers still count
