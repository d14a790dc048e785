"""Tests of coverage.access against the plain-Python reference in tests/reference.py."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from shapely.geometry import Point

import reference as ref
from coverage import access, network, settings
from coverage.access import Snapped

HS = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- random problems


@st.composite
def problems(draw, max_fac=8):
    n = draw(st.integers(5, 40))
    m = draw(st.integers(0, 3 * n))
    w = st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False)
    raw = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), w, st.booleans()),
                        min_size=m, max_size=m))
    edges = []
    for u, v, ww, both in raw:
        edges.append((u, v, ww))
        if both:
            edges.append((v, u, ww))
    pt = st.tuples(st.integers(0, n - 1), st.floats(0.0, 3.0, allow_nan=False), st.booleans())
    demand = draw(st.lists(pt, min_size=1, max_size=15))
    facilities = draw(st.lists(pt, min_size=0, max_size=max_fac))
    limit = draw(st.floats(0.0, 20.0, allow_nan=False))
    return n, edges, demand, facilities, limit


def build(n, edges, metres_per_min=80.0):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
    u = [e[0] for e in edges]
    v = [e[1] for e in edges]
    w = np.array([e[2] for e in edges], dtype=float)
    return network.from_edges(x, y, u, v, w, w * metres_per_min, mode="walk", min_component_nodes=1)


def snapped(pts, idx=None):
    node = np.array([p[0] for p in pts], dtype=np.int64)
    leg_min = np.array([p[1] for p in pts], dtype=float)
    ok = np.array([p[2] for p in pts], dtype=bool)
    index = pd.Index(idx if idx is not None else [f"p{i}" for i in range(len(pts))])
    return Snapped(node=node, leg_m=leg_min * 80.0, leg_min=leg_min, ok=ok, index=index)


# ---------------------------------------------------------------- equality with the reference


@HS
@given(problems(max_fac=40))  # > 8 facilities also exercises the kernel's simultaneous phase
def test_nearest_time_and_facility_match_reference(p):
    n, edges, demand, facilities, limit = p
    g = build(n, edges)
    assert g.n_nodes == n
    adj = ref.make_adj(n, edges)
    expect = ref.nearest(adj, demand, facilities, limit)
    fidx = [f"f{j}" for j in range(len(facilities))]
    res = access.nearest(g, snapped(demand), snapped(facilities, fidx), limit=limit)
    t = access.nearest_time(g, snapped(demand), snapped(facilities, fidx), max_minutes=limit)
    assert list(res.index) == [f"p{i}" for i in range(len(demand))]
    for i, (tm, arg) in enumerate(expect):
        got = res["minutes"].iloc[i]
        assert t.iloc[i] == got
        if math.isinf(tm):
            assert math.isinf(got) and pd.isna(res["facility"].iloc[i])
        else:
            assert abs(got - tm) <= 1e-9
            j = int(res["facility"].iloc[i][1:])
            # the labelled facility attains the minimum (ties may pick any of them)
            assert j in arg or abs(ref.pair_times(adj, demand, facilities, limit)[(j, i)] - tm) <= 1e-9


@HS
@given(problems())
def test_nearest_distance_matches_reference(p):
    n, edges, demand, facilities, limit = p
    g = build(n, edges)
    adj_m = ref.make_adj(n, [(u, v, w * 80.0) for u, v, w in edges])
    dm = [(a, b * 80.0, c) for a, b, c in demand]
    fm = [(a, b * 80.0, c) for a, b, c in facilities]
    lim_m = limit * 80.0
    expect = ref.nearest(adj_m, dm, fm, lim_m)
    got = access.nearest_distance(g, snapped(demand), snapped(facilities), max_metres=lim_m)
    for i, (tm, _) in enumerate(expect):
        if math.isinf(tm):
            assert math.isinf(got.iloc[i])
        else:
            assert abs(got.iloc[i] - tm) <= 1e-9 * max(1.0, tm)


@HS
@given(problems(), st.sampled_from([1, 2]))
def test_catchments_and_counts_match_reference(p, threads):
    n, edges, demand, facilities, limit = p
    g = build(n, edges)
    adj = ref.make_adj(n, edges)
    expect = ref.pair_times(adj, demand, facilities, limit)
    C = access.catchments(g, snapped(demand), snapped(facilities), limit, n_threads=threads)
    assert C.shape == (len(facilities), len(demand))
    coo = C.tocoo()
    got = {(int(r), int(c)): float(v) for r, c, v in zip(coo.row, coo.col, coo.data)}
    assert set(got) == set(expect)
    for k, v in expect.items():
        assert abs(got[k] - v) <= 1e-9
    cnt = access.count_within(g, snapped(demand), snapped(facilities), limit)
    assert cnt.tolist() == ref.counts(adj, demand, facilities, limit)
    pop = np.arange(1, len(demand) + 1, dtype=float)
    pw = access.population_within(C, pop)
    for j in range(len(facilities)):
        assert pw[j] == pytest.approx(sum(pop[i] for (jj, i) in expect if jj == j))


def _catchments_bounded(g, demand, sites, limit, bounded: bool):
    """access.catchments with its searches always (or never) pruned by the time back to the demand."""
    old = access.BOUND_GRAPHS
    access.BOUND_GRAPHS = 0.0 if bounded else math.inf
    try:
        return access.catchments(g, demand, sites, limit)
    finally:
        access.BOUND_GRAPHS = old


def _pairs(C) -> dict:
    coo = C.tocoo()
    return {(int(r), int(c)): float(v) for r, c, v in zip(coo.row, coo.col, coo.data)}


@HS
@given(problems(max_fac=12), st.data())
def test_catchments_pruned_by_the_demand_equal_the_full_searches(p, data):
    """Searches pruned by each node's time back to the nearest demand point reach the same points in
    the same times as unpruned searches and as the reference, also when the demand is a few of
    the points (as for the people a plan has still to reach)."""
    n, edges, demand, facilities, limit = p
    keep = sorted(data.draw(st.sets(st.integers(0, len(demand) - 1), min_size=1)))
    sub = [demand[i] for i in keep]
    g = build(n, edges)
    expect = ref.pair_times(ref.make_adj(n, edges), sub, facilities, limit)
    for bounded in (True, False):
        got = _pairs(_catchments_bounded(g, snapped(sub), snapped(facilities), limit, bounded))
        assert set(got) == set(expect)
        assert all(abs(got[k] - v) <= 1e-9 for k, v in expect.items())


def test_pruned_catchments_keep_a_point_at_exactly_the_limit():
    """A point whose time is the limit itself, summed in another order by the search back from the
    demand (0.7 + 0.1 + 0.1 + 2.9 + 0.35 is not 0.35 + 2.9 + 0.1 + 0.1 + 0.7 in floating point),
    is still reached: without a margin on the bound the site's search was cut at its first node."""
    w = [0.7, 0.1, 0.1, 2.9, 0.35]
    edges = [(i, i + 1, x) for i, x in enumerate(w)] + [(i + 1, i, x) for i, x in enumerate(w)]
    g = build(len(w) + 1, edges)
    limit = 0.0
    for x in w:
        limit += x  # the site's own order of the sums
    demand, sites = [(len(w), 0.0, True)], [(0, 0.0, True), (0, 0.0, True)]
    bounded = _catchments_bounded(g, snapped(demand), snapped(sites), limit, True)
    assert _pairs(bounded) == _pairs(_catchments_bounded(g, snapped(demand), snapped(sites), limit, False))
    assert bounded.nnz == 2


