"""Splitting wide uncovered clusters: the compiled weighted k-means against plain references.

* :func:`coverage._kernels.weighted_kmeans` equals a plain-Python k-means++ / Lloyd written from
  its docstring, set by set (so a set's parts do not depend on the other sets of the call), and
  its fits are as tight as scikit-learn's (the implementation it replaced);
* :func:`coverage.evaluate.uncovered_clusters` splits only inside the linked clusters: on hand-made
  blobs, on the demo county and on Macau (real data), the parts of every cluster hold exactly its
  people, a run repeats exactly, and the parts of a wide blob stay near the split radius;
* the unit keys computed once per call give the same tables as plain loops, with cells in no unit.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings as hsettings, strategies as st
from shapely.geometry import Point

from coverage import _kernels, evaluate as ev, pipeline
from coverage.standards import load_preset

CRS = 4547
PRESET = load_preset("cn-default")
MACAU = Path(__file__).resolve().parent / "data" / "macau.yaml"


def _uniforms(k: int) -> np.ndarray:
    return np.random.default_rng(0).random(1 + (k - 1) * (2 + int(np.log(k))))


def reference_kmeans(x, y, w, k, u, max_iter=30, tol=1e-3) -> list[int]:
    """The kernel's docstring in plain Python: one set, lists and loops."""
    n = len(x)
    px = [float(x[i]) - float(x[0]) for i in range(n)]
    py = [float(y[i]) - float(y[0]) for i in range(n)]
    pw = [float(v) for v in w]

    def first_above(c, r):
        acc = 0.0
        for i, v in enumerate(c):
            acc += v
            if acc > r:
                return i
        return n - 1

    def d2(i, cx, cy):
        return (px[i] - cx) * (px[i] - cx) + (py[i] - cy) * (py[i] - cy)

    mx, my = sum(px) / n, sum(py) / n
    vx = sum((p - mx) * (p - mx) for p in px)
    vy = sum((p - my) * (p - my) for p in py)
    tol_abs = tol * (vx / n + vy / n) / 2.0
    j = first_above(pw, u[0] * sum(pw))
    cx, cy = [px[j]], [py[j]]
    near = [d2(i, cx[0], cy[0]) for i in range(n)]
    pot = sum(pw[i] * near[i] for i in range(n))
    ui = 1
    for _ in range(1, k):
        c = [pw[i] * near[i] for i in range(n)]
        best, best_pot = 0, math.inf
        for _t in range(2 + int(np.log(k))):
            cand = first_above(c, u[ui] * pot)
            ui += 1
            p = sum(pw[i] * min(near[i], d2(i, px[cand], py[cand])) for i in range(n))
            if p < best_pot:
                best, best_pot = cand, p
        cx.append(px[best])
        cy.append(py[best])
        near = [min(near[i], d2(i, px[best], py[best])) for i in range(n)]
        pot = sum(pw[i] * near[i] for i in range(n))

    def assign():
        out = []
        for i in range(n):
            d = [d2(i, cx[q], cy[q]) for q in range(k)]
            out.append(d.index(min(d)))
        return out

    lab = assign()
    for _ in range(max_iter):
        shift = 0.0
        for q in range(k):
            sw = sx = sy = 0.0
            for i in range(n):
                if lab[i] == q:
                    sw += pw[i]
                    sx += pw[i] * px[i]
                    sy += pw[i] * py[i]
            if sw > 0:
                nx, ny = sx / sw, sy / sw
                shift += (nx - cx[q]) ** 2 + (ny - cy[q]) ** 2
                cx[q], cy[q] = nx, ny
        new = assign()
        changed = new != lab
        lab = new
        if not changed or shift <= tol_abs:
            break
    return lab


point_sets = st.lists(
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 40)), min_size=2, max_size=40,
             unique_by=lambda t: (t[0], t[1])),
    min_size=1, max_size=4,
)


