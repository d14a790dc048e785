"""Snapping many points (demand cells in raster order) onto road segments: the compiled ring search
of :func:`coverage.access.snap` against plain brute force.

Two independent references:

* ``plain_nearest`` — numpy over *every* segment of the graph with the snapping formula written out
  (projection ``t`` clipped to [0, 1], Euclidean distance, the first of equally near segments), so
  ``seg``, ``t`` and ``leg_m`` must be bit-identical: the bucket grid, its pruning and the warm start
  from the previous point may change the work, never the answer;
* shapely's STRtree nearest search (GEOS distances), for the distance and the set of nearest roads.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

import reference as ref
from coverage import access, network, settings

HS = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def plain_nearest(px, py, x, y, a, b):
    """Brute force over all segments ``(a, b)``: ``(seg, t, dist)`` per point, ties to the lowest segment."""
    seg = np.full(len(px), -1, dtype=np.int64)
    tt = np.zeros(len(px))
    dd = np.full(len(px), np.inf)
    xa, ya = x[a], y[a]
    dx, dy = x[b] - xa, y[b] - ya
    l2 = dx * dx + dy * dy
    pos = l2 > 0.0
    for i in range(len(px)):
        if not (np.isfinite(px[i]) and np.isfinite(py[i])) or len(a) == 0:
            continue
        t = np.zeros(len(a))
        t[pos] = np.clip(((px[i] - xa[pos]) * dx[pos] + (py[i] - ya[pos]) * dy[pos]) / l2[pos], 0.0, 1.0)
        ux = px[i] - (xa + t * dx)
        uy = py[i] - (ya + t * dy)
        d = np.sqrt(ux * ux + uy * uy)
        k = int(np.argmin(d))  # the first of the minima
        seg[i], tt[i], dd[i] = k, t[k], d[k]
    return seg, tt, dd


def check_same(a, b):
    """Two Snapped of the same points are equal, array for array."""
    assert a.index.equals(b.index)
    for k in ("seg", "u", "v", "e_uv", "e_vu", "node", "t", "leg_m", "leg_min", "ok"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k


def check_arrays(g, s, qx, qy):
    """Every array of the Snapped equals the plain reference and the graph's own edges."""
    idx = network.segment_index(g)
    seg, t, d = plain_nearest(qx, qy, g.x, g.y, idx.a, idx.b)
    assert np.array_equal(s.seg, seg) and np.array_equal(s.t, t) and np.array_equal(s.leg_m, d)
    has = seg >= 0
    assert np.array_equal(s.u[has], idx.a[seg[has]]) and np.array_equal(s.v[has], idx.b[seg[has]])
    assert np.array_equal(s.e_uv[has], idx.e_ab[seg[has]]) and np.array_equal(s.e_vu[has], idx.e_ba[seg[has]])
    assert (s.u[~has] == 0).all() and (s.e_uv[~has] == -1).all() and np.isinf(s.leg_m[~has]).all()
    assert np.array_equal(s.node, np.where(t <= 0.5, s.u, s.v))
    assert np.array_equal(s.leg_min, d / settings.kmh_to_m_per_min(settings.SNAP_KMH))
    assert np.array_equal(s.ok, d <= settings.SNAP_MAX_M)
    for arr in (s.seg, s.u, s.v, s.e_uv, s.e_vu, s.node):
        assert arr.dtype == np.int32