@HS
@given(problems(), st.sampled_from(["step", "gaussian"]), st.data())
def test_e2sfca_matches_reference(p, decay, data):
    n, edges, demand, facilities, limit = p
    g = build(n, edges)
    adj = ref.make_adj(n, edges)
    supply = data.draw(st.lists(st.floats(0, 100), min_size=len(facilities), max_size=len(facilities)))
    pop = data.draw(st.lists(st.floats(0, 1000), min_size=len(demand), max_size=len(demand)))
    expect = ref.e2sfca(adj, demand, facilities, limit, supply, pop, decay)
    got = access.e2sfca(g, snapped(demand), snapped(facilities), limit, capacity=supply,
                        population=pop, decay=decay)
    assert np.allclose(got.to_numpy(), expect, rtol=1e-9, atol=1e-12)
    # in another number of chunks of facilities: the same ratios (only the order of the sums differs)
    chunks = access.E2SFCA_CHUNKS
    try:
        access.E2SFCA_CHUNKS = data.draw(st.integers(1, 9))
        chunked = access.e2sfca(g, snapped(demand), snapped(facilities), limit, capacity=supply,
                                population=pop, decay=decay)
    finally:
        access.E2SFCA_CHUNKS = chunks
    assert np.allclose(chunked.to_numpy(), got.to_numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- edge snapping vs brute force


@st.composite
def geo_problems(draw):
    """A random directed graph with node coordinates, and demand and facility points that lie on
    nodes, on (or beside) edges, or anywhere."""
    n = draw(st.integers(2, 20))
    c = st.floats(0.0, 1000.0, allow_nan=False, allow_subnormal=False)
    xy = draw(st.lists(st.tuples(c, c), min_size=n, max_size=n))
    m = draw(st.integers(0, 2 * n))
    w = st.floats(0.0, 10.0, allow_nan=False, allow_subnormal=False)
    raw = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), w, st.booleans()),
                        min_size=m, max_size=m))
    edges = []
    for u, v, ww, both in raw:
        edges.append((u, v, ww))
        if both:
            edges.append((v, u, ww))
    pt = st.tuples(st.sampled_from(["free", "node", "between"]), st.integers(0, n - 1), st.integers(0, n - 1),
                   st.floats(0.0, 1.0, allow_subnormal=False), st.floats(-1300.0, 1300.0, allow_subnormal=False),
                   st.floats(-1300.0, 1300.0, allow_subnormal=False),
                   st.floats(-40.0, 40.0, allow_subnormal=False))

    def place(p):
        kind, a, b, f, fx, fy, off = p
        if kind == "free":
            return (fx, fy)
        if kind == "node":
            return xy[a]
        return (xy[a][0] + f * (xy[b][0] - xy[a][0]), xy[a][1] + f * (xy[b][1] - xy[a][1]) + off)

    demand = [place(p) for p in draw(st.lists(pt, min_size=1, max_size=12))]
    facilities = [place(p) for p in draw(st.lists(pt, min_size=0, max_size=8))]
    limit = draw(st.floats(0.0, 25.0, allow_nan=False))
    return n, xy, edges, demand, facilities, limit


