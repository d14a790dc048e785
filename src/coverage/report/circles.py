"""Service-circle polygons drawn from the reached road network (not from buffers around facilities).

A 15-minute circle drawn as a plain buffer or a convex hull around a facility crosses rivers,
mountain ridges and fenced-off land that nobody can cross. :func:`reached_area` instead outlines the
*roads* that are reached within the threshold: every road segment whose two end nodes are reached is
buffered by ``buffer_m`` (about half a street block), the buffers are merged, and the outline is
simplified. Gaps between reached roads that are wider than ``2 * buffer_m`` stay open.

Two ways to draw the same thing, chosen by ``method``:

* ``"vector"``: exact, vectorised with shapely 2 (``shapely.linestrings`` → ``shapely.buffer`` →
  ``shapely.union_all``). 150k reached edges take 10–15 s; a county's 11 circles about 15 s.
* ``"raster"``: the reached roads are sampled onto a grid of ``buffer_m / 4`` cells, grown by
  ``buffer_m`` (the cells whose centre is within ``buffer_m`` of a road cell's centre), holes
  under ``fill_holes_m2`` filled, and outlined along the cell edges. The outline is within about
  one cell (30 m at the default buffer) of the exact one (area within about 2 %; tests check it
  on the demo's and Macau's roads). Only windows around the reached roads are processed, by
  compiled passes (:mod:`coverage.report._raster`) that give the polygons
  ``rasterio.features.shapes`` gives on the whole grid, vertex for vertex; all windows of a
  circle are dilated, filled and outlined in one call that releases the GIL. The 16x demo's ten
  circles (up to 430k reached edges each) take about 1.5 s on two threads and 0.1 GB.

``"auto"`` (the default) uses the exact method up to 2,000 reached edges and the raster one above.
"""

from __future__ import annotations

import numpy as np
import shapely
import shapely.geometry
from numpy.typing import ArrayLike
from shapely.geometry import MultiPolygon, Polygon

__all__ = ["reached_area", "reached_edges", "service_area"]


