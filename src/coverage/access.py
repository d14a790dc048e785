"""Accessibility on a :class:`~coverage.network.RoadGraph`: snapping, nearest facility, catchments, counts and the enhanced two-step floating catchment area (E2SFCA).

Snapping onto roads
-------------------
Every demand point and facility is attached to the **nearest point on the nearest road segment**
(:func:`snap`), as routing engines do, not to the nearest intersection: a house beside the middle of
a long rural road joins the road there. The segment ``(u, v)`` is virtually split at that point
``P`` (fraction ``t`` from ``u``): going from ``P`` to ``u`` costs ``t`` of the edge ``v → u``, to
``v`` costs ``1 - t`` of ``u → v`` (only where that direction is allowed: one-way streets in
``drive`` mode), and arriving at ``P`` from ``u`` / ``v`` costs ``t`` of ``u → v`` / ``1 - t`` of
``v → u``. The off-road **leg** is the straight distance from the point to ``P`` at
``settings.SNAP_KMH``. Points whose leg is longer than ``settings.SNAP_MAX_M`` have no road access
(无道路可达): they keep their row and get ``inf`` times, zero counts and zero accessibility, and are
listed by ``Snapped.ok == False``. Segments are straight node-to-node lines (the graph keeps no
curved geometry; on graphs read from line layers, an edge between two junctions is its chord).

Travel time from a facility ``j`` to a demand cell ``i`` is::

    t(j, i) = leg_j + min over a in {u_j, v_j}, b in {u_i, v_i} of (out_j(a) + d(a, b) + in_i(b)) + leg_i

with ``out``/``in`` the partial edges above and ``d`` the network shortest path **from the facility
side to the cell** (the direction matters on one-way streets in ``drive`` mode: it is the time for
the service, or the trip back home; on walk/ebike graphs both directions are equal). When ``i`` and
``j`` stand on the same segment they also reach each other directly along it (the part of the edge
between them, in an allowed direction); that candidate is checked for every such pair.

Every query is computed by compiled kernels (:mod:`coverage._kernels`):

* :func:`nearest` / :func:`nearest_time` / :func:`nearest_distance` run **one** bounded multi-source
  Dijkstra per call, where both ends of each facility's segment start at leg + partial edge (a
  "virtual source" joined to all facilities), then take each cell's best end plus its own partial
  edge and leg, then the same-segment pairs. The search runs in a workspace cached on the graph
  (created on first use, like the segment index) and resets only the nodes it reached, so a query
  costs O(nodes reached + demand points), not O(road nodes). The workspace is guarded by a lock; a
  call that finds it busy (another thread querying the same graph) uses a private one.
* :func:`catchments` runs one bounded single-source Dijkstra per site (seeded at both ends of its
  segment) that visits only reached nodes and resets only what it touched (never a dense sites ×
  nodes matrix), in threads over chunks of sites.
* :func:`e2sfca` runs the same search per facility and turns it at once into the facility's ratio
  and its share of each reached cell's accessibility, without keeping the catchments.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_array

from coverage import _kernels, settings
from coverage.errors import InputError
from coverage.network import RoadGraph, segment_index

__all__ = [
    "Snapped",
    "snap",
    "snap_xy",
    "nearest",
    "nearest_positions",
    "nearest_time",
    "nearest_distance",
    "catchments",
    "count_within",
    "population_within",
    "e2sfca",
    "step_weights",
    "gaussian_weight",
]

#: E2SFCA step decay (Luo & Qi 2009): weight by thirds of the threshold T.
STEP_ZONES: tuple[tuple[float, float], ...] = ((1 / 3, 1.0), (2 / 3, 0.68), (1.0, 0.22))
#: Gaussian decay: weight at the threshold T.
GAUSSIAN_W_AT_T: float = 0.01


#: Stands for an optional array of :class:`Snapped` left out (its default is set from ``node``).
_UNSET: NDArray[Any] = np.empty(0)


def _unset(a: Any) -> bool:
    return a is None or a is _UNSET


@dataclass(eq=False)
class Snapped:
    """Points snapped onto their nearest road segment.

    Attributes
    ----------
    node : ndarray of int32
        The nearer end of the segment (``u`` where ``t <= 0.5``, else ``v``); also set where ``ok``
        is False. Kept for display and for callers that only need a node.
    leg_m : ndarray of float64
        Straight-line distance to the snap point on the road, metres (``inf`` for a missing geometry).
    leg_min : ndarray of float64
        The same at ``settings.SNAP_KMH``, minutes.
    ok : ndarray of bool
        ``leg_m <= max_leg_m``; False means "no road access" (无道路可达).
    index : pandas.Index
        Index of the input points, in order.
    u, v : ndarray of int32, optional
        End nodes of the segment (default: both ``node``, i.e. a point standing on a node).
    t : ndarray of float64, optional
        Position of the snap point from ``u`` (0) to ``v`` (1) (default 0).
    e_uv, e_vu : ndarray of int32, optional
        CSR position of the edge ``u → v`` / ``v → u`` of the graph, -1 where that direction is not
        allowed (default -1).
    seg : ndarray of int32, optional
        Segment number in :func:`coverage.network.segment_index` (-1: none; default -1). Points on
        the same segment are checked for a direct path along it.
    """

    node: NDArray[np.int32]
    leg_m: NDArray[np.float64]
    leg_min: NDArray[np.float64]
    ok: NDArray[np.bool_]
    index: pd.Index
    u: NDArray[np.int32] = field(default_factory=lambda: _UNSET)
    v: NDArray[np.int32] = field(default_factory=lambda: _UNSET)
    t: NDArray[np.float64] = field(default_factory=lambda: _UNSET)
    e_uv: NDArray[np.int32] = field(default_factory=lambda: _UNSET)
    e_vu: NDArray[np.int32] = field(default_factory=lambda: _UNSET)
    seg: NDArray[np.int32] = field(default_factory=lambda: _UNSET)

    def __post_init__(self) -> None:
        # node, edge and segment numbers as int32 (a county's graph stays far below 2**31): the
        # snaps of a million demand cells per mode take 24 MB less each; None or left out = default
        self.node = np.asarray(self.node, dtype=np.int32)
        n = self.node.shape[0]
        self.u = self.node.copy() if _unset(self.u) else np.asarray(self.u, dtype=np.int32)
        self.v = self.u.copy() if _unset(self.v) else np.asarray(self.v, dtype=np.int32)
        self.t = np.zeros(n) if _unset(self.t) else np.asarray(self.t, dtype=np.float64)
        self.e_uv = np.full(n, -1, dtype=np.int32) if _unset(self.e_uv) else np.asarray(self.e_uv, dtype=np.int32)
        self.e_vu = np.full(n, -1, dtype=np.int32) if _unset(self.e_vu) else np.asarray(self.e_vu, dtype=np.int32)
        self.seg = np.full(n, -1, dtype=np.int32) if _unset(self.seg) else np.asarray(self.seg, dtype=np.int32)

        self._ends_cache: dict = {}  # (weight array of a graph) -> partial edges, see _ends

    def __len__(self) -> int:
        return int(self.node.shape[0])

    def trim_cache(self) -> None:
        """Forget the search targets :func:`nearest` cached, when more than ``_ENDS_CACHE_MAX`` points.

        They take about 36 MB per weight for a million points; a caller that has run its searches
        (:func:`coverage.model.circle_times`) frees them, and a later search builds them again
        (about 50 ms). Smaller sets keep them.
        """
        if len(self) > _ENDS_CACHE_MAX:
            for k in [k for k in self._ends_cache if isinstance(k, tuple) and k[0] == "targets"]:
                del self._ends_cache[k]

    def take(self, mask: ArrayLike) -> "Snapped":
        """The snapped points selected by a boolean mask (or integer positions), index kept."""
        sel = np.asarray(mask)
        if sel.dtype == bool:
            sel = np.flatnonzero(sel)
        return Snapped(self.node[sel], self.leg_m[sel], self.leg_min[sel], self.ok[sel], self.index[sel],
                       self.u[sel], self.v[sel], self.t[sel], self.e_uv[sel], self.e_vu[sel], self.seg[sel])


class _Workspace:
    """Reusable search arrays of one graph: ``dist`` (all ``inf``) and ``label`` (all -1) between calls, plus scratch ``touched`` and heap buffers.

    Only used while ``lock`` is held.
    """

    def __init__(self, n_nodes: int, heap_cap: int) -> None:
        self.n = int(n_nodes)
        self.dist = np.full(self.n, np.inf)
        self.label = np.full(self.n, -1, dtype=np.int64)
        self.touched = np.empty(self.n, dtype=np.int64)
        self.hd = np.empty(heap_cap, dtype=np.float64)  # pages are only mapped when first used
        self.hn = np.empty(heap_cap, dtype=np.int64)
        self.lock = threading.Lock()

    def __reduce__(self):  # copies and pickles of a graph get a fresh workspace (a lock cannot be copied)
        return (_Workspace, (self.n, self.hd.shape[0]))


_WS_LOCK = threading.Lock()


def _multi_source(
    graph: RoadGraph, weight: str, src_node: NDArray, src_init: NDArray, limit: float, query: NDArray,
    group: int = 2,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Bounded multi-source search on ``graph``; distances and labels of the ``query`` nodes.

    Sources come in pairs (the two ends of a facility's segment, see :func:`_sources`).
    """
    n = graph.n_nodes
    need = graph.n_edges + len(src_node) + 1
    with _WS_LOCK:
        ws = graph._ws
        if ws is None or ws.n != n:
            ws = graph._ws = _Workspace(n, need + 1024)
    args = (graph.indptr, graph.indices, graph.weights(weight), np.ascontiguousarray(src_node, dtype=np.int64),
            np.ascontiguousarray(src_init, dtype=np.float64), float(limit),
            np.ascontiguousarray(query, dtype=np.int64))
    if not ws.lock.acquire(blocking=False):  # busy in another thread: private O(n) workspace
        tmp = _Workspace(n, need)
        return _kernels.multi_source(*args, tmp.dist, tmp.label, tmp.touched, tmp.hd, tmp.hn, group)
    try:
        if ws.hd.shape[0] < need:
            ws.hd = np.empty(need + 1024, dtype=np.float64)
            ws.hn = np.empty(need + 1024, dtype=np.int64)
        return _kernels.multi_source(*args, ws.dist, ws.label, ws.touched, ws.hd, ws.hn, group)
    finally:
        ws.lock.release()


