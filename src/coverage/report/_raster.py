"""Compiled (numba) grid kernels of the raster service circles (:mod:`coverage.report.circles`).

Passes over a boolean grid, each linear in its cells, none of them holding more than the grid
itself and its row runs:

* :func:`sample_segments`: reached road segments sampled every half cell onto the grid;
* :func:`disk_dilate`: the cells within a disk of a road cell (row runs painted, widened);
* :func:`fill_holes`: background regions (8-connected) that do not touch the grid's edge and are
  smaller than a given area become foreground (row runs joined with a union–find);
* :func:`trace_rings`: the outlines of the 4-connected foreground regions along the cell edges
  (as ``rasterio.features.shapes`` draws them), with each hole assigned to its shell;
* :func:`window_rings`: the last three over every window of a grid in one call, so that drawing a
  circle does not wait for the GIL window by window while another thread runs Python.

Row and column of a grid corner: corner ``(i, j)`` is the top-left corner of cell ``(i, j)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# direction codes of a step along the cell edges: 0 east, 1 south, 2 west, 3 north (rows grow south)
_DI = np.array([0, 1, 0, -1], dtype=np.int64)
_DJ = np.array([1, 0, -1, 0], dtype=np.int64)


def _turn_table(first: int) -> np.ndarray:
    """Next direction at a corner, by the corner's 2 × 2 cells (code ``8·NW + 4·NE + 2·SW + SE``) and the direction of arrival: the first of (turn ``first``, straight on, the other turn) whose cell edge has foreground on its right; -1 where none."""
    table = np.full((16, 4), -1, dtype=np.int64)
    for code in range(16):
        nw, ne, sw, se = (code >> 3) & 1, (code >> 2) & 1, (code >> 1) & 1, code & 1
        leaves = [se and not ne, sw and not se, nw and not sw, ne and not nw]  # east, south, west, north
        for d in range(4):
            for nd in ((d + first) % 4, d, (d + 4 - first) % 4):
                if leaves[nd]:
                    table[code, d] = nd
                    break
    return table


_RIGHT_FIRST = _turn_table(1)
_LEFT_FIRST = _turn_table(3)


@njit(cache=True, nogil=True)
def sample_bounds(ax, ay, bx, by, half):  # pragma: no cover - compiled
    """Smallest and largest x and y of the points :func:`sample_segments` draws (same arithmetic)."""
    xmin = np.inf
    xmax = -np.inf
    ymin = np.inf
    ymax = -np.inf
    for s in range(ax.shape[0]):
        dx = bx[s] - ax[s]
        dy = by[s] - ay[s]
        n = max(np.int64(np.ceil(np.hypot(dx, dy) / half)), 1) + 1
        for k in range(n):
            t = k / (n - 1)
            px = ax[s] + dx * t
            py = ay[s] + dy * t
            xmin = min(xmin, px)
            xmax = max(xmax, px)
            ymin = min(ymin, py)
            ymax = max(ymax, py)
    return xmin, xmax, ymin, ymax


@njit(cache=True, nogil=True)
def sample_segments(grid, ax, ay, bx, by, half, x0, y1, cell):  # pragma: no cover - compiled
    """Mark the cells of ``grid`` (row 0 at ``y1``, column 0 at ``x0``) holding points spaced at most ``half`` along each segment ``a → b``, both ends included."""
    for s in range(ax.shape[0]):
        dx = bx[s] - ax[s]
        dy = by[s] - ay[s]
        n = max(np.int64(np.ceil(np.hypot(dx, dy) / half)), 1) + 1
        for k in range(n):
            t = k / (n - 1)
            px = ax[s] + dx * t
            py = ay[s] + dy * t
            grid[np.int64((y1 - py) / cell), np.int64((px - x0) / cell)] = True