def reached_edges(
    indptr: ArrayLike, indices: ArrayLike, reached: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges ``(u, v)`` with ``u < v`` whose two end nodes are both reached.

    Parameters
    ----------
    indptr, indices : array_like of int
        CSR adjacency of the directed road graph (two-way roads stored both ways): the edges leaving
        node ``i`` go to ``indices[indptr[i]:indptr[i + 1]]``.
    reached : array_like of bool
        One flag per node.

    Returns
    -------
    tuple of ndarray
        ``u`` and ``v`` (int64), sorted by ``(u, v)``, each undirected edge once; self-loops dropped.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    reached = np.asarray(reached, dtype=bool)
    n = len(indptr) - 1
    if reached.shape != (n,):
        raise ValueError(f"reached has shape {reached.shape}, expected ({n},) (one flag per node)")
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    keep = reached[src] & reached[indices] & (src != indices)
    u = np.minimum(src[keep], indices[keep])
    v = np.maximum(src[keep], indices[keep])
    if len(u) == 0:
        return u, v
    key = np.unique(u * n + v)  # sorted by (u, v) and deduplicated; one 1-D sort
    return key // n, key % n


def reached_area(  # noqa: PLR0913 - issue 11: to narrow/split
    x: ArrayLike,
    y: ArrayLike,
    indptr: ArrayLike,
    indices: ArrayLike,
    reached: ArrayLike,
    buffer_m: float = 120.0,
    simplify_m: float = 20.0,
    threshold: float | None = None,
    fill_holes_m2: float = 250_000.0,
    method: str = "auto",
    segments: tuple[ArrayLike, ArrayLike] | None = None,
) -> Polygon | MultiPolygon:
    """Polygon of the area served through the road network (a 服务圈 drawn from reached roads).

    Each undirected road segment whose two end nodes are reached becomes a straight line that is
    buffered by ``buffer_m``; reached nodes without any reached segment (e.g. a facility at a dead
    end) are buffered as points. The union is simplified with ``simplify_m`` (topology preserved).
    Edges with only one reached end are left out, so the polygon never bridges a river or a gap
    that the network does not cross.

    Parameters
    ----------
    x, y : array_like of float
        Node coordinates in a metric CRS (metres).
    indptr, indices : array_like of int
        CSR adjacency of the road graph (as in :class:`coverage.network.RoadGraph`).
    reached : array_like
        Either one boolean per node, or (with ``threshold``) the time or distance per node, with
        ``inf``/NaN for unreachable nodes.
    buffer_m : float
        Half-width of the band drawn around reached roads, metres (100–150 m is about half a block).
    simplify_m : float
        Douglas–Peucker tolerance of the outline, metres (0 keeps every vertex).
    threshold : float, optional
        When given, nodes with ``reached <= threshold`` count as reached.
    fill_holes_m2 : float
        Holes smaller than this (m²; default 0.25 km²) are filled: a block ringed by reached roads is
        served. Larger holes (a park, a river bend, a gap the network does not reach) stay open.
    method : {"auto", "vector", "raster"}
        Exact buffers, or the fast grid approximation (see the module docstring).
    segments : tuple of array_like of int, optional
        The graph's undirected segments ``(a, b)`` when the caller has them (e.g. ``a`` and ``b`` of
        :func:`coverage.network.segment_index`, cached on the graph): the reached ones are then
        picked from them instead of deduplicating the directed edges (a sort) on every call.
        Duplicates and ``a == b`` pairs are allowed; the result is the same.

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon
        The served area in the CRS of ``x, y``; an empty Polygon when nothing is reached.
    """
    x = np.asarray(x, dtype="float64")
    y = np.asarray(y, dtype="float64")
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be 1-D arrays of equal length")
    if buffer_m <= 0:
        raise ValueError("buffer_m must be positive")
    flags = np.asarray(reached)
    if threshold is not None:
        with np.errstate(invalid="ignore"):
            flags = np.nan_to_num(flags.astype("float64"), nan=np.inf) <= threshold
    flags = flags.astype(bool)
    u, v = _reached_pairs(indptr, indices, flags, segments)
    coords = np.stack([x, y], axis=1)
    lonely = flags.copy()
    lonely[u] = False
    lonely[v] = False
    if not len(u) and not lonely.any():
        return Polygon()
    if method not in ("auto", "vector", "raster"):
        raise ValueError(f"method must be 'auto', 'vector' or 'raster', not {method!r}")
    raster = method == "raster" or (method == "auto" and len(u) > RASTER_ABOVE_EDGES)
    if raster:
        area = _raster_area(coords, u, v, lonely, buffer_m, fill_holes_m2)
        simplify_m = max(simplify_m, buffer_m / 8.0)  # smooth the cell staircase
    else:
        pieces = []
        if len(u):
            pieces.append(shapely.linestrings(np.stack([coords[u], coords[v]], axis=1)))  # (m, 2, 2)
        if lonely.any():
            pieces.append(shapely.points(coords[lonely]))
        # Buffer every piece separately (vectorised), then GEOS's cascaded union. This is far faster
        # than buffering one big MultiLineString (self-intersections) or noding the lines first.
        area = shapely.union_all(shapely.buffer(np.concatenate(pieces), buffer_m, quad_segs=4))
    if simplify_m > 0:
        # the grid's staircase outlines (hundreds of thousands of vertices on a large county) take
        # plain Douglas–Peucker, ~6x faster than the topology-preserving variant; GEOS's
        # Douglas–Peucker returns valid polygons (it repairs a crossing it makes with buffer(0))
        area = shapely.simplify(area, simplify_m, preserve_topology=not raster)
    if not (raster and simplify_m > 0):
        area = shapely.make_valid(area)  # (a valid area again: it would only check it, ~1 s at 16x)
    polys = [g for g in shapely.get_parts(area) if isinstance(g, Polygon)]
    if fill_holes_m2 > 0 and polys:
        polys, filled = _fill_small_holes(polys, fill_holes_m2)
        if len(filled) and len(polys) > 1:
            # parts of a valid geometry do not overlap, except an island inside a hole just filled:
            # drop those (the union would absorb them) instead of unioning every part
            inside = shapely.STRtree(filled).query(polys, predicate="within")[0]
            polys = [p for i, p in enumerate(polys) if i not in set(inside.tolist())]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _reached_pairs(
    indptr: ArrayLike, indices: ArrayLike, flags: np.ndarray, segments: tuple[ArrayLike, ArrayLike] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The reached segments: :func:`reached_edges`, or picked from the graph's ``segments`` when given."""
    if segments is None:
        return reached_edges(indptr, indices, flags)
    a, b = (np.asarray(s, dtype=np.int64) for s in segments)
    n = len(np.asarray(indptr)) - 1
    if flags.shape != (n,):
        raise ValueError(f"reached has shape {flags.shape}, expected ({n},) (one flag per node)")
    keep = flags[a] & flags[b] & (a != b)
    return a[keep], b[keep]


#: ``method="auto"`` switches from exact buffers to the grid above this many reached edges.
RASTER_ABOVE_EDGES = 2000


def _raster_area(
    coords: np.ndarray, u: np.ndarray, v: np.ndarray, lonely: np.ndarray, buffer_m: float,
    fill_holes_m2: float = 0.0,
) -> Polygon | MultiPolygon:
    """Grid version of the buffered-roads union (cells of ``buffer_m / 4``).

    The reached segments are sampled every half cell onto one grid over their extent; the grid is
    cut into windows that each hold whole regions of the served area with a ring of empty cells
    around them (:func:`_windows`: a county's walking circles cover a few per cent of its bounding
    box), and each window is dilated by ``buffer_m``, has its holes smaller than ``fill_holes_m2``
    filled (before they become rings) and is outlined along the cell edges. The compiled passes
    are in :mod:`coverage.report._raster`; the result is the same set of cells, outlined as
    ``rasterio.features.shapes`` outlines it (4-connected regions), as drawing the whole grid.
    """
    from coverage.report import _raster

    cell = buffer_m / 4.0
    half = cell / 2.0
    # points every half cell along each reached segment; a lonely reached node is a segment of length 0
    ends = np.flatnonzero(lonely)
    ia, ib = np.concatenate([u, ends]), np.concatenate([v, ends])
    ax, ay = np.ascontiguousarray(coords[ia, 0]), np.ascontiguousarray(coords[ia, 1])
    bx, by = np.ascontiguousarray(coords[ib, 0]), np.ascontiguousarray(coords[ib, 1])
    xmin, xmax, ymin, ymax = _raster.sample_bounds(ax, ay, bx, by, half)
    pad = buffer_m + 2 * cell
    x0, y1 = xmin - pad, ymax + pad
    ncol = int(np.ceil((xmax + pad - x0) / cell))
    nrow = int(np.ceil((y1 - (ymin - pad)) / cell))
    on_road = np.zeros((nrow, ncol), dtype=bool)
    _raster.sample_segments(on_road, ax, ay, bx, by, half, x0, y1, cell)
    del ax, ay, bx, by, ia, ib
    # cell centres within buffer_m of the road; distances run between cell centres, which makes the
    # band slightly wide, so the threshold is an eighth of a cell less (calibrated: area within ~1 %)
    radius = (buffer_m - cell / 8.0) / cell
    # the windows are dilated, filled and outlined in one compiled call that holds no GIL: per
    # window in Python, each of its steps waited for the GIL behind the thread writing the workbook
    # (a 2 s drawing took 30 s beside a busy Python thread)
    rects = _windows(on_road, int(np.floor(radius)) + 1)
    vi, vj, ring_ptr, hole, owner, ring_win, padded = _raster.window_rings(
        on_road, rects, _disk_widths(radius), cell, float(fill_holes_m2))
    del on_road
    # each window's top-left corner, one cell further out where it was padded (computed as the
    # single-window outline computes it, so the coordinates are the same to the bit)
    shift = np.where(padded, cell, 0.0)
    ox = x0 + rects[:, 2] * cell - shift
    oy = y1 - rects[:, 0] * cell + shift
    win = np.repeat(ring_win, np.diff(ring_ptr))
    polys = _polygons(ox[win] + vj * cell, oy[win] - vi * cell, ring_ptr, hole, owner)
    if not polys:
        return Polygon()
    # the outlines are disjoint (4-connected regions; diagonal neighbours meet at a corner, which a
    # MultiPolygon allows), so they are collected rather than unioned
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


#: Side of the blocks (cells) that :func:`_windows` groups the road cells by.
_BLOCK = 16


def _windows(on_road: np.ndarray, margin: int) -> np.ndarray:
    """Disjoint windows ``(r0, r1, c0, c1)`` (half-open) holding every True cell of ``on_road`` with ``margin`` cells around it.

    Road cells are grouped by blocks of ``_BLOCK`` cells that touch (8 neighbours); a group's
    window is the box of its cells grown by ``margin``, and windows that overlap are merged into
    their common box until none does. Cells dilated by less than ``margin`` from different windows
    then never touch, the ring of each window is empty, and the background outside the windows is
    connected to the grid's edge (the windows are disjoint rectangles), so each window can be
    dilated, hole-filled and outlined on its own with the result of the whole grid.
    """
    from scipy.ndimage import label
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from coverage.report import _raster

    if _BLOCK <= 2 * margin:
        raise ValueError("the blocks must be wider than two margins")
    box = _raster.block_boxes(on_road, _BLOCK)
    groups, k = label(box[:, :, 0] >= 0, structure=np.ones((3, 3), dtype=bool))
    if k == 0:
        return np.zeros((0, 4), dtype=np.int64)
    used = groups > 0
    g = groups[used] - 1
    b = box[used]
    rects = np.empty((k, 4), dtype=np.int64)
    rects[:, [0, 2]] = np.iinfo(np.int64).max
    rects[:, [1, 3]] = np.iinfo(np.int64).min
    for col, (f, src) in enumerate([(np.minimum, 0), (np.maximum, 1), (np.minimum, 2), (np.maximum, 3)]):
        f.at(rects[:, col], g, b[:, src])
    rects += np.array([-margin, margin + 1, -margin, margin + 1])
    while len(rects) > 1:
        boxes = shapely.box(rects[:, 2], rects[:, 0], rects[:, 3] - 1, rects[:, 1] - 1)  # cells, closed
        i, j = shapely.STRtree(boxes).query(boxes, predicate="intersects")
        m = len(rects)
        n, comp = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(m, m)), directed=False)
        if n == m:
            break
        merged = np.empty((n, 4), dtype=np.int64)
        merged[:, [0, 2]] = np.iinfo(np.int64).max
        merged[:, [1, 3]] = np.iinfo(np.int64).min
        for col, f in enumerate([np.minimum, np.maximum, np.minimum, np.maximum]):
            f.at(merged[:, col], comp, rects[:, col])
        rects = merged
    return rects