def _in_threads(run: Callable[[NDArray[np.int64]], Any], n: int, n_threads: int | None = None,
                min_per_thread: int = 1) -> list[Any]:
    """``run`` over consecutive chunks of ``range(n)`` in threads, results in chunk order.

    For compiled kernels that release the GIL (``nogil=True``): one chunk per thread, default one
    thread per CPU (at most 8), fewer when a thread would get less than ``min_per_thread`` items.
    Results never depend on the number of threads.
    """
    n_threads = n_threads or min(os.cpu_count() or 1, 8)
    n_threads = max(1, min(int(n_threads), n // max(min_per_thread, 1) or 1))
    chunks = np.array_split(np.arange(n, dtype=np.int64), n_threads)
    if n_threads == 1:
        return [run(chunks[0])]
    with ThreadPoolExecutor(n_threads) as ex:
        return list(ex.map(run, chunks))


#: Points are searched strip by strip (strips of this many buckets, west to east; within a strip in
#: their own order, i.e. raster rows): the roads near one stretch of rows stay in the CPU cache.
_STRIP_BUCKETS = 16


def _snap_xy(graph: RoadGraph, qx: NDArray[np.float64], qy: NDArray[np.float64], max_leg_m: float,
             n_threads: int | None = None) -> dict[str, NDArray]:
    """The :class:`Snapped` arrays of points ``(qx, qy)`` (non-finite: no road access).

    Exact nearest segment by the compiled ring search over the bucket grid of
    :func:`coverage.network.segment_index`; the kernel writes every array in place, in threads over
    chunks of the points ordered by strips (``_STRIP_BUCKETS``). Each point's result depends on
    neither the order nor the chunks.
    """
    qx = np.ascontiguousarray(qx, dtype=np.float64)
    qy = np.ascontiguousarray(qy, dtype=np.float64)
    n = len(qx)
    out: dict[str, NDArray] = {
        "seg": np.full(n, -1, dtype=np.int32), "u": np.zeros(n, dtype=np.int32), "v": np.zeros(n, dtype=np.int32),
        "e_uv": np.full(n, -1, dtype=np.int32), "e_vu": np.full(n, -1, dtype=np.int32),
        "node": np.zeros(n, dtype=np.int32), "t": np.zeros(n), "leg_m": np.full(n, np.inf),
        "leg_min": np.full(n, np.inf), "ok": np.zeros(n, dtype=bool),
    }
    if not graph.n_nodes or not n:
        return out
    idx = segment_index(graph)
    m_per_min = settings.kmh_to_m_per_min(settings.SNAP_KMH)

    perm = _kernels.strip_order(qx, float(idx.x0), float(_STRIP_BUCKETS * idx.cell),
                                int(idx.nx) // _STRIP_BUCKETS + 1)

    args = (qx, qy, graph.x, graph.y, graph.n_nodes, idx.node_ptr, idx.node_seg, idx.piece_seg, idx.a, idx.b,
            idx.e_ab, idx.e_ba, idx.px, idx.py, float(idx.reach), float(idx.x0), float(idx.y0), float(idx.cell),
            int(idx.nx), int(idx.ny), idx.ptr, idx.order, float(max_leg_m), float(m_per_min),
            out["seg"], out["u"], out["v"], out["e_uv"], out["e_vu"], out["node"], out["t"], out["leg_m"],
            out["leg_min"], out["ok"])

    def run(lo: int, hi: int) -> None:
        mark = np.full(idx.n_segments, -1, dtype=np.int32)
        _kernels.snap_segments(*args, mark, perm[lo:hi])

    n_threads = n_threads or min(os.cpu_count() or 1, 8)
    n_threads = max(1, min(int(n_threads), n // 20_000))  # small inputs: one thread, no pool
    bounds = [n * k // n_threads for k in range(n_threads + 1)]
    if n_threads == 1:
        run(0, n)
    else:
        with ThreadPoolExecutor(n_threads) as ex:
            list(ex.map(run, bounds[:-1], bounds[1:]))
    return out


def snap(graph: RoadGraph, points: Any, max_leg_m: float | None = None) -> Snapped:
    """Snap points onto the nearest point of the nearest road segment.

    The nearest segment is exact (the nearest point over all straight node-to-node segments of the
    graph; ties between equally near segments go to the lowest segment number). It is found through
    :func:`coverage.network.segment_index`: a bucket grid over the nodes and the piece midpoints of
    long segments, searched ring by ring outward by a compiled kernel until no unseen segment can
    be nearer.

    Parameters
    ----------
    graph : RoadGraph
    points : GeoDataFrame or GeoSeries
        Points (other geometries use their representative point). Reprojected to ``graph.crs`` when
        they have another CRS; a layer without a CRS is taken to be in ``graph.crs``.
    max_leg_m : float, optional
        Longest allowed off-network leg (to the road), default ``settings.SNAP_MAX_M``.

    Returns
    -------
    Snapped
        One row per input row, in order; rows beyond ``max_leg_m`` or without geometry have
        ``ok=False`` and are reported, never dropped.
    """
    import geopandas as gpd
    import shapely

    if isinstance(points, Snapped):
        return points
    if isinstance(points, gpd.GeoDataFrame):
        geom = points.geometry
    elif isinstance(points, gpd.GeoSeries):
        geom = points
    else:
        raise TypeError("points must be a GeoDataFrame or GeoSeries")
    if geom.crs is not None and not graph.crs.equals(geom.crs):
        geom = geom.to_crs(graph.crs)
    arr = geom.to_numpy()
    n = len(arr)
    point = (shapely.get_type_id(arr) == 0) & ~shapely.is_empty(arr)
    if point.all():  # only points (the demand cells): no copies
        qx, qy = shapely.get_x(arr), shapely.get_y(arr)
    else:  # other geometries use their representative point; missing and empty ones have none
        qx, qy = np.full(n, np.nan), np.full(n, np.nan)
        if point.any():
            qx[point], qy[point] = shapely.get_x(arr[point]), shapely.get_y(arr[point])
        other = ~point & ~(shapely.is_missing(arr) | shapely.is_empty(arr))
        if other.any():
            rep = shapely.point_on_surface(arr[other])
            qx[other], qy[other] = shapely.get_x(rep), shapely.get_y(rep)
    return snap_xy(graph, qx, qy, max_leg_m, index=geom.index)


def snap_xy(
    graph: RoadGraph,
    x: ArrayLike,
    y: ArrayLike,
    max_leg_m: float | None = None,
    index: pd.Index | None = None,
) -> Snapped:
    """Snap points given as coordinates in ``graph.crs``: :func:`snap` without point geometries.

    The model snaps the demand cells' centres this way while their frame is still being made
    (the compiled search releases the GIL); the result equals :func:`snap` of points at ``(x, y)``.

    Parameters
    ----------
    graph : RoadGraph
    x, y : array_like
        Coordinates in ``graph.crs``; a non-finite pair has no road access.
    max_leg_m : float, optional
        Longest allowed off-network leg (to the road), default ``settings.SNAP_MAX_M``.
    index : pandas.Index, optional
        Index of the points (default ``RangeIndex``).

    Returns
    -------
    Snapped
    """
    max_leg_m = settings.SNAP_MAX_M if max_leg_m is None else float(max_leg_m)
    qx = np.asarray(x, dtype=np.float64)
    qy = np.asarray(y, dtype=np.float64)
    if qx.shape != qy.shape or qx.ndim != 1:
        raise ValueError(f"x and y must be two 1-d arrays of one length: {qx.shape} and {qy.shape}")
    index = pd.RangeIndex(len(qx)) if index is None else pd.Index(index)
    if len(index) != len(qx):
        raise ValueError(f"index has {len(index)} labels for {len(qx)} points")
    return Snapped(index=index, **_snap_xy(graph, qx, qy, max_leg_m))


def _as_snapped(graph: RoadGraph, pts: Any) -> Snapped:
    s = snap(graph, pts)
    if len(s) and max(s.node.max(initial=0), s.u.max(initial=0), s.v.max(initial=0)) >= graph.n_nodes:
        raise ValueError("Snapped points belong to another graph (node number out of range)")
    if len(s) and max(s.e_uv.max(initial=-1), s.e_vu.max(initial=-1)) >= graph.n_edges:
        raise ValueError("Snapped points belong to another graph (edge number out of range)")
    return s


def _leg(s: Snapped, weight: str) -> NDArray[np.float64]:
    return s.leg_min if weight == "minutes" else s.leg_m


#: A Snapped with more points than this (the demand cells of a large county) does not keep its
#: partial edges (:func:`_ends`: four arrays per weight, 280 MB for 1.1 M cells and three modes);
#: the search targets built from them (:func:`_targets`) are still kept.
_ENDS_CACHE_MAX = 100_000


def _ends(graph: RoadGraph, s: Snapped, weight: str) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Partial edges of the virtual split at each snap point ``P``, in ``weight`` units.

    Returns ``out_u, out_v`` (from ``P`` to ``u`` / ``v``) and ``in_u, in_v`` (from ``u`` / ``v`` to
    ``P``); ``inf`` where the edge may not be used in that direction. A point at an end (``t`` = 0
    or 1, or ``u == v``) is that node: 0 both ways there, and the other end is not used. Cached on
    the :class:`Snapped` per weight array up to ``_ENDS_CACHE_MAX`` points (do not modify a
    Snapped's arrays in place).
    """
    w = graph.weights(weight)
    hit = s._ends_cache.get(id(w))
    if hit is not None and hit[0] is w:  # snapped points are reused by many queries
        return hit[1]
    n = len(s)
    wuv = np.full(n, np.inf)
    wvu = np.full(n, np.inf)
    m = s.e_uv >= 0
    wuv[m] = w[s.e_uv[m]]
    m = s.e_vu >= 0
    wvu[m] = w[s.e_vu[m]]
    t = s.t
    with np.errstate(invalid="ignore"):
        out_u = np.where(t == 0.0, 0.0, t * wvu)
        out_v = np.where(t == 1.0, 0.0, (1.0 - t) * wuv)
        in_u = np.where(t == 0.0, 0.0, t * wuv)
        in_v = np.where(t == 1.0, 0.0, (1.0 - t) * wvu)
    # a point at an end is that node: the other end only repeats a path the search already has
    # (dist[u] <= dist[v] + w(v -> u)), so it is dropped (fewer seeds, fewer cell entries)
    at_u = (s.u == s.v) | (t == 0.0)
    out_v[at_u] = np.inf
    in_v[at_u] = np.inf
    at_v = (t == 1.0) & ~at_u
    out_u[at_v] = np.inf
    in_u[at_v] = np.inf
    for a in (out_u, out_v, in_u, in_v):
        a.flags.writeable = False
    if n <= _ENDS_CACHE_MAX:
        s._ends_cache[id(w)] = (w, (out_u, out_v, in_u, in_v))
    return out_u, out_v, in_u, in_v


def _targets(graph: RoadGraph, d: Snapped, weight: str) -> tuple[NDArray, NDArray, NDArray]:
    """Nodes to read after a search, for the demand points ``d``: first one usable end per point (``u`` where allowed, else ``v``), then the ``v`` end of the points ``two`` that can use both; ``qoff`` is the partial edge from that node (cached like :func:`_ends`)."""
    w = graph.weights(weight)
    hit = d._ends_cache.get(("targets", id(w)))
    if hit is not None and hit[0] is w:
        return hit[1]
    _, _, in_u, in_v = _ends(graph, d, weight)
    use_u = np.isfinite(in_u)
    two = np.flatnonzero(use_u & np.isfinite(in_v))
    qnode = np.concatenate([np.where(use_u, d.u, d.v), d.v[two]])
    qoff = np.concatenate([np.where(use_u, in_u, in_v), in_v[two]])
    d._ends_cache[("targets", id(w))] = (w, (qnode, qoff, two))
    return qnode, qoff, two


def _sources(graph: RoadGraph, f: Snapped, sel: NDArray, weight: str) -> tuple[NDArray, NDArray]:
    """Search seeds of the facilities ``sel``: both ends of each one's segment, interleaved (source ``2k`` and ``2k + 1`` belong to ``sel[k]``), at leg + partial edge."""
    out_u, out_v, _, _ = _ends(graph, f, weight)
    leg = _leg(f, weight)[sel]
    node = np.empty(2 * len(sel), dtype=np.int64)
    init = np.empty(2 * len(sel), dtype=np.float64)
    node[0::2], node[1::2] = f.u[sel], f.v[sel]
    init[0::2], init[1::2] = leg + out_u[sel], leg + out_v[sel]
    return node, init


def _points_by_segment(d: Snapped) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
    """The points of ``d`` with road access ordered by segment, and their segments (sorted); built once per Snapped."""
    hit = d._ends_cache.get("by_segment")
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    pts = np.flatnonzero(d.ok & (d.seg >= 0))
    order = np.argsort(d.seg[pts], kind="stable")
    out = (pts[order], d.seg[pts][order])
    d._ends_cache["by_segment"] = out
    return out


def _same_segment_pairs(
    graph: RoadGraph, f: Snapped, fsel: NDArray, d: Snapped, dsel: NDArray | None, weight: str
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Pairs of a facility in ``fsel`` and a demand point in ``dsel`` on the same segment, and the time directly along it from the facility to the point (``inf`` where the one-way direction forbids it).

    ``dsel=None`` means every demand point with road access, looked up through a per-Snapped index
    of points by segment (O(facilities · log n + pairs) per call: catchments in many blocks);
    otherwise O(len(dsel) + pairs). The pairs are few (points sharing a segment).
    """
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    fsel = fsel[f.seg[fsel] >= 0]
    if not len(fsel):
        return empty
    fseg = f.seg[fsel]
    if dsel is None:  # every demand point with road access: found through its segment index
        by_seg, seg_sorted = _points_by_segment(d)
        useg = np.unique(fseg)
        lo = np.searchsorted(seg_sorted, useg, "left")
        hi = np.searchsorted(seg_sorted, useg, "right")
        cnt = hi - lo
        cand = np.sort(by_seg[np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)])
    else:
        dsel = dsel[d.seg[dsel] >= 0]
        if not len(dsel):
            return empty
        top = int(max(fseg.max(), d.seg[dsel].max())) + 1
        mark = np.zeros(top, dtype=bool)
        mark[fseg] = True
        cand = dsel[mark[d.seg[dsel]]]
    if not len(cand):
        return empty
    order = np.argsort(fseg, kind="stable")
    fsorted = fseg[order]
    cs = d.seg[cand]
    lo = np.searchsorted(fsorted, cs, "left")
    cnt = np.searchsorted(fsorted, cs, "right") - lo
    di = np.repeat(cand, cnt)
    first = np.cumsum(cnt) - cnt
    pos = np.repeat(lo, cnt) + np.arange(int(cnt.sum())) - np.repeat(first, cnt)
    fi = fsel[order[pos]]
    w = graph.weights(weight)
    dt = d.t[di] - f.t[fi]
    along = np.full(len(di), np.inf)
    fwd = (dt > 0) & (f.e_uv[fi] >= 0)
    along[fwd] = dt[fwd] * w[f.e_uv[fi[fwd]]]
    bwd = (dt < 0) & (f.e_vu[fi] >= 0)
    along[bwd] = -dt[bwd] * w[f.e_vu[fi[bwd]]]
    along[dt == 0] = 0.0
    return fi, di, along


def _check_limit(limit: float) -> float:
    limit = float(limit)
    if not (limit >= 0) or math.isnan(limit):
        raise ValueError("the limit must be a non-negative number")
    return limit


def nearest(
    graph: RoadGraph,
    demand: Any,
    facilities: Any,
    limit: float = 15.0,
    weight: str = "minutes",
) -> pd.DataFrame:
    """Nearest facility of every demand point, and the time (or distance) to it.

    One bounded multi-source Dijkstra per call (facilities as sources with their legs as initial
    distances), then each demand point's own leg is added.

    Parameters
    ----------
    graph : RoadGraph
    demand, facilities : Snapped, GeoDataFrame or GeoSeries
        GeoDataFrames are snapped on the fly.
    limit : float
        Largest time (minutes) or distance (metres) looked for, per ``weight``; beyond it ``inf``.
    weight : {"minutes", "metres"}

    Returns
    -------
    pandas.DataFrame
        Index = demand index; column ``minutes`` (or ``metres``): float, ``inf`` beyond ``limit`` or
        with no road access; column ``facility``: index label of the nearest facility, None if none.
        On exact ties the facility found first is given (deterministic).
    """
    d, f = _as_snapped(graph, demand), _as_snapped(graph, facilities)
    val, pos = nearest_positions(graph, d, f, limit, weight)
    weight = "metres" if weight in ("metres", "meters", "length") else weight
    has = pos >= 0
    fac = np.full(len(d), None, dtype=object)
    if has.any():
        fac[has] = np.asarray(f.index, dtype=object)[pos[has]]
    out = pd.DataFrame({weight: val}, index=d.index)
    out["facility"] = pd.Series(fac, index=d.index, dtype=object)
    return out


@overload
def nearest_positions(graph: RoadGraph, demand: Any, facilities: Any, limit: float = ..., weight: str = ..., *,
                      nodes: Literal[False] = ...) -> tuple[NDArray[np.float64], NDArray[np.int64]]: ...


@overload
def nearest_positions(graph: RoadGraph, demand: Any, facilities: Any, limit: float = ..., weight: str = ..., *,
                      nodes: Literal[True]) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]: ...


def nearest_positions(
    graph: RoadGraph,
    demand: Any,
    facilities: Any,
    limit: float = 15.0,
    weight: str = "minutes",
    *,
    nodes: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.int64]] | tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """:func:`nearest` as two arrays: the time (or distance) and the *position* of the facility.

    For callers that map facilities to something of their own (a million demand cells' labels
    as Python objects cost more than the search).

    Parameters
    ----------
    graph : RoadGraph
    demand, facilities : Snapped, GeoDataFrame or GeoSeries
    limit : float
    weight : {"minutes", "metres"}
    nodes : bool
        Also return the time to every road node, as :func:`node_times` gives it (the same
        search: no second one to draw the service circle).

    Returns
    -------
    times : ndarray of float64
        Per demand point, in order: as :func:`nearest`'s ``minutes`` (``metres``) column.
    position : ndarray of int64
        Row of ``facilities`` (0-based) of the nearest facility, ``-1`` where :func:`nearest`
        gives None.
    node_times : ndarray of float64
        Only with ``nodes``: per node of ``graph``, ``inf`` beyond ``limit``.
    """
    _, _, fsel, val, lab, at_nodes = _nearest_arrays(graph, demand, facilities, limit, weight, nodes=nodes)
    pos = np.full(len(val), -1, dtype=np.int64)
    has = np.isfinite(val) & (lab >= 0)
    pos[has] = fsel[lab[has]]
    return (val, pos, at_nodes) if nodes else (val, pos)


def _nearest_arrays(graph: RoadGraph, demand: Any, facilities: Any, limit: float, weight: str, nodes: bool = False):
    """Shared core of :func:`nearest`: one multi-source search from both ends of every facility's segment, each demand point's better end, the same-segment pairs, then the demand legs.

    Returns ``d, f, fsel, val, lab, at_nodes`` with ``lab`` the position in ``fsel`` of the facility
    found and ``at_nodes`` the time to every node (``nodes``; else None).
    """
    weight = "metres" if weight in ("metres", "meters", "length") else weight
    graph.weights(weight)  # unknown weight: ValueError
    limit = _check_limit(limit)
    d = _as_snapped(graph, demand)
    f = _as_snapped(graph, facilities)
    fsel = np.flatnonzero(f.ok)
    src_node, src_init = _sources(graph, f, fsel, weight)
    qnode, qoff, two = _targets(graph, d, weight)
    n = len(d)
    n_q = len(qnode)
    if nodes:  # every node after the targets: gathered from the same search
        qnode = np.concatenate([qnode, np.arange(graph.n_nodes, dtype=np.int64)])
    dist, label = _multi_source(graph, weight, src_node, src_init, limit, qnode)
    at_nodes = dist[n_q:].copy() if nodes else None  # a copy: a view would keep the targets' times alive
    dist, label = dist[:n_q], label[:n_q]
    val = dist[:n] + qoff[:n]
    lab = label[:n]
    if len(two):
        v2 = dist[n:] + qoff[n:]
        better = v2 < val[two]
        val[two[better]] = v2[better]
        lab[two[better]] = label[n:][better]
    lab = lab // 2  # source pairs -> facility; -1 stays -1
    fi, di, along = _same_segment_pairs(graph, f, fsel, d, None, weight)
    if len(fi):
        direct = _leg(f, weight)[fi] + along
        order = np.lexsort((direct, di))
        di, fi, direct = di[order], fi[order], direct[order]
        first = np.ones(len(di), dtype=bool)
        first[1:] = di[1:] != di[:-1]
        di, fi, direct = di[first], fi[first], direct[first]
        better = direct < val[di]
        val[di[better]] = direct[better]
        lab[di[better]] = np.searchsorted(fsel, fi[better])
    val = val + _leg(d, weight)
    val[~(d.ok & (val <= limit))] = np.inf
    return d, f, fsel, val, lab, at_nodes


def nearest_time(graph: RoadGraph, demand: Any, facilities: Any, max_minutes: float = 15.0) -> pd.Series:
    """Minutes from every demand point to its nearest facility (``inf`` beyond ``max_minutes``).

    Parameters
    ----------
    graph : RoadGraph
    demand, facilities : Snapped, GeoDataFrame or GeoSeries
    max_minutes : float

    Returns
    -------
    pandas.Series
        Float minutes, index = demand index, name ``"minutes"``; ``inf`` beyond the limit or where
        the demand point or every facility has no road access.
    """
    d, _, _, val, _, _ = _nearest_arrays(graph, demand, facilities, max_minutes, "minutes")
    return pd.Series(val, index=d.index, name="minutes")


def nearest_distance(graph: RoadGraph, demand: Any, sources: Any, max_metres: float = 15000.0) -> pd.Series:
    """Network metres from every demand point to its nearest source (the 15 km 城乡服务圈).

    Off-network legs count with their metres at both ends.

    Parameters
    ----------
    graph : RoadGraph
    demand, sources : Snapped, GeoDataFrame or GeoSeries
    max_metres : float

    Returns
    -------
    pandas.Series
        Float metres, ``inf`` beyond ``max_metres`` or with no road access; name ``"metres"``.
    """
    d, _, _, val, _, _ = _nearest_arrays(graph, demand, sources, max_metres, "metres")
    return pd.Series(val, index=d.index, name="metres")


def cell_index(graph: RoadGraph, d: Snapped, weight: str = "minutes") -> tuple[NDArray, NDArray, NDArray]:
    """The demand points hung on the graph's nodes, for :func:`catchments` (build once, pass to many calls).

    Returns
    -------
    tuple of numpy.ndarray
        ``ptr`` (CSR over nodes), demand positions and their offsets from the node.
    """
    return _cell_index(graph, d, "metres" if weight in ("metres", "meters", "length") else weight)


def _cell_index(graph: RoadGraph, d: Snapped, weight: str) -> tuple[NDArray, NDArray, NDArray]:
    """CSR node → demand-cell entries (cells with road access hang on both ends of their segment), with each entry's offset = cell leg + partial edge from that node."""
    cells = np.flatnonzero(d.ok).astype(np.int64)
    _, _, in_u, in_v = _ends(graph, d, weight)
    # entries of a node: its cells as u end, then as v end, each in cell order (a stable counting sort)
    return _kernels.node_cells(graph.n_nodes, cells, d.u, d.v, _leg(d, weight), in_u, in_v)


def catchments(
    graph: RoadGraph,
    demand: Any,
    sites: Any,
    max_minutes: float = 15.0,
    weight: str = "minutes",
    n_threads: int | None = None,
    cell_index: tuple[NDArray, NDArray, NDArray] | None = None,
) -> csr_array:
    """Which demand cells each site reaches within the limit, and in how long.

    Parameters
    ----------
    graph : RoadGraph
    demand, sites : Snapped, GeoDataFrame or GeoSeries
    max_minutes : float
        Limit in the unit of ``weight``.
    weight : {"minutes", "metres"}
    n_threads : int, optional
        Threads over chunks of sites (default: number of CPUs, at most 8). Results do not depend on it.
        With many sites the searches are pruned to the roads that lead to a demand cell within the
        limit (:data:`BOUND_GRAPHS`); the result is the same.
    cell_index : tuple, optional
        :func:`cell_index` of ``demand`` (Snapped) for this graph and weight, when the caller asks
        for the catchments of many blocks of sites: it is then built once.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(len(sites), len(demand))``, rows in site order, columns in demand order; data = time
        including both legs, stored for every pair within the limit **including exact zeros** (a cell
        at the site's snap point with no legs). Use the sparsity structure (``.indices``), not ``data > 0``,
        to tell coverage. Sites or cells without road access have empty rows/columns.
    """
    weight = "metres" if weight in ("metres", "meters", "length") else weight
    w = graph.weights(weight)
    limit = _check_limit(max_minutes)
    d = _as_snapped(graph, demand)
    s = _as_snapped(graph, sites)
    ptr, cell_ids, cell_off = cell_index if cell_index is not None else _cell_index(graph, d, weight)
    sel = np.flatnonzero(s.ok).astype(np.int64)
    out_u, out_v, _, _ = _ends(graph, s, weight)
    sleg = _leg(s, weight)
    su, sv = s.u[sel].astype(np.int64), s.v[sel].astype(np.int64)
    su_init = (sleg[sel] + out_u[sel]).astype(np.float64)
    sv_init = (sleg[sel] + out_v[sel]).astype(np.float64)

    # with many sites, each search is pruned by a lower bound of the time to the nearest demand cell
    # (one search back from the cells): sites among few cells (the people a plan still has to
    # reach) then search only the roads that lead to them; the result is the same
    bound = (_cell_bound(graph, weight, ptr, cell_off, limit) if _worth_bounding(graph, weight, len(sel), limit)
             else np.zeros(graph.n_nodes))

    def run(ch: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        r, c, v = _kernels.catchments(
            graph.indptr, graph.indices, w, su[ch], su_init[ch], sv[ch], sv_init[ch], limit, ptr, cell_ids,
            cell_off, len(d), bound,
        )
        return sel[ch][r] if len(ch) else r, c, v

    parts = _in_threads(run, len(sel), n_threads, min_per_thread=16)
    rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    vals = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
    # sorted by (site, cell) already: the kernel emits each site's cells in order, the chunks hold
    # ascending sites
    # sites and cells on the same segment also reach each other directly along it: keep the quicker
    # of that and the network time (few pairs: merged into the sorted entries by binary search)
    fi, di, along = _same_segment_pairs(graph, s, sel, d, None, weight)
    direct = sleg[fi] + along + _leg(d, weight)[di]
    near = direct <= limit
    if near.any():
        fi, di, direct = fi[near], di[near], direct[near]
        key = rows * len(d) + cols  # sorted
        pkey = fi * len(d) + di
        pos = np.searchsorted(key, pkey)
        found = pos < len(key)
        found[found] = key[pos[found]] == pkey[found]
        np.minimum.at(vals, pos[found], direct[found])
        new = ~found
        if new.any():
            o = np.argsort(pkey[new], kind="stable")
            at = pos[new][o]
            rows = np.insert(rows, at, fi[new][o])
            cols = np.insert(cols, at, di[new][o])
            vals = np.insert(vals, at, direct[new][o])
    indptr = np.zeros(len(s) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(s)), out=indptr[1:])
    return csr_array((vals, cols, indptr), shape=(len(s), len(d)))


#: :func:`catchments` prunes its searches by :func:`_cell_bound` (one search over the graph from the
#: demand cells) when the sites' searches together would cover the graph this many times over
#: (estimated from the fastest road: a short walk from a few sites is cheaper unpruned).
BOUND_GRAPHS = 2.0


def _worth_bounding(graph: RoadGraph, weight: str, n_sites: int, limit: float) -> bool:
    """Whether the sites' searches are long enough, together, to pay for :func:`_cell_bound`.

    Each search reaches at most the disc of radius ``limit × fastest speed`` (metres for a limit
    in metres), i.e. that share of the nodes' bounding box; the bound costs about one search over
    the graph.
    """
    if n_sites < 2 or graph.n_nodes == 0:
        return False
    if weight == "minutes":
        moving = graph.minutes > 0
        speed = float(np.max(graph.metres[moving] / graph.minutes[moving])) if moving.any() else 0.0
    else:
        speed = 1.0
    box = float(np.ptp(graph.x)) * float(np.ptp(graph.y))
    share = 1.0 if box <= 0 else min(1.0, math.pi * (limit * speed) ** 2 / box)
    return n_sites * share >= BOUND_GRAPHS


def _cell_bound(graph: RoadGraph, weight: str, ptr: NDArray, cell_off: NDArray, limit: float) -> NDArray[np.float64]:
    """Time from each node to its nearest demand cell (``inf`` beyond ``limit``), for pruning :func:`catchments`.

    A multi-source search on the reversed graph from the nodes that demand cells hang on, each
    starting at its least entry offset (cell leg + partial edge, as in :func:`cell_index`): the
    time of the best route from the node to a cell through that cell's nodes, i.e. a lower bound
    of (in fact equal to) the network part of any site's route to a cell through this node.
    """
    n = graph.n_nodes
    has = np.flatnonzero(ptr[1:] > ptr[:-1]).astype(np.int64)
    if not len(has):
        return np.full(n, np.inf)
    init = np.minimum.reduceat(np.asarray(cell_off, dtype=np.float64), ptr[has])
    rev = graph.csr(weight).T.tocsr()  # every edge turned round: the search runs from the cells
    ws = _Workspace(n, rev.nnz + len(has) + 1)
    # searched a hair beyond the limit and returned a hair below the exact times, so that rounding
    # (the sums taken in another order than a site's search takes them) never prunes a cell at
    # exactly the limit
    margin = 1e-9 * max(float(limit), 1.0)
    dist, _ = _kernels.multi_source(
        rev.indptr.astype(np.int64), rev.indices.astype(np.int64), np.ascontiguousarray(rev.data, dtype=np.float64),
        has, np.ascontiguousarray(init), float(limit) + margin, np.arange(n, dtype=np.int64), ws.dist, ws.label,
        ws.touched, ws.hd, ws.hn, 1,
    )
    return np.maximum(dist - margin, 0.0)


def count_within(graph: RoadGraph, demand: Any, facilities: Any, max_minutes: float = 15.0) -> pd.Series:
    """Number of facilities each demand point reaches within ``max_minutes``.

    Parameters
    ----------
    graph : RoadGraph
    demand, facilities : Snapped, GeoDataFrame or GeoSeries
    max_minutes : float

    Returns
    -------
    pandas.Series
        int64 counts, index = demand index, name ``"count"`` (0 with no road access).
    """
    d = _as_snapped(graph, demand)
    C = catchments(graph, d, facilities, max_minutes)
    counts = np.bincount(C.indices, minlength=len(d)).astype(np.int64)
    return pd.Series(counts, index=d.index, name="count")


def population_within(catchment_matrix: csr_array, pop: ArrayLike) -> NDArray[np.float64]:
    """People each site reaches: the sum of ``pop`` over the cells in its catchment.

    Parameters
    ----------
    catchment_matrix : scipy.sparse.csr_array
        From :func:`catchments` (sites × demand cells).
    pop : array_like
        Population of each demand cell, in the matrix's column order (NaN counts as 0).

    Returns
    -------
    ndarray of float64
        One value per site.
    """
    C = csr_array(catchment_matrix)
    p = np.nan_to_num(np.asarray(pop, dtype=np.float64), nan=0.0)
    if p.shape[0] != C.shape[1]:
        raise ValueError(f"pop has {p.shape[0]} values but the matrix has {C.shape[1]} cells")
    row = np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))
    return np.bincount(row, weights=p[C.indices], minlength=C.shape[0]).astype(np.float64)


def step_weights(t: ArrayLike, max_minutes: float) -> NDArray[np.float64]:
    """E2SFCA step decay: 1.0 for ``t <= T/3``, 0.68 for ``t <= 2T/3``, 0.22 for ``t <= T``, else 0."""
    t = np.asarray(t, dtype=np.float64)
    out = np.zeros_like(t)
    lo = -np.inf
    for frac, wgt in STEP_ZONES:
        hi = frac * max_minutes
        out[(t > lo) & (t <= hi)] = wgt
        lo = hi
    return out


def gaussian_weight(t: ArrayLike, max_minutes: float) -> NDArray[np.float64]:
    """E2SFCA Gaussian decay ``W = exp(-0.5 (t/β)²)`` with ``β = T / sqrt(-2 ln 0.01)``.

    So ``W(0) = 1`` and ``W(T) = 0.01``; ``W = 0`` beyond ``T``. With ``T = 0`` only ``t = 0`` is
    within reach, with ``W = 1``.
    """
    t = np.asarray(t, dtype=np.float64)
    beta = max_minutes / math.sqrt(-2.0 * math.log(GAUSSIAN_W_AT_T))
    x = t / beta if beta > 0 else np.zeros_like(t)
    return np.where(t <= max_minutes, np.exp(-0.5 * x**2), 0.0)


def _values(obj: Any, spec: Any, n: int, what: str) -> NDArray[np.float64]:
    if isinstance(spec, str):
        if not hasattr(obj, "columns") or spec not in obj.columns:
            raise InputError(
                zh=f"缺少{what}字段“{spec}”。",
                en=f"the {what} field '{spec}' is missing.",
                field=spec,
            )
        vals = pd.to_numeric(obj[spec], errors="coerce").to_numpy(dtype=np.float64)
    else:
        vals = np.asarray(spec, dtype=np.float64)
    if vals.shape[0] != n:
        raise ValueError(f"{what}: {vals.shape[0]} values for {n} rows")
    return vals


def e2sfca(
    graph: RoadGraph,
    demand: Any,
    facilities: Any,
    max_minutes: float = 15.0,
    capacity: str | ArrayLike = "capacity",
    population: str | ArrayLike = "pop",
    decay: str = "step",
    cell_index: tuple[NDArray, NDArray, NDArray] | None = None,
) -> pd.Series:
    """Enhanced two-step floating catchment area accessibility (Luo & Qi 2009).

    Step 1, supply-to-demand ratio of each facility ``j``::

        R_j = S_j / Σ_k P_k W(d_kj)        (R_j = 0 when no population is reached)

    Step 2, accessibility of each demand cell ``i``::

        A_i = Σ_j R_j W(d_ij)

    with ``d`` the travel time incl. both legs, and ``W`` = :func:`step_weights` (``"step"``: 1.0,
    0.68, 0.22 on the thirds of T) or :func:`gaussian_weight` (``"gaussian"``: W(0)=1, W(T)=0.01),
    ``W = 0`` beyond ``T``. ``A_i`` is supply per person (e.g. beds per resident).

    ``d`` is the time of :func:`catchments` (network or directly along a shared segment), but no
    catchment is kept: a compiled kernel (:func:`coverage._kernels.e2sfca`) searches from each
    facility, gets its ``R_j`` from the cells it reaches and adds ``R_j W`` to them at once (equal
    to the catchment-matrix products up to rounding, ~1e-14 relative). The facilities with road
    access run in ``E2SFCA_CHUNKS`` fixed chunks, in threads, each into its own array of ``A``
    (summed in chunk order): memory is O(cells × chunks + graph), and the result does not depend
    on the number of CPUs.

    Parameters
    ----------
    graph : RoadGraph
    demand, facilities : GeoDataFrame (or Snapped with explicit arrays)
    max_minutes : float
        ``T``, minutes (a negative or NaN value: ``ValueError``).
    capacity : str or array_like
        Facility column (or values) with the supply S_j. Missing capacities are refused.
    population : str or array_like
        Demand column (or values) with P_k (NaN counts as 0).
    decay : {"step", "gaussian"}
    cell_index : tuple, optional
        :func:`cell_index` of ``demand`` (Snapped) for this graph in minutes, when the caller asks
        for several rules on one mode: it is then built once.

    Returns
    -------
    pandas.Series
        ``A_i``, index = demand index, name ``"e2sfca"``; 0 for cells with no facility in reach or
        no road access.
    """
    if decay not in ("step", "gaussian"):
        raise ValueError("decay must be 'step' or 'gaussian'")
    d = _as_snapped(graph, demand)
    f = _as_snapped(graph, facilities)
    S = _values(facilities, capacity, len(f), "capacity 容量")
    P = np.nan_to_num(_values(demand, population, len(d), "population 人口"), nan=0.0)
    if np.isnan(S).any():
        bad = np.flatnonzero(np.isnan(S))
        raise InputError(
            zh=f"有 {len(bad)} 个设施缺少容量（如第 {bad[0] + 1} 行）；请补全容量，或改用可达数量指标。",
            en=f"{len(bad)} facilities have no capacity (e.g. row {bad[0] + 1}); fill capacity in or use "
            "count_within instead.",
            row=int(bad[0] + 1),
            field=capacity if isinstance(capacity, str) else None,
        )
    A = _e2sfca_sum(graph, d, f, _check_limit(max_minutes), S, P, decay, cell_index)
    return pd.Series(A, index=d.index, name="e2sfca")


#: Facilities with road access are split into this many chunks (consecutive, of equal count) for
#: :func:`e2sfca`, whatever the number of CPUs: each chunk adds its cells' accessibility into its
#: own array (``E2SFCA_CHUNKS × cells × 8`` bytes: 35 MB for 1.1 M cells), and the arrays are summed
#: in chunk order, so the result does not depend on the threads.
E2SFCA_CHUNKS = 4


def _e2sfca_sum(
    graph: RoadGraph, d: Snapped, f: Snapped, limit: float, S: NDArray[np.float64], P: NDArray[np.float64],
    decay: str, cell_index: tuple[NDArray, NDArray, NDArray] | None,
) -> NDArray[np.float64]:
    """``A_i`` of :func:`e2sfca` for snapped points: the kernel over fixed chunks of facilities, in threads."""
    weight = "minutes"
    w = graph.weights(weight)
    ptr, cell_ids, cell_off = cell_index if cell_index is not None else _cell_index(graph, d, weight)
    sel = np.flatnonzero(f.ok).astype(np.int64)
    A = np.zeros(len(d))
    if not len(sel):
        return A
    out_u, out_v, _, _ = _ends(graph, f, weight)
    fleg = _leg(f, weight)
    su, sv = f.u[sel].astype(np.int64), f.v[sel].astype(np.int64)
    su_init = (fleg[sel] + out_u[sel]).astype(np.float64)
    sv_init = (fleg[sel] + out_v[sel]).astype(np.float64)
    # same-segment pairs within the limit, as a CSR by position in ``sel`` (as :func:`catchments`)
    fi, di, along = _same_segment_pairs(graph, f, sel, d, None, weight)
    direct = fleg[fi] + along + _leg(d, weight)[di]
    near = direct <= limit
    pos = np.searchsorted(sel, fi[near])
    order = np.argsort(pos, kind="stable")
    pair_cell = di[near][order].astype(np.int64)
    pair_time = direct[near][order].astype(np.float64)
    pair_ptr = np.zeros(len(sel) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=len(sel)), out=pair_ptr[1:])
    supply = np.ascontiguousarray(S[sel], dtype=np.float64)
    pop = np.ascontiguousarray(P, dtype=np.float64)
    gaussian = decay == "gaussian"
    zone_hi = np.array([frac * limit for frac, _ in STEP_ZONES], dtype=np.float64)  # as in step_weights
    zone_w = np.array([wgt for _, wgt in STEP_ZONES], dtype=np.float64)
    beta = limit / math.sqrt(-2.0 * math.log(GAUSSIAN_W_AT_T))  # as in gaussian_weight
    chunks = np.array_split(np.arange(len(sel), dtype=np.int64), min(len(sel), E2SFCA_CHUNKS))

    def run(ch: NDArray[np.int64]) -> NDArray[np.float64]:
        acc = np.zeros(len(d))
        lo, hi = int(ch[0]), int(ch[-1]) + 1
        _kernels.e2sfca(
            graph.indptr, graph.indices, w, su[lo:hi], su_init[lo:hi], sv[lo:hi], sv_init[lo:hi], limit, ptr,
            cell_ids, cell_off, len(d), pair_ptr[lo:hi + 1] - pair_ptr[lo], pair_cell[pair_ptr[lo]:pair_ptr[hi]],
            pair_time[pair_ptr[lo]:pair_ptr[hi]], supply[lo:hi], pop, gaussian, zone_hi, zone_w, beta, acc,
        )
        return acc

    n_threads = min(len(chunks), os.cpu_count() or 1, 8)
    if n_threads == 1:
        for ch in chunks:
            A += run(ch)
        return A
    with ThreadPoolExecutor(n_threads) as ex:
        for a in ex.map(run, chunks):  # in chunk order, each array dropped once added
            A += a
            del a
    return A


def node_times(graph: RoadGraph, sources: Any, limit: float, weight: str = "minutes") -> NDArray[np.float64]:
    """Time (or distance) from the nearest source to every road node, ``inf`` beyond ``limit``.

    The same bounded multi-source search as :func:`nearest`, returned per node instead of per demand
    point; used to draw service circles from the reached road network.

    Parameters
    ----------
    graph : RoadGraph
    sources : Snapped, GeoDataFrame or GeoSeries
        Facilities (leg + partial edge to each end of their segment count as initial distances).
        Only nodes are timed: the part of a facility's own segment within reach is not reported
        when neither end is (a facility mid-way on a road longer than the threshold allows).
    limit : float
        Largest time (minutes) or distance (metres).
    weight : {"minutes", "metres"}

    Returns
    -------
    numpy.ndarray of float64
        One value per node of ``graph``.
    """
    weight = "metres" if weight in ("metres", "meters", "length") else weight
    graph.weights(weight)  # unknown weight: ValueError
    f = _as_snapped(graph, sources)
    fsel = np.flatnonzero(f.ok)
    src_node, src_init = _sources(graph, f, fsel, weight)
    all_nodes = np.arange(graph.n_nodes, dtype=np.int64)
    dist, _ = _multi_source(graph, weight, src_node, src_init, _check_limit(limit), all_nodes)
    return dist