@njit(cache=True, nogil=True)
def _runs(mask, value):  # pragma: no cover - compiled
    """Row runs of cells equal to ``value``: ``ptr`` (per row), ``start``, ``stop`` (half-open)."""
    nrow, ncol = mask.shape
    n = 0
    for i in range(nrow):
        inside = False
        for j in range(ncol):
            if mask[i, j] == value:
                if not inside:
                    n += 1
                    inside = True
            else:
                inside = False
    ptr = np.empty(nrow + 1, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    stop = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(nrow):
        ptr[i] = k
        j = 0
        while j < ncol:
            if mask[i, j] == value:
                s = j
                while j < ncol and mask[i, j] == value:
                    j += 1
                start[k] = s
                stop[k] = j
                k += 1
            else:
                j += 1
    ptr[nrow] = k
    return ptr, start, stop


@njit(cache=True, nogil=True)
def _find(parent, a):  # pragma: no cover - compiled
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, nogil=True)
def _components(ptr, start, stop, slack):  # pragma: no cover - compiled
    """Component number of each run: runs of adjacent rows join when they overlap (``slack`` 0: 4-connected) or touch at a corner too (``slack`` 1: 8-connected)."""
    n = start.shape[0]
    parent = np.empty(n, dtype=np.int64)
    for k in range(n):
        parent[k] = k
    for i in range(ptr.shape[0] - 2):
        a, a_end = ptr[i], ptr[i + 1]
        b, b_end = ptr[i + 1], ptr[i + 2]
        while a < a_end and b < b_end:
            if start[b] < stop[a] + slack and start[a] - slack < stop[b]:
                ra = _find(parent, a)
                rb = _find(parent, b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
            if stop[a] + slack <= stop[b]:
                a += 1
            else:
                b += 1
    comp = np.empty(n, dtype=np.int64)
    ncomp = 0
    for k in range(n):  # roots come before their members (parent is always the lower run)
        r = _find(parent, k)
        if r == k:
            comp[k] = ncomp
            ncomp += 1
        else:
            comp[k] = comp[r]
    return comp, ncomp


@njit(cache=True, nogil=True)
def fill_holes(mask, cell, max_area):  # pragma: no cover - compiled
    """Set the background regions (8-connected) that do not touch the grid's edge and whose area (cells × ``cell``²) is below ``max_area``; in place."""
    nrow, ncol = mask.shape
    ptr, start, stop = _runs(mask, False)
    comp, ncomp = _components(ptr, start, stop, 1)
    size = np.zeros(ncomp, dtype=np.int64)
    edge = np.zeros(ncomp, dtype=np.bool_)
    for i in range(nrow):
        for k in range(ptr[i], ptr[i + 1]):
            c = comp[k]
            size[c] += stop[k] - start[k]
            if i == 0 or i == nrow - 1 or start[k] == 0 or stop[k] == ncol:
                edge[c] = True
    for i in range(nrow):
        for k in range(ptr[i], ptr[i + 1]):
            c = comp[k]
            if not edge[c] and size[c] * cell * cell < max_area:
                for j in range(start[k], stop[k]):
                    mask[i, j] = True


@njit(cache=True, nogil=True)
def trace_rings(mask):  # pragma: no cover - compiled
    """Outlines of the 4-connected foreground regions of ``mask`` along the cell edges.

    The cells on the grid's edge must be background (not checked here: the caller pads).

    Rings are traced with the foreground on the right in (row, column) order, then turned round
    and started where GDAL starts them (a shell at its top-left corner, a hole at the left corner
    of its top-left edge): on a map (y up) shells run clockwise and holes counter-clockwise, as
    ``rasterio.features.shapes`` gives them. Foreground and background regions are both
    4-connected, as in GDAL's polygonizer: where two foreground cells meet only at a corner, the ring
    turns towards them when they belong to different regions (two polygons touching at a point) and
    away from them when they belong to the same one (the background cells either side are then two
    regions: two rings touching at a point). So no ring touches itself and the polygons are valid.

    Returns
    -------
    vi, vj : ndarray of int64
        Corners (row, column) of the rings, one after the other, each ring closed (last = first).
    ring_ptr : ndarray of int64
        Ring ``r`` is ``vi[ring_ptr[r]:ring_ptr[r + 1]]``.
    hole : ndarray of bool
        Whether ring ``r`` is a hole.
    owner : ndarray of int64
        The shell ring of the region that ring ``r`` bounds (``r`` itself for a shell).
    """
    nrow, ncol = mask.shape
    ptr, start, stop = _runs(mask, True)
    comp, ncomp = _components(ptr, start, stop, 0)
    visited = np.zeros((nrow + 1, ncol), dtype=np.bool_)  # horizontal cell edges already traced
    # a ring has at least two horizontal edges, and no more corners than edges (plus its closing
    # vertex): sized once, so the loops below reassign no array (numba would count references)
    n_h = 0
    n_v = 0
    for i in range(1, nrow):
        for j in range(1, ncol):
            n_h += mask[i, j] != mask[i - 1, j]
            n_v += mask[i, j] != mask[i, j - 1]
    rcap = n_h // 2 + 1
    vi = np.empty(n_h + n_v + rcap, dtype=np.int64)
    vj = np.empty(n_h + n_v + rcap, dtype=np.int64)
    ring_ptr = np.empty(rcap + 1, dtype=np.int64)
    hole = np.empty(rcap, dtype=np.bool_)
    ci = np.empty(rcap, dtype=np.int64)
    cj = np.empty(rcap, dtype=np.int64)
    nv = 0
    nr = 0
    ring_ptr[0] = 0
    for i in range(1, nrow):
        for j in range(1, ncol - 1):
            below = mask[i, j]
            if below == mask[i - 1, j] or visited[i, j]:
                continue
            # the first edge of a new ring met in row order: its top edge, leftmost
            if below:  # a shell, traced eastwards from the edge's left corner
                si, sj, d0 = i, j, 0
                ci[nr], cj[nr] = i, j
            else:  # a hole, traced westwards from the edge's right corner
                si, sj, d0 = i, j + 1, 2
                ci[nr], cj[nr] = i - 1, j
            hole[nr] = not below
            a, b, d = si, sj, d0
            p0 = nv
            while True:  # emit the corners (where the direction changes)
                if d == 0:
                    visited[a, b] = True
                elif d == 2:
                    visited[a, b - 1] = True
                a += _DI[d]
                b += _DJ[d]
                # right turn first, then straight on, then left; the other way round at a corner
                # where two cells of the same foreground region meet diagonally
                code = ((np.int64(mask[a - 1, b - 1]) << 3) | (np.int64(mask[a - 1, b]) << 2)
                        | (np.int64(mask[a, b - 1]) << 1) | np.int64(mask[a, b]))
                nd = _RIGHT_FIRST[code, d]
                if code == 9 or code == 6:
                    if code == 9:
                        same = _comp_at(ptr, start, comp, a - 1, b - 1) == _comp_at(ptr, start, comp, a, b)
                    else:
                        same = _comp_at(ptr, start, comp, a - 1, b) == _comp_at(ptr, start, comp, a, b - 1)
                    if same:
                        nd = _LEFT_FIRST[code, d]
                if nd != d:
                    vi[nv] = a
                    vj[nv] = b
                    nv += 1
                if a == si and b == sj and nd == d0:
                    break
                d = nd
            _as_gdal(vi, vj, p0, nv, i, j)
            vi[nv] = vi[p0]  # closed
            vj[nv] = vj[p0]
            nv += 1
            nr += 1
            ring_ptr[nr] = nv
    # the region of each ring: the 4-connected component of a foreground cell on its first edge
    shell_of = np.full(ncomp, -1, dtype=np.int64)
    rc = np.empty(nr, dtype=np.int64)
    for r in range(nr):
        rc[r] = _comp_at(ptr, start, comp, ci[r], cj[r])
        if not hole[r]:
            shell_of[rc[r]] = r
    owner = np.empty(nr, dtype=np.int64)
    for r in range(nr):
        owner[r] = shell_of[rc[r]]
    return vi[:nv].copy(), vj[:nv].copy(), ring_ptr[: nr + 1].copy(), hole[:nr].copy(), owner


@njit(cache=True, nogil=True)
def _as_gdal(vi, vj, p0, p1, i, j):  # pragma: no cover - compiled
    """Turn the open ring ``p0:p1`` round and start it at corner ``(i, j)`` (the left end of its first edge): the order of GDAL's outlines, so the Douglas–Peucker simplification that follows picks the same vertices."""
    lo, hi = p0, p1 - 1
    while lo < hi:
        vi[lo], vi[hi] = vi[hi], vi[lo]
        vj[lo], vj[hi] = vj[hi], vj[lo]
        lo += 1
        hi -= 1
    q = 0
    while q < p1 - p0 and not (vi[p0 + q] == i and vj[p0 + q] == j):
        q += 1
    if q == 0 or q == p1 - p0:
        return
    n = p1 - p0
    ri = vi[p0:p1].copy()
    rj = vj[p0:p1].copy()
    for k in range(n):
        vi[p0 + k] = ri[(q + k) % n]
        vj[p0 + k] = rj[(q + k) % n]


@njit(cache=True, nogil=True)
def _comp_at(ptr, start, comp, i, j):  # pragma: no cover - compiled
    """Component of foreground cell ``(i, j)`` (its row run found by bisection)."""
    lo, hi = ptr[i], ptr[i + 1]  # the last run starting at or before j (a plain bisection
    while hi - lo > 1:  # compiles far faster than np.searchsorted)
        mid = (lo + hi) // 2
        if start[mid] <= j:
            lo = mid
        else:
            hi = mid
    return comp[lo]


@njit(cache=True, nogil=True)
def block_boxes(mask, block):  # pragma: no cover - compiled
    """Per block of ``block × block`` cells, the first and last row and column of its True cells (-1 where it has none), shape ``(block rows, block columns, 4)``."""
    nrow, ncol = mask.shape
    box = np.full(((nrow + block - 1) // block, (ncol + block - 1) // block, 4), -1, dtype=np.int64)
    for i in range(nrow):
        bi = i // block
        for j in range(ncol):
            if mask[i, j]:
                bj = j // block
                if box[bi, bj, 0] < 0:
                    box[bi, bj, 0] = i
                    box[bi, bj, 2] = j
                    box[bi, bj, 3] = j
                box[bi, bj, 1] = i
                box[bi, bj, 2] = min(box[bi, bj, 2], j)
                box[bi, bj, 3] = max(box[bi, bj, 3], j)
    return box


@njit(cache=True, nogil=True)
def disk_dilate(mask, widths, out):  # pragma: no cover - compiled
    """Cells within a disk of True cells of ``mask``, into ``out`` (same shape; overwritten).

    ``widths[k]`` is the disk's half-width (cells) on row offset ``k - r`` (``r = (len(widths) - 1)
    // 2``), -1 where the disk has no cell: cell ``(i, j)`` is set when a True cell ``(i - di, j +
    dj)`` has ``|dj| <= widths[di + r]``. Each row run of True cells is painted, widened, onto the
    rows it reaches.
    """
    nrow, ncol = mask.shape
    r = (len(widths) - 1) // 2
    out[:, :] = False
    for i in range(nrow):
        j = 0
        while j < ncol:
            if not mask[i, j]:
                j += 1
                continue
            k = j
            while k < ncol and mask[i, k]:
                k += 1
            for t in range(len(widths)):  # the run [j, k) onto row i + t - r
                w = widths[t]
                ii = i + t - r
                if w < 0 or ii < 0 or ii >= nrow:
                    continue
                for jj in range(max(j - w, 0), min(k + w, ncol)):
                    out[ii, jj] = True
            j = k
    return out


@njit(cache=True, nogil=True)
def _edge_set(mask):  # pragma: no cover - compiled
    """Whether a cell on the edge of ``mask`` is True."""
    nrow, ncol = mask.shape
    for j in range(ncol):
        if mask[0, j] or mask[nrow - 1, j]:
            return True
    for i in range(nrow):
        if mask[i, 0] or mask[i, ncol - 1]:
            return True
    return False


@njit(cache=True, nogil=True)
def window_rings(grid, rects, widths, cell, max_area):  # pragma: no cover - compiled
    """Rings of the served area of every window of ``grid``, in one call that holds no GIL.

    Each window ``rects[w] = (r0, r1, c0, c1)`` (half-open) is dilated (:func:`disk_dilate` with
    ``widths``), has its holes below ``max_area`` filled when ``max_area > 0`` (:func:`fill_holes`:
    background regions, 8-connected as the dual of the 4-connected outlines, that do not reach the
    window's edge; the window's ring of empty cells is outside), is padded with one empty cell where
    a cell on its edge is set, and is outlined (:func:`trace_rings`).

    Returns
    -------
    vi, vj : ndarray of int64
        Corners of the rings, in the (padded) window's own rows and columns.
    ring_ptr : ndarray of int64
        Ring ``r`` is ``vi[ring_ptr[r]:ring_ptr[r + 1]]``.
    hole : ndarray of bool
    owner : ndarray of int64
        The shell ring of ring ``r``'s region, numbered over all windows.
    ring_win : ndarray of int64
        The window of ring ``r``.
    padded : ndarray of bool
        Per window, whether it was padded (its corners are then one row and column further).
    """
    nwin = rects.shape[0]
    padded = np.zeros(nwin, dtype=np.bool_)
    parts_i = [np.empty(0, dtype=np.int64)]
    parts_j = [np.empty(0, dtype=np.int64)]
    parts_ptr = [np.empty(0, dtype=np.int64)]
    parts_hole = [np.empty(0, dtype=np.bool_)]
    parts_owner = [np.empty(0, dtype=np.int64)]
    nv = 0
    nr = 0
    for w in range(nwin):
        r0, r1, c0, c1 = rects[w, 0], rects[w, 1], rects[w, 2], rects[w, 3]
        near = np.empty((r1 - r0, c1 - c0), dtype=np.bool_)
        disk_dilate(grid[r0:r1, c0:c1], widths, near)
        if max_area > 0:
            fill_holes(near, cell, max_area)
        if _edge_set(near):  # the tracer wants empty edge cells
            big = np.zeros((r1 - r0 + 2, c1 - c0 + 2), dtype=np.bool_)
            big[1:-1, 1:-1] = near
            near = big
            padded[w] = True
        vi, vj, ptr, hole, owner = trace_rings(near)
        parts_i.append(vi)
        parts_j.append(vj)
        parts_ptr.append(ptr[1:] + nv)
        parts_hole.append(hole)
        parts_owner.append(owner + nr)
        nv += len(vi)
        nr += len(hole)
    vi_all = np.empty(nv, dtype=np.int64)
    vj_all = np.empty(nv, dtype=np.int64)
    ring_ptr = np.zeros(nr + 1, dtype=np.int64)
    hole_all = np.empty(nr, dtype=np.bool_)
    owner_all = np.empty(nr, dtype=np.int64)
    ring_win = np.empty(nr, dtype=np.int64)
    a = 0
    b = 0
    for k in range(1, len(parts_i)):  # part k is window k - 1
        m = len(parts_i[k])
        vi_all[a:a + m] = parts_i[k]
        vj_all[a:a + m] = parts_j[k]
        q = len(parts_hole[k])
        ring_ptr[b + 1:b + 1 + q] = parts_ptr[k]
        hole_all[b:b + q] = parts_hole[k]
        owner_all[b:b + q] = parts_owner[k]
        ring_win[b:b + q] = k - 1
        a += m
        b += q
    return vi_all, vj_all, ring_ptr, hole_all, owner_all, ring_win, padded
