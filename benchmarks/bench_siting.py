"""Side-by-side siting benchmark: coverage.siting vs plain HiGHS MILP vs spopt (PuLP/CBC).

Not part of the test run. Needs ``pip install spopt pulp`` for the spopt column (skipped otherwise).

Instances are spatial and structured: demand points clustered around "villages" in a 30 km square
(plus scattered cells), candidates drawn at demand locations and at random, cover = within 1.2 km
(a 15-minute walk), so the sparsity is that of a real county. MCLP with p = 2 % of the candidates (a
county adds tens of sites, not hundreds); one extra run with 10 % of the candidates locked as
existing facilities, and at the largest size one run with p = 5 %.

Usage::

    /tmp/venv/bin/python benchmarks/bench_siting.py            # all sizes
    /tmp/venv/bin/python benchmarks/bench_siting.py --quick    # two smallest sizes
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from coverage import siting

SIDE_M = 30_000.0
RADIUS_M = 1_200.0


def make_instance(n_demand: int, n_cand: int, seed: int = 0):
    """Clustered demand, candidates, sparse cover and times (minutes at walking speed)."""
    rng = np.random.default_rng(seed)
    n_vill = max(20, n_demand // 250)
    centres = rng.random((n_vill, 2)) * SIDE_M
    n_clust = int(n_demand * 0.8)
    which = rng.integers(0, n_vill, n_clust)
    pts = centres[which] + rng.normal(0, 600, (n_clust, 2))
    pts = np.vstack([pts, rng.random((n_demand - n_clust, 2)) * SIDE_M])
    pts = np.clip(pts, 0, SIDE_M)
    pts = np.round(pts / 100) * 100  # 100 m grid cells, as from the population raster
    w = rng.gamma(1.5, 20, n_demand).round()
    half = n_cand // 2
    cand = np.vstack([pts[rng.choice(n_demand, half, replace=False)], rng.random((n_cand - half, 2)) * SIDE_M])
    d = cKDTree(pts).sparse_distance_matrix(cKDTree(cand), RADIUS_M, output_type="coo_matrix")
    cover = sp.csr_matrix((np.ones(d.nnz, dtype=bool), (d.row, d.col)), shape=(n_demand, n_cand))
    minutes = d.data / (4.8 * 1000 / 60)
    times = sp.csr_matrix((minutes + 1e-9, (d.row, d.col)), shape=(n_demand, n_cand))
    return pts, cand, w, cover, times


def _import_numba_safely() -> None:
    """numba probes ``import coverage`` for coverage.py and finds this package instead; hide it."""
    import sys

    if "numba" in sys.modules:
        return
    saved = sys.modules.get("coverage")
    sys.modules["coverage"] = None  # type: ignore[assignment]  # import coverage -> ImportError
    try:
        import numba  # noqa: F401
    finally:
        sys.modules["coverage"] = saved


def run_spopt(pts, cand, w, p, locked, time_limit):
    _import_numba_safely()
    import pulp
    from spopt.locate import MCLP

    if locked.size:
        return None  # spopt's MCLP has predefined facilities in newer versions; keep the comparison fair
    t0 = time.perf_counter()
    dist = np.sqrt(((pts[:, None, :] - cand[None, :, :]) ** 2).sum(-1))  # dense, as spopt needs
    model = MCLP.from_cost_matrix(dist, w, service_radius=RADIUS_M, p_facilities=p)
    model = model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit))
    elapsed = time.perf_counter() - t0
    sel = [j for j, v in enumerate(model.fac_vars) if v.value() and v.value() > 0.5]
    return elapsed, sel


def covered_weight(cover: sp.csr_matrix, w: np.ndarray, sel) -> float:
    on = np.zeros(cover.shape[1], dtype=bool)
    on[list(sel)] = True
    hit = (cover.astype(np.int64) @ on.astype(np.int64)) > 0
    return float(w[hit].sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--spopt-max-cells", type=float, default=12e6, help="demand×candidates cap for spopt")
    args = ap.parse_args()
    sizes = [(5_000, 300), (10_000, 1_000), (20_000, 2_000), (50_000, 5_000)]
    if args.quick:
        sizes = sizes[:2]
    rows = []
    for nd, nc in sizes:
        pts, cand, w, cover, times = make_instance(nd, nc)
        p = max(5, nc // 50)
        res = {}
        # ours
        t0 = time.perf_counter()
        r = siting.solve_max_coverage(cover, w, p, time_limit=args.time_limit)
        res["coverage.siting"] = (time.perf_counter() - t0, r.objective, r.upper_bound, r.method)
        agg = f"{r.n_rows}→{r.n_rows_aggregated}"
        # ours with 10 % locked existing sites
        locked = np.arange(0, nc, 10)
        t0 = time.perf_counter()
        rl = siting.solve_max_coverage(cover, w, p, locked=locked, time_limit=args.time_limit)
        t_locked = time.perf_counter() - t0
        # plain HiGHS MILP, same formulation, no aggregation, no heuristic, no warm start
        t0 = time.perf_counter()
        rm = siting.MaxCoverage(cover, w, p, aggregate=False).solve(time_limit=args.time_limit, method="milp")
        res["HiGHS MILP (plain)"] = (time.perf_counter() - t0, rm.objective, rm.upper_bound, "milp")
        # spopt
        if nd * nc <= args.spopt_max_cells:
            try:
                out = run_spopt(pts, cand, w, p, np.zeros(0, dtype=int), args.time_limit * 2)
                el, sel = out
                res["spopt MCLP (CBC)"] = (el, covered_weight(cover, w, sel), float("nan"), "cbc")
            except ImportError:
                res["spopt MCLP (CBC)"] = None
        else:
            res["spopt MCLP (CBC)"] = "skipped"
        best_bound = min(v[2] for v in res.values() if isinstance(v, tuple) and np.isfinite(v[2]))
        for name, v in res.items():
            if v is None:
                rows.append((f"{nd//1000}k×{nc}", name, "spopt not installed", "", "", ""))
                continue
            if v == "skipped":
                rows.append((f"{nd//1000}k×{nc}", name, f"not run (dense {nd}×{nc} matrix)", "", "", ""))
                continue
            el, obj, ub, meth = v
            gap = (best_bound - obj) / best_bound if best_bound > 0 else 0.0
            rows.append((f"{nd//1000}k×{nc}", name, f"{el:.2f}", f"{obj:,.0f}", f"{100*gap:.3f} %", meth))
        print(f"# {nd}×{nc}, p={p}, nnz={cover.nnz:,}, rows aggregated {agg}, best bound {best_bound:,.0f}; "
              f"with {locked.size} locked: {t_locked:.2f} s, gap {100*rl.gap:.3f} % ({rl.method})", flush=True)
        if (nd, nc) == sizes[-1]:
            t0 = time.perf_counter()
            r5 = siting.solve_max_coverage(cover, w, nc // 20, time_limit=args.time_limit)
            print(f"#   p={nc // 20}: {time.perf_counter()-t0:.2f} s, covered {r5.objective:,.0f}, bound "
                  f"{r5.upper_bound:,.0f} ({r5.bound_method}), gap {100*r5.gap:.3f} % ({r5.method})", flush=True)
        # LSCP and p-median, ours only
        t0 = time.perf_counter()
        rs = siting.solve_set_cover(cover, w, 0.9, time_limit=args.time_limit)
        print(f"#   LSCP 90 %: {rs.objective:.0f} sites (bound {rs.upper_bound:.0f}) in {time.perf_counter()-t0:.2f} s ({rs.method})")
        t0 = time.perf_counter()
        rp = siting.solve_p_median(times, w, p, time_limit=args.time_limit)
        print(f"#   p-median: gap {100*rp.gap:.3f} % ({rp.bound_method}) in {time.perf_counter()-t0:.2f} s ({rp.method})", flush=True)
    print()
    print("| instance | solver | time (s) | covered weight | gap to best bound | method |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
