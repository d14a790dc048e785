"""The compiled grid method of the service circles against independent references.

* the outline tracer against GDAL's polygonizer (``rasterio.features.shapes``), vertex for vertex;
* the hole filling against ``scipy.ndimage.label``;
* the disk dilation against ``scipy.ndimage.distance_transform_edt``;
* the windowed grid method against the whole-grid method built from scipy and rasterio alone
  (distance transform, label, shapes), on random graphs, on nested circles, on the demo county
  and on Macau's real roads;
* the grid method against the exact buffers on real roads (the documented tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import shapes
from rasterio.transform import from_origin
from scipy.ndimage import distance_transform_edt, label
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import MultiPolygon, Polygon, shape

from coverage import network
from coverage.report import _raster
from coverage.report.circles import _disk_widths, _outline, _raster_area, reached_area, reached_edges

ROOT = Path(__file__).resolve().parents[2]


def _reference_area(coords, u, v, lonely, buffer_m, fill_holes_m2):
    """The grid method on one grid over everything, from numpy, scipy and rasterio alone."""
    cell = buffer_m / 4.0
    a, b = coords[u], coords[v]
    n = np.maximum(np.ceil(np.hypot(*(b - a).T) / (cell / 2.0)).astype(np.int64), 1) + 1
    seg = np.repeat(np.arange(len(u)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n - 1, n)
    pts = np.concatenate([a[seg] + (b - a)[seg] * t[:, None], coords[lonely]])
    pad = buffer_m + 2 * cell
    x0, y1 = pts[:, 0].min() - pad, pts[:, 1].max() + pad
    ncol = int(np.ceil((pts[:, 0].max() + pad - x0) / cell))
    nrow = int(np.ceil((y1 - (pts[:, 1].min() - pad)) / cell))
    road = np.zeros((nrow, ncol), dtype=bool)
    road[((y1 - pts[:, 1]) / cell).astype(np.int64), ((pts[:, 0] - x0) / cell).astype(np.int64)] = True
    near = distance_transform_edt(~road) <= (buffer_m - cell / 8.0) / cell
    if fill_holes_m2 > 0:
        holes, _ = label(~near, structure=np.ones((3, 3), dtype=bool))
        small = np.bincount(holes.ravel()) * cell * cell < fill_holes_m2
        small[0] = False
        small[np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]])] = False
        near |= small[holes]
    polys = [shape(g) for g, val in shapes(near.view(np.uint8), mask=near, transform=from_origin(x0, y1, cell, cell))
             if val == 1]
    return MultiPolygon(polys) if polys else Polygon()


def _same(got, ref) -> None:
    """The same polygons (normalised: the order of parts does not matter), every vertex within a micrometre."""
    assert got.is_valid
    assert shapely.equals_exact(shapely.normalize(shapely.MultiPolygon(list(shapely.get_parts(got)))),
                                shapely.normalize(ref), 1e-6)


def _csr(n, a, b):
    m = csr_matrix((np.ones(2 * len(a)), (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    m.sum_duplicates()
    return m.indptr, m.indices


def _edges_and_lonely(indptr, indices, reached):
    u, v = reached_edges(indptr, indices, reached)
    lonely = reached.copy()
    lonely[u] = False
    lonely[v] = False
    return u, v, lonely


# ----------------------------------------------------------------------------- outline tracer


def _rings_rasterio(mask):
    return sorted([[[tuple(map(float, p)) for p in r] for r in g["coordinates"]]
                   for g, _ in shapes(mask.view(np.uint8), mask=mask, transform=from_origin(0, 0, 1, 1))])


def _rings_traced(mask):
    return sorted([[list(p.exterior.coords)] + [list(r.coords) for r in p.interiors] for p in _outline(mask, 0.0, 0.0, 1.0)])


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 40), cols=st.integers(1, 40),
       density=st.floats(0.05, 0.95), border=st.booleans())
def test_outline_equals_gdal_polygonize(seed, rows, cols, density, border):
    """Same rings, same vertices, same order and start as GDAL (saddles, holes, islands in holes)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    if not border:
        mask = np.pad(mask, 1)
    assert _rings_traced(mask) == _rings_rasterio(mask)
    for p in _outline(mask, 0.0, 0.0, 1.0):
        assert p.is_valid


