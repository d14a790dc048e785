"""Compiled shortest-path kernels (numba, ``cache=True``) used by :mod:`coverage.access`.

All kernels work on a CSR graph (``indptr``, ``indices``, ``weight``) and a binary heap with lazy
deletion in arrays of ``n_edges + n_sources + 1`` slots (the most pushes a search can make), so memory
is linear in the graph size; catchment output buffers grow by doubling.

* :func:`multi_source` — bounded multi-source Dijkstra. Each source node starts with its own
  initial distance (the off-network leg of the facility standing on it: the "virtual source" trick),
  so the result is ``min over facilities f of (leg_f + d(f, node))`` and the label of that facility.
  It runs in a caller-owned workspace (reset only where it touched), so a query costs O(nodes
  reached + nodes asked for), not O(n_nodes).
* :func:`catchments` — one bounded single-source Dijkstra per site, visiting only reached nodes and
  resetting only the nodes it touched, then mapping reached nodes to demand cells through a CSR
  node → cells index. Releases the GIL (``nogil=True``) so chunks of sites run in threads.

numba is imported plainly: numba's probe for coverage.py (``import coverage``) is answered with
``ImportError`` by the package itself (see :mod:`coverage`), in every import order.
"""

from __future__ import annotations

import numba
import numpy as np

njit = numba.njit


@njit(cache=True, nogil=True, inline="always")
def _push(hd, hn, size, d, node):
    """Push ``(d, node)`` onto the heap held in ``hd, hn[:size]``; returns the new size.

    The arrays must have room: callers size them to ``n_edges + n_sources + 1``, the most pushes a
    lazy-deletion Dijkstra can make (one per successful relaxation, at most one per edge).
    """
    i = size
    size += 1
    while i > 0:
        p = (i - 1) >> 1
        if hd[p] > d or (hd[p] == d and hn[p] > node):
            hd[i] = hd[p]
            hn[i] = hn[p]
            i = p
        else:
            break
    hd[i] = d
    hn[i] = node
    return size


@njit(cache=True, nogil=True, inline="always")
def _pop(hd, hn, size):
    """Pop the smallest ``(d, node)`` (ties: lowest node); returns ``d, node, size``."""
    d0 = hd[0]
    n0 = hn[0]
    size -= 1
    if size > 0:
        d = hd[size]
        node = hn[size]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and (hd[c + 1] < hd[c] or (hd[c + 1] == hd[c] and hn[c + 1] < hn[c])):
                c += 1
            if hd[c] < d or (hd[c] == d and hn[c] < node):
                hd[i] = hd[c]
                hn[i] = hn[c]
                i = c
            else:
                break
        hd[i] = d
        hn[i] = node
    return d0, n0, size


@njit(cache=True, nogil=True, inline="always")
def _seed(u, d, lab, limit, dist, label, touched, ntouch, hd, hn, size):
    """Start a source at node ``u`` with distance ``d`` if that improves ``u``; push it."""
    if d <= limit and d < dist[u]:
        if dist[u] == np.inf:
            touched[ntouch] = u
            ntouch += 1
        dist[u] = d
        label[u] = lab
        size = _push(hd, hn, size, d, u)
    return ntouch, size


@njit(cache=True, nogil=True, inline="always")
def _settle(indptr, indices, weight, limit, dist, label, touched, ntouch, hd, hn, size, pops):
    """Run Dijkstra from the heap until it is empty, within ``limit``; record touched nodes.

    Returns the new ``ntouch`` and ``pops`` (heap pops so far, which measure repeated work).
    """
    while size > 0:
        d, u, size = _pop(hd, hn, size)
        pops += 1
        if d > dist[u]:
            continue
        lab = label[u]
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            nd = d + weight[k]
            if nd <= limit and nd < dist[v]:
                if dist[v] == np.inf:
                    touched[ntouch] = v
                    ntouch += 1
                dist[v] = nd
                label[v] = lab
                size = _push(hd, hn, size, nd, v)
    return ntouch, pops