@st.composite
def grid_problems(draw):
    """A random road graph (maybe with long roads and a far-away road, which coarsens the bucket
    grid) and demand points on a regular grid in raster order (rows north to south, west to east),
    plus a few points anywhere."""
    n = draw(st.integers(2, 20))
    # coordinates to the micrometre, as real ones are: GEOS (the second reference) measures a road
    # 1e-303 m long as if it were not there
    c = st.floats(0.0, 1000.0, allow_nan=False, allow_subnormal=False).map(lambda f: round(f, 6))
    xy = draw(st.lists(st.tuples(c, c), min_size=n, max_size=n))
    raw = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.booleans()), max_size=2 * n))
    far = draw(st.sampled_from([None, 3_000.0, 200_000.0]))
    if far is not None:  # a road far away: the grid's extent grows, its buckets get coarser
        xy = [*xy, (far, far), (far + 500.0, far)]
        raw = [*raw, (n, n + 1, True)]
        n += 2
    u = [p for p, q, both in raw] + [q for p, q, both in raw if both]
    v = [q for p, q, both in raw] + [p for p, q, both in raw if both]
    step = draw(st.sampled_from([7.0, 25.0, 100.0]))
    ox = draw(st.floats(-300.0, 300.0, allow_subnormal=False))
    oy = draw(st.floats(-300.0, 300.0, allow_subnormal=False))
    cols, rows = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    gx = ox + step * np.arange(cols)
    gy = oy + step * np.arange(rows)[::-1]
    pts = np.c_[np.tile(gx, rows), np.repeat(gy, cols)]
    extra = draw(st.lists(st.tuples(st.floats(-1500.0, 1500.0, allow_subnormal=False),
                                    st.floats(-1500.0, 1500.0, allow_subnormal=False)), max_size=5))
    if extra:
        pts = np.r_[pts, np.array(extra)]
    return xy, u, v, pts


