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
    d = np.hypot(px[:, None] - g.x[None], py[:, None] - g.y[None])
    assert np.array_equal(s.node, d.argmin(axis=1))
    assert np.allclose(s.leg_m, d.min(axis=1))
    assert np.allclose(s.leg_min, s.leg_m / (settings.SNAP_KMH * 1000 / 60))
    assert np.array_equal(s.ok, d.min(axis=1) <= settings.SNAP_MAX_M)
    assert (~s.ok).any()
    assert list(s.index) == list(pts.index)
    t = access.nearest_time(g, s, gpd.GeoSeries([Point(0, 0)], crs="EPSG:32650"), 60)
    assert len(t) == 50 and np.isinf(t[~s.ok]).all()


def test_snap_reprojects_points_from_lonlat():
    g = line_graph()
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(32650, 4326, always_xy=True).transform(210.0, 5.0)
    s = access.snap(g, gpd.GeoDataFrame(geometry=[Point(lon, lat), None], crs=4326))
    assert s.node[0] == 2 and abs(s.leg_m[0] - math.hypot(10, 5)) < 0.01
    assert not s.ok[1]


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


# ---------------------------------------------------------------- real data, networkx as reference


def test_nearest_time_on_real_graph_matches_networkx(shared_data):
    g = network.read_osm(shared_data / "helsinki/osm/Helsinki.osm.pbf", mode="walk")
    rng = np.random.default_rng(7)
    fac_nodes = rng.choice(g.n_nodes, 12, replace=False)
    dem_nodes = np.arange(g.n_nodes)
    fac = gpd.GeoSeries(gpd.points_from_xy(g.x[fac_nodes] + 3.0, g.y[fac_nodes] + 4.0), crs=g.crs)
    # demand given as already snapped to every node (OSM has distinct nodes at equal coordinates)
    z = np.zeros(g.n_nodes)
    dem = Snapped(node=dem_nodes, leg_m=z, leg_min=z, ok=z == 0, index=pd.RangeIndex(g.n_nodes))
    t = access.nearest_time(g, dem, fac, max_minutes=10.0)
    G = nx.DiGraph()
    G.add_nodes_from(range(g.n_nodes))
    G.add_weighted_edges_from(zip(g.tails().tolist(), g.indices.tolist(), g.minutes.tolist()), weight="w")
    # brute-force snapping of the facilities, then a virtual source "S" joined to their nodes by legs
    fx, fy = g.x[fac_nodes] + 3.0, g.y[fac_nodes] + 4.0
    dd = np.hypot(fx[:, None] - g.x[None], fy[:, None] - g.y[None])
    for k, node in enumerate(dd.argmin(axis=1)):
        leg = dd[k].min() / (settings.SNAP_KMH * 1000 / 60)
        if not G.has_edge("S", int(node)) or G["S"][int(node)]["w"] > leg:
            G.add_edge("S", int(node), w=leg)
    d = nx.multi_source_dijkstra_path_length(G, {"S"}, cutoff=10.0, weight="w")
    expect = np.array([d.get(i, np.inf) for i in range(g.n_nodes)])
    expect[expect > 10.0] = np.inf
    assert np.isfinite(expect).sum() > 100
    bad = ~np.isclose(t.to_numpy(), expect, rtol=0, atol=1e-9)
    assert not bad.any(), (t.to_numpy()[bad][:5], expect[bad][:5])