def geo_build(n, xy, edges):
    x = np.array([p[0] for p in xy])
    y = np.array([p[1] for p in xy])
    w = np.array([e[2] for e in edges], dtype=float)
    return network.from_edges(x, y, [e[0] for e in edges], [e[1] for e in edges], w, w * 80.0, mode="drive",
                              crs="EPSG:32650", min_component_nodes=1)


def points(pts, prefix):
    return gpd.GeoSeries([Point(p) for p in pts], crs="EPSG:32650", index=[f"{prefix}{i}" for i in range(len(pts))])


def graph_segments(g):
    """Every node pair joined by an edge, plus lone nodes: the reference's idea of the roads."""
    tails = g.tails()
    pairs = {(min(a, b), max(a, b)) for a, b in zip(tails.tolist(), g.indices.tolist())}
    used = {a for p in pairs for a in p}
    return sorted(pairs) + [(i, i) for i in range(g.n_nodes) if i not in used]


@HS
@given(geo_problems())
def test_snap_onto_segments_matches_brute_force(p):
    n, xy, edges, demand, _, _ = p
    g = geo_build(n, xy, edges)
    s = access.snap(g, points(demand, "d"))
    segs = graph_segments(g)
    tails = g.tails()
    for i, (px, py) in enumerate(demand):
        dist, _ = ref.nearest_segment(px, py, g.x, g.y, segs)
        assert abs(s.leg_m[i] - dist) <= 1e-9 * max(1.0, dist)
        u, v, t = int(s.u[i]), int(s.v[i]), float(s.t[i])
        assert (min(u, v), max(u, v)) in segs and 0.0 <= t <= 1.0
        qx, qy = g.x[u] + t * (g.x[v] - g.x[u]), g.y[u] + t * (g.y[v] - g.y[u])
        assert abs(math.hypot(px - qx, py - qy) - s.leg_m[i]) <= 1e-9 * max(1.0, dist)
        assert s.node[i] == (u if t <= 0.5 else v)
        for e, a, b in ((s.e_uv[i], u, v), (s.e_vu[i], v, u)):  # the edge ids are those of the graph
            has = [k for k in range(g.n_edges) if tails[k] == a and g.indices[k] == b and a != b]
            assert (e == -1 and not has) or (has == [e])
    assert np.array_equal(s.ok, s.leg_m <= settings.SNAP_MAX_M)


def split_reference(g, d, f, weight="minutes"):
    """The reference graph with every snapped point inserted, and the (node, leg, ok) lists."""
    w = g.weights(weight)
    edges = list(zip(g.tails().tolist(), g.indices.tolist(), w.tolist()))
    pts = [(int(a), int(b), float(t)) for a, b, t in zip(np.r_[d.u, f.u], np.r_[d.v, f.v], np.r_[d.t, f.t])]
    adj, node_of = ref.split_adj(g.n_nodes, edges, pts)
    dleg, fleg = (d.leg_min, f.leg_min) if weight == "minutes" else (d.leg_m, f.leg_m)
    dem = [(node_of[i], float(dleg[i]), bool(d.ok[i])) for i in range(len(d))]
    fac = [(node_of[len(d) + j], float(fleg[j]), bool(f.ok[j])) for j in range(len(f))]
    return adj, dem, fac


