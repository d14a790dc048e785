"""Tests of the demand cells: totals kept, units and the urban flag against a per-cell reference."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS
from shapely.geometry import Point, Polygon, box

from coverage.demand import cells
from coverage.io.population import PopulationGrid

CRS_M = CRS.from_epsg(4545)


def _grid(total, **groups):
    return PopulationGrid(total=np.asarray(total, float), groups={k: np.asarray(v, float) for k, v in groups.items()},
                          transform=Affine(100, 0, 0, 0, -100, 1000), crs=CRS_M)


UNITS = gpd.GeoDataFrame(
    {"code": ["J1", "Z1", "X1"], "name": ["城关街道", "柳湖镇", "石门乡"], "kind": ["街道", "镇", "乡"]},
    geometry=[box(0, 500, 400, 1000), box(400, 500, 1000, 1000), Polygon([(0, 0), (700, 0), (0, 500)])],
    crs=CRS_M,
)


def _reference(total, units, urban_poly):
    """Plain per-cell loop with shapely: the rule of coverage.demand written out."""
    rows = []
    for r in range(total.shape[0]):
        for c in range(total.shape[1]):
            if total[r, c] <= 0:
                continue
            pt = Point(c * 100 + 50, 1000 - r * 100 - 50)
            code, name, urban = "", "", False
            for u in units.itertuples():
                if u.geometry.contains(pt):
                    code, name, urban = u.code, u.name, u.kind == "街道"
                    break
            if urban_poly is not None and urban_poly.contains(pt):
                urban = True
            rows.append((r * total.shape[1] + c, code, name, urban, total[r, c]))
    return rows


def test_cells_against_reference():
    rng = np.random.default_rng(0)
    total = rng.integers(0, 4, (10, 10)).astype(float)
    old = total * 0.2
    urban = gpd.GeoDataFrame(geometry=[box(350, 450, 650, 750)], crs=CRS_M)
    d = cells(_grid(total, age60plus=old), UNITS, urban)
    assert list(d.columns) == ["cell", "row", "col", "pop", "age60plus", "unit_code", "unit_name", "urban", "geometry"]
    ref = _reference(total, UNITS, urban.geometry.iloc[0])
    assert d["cell"].tolist() == [r[0] for r in ref]
    assert d["unit_code"].tolist() == [r[1] for r in ref]
    assert d["unit_name"].tolist() == [r[2] for r in ref]
    assert d["urban"].tolist() == [r[3] for r in ref]
    assert d["pop"].sum() == total.sum() and d["age60plus"].sum() == pytest.approx(old.sum())
    assert (d["row"] * 10 + d["col"] == d["cell"]).all()
    # cells in the uncovered corner have no unit but still count
    assert (d["unit_code"] == "").any()
    # categorical, with exactly the (sorted) texts the cells have
    for col in ("unit_code", "unit_name"):
        assert isinstance(d[col].dtype, pd.CategoricalDtype)
        assert d[col].cat.categories.tolist() == sorted({r[1 if col == "unit_code" else 2] for r in ref})
    assert d.crs == CRS_M


def test_cells_without_units():
    d = cells(_grid([[0, 1], [2, 0]]))
    assert d["cell"].tolist() == [1, 2]
    assert d["unit_code"].tolist() == ["", ""] and not d["urban"].any()
    assert d.geometry.x.tolist() == [150, 50] and d.geometry.y.tolist() == [950, 850]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1000, allow_nan=False), min_size=100, max_size=100))
def test_totals_preserved(values):
    total = np.array(values).reshape(10, 10)
    d = cells(_grid(total, age0_2=total / 10), UNITS)
    assert d["pop"].sum() == pytest.approx(total.sum())
    assert d["age0_2"].sum() == pytest.approx(total.sum() / 10)
    assert (d["pop"] > 0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(0, 300))
def test_point_in_unit_equals_shapely_within(seed, n_polys, n_pts):
    """The bounding-box + contains_xy test of demand cells equals shapely's ``within`` on a tree, boundary points included."""
    import shapely

    from coverage.demand import _contains

    rng = np.random.default_rng(seed)
    polys = []
    for _ in range(n_polys):
        cx, cy = rng.integers(0, 10, 2)
        w, h = rng.integers(1, 5, 2)
        box = shapely.box(cx, cy, cx + w, cy + h)
        polys.append(box if rng.random() < 0.5 else shapely.buffer(box, float(rng.random()), quad_segs=2))
    polys = np.array(polys, dtype=object)
    x = rng.integers(-1, 15, n_pts).astype(float)  # on the integer lattice: many points on edges
    y = rng.integers(-1, 15, n_pts).astype(float)
    got = set(zip(*(a.tolist() for a in _contains(polys, x, y))))
    want = set(zip(*(a.tolist() for a in shapely.STRtree(polys).query(shapely.points(x, y), predicate="within"))))
    assert got == want


def test_point_xy_as_geopandas_gives_them():
    """demand.point_xy (shapely's coordinates in one call) equals GeoSeries.x/.y, also with a
    missing and an empty point among them (NaN in their rows)."""
    import shapely

    from coverage.demand import point_xy

    rng = np.random.default_rng(4)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(rng.uniform(0, 1e6, 50), rng.uniform(3e6, 4e6, 50)), crs=32650)
    for frame in (pts, pts.set_geometry(list(pts.geometry[:10]) + [None, shapely.Point()] + list(pts.geometry[12:]))):
        x, y = point_xy(frame)
        np.testing.assert_array_equal(x, frame.geometry.x.to_numpy())
        np.testing.assert_array_equal(y, frame.geometry.y.to_numpy())
