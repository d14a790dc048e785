"""Serial vs Dask on the synthetic prefecture 示例市 (4 counties): wall time, per-county cost, peak memory.

    python benchmarks/bench_batch.py [--workers 2] [--out /tmp/bench-batch]

Runs ``covplan batch`` twice into fresh folders: ``workers=0`` (every county in this process, no
Dask) and a ``LocalCluster`` with ``--workers`` single-threaded processes. Prints the speed-up, the
per-county seconds and each worker's peak resident memory, and a JSON line to paste into
docs/batch.md. Not part of the test run (timings never go into unit tests).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from coverage import batch

REGION = Path(__file__).resolve().parents[1] / "scenarios" / "demo_prefecture_batch.yaml"


def _one(out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    res = batch.run_batch(REGION, out, workers=workers)
    wall = time.perf_counter() - t
    assert res.exit_code == 0, res.describe()
    return {"workers": workers, "wall_s": round(wall, 1),
            "county_s": {r["name"]: r["seconds"] for r in res.records},
            "peak_mb_by_worker": res.peak_by_worker()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-batch"))
    a = ap.parse_args()
    batch.load_region(REGION)  # generate the synthetic data before timing
    serial = _one(a.out / "serial", 0)
    dask = _one(a.out / "dask", a.workers)
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}")
    for r in (serial, dask):
        print(f"workers={r['workers']}: {r['wall_s']} s; per county {r['county_s']}; peak MB {r['peak_mb_by_worker']}")
    print(f"speed-up: {serial['wall_s'] / dask['wall_s']:.2f}x")
    print(json.dumps({"serial": serial, "dask": dask}, ensure_ascii=False))


if __name__ == "__main__":
    main()