def _outline(mask: np.ndarray, x0: float, y1: float, cell: float) -> list[Polygon]:
    """Polygons of the 4-connected True regions of ``mask`` (top-left corner at ``x0, y1``), with their holes."""
    from coverage.report import _raster

    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        mask = np.pad(mask, 1)  # the tracer wants empty edge cells
        x0, y1 = x0 - cell, y1 + cell
    vi, vj, ring_ptr, hole, owner = _raster.trace_rings(mask)
    return _polygons(x0 + vj * cell, y1 - vi * cell, ring_ptr, hole, owner)


def _polygons(x: np.ndarray, y: np.ndarray, ring_ptr: np.ndarray, hole: np.ndarray, owner: np.ndarray) -> list[Polygon]:
    """Polygons from traced rings (corners ``x, y``; ring ``r`` is ``ring_ptr[r]:ring_ptr[r + 1]``), each shell with the holes it owns, in the order of the shells; built in one vectorised call."""
    if len(ring_ptr) <= 1:
        return []
    xy = np.empty((len(x), 2), dtype=float)
    xy[:, 0] = x
    xy[:, 1] = y
    rings = shapely.linearrings(xy, indices=np.repeat(np.arange(len(ring_ptr) - 1), np.diff(ring_ptr)))
    order = np.lexsort((hole, owner))  # per region: its shell, then its holes
    _, poly = np.unique(owner[order], return_inverse=True)
    return list(shapely.polygons(rings[order], indices=poly))