def test_outline_nested_islands_and_diagonal_corners():
    m = np.zeros((13, 13), dtype=bool)
    m[1:12, 1:12] = True
    m[3:10, 3:10] = False  # a hole …
    m[5:8, 5:8] = True  # … with an island
    m[6, 6] = False  # … with its own hole
    m[2, 2] = False  # a one-cell hole touching nothing
    m[10, 10] = False
    m[11, 11] = False  # the outside meets the hole (10, 10) at a corner: a hole touching its shell
    polys = _outline(m, 0.0, 0.0, 1.0)
    assert _rings_traced(m) == _rings_rasterio(m)
    assert all(p.is_valid for p in polys)
    assert sorted(len(p.interiors) for p in polys) == [1, 3]
    assert sum(p.area for p in polys) == m.sum()


# ----------------------------------------------------------------------------- hole filling


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(3, 60), cols=st.integers(3, 60),
       density=st.floats(0.2, 0.9), max_cells=st.integers(1, 40))
def test_fill_holes_equals_scipy_label(seed, rows, cols, density, max_cells):
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    holes, _ = label(~mask, structure=np.ones((3, 3), dtype=bool))
    small = np.bincount(holes.ravel()) * 30.0 * 30.0 < max_cells * 900.0
    small[0] = False
    small[np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]])] = False
    expected = mask | small[holes]
    got = mask.copy()
    _raster.fill_holes(got, 30.0, max_cells * 900.0)
    assert (got == expected).all()


# ----------------------------------------------------------------------------- disk dilation


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 50), cols=st.integers(1, 50),
       density=st.floats(0.0, 0.5), radius=st.floats(0.0, 6.5))
def test_disk_dilation_equals_distance_transform(seed, rows, cols, density, radius):
    """Cells within ``radius`` of a True cell, as scipy's Euclidean distance transform gives them (cut at the mask's edge)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((rows, cols)) < density
    expected = (distance_transform_edt(~mask) <= radius) if mask.any() else np.zeros_like(mask)
    out = np.ones_like(mask)  # overwritten
    _raster.disk_dilate(mask, _disk_widths(radius), out)
    assert (out == expected).all()


# ----------------------------------------------------------------------------- the windowed grid


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), clusters=st.integers(1, 6), spread=st.sampled_from([2000.0, 8000.0, 20000.0]),
       buffer_m=st.sampled_from([60.0, 120.0]), fill=st.sampled_from([0.0, 250_000.0, 2_000_000.0]))
def test_windowed_grid_equals_whole_grid(seed, clusters, spread, buffer_m, fill):
    """Clusters of streets scattered over up to 20 km: windows, merged windows, holes, lonely nodes."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(clusters):
        cx, cy = rng.uniform(0, spread, 2)
        k = int(rng.integers(1, 40))
        size = rng.choice([100.0, 600.0, 2500.0])
        xs.append(cx + rng.uniform(-size, size, k))
        ys.append(cy + rng.uniform(-size, size, k))
    x, y = np.concatenate(xs), np.concatenate(ys)
    n = len(x)
    d = np.hypot(x[:, None] - x, y[:, None] - y)
    nbr = np.argsort(d, axis=1)[:, 1:4] if n > 1 else np.zeros((1, 0), dtype=int)
    a = np.repeat(np.arange(n), nbr.shape[1])
    b = nbr.ravel()
    far = d[a, b] < 1500.0  # no streets between far clusters
    indptr, indices = _csr(n, a[far], b[far])
    reached = rng.random(n) < 0.8
    u, v, lonely = _edges_and_lonely(indptr, indices, reached)
    if not len(u) and not lonely.any():
        return
    coords = np.c_[x, y]
    _same(_raster_area(coords, u, v, lonely, buffer_m, fill), _reference_area(coords, u, v, lonely, buffer_m, fill))


