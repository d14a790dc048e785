"""Meeting mode (``covplan serve``) latency on the demo county, as an HTTP client sees it.

Not part of the test run. Starts the app on a real uvicorn server on 127.0.0.1, then times N single
edits (random adds, moves and removals, each one POST /api/changes) end to end, and one full
``covplan run`` of the same scenario for reference; with ``--page`` also the time until the page is
ready in Debian's Chromium after the server says it is ready.

Usage::

    python benchmarks/bench_serve.py            # 60 edits + one full run
    python benchmarks/bench_serve.py --edits 200 --page
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from coverage import pipeline
from coverage.serve.app import create_app, start_server
from coverage.serve.state import Session

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "demo_baseline.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=60)
    ap.add_argument("--page", action="store_true", help="also time the page in /usr/bin/chromium")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    t0 = time.perf_counter()
    session = Session(SCENARIO, tmp / "exports")
    load_s = time.perf_counter() - t0
    srv, thread, port = start_server(create_app(session), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    page_s = _page(url) if args.page else None
    rng = np.random.default_rng(args.seed)
    fac = session.inputs.facilities.to_crs(4326)
    lon0, lat0, lon1, lat1 = session.inputs.boundary.to_crs(4326).total_bounds
    times, server_ms, kinds = [], [], []
    added: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as c:
        c.post("/api/reset")
        for _ in range(args.edits):
            kind = rng.choice(["add", "move", "remove"], p=[0.5, 0.3, 0.2])
            ids = [f["properties"]["id"] for f in c.get("/api/facilities").json()["features"]]
            if kind == "add" or not ids:
                i = int(rng.integers(len(fac)))
                body = {"add": [{"name": "bench", "category": str(fac["category"].iloc[i]),
                                 "ftype": str(fac["ftype"].iloc[i]),
                                 "lon": float(fac.geometry.x.iloc[i] + rng.normal(0, 0.01)),
                                 "lat": float(fac.geometry.y.iloc[i] + rng.normal(0, 0.01))}]}
            elif kind == "move":
                body = {"move": [{"id": str(rng.choice(ids)), "lon": float(rng.uniform(lon0 + 0.05, lon1 - 0.05)),
                                  "lat": float(rng.uniform(lat0 + 0.05, lat1 - 0.05))}]}
            else:
                body = {"remove": [str(rng.choice(ids))]}
            t = time.perf_counter()
            r = c.post("/api/changes", json=body)
            dt = time.perf_counter() - t
            if r.status_code != 200:  # a random point outside the area: refused, not timed
                continue
            times.append(dt * 1000)
            server_ms.append(r.json()["elapsed_ms"])
            kinds.append(str(kind))
    srv.should_exit = True
    thread.join(5)
    t = time.perf_counter()
    pipeline.run_scenario(SCENARIO, tmp / "full")
    full_s = time.perf_counter() - t
    a = np.array(times)
    print(f"demo county: {len(session.cells):,} cells, {len(fac)} facilities; session load {load_s:.1f} s")
    print(f"single edits as an HTTP client sees them (n={len(a)}): median {np.median(a):.1f} ms, "
          f"p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms (server part median {np.median(server_ms):.1f} ms)")
    for k in ("add", "move", "remove"):
        sel = np.array([x == k for x in kinds])
        if sel.any():
            print(f"  {k:6s} n={sel.sum():3d} median {np.median(a[sel]):.1f} ms p95 {np.percentile(a[sel], 95):.1f} ms")
    print(f"full covplan run: {full_s:.1f} s -> median edit is {full_s * 1000 / np.median(a):.0f}x faster")
    if page_s is not None:
        print(f"page ready after the server is ready: {page_s:.2f} s")


def _page(url: str) -> float:
    """Seconds from goto to the page's ready flag in /usr/bin/chromium (first load)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from browser import CHROME_FLAGS, CHROMIUM
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_FLAGS, headless=True)
        try:
            p = b.new_page(viewport={"width": 1400, "height": 860})
            t = time.perf_counter()
            p.goto(url + "/")
            p.wait_for_selector("body[data-ready='1']", timeout=30000)
            return time.perf_counter() - t
        finally:
            b.close()


if __name__ == "__main__":
    main()