@HS
@given(grid_problems())
def test_snap_of_grid_points_equals_plain_brute_force(p):
    xy, u, v, pts = p
    w = np.ones(len(u))
    g = network.from_edges([q[0] for q in xy], [q[1] for q in xy], u, v, w, w * 80.0, mode="drive",
                           crs="EPSG:32650", min_component_nodes=1)
    s = access.snap(g, gpd.GeoSeries(gpd.points_from_xy(pts[:, 0], pts[:, 1]), crs="EPSG:32650"))
    check_arrays(g, s, pts[:, 0], pts[:, 1])
    check_same(s, access.snap_xy(g, pts[:, 0], pts[:, 1]))  # coordinates instead of points: the same
    idx = network.segment_index(g)
    # the dense bucket grid stays linear in the index points
    assert idx.nx * idx.ny <= max(2 * len(idx.px), 1024) and len(idx.ptr) == idx.nx * idx.ny + 1
    assert idx.ptr[-1] == len(idx.order) == len(idx.px)
    # and the distances are those of shapely (GEOS) to the nearest road
    segs = [(int(a), int(b)) for a, b in zip(idx.a, idx.b)]
    for i in range(0, len(pts), max(1, len(pts) // 25)):
        dist, _ = ref.nearest_segment(pts[i, 0], pts[i, 1], g.x, g.y, segs)
        assert abs(s.leg_m[i] - dist) <= 1e-9 * max(1.0, dist)


def test_a_road_a_hairs_breadth_long_is_still_found():
    """Found by hypothesis: nodes 1e-303 m apart made buckets so small that a point 7 m away fell
    outside the bucket grid and got no road; the exact brute force is the reference."""
    x, y = np.array([0.0, 0.0]), np.array([0.0, 1.0622053606454688e-303])
    g = network.from_edges(x, y, [0], [1], np.ones(1), np.full(1, 80.0), mode="drive", crs="EPSG:32650",
                           min_component_nodes=1)
    pts = np.array([[0.0, 7.0], [0.0, 0.0], [900.0, -300.0]])
    s = access.snap(g, gpd.GeoSeries(gpd.points_from_xy(pts[:, 0], pts[:, 1]), crs="EPSG:32650"))
    check_arrays(g, s, pts[:, 0], pts[:, 1])
    assert s.leg_m[0] == 7.0


def test_missing_empty_and_other_geometries():
    x = np.array([0.0, 100.0, 100.0])
    y = np.array([0.0, 0.0, 100.0])
    g = network.from_edges(x, y, [0, 1, 1, 2], [1, 0, 2, 1], np.ones(4), np.full(4, 80.0), mode="walk",
                           crs="EPSG:32650", min_component_nodes=1)
    geoms = [shapely.Point(50, 10), None, shapely.Point(), shapely.LineString([(120, 20), (140, 20)]),
             shapely.Point(math.nan, 5.0), shapely.box(40, -30, 60, -10)]
    s = access.snap(g, gpd.GeoSeries(geoms, crs="EPSG:32650"))
    assert list(s.seg) == [0, -1, -1, 1, -1, 0]
    assert s.leg_m[0] == 10.0 and s.leg_m[3] == 20.0 and s.leg_m[5] == pytest.approx(20.0)
    assert np.isinf(s.leg_m[[1, 2, 4]]).all() and list(s.ok) == [True, False, False, True, False, True]
    assert list(s.node) == [0, 0, 0, 1, 0, 0] and list(s.e_uv[[1, 2, 4]]) == [-1, -1, -1]
    # points very far from the roads (outside the bucket grid, any side): found, exact, no huge scratch
    far = np.array([[1e12, 5.0], [-1e12, -3e11], [50.0, 4e9], [np.inf, 0.0], [50.0, -1e-3]])
    s = access.snap(g, gpd.GeoSeries(gpd.points_from_xy(far[:, 0], far[:, 1]), crs="EPSG:32650"))
    check_arrays(g, s, far[:, 0], far[:, 1])
    assert list(s.seg >= 0) == [True, True, True, False, True] and s.leg_m[4] == 1e-3


@pytest.mark.filterwarnings("ignore:edges.shp")  # the layer has no .prj: lon/lat, as the reader says
def test_snap_of_a_real_county_grid_equals_references(shared_data):
    """西乡县 roads (line layer): a 300 m grid of points in raster order over the whole county."""
    g = network.read_lines(shared_data / "shaanxi_xixiang" / "road_network_pred_2021" / "edges.shp", mode="drive",
                           crs="EPSG:4545")
    idx = network.segment_index(g)
    gx = np.arange(g.x.min() - 1000.0, g.x.max() + 1000.0, 300.0)
    gy = np.arange(g.y.max() + 1000.0, g.y.min() - 1000.0, -300.0)
    qx, qy = np.tile(gx, len(gy)), np.repeat(gy, len(gx))
    assert len(qx) > 60_000  # several threads
    s = access.snap(g, gpd.GeoSeries(gpd.points_from_xy(qx, qy), crs=g.crs))
    check_same(s, access.snap_xy(g, qx, qy))  # coordinates instead of points: the same
    # one thread gives the same arrays
    one = access._snap_xy(g, qx, qy, settings.SNAP_MAX_M, n_threads=1)
    for k, arr in one.items():
        assert np.array_equal(getattr(s, k), arr), k
    # GEOS: the distance to the nearest road, and the chosen road is one of the nearest
    lines = shapely.linestrings(np.stack([np.c_[g.x[idx.a], g.y[idx.a]], np.c_[g.x[idx.b], g.y[idx.b]]], 1))
    (pi, si), dist = shapely.STRtree(lines).query_nearest(shapely.points(qx, qy), all_matches=True,
                                                           return_distance=True)
    best = np.full(len(qx), np.inf)
    np.minimum.at(best, pi, dist)
    assert np.allclose(s.leg_m, best, rtol=1e-9, atol=1e-9)
    mine = shapely.distance(lines[s.seg], shapely.points(qx, qy))
    assert np.allclose(mine, best, rtol=1e-9, atol=1e-9)
    # every array bit for bit against the plain formula, on a sample of rows (raster order kept)
    rows = np.sort(np.random.default_rng(3).choice(len(qx), 1500, replace=False))
    sub = access.snap(g, gpd.GeoSeries(gpd.points_from_xy(qx[rows], qy[rows]), crs=g.crs))
    check_arrays(g, sub, qx[rows], qy[rows])
    for k in one:
        assert np.array_equal(getattr(sub, k), one[k][rows]), k


def test_snap_xy_index_and_bad_shapes():
    x = np.array([0.0, 100.0])
    g = network.from_edges(x, np.zeros(2), [0, 1], [1, 0], np.ones(2), np.full(2, 80.0), mode="walk",
                           crs="EPSG:32650", min_component_nodes=1)
    s = access.snap_xy(g, [50.0, np.nan], [5.0, 0.0], index=pd.Index(["a", "b"]))
    assert list(s.index) == ["a", "b"] and list(s.ok) == [True, False] and s.leg_m[0] == 5.0
    assert access.snap_xy(g, [50.0], [5.0], max_leg_m=4.0).ok.tolist() == [False]
    with pytest.raises(ValueError, match="two 1-d arrays"):
        access.snap_xy(g, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="index has 1 labels for 2 points"):
        access.snap_xy(g, [1.0, 2.0], [1.0, 2.0], index=[7])