@hsettings(max_examples=60, deadline=None)
@given(point_sets, st.data())
def test_kernel_equals_plain_reference_set_by_set(sets, data):
    """On a 100 m grid with whole people every sum is exact: the labels must be equal."""
    xs, ys, ws, ks, ptr = [], [], [], [], [0]
    for pts in sets:
        k = data.draw(st.integers(2, min(len(pts), 7)))
        xs += [465000.0 + 100.0 * p[0] for p in pts]
        ys += [3900000.0 + 100.0 * p[1] for p in pts]
        ws += [float(p[2]) for p in pts]
        ks.append(k)
        ptr.append(len(xs))
    u = _uniforms(max(ks))
    x, y, w = np.array(xs), np.array(ys), np.array(ws)
    got = _kernels.weighted_kmeans(x, y, w, np.array(ptr), np.array(ks), u, 30, 1e-3)
    for g, k in enumerate(ks):
        a, b = ptr[g], ptr[g + 1]
        want = reference_kmeans(x[a:b], y[a:b], w[a:b], k, u)
        assert got[a:b].tolist() == want, g
        assert got[a:b].min() >= 0 and got[a:b].max() < k
    # the same input gives the same parts
    again = _kernels.weighted_kmeans(x, y, w, np.array(ptr), np.array(ks), u, 30, 1e-3)
    assert (again == got).all()


def _inertia(xy: np.ndarray, w: np.ndarray, lab: np.ndarray) -> float:
    s = 0.0
    for j in np.unique(lab):
        m = lab == j
        c = np.average(xy[m], axis=0, weights=w[m])
        s += float((w[m] * ((xy[m] - c) ** 2).sum(axis=1)).sum())
    return s


def test_kernel_fits_as_tight_as_scikit_learn():
    """Population-weighted sums of squares against scikit-learn's KMeans (same settings as before)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(7)
    ratios = []
    for _ in range(40):
        n_blobs = int(rng.integers(2, 6))
        centres = rng.uniform(0, 5000, (n_blobs, 2))
        xy = np.vstack([c + rng.normal(0, rng.uniform(150, 600), (int(rng.integers(20, 150)), 2)) for c in centres])
        xy = np.round(xy / 100) * 100 + [465000.0, 3900000.0]
        xy = np.unique(xy, axis=0)
        w = rng.gamma(2.0, 10.0, len(xy))
        k = int(rng.integers(2, 9))
        lab = _kernels.weighted_kmeans(xy[:, 0].copy(), xy[:, 1].copy(), w, np.array([0, len(xy)]),
                                       np.array([k]), _uniforms(k), 30, 1e-3)
        sk = KMeans(n_clusters=k, n_init=1, max_iter=30, tol=1e-3, random_state=0).fit(xy, sample_weight=w)
        ratios.append(_inertia(xy, w, lab) / _inertia(xy, w, sk.labels_))
    assert np.mean(ratios) <= 1.1 and np.median(ratios) <= 1.05 and max(ratios) < 2.0, ratios


# --- uncovered_clusters ------------------------------------------------------------------------


def _check_parts(cells: gpd.GeoDataFrame, rule, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split and unsplit clusters (``min_people=0``): as many people and cells, at least as many
    clusters, and the same result twice."""
    whole = ev.uncovered_clusters(cells, rule, min_people=0, **{**kw, "split_m": 0})
    parts = ev.uncovered_clusters(cells, rule, min_people=0, **kw)
    assert parts["population"].sum() == pytest.approx(whole["population"].sum(), rel=1e-9)
    assert parts["n_cells"].sum() == whole["n_cells"].sum()
    assert len(parts) >= len(whole)
    # the same input gives the same clusters
    pd.testing.assert_frame_equal(pd.DataFrame(parts), pd.DataFrame(ev.uncovered_clusters(cells, rule, min_people=0, **kw)))
    return whole, parts