@HS
@given(geo_problems(), st.sampled_from(["step", "gaussian"]), st.data())
def test_edge_snapped_queries_match_dijkstra_on_the_split_graph(p, decay, data):
    n, xy, edges, demand, facilities, limit = p
    g = geo_build(n, xy, edges)
    d = access.snap(g, points(demand, "d"))
    f = access.snap(g, points(facilities, "f"))
    adj, dem, fac = split_reference(g, d, f)
    expect = ref.nearest(adj, dem, fac, limit)
    res = access.nearest(g, d, f, limit=limit)
    pt = ref.pair_times(adj, dem, fac, limit)
    tol = 1e-9 * max(1.0, limit)
    for i, (tm, arg) in enumerate(expect):
        got = res["minutes"].iloc[i]
        if math.isinf(tm) or math.isinf(got):  # both out of reach, or one just at the limit (rounding)
            assert (math.isinf(tm) and math.isinf(got) and pd.isna(res["facility"].iloc[i])) \
                or abs(min(tm, got) - limit) <= tol
        else:
            assert abs(got - tm) <= 1e-9 * max(1.0, tm)
            j = int(res["facility"].iloc[i][1:])
            assert j in arg or abs(pt[(j, i)] - tm) <= 1e-9 * max(1.0, tm)
    # the same search as arrays: the times bit for bit, positions of the same facilities
    tp, pos = access.nearest_positions(g, d, f, limit=limit)
    assert np.array_equal(tp, res["minutes"].to_numpy())
    assert list(pos) == [-1 if pd.isna(x) else f.index.get_loc(x) for x in res["facility"]]
    # with the time to every node from the same search: node_times' values bit for bit (the
    # circles are drawn from them), the cells' as before
    tn, pn, at_nodes = access.nearest_positions(g, d, f, limit=limit, nodes=True)
    assert np.array_equal(tn, tp) and np.array_equal(pn, pos)
    assert np.array_equal(at_nodes, access.node_times(g, f, limit))
    C = access.catchments(g, d, f, limit, n_threads=data.draw(st.sampled_from([1, 2])))
    coo = C.tocoo()
    got = {(int(r), int(c)): float(v) for r, c, v in zip(coo.row, coo.col, coo.data)}
    # pairs at the limit within rounding may fall either side
    sure = {k for k, v in pt.items() if v <= limit - 1e-9 * max(1.0, limit)}
    assert sure <= set(got) <= set(pt)
    for k, v in got.items():
        assert abs(v - pt[k]) <= 1e-9 * max(1.0, v)
    # metres: the same on the metres weights
    adj_m, dem_m, fac_m = split_reference(g, d, f, "metres")
    lim_m = limit * 80.0
    em = ref.nearest(adj_m, dem_m, fac_m, lim_m)
    gm = access.nearest_distance(g, d, f, lim_m)
    for i, (tm, _) in enumerate(em):
        assert (math.isinf(tm) and math.isinf(gm.iloc[i])) or abs(gm.iloc[i] - tm) <= 1e-9 * max(1.0, tm) \
            or abs(tm - lim_m) <= 1e-6
    # node times = the split graph's distances at the real nodes
    nt = access.node_times(g, f, limit)
    best = {}
    for fn, fl, fok in fac:
        if fok and fl <= limit:
            for node, dd in ref.dijkstra(adj, fn, fl, limit).items():
                best[node] = min(best.get(node, math.inf), dd)
    for node in range(g.n_nodes):
        e = best.get(node, math.inf)
        assert (math.isinf(e) and math.isinf(nt[node])) or abs(nt[node] - e) <= 1e-9 * max(1.0, e) \
            or abs(e - limit) <= 1e-9 * max(1.0, limit)
    # E2SFCA on the exact pair times of the catchments
    supply = np.arange(1.0, len(facilities) + 1)
    pop = np.arange(1.0, len(demand) + 1)
    edges_of_w = (limit / 3, 2 * limit / 3, limit)  # step weights flip there: rounding may too
    if not any(abs(v - b) <= 1e-9 * max(1.0, limit) for v in pt.values() for b in edges_of_w):
        e2 = ref.e2sfca(adj, dem, fac, limit, supply, pop, decay)
        a2 = access.e2sfca(g, d, f, limit, capacity=supply, population=pop, decay=decay)
        assert np.allclose(a2.to_numpy(), e2, rtol=1e-9, atol=1e-12)


def e2sfca_by_catchments(g, d, f, limit, supply, pop, decay):
    """E2SFCA from the sparse catchment matrix (the way :func:`access.e2sfca` computed it before its kernel)."""
    C = access.catchments(g, d, f, limit)
    wfun = access.step_weights if decay == "step" else access.gaussian_weight
    C.data = wfun(C.data, float(limit))
    P = np.nan_to_num(np.asarray(pop, dtype=float), nan=0.0)
    dem = C @ P
    with np.errstate(over="ignore"):
        R = np.divide(np.asarray(supply, dtype=float), dem, out=np.zeros(len(dem)), where=dem > 0)
    return C.T @ R


@HS
@given(geo_problems(), st.sampled_from(["step", "gaussian"]), st.data())
def test_e2sfca_equals_the_catchment_products_whatever_the_chunks(p, decay, data):
    """Edge-snapped points (many share a segment: direct pairs), any chunking and threads: the one-pass
    kernel gives the weighted sums of the catchment matrix, to rounding."""
    n, xy, edges, demand, facilities, limit = p
    g = geo_build(n, xy, edges)
    d = access.snap(g, points(demand, "d"))
    f = access.snap(g, points(facilities, "f"))
    supply = data.draw(st.lists(st.floats(0, 100), min_size=len(f), max_size=len(f)))
    pop = data.draw(st.lists(st.one_of(st.floats(0, 1000), st.just(math.nan)), min_size=len(d), max_size=len(d)))
    expect = e2sfca_by_catchments(g, d, f, limit, supply, pop, decay)
    chunks = access.E2SFCA_CHUNKS
    try:
        access.E2SFCA_CHUNKS = data.draw(st.integers(1, 9))
        got = access.e2sfca(g, d, f, limit, capacity=supply, population=pop, decay=decay)
    finally:
        access.E2SFCA_CHUNKS = chunks
    assert list(got.index) == list(d.index)
    # (NaN where both have it: a Gaussian decay with T = 0 weighs a time of 0 by exp(-0.5 (0/0)²))
    assert np.allclose(got.to_numpy(), expect, rtol=1e-12, atol=1e-15, equal_nan=True)


