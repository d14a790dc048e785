"""Tests of ``coverage.report.gpkg``: one GeoPackage with every layer, read back with pyogrio.

Township polygons are real (延庆区, ``shared/data``); all attribute figures are MADE-UP TEST DATA.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from coverage.errors import InputError
from coverage.report.gpkg import gpkg_ready, write_layers


@pytest.fixture(scope="module")
def units(shared_data: Path) -> gpd.GeoDataFrame:
    """Five real 延庆区 townships with made-up coverage figures (test data)."""
    g = gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson")
    g = g.sort_values("code").head(5).reset_index(drop=True)
    out = gpd.GeoDataFrame(
        {"code": g["code"].astype(str), "name": g["Name"], "kind": ["街道", "街道", "街道", "镇", "镇"],
         "share_school": [0.9, 0.8, 1.0, 0.5, 0.25]},
        geometry=g.geometry, crs=g.crs,
    ).to_crs(4547)  # CGCS2000 3-degree GK zone 39 (metric), as the pipeline uses
    return out


@pytest.fixture()
def layers(units: gpd.GeoDataFrame) -> dict[str, gpd.GeoDataFrame]:
    pts = units.geometry.representative_point()
    demand = gpd.GeoDataFrame(
        {"cell": np.arange(5), "pop": [120.5, 80.0, 0.5, 300.0, 42.0],
         "unit_name": units["name"], "urban": [True, True, False, False, True],
         "t_school_walk15": [3.5, np.inf, 12.0, np.inf, 0.0],
         "t_clinic_walk15": [np.nan, 1.0, -np.inf, 2.0, 3.0]},
        geometry=pts, crs=units.crs,
    )
    facilities = gpd.GeoDataFrame(
        {"fid": ["F1", "F2"], "name": ["香营乡中心小学(测试)", "某村卫生室(测试)"],
         "category": ["school", "clinic"], "capacity": [360.0, np.nan]},
        geometry=[pts.iloc[0], pts.iloc[3]], crs=units.crs,
    )
    gaps = gpd.GeoDataFrame(
        {"project_name": ["测试项目甲", "测试项目乙"], "rule_ids": [["a", "b"], []],
         "detail": [{"人口": 10, "ok": True}, None], "flag": pd.Series([True, None], dtype=object)},
        geometry=[pts.iloc[1], None], crs=units.crs,
    )
    table = pd.DataFrame({"service": ["school", "clinic"], "share": [0.5, 0.75]})
    return {"demand": demand, "facilities": facilities, "units": units, "gaps": gaps,
            "coverage_table": table}


def test_roundtrip_layers_rows_text_and_null(tmp_path: Path, layers) -> None:
    path = write_layers(tmp_path / "layers.gpkg", layers)
    assert path == tmp_path / "layers.gpkg"
    listed = {name: gtype for name, gtype in pyogrio.list_layers(path)}
    assert set(listed) == set(layers)
    assert listed["units"] == "MultiPolygon"
    assert listed["demand"] == "Point"
    for name, df in layers.items():
        back = pyogrio.read_dataframe(path, layer=name)
        assert len(back) == len(df), name

    units = pyogrio.read_dataframe(path, layer="units")
    assert list(units["name"]) == list(layers["units"]["name"])  # Chinese preserved
    assert list(units["kind"]) == ["街道", "街道", "街道", "镇", "镇"]
    assert units.crs.to_epsg() == 4547
    assert units.geometry.area.sum() == pytest.approx(layers["units"].geometry.area.sum(), rel=1e-9)

    demand = pyogrio.read_dataframe(path, layer="demand")
    t = demand["t_school_walk15"].to_numpy(dtype=float)
    # inf is stored as NULL (read back as NaN); finite values unchanged
    np.testing.assert_array_equal(np.isnan(t), [False, True, False, True, False])
    np.testing.assert_allclose(t[[0, 2, 4]], [3.5, 12.0, 0.0])
    c = demand["t_clinic_walk15"].to_numpy(dtype=float)
    np.testing.assert_array_equal(np.isnan(c), [True, False, True, False, False])
    assert list(demand["urban"]) == [1, 1, 0, 0, 1]

    fac = pyogrio.read_dataframe(path, layer="facilities")
    assert list(fac["fid"]) == ["F1", "F2"]  # text facility ids survive GeoPackage's own "fid"
    assert list(fac["name"]) == ["香营乡中心小学(测试)", "某村卫生室(测试)"]

    gaps = pyogrio.read_dataframe(path, layer="gaps")
    assert list(gaps["project_name"]) == ["测试项目甲", "测试项目乙"]
    assert [json.loads(v) for v in gaps["rule_ids"]] == [["a", "b"], []]
    assert json.loads(gaps["detail"].iloc[0]) == {"人口": 10, "ok": True}
    assert "人口" in gaps["detail"].iloc[0]  # not \\u-escaped
    assert pd.isna(gaps["detail"].iloc[1])
    assert gaps["flag"].iloc[0] == 1 and pd.isna(gaps["flag"].iloc[1])
    assert gaps.geometry.iloc[1] is None

    table = pyogrio.read_dataframe(path, layer="coverage_table", read_geometry=False)
    assert list(table["share"]) == [0.5, 0.75]


def test_inputs_not_modified(tmp_path: Path, layers) -> None:
    before = layers["demand"].copy()
    write_layers(tmp_path / "l.gpkg", layers)
    pd.testing.assert_frame_equal(layers["demand"], before)
    assert np.isinf(layers["demand"]["t_school_walk15"]).sum() == 2


def test_replaces_existing_file_atomically(tmp_path: Path, layers) -> None:
    target = tmp_path / "layers.gpkg"
    write_layers(target, {"old_layer": layers["facilities"]})
    write_layers(target, {"units": layers["units"]})
    assert [n for n, _ in pyogrio.list_layers(target)] == ["units"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.gpkg"]


def test_failure_leaves_no_partial_file(tmp_path: Path, layers, monkeypatch) -> None:
    target = tmp_path / "layers.gpkg"
    calls = []
    real = pyogrio.write_dataframe

    def flaky(df, path, **kw):  # noqa: ANN001
        calls.append(kw["layer"])
        if len(calls) == 2:
            raise RuntimeError("simulated failure")
        return real(df, path, **kw)

    monkeypatch.setattr(pyogrio, "write_dataframe", flaky)
    with pytest.raises(RuntimeError):
        write_layers(target, layers)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["需求", "1demand", "demand cells", "", "a" * 64])
def test_rejects_bad_layer_names(tmp_path: Path, layers, name: str) -> None:
    with pytest.raises(InputError):
        write_layers(tmp_path / "l.gpkg", {name: layers["units"]})
    assert not any(tmp_path.iterdir())


def test_rejects_duplicates_and_empty(tmp_path: Path, layers) -> None:
    with pytest.raises(InputError):
        write_layers(tmp_path / "l.gpkg", {"units": layers["units"], "UNITS": layers["units"]})
    with pytest.raises(InputError):
        write_layers(tmp_path / "l.gpkg", {})
    df = pd.DataFrame({"a": [1], "A": [2]})
    with pytest.raises(InputError):
        write_layers(tmp_path / "l.gpkg", {"t": df})


def test_empty_layer(tmp_path: Path, layers) -> None:
    empty = layers["facilities"].iloc[:0]
    path = write_layers(tmp_path / "l.gpkg", {"candidates": empty, "units": layers["units"]})
    assert len(pyogrio.read_dataframe(path, layer="candidates")) == 0
    assert len(pyogrio.read_dataframe(path, layer="units")) == 5


def test_gpkg_ready_conversions() -> None:
    g = gpd.GeoDataFrame(
        {"b": [True, False], "i": np.array([1, 2], dtype=np.uint64), "cat": pd.Categorical(["甲", None]),
         "mixed": [1, "x"], "g2": gpd.GeoSeries([Point(0, 0), None])},
        geometry=[Point(0, 0), Point(1, 1)], crs=4547,
    )
    g.index = pd.Index([10, 11], name="cell")
    out = gpkg_ready(g)
    assert list(out["cell"]) == [10, 11]  # a named index becomes a column
    assert list(out["b"]) == [1, 0]
    assert out["i"].dtype == np.int64
    assert out["cat"].iloc[0] == "甲" and pd.isna(out["cat"].iloc[1])
    assert list(out["mixed"]) == ["1", "x"]
    assert out["g2"].iloc[0] == "POINT (0 0)" and out["g2"].iloc[1] is None


def test_spatial_index_skipped_for_named_layers(tmp_path: Path, layers) -> None:
    import sqlite3

    path = write_layers(tmp_path / "l.gpkg", {"units": layers["units"], "facilities": layers["facilities"]},
                        spatial_index_skip=("facilities",))
    with sqlite3.connect(path) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert any(t.startswith("rtree_units") for t in tables)
    assert not any(t.startswith("rtree_facilities") for t in tables)
    assert len(pyogrio.read_dataframe(path, layer="facilities")) == len(layers["facilities"])


# --- compact per-cell layers (write_compact): checked against a plain rounding of the inputs ----

def _expected(v: np.ndarray, decimals: int) -> np.ndarray:
    """What a compact numeric column should read back as: rounded, NULL (NaN) where not finite."""
    out = np.full(len(v), np.nan)
    ok = np.isfinite(v)
    out[ok] = np.round(v[ok] * 10.0**decimals) / 10.0**decimals
    return out


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_compact_layers_read_back_as_written(tmp_path_factory, data) -> None:
    """Random cells with people, times (±inf, NaN), ids and urban/rural rules: the views show the
    same columns in the same order, values rounded to the stated precision, NULL where a side's
    rule does not apply, and the subset layer joined on ``cell`` has the cells' points and codes."""
    n = data.draw(st.integers(1, 40))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    cell = rng.choice(10_000, n, replace=False)
    urban = rng.random(n) < 0.4
    people = np.round(rng.gamma(0.5, 30.0, n), 4)
    t_u = np.where(rng.random(n) < 0.3, np.inf, rng.random(n) * 30)
    t_r = np.where(rng.random(n) < 0.3, np.nan, rng.random(n) * 30)
    ids = np.array(["F1", "卫生院'A", None, "F-2"], dtype=object)
    f_u, f_r = ids[rng.integers(0, 4, n)], ids[rng.integers(0, 4, n)]
    units = np.array(["610724001", "610724002"], dtype=object)[rng.integers(0, 2, n)]
    pts = gpd.points_from_xy(rng.random(n) * 1e4, rng.random(n) * 1e4)
    cells = gpd.GeoDataFrame({"cell": cell, "pop": people, "unit_code": units, "urban": urban.astype(int),
                              "t_a_urban": t_u, "f_a_urban": f_u, "t_a_rural": t_r, "f_a_rural": f_r},
                             geometry=pts, crs=4545)
    sub = rng.random(n) < 0.5
    unc = gpd.GeoDataFrame({"cell": cell[sub], "unit_code": units[sub], "short": people[sub] / 3},
                           geometry=pts[sub], crs=4545)
    spec = {"pop": 2, "unit_code": None, "t_a_urban": 1, "f_a_urban": None, "t_a_rural": 1, "f_a_rural": None}
    sides = {"t_a_urban": "urban", "f_a_urban": "urban", "t_a_rural": "rural", "f_a_rural": "rural"}
    path = tmp_path_factory.mktemp("compact") / "c.gpkg"
    write_layers(path, {"demand_cells": cells, "uncovered": unc},
                 compact={"demand_cells": spec, "uncovered": {"unit_code": None, "short": 2}},
                 sides={"demand_cells": sides}, rows_of={"uncovered": "demand_cells"},
                 keys={"demand_cells": "cell", "uncovered": "cell"})
    assert sorted(n for n, _ in pyogrio.list_layers(path)) == ["demand_cells", "uncovered", "value_codes"]
    back = pyogrio.read_dataframe(path, layer="demand_cells").set_index("cell").loc[cell]
    assert list(back.columns) == [c for c in cells.columns if c != "cell"]
    np.testing.assert_allclose(back["pop"], _expected(people, 2), atol=1e-9)
    np.testing.assert_allclose(back["t_a_urban"], np.where(urban, _expected(t_u, 1), np.nan), atol=1e-9)
    np.testing.assert_allclose(back["t_a_rural"], np.where(~urban, _expected(t_r, 1), np.nan), atol=1e-9)
    for col, side in (("f_a_urban", urban), ("f_a_rural", ~urban)):
        want = [v if s and not pd.isna(v) else None for v, s in zip(cells[col], side)]
        assert [None if pd.isna(v) else v for v in back[col]] == want
    assert back["unit_code"].tolist() == units.tolist()
    assert np.allclose(back.geometry.x, cells.geometry.x) and np.allclose(back.geometry.y, cells.geometry.y)
    u = pyogrio.read_dataframe(path, layer="uncovered").set_index("cell").loc[cell[sub]]
    assert u["unit_code"].tolist() == units[sub].tolist()
    np.testing.assert_allclose(u["short"], _expected(people[sub] / 3, 2), atol=1e-9)
    assert np.allclose(u.geometry.x, cells.geometry.x[sub])
    assert u.crs == cells.crs


