"""Tests of service-circle polygons drawn from reached road edges (coverage.report.circles)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from coverage.report.circles import reached_area, reached_edges


def _csr(n: int, undirected: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """CSR of an undirected edge list stored both ways (plain loops, obviously correct)."""
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in undirected:
        adj[a].append(b)
        adj[b].append(a)
    indptr = [0]
    indices: list[int] = []
    for nb in adj:
        indices.extend(sorted(nb))
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices, dtype=np.int64)


def _reference(x, y, undirected, reached, buffer_m):
    """Buffer each reached segment separately with plain loops, then union (no simplification)."""
    parts = []
    touched = set()
    for a, b in undirected:
        if a != b and reached[a] and reached[b]:
            parts.append(LineString([(x[a], y[a]), (x[b], y[b])]).buffer(buffer_m, quad_segs=4))
            touched.update((a, b))
    for i in range(len(x)):
        if reached[i] and i not in touched:
            parts.append(Point(x[i], y[i]).buffer(buffer_m, quad_segs=4))
    return shapely.union_all(parts)


def _two_clusters():
    """Two 3×3 grids of 200 m spacing, 2 km apart, joined by one long road across a 'river'."""
    xs, ys, edges = [], [], []
    for ox in (0.0, 2600.0):
        base = len(xs)
        for r in range(3):
            for c in range(3):
                xs.append(ox + 200.0 * c)
                ys.append(200.0 * r)
        for r in range(3):
            for c in range(3):
                i = base + 3 * r + c
                if c < 2:
                    edges.append((i, i + 1))
                if r < 2:
                    edges.append((i, i + 3))
    bridge = (3 * 1 + 2, 9 + 3 * 1 + 0)  # east middle of cluster A → west middle of cluster B
    edges.append(bridge)
    return np.array(xs), np.array(ys), edges, bridge


def test_gap_between_clusters_stays_open() -> None:
    x, y, edges, bridge = _two_clusters()
    indptr, indices = _csr(len(x), edges)
    reached = np.ones(len(x), dtype=bool)
    reached[bridge[1]] = False  # the far end of the bridge is not reached …
    area = reached_area(x, y, indptr, indices, reached, buffer_m=120.0, simplify_m=0.0)
    # … so the bridge is not drawn and the middle of the 2 km gap is not covered
    assert not area.covers(Point(1500.0, 200.0))
    assert not area.covers(Point(600.0 + 200.0, 200.0))  # 200 m east of cluster A: beyond 120 m
    # reached cluster A and the reached part of cluster B are covered
    assert area.covers(Point(100.0, 100.0))
    assert area.covers(Point(2600.0 + 300.0, 0.0))
    # the unreached node itself lies more than the buffer away from every reached edge
    assert not area.covers(Point(x[bridge[1]] - 130.0, y[bridge[1]]))


def test_whole_bridge_when_both_ends_reached() -> None:
    x, y, edges, _ = _two_clusters()
    indptr, indices = _csr(len(x), edges)
    area = reached_area(x, y, indptr, indices, np.ones(len(x), bool), simplify_m=0.0)
    assert area.covers(Point(1500.0, 200.0))
    assert area.geom_type == "Polygon"


def test_matches_loop_reference_and_simplify_tolerance() -> None:
    x, y, edges, bridge = _two_clusters()
    indptr, indices = _csr(len(x), edges)
    reached = np.ones(len(x), dtype=bool)
    reached[[0, bridge[1]]] = False
    ref = _reference(x, y, edges, reached, 120.0)
    exact = reached_area(x, y, indptr, indices, reached, buffer_m=120.0, simplify_m=0.0)
    assert exact.symmetric_difference(ref).area < 1e-6 * ref.area
    simple = reached_area(x, y, indptr, indices, reached, buffer_m=120.0, simplify_m=20.0)
    # Douglas–Peucker moves the outline by at most the tolerance
    assert shapely.hausdorff_distance(simple.boundary, ref.boundary) <= 20.0 + 1e-6


def test_threshold_on_times_equals_mask() -> None:
    x, y, edges, _ = _two_clusters()
    indptr, indices = _csr(len(x), edges)
    times = np.arange(len(x), dtype=float)
    times[3] = np.inf
    times[4] = np.nan
    a = reached_area(x, y, indptr, indices, times, threshold=10.0, simplify_m=0.0)
    b = reached_area(x, y, indptr, indices, (np.arange(len(x)) <= 10) & (np.arange(len(x)) > 4)
                     | (np.arange(len(x)) < 3), simplify_m=0.0)
    assert a.equals(b)


def test_isolated_reached_node_and_nothing_reached() -> None:
    x = np.array([0.0, 1000.0, 5000.0])
    y = np.zeros(3)
    indptr, indices = _csr(3, [(0, 1)])
    lone = reached_area(x, y, indptr, indices, np.array([False, False, True]), simplify_m=0.0)
    assert lone.covers(Point(5000.0, 100.0)) and not lone.covers(Point(500.0, 0.0))
    assert reached_area(x, y, indptr, indices, np.zeros(3, bool)).is_empty


def test_reached_edges_dedupes_and_drops_loops() -> None:
    indptr, indices = _csr(4, [(0, 1), (1, 2), (2, 3), (2, 2)])
    u, v = reached_edges(indptr, indices, np.array([True, True, True, False]))
    assert list(zip(u.tolist(), v.tolist())) == [(0, 1), (1, 2)]
    with pytest.raises(ValueError):
        reached_edges(indptr, indices, np.ones(3, bool))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=25),
    seed=st.integers(min_value=0, max_value=10_000),
    buffer_m=st.sampled_from([50.0, 120.0, 150.0]),
)
def test_random_graphs_match_reference(n: int, seed: int, buffer_m: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 3000, n)
    y = rng.uniform(0, 3000, n)
    m = int(rng.integers(0, 3 * n))
    edges = [(int(a), int(b)) for a, b in rng.integers(0, n, size=(m, 2))]
    reached = rng.random(n) < 0.7
    indptr, indices = _csr(n, edges)
    got = reached_area(x, y, indptr, indices, reached, buffer_m=buffer_m, simplify_m=0.0, fill_holes_m2=0.0)
    ref = _reference(x, y, edges, reached, buffer_m)
    if ref.is_empty:
        assert got.is_empty
    else:
        assert got.symmetric_difference(ref).area <= 1e-6 * ref.area


def _ring(side: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Four nodes on a square of ``side`` metres joined in a ring (CSR, both directions)."""
    x = np.array([0.0, side, side, 0.0])
    y = np.array([0.0, 0.0, side, side])
    nbrs = [[1, 3], [0, 2], [1, 3], [2, 0]]
    indptr = np.array([0, 2, 4, 6, 8])
    indices = np.array([n for row in nbrs for n in row])
    return x, y, indptr, indices


