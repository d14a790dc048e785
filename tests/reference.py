"""Plain-Python reference implementations (heapq Dijkstra over a dict-of-dicts graph).

Deliberately naive and independent of :mod:`coverage.access`: every facility is searched on its own
(no multi-source trick, no compiled code, no SciPy), so the fast code can be checked against it.
"""

from __future__ import annotations

import heapq
import itertools
import math


def make_adj(n, edges):
    """``edges``: iterable of (u, v, w) directed; parallel edges keep the smallest w."""
    adj = {i: {} for i in range(n)}
    for u, v, w in edges:
        if u == v:
            continue
        if v not in adj[u] or w < adj[u][v]:
            adj[u][v] = w
    return adj


def dijkstra(adj, source, init=0.0, limit=math.inf):
    """Distances from ``source`` (starting at ``init``) to every node reached within ``limit``."""
    dist = {source: init}
    heap = [(init, source)]
    done = set()
    while heap:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v, w in adj[u].items():
            nd = d + w
            if nd <= limit and nd < dist.get(v, math.inf):
                dist[v] = nd
                heapq.heappush(heap, (nd, v))
    return {k: v for k, v in dist.items() if v <= limit}


def pair_times(adj, demand, facilities, limit):
    """{(j, i): time} for every facility j and demand i within ``limit``.

    ``demand`` and ``facilities``: lists of (node, leg, ok).
    """
    out = {}
    for j, (fn, fl, fok) in enumerate(facilities):
        if not fok or fl > limit:
            continue
        dist = dijkstra(adj, fn, fl, limit)
        for i, (dn, dl, dok) in enumerate(demand):
            if dok and dn in dist:
                t = dist[dn] + dl
                if t <= limit:
                    out[(j, i)] = t
    return out


def nearest(adj, demand, facilities, limit):
    """Per demand point: (min time or inf, set of facilities attaining it)."""
    pt = pair_times(adj, demand, facilities, limit)
    res = []
    for i in range(len(demand)):
        ts = {j: t for (j, ii), t in pt.items() if ii == i}
        if not ts:
            res.append((math.inf, set()))
        else:
            m = min(ts.values())
            res.append((m, {j for j, t in ts.items() if t == m}))
    return res


def counts(adj, demand, facilities, limit):
    pt = pair_times(adj, demand, facilities, limit)
    c = [0] * len(demand)
    for (_, i) in pt:
        c[i] += 1
    return c


def step_w(t, T):
    if t <= T / 3:
        return 1.0
    if t <= 2 * T / 3:
        return 0.68
    if t <= T:
        return 0.22
    return 0.0


def gauss_w(t, T):
    beta = T / math.sqrt(-2.0 * math.log(0.01))
    if t > T:
        return 0.0
    return math.exp(-0.5 * (t / beta) ** 2) if beta > 0 else 1.0  # T = 0: only t = 0, W(0) = 1


def e2sfca(adj, demand, facilities, limit, supply, pop, decay="step"):
    """Luo & Qi E2SFCA by the textbook formulas."""
    W = step_w if decay == "step" else gauss_w
    pt = pair_times(adj, demand, facilities, limit)
    R = []
    for j in range(len(facilities)):
        den = sum(pop[i] * W(t, limit) for (jj, i), t in pt.items() if jj == j)
        R.append(supply[j] / den if den > 0 else 0.0)
    A = [0.0] * len(demand)
    for (j, i), t in pt.items():
        A[i] += R[j] * W(t, limit)
    return A


# ---------------------------------------------------------------- snapping onto road segments


def nearest_segment(px, py, x, y, segments):
    """Brute force over every segment with shapely: ``(distance, k)`` of the nearest one.

    ``segments``: list of node pairs ``(a, b)``; ``a == b`` is a lone node (a point)."""
    from shapely.geometry import LineString, Point

    p = Point(px, py)
    best = (math.inf, -1)
    for k, (a, b) in enumerate(segments):
        geom = Point(x[a], y[a]) if a == b else LineString([(x[a], y[a]), (x[b], y[b])])
        d = geom.distance(p)
        if d < best[0]:
            best = (d, k)
    return best


