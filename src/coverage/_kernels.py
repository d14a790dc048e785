"""Compiled kernels (numba, ``cache=True``): shortest paths, components, snapping and k-means.

Shortest paths for :mod:`coverage.access` and :mod:`coverage.network`, and the weighted k-means
that splits large uncovered clusters in :mod:`coverage.evaluate`.

The path kernels work on a CSR graph (``indptr``, ``indices``, ``weight``) and a binary heap with lazy
deletion in arrays of ``n_edges + n_sources + 1`` slots (the most pushes a search can make), so memory
is linear in the graph size; catchment output buffers grow by doubling.

* :func:`multi_source` — bounded multi-source Dijkstra. Each source node starts with its own
  initial distance (leg + partial edge of the facility snapped beside it: the "virtual source" trick),
  so the result is ``min over facilities f of (leg_f + d(f, node))`` and the label of that facility.
  It runs in a caller-owned workspace (reset only where it touched), so a query costs O(nodes
  reached + nodes asked for), not O(n_nodes).
* :func:`catchments` — one bounded single-source Dijkstra per site (seeded at both ends of the
  site's road segment), visiting only reached nodes and resetting only the nodes it touched, then
  mapping reached nodes to demand cells through a CSR node → cell-entries index (a cell hangs on
  both ends of its segment; the least time per cell is kept; built by :func:`node_cells`, a
  counting sort). Releases the GIL (``nogil=True``) so chunks of sites run in threads.
* :func:`e2sfca` — the same search per site, followed at once by the site's E2SFCA ratio and its
  share of every reached cell's accessibility (no catchment is kept); ``nogil`` as well.
* :func:`build_segments` — the undirected road segments of a CSR graph with their directed edge ids
  (one-way streets have one), O(n + m).
* :func:`weighted_kmeans` — population-weighted k-means (k-means++ seeding, Lloyd) of many
  small point sets in one call: scikit-learn's per-fit overhead (validation, threads) was most of
  the time of :func:`coverage.evaluate.uncovered_clusters` on a large county (848 fits). Its sums
  run in the same order as the plain algorithm's (the same floats); the work skipped (draws by
  bisection, rows of a raster far from a trial, Lloyd points whose centre cannot change) never
  changes a label.
* :func:`link_keys`, :func:`raster_keys`, :func:`gather_nodes`, :func:`first_seen`,
  :func:`label_reach`, :func:`rows_of_labels`, :func:`label_sums`, :func:`first_and_sums`,
  :func:`cluster_unit_pairs`, :func:`uncovered_rows` — the per-cell passes of
  :func:`coverage.evaluate.uncovered_clusters` (linking on the grid, per-cluster sums in
  ``numpy.bincount``'s order, main units), each one pass without pandas hashing.
* :func:`snap_segments` — the exact nearest segment of each point, by a ring search over a dense
  bucket grid of index points (nodes and midpoints of long-segment pieces) that skips buckets and
  points too far to matter and stops once no unseen segment can be nearer; it writes every array
  of a :class:`coverage.access.Snapped` in place (chunks of points in threads: ``nogil``).
  :func:`bucket_grid` builds the grid (a counting sort) and :func:`strip_order` orders the points
  by strips west to east so that the roads near a stretch of raster rows stay in the CPU cache.

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
def multi_source(indptr, indices, weight, src_node, src_init, limit, query, dist, label, touched, hd, hn, group=1):
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

    Sources come in consecutive groups of ``group`` (the two ends of one facility's road segment)
    that start together in phase 1, so a facility's neighbourhood is searched once, not once per end.

    Parameters
    ----------
    indptr, indices, weight : ndarray
        CSR graph (int64, int64, float64).
    src_node : ndarray of int64
        Node of each source.
    src_init : ndarray of float64
        Initial distance of each source (its leg plus partial edge; ``inf``: unused).
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
    group : int
        Sources per phase-1 search (1 or 2).

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
        if s >= 8 * group and pops > 2 * ntouch:
            break  # heavy overlap: finish the rest in one simultaneous search
        size = 0
        for r in range(s, min(s + group, ns)):
            ntouch, size = _seed(src_node[r], src_init[r], r, limit, dist, label, touched, ntouch, hd, hn, size)
        ntouch, pops = _settle(indptr, indices, weight, limit, dist, label, touched, ntouch, hd, hn, size, pops)
        s += group
    s = min(s, ns)
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


@njit(cache=True, nogil=True, inline="always")
def _site_cells(indptr, indices, weight, su, su_init, sv, sv_init, limit, cell_ptr, cell_ids, cell_off, dist,
                touched, best, ctouched, hd, hn, bound):
    """One site's bounded Dijkstra, mapped to the demand cells (shared by :func:`catchments` and :func:`e2sfca`).

    The site starts from both ends of its edge (``su``/``sv`` with their initial distances, ``inf``
    where that end is not used). Each settled node offers its time plus each hanging cell's offset
    to that cell; ``best`` keeps the least time per cell (``<= limit``) and ``ctouched[:nct]`` the
    cells reached, in the order first reached. ``dist`` is reset before returning; ``best`` is left
    for the caller to read and reset.

    ``bound`` is a lower bound per node of the time from it to the nearest demand cell
    (:func:`coverage.access.cell_bound`; zeros: no pruning). A node is entered only when its time
    plus its bound is within the limit: from any other node no cell is reached in time, so the
    cells reached and their times are those of the unpruned search.

    Returns
    -------
    int
        ``nct``, the number of cells reached.
    """
    ntouch = 0
    nct = 0
    size = 0
    if su_init + bound[su] <= limit:
        dist[su] = su_init
        touched[ntouch] = su
        ntouch += 1
        size = _push(hd, hn, size, su_init, su)
    if sv_init + bound[sv] <= limit and sv_init < dist[sv]:
        if dist[sv] == np.inf:
            touched[ntouch] = sv
            ntouch += 1
        dist[sv] = sv_init
        size = _push(hd, hn, size, sv_init, sv)
    while size > 0:
        d, u, size = _pop(hd, hn, size)
        if d > dist[u]:
            continue
        # settled: offer this node's time to the cells hanging on it
        for c in range(cell_ptr[u], cell_ptr[u + 1]):
            cid = cell_ids[c]
            t = d + cell_off[c]
            if t <= limit and t < best[cid]:
                if best[cid] == np.inf:
                    ctouched[nct] = cid
                    nct += 1
                best[cid] = t
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            nd = d + weight[k]
            if nd + bound[v] <= limit and nd < dist[v]:
                if dist[v] == np.inf:
                    touched[ntouch] = v
                    ntouch += 1
                dist[v] = nd
                size = _push(hd, hn, size, nd, v)
    for i in range(ntouch):
        dist[touched[i]] = np.inf
    return nct


@njit(cache=True, nogil=True)
def catchments(indptr, indices, weight, su, su_init, sv, sv_init, limit, cell_ptr, cell_ids, cell_off, n_cells, bound):
    """Bounded single-source Dijkstra per site, mapped to demand cells.

    A site snapped onto a road edge starts from both ends of that edge (``su`` with ``su_init``,
    ``sv`` with ``sv_init``: leg plus the partial edge to that end; ``inf`` where the edge may not be
    driven that way). A demand cell hangs on one or two nodes (the ends of its edge) with an offset
    each (its leg plus the partial edge from that end); its time is the least over its nodes, kept
    per cell in a scratch array that is reset after every site.

    Parameters
    ----------
    indptr, indices, weight : ndarray
        CSR graph.
    su, sv : ndarray of int64
        The two start nodes of each site (equal for a site standing on a node).
    su_init, sv_init : ndarray of float64
        Initial distance at ``su`` / ``sv`` (``inf``: that end is not used).
    limit : float
    cell_ptr, cell_ids : ndarray of int64
        CSR index node → demand-cell entries hanging on it (only cells with road access).
    cell_off : ndarray of float64
        Offset of each entry (aligned with ``cell_ids``): cell leg + partial edge from the node.
    n_cells : int
        Number of demand cells (size of the scratch array).
    bound : ndarray of float64, shape (n_nodes,)
        Lower bound per node of the time to the nearest demand cell (zeros: none), to prune the
        searches (see :func:`_site_cells`); the result does not depend on it.

    Returns
    -------
    rows, cols : ndarray of int64
        Position of the site in ``su``, and the demand cell id; sorted by ``(row, col)``.
    vals : ndarray of float64
        Least time over the cell's nodes (site leg + network + cell offset), only entries ``<= limit``.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    touched = np.empty(n, dtype=np.int64)
    best = np.full(n_cells, np.inf)
    ctouched = np.empty(n_cells, dtype=np.int64)
    hd = np.empty(indices.shape[0] + 3, dtype=np.float64)
    hn = np.empty(indices.shape[0] + 3, dtype=np.int64)
    cap = 1024
    rows = np.empty(cap, dtype=np.int64)
    cols = np.empty(cap, dtype=np.int64)
    vals = np.empty(cap, dtype=np.float64)
    nout = 0
    for s in range(su.shape[0]):
        nct = _site_cells(indptr, indices, weight, su[s], su_init[s], sv[s], sv_init[s], limit, cell_ptr, cell_ids,
                          cell_off, dist, touched, best, ctouched, hd, hn, bound)
        if nout + nct > cap:
            while nout + nct > cap:
                cap *= 2
            r2 = np.empty(cap, dtype=np.int64)
            c2 = np.empty(cap, dtype=np.int64)
            v2 = np.empty(cap, dtype=np.float64)
            r2[:nout] = rows[:nout]
            c2[:nout] = cols[:nout]
            v2[:nout] = vals[:nout]
            rows, cols, vals = r2, c2, v2
        # the site's cells in ascending order: the output is sorted by (site, cell), as a CSR
        # matrix wants it, without a sort of all the pairs afterwards
        ctouched[:nct].sort()
        for i in range(nct):
            cid = ctouched[i]
            rows[nout] = s
            cols[nout] = cid
            vals[nout] = best[cid]
            nout += 1
            best[cid] = np.inf
    return rows[:nout].copy(), cols[:nout].copy(), vals[:nout].copy()