def test_e2sfca_counts_a_cell_reached_only_along_the_shared_segment():
    """A 10-minute road: the facility at 0.4 reaches the cells at 0.5 and 0.7 of it directly (1 and 3
    minutes, the bounds of the first and last step zones of T = 3), not through the road's ends."""
    g = network.from_edges(np.array([0.0, 1000.0]), np.array([0.0, 0.0]), [0, 1], [1, 0], np.array([10.0, 10.0]),
                           np.array([800.0, 800.0]), mode="walk", crs="EPSG:32650", min_component_nodes=1)
    d = access.snap(g, points([(500.0, 0.0), (700.0, 0.0), (1000.0, 0.0)], "d"))
    f = access.snap(g, points([(400.0, 0.0)], "f"))
    pop = [10.0, 20.0, 30.0]
    a = access.e2sfca(g, d, f, 3.0, capacity=[5.0], population=pop)
    w = access.step_weights(access.catchments(g, d, f, 3.0).toarray()[0, :2], 3.0)
    assert w.tolist() == [1.0, 0.22]
    R = 5.0 / (10.0 * 1.0 + 20.0 * 0.22)
    assert a.tolist() == pytest.approx([R, 0.22 * R, 0.0], rel=1e-12)
    assert np.allclose(a.to_numpy(), e2sfca_by_catchments(g, d, f, 3.0, [5.0], pop, "step"), rtol=1e-12)
    # a cell at the facility's own snap point: time 0 is a reach (weight 1), also with T = 0
    z = access.e2sfca(g, f, f, 0.0, capacity=[5.0], population=[4.0])
    assert z.tolist() == [1.25]


# ---------------------------------------------------------------- properties


@HS
@given(problems(max_fac=6), st.tuples(st.integers(0, 39), st.floats(0, 3), st.booleans()))
def test_time_never_grows_when_a_facility_is_added(p, extra):
    n, edges, demand, facilities, limit = p
    extra = (extra[0] % n, extra[1], extra[2])
    g = build(n, edges)
    before = access.nearest_time(g, snapped(demand), snapped(facilities), limit)
    after = access.nearest_time(g, snapped(demand), snapped(facilities + [extra]), limit)
    assert np.all(after.to_numpy() <= before.to_numpy())


@HS
@given(problems(), st.floats(0, 10))
def test_coverage_never_drops_when_threshold_grows(p, more):
    n, edges, demand, facilities, limit = p
    g = build(n, edges)
    a = access.nearest_time(g, snapped(demand), snapped(facilities), limit)
    b = access.nearest_time(g, snapped(demand), snapped(facilities), limit + more)
    assert np.isfinite(b).sum() >= np.isfinite(a).sum()
    ca = access.count_within(g, snapped(demand), snapped(facilities), limit)
    cb = access.count_within(g, snapped(demand), snapped(facilities), limit + more)
    assert np.all(cb.to_numpy() >= ca.to_numpy())


@HS
@given(problems())
def test_identical_across_runs(p):
    n, edges, demand, facilities, limit = p
    r1 = access.nearest(build(n, edges), snapped(demand), snapped(facilities), limit)
    r2 = access.nearest(build(n, edges), snapped(demand), snapped(facilities), limit)
    pd.testing.assert_frame_equal(r1, r2)
    c1 = access.catchments(build(n, edges), snapped(demand), snapped(facilities), limit, n_threads=2)
    c2 = access.catchments(build(n, edges), snapped(demand), snapped(facilities), limit, n_threads=1)
    assert (c1 != c2).nnz == 0 and np.array_equal(c1.indices, c2.indices)


@HS
@given(problems(max_fac=40), st.data())
def test_queries_on_a_reused_graph_equal_fresh_graphs(p, data):
    """The search workspace cached on the graph is reset correctly between calls."""
    n, edges, demand, facilities, limit = p
    pt = st.tuples(st.integers(0, n - 1), st.floats(0.0, 3.0, allow_nan=False), st.booleans())
    queries = data.draw(st.lists(st.tuples(st.lists(pt, max_size=40), st.floats(0.0, 20.0, allow_nan=False),
                                           st.sampled_from(["minutes", "metres"])), min_size=2, max_size=4))
    queries = [(facilities, limit, "minutes")] + queries
    g = build(n, edges)
    for fac, lim, weight in queries:
        lim = lim * 80.0 if weight == "metres" else lim
        got = access.nearest(g, snapped(demand), snapped(fac), limit=lim, weight=weight)
        fresh = access.nearest(build(n, edges), snapped(demand), snapped(fac), limit=lim, weight=weight)
        pd.testing.assert_frame_equal(got, fresh)
        nt = access.node_times(g, snapped(fac), lim, weight)
        assert np.array_equal(nt, access.node_times(build(n, edges), snapped(fac), lim, weight))
        assert np.all(g._ws.dist == np.inf) and np.all(g._ws.label == -1)


