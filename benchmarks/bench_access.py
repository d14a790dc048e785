"""Benchmark of coverage.access against peers (not a test; run by hand).

    /tmp/venv/bin/python benchmarks/bench_access.py [--quick] [--write-readme]

Two networks, one process each phase, 200 facilities, T = 15 min:

* São Paulo walk network from ``shared/data/sao_paulo/osm/spo_osm.pbf`` (demand = every node);
* a synthetic 1000 × 1000 grid (1 M nodes, 4 M directed edges, 50 m spacing, walking), demand =
  250,000 cell centres on a 100 m grid.

Methods, query phase (nodes already snapped):

* ``coverage.access.nearest_time`` (one bounded multi-source Dijkstra, numba);
* ``scipy.sparse.csgraph.dijkstra(indices=facility_nodes, min_only=True, limit=T)`` — the floor;
* the osmnx/networkx recipe: ``nx.single_source_dijkstra_path_length(G, f, cutoff=T)`` per facility,
  min over facilities — run on a subset of facilities and extrapolated linearly to 200 (said so);
* pandana ``set_pois`` + ``nearest_pois`` (contraction hierarchies; network build reported apart).

End to end adds: for us, snapping demand and facilities; for networkx, building the DiGraph; for
pandana, building ``pandana.Network`` (CH preprocessing). Reading the PBF is common to all and
reported on its own line.

Catchments: 2,000 sites on the 1 M-node grid, ``coverage.access.catchments`` vs batched
``scipy.sparse.csgraph.dijkstra(indices=batch, limit=T)``, each in a fresh subprocess. Memory of
(a) building the grid graph and (b) the catchments call is measured in fresh subprocesses started
before this process grows: peak resident memory as ``VmHWM`` of ``/proc/self/status`` (the peak of
the process's own address space) and ``resource.getrusage(RUSAGE_SELF).ru_maxrss``. The two differ
when the parent was large: Linux carries the parent's peak into ``ru_maxrss`` of a child across
fork + exec, which is why an earlier run reported 2.4 GB (the parent held a 1 M-node networkx graph).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
T = 15.0
N_FAC = 200


def timed(fn, *a, repeat=1, **k):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        best = min(best, time.perf_counter() - t0)
    return best, out


def grid_graph(side: int = 1000, spacing: float = 50.0):
    from coverage import network, settings

    idx = np.arange(side * side).reshape(side, side)
    h = np.column_stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()])
    v = np.column_stack([idx[:-1, :].ravel(), idx[1:, :].ravel()])
    e = np.vstack([h, v])
    u = np.concatenate([e[:, 0], e[:, 1]])
    w = np.concatenate([e[:, 1], e[:, 0]])
    rng = np.random.default_rng(42)
    metres = spacing * rng.uniform(0.8, 1.2, len(e))
    metres = np.concatenate([metres, metres])
    yy, xx = np.divmod(np.arange(side * side), side)
    g = network.from_edges(
        xx * spacing, yy * spacing, u, w, metres / settings.kmh_to_m_per_min(settings.WALK_KMH), metres,
        mode="walk", crs="EPSG:32650",
    )
    return g


def demand_points(g, kind: str):
    import geopandas as gpd

    if kind == "nodes":
        return gpd.GeoSeries(gpd.points_from_xy(g.x, g.y), crs=g.crs)
    step = 100.0
    xs = np.arange(g.x.min() + step / 2, g.x.max(), step)
    ys = np.arange(g.y.min() + step / 2, g.y.max(), step)
    X, Y = np.meshgrid(xs, ys)
    return gpd.GeoSeries(gpd.points_from_xy(X.ravel(), Y.ravel()), crs=g.crs)


def facility_points(g, n=N_FAC, seed=1):
    import geopandas as gpd

    rng = np.random.default_rng(seed)
    nodes = rng.choice(g.n_nodes, n, replace=False)
    return gpd.GeoSeries(
        gpd.points_from_xy(g.x[nodes] + rng.uniform(-20, 20, n), g.y[nodes] + rng.uniform(-20, 20, n)),
        crs=g.crs,
    )


def _warm_snap():
    """Snap once on a throwaway 3-node graph: loads the compiled snapping kernels (one-time per
    process, ~20-40 ms) so that the timed snap measures the work, like the warmed-up query."""
    import geopandas as gpd

    from coverage import access, network

    g = network.from_edges([0.0, 100.0, 200.0], [0.0, 0.0, 0.0], [0, 1], [1, 2], [1.0, 1.0], [80.0, 80.0],
                           crs="EPSG:32650", min_component_nodes=1)
    access.snap(g, gpd.GeoSeries(gpd.points_from_xy([10.0], [5.0]), crs=g.crs))


def bench_nearest(name, g, dem, fac, nx_subset, pandana_ok=True):
    import networkx as nx
    from scipy.sparse.csgraph import dijkstra

    from coverage import access

    rows = []
    # ours; the compiled kernels are loaded first (numba cache, once per process), as for the query
    _warm_snap()
    t_snap, (ds, fs) = timed(lambda: (access.snap(g, dem), access.snap(g, fac)))
    access.nearest_time(g, ds, fs, T)  # warm (numba cache load)
    t_ours, ours = timed(access.nearest_time, g, ds, fs, T, repeat=7)
    rows.append(dict(net=name, method="coverage nearest_time", query=t_ours, e2e=t_ours + t_snap, note=""))
    fnodes = np.unique(fs.node[fs.ok])
    # scipy floor
    A = g.csr()
    t_sp, dsp = timed(dijkstra, A, directed=True, indices=fnodes, min_only=True, limit=T, repeat=7)
    rows.append(dict(net=name, method="scipy dijkstra min_only (floor)", query=t_sp, e2e=t_sp + t_snap,
                     note="no legs"))
    # check: ours without legs equals scipy
    from coverage.access import Snapped

    z = np.zeros(g.n_nodes)
    allnodes = Snapped(np.arange(g.n_nodes), z, z, z == 0, __import__("pandas").RangeIndex(g.n_nodes))
    zf = np.zeros(len(fnodes))
    fz = Snapped(fnodes, zf, zf, zf == 0, __import__("pandas").RangeIndex(len(fnodes)))
    chk = access.nearest_time(g, allnodes, fz, T).to_numpy()
    assert np.allclose(np.where(np.isfinite(dsp), dsp, -1), np.where(np.isfinite(chk), chk, -1))
    # networkx recipe
    t_build, G = timed(lambda: nx.DiGraph(
        (int(a), int(b), {"minutes": float(c)}) for a, b, c in zip(g.tails(), g.indices, g.minutes)))
    sub = fnodes[:nx_subset]

    def nx_run():
        best = {}
        for f in sub:
            for node, d in nx.single_source_dijkstra_path_length(G, int(f), cutoff=T, weight="minutes").items():
                if d < best.get(node, np.inf):
                    best[node] = d
        return best

    t_nx_sub, _ = timed(nx_run)
    t_nx = t_nx_sub * len(fnodes) / len(sub)
    note = f"{len(sub)} of {len(fnodes)} facilities, extrapolated" if len(sub) < len(fnodes) else ""
    rows.append(dict(net=name, method="networkx per-facility recipe", query=t_nx, e2e=t_nx + t_build, note=note))
    del G
    # pandana
    if not pandana_ok:
        rows.append(dict(net=name, method="pandana", query=np.nan, e2e=np.nan,
                         note="skipped: CH build on 1 M nodes took > 25 min here (2 cores)"))
        return rows
    try:
        import pandas as pd
        import pandana

        t_pb, net = timed(lambda: pandana.Network(
            pd.Series(g.x), pd.Series(g.y), pd.Series(g.tails()), pd.Series(g.indices),
            pd.DataFrame({"minutes": g.minutes}), twoway=False))
        fx = pd.Series(g.x[fnodes])
        fy = pd.Series(g.y[fnodes])

        def pq():
            net.set_pois("fac", maxdist=T, maxitems=1, x_col=fx, y_col=fy)
            return net.nearest_pois(T, "fac", num_pois=1)

        t_pq, res = timed(pq, repeat=2)
        rows.append(dict(net=name, method=f"pandana {pandana.__version__} set_pois+nearest_pois",
                         query=t_pq, e2e=t_pq + t_pb, note=f"CH build {t_pb:.1f} s"))
    except Exception as exc:  # pragma: no cover - report, never hide
        rows.append(dict(net=name, method="pandana", query=np.nan, e2e=np.nan, note=f"failed: {exc!r}"[:80]))
    return rows


MEM = r"""
def mem():
    import resource
    s = open("/proc/self/status").read()
    hwm = int(s.split("VmHWM:")[1].split()[0]) / 1024
    rss = int(s.split("VmRSS:")[1].split()[0]) / 1024
    return dict(hwm=hwm, rss=rss, maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

BUILD_CODE = MEM + r"""
import sys, json, time, numpy as np
sys.path.insert(0, {bench!r})
import bench_access as B
from coverage import access, network, _kernels   # imports (numba included) before the baseline
before = mem()
t0 = time.perf_counter()
g = B.grid_graph()
el = time.perf_counter() - t0
print(json.dumps(dict(what="build", seconds=el, before=before, after=mem(),
                      graph_mb=sum(a.nbytes for a in (g.x, g.y, g.indptr, g.indices, g.minutes, g.metres,
                                                      g.component)) / 2**20)))
"""

CATCH_CODE = MEM + r"""
import sys, time, json, numpy as np
sys.path.insert(0, {bench!r})
import bench_access as B
from coverage import access
method = {method!r}
g = B.grid_graph()
dem = B.demand_points(g, "cells")
sites = B.facility_points(g, 2000, seed=3)
ds, ss = access.snap(g, dem), access.snap(g, sites)
access.catchments(g, ds, B.facility_points(g, 4, seed=9), 15.0)   # warm numba
before = mem()
open("/proc/self/clear_refs", "w").write("5")   # reset VmHWM: peak of the call alone
t0 = time.perf_counter()
if method == "ours":
    C = access.catchments(g, ds, ss, 15.0)
    nnz = C.nnz
else:
    from scipy.sparse.csgraph import dijkstra
    A = g.csr()
    cells = np.flatnonzero(ds.ok)
    nnz = 0
    for b in range(0, len(ss), {batch}):
        sl = slice(b, b + {batch})
        D = dijkstra(A, directed=True, indices=ss.node[sl], limit=15.0)
        D += ss.leg_min[sl, None]
        t = D[:, ds.node[cells]] + ds.leg_min[cells][None, :]
        nnz += int((t <= 15.0).sum())
el = time.perf_counter() - t0
print(json.dumps(dict(method=method, seconds=el, nnz=nnz, before=before, after=mem())))
"""


def run_json(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_build_memory():
    return run_json(BUILD_CODE.format(bench=str(HERE)))


def bench_catchments(method: str, batch: int = 50):
    return run_json(CATCH_CODE.format(bench=str(HERE), method=method, batch=batch))


def table(rows):
    lines = ["| network | method | query s | ratio vs ours | end-to-end s | ratio vs ours | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    ours = {r["net"]: r for r in rows if r["method"].startswith("coverage")}
    for r in rows:
        o = ours[r["net"]]
        lines.append(
            f"| {r['net']} | {r['method']} | {r['query']:.4f} | {r['query'] / o['query']:.1f}× | "
            f"{r['e2e']:.3f} | {r['e2e'] / o['e2e']:.1f}× | {r['note']} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="São Paulo only")
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--no-pandana-grid", action="store_true", help="skip pandana's slow CH build on the grid")
    ap.add_argument("--pandana-side", type=int, default=0,
                    help="also run all methods on a side x side grid with pandana (e.g. 300)")
    args = ap.parse_args()
    from coverage import network

    build_mem, catch = None, []
    if not args.quick:  # memory first, while this process is still small (see the module docstring)
        build_mem = bench_build_memory()
        catch = [bench_catchments("ours"), bench_catchments("scipy")]

    t_read, g = timed(network.read_osm, DATA / "sao_paulo/osm/spo_osm.pbf", mode="walk")
    print(f"São Paulo walk graph: {g.n_nodes} nodes, {g.n_edges} edges, read_osm {t_read:.2f} s")
    rows = bench_nearest("São Paulo walk", g, demand_points(g, "nodes"), facility_points(g), nx_subset=200)
    if not args.quick:
        t_grid, gg = timed(grid_graph)
        print(f"grid: {gg.n_nodes} nodes, {gg.n_edges} edges, built in {t_grid:.1f} s")
        rows += bench_nearest("grid 1M walk", gg, demand_points(gg, "cells"), facility_points(gg), nx_subset=20,
                              pandana_ok=not args.no_pandana_grid)
        del gg
    if args.pandana_side:
        side = args.pandana_side
        gs = grid_graph(side)
        label = f"grid {side * side // 1000}k walk"
        rows += bench_nearest(label, gs, demand_points(gs, "cells"), facility_points(gs), nx_subset=20)
        del gs
    md = table(rows)
    print(md)
    cmd = ""
    if catch:
        cmd = ("\n\n| catchments, 2,000 sites, 1 M-node grid, 250k cells, T = 15 min | seconds | entries | "
               "peak RSS MB of the call (process peak) | ru_maxrss MB |\n|---|---:|---:|---:|---:|\n")
        for c in catch:
            label = "coverage catchments (numba, threads=%d)" % min(os.cpu_count() or 1, 8) if c["method"] == "ours" \
                else "scipy dijkstra(indices=batch of 50, limit=T)"
            cmd += (f"| {label} | {c['seconds']:.2f} | {c['nnz']:,} | {c['after']['hwm']:.0f} "
                    f"({max(c['after']['hwm'], c['before']['hwm']):.0f}) | {c['after']['maxrss']:.0f} |\n")
        b = build_mem
        cmd += ("\n| building the 1 M-node grid graph (`from_edges`, fresh process) | seconds | graph MB | "
                "RSS before MB | peak RSS MB (VmHWM) | ru_maxrss MB |\n|---|---:|---:|---:|---:|---:|\n"
                f"| bench grid_graph() incl. its own edge arrays | {b['seconds']:.2f} | {b['graph_mb']:.0f} | "
                f"{b['before']['rss']:.0f} | {b['after']['hwm']:.0f} | {b['after']['maxrss']:.0f} |\n")
        print(cmd)
    if args.write_readme:
        readme = HERE / "README.md"
        text = readme.read_text(encoding="utf-8")
        start, end = "<!-- results:start -->", "<!-- results:end -->"
        body = f"{start}\n{md}{cmd}\n_read_osm(São Paulo, walk): {t_read:.2f} s; machine: {os.cpu_count()} cores._\n{end}"
        if start in text:
            text = text[: text.index(start)] + body + text[text.index(end) + len(end):]
        else:
            text += "\n" + body + "\n"
        readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