@njit(cache=True, nogil=True)
def node_cells(n_nodes, cells, u, v, leg, in_u, in_v):
    """CSR node → demand-cell entries for :func:`catchments` / :func:`e2sfca`, by a counting sort.

    Each cell of ``cells`` hangs on ``u[c]`` with offset ``leg[c] + in_u[c]`` and on ``v[c]`` with
    ``leg[c] + in_v[c]`` (entries with a non-finite offset are left out). The entries of a node
    come in the order of a stable sort of ``[u entries of cells..., v entries of cells...]`` by
    node, so this equals ``np.argsort(nodes, kind="stable")`` of those, in O(cells + nodes).

    Returns
    -------
    ptr : ndarray of int64, shape (n_nodes + 1,)
    ids : ndarray of int64
        Cell of each entry.
    off : ndarray of float64
        Offset of each entry.
    """
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    for i in range(cells.shape[0]):
        c = cells[i]
        if np.isfinite(leg[c] + in_u[c]):
            ptr[u[c] + 1] += 1
        if np.isfinite(leg[c] + in_v[c]):
            ptr[v[c] + 1] += 1
    for k in range(n_nodes):
        ptr[k + 1] += ptr[k]
    pos = ptr[:-1].copy()
    ids = np.empty(ptr[n_nodes], dtype=np.int64)
    off = np.empty(ptr[n_nodes], dtype=np.float64)
    for i in range(cells.shape[0]):
        c = cells[i]
        o = leg[c] + in_u[c]
        if np.isfinite(o):
            k = pos[u[c]]
            ids[k] = c
            off[k] = o
            pos[u[c]] = k + 1
    for i in range(cells.shape[0]):
        c = cells[i]
        o = leg[c] + in_v[c]
        if np.isfinite(o):
            k = pos[v[c]]
            ids[k] = c
            off[k] = o
            pos[v[c]] = k + 1
    return ptr, ids, off


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _decay(t, limit, gaussian, zone_hi, zone_w, beta):
    """E2SFCA weight of a time ``t``, as :func:`coverage.access.step_weights` / ``gaussian_weight`` compute it.

    Step: the weight of the zone with ``lo < t <= hi`` (``zone_hi``: upper bounds, the first zone
    starting at ``-inf``; 0 beyond the last). Gaussian: ``exp(-0.5 (t/beta)²)`` for ``t <= limit``,
    else 0; with ``limit = 0`` (``beta = 0``) only ``t = 0`` is within reach, with weight 1.
    """
    if gaussian:
        if t <= limit:
            x = t / beta if beta > 0 else 0.0
            return np.exp(-0.5 * (x * x))
        return 0.0
    w = 0.0
    lo = -np.inf
    for z in range(zone_hi.shape[0]):
        hi = zone_hi[z]
        if t > lo and t <= hi:
            w = zone_w[z]
        lo = hi
    return w