# --- points on a lattice (write_layers(lattices=...)): built by the view, the same bytes ----------

@settings(max_examples=20, deadline=None)
@given(st.data())
def test_lattice_points_read_back_bit_for_bit(tmp_path_factory, data) -> None:
    """Random north-up grids (any origin, cell size and sign of the y step) and random populated
    cells: the view builds each point from the lattice table with exactly the bytes the point has
    when it is stored, for the cell layer and for the subset layer joined to it; the extent is the
    cells', and neither the stored nor the lattice table is listed as a layer."""
    import shapely

    from coverage.io.population import grid_xy
    from coverage.report.gpkg import Lattice

    nrows, ncols = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    res = float(data.draw(st.sampled_from([100.0, 30.0, 0.000833333333333, 1000.0 / 3])))
    dy = -res if data.draw(st.booleans()) else res
    x0, y0 = rng.uniform(-2e5, 6e5), rng.uniform(-1e6, 4e6)
    from affine import Affine
    t = Affine(res, 0.0, x0, 0.0, dy, y0)
    n = data.draw(st.integers(1, nrows * ncols))
    cell = np.sort(rng.choice(nrows * ncols, n, replace=False)).astype(np.int64)
    x, y = grid_xy(t, cell % ncols + 0.5, cell // ncols + 0.5)
    cells = gpd.GeoDataFrame({"cell": cell, "pop": rng.random(n) * 50, "urban": rng.integers(0, 2, n)},
                             geometry=gpd.points_from_xy(x, y), crs=4545)
    sub = rng.random(n) < 0.5
    unc = gpd.GeoDataFrame({"cell": cell[sub], "short": rng.random(int(sub.sum()))}, geometry=cells.geometry.array[sub],
                           crs=4545)
    lat = Lattice(np.asarray(grid_xy(t, np.arange(ncols) + 0.5, np.zeros(ncols))[0]),
                  np.asarray(grid_xy(t, np.zeros(nrows), np.arange(nrows) + 0.5)[1]))
    assert lat.fits(cell, cells.geometry.array)
    path = tmp_path_factory.mktemp("lattice") / "l.gpkg"
    write_layers(path, {"demand_cells": cells, "uncovered": unc}, compact={"demand_cells": {"pop": 2}, "uncovered": {"short": 2}},
                 rows_of={"uncovered": "demand_cells"}, keys={"demand_cells": "cell", "uncovered": "cell"},
                 lattices={"demand_cells": lat})
    assert sorted(n for n, _ in pyogrio.list_layers(path)) == ["demand_cells", "uncovered", "value_codes"]
    import sqlite3
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        stored = [r[1] for r in con.execute('PRAGMA table_info("demand_cells__store")')]
        box = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = 'demand_cells'").fetchone()
    finally:
        con.close()
    assert "demand_cells__lattice" in tables and "geom" not in stored  # the points are not stored
    assert box == (x.min(), y.min(), x.max(), y.max())
    back = pyogrio.read_dataframe(path, layer="demand_cells")
    assert back["cell"].tolist() == cell.tolist()
    assert shapely.to_wkb(back.geometry.array).tolist() == shapely.to_wkb(cells.geometry.array).tolist()
    u = pyogrio.read_dataframe(path, layer="uncovered")
    assert u["cell"].tolist() == cell[sub].tolist()
    assert shapely.to_wkb(u.geometry.array).tolist() == shapely.to_wkb(unc.geometry.array).tolist()
    assert back.crs == cells.crs == u.crs


def test_points_off_the_lattice_are_stored(tmp_path) -> None:
    """One point a hair off its cell centre: the lattice does not fit, so every point is stored
    (and read back exactly); a rotated grid has no lattice at all."""
    import shapely
    from affine import Affine

    from coverage.io.population import PopulationGrid
    from coverage.report.gpkg import Lattice

    lat = Lattice(np.array([50.0, 150.0, 250.0]), np.array([950.0, 850.0]))
    cell = np.array([0, 2, 4])
    x = np.array([50.0, 250.0, np.nextafter(150.0, 200.0)])
    y = np.array([950.0, 950.0, 850.0])
    cells = gpd.GeoDataFrame({"cell": cell, "pop": [1.0, 2.0, 3.0]}, geometry=gpd.points_from_xy(x, y), crs=4545)
    assert not lat.fits(cell, cells.geometry.array)
    assert lat.fits(cell[:2], cells.geometry.array[:2])
    path = tmp_path / "off.gpkg"
    write_layers(path, {"demand_cells": cells}, compact={"demand_cells": {"pop": 2}}, keys={"demand_cells": "cell"},
                 lattices={"demand_cells": lat})
    back = pyogrio.read_dataframe(path, layer="demand_cells")
    assert shapely.to_wkb(back.geometry.array).tolist() == shapely.to_wkb(cells.geometry.array).tolist()
    import sqlite3
    con = sqlite3.connect(path)
    try:
        assert not con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'demand_cells__lattice'").fetchone()[0]
    finally:
        con.close()
    grid = PopulationGrid(total=np.ones((2, 3)), groups={}, transform=Affine(100, 0, 0, 0, -100, 1000), crs=None)
    ax = grid.axes()
    assert ax is not None and ax[0].tolist() == [50.0, 150.0, 250.0] and ax[1].tolist() == [950.0, 850.0]
    rotated = PopulationGrid(total=np.ones((2, 3)), groups={}, transform=Affine(100, 5, 0, 5, -100, 1000), crs=None)
    assert rotated.axes() is None


@pytest.mark.parametrize("crs", [4326, None])  # the raster's own grid; warped to the metric CRS
def test_lattice_of_a_worldpop_grid(shared_data, tmp_path, crs) -> None:
    """Macau's WorldPop raster: the demand cells' points are their grid's lattice points bit for bit,
    so layers.gpkg builds them; they read back as the points the cells have."""
    import shapely

    from coverage import demand
    from coverage.io.population import read_population
    from coverage.report.gpkg import Lattice

    g = read_population(shared_data / "macau" / "worldpop" / "mac_pd_2020_1km.tif", target_crs=crs)
    cells = demand.cells(g)
    axes = g.axes()
    assert axes is not None and Lattice(*axes).fits(cells["cell"].to_numpy(), cells.geometry.array)
    path = tmp_path / "macau.gpkg"
    layer = cells[["cell", "pop", "geometry"]]
    write_layers(path, {"demand_cells": layer}, compact={"demand_cells": {"pop": 2}}, keys={"demand_cells": "cell"},
                 lattices={"demand_cells": Lattice(*axes)})
    back = pyogrio.read_dataframe(path, layer="demand_cells")
    assert len(back) == len(cells) > 10
    assert shapely.to_wkb(back.geometry.array).tolist() == shapely.to_wkb(cells.geometry.array).tolist()
    assert back.crs == cells.crs


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_text_codes_match_pandas_factorize(data) -> None:
    """The compact writer's codes of a text column (plain or categorical, alone or an urban/rural
    pair) are those of ``pd.factorize(sort=True)`` on the column as text, with the same values."""
    from coverage.report.gpkg import _factorize

    words = ["卫生院", "F1", "F10", "F2", "b", "A", "村卫生室'3"]
    n = data.draw(st.integers(0, 30))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))

    def column() -> pd.Series:
        v = np.array(words + [None], dtype=object)[rng.integers(0, len(words) + 1, n)]
        s = pd.Series(v, dtype=object)
        kind = data.draw(st.sampled_from(["object", "category", "category+unused"]))
        if kind == "category":
            return s.astype("category")
        if kind == "category+unused":
            return pd.Series(pd.Categorical(v, categories=rng.permutation(words)))
        return s

    a, b = column(), column()
    urban = rng.random(n) < 0.5
    for sources, mask, text in (([a], None, a.astype(object)),
                                ([a, b], urban, a.astype(object).where(urban, b.astype(object)))):
        want_codes, want_values = pd.factorize(text, sort=True)
        codes, values = _factorize(sources, mask)
        assert codes.dtype == np.int32
        assert codes.tolist() == want_codes.tolist()
        assert [str(v) for v in values] == [str(v) for v in want_values]