def test_split_parts_of_a_wide_blob_stay_near_the_radius():
    """A uniform 4 km × 4 km block with split radius 600 m: ceil(area / π r²) parts, each near r."""
    side, step, r = 40, 100.0, 600.0
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    xy = np.column_stack([500000 + ii.ravel() * step, 3900000 + jj.ravel() * step])
    cells = gpd.GeoDataFrame({"pop": np.full(len(xy), 10.0), "t_clinic_urban_15min": np.inf, "urban": True,
                              "unit_code": "A", "unit_name": "城关街道"},
                             geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=CRS)
    rule = PRESET.circle("clinic_urban_15min")
    _, parts = _check_parts(cells, rule, split_m=r)
    k = math.ceil(side * side * step**2 / (math.pi * r**2))
    assert len(parts) == k
    assert parts["population"].sum() == pytest.approx(side * side * 10.0)
    # every cell's distance to its part's centre, from the parts' centres (nearest centre = k-means)
    c = parts[["x", "y"]].to_numpy()
    d = np.sqrt(((xy[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    assert np.median(d) < r and d.max() < 1.6 * r
    # parts about equal: none below a third of the mean
    assert parts["n_cells"].min() > side * side / k / 3


def test_split_keeps_people_on_hand_made_blobs():
    from test_evaluate import blob_cells

    cells = blob_cells()
    for split in (100.0, 120.0, 250.0):  # the 3 × 3 blob reaches 141 m from its centre
        whole, parts = _check_parts(cells, PRESET.circle("clinic_rural_30min"), split_m=split)
        assert (len(parts) > len(whole)) == (split < 141)


@pytest.fixture(scope="module")
def demo_run():
    inputs = pipeline.load_inputs(pipeline.demo_scenario_path())
    return pipeline.evaluate_model(pipeline.build_model(inputs))


@pytest.fixture(scope="module")
def macau_run(shared_data):
    inputs = pipeline.load_inputs(MACAU)
    return pipeline.evaluate_model(pipeline.build_model(inputs))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["demo_run", "macau_run"])
def test_split_clusters_nest_in_linked_clusters(which, request):
    """Demo and Macau (real data): for every rule with uncovered people the split parts hold the
    linked clusters' people, each part inside one linked cluster; the pipeline's clusters (with
    min_people and the shared cell coordinates) are those of a plain call."""
    run = request.getfixturevalue(which)
    cells, inputs = run.model.cells, run.model.inputs
    xy = shapely.get_coordinates(cells.geometry.array)
    split_somewhere = False
    for rule in pipeline.rules_of(inputs.preset):
        got = run.clusters[rule.id]
        plain = ev.uncovered_clusters(cells, rule, villages=inputs.villages)
        pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(plain))
        pd.testing.assert_frame_equal(pd.DataFrame(plain), pd.DataFrame(
            ev.uncovered_clusters(cells, rule, villages=inputs.villages, cell_xy=xy)))
        if not len(plain):
            continue
        whole, parts = _check_parts(cells, rule)
        split_somewhere |= len(parts) > len(whole)
        # each part inside one linked cluster, holding its people: on the labels themselves
        g = ev._group(cells, rule.group)
        m = ev.covered_mask(cells, rule)
        sel = np.flatnonzero(ev.applies_mask(cells, rule.applies_to) & ~m & (g > 0))
        linked = ev._link_labels(xy[sel], 150.0)
        split = ev._split_wide(linked, xy[sel], g[sel], ev.reach_m(rule), lambda: 100.0)
        pairs = pd.DataFrame({"part": split, "linked": linked}).drop_duplicates()
        assert pairs["part"].is_unique  # no part spans two linked clusters
        assert (split[linked == split] == linked[linked == split]).all()
        per = pd.Series(g[sel]).groupby(linked).sum()
        back = pd.Series(g[sel]).groupby(split).sum().groupby(pairs.set_index("part")["linked"]).sum()
        np.testing.assert_allclose(back.sort_index().to_numpy(), per.sort_index().to_numpy(), rtol=1e-12)
    assert split_somewhere


# --- unit keys ---------------------------------------------------------------------------------


def test_unit_keys_with_cells_in_no_unit():
    """Missing and empty codes go to "?" 未归属乡镇; a missing name to 未归属乡镇; plain loops agree."""
    codes = ["B", None, "A", "", "B", "A", None, "C"]
    names = ["乙镇", "x", None, "y", "乙镇(2)", "甲镇", None, "丙镇"]
    pop = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]
    from test_evaluate import random_cells

    cells = pd.DataFrame(random_cells(0, n=8).drop(columns="geometry"))
    cells = cells.assign(unit_code=pd.array(codes, dtype="string"), unit_name=names, pop=pop, urban=True,
                         t_clinic_urban_15min=[0.0, 99.0] * 4)
    t = ev.circle_coverage(cells, PRESET).query("rule_id == 'clinic_urban_15min'")
    want: dict[str, list] = {}
    for c, nm, p, tt in zip(codes, names, pop, cells["t_clinic_urban_15min"]):
        key = c if c else "?"
        name = "未归属乡镇" if key == "?" else (nm if nm is not None else "未归属乡镇")
        want.setdefault(key, [name, 0.0, 0.0])
        want[key][1] += p
        want[key][2] += p if tt <= 15 else 0.0
    rows = t[t["unit_code"] != ""]
    assert list(rows["unit_code"]) == sorted(want)
    for r in rows.itertuples():
        assert [r.unit_name, r.population, r.covered] == want[r.unit_code]
    assert t.iloc[0]["population"] == sum(pop)
    # without a unit_name column the code names the unit
    t2 = ev.circle_coverage(cells.drop(columns="unit_name"), PRESET).query("rule_id == 'clinic_urban_15min'")
    assert list(t2["unit_name"][1:]) == ["未归属乡镇" if c == "?" else c for c in sorted(want)]


def test_unassigned_cells_only_when_there_are_some():
    from test_evaluate import random_cells

    cells = pd.DataFrame(random_cells(0, n=2).drop(columns="geometry")).assign(
        unit_code=["A", "B"], unit_name=["甲", "乙"], pop=[1.0, 2.0], urban=True, t_clinic_urban_15min=[0.0, 0.0])
    t = ev.circle_coverage(cells, PRESET).query("rule_id == 'clinic_urban_15min'")
    assert list(t["unit_code"]) == ["", "A", "B"]
    cl = ev.uncovered_clusters(gpd.GeoDataFrame(cells.assign(t_clinic_urban_15min=np.inf),
                                                geometry=[Point(500000, 3900000), Point(500100, 3900000)], crs=CRS),
                               PRESET.circle("clinic_urban_15min"), min_people=0)
    assert list(cl["unit_code"]) == ["B"] and list(cl["unit_name"]) == ["乙"]  # B has more people


# --- compiled helpers of uncovered_clusters against plain references ----------------------------


@hsettings(max_examples=40, deadline=None)
@given(st.integers(3, 14), st.integers(3, 14), st.integers(0, 2**31 - 1), st.integers(2, 12))
def test_kernel_equals_plain_reference_on_raster_rows(nx, ny, seed, k):
    """Cells in raster order (rows of one ``y``, north to south), as uncovered cells come: the rows
    skipped by the seeding and the points skipped by the Lloyd bounds change no label."""
    rng = np.random.default_rng(seed)
    jj, ii = np.meshgrid(np.arange(ny)[::-1], np.arange(nx), indexing="ij")
    keep = rng.random(jj.size) < 0.8
    x = 465000.0 + 100.0 * ii.ravel()[keep]
    y = 3900000.0 + 100.0 * jj.ravel()[keep]
    if len(x) < 2:
        return
    w = rng.integers(1, 40, len(x)).astype(float)
    k = min(k, len(x))
    u = _uniforms(k)
    got = _kernels.weighted_kmeans(x, y, w, np.array([0, len(x)]), np.array([k]), u, 30, 1e-3)
    assert got.tolist() == reference_kmeans(x, y, w, k, u)


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(1, 9)), min_size=1, max_size=60),
       st.data())