@HS
@given(st.integers(10, 60), st.lists(st.integers(0, 9), min_size=9, max_size=40), st.floats(1.0, 30.0))
def test_nearest_when_later_facilities_improve_everything(n, at, limit):
    """Facilities in order of decreasing leg on a line: each one improves on all earlier ones, the
    case where the kernel switches from one search per source to one simultaneous search."""
    edges = [(i, i + 1, 0.5) for i in range(n - 1)] + [(i + 1, i, 0.5) for i in range(n - 1)]
    facilities = [(a, 3.0 - 0.07 * k, True) for k, a in enumerate(at)]
    demand = [(i, 0.0, True) for i in range(n)]
    expect = ref.nearest(ref.make_adj(n, edges), demand, facilities, limit)
    res = access.nearest(build(n, edges), snapped(demand), snapped(facilities), limit=limit)
    for i, (tm, arg) in enumerate(expect):
        got = res["minutes"].iloc[i]
        assert (math.isinf(tm) and math.isinf(got)) or abs(got - tm) <= 1e-9
        if not math.isinf(tm):
            assert int(res["facility"].iloc[i][1:]) in arg


def test_concurrent_queries_on_one_graph_agree_with_sequential_ones():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    n = 400
    edges = [(int(a), int(b), float(w)) for a, b, w in
             zip(rng.integers(0, n, 1600), rng.integers(0, n, 1600), rng.uniform(0.1, 2.0, 1600))]
    g = build(n, edges)
    demand = [(i, 0.0, True) for i in range(n)]
    facs = [[(int(j), 0.5, True) for j in rng.choice(n, k, replace=False)] for k in (1, 3, 10, 30) * 5]
    expect = [access.nearest_time(build(n, edges), snapped(demand), snapped(f), 6.0) for f in facs]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda f: access.nearest_time(g, snapped(demand), snapped(f), 6.0), facs))
    for a, b in zip(got, expect):
        pd.testing.assert_series_equal(a, b)
    assert np.all(g._ws.dist == np.inf) and np.all(g._ws.label == -1)


# ---------------------------------------------------------------- snapping and plain cases


def line_graph():
    """Nodes 0..4 on a line 100 m apart, two-way, at walking speed."""
    x = np.arange(5) * 100.0
    y = np.zeros(5)
    u = [0, 1, 2, 3, 1, 2, 3, 4]
    v = [1, 2, 3, 4, 0, 1, 2, 3]
    m = np.full(8, 100.0)
    return network.from_edges(x, y, u, v, m / 80.0, m, mode="walk", crs="EPSG:32650",
                              min_component_nodes=1)


def test_snap_matches_brute_force_and_reports_no_road_access():
    g = line_graph()
    rng = np.random.default_rng(1)
    px, py = rng.uniform(-200, 600, 50), rng.uniform(-1500, 1500, 50)
    pts = gpd.GeoSeries([Point(a, b) for a, b in zip(px, py)], crs="EPSG:32650",
                        index=[f"c{i}" for i in range(50)])
    s = access.snap(g, pts)
    # nearest point on the road x in [0, 400], y = 0
    d = np.hypot(px - np.clip(px, 0, 400), py)
    assert np.allclose(s.leg_m, d)
    assert np.allclose(g.x[s.u] + s.t * (g.x[s.v] - g.x[s.u]), np.clip(px, 0, 400))
    assert np.allclose(s.leg_min, s.leg_m / (settings.SNAP_KMH * 1000 / 60))
    assert np.array_equal(s.ok, d <= settings.SNAP_MAX_M)
    assert (~s.ok).any()
    assert list(s.index) == list(pts.index)
    t = access.nearest_time(g, s, gpd.GeoSeries([Point(0, 0)], crs="EPSG:32650"), 60)
    assert len(t) == 50 and np.isinf(t[~s.ok]).all()


def test_snap_reprojects_points_from_lonlat():
    g = line_graph()
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(32650, 4326, always_xy=True).transform(210.0, 5.0)
    s = access.snap(g, gpd.GeoDataFrame(geometry=[Point(lon, lat), None], crs=4326))
    # onto the road between nodes 2 and 3, 10 m from node 2, 5 m off the road
    assert s.node[0] == 2 and abs(s.leg_m[0] - 5.0) < 0.01
    assert {int(s.u[0]), int(s.v[0])} == {2, 3} and abs(g.x[s.u[0]] + s.t[0] * 100.0 * np.sign(
        g.x[s.v[0]] - g.x[s.u[0]]) - 210.0) < 0.01
    assert not s.ok[1]


