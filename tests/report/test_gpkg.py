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