def test_cluster_unit_pairs_equal_factorize(points, data):
    """(cluster, unit) pairs in order of their first point, with their first row and people, as
    pandas.factorize and numpy.bincount give them; points of clusters not kept are left out."""
    lab = np.array([p[0] for p in points], dtype=np.int64)
    unit = np.array([p[1] for p in points], dtype=np.int64)
    w = np.array([p[2] for p in points], dtype=float) / 7.0
    kept = np.array(data.draw(st.lists(st.booleans(), min_size=6, max_size=6)))
    rows = np.arange(len(points), dtype=np.int64) * 3 + 1  # the points' rows among all the cells
    unit_of_row = np.zeros(3 * len(points) + 1, dtype=np.int64)
    unit_of_row[rows] = unit
    pl, pu, first, pw = _kernels.cluster_unit_pairs(lab, kept, unit_of_row, rows, w)
    sub = np.flatnonzero(kept[lab])
    f, pairs = pd.factorize(lab[sub] * 10 + unit[sub])
    assert pl.tolist() == (np.asarray(pairs) // 10).tolist()
    assert pu.tolist() == (np.asarray(pairs) % 10).tolist()
    assert first.tolist() == rows[sub][pd.Series(f).drop_duplicates().index.to_numpy()].tolist()
    assert pw.tolist() == np.bincount(f, weights=w[sub]).tolist()


def test_linking_on_nodes_of_all_cells_equals_kdtree():
    """A subset linked on the grid nodes and raster keys of all the cells (as ClusterCells gives
    them), in raster order or shuffled: the components of the KD-tree's pairs."""
    from test_evaluate import _kdtree_labels

    rng = np.random.default_rng(5)
    for trial in range(30):
        side = int(rng.integers(5, 60))
        jj, ii = np.meshgrid(np.arange(side)[::-1], np.arange(side), indexing="ij")
        xy_all = np.column_stack([465050.0 + 100.0 * ii.ravel(), 3929650.0 + 100.0 * jj.ravel()])
        xy_all = xy_all[rng.random(len(xy_all)) < 0.9]
        if trial % 3 == 2:
            xy_all = xy_all[rng.permutation(len(xy_all))]  # not in raster order
        shared = ev.ClusterCells(pd.DataFrame({"x": xy_all[:, 0], "y": xy_all[:, 1]}))
        rows = np.flatnonzero(rng.random(len(xy_all)) < rng.uniform(0.1, 0.9))
        if len(rows) < 2:
            continue
        for r in (150.0, 100.0, 50.0):
            got = ev._link_labels(xy_all[rows], r, shared.nodes(rows))
            assert (got == _kdtree_labels(xy_all[rows], r)).all(), (trial, r)


def _plain_clusters(cells: pd.DataFrame, rule, min_people: float) -> pd.DataFrame:
    """uncovered_clusters without splitting, from its docstring: loops and pandas groupbys."""
    from test_evaluate import _kdtree_labels

    t = pd.to_numeric(cells[rule.column]).fillna(np.inf)
    sel = cells[(t > rule.threshold) & (cells["pop"] > 0)].reset_index(drop=True)
    lab = _kdtree_labels(sel[["x", "y"]].to_numpy(), 150.0)
    rows = []
    for c in sorted(set(lab)):
        part = sel[lab == c]
        pop = part["pop"].sum()
        if pop < min_people:
            continue
        by_unit = part.groupby("unit_code", sort=True)["pop"].sum()
        best = by_unit[by_unit == by_unit.max()].index[0]  # the lowest code on a tie
        name = part[part["unit_code"] == best]["unit_name"].iloc[0]
        rows.append({"population": pop, "n_cells": len(part), "unit_code": best, "unit_name": name,
                     "x": (part["pop"] * part["x"]).sum() / pop, "y": (part["pop"] * part["y"]).sum() / pop})
    df = pd.DataFrame(rows, columns=["population", "n_cells", "unit_code", "unit_name", "x", "y"])
    return df.sort_values(["population", "x", "y"], ascending=[False, True, True], kind="stable").reset_index(drop=True)


@hsettings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 20.0, 60.0]))
def test_clusters_equal_plain_reference(seed, min_people):
    """Sums, main unit (most people, lowest code on a tie), its name as first met, order: as plain
    loops over the clusters give them, with or without ClusterCells shared between rules."""
    rng = np.random.default_rng(seed)
    side = 14
    jj, ii = np.meshgrid(np.arange(side)[::-1], np.arange(side), indexing="ij")
    n = side * side
    cells = pd.DataFrame({
        "x": 500000.0 + 100.0 * ii.ravel(), "y": 3900000.0 + 100.0 * jj.ravel(),
        "pop": rng.integers(0, 4, n).astype(float) * 5.0,
        "t_clinic_urban_15min": np.where(rng.random(n) < 0.55, 40.0, 5.0), "urban": True,
        "unit_code": rng.choice(["A", "B", "C"], n), "unit_name": rng.choice(["甲镇", "乙镇", "丙镇"], n),
    })
    rule = PRESET.circle("clinic_urban_15min")
    want = _plain_clusters(cells, rule, min_people)
    shared = ev.ClusterCells(cells)
    for kw in ({}, {"shared": shared}, {"shared": shared}):
        got = ev.uncovered_clusters(cells, rule, min_people=min_people, split_m=0, **kw)
        assert len(got) == len(want)
        pd.testing.assert_frame_equal(
            pd.DataFrame(got)[["population", "n_cells", "unit_code", "unit_name", "x", "y"]].reset_index(drop=True),
            want, check_dtype=False, rtol=1e-12)
        assert got["cluster_id"].tolist() == list(range(1, len(got) + 1))