def test_mid_edge_points_use_the_road_beside_them():
    """A house 30 m beside the middle of the 100 m road 1-2, a facility on node 0: it walks 30 m to
    the road, then 150 m along it (node snapping made it walk ~58 m to node 1 or 2 instead)."""
    g = line_graph()
    dem = gpd.GeoSeries([Point(150, 30)], crs="EPSG:32650")
    fac = gpd.GeoSeries([Point(0, 0)], crs="EPSG:32650")
    walk = settings.kmh_to_m_per_min(settings.SNAP_KMH)
    t = access.nearest_time(g, dem, fac, 15.0).iloc[0]
    assert abs(t - (150 / 80.0 + 30 / walk)) < 1e-9
    assert abs(access.nearest_distance(g, dem, fac, 1e4).iloc[0] - 180.0) < 1e-9
    C = access.catchments(g, dem, fac, 15.0)
    assert abs(C.toarray()[0, 0] - t) < 1e-9
    assert abs(access.node_times(g, dem, 15.0)[1] - (50 / 80.0 + 30 / walk)) < 1e-9


def test_same_edge_points_reach_each_other_directly():
    g = line_graph()
    walk = settings.kmh_to_m_per_min(settings.SNAP_KMH)
    dem = gpd.GeoSeries([Point(180, -10)], crs="EPSG:32650")
    fac = gpd.GeoDataFrame({"capacity": [1.0]}, geometry=[Point(120, 10)], crs="EPSG:32650")
    expect = 60 / 80.0 + 20 / walk  # along the road between them, not via node 1 or 2
    assert abs(access.nearest_time(g, dem, fac, 15.0).iloc[0] - expect) < 1e-9
    C = access.catchments(g, dem, fac, 15.0)
    assert C.nnz == 1 and abs(C.data[0] - expect) < 1e-9
    assert access.count_within(g, dem, fac, expect).iloc[0] == 1
    # a one-way road 0 -> 1 of 1000 m: only downstream of the facility
    x, y = np.array([0.0, 1000.0]), np.zeros(2)
    g1 = network.from_edges(x, y, [0], [1], [2.0], [1000.0], mode="drive", crs="EPSG:32650",
                            min_component_nodes=1)
    pts = gpd.GeoSeries([Point(300, 0), Point(700, 0)], crs="EPSG:32650")
    down = access.nearest_time(g1, pts.iloc[[1]], pts.iloc[[0]], 10.0).iloc[0]
    assert abs(down - 0.4 * 2.0) < 1e-12
    assert math.isinf(access.nearest_time(g1, pts.iloc[[0]], pts.iloc[[1]], 10.0).iloc[0])
    assert access.catchments(g1, pts.iloc[[0]], pts.iloc[[1]], 10.0).nnz == 0


def test_hand_computed_times_on_a_line():
    g = line_graph()
    dem = gpd.GeoSeries([Point(x, 0) for x in (0, 100, 200, 300, 400)], crs="EPSG:32650")
    fac = gpd.GeoDataFrame({"capacity": [10.0]}, geometry=[Point(0, 40)], crs="EPSG:32650",
                           index=["A"])
    # leg 40 m = 0.5 min, then 1.25 min per 100 m
    t = access.nearest_time(g, dem, fac, max_minutes=3.0)
    assert np.allclose(t.to_numpy(), [0.5, 1.75, 3.0, np.inf, np.inf])
    r = access.nearest(g, dem, fac, limit=3.0)
    assert r["facility"].tolist()[:3] == ["A", "A", "A"] and r["facility"].iloc[3:].isna().all()
    dist = access.nearest_distance(g, dem, fac, max_metres=250)
    assert np.allclose(dist.to_numpy(), [40, 140, 240, np.inf, np.inf])


def test_one_way_direction_is_facility_to_cell():
    x, y = np.array([0.0, 100.0]), np.zeros(2)
    g = network.from_edges(x, y, [0], [1], [5.0], [100.0], mode="drive", crs="EPSG:32650",
                           min_component_nodes=1)
    dem = snapped([(1, 0.0, True)])
    assert access.nearest_time(g, dem, snapped([(0, 0.0, True)]), 10).iloc[0] == 5.0
    assert math.isinf(access.nearest_time(g, snapped([(0, 0.0, True)]), snapped([(1, 0.0, True)]), 10).iloc[0])


def test_zero_time_pairs_are_kept_in_catchments():
    g = line_graph()
    C = access.catchments(g, snapped([(2, 0.0, True)]), snapped([(2, 0.0, True)]), 15)
    assert C.nnz == 1 and C.data[0] == 0.0
    assert access.count_within(g, snapped([(2, 0.0, True)]), snapped([(2, 0.0, True)]), 15).iloc[0] == 1


def test_e2sfca_refuses_missing_capacity():
    from coverage.errors import InputError

    g = line_graph()
    fac = gpd.GeoDataFrame({"capacity": [np.nan]}, geometry=[Point(0, 0)], crs="EPSG:32650")
    dem = gpd.GeoDataFrame({"pop": [1.0]}, geometry=[Point(0, 0)], crs="EPSG:32650")
    with pytest.raises(InputError):
        access.e2sfca(g, dem, fac)


def test_weights_are_as_documented():
    T = 15.0
    assert access.step_weights([0, 5, 5.01, 10, 10.01, 15, 15.01], T).tolist() == [
        1.0, 1.0, 0.68, 0.68, 0.22, 0.22, 0.0]
    w = access.gaussian_weight([0.0, T, T + 1e-9], T)
    assert w[0] == 1.0 and abs(w[1] - 0.01) < 1e-12 and w[2] == 0.0