def test_windowed_grid_island_inside_a_ring_road():
    """A ring road 6 km across with a small estate in the middle: the estate's window lies inside the ring's box."""
    ang = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    rx, ry = 3000 * np.cos(ang), 3000 * np.sin(ang)
    gx, gy = np.meshgrid(np.arange(4) * 150.0, np.arange(4) * 150.0)
    x = np.r_[rx, gx.ravel()]
    y = np.r_[ry, gy.ravel()]
    ring = np.arange(60)
    a = [*ring, *(60 + np.arange(16)[np.arange(16) % 4 < 3]), *(60 + np.arange(12))]
    b = [*np.roll(ring, -1), *(61 + np.arange(16)[np.arange(16) % 4 < 3]), *(64 + np.arange(12))]
    indptr, indices = _csr(len(x), np.array(a), np.array(b))
    u, v, lonely = _edges_and_lonely(indptr, indices, np.ones(len(x), dtype=bool))
    coords = np.c_[x, y]
    for fill in (0.0, 250_000.0, 40_000_000.0):  # the inside stays open, or is filled with the island
        got = _raster_area(coords, u, v, lonely, 120.0, fill)
        _same(got, _reference_area(coords, u, v, lonely, 120.0, fill))
    assert len(shapely.get_parts(_raster_area(coords, u, v, lonely, 120.0, 250_000.0))) == 2
    assert len(shapely.get_parts(_raster_area(coords, u, v, lonely, 120.0, 40_000_000.0))) == 1


def _walk_circle(graph, n_sources: int, minutes: float, seed: int = 0):
    """Nodes within ``minutes`` of a few random nodes (scipy's Dijkstra, not the engine's)."""
    m = csr_matrix((graph.minutes, graph.indices, graph.indptr), shape=(graph.n_nodes, graph.n_nodes))
    src = np.random.default_rng(seed).choice(graph.n_nodes, n_sources, replace=False)
    return dijkstra(m, indices=src, min_only=True, limit=minutes) <= minutes


def _check_real(graph, reached):
    u, v, lonely = _edges_and_lonely(graph.indptr, graph.indices, reached)
    coords = np.c_[graph.x, graph.y]
    assert len(u) > 2000  # the size where "auto" draws on the grid
    _same(_raster_area(coords, u, v, lonely, 120.0, 250_000.0), _reference_area(coords, u, v, lonely, 120.0, 250_000.0))
    # the graph's segment list (cached for snapping) gives the same circle as the edge list
    seg = network.segment_index(graph)
    plain = reached_area(graph.x, graph.y, graph.indptr, graph.indices, reached)
    fast = reached_area(graph.x, graph.y, graph.indptr, graph.indices, reached, segments=(seg.a, seg.b))
    assert plain.is_valid and fast.is_valid
    assert shapely.equals_exact(shapely.normalize(plain), shapely.normalize(fast), 1e-6)
    # the documented tolerance of the grid method against the exact buffers
    exact = reached_area(graph.x, graph.y, graph.indptr, graph.indices, reached, method="vector", simplify_m=0.0)
    # (measured: area -1.1 % on the demo, -1.3 % on Macau; symmetric difference 4.4 % and 3.2 %)
    assert abs(plain.area - exact.area) <= 0.02 * exact.area
    assert plain.symmetric_difference(exact).area <= 0.06 * exact.area
    # the outline within one cell (30 m) and the simplification (15 m) of the exact one, both ways
    assert plain.difference(exact.buffer(30.0 + 15.0)).area <= 1e-3 * exact.area
    assert exact.buffer(-(30.0 + 15.0)).difference(plain).area <= 1e-3 * exact.area
    return plain


def test_demo_county_walk_circle_grid_equals_whole_grid_and_close_to_exact():
    g = network.read_lines(ROOT / "data" / "roads" / "roads.gpkg", mode="walk", layer="roads")
    _check_real(g, _walk_circle(g, 12, 15.0))


def test_macau_walk_circle_grid_equals_whole_grid_and_close_to_exact(shared_data):
    g = network.read_lines(shared_data / "macau" / "osm_geofabrik_shp" / "gis_osm_roads_free_1.shp", mode="walk",
                           class_field="fclass", crs=32649)
    poly = _check_real(g, _walk_circle(g, 8, 15.0, seed=3))
    assert len(shapely.get_parts(poly)) >= 1


@pytest.mark.parametrize("method", ["raster", "vector"])
def test_segments_argument_checks_its_flags(method):
    x = np.array([0.0, 1000.0, 5000.0])
    y = np.zeros(3)
    indptr, indices = _csr(3, np.array([0]), np.array([1]))
    seg = (np.array([0, 2]), np.array([1, 2]))  # with a degenerate segment of the lonely node
    got = reached_area(x, y, indptr, indices, np.array([True, True, True]), method=method, segments=seg)
    ref = reached_area(x, y, indptr, indices, np.array([True, True, True]), method=method)
    assert got.symmetric_difference(ref).area <= 1e-6 * ref.area
    with pytest.raises(ValueError):
        reached_area(x, y, indptr, indices, np.ones(2, bool), segments=seg)