@njit(cache=True, nogil=True)
def multi_source(indptr, indices, weight, src_node, src_init, limit, query, dist, label, touched, hd, hn):
    """Bounded multi-source Dijkstra with per-source initial distances, in a reusable workspace.

    Costs O(visited), not O(n_nodes): the workspace arrays are filled once by the caller (``dist``
    with ``inf``, ``label`` with -1) and every entry the search sets is recorded in ``touched`` and
    put back before returning, after the distances of the ``query`` nodes have been gathered.

    Sources are searched one after another, each pruned by the distances already found
    (``nd < dist[v]``): after sources ``0..s`` the workspace holds ``min over them of (leg + d)``,
    so the final result is the multi-source one. Each search stays in its own small neighbourhood
    (small heap, good cache locality), which is much faster than one heap holding every front when
    the reaches barely overlap. When they overlap a lot (nodes settled again and again), the
    remaining sources switch to one simultaneous multi-source search, which is still exact because
    it starts from the distances already found; so the work stays within a small factor of the
    number of nodes reached.

    Parameters
    ----------
    indptr, indices, weight : ndarray
        CSR graph (int64, int64, float64).
    src_node : ndarray of int64
        Node of each source.
    src_init : ndarray of float64
        Initial distance of each source (its off-network leg).
    limit : float
        Nodes farther than this are left at ``inf``.
    query : ndarray of int64
        Nodes whose distance and label are returned.
    dist, label : ndarray of float64 / int64, shape (n_nodes,)
        Workspace, all ``inf`` / -1 on entry; restored on exit.
    touched : ndarray of int64, shape (n_nodes,)
        Workspace (scratch).
    hd, hn : ndarray of float64 / int64
        Heap workspace with at least ``n_edges + n_sources + 1`` slots.

    Returns
    -------
    qdist : ndarray of float64, shape (len(query),)
        ``min over sources of (src_init + d(source, node))``, ``inf`` beyond ``limit``.
    qlabel : ndarray of int64, shape (len(query),)
        Index (into the source arrays) of a source attaining it, -1 if none.
    """
    ntouch = 0
    pops = 0
    ns = src_node.shape[0]
    s = 0
    # phase 1: one small search per source, pruned by what earlier sources reached
    while s < ns:
        if s >= 8 and pops > 2 * ntouch:
            break  # heavy overlap: finish the rest in one simultaneous search
        ntouch, size = _seed(src_node[s], src_init[s], s, limit, dist, label, touched, ntouch, hd, hn, 0)
        ntouch, pops = _settle(indptr, indices, weight, limit, dist, label, touched, ntouch, hd, hn, size, pops)
        s += 1
    # phase 2 (only when phase 1 stopped early): the remaining sources together
    size = 0
    for r in range(s, ns):
        ntouch, size = _seed(src_node[r], src_init[r], r, limit, dist, label, touched, ntouch, hd, hn, size)
    ntouch, pops = _settle(indptr, indices, weight, limit, dist, label, touched, ntouch, hd, hn, size, pops)
    nq = query.shape[0]
    qdist = np.empty(nq, dtype=np.float64)
    qlabel = np.empty(nq, dtype=np.int64)
    for i in range(nq):
        qdist[i] = dist[query[i]]
        qlabel[i] = label[query[i]]
    for i in range(ntouch):
        dist[touched[i]] = np.inf
        label[touched[i]] = -1
    return qdist, qlabel


@njit(cache=True, nogil=True)
def catchments(indptr, indices, weight, site_node, site_init, limit, cell_ptr, cell_ids, cell_leg):
    """Bounded single-source Dijkstra per site, mapped to demand cells.

    Parameters
    ----------
    indptr, indices, weight : ndarray
        CSR graph.
    site_node : ndarray of int64
        Node of each site (sites without road access are not passed in).
    site_init : ndarray of float64
        Leg of each site.
    limit : float
    cell_ptr, cell_ids : ndarray of int64
        CSR index node → demand cells standing on it (only cells with road access).
    cell_leg : ndarray of float64
        Leg of each demand cell (by cell id).

    Returns
    -------
    rows, cols : ndarray of int64
        Position of the site in ``site_node``, and the demand cell id.
    vals : ndarray of float64
        Total time (site leg + network + cell leg), only entries ``<= limit``.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    touched = np.empty(n, dtype=np.int64)
    hd = np.empty(indices.shape[0] + 2, dtype=np.float64)
    hn = np.empty(indices.shape[0] + 2, dtype=np.int64)
    cap = 1024
    rows = np.empty(cap, dtype=np.int64)
    cols = np.empty(cap, dtype=np.int64)
    vals = np.empty(cap, dtype=np.float64)
    nout = 0
    for s in range(site_node.shape[0]):
        src = site_node[s]
        d0 = site_init[s]
        if not (d0 <= limit):
            continue
        ntouch = 0
        dist[src] = d0
        touched[ntouch] = src
        ntouch += 1
        size = 0
        size = _push(hd, hn, size, d0, src)
        while size > 0:
            d, u, size = _pop(hd, hn, size)
            if d > dist[u]:
                continue
            # settled: emit the cells on this node
            for c in range(cell_ptr[u], cell_ptr[u + 1]):
                cid = cell_ids[c]
                t = d + cell_leg[cid]
                if t <= limit:
                    if nout == cap:
                        cap *= 2
                        r2 = np.empty(cap, dtype=np.int64)
                        c2 = np.empty(cap, dtype=np.int64)
                        v2 = np.empty(cap, dtype=np.float64)
                        r2[:nout] = rows[:nout]
                        c2[:nout] = cols[:nout]
                        v2[:nout] = vals[:nout]
                        rows, cols, vals = r2, c2, v2
                    rows[nout] = s
                    cols[nout] = cid
                    vals[nout] = t
                    nout += 1
            for k in range(indptr[u], indptr[u + 1]):
                v = indices[k]
                nd = d + weight[k]
                if nd <= limit and nd < dist[v]:
                    if dist[v] == np.inf:
                        touched[ntouch] = v
                        ntouch += 1
                    dist[v] = nd
                    size = _push(hd, hn, size, nd, v)
        for i in range(ntouch):
            dist[touched[i]] = np.inf
    return rows[:nout].copy(), cols[:nout].copy(), vals[:nout].copy()


@njit(cache=True, inline="always")
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@njit(cache=True)
def weak_components(indptr, indices, n):
    """Weakly connected components of a CSR graph by union–find (O(n + m) time, O(n) memory).

    Returns
    -------
    n_components : int
    labels : ndarray of int32, shape (n,)
        Component of each node, numbered in order of each component's lowest node.
    """
    parent = np.arange(n)
    for u in range(n):
        for k in range(indptr[u], indptr[u + 1]):
            a = _find(parent, u)
            b = _find(parent, indices[k])
            if a != b:
                if a < b:
                    parent[b] = a
                else:
                    parent[a] = b
    labels = np.empty(n, dtype=np.int32)
    comp_of_root = np.full(n, -1, dtype=np.int32)
    nc = 0
    for i in range(n):
        r = _find(parent, i)
        if comp_of_root[r] < 0:
            comp_of_root[r] = nc
            nc += 1
        labels[i] = comp_of_root[r]
    return nc, labels