def _disk_widths(radius: float) -> np.ndarray:
    """Half-widths (cells) of the disk of ``radius`` cells on its rows, for :func:`coverage.report._raster.disk_dilate`.

    Entry ``dr + r`` (row offset ``dr`` from ``-r`` to ``r``, ``r = floor(radius)``) is the widest
    column offset ``dc`` with ``sqrt(dr² + dc²) <= radius``, tested as ``distance_transform_edt``
    compares, or -1 where the row has no cell.
    """
    r = int(np.floor(radius))
    return np.array([max((dc for dc in range(r + 1) if np.sqrt(float(dr * dr + dc * dc)) <= radius), default=-1)
                     for dr in range(-r, r + 1)], dtype=np.int64)


def _fill_small_holes(polys: list[Polygon], max_area: float) -> tuple[list[Polygon], np.ndarray]:
    """The polygons without their holes smaller than ``max_area``, and the holes filled (as polygons), vectorised over every ring."""
    parts = np.asarray(polys, dtype=object)
    n_holes = shapely.get_num_interior_rings(parts)
    if not n_holes.any():
        return list(polys), np.empty(0, dtype=object)
    owner = np.repeat(np.arange(len(parts)), n_holes)
    nth = np.arange(len(owner)) - np.repeat(np.cumsum(n_holes) - n_holes, n_holes)
    rings = shapely.get_interior_ring(parts[owner], nth)
    holes = shapely.polygons(rings)
    small = shapely.area(holes) < max_area
    out = list(polys)
    for i in np.unique(owner[small]):
        keep = rings[(owner == i) & ~small]
        out[i] = shapely.polygons(shapely.get_exterior_ring(parts[i]), holes=keep if len(keep) else None)
    return out, holes[small]


#: Alias of :func:`reached_area` (the name used in the design notes).
service_area = reached_area