def split_adj(n, edges, points):
    """The graph with every snapped point inserted as a real node on its edge.

    ``edges``: directed ``(u, v, w)``; ``points``: ``(u, v, t)`` per point (position ``t`` from ``u``
    to ``v``). A point at ``t == 0`` (or ``u == v``) *is* node ``u``, at ``t == 1`` node ``v``; any
    other point ``k`` becomes node ``n + k``, and the edges ``a → b`` / ``b → a`` between the ends of
    its segment are replaced by chains through all points on that segment, in order, each link
    weighing its share of the edge (points at the same position are joined by 0 both ways).

    Returns ``(adj, node_of)`` with ``node_of[k]`` the node standing for point ``k``.
    """
    adj = make_adj(n, edges)
    node_of = []
    groups = {}
    for k, (u, v, t) in enumerate(points):
        if u == v or t == 0.0:
            node_of.append(u)
        elif t == 1.0:
            node_of.append(v)
        else:
            node_of.append(n + k)
            adj[n + k] = {}
            # measured from the end the point was snapped from (1 - t would round tiny t away)
            a, b = (u, v) if (v, u) not in groups else (v, u)
            groups.setdefault((a, b), []).append((t if u == a else 1.0 - t, n + k))
    for (a, b), pts in groups.items():
        wab = adj[a].pop(b, None)
        wba = adj[b].pop(a, None)
        chain = [(0.0, a)] + sorted(pts) + [(1.0, b)]
        for (sp, p), (sq, q) in itertools.pairwise(chain):
            if sq == sp:
                adj[p][q] = 0.0
                adj[q][p] = 0.0
                continue
            if wab is not None:
                adj[p][q] = (sq - sp) * wab
            if wba is not None:
                adj[q][p] = (sq - sp) * wba
    return adj, node_of


def rule_coverage(model, rule_id: str, unit_code: str | None = None, walk_kmh: float = 4.8) -> float:
    """People of a circle rule's group covered, recomputed without the engine.

    Brute-force snapping onto the nearest road segment of the model's graph (shapely), every snapped
    point inserted into the graph as a real node (:func:`split_adj`), then a plain Dijkstra from a
    virtual source joined to the rule's facilities by their walking legs (cap 1 km). Cells of the
    rule's side (urban/rural/all), optionally of one unit.
    """
    import numpy as np
    import shapely

    inputs = model.inputs
    rule = inputs.preset.circle(rule_id)
    mode = rule.mode
    if inputs.scenario.network is not None:
        over = inputs.scenario.network.mode
        mode = over.get(rule.id, over.get(rule.service, rule.mode))
    g = model.graphs[mode]
    tails = np.repeat(np.arange(g.n_nodes), np.diff(g.indptr))
    lines = shapely.linestrings(np.stack([np.c_[g.x[tails], g.y[tails]], np.c_[g.x[g.indices], g.y[g.indices]]], 1))
    m_per_min = walk_kmh * 1000 / 60

    def snap(p):
        d = shapely.distance(lines, p)
        e = int(np.argmin(d))
        t = float(shapely.line_locate_point(lines[e], p, normalized=True))
        return (int(tails[e]), int(g.indices[e]), t), float(d[e])

    fac = inputs.facilities[inputs.facilities["ftype"].isin(rule.ftypes)]
    cells = model.cells
    keep = np.ones(len(cells), dtype=bool)
    if rule.applies_to != "all":
        keep &= (cells["urban"] == (rule.applies_to == "urban")).to_numpy()
    if unit_code is not None:
        keep &= (cells["unit_code"] == unit_code).to_numpy()
    sel = cells[keep]
    snapped = [snap(p) for p in list(fac.geometry) + list(sel.geometry)]
    adj, node_of = split_adj(g.n_nodes, zip(tails.tolist(), g.indices.tolist(), g.minutes.tolist()), [s[0] for s in snapped])
    adj["S"] = {}
    for k in range(len(fac)):
        leg = snapped[k][1]
        if leg <= 1000:
            node, w = node_of[k], leg / m_per_min
            adj["S"][node] = min(w, adj["S"].get(node, np.inf))
    dist = dijkstra(adj, "S", 0.0, rule.threshold)
    covered = 0.0
    for k, people in enumerate(sel[rule.group], start=len(fac)):
        leg = snapped[k][1]
        if leg <= 1000 and dist.get(node_of[k], np.inf) + leg / m_per_min <= rule.threshold:
            covered += people
    return covered