def test_gaussian_decay_with_a_zero_limit():
    """With a 0-minute limit only a time of 0 is within reach, with W(0) = 1 (no 0/0 NaN), in the
    weights and in the compiled E2SFCA, as in the reference."""
    with np.errstate(all="raise"):
        assert access.gaussian_weight([0.0, 1e-9], 0.0).tolist() == [1.0, 0.0]
    assert ref.gauss_w(0.0, 0.0) == 1.0 and ref.gauss_w(1e-9, 0.0) == 0.0
    g = line_graph()
    a = access.e2sfca(g, snapped([(2, 0.0, True), (3, 0.0, True)]), snapped([(2, 0.0, True)]), 0.0,
                      capacity=[3.0], population=[2.0, 5.0], decay="gaussian")
    assert a.tolist() == [1.5, 0.0]


# ---------------------------------------------------------------- real data, networkx as reference


def test_nearest_time_on_real_graph_matches_networkx(shared_data):
    import shapely

    g = network.read_osm(shared_data / "helsinki/osm/Helsinki.osm.pbf", mode="walk")
    rng = np.random.default_rng(7)
    fac_nodes = rng.choice(g.n_nodes, 12, replace=False)
    dem_nodes = np.arange(g.n_nodes)
    fx, fy = g.x[fac_nodes] + 3.0, g.y[fac_nodes] + 4.0
    fac = gpd.GeoSeries(gpd.points_from_xy(fx, fy), crs=g.crs)
    # demand given as already snapped to every node (OSM has distinct nodes at equal coordinates)
    z = np.zeros(g.n_nodes)
    dem = Snapped(node=dem_nodes, leg_m=z, leg_min=z, ok=z == 0, index=pd.RangeIndex(g.n_nodes))
    t = access.nearest_time(g, dem, fac, max_minutes=10.0)
    tails = g.tails()
    G = nx.DiGraph()
    G.add_nodes_from(range(g.n_nodes))
    G.add_weighted_edges_from(zip(tails.tolist(), g.indices.tolist(), g.minutes.tolist()), weight="w")
    # brute-force snapping of the facilities onto the nearest edge (shapely), the edge split there in
    # both directions it exists, then a virtual source "S" joined to the split points by legs
    lines = shapely.linestrings(np.stack([np.c_[g.x[tails], g.y[tails]], np.c_[g.x[g.indices], g.y[g.indices]]], 1))
    for k in range(len(fac_nodes)):
        p = shapely.Point(fx[k], fy[k])
        dist = shapely.distance(lines, p)
        e = int(np.argmin(dist))
        a, b = int(tails[e]), int(g.indices[e])
        frac = shapely.line_locate_point(lines[e], p, normalized=True)
        leg = dist[e] / (settings.SNAP_KMH * 1000 / 60)
        P = ("P", k)
        for x1, x2, f1 in ((a, b, frac), (b, a, 1 - frac)):  # x1 -> x2 edge: x1 -> P is f1 of it
            if G.has_edge(x1, x2):
                w = g.minutes[e] if (x1, x2) == (a, b) else G[x1][x2]["w"]
                G.add_edge(x1, P, w=f1 * w)
                G.add_edge(P, x2, w=(1 - f1) * w)
        G.add_edge("S", P, w=leg)
    d = nx.multi_source_dijkstra_path_length(G, {"S"}, cutoff=10.0, weight="w")
    expect = np.array([d.get(i, np.inf) for i in range(g.n_nodes)])
    expect[expect > 10.0] = np.inf
    assert np.isfinite(expect).sum() > 100
    bad = ~np.isclose(t.to_numpy(), expect, rtol=0, atol=1e-9)
    assert not bad.any(), (t.to_numpy()[bad][:5], expect[bad][:5])


@HS
@given(geo_problems())
def test_trimmed_search_targets_are_rebuilt_the_same(p):
    """A large set's cached search targets are dropped by ``trim_cache`` (a small one keeps them) and
    the next search, which builds them again, gives the same times and facilities."""
    n, xy, edges, demand, facilities, limit = p
    g = geo_build(n, xy, edges)
    d, f = access.snap(g, points(demand, "d")), access.snap(g, points(facilities, "f"))
    before = access.nearest(g, d, f, limit=limit)
    targets = [k for k in d._ends_cache if isinstance(k, tuple) and k[0] == "targets"]
    assert targets
    d.trim_cache()  # a small set: kept
    assert all(k in d._ends_cache for k in targets)
    keep = access._ENDS_CACHE_MAX
    access._ENDS_CACHE_MAX = 0  # every set counts as large
    try:
        d.trim_cache()
        assert not any(isinstance(k, tuple) and k[0] == "targets" for k in d._ends_cache)
        after = access.nearest(g, d, f, limit=limit)
    finally:
        access._ENDS_CACHE_MAX = keep
    pd.testing.assert_frame_equal(before, after)