@njit(cache=True, nogil=True, error_model="numpy")
def e2sfca(indptr, indices, weight, su, su_init, sv, sv_init, limit, cell_ptr, cell_ids, cell_off, n_cells,
           pair_ptr, pair_cell, pair_time, supply, pop, gaussian, zone_hi, zone_w, beta, acc):
    """E2SFCA of a chunk of sites in one pass, without materialising their catchments.

    Per site ``j``: the bounded single-source Dijkstra of :func:`catchments` gives the least time
    to every reached cell (scratch ``best``, the cells in ``ctouched``); the site's same-segment
    pairs (direct times along the shared segment, all ``<= limit``) then lower those times or add
    cells not reached otherwise. Then ``demand_j = Σ P_c W(t_c)`` over the site's cells,
    ``R_j = S_j / demand_j`` (0 when ``demand_j <= 0``, NaN included) and ``acc[c] += W(t_c) R_j``,
    sites in order. The cells are taken in the order the search reached them (fixed by the
    inputs: heap ties go to the lower node), not sorted (a sort per site cost a fifth of the
    time), so the sums equal those of a catchment matrix up to rounding. The scratch is reset
    after each site, so the work is O(nodes and cells reached) per site.

    Parameters
    ----------
    indptr, indices, weight : ndarray
        CSR graph.
    su, sv, su_init, sv_init : ndarray
        Start nodes and initial distances of each site, as in :func:`catchments`.
    limit : float
    cell_ptr, cell_ids, cell_off : ndarray
        CSR index node → demand-cell entries, as in :func:`catchments`.
    n_cells : int
    pair_ptr : ndarray of int64, shape (n_sites + 1,)
        CSR index site → its same-segment pairs.
    pair_cell : ndarray of int64
        Demand cell of each pair.
    pair_time : ndarray of float64
        Direct time of each pair (site leg + along the segment + cell leg), ``<= limit``.
    supply : ndarray of float64
        ``S_j`` of each site.
    pop : ndarray of float64, shape (n_cells,)
        ``P_c`` of each cell (no NaN).
    gaussian : bool
        Gaussian decay with ``beta``; else step decay by ``zone_hi`` / ``zone_w``.
    zone_hi, zone_w : ndarray of float64
        Step zones: upper bounds (ascending) and weights.
    beta : float
    acc : ndarray of float64, shape (n_cells,)
        Accessibility, added to in place.

    Returns
    -------
    ndarray of float64
        ``R_j`` of each site.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    touched = np.empty(n, dtype=np.int64)
    best = np.full(n_cells, np.inf)
    ctouched = np.empty(n_cells, dtype=np.int64)
    hd = np.empty(indices.shape[0] + 3, dtype=np.float64)
    hn = np.empty(indices.shape[0] + 3, dtype=np.int64)
    ratio = np.zeros(su.shape[0])
    no_bound = np.zeros(n)
    for s in range(su.shape[0]):
        nct = _site_cells(indptr, indices, weight, su[s], su_init[s], sv[s], sv_init[s], limit, cell_ptr, cell_ids,
                          cell_off, dist, touched, best, ctouched, hd, hn, no_bound)
        # same-segment pairs (each cell at most once per site): the quicker of the two times; a
        # cell still at inf here was not reached by the search (which never stores inf)
        for p in range(pair_ptr[s], pair_ptr[s + 1]):
            cid = pair_cell[p]
            t = pair_time[p]
            if best[cid] == np.inf:
                ctouched[nct] = cid
                nct += 1
                best[cid] = t
            elif t < best[cid]:
                best[cid] = t
        demand = 0.0
        for i in range(nct):
            cid = ctouched[i]
            w = _decay(best[cid], limit, gaussian, zone_hi, zone_w, beta)
            best[cid] = w  # the time is not needed any more: keep the weight
            demand += w * pop[cid]
        r = 0.0
        if demand > 0:
            r = supply[s] / demand
        ratio[s] = r
        for i in range(nct):
            cid = ctouched[i]
            acc[cid] += best[cid] * r
            best[cid] = np.inf
    return ratio


@njit(cache=True, nogil=True)
def build_segments(indptr, indices, n):
    """Undirected road segments of a CSR graph, each once, with its directed edge ids.

    A pair of nodes joined by an edge in either direction is one segment ``(a, b)``: ``e_ab`` is the
    CSR position of the edge ``a → b`` and ``e_ba`` that of ``b → a`` (-1 where that direction does
    not exist, i.e. a one-way street). Two-way pairs are numbered once, from their lower node. Nodes
    with no edge at all become a degenerate segment ``(a, a)`` with no edges, so a point can still
    stand on them. O(n + m · degree) time, O(n + m) memory.

    Returns
    -------
    a, b, e_ab, e_ba : ndarray of int32, shape (n_segments,)
        (int32 halves the index's memory; node and edge numbers stay below 2**31.)
    node_ptr : ndarray of int64
    node_seg : ndarray of int32
        CSR index node → segments ending at it (a degenerate segment once).
    """
    m = indices.shape[0]
    indeg = np.zeros(n, dtype=np.int64)
    for k in range(m):
        indeg[indices[k]] += 1
    a = np.empty(m + n, dtype=np.int32)
    b = np.empty(m + n, dtype=np.int32)
    eab = np.empty(m + n, dtype=np.int32)
    eba = np.empty(m + n, dtype=np.int32)
    ns = 0
    for u in range(n):
        if indptr[u + 1] == indptr[u] and indeg[u] == 0:
            a[ns] = u
            b[ns] = u
            eab[ns] = -1
            eba[ns] = -1
            ns += 1
            continue
        for k in range(indptr[u], indptr[u + 1]):
            v = indices[k]
            if v == u:
                continue
            rk = -1
            for j in range(indptr[v], indptr[v + 1]):
                if indices[j] == u:
                    rk = j
                    break
            if u < v or rk < 0:
                a[ns] = u
                b[ns] = v
                eab[ns] = k
                eba[ns] = rk
                ns += 1
    cnt = np.zeros(n + 1, dtype=np.int64)
    for s in range(ns):
        cnt[a[s] + 1] += 1
        if b[s] != a[s]:
            cnt[b[s] + 1] += 1
    for i in range(n):
        cnt[i + 1] += cnt[i]
    fill = cnt[:n].copy()
    node_seg = np.empty(cnt[n], dtype=np.int32)
    for s in range(ns):
        node_seg[fill[a[s]]] = s
        fill[a[s]] += 1
        if b[s] != a[s]:
            node_seg[fill[b[s]]] = s
            fill[b[s]] += 1
    return a[:ns].copy(), b[:ns].copy(), eab[:ns].copy(), eba[:ns].copy(), cnt, node_seg


@njit(cache=True, nogil=True)
def bucket_grid(px, py, x0, y0, cell, nx, ny):
    """Dense bucket grid of points (a counting sort, O(n + buckets)).

    Point ``i`` falls in bucket ``(floor((px - x0) / cell), floor((py - y0) / cell))``, key
    ``i_x * ny + i_y``. Returns ``ptr`` (int32, ``nx * ny + 1``) and ``order`` (int32): bucket ``k``
    holds ``order[ptr[k]:ptr[k + 1]]``, in increasing point number.
    """
    n = px.shape[0]
    key = np.empty(n, dtype=np.int64)
    ptr = np.zeros(nx * ny + 1, dtype=np.int32)
    for i in range(n):
        k = np.int64(np.floor((px[i] - x0) / cell)) * ny + np.int64(np.floor((py[i] - y0) / cell))
        key[i] = k
        ptr[k + 1] += 1
    for k in range(nx * ny):
        ptr[k + 1] += ptr[k]
    fill = ptr[:-1].copy()
    order = np.empty(n, dtype=np.int32)
    for i in range(n):
        k = key[i]
        order[fill[k]] = i
        fill[k] += 1
    return ptr, order


@njit(cache=True, nogil=True)
def strip_order(qx, x0, width, n_strips):
    """Positions of points ordered by vertical strips ``floor((qx - x0) / width)`` (a counting sort).

    Strips are clamped to ``0 … n_strips - 1``; the sort is stable (within a strip, the given
    order); points with a non-finite ``qx`` come first.
    """
    n = qx.shape[0]
    sid = np.zeros(n, dtype=np.int32)
    for i in range(n):
        f = (qx[i] - x0) / width
        if np.isfinite(f):
            sid[i] = np.int32(min(max(np.floor(f), 0.0), n_strips - 1.0)) + 1
    cnt = np.zeros(n_strips + 2, dtype=np.int64)
    for i in range(n):
        cnt[sid[i] + 1] += 1
    for k in range(n_strips + 1):
        cnt[k + 1] += cnt[k]
    perm = np.empty(n, dtype=np.int64)
    for i in range(n):
        k = sid[i]
        perm[cnt[k]] = i
        cnt[k] += 1
    return perm


@njit(cache=True, nogil=True, inline="always")
def _to_segment(s, px, py, x, y, seg_a, seg_b):
    """Squared distance from ``(px, py)`` to segment ``s`` and the position ``t`` of the nearest point on it."""
    xa = x[seg_a[s]]
    ya = y[seg_a[s]]
    dx = x[seg_b[s]] - xa
    dy = y[seg_b[s]] - ya
    l2 = dx * dx + dy * dy
    t = 0.0
    if l2 > 0.0:
        t = ((px - xa) * dx + (py - ya) * dy) / l2
        if t < 0.0:
            t = 0.0
        elif t > 1.0:
            t = 1.0
    ux = px - (xa + t * dx)
    uy = py - (ya + t * dy)
    return ux * ux + uy * uy, t


@njit(cache=True, nogil=True)
def snap_segments(qx, qy, x, y, n_nodes, node_ptr, node_seg, piece_seg, seg_a, seg_b, e_ab, e_ba, px, py,
                  reach, x0, y0, cell, nx, ny, ptr, order, max_leg, m_per_min,
                  seg, u, v, e_uv, e_vu, node, tt, leg, leg_min, ok, mark, perm):
    """Exact nearest segment of each point, by a ring search over a dense bucket grid of index points.

    The index points are the road nodes (standing for the segments ending there) followed by the
    midpoints of the pieces of long segments; every point of a segment lies within ``reach`` of one
    of its index points. Rings of buckets around the query point are searched outward; after ring
    ``r`` every unseen index point is farther than ``r·cell + (distance to the own bucket's edge)``,
    so once that exceeds ``best + reach`` no unseen segment can be nearer and the answer is exact.
    Within the search, a bucket whose rectangle and an index point that are farther than
    ``best + reach`` are skipped (none of their segments can be the nearest, which has an index
    point within ``best + reach``), and a segment is measured once per point (``mark``), with a square
    root only when its squared distance can tie the best. The search starts from the previous
    point's segment (points come in raster order, so that is usually the answer or close to it):
    the result does not depend on it, nor on the order of the points.

    Parameters
    ----------
    qx, qy : ndarray of float64
        Query points (non-finite: no segment, ``leg = inf``); only those at ``perm`` are searched.
    x, y : ndarray of float64
        Node coordinates.
    n_nodes : int
    node_ptr, node_seg : ndarray of int64 / int32
        CSR node → segments.
    piece_seg : ndarray of int32
        Segment of each piece midpoint (index point ``n_nodes + i``).
    seg_a, seg_b, e_ab, e_ba : ndarray of int32
        Segment end nodes and their directed edge ids (-1: none).
    px, py : ndarray of float64
        Index point coordinates.
    reach : float
    x0, y0, cell : float
        Bucket grid origin and side.
    nx, ny : int
        Bucket grid size; bucket ``(i, j)`` (``i`` along x) holds ``order[ptr[i * ny + j]:ptr[i * ny + j + 1]]``.
    ptr, order : ndarray of int32
        Dense bucket grid: ``ptr`` has ``nx * ny + 1`` entries.
    max_leg, m_per_min : float
        Longest allowed leg (for ``ok``) and the walking speed of the leg (for ``leg_min``).
    seg, u, v, e_uv, e_vu, node, tt, leg, leg_min, ok : ndarray
        Outputs (int32 / float64 / bool), one per query point, written at the positions ``perm``:
        nearest segment (-1 when none; ties go to the lowest segment number), its ends and edges,
        the nearer end, position ``t`` from ``u`` (0) to ``v`` (1), distance, distance in minutes,
        ``leg <= max_leg``.
    mark : ndarray of int32
        Scratch, one per segment, all ``-1`` on entry (one per thread).
    perm : ndarray of int64
        Positions of the points to search, in this order (see :func:`strip_order`).
    """
    npt = perm.shape[0]
    slack = reach * (1.0 + 1e-9) + 1e-9
    margin = 1e-9 * cell + 1e-9  # rounding of the bucket rectangles
    prev = -1
    for j in range(npt):
        i = perm[j]
        qxi = qx[i]
        qyi = qy[i]
        best = np.inf
        b2 = np.inf
        bs = -1
        bt = 0.0
        if np.isfinite(qxi) and np.isfinite(qyi) and nx > 0:
            fx = (qxi - x0) / cell
            fy = (qyi - y0) / cell
            cx = np.int64(np.floor(fx))
            cy = np.int64(np.floor(fy))
            ex = min(fx - cx, cx + 1 - fx) * cell  # distance to the own bucket's nearest edge
            ey = min(fy - cy, cy + 1 - fy) * cell
            edge = min(ex, ey)
            # rings beyond rmax hold no bucket of the grid, rings before r hold none either
            rmax = max(max(cx, nx - 1 - cx), max(cy, ny - 1 - cy))
            r = max(max(-cx, cx - (nx - 1)), max(-cy, cy - (ny - 1)), 0)
            if prev >= 0:
                b2, bt = _to_segment(prev, qxi, qyi, x, y, seg_a, seg_b)
                best = np.sqrt(b2)
                bs = prev
                mark[prev] = j
            lim = best + slack
            lim2 = lim * lim
            glim = (lim + margin) / cell
            glim2 = glim * glim
            tie2 = b2 * (1.0 + 1e-12)  # beyond this a squared distance cannot round to a tie
            while True:
                ilo = max(cx - r, 0)
                ihi = min(cx + r, nx - 1)
                jlo = max(cy - r, 0)
                jhi = min(cy + r, ny - 1)
                for bi in range(ilo, ihi + 1):
                    gx = 0.0
                    if bi > cx:
                        gx = bi - fx
                    elif bi < cx:
                        gx = fx - (bi + 1)
                    gx2 = gx * gx
                    if gx2 > glim2:
                        continue
                    side = bi == cx - r or bi == cx + r
                    step = 1 if side or r == 0 else 2 * r
                    bj = jlo if side else cy - r
                    while bj <= jhi:
                        if bj >= 0:
                            gy = 0.0
                            if bj > cy:
                                gy = bj - fy
                            elif bj < cy:
                                gy = fy - (bj + 1)
                            if gx2 + gy * gy <= glim2:
                                k = bi * ny + bj
                                for pp in range(ptr[k], ptr[k + 1]):
                                    q = order[pp]
                                    ddx = px[q] - qxi
                                    ddy = py[q] - qyi
                                    if ddx * ddx + ddy * ddy > lim2:
                                        continue
                                    if q < n_nodes:
                                        lo = node_ptr[q]
                                        hi = node_ptr[q + 1]
                                    else:
                                        lo = -1
                                        hi = 0
                                    for rr in range(lo, hi):
                                        s = piece_seg[q - n_nodes] if rr < 0 else node_seg[rr]
                                        if mark[s] == j:
                                            continue
                                        mark[s] = j
                                        d2, t = _to_segment(s, qxi, qyi, x, y, seg_a, seg_b)
                                        if d2 > tie2:
                                            continue
                                        d = np.sqrt(d2)
                                        if d < best or (d == best and s < bs):
                                            best = d
                                            b2 = d2
                                            bs = s
                                            bt = t
                                            tie2 = b2 * (1.0 + 1e-12)
                                            lim = best + slack
                                            lim2 = lim * lim
                                            glim = (lim + margin) / cell
                                            glim2 = glim * glim
                        bj += step
                if best == 0.0 or r * cell + edge > best + slack or r >= rmax:
                    break
                r += 1
        seg[i] = bs
        tt[i] = bt
        if bs >= 0:
            a = seg_a[bs]
            b = seg_b[bs]
            u[i] = a
            v[i] = b
            e_uv[i] = e_ab[bs]
            e_vu[i] = e_ba[bs]
            node[i] = a if bt <= 0.5 else b
        else:
            best = np.inf
            u[i] = 0
            v[i] = 0
            e_uv[i] = -1
            e_vu[i] = -1
            node[i] = 0
        leg[i] = best
        leg_min[i] = best / m_per_min
        ok[i] = best <= max_leg
        prev = bs


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


@njit(cache=True, inline="always")
def _first_above(c, r):
    """First position whose running sum of ``c`` exceeds ``r`` (the last one when none does)."""
    acc = 0.0
    for i in range(c.shape[0]):
        acc += c[i]
        if acc > r:
            return i
    return c.shape[0] - 1


#: Margin of the k-means bounds (relative, and metres): far above the rounding of the bounds.
_MARGIN_REL, _MARGIN_ABS = 1e-9, 1e-6


@njit(cache=True, nogil=True, inline="always")
def _scan(x, y, cx, cy, k):
    """Nearest centre of a point (the lowest on a tie): squared distance, centre, next squared distance."""
    bd = np.inf
    bq = 0
    sd = np.inf
    for q in range(k):
        d = (x - cx[q]) * (x - cx[q]) + (y - cy[q]) * (y - cy[q])
        if d < bd:
            sd = bd
            bd = d
            bq = q
        elif d < sd:
            sd = d
    return bd, bq, sd


@njit(cache=True, nogil=True)
def _potentials(px, py, pw, d2, c, row_start, row_max, cand, p):
    """``p[t] = Σ_i pw[i] · min(d2[i], |i - cand[t]|²)``, up to eight trials per pass over the points.

    Each sum runs in point order, as one trial at a time would: the same floats, but several
    independent additions in flight instead of one. In a row (points ``row_start[r]`` … with one
    ``y``) farther from a candidate in ``y`` alone than ``√row_max[r]`` (the row's largest ``d2``),
    every term is ``c[i] = pw[i] · d2[i]`` exactly, so the candidate's distances are not computed.
    """
    m = cand.shape[0]
    for t0 in range(0, m, 8):
        cc = np.empty(8, dtype=np.int64)
        for t in range(8):
            cc[t] = cand[min(t0 + t, m - 1)]
        x0, y0, x1, y1 = px[cc[0]], py[cc[0]], px[cc[1]], py[cc[1]]
        x2, y2, x3, y3 = px[cc[2]], py[cc[2]], px[cc[3]], py[cc[3]]
        x4, y4, x5, y5 = px[cc[4]], py[cc[4]], px[cc[5]], py[cc[5]]
        x6, y6, x7, y7 = px[cc[6]], py[cc[6]], px[cc[7]], py[cc[7]]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
        for rr in range(row_start.shape[0] - 1):
            i0, i1 = row_start[rr], row_start[rr + 1]
            yr, mx = py[i0], row_max[rr]
            # far: (y - y_t)² >= every d2 of the row, so min(d2, dx² + dy²) is d2
            f0 = (yr - y0) * (yr - y0) >= mx
            f1 = (yr - y1) * (yr - y1) >= mx
            f2 = (yr - y2) * (yr - y2) >= mx
            f3 = (yr - y3) * (yr - y3) >= mx
            f4 = (yr - y4) * (yr - y4) >= mx
            f5 = (yr - y5) * (yr - y5) >= mx
            f6 = (yr - y6) * (yr - y6) >= mx
            f7 = (yr - y7) * (yr - y7) >= mx
            if f0 and f1 and f2 and f3 and f4 and f5 and f6 and f7:
                for i in range(i0, i1):
                    ci = c[i]
                    s0 += ci
                    s1 += ci
                    s2 += ci
                    s3 += ci
                    s4 += ci
                    s5 += ci
                    s6 += ci
                    s7 += ci
                continue
            for i in range(i0, i1):
                xi = px[i]
                yi = py[i]
                di = d2[i]
                wi = pw[i]
                ci = c[i]
                s0 += ci if f0 else wi * min(di, (xi - x0) * (xi - x0) + (yi - y0) * (yi - y0))
                s1 += ci if f1 else wi * min(di, (xi - x1) * (xi - x1) + (yi - y1) * (yi - y1))
                s2 += ci if f2 else wi * min(di, (xi - x2) * (xi - x2) + (yi - y2) * (yi - y2))
                s3 += ci if f3 else wi * min(di, (xi - x3) * (xi - x3) + (yi - y3) * (yi - y3))
                s4 += ci if f4 else wi * min(di, (xi - x4) * (xi - x4) + (yi - y4) * (yi - y4))
                s5 += ci if f5 else wi * min(di, (xi - x5) * (xi - x5) + (yi - y5) * (yi - y5))
                s6 += ci if f6 else wi * min(di, (xi - x6) * (xi - x6) + (yi - y6) * (yi - y6))
                s7 += ci if f7 else wi * min(di, (xi - x7) * (xi - x7) + (yi - y7) * (yi - y7))
        sums = (s0, s1, s2, s3, s4, s5, s6, s7)
        for t in range(min(8, m - t0)):
            p[t0 + t] = sums[t]

@njit(cache=True, nogil=True)
def weighted_kmeans(x, y, w, ptr, ks, u, max_iter, tol):
    """Population-weighted k-means of many small point sets at once (k-means++ seeding, Lloyd).

    Set ``g`` is points ``ptr[g]:ptr[g + 1]`` of ``x, y, w`` (weights > 0) split into ``ks[g]`` parts.
    Every set is solved on its own and the same way, whatever the other sets:

    * coordinates are taken relative to the set's first point (exact on a metric grid);
    * seeding is scikit-learn's greedy k-means++: the first centre is a point drawn with
      probability ∝ ``w``; each next one the best (least ``Σ w·d²``) of ``2 + int(log k)`` points
      drawn with probability ∝ ``w·d²`` (``d``: distance to the nearest centre so far). Draw ``j``
      of every set uses ``u[j]`` (uniforms in [0, 1); a point is drawn as the first whose running
      sum exceeds ``u[j] ×`` the total), so the result is a function of the set alone;
    * Lloyd iterations (each point to its nearest centre, the lowest centre on a tie; each centre
      to its points' weighted mean; a centre left without points stays) until no label changes, the
      squared centre shift is at most ``tol ×`` the mean coordinate variance, or ``max_iter``.

    Returns
    -------
    ndarray of int64
        The part (0 … ``ks[g] - 1``) of every point; every point is on its nearest final centre.
    """
    labels = np.zeros(x.shape[0], dtype=np.int64)
    for g in range(ks.shape[0]):
        a, b, k = ptr[g], ptr[g + 1], ks[g]
        n = b - a
        if n == 0 or k < 2:
            continue
        px = x[a:b] - x[a]
        py = y[a:b] - y[a]
        pw = w[a:b]
        mx = 0.0
        my = 0.0
        for i in range(n):
            mx += px[i]
            my += py[i]
        mx /= n
        my /= n
        vx = 0.0
        vy = 0.0
        for i in range(n):
            vx += (px[i] - mx) * (px[i] - mx)
            vy += (py[i] - my) * (py[i] - my)
        tol_abs = tol * (vx / n + vy / n) / 2.0
        # k-means++ (greedy)
        cx = np.empty(k)
        cy = np.empty(k)
        wsum = 0.0
        for i in range(n):
            wsum += pw[i]
        j = _first_above(pw, u[0] * wsum)
        cx[0] = px[j]
        cy[0] = py[j]
        d2 = np.empty(n)
        c = np.empty(n)  # w·d²
        cum = np.empty(n)  # running sums of w·d², as _first_above adds them: draws by bisection
        # rows: runs of points with the same y (a raster's rows), with their largest d²
        row_start = np.empty(n + 1, dtype=np.int64)
        n_rows = 0
        for i in range(n):
            if i == 0 or py[i] != py[i - 1]:
                row_start[n_rows] = i
                n_rows += 1
        row_start[n_rows] = n
        row_max = np.empty(n_rows)
        pot = 0.0
        for rr in range(n_rows):
            m = 0.0
            for i in range(row_start[rr], row_start[rr + 1]):
                d2[i] = (px[i] - cx[0]) * (px[i] - cx[0]) + (py[i] - cy[0]) * (py[i] - cy[0])
                c[i] = pw[i] * d2[i]
                pot += c[i]
                cum[i] = pot
                m = max(m, d2[i])
            row_max[rr] = m
        trials = 2 + int(np.log(k))
        ui = 1
        cand = np.empty(trials, dtype=np.int64)
        r = np.empty(trials)
        p = np.empty(trials)
        for ci in range(1, k):
            # the trials' draws by bisection of the running sums and their potentials in one pass
            # (independent sums, each in point order: the same floats as one trial at a time)
            for t in range(trials):
                r[t] = u[ui + t] * pot
            ui += trials
            cand[:] = np.minimum(np.searchsorted(cum, r, side="right"), n - 1)
            _potentials(px, py, pw, d2, c, row_start[:n_rows + 1], row_max, cand, p)
            best_pot = np.inf
            best = 0
            for t in range(trials):
                if p[t] < best_pot:
                    best_pot = p[t]
                    best = cand[t]
            cx[ci] = px[best]
            cy[ci] = py[best]
            pot = 0.0
            for rr in range(n_rows):
                m = 0.0
                for i in range(row_start[rr], row_start[rr + 1]):
                    d = (px[i] - cx[ci]) * (px[i] - cx[ci]) + (py[i] - cy[ci]) * (py[i] - cy[ci])
                    if d < d2[i]:
                        d2[i] = d
                    c[i] = pw[i] * d2[i]
                    pot += c[i]
                    cum[i] = pot
                    m = max(m, d2[i])
                row_max[rr] = m
        # Lloyd, skipping the points whose centre cannot change (Hamerly's bounds, kept with a margin
        # far above rounding: a point is rescanned, exactly as a plain Lloyd step would, unless its
        # centre is nearer than any other by more than the margin)
        lab = np.zeros(n, dtype=np.int64)
        ub = np.empty(n)  # upper bound of the distance to the point's centre
        lb = np.empty(n)  # lower bound of the distance to any other centre
        for i in range(n):
            bd, bq, sd = _scan(px[i], py[i], cx, cy, k)
            lab[i] = bq
            ub[i] = np.sqrt(bd)
            lb[i] = np.sqrt(sd)
        sw = np.empty(k)
        sx = np.empty(k)
        sy = np.empty(k)
        moved = np.empty(k)
        half = np.empty(k)
        for _it in range(max_iter):
            sw[:] = 0.0
            sx[:] = 0.0
            sy[:] = 0.0
            for i in range(n):
                q = lab[i]
                sw[q] += pw[i]
                sx[q] += pw[i] * px[i]
                sy[q] += pw[i] * py[i]
            shift = 0.0
            for q in range(k):
                moved[q] = 0.0
                if sw[q] > 0:
                    nx = sx[q] / sw[q]
                    ny = sy[q] / sw[q]
                    shift += (nx - cx[q]) * (nx - cx[q]) + (ny - cy[q]) * (ny - cy[q])
                    moved[q] = np.sqrt((nx - cx[q]) * (nx - cx[q]) + (ny - cy[q]) * (ny - cy[q]))
                    cx[q] = nx
                    cy[q] = ny
            m1 = -1.0
            m2 = -1.0
            qm = 0
            for q in range(k):
                if moved[q] > m1:
                    m2 = m1
                    m1 = moved[q]
                    qm = q
                elif moved[q] > m2:
                    m2 = moved[q]
            for q in range(k):
                h = np.inf
                for q2 in range(k):
                    if q2 != q:
                        h = min(h, (cx[q] - cx[q2]) * (cx[q] - cx[q2]) + (cy[q] - cy[q2]) * (cy[q] - cy[q2]))
                half[q] = 0.5 * np.sqrt(h)
            changed = False
            for i in range(n):
                q = lab[i]
                ub[i] += moved[q]
                lb[i] -= m2 if q == qm else m1
                bound = max(half[q], lb[i])
                if ub[i] + _MARGIN_REL * (ub[i] + bound) + _MARGIN_ABS < bound:
                    continue
                d = (px[i] - cx[q]) * (px[i] - cx[q]) + (py[i] - cy[q]) * (py[i] - cy[q])
                ub[i] = np.sqrt(d)
                if ub[i] + _MARGIN_REL * (ub[i] + bound) + _MARGIN_ABS < bound:
                    continue
                bd, bq, sd = _scan(px[i], py[i], cx, cy, k)
                ub[i] = np.sqrt(bd)
                lb[i] = np.sqrt(sd)
                if bq != lab[i]:
                    lab[i] = bq
                    changed = True
            if not changed or shift <= tol_abs:
                break
        labels[a:b] = lab
    return labels


@njit(cache=True, nogil=True)
def first_seen(values, n_values):
    """``values`` (ints in ``0 … n_values - 1``) renumbered 0, 1, … in the order of their first occurrence.

    The codes of :func:`pandas.factorize`, without hashing.
    """
    code = np.full(n_values, -1, dtype=np.int64)
    out = np.empty(values.shape[0], dtype=np.int64)
    nxt = 0
    for i in range(values.shape[0]):
        v = values[i]
        if code[v] < 0:
            code[v] = nxt
            nxt += 1
        out[i] = code[v]
    return out


@njit(cache=True, nogil=True)
def label_reach(labels, x, y, w, n_labels):
    """Per label: points, weight, weighted centre and the farthest point's distance from it.

    The sums run in point order, as :func:`numpy.bincount` adds them (the same floats).
    """
    size = np.zeros(n_labels, dtype=np.int64)
    sw = np.zeros(n_labels)
    sx = np.zeros(n_labels)
    sy = np.zeros(n_labels)
    for i in range(labels.shape[0]):
        q = labels[i]
        size[q] += 1
        sw[q] += w[i]
        sx[q] += w[i] * x[i]
        sy[q] += w[i] * y[i]
    cx = sx / sw
    cy = sy / sw
    reach = np.zeros(n_labels)
    for i in range(labels.shape[0]):
        q = labels[i]
        dx = x[i] - cx[q]
        dy = y[i] - cy[q]
        d = np.sqrt(dx * dx + dy * dy)
        if d > reach[q]:
            reach[q] = d
    return size, sw, cx, cy, reach


@njit(cache=True, nogil=True)
def rows_of_labels(labels, rank, ptr):
    """The points of the chosen labels, label by label, each label's points in their order.

    ``rank[label]``: the label's place, -1 if not chosen; ``ptr``: offsets of the places (a stable
    counting sort).
    """
    out = np.empty(ptr[-1], dtype=np.int64)
    fill = ptr[:-1].copy()
    for i in range(labels.shape[0]):
        r = rank[labels[i]]
        if r >= 0:
            out[fill[r]] = i
            fill[r] += 1
    return out


@njit(cache=True, inline="always")
def _root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True, nogil=True)
def link_keys(sk, deltas, order):
    """Components of points linked when their keys differ by one of ``deltas``, numbered by first point.

    ``sk``: the points' keys sorted strictly increasing (``sk[s]`` is point ``order[s]``'s key;
    ``order`` empty: the points' own order);
    ``deltas``: positive key differences of linked points (grid offsets folded into keys). Each
    delta has a pointer moving forward over the sorted keys, all in one pass (union-find); the
    components are numbered
    0, 1, … in the order of each one's first point (``0 … n - 1``), as
    :func:`scipy.sparse.csgraph.connected_components` numbers them.
    """
    n = sk.shape[0]
    parent = np.arange(n)
    nd = deltas.shape[0]
    q = np.zeros(nd, dtype=np.int64)  # per delta: the first key at or after sk[p] + delta
    for p in range(n):
        for t in range(nd):
            want = sk[p] + deltas[t]
            j = q[t]
            while j < n and sk[j] < want:
                j += 1
            q[t] = j
            if j < n and sk[j] == want:
                a = _root(parent, p)
                b = _root(parent, j)
                if a != b:
                    if a < b:
                        parent[b] = a
                    else:
                        parent[a] = b
    identity = order.shape[0] == 0
    pos = np.empty(0 if identity else n, dtype=np.int64)
    if not identity:
        for s in range(n):
            pos[order[s]] = s
    code = np.full(n, -1, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    nxt = 0
    for i in range(n):
        r = _root(parent, i if identity else pos[i])
        if code[r] < 0:
            code[r] = nxt
            nxt += 1
        out[i] = code[r]
    return out


@njit(cache=True, nogil=True)
def raster_keys(i, j, pad):
    """Keys of grid nodes ``(i, j)`` (from 0) in raster order, and whether they strictly increase.

    Rows from the largest ``j`` down, ``i`` rising in a row, ``pad`` spare columns each side.

    Returns
    -------
    key : ndarray of int64
        ``(max(j) - j) · width + i + pad`` with ``width = max(i) + 2 · pad + 1``.
    width : int
    increasing : bool
        Whether the keys strictly increase in the points' order (cells read from a raster do).
    """
    n = i.shape[0]
    imax = 0
    jmax = 0
    for s in range(n):
        imax = max(imax, i[s])
        jmax = max(jmax, j[s])
    width = imax + 2 * pad + 1
    key = np.empty(n, dtype=np.int64)
    increasing = True
    for s in range(n):
        key[s] = (jmax - j[s]) * width + i[s] + pad
        if s > 0 and key[s] <= key[s - 1]:
            increasing = False
    return key, width, increasing


@njit(cache=True, nogil=True)
def gather_nodes(ij, rows):
    """Columns ``rows`` of the ``(2, n)`` grid nodes ``ij``, shifted to start at 0 on both axes."""
    m = rows.shape[0]
    out = np.empty((2, m), dtype=np.int64)
    if m == 0:
        return out
    lo0 = ij[0, rows[0]]
    lo1 = ij[1, rows[0]]
    for s in range(m):
        a = ij[0, rows[s]]
        b = ij[1, rows[s]]
        out[0, s] = a
        out[1, s] = b
        lo0 = min(lo0, a)
        lo1 = min(lo1, b)
    for s in range(m):
        out[0, s] -= lo0
        out[1, s] -= lo1
    return out


@njit(cache=True, nogil=True)
def label_sums(labels, n_labels, w, pt, x, y):
    """Per label: ``Σ w``, ``Σ pt``, points, ``Σ w·x``, ``Σ w·y``, in point order (as :func:`numpy.bincount`)."""
    sw = np.zeros(n_labels)
    spt = np.zeros(n_labels)
    cnt = np.zeros(n_labels, dtype=np.int64)
    sx = np.zeros(n_labels)
    sy = np.zeros(n_labels)
    for i in range(labels.shape[0]):
        q = labels[i]
        sw[q] += w[i]
        spt[q] += pt[i]
        cnt[q] += 1
        sx[q] += w[i] * x[i]
        sy[q] += w[i] * y[i]
    return sw, spt, cnt, sx, sy


@njit(cache=True, nogil=True)
def first_and_sums(codes, n_codes, w):
    """Per code: its first position and ``Σ w`` in order (as :func:`numpy.bincount`)."""
    first = np.full(n_codes, -1, dtype=np.int64)
    s = np.zeros(n_codes)
    for i in range(codes.shape[0]):
        q = codes[i]
        if first[q] < 0:
            first[q] = i
        s[q] += w[i]
    return first, s


@njit(cache=True, nogil=True)
def uncovered_rows(t, threshold, side, g):
    """Rows with ``side``, people (``g > 0``) and a time above ``threshold`` (a missing time: never reached)."""
    out = np.empty(t.shape[0], dtype=np.int64)
    m = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if np.isnan(ti):
            ti = np.inf
        if side[i] and ti > threshold and g[i] > 0:
            out[m] = i
            m += 1
    return out[:m].copy()


@njit(cache=True, nogil=True)
def cluster_unit_pairs(lab, kept, unit, rows, w):
    """The (cluster, unit) pairs of the points of kept clusters, in order of their first point.

    Point ``i`` is in cluster ``lab[i]`` (skipped unless ``kept[lab[i]]``) and unit ``unit[rows[i]]``.
    Returns per pair its cluster, unit, first point's row (``rows[i]``) and ``Σ w`` in point order
    (as :func:`numpy.bincount` of the :func:`pandas.factorize` codes adds them). A cluster's pairs
    are a linked list searched from its latest pair (neighbouring cells mostly share a unit).
    """
    n = lab.shape[0]
    head = np.full(kept.shape[0], -1, dtype=np.int64)
    nxt = np.empty(n, dtype=np.int64)
    pl = np.empty(n, dtype=np.int64)
    pu = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    pw = np.zeros(n)
    m = 0
    for i in range(n):
        c = lab[i]
        if not kept[c]:
            continue
        u = unit[rows[i]]
        p = head[c]
        while p >= 0 and pu[p] != u:
            p = nxt[p]
        if p < 0:
            p = m
            m += 1
            pl[p] = c
            pu[p] = u
            first[p] = rows[i]
            nxt[p] = head[c]
            head[c] = p
        pw[p] += w[i]
    return pl[:m].copy(), pu[:m].copy(), first[:m].copy(), pw[:m].copy()