@pytest.mark.parametrize(("side", "filled"), [(600.0, True), (1500.0, False)])
def test_small_enclosed_blocks_are_filled_large_ones_not(side, filled):
    x, y, indptr, indices = _ring(side)
    poly = reached_area(x, y, indptr, indices, np.ones(4, bool), buffer_m=100.0, simplify_m=0.0)
    hole = (side - 200.0) ** 2  # the open block inside the 100 m bands
    assert (len(poly.interiors) == 0) is filled
    assert poly.area == pytest.approx((side + 200.0) ** 2 - (0.0 if filled else hole), rel=0.02)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_raster_method_close_to_exact(seed):
    """The grid method lies within about one cell of the exact buffers (area within 6 %)."""
    rng = np.random.default_rng(seed)
    n = 60
    x, y = rng.uniform(0, 4000, n), rng.uniform(0, 4000, n)
    # connect each node to its 3 nearest neighbours (a plausible street graph)
    d = np.hypot(x[:, None] - x, y[:, None] - y)
    nbr = np.argsort(d, axis=1)[:, 1:4]
    edges = {(min(i, j), max(i, j)) for i in range(n) for j in nbr[i]}
    adj = [[] for _ in range(n)]
    for i, j in edges:
        adj[i].append(j)
        adj[j].append(i)
    indptr = np.cumsum([0] + [len(a) for a in adj])
    indices = np.array([j for a in adj for j in a])
    reached = rng.random(n) < 0.7
    exact = reached_area(x, y, indptr, indices, reached, buffer_m=120.0, simplify_m=0.0,
                         fill_holes_m2=0.0, method="vector")
    grid = reached_area(x, y, indptr, indices, reached, buffer_m=120.0, simplify_m=0.0,
                        fill_holes_m2=0.0, method="raster")
    assert abs(grid.area - exact.area) <= 0.06 * exact.area
    assert grid.symmetric_difference(exact).area <= 0.12 * exact.area
    # nothing far outside the exact band (one grid cell of slack plus simplification)
    assert grid.difference(exact.buffer(60.0)).area <= 1e-6 * exact.area + 1.0
