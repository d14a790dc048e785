"""End-to-end benchmark of ``covplan run`` at scale (issue 11; not a test, run by hand).

    python benchmarks/bench_run.py [--n 4] [--skip-demo] [--no-render] [--keep DIR]

The scaled input is built here from the embedded demo county (``data/``): its population rasters,
roads, 乡镇/街道, villages, 城区, facilities (CSV, WGS-84), Amap workbook (GCJ-02) and candidates are
tiled ``n × n`` side by side (offsets of the raster's width and height), with unit, village and
facility codes made unique per tile, and written as real files into a temporary folder with a
scenario YAML beside them. ``n = 4`` gives the "16× demo" (~1.1 M populated 100 m cells, ~380 k
road nodes).

Each ``covplan run`` (the demo's baseline scenario, then the tiled one) runs in a fresh
``/usr/bin/time -v`` subprocess started by this small process, so the reported peak resident
memory is the run's own. Reported per run: wall seconds, peak RSS (MB), the size of every output
file, and (unless ``--no-render``) how long headless Chromium (``/usr/bin/chromium``, Playwright)
takes to load ``map.html`` and draw Leaflet with all its layers.

Timings on the shared 2-core machine vary by ±30 %; compare runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "data"
SCENARIO = ROOT / "scenarios" / "demo_baseline.yaml"


# ----------------------------------------------------------------------------------- building


def _prefix(code: str, k: int) -> str:
    """A demo code (``629901…``) moved to tile ``k``: the county part becomes ``6299{k:02d}``."""
    code = str(code)
    return f"6299{k:02d}{code[6:]}" if code.startswith("629901") else f"{code}-{k}"


def build_tiled(out: Path, n: int = 4) -> Path:
    """Write the demo county tiled ``n × n`` into ``out`` and return the scenario path.

    Parameters
    ----------
    out : Path
        Empty folder; ``data/…`` and ``scenario.yaml`` are written into it.
    n : int
        Tiles per side.

    Returns
    -------
    Path
        The scenario YAML.
    """
    import geopandas as gpd
    import numpy as np
    import pandas as pd
    import rasterio
    import shapely
    from pyproj import Transformer

    from coverage.crs import gcj02_to_wgs84, wgs84_to_gcj02

    data = out / "data"
    for sub in ("population", "roads", "boundaries", "facilities"):
        (data / sub).mkdir(parents=True, exist_ok=True)

    # rasters: the demo grid repeated; tile (i, j) sits i rasters east and j rasters south
    with rasterio.open(DEMO / "population" / "pop_100m.tif") as src:
        profile, shape, tf = src.profile, src.shape, src.transform
    width_m, height_m = shape[1] * tf.a, shape[0] * -tf.e
    crs = profile["crs"]
    tiles = [(k, (k % n) * width_m, -(k // n) * height_m) for k in range(n * n)]
    for tif in sorted((DEMO / "population").glob("*.tif")):
        with rasterio.open(tif) as src:
            arr = src.read(1)
            prof = src.profile
        prof.update(width=shape[1] * n, height=shape[0] * n, compress="deflate", tiled=True)
        with rasterio.open(data / "population" / tif.name, "w", **prof) as dst:
            dst.write(np.tile(arr, (n, n)), 1)

    def shift(gdf: gpd.GeoDataFrame, dx: float, dy: float) -> gpd.GeoDataFrame:
        """Translate in the raster's metric CRS, return in the layer's own CRS."""
        g = gdf.to_crs(crs)
        g = g.set_geometry(shapely.transform(g.geometry.values, lambda xy: xy + [dx, dy]))
        return g.to_crs(gdf.crs)

    def tiled(gdf: gpd.GeoDataFrame, fix: dict | None = None) -> gpd.GeoDataFrame:
        parts = []
        for k, dx, dy in tiles:
            g = shift(gdf, dx, dy)
            for col, fn in (fix or {}).items():
                g[col] = [fn(v, k) for v in g[col]]
            parts.append(g)
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=gdf.crs)

    roads = gpd.read_file(DEMO / "roads" / "roads.gpkg", layer="roads")
    tiled(roads).to_file(data / "roads" / "roads.gpkg", layer="roads", driver="GPKG")

    def name_k(v: str, k: int) -> str:
        return v if k == 0 else f"{k:02d}区{v}"

    county = gpd.read_file(DEMO / "boundaries" / "county.gpkg", layer="county")
    whole = tiled(county)
    gpd.GeoDataFrame({"code": [county["code"].iloc[0]], "name": [county["name"].iloc[0]]},
                     geometry=[shapely.union_all(whole.geometry.values)], crs=county.crs).to_file(
        data / "boundaries" / "county.gpkg", layer="county", driver="GPKG")
    chengqu = tiled(gpd.read_file(DEMO / "boundaries" / "county.gpkg", layer="chengqu"),
                    {"code": _prefix, "name": name_k})
    chengqu.to_file(data / "boundaries" / "county.gpkg", layer="chengqu", driver="GPKG")
    units = gpd.read_file(DEMO / "boundaries" / "townships.gpkg", layer="townships")
    ut = tiled(units, {"code": _prefix, "name": name_k})
    to_m = Transformer.from_crs("EPSG:4490", crs, always_xy=True)
    to_ll = Transformer.from_crs(crs, "EPSG:4490", always_xy=True)
    seat_x, seat_y = to_m.transform(units["seat_lon"].to_numpy(), units["seat_lat"].to_numpy())
    lon, lat = [], []
    for _, dx, dy in tiles:
        a, b = to_ll.transform(seat_x + dx, seat_y + dy)
        lon.extend(a)
        lat.extend(b)
    ut["seat_lon"], ut["seat_lat"] = lon, lat
    ut.to_file(data / "boundaries" / "townships.gpkg", layer="townships", driver="GPKG")
    villages = gpd.read_file(DEMO / "boundaries" / "villages.gpkg", layer="villages")
    tiled(villages, {"code": _prefix, "unit_code": _prefix, "name": name_k}).to_file(
        data / "boundaries" / "villages.gpkg", layer="villages", driver="GPKG")

    w_to_m = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    m_to_w = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def tile_table(df: pd.DataFrame, id_col: str, unit_col: str, gcj: bool) -> pd.DataFrame:
        lon, lat = df["经度"].to_numpy(float), df["纬度"].to_numpy(float)
        if gcj:
            lon, lat = gcj02_to_wgs84(lon, lat)
        x, y = w_to_m.transform(lon, lat)
        parts = []
        for k, dx, dy in tiles:
            t = df.copy()
            a, b = m_to_w.transform(x + dx, y + dy)
            if gcj:
                a, b = wgs84_to_gcj02(a, b)
            t["经度"], t["纬度"] = np.round(a, 6), np.round(b, 6)
            t[id_col] = [f"{v}-{k:02d}" if k else v for v in t[id_col].astype(str)]
            if unit_col in t:
                t[unit_col] = [name_k(v, k) for v in t[unit_col].astype(str)]
            parts.append(t)
        return pd.concat(parts, ignore_index=True)

    fac = pd.read_csv(DEMO / "facilities" / "facilities.csv", dtype={"编号": str})
    tile_table(fac, "编号", "乡镇", gcj=False).to_csv(data / "facilities" / "facilities.csv", index=False)
    cand = pd.read_csv(DEMO / "facilities" / "candidates.csv", dtype={"编号": str})
    tile_table(cand, "编号", "乡镇", gcj=False).to_csv(data / "facilities" / "candidates.csv", index=False)
    amap = pd.read_excel(DEMO / "facilities" / "elderly_fitness_amap.xlsx")
    am = tile_table(amap, "序号", "", gcj=True)
    am["序号"] = np.arange(1, len(am) + 1)
    am.to_excel(data / "facilities" / "elderly_fitness_amap.xlsx", index=False)

    text = SCENARIO.read_text(encoding="utf-8").replace("../data/", "data/")
    text = re.sub(r"^name: .*$", f"name: 示例县 {n}×{n} 规模测试", text, count=1, flags=re.M)
    path = out / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- measuring


def run_covplan(scenario: Path, out: Path) -> dict:
    """``covplan run`` in a fresh ``/usr/bin/time -v`` subprocess: wall s, peak RSS MB, file sizes."""
    if out.exists():
        shutil.rmtree(out)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "coverage.cli", "run", str(scenario),
           "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"covplan run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 0) if rss else None,
        "files_mb": {p.name: round(p.stat().st_size / 2**20, 2) for p in sorted(out.iterdir())
                     if p.is_file() and not p.name.startswith(".")},
    }


def render_seconds(html: Path, timeout_s: float = 120.0) -> dict:
    """Seconds headless Chromium takes to load ``html`` and draw the Leaflet map with its layers."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests"))
    from browser import CHROME_FLAGS, CHROMIUM

    url = html.resolve().as_uri()
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as prof, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            prof, executable_path=str(CHROMIUM), args=CHROME_FLAGS, headless=True,
            viewport={"width": 1280, "height": 860},
        )
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
            t0 = time.perf_counter()
            try:
                page.goto(url, wait_until="load", timeout=timeout_s * 1000)
            except Exception as err:  # noqa: BLE001 - a page too heavy to load is a result
                return {"render_s": f"> {timeout_s:.0f} (not loaded: {type(err).__name__})"}
            page.wait_for_selector(".leaflet-container", timeout=timeout_s * 1000)
            n = page.evaluate(
                "() => { const m = Object.values(window).find(v => v instanceof L.Map);"
                " let n = 0; m.eachLayer(() => { n += 1; }); return n; }"
            )
            # one animation frame after load: the layers have been drawn
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(1)))")
            secs = time.perf_counter() - t0
        finally:
            ctx.close()
    return {"render_s": round(secs, 1), "leaflet_layers": n, "js_errors": errors[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="tiles per side (4 → 16× the demo)")
    ap.add_argument("--skip-demo", action="store_true", help="only the tiled run")
    ap.add_argument("--no-render", action="store_true", help="skip the Chromium render check")
    ap.add_argument("--keep", type=Path, help="build and run in this folder and keep it")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="covplan-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    try:
        if not a.skip_demo:
            results["demo"] = run_covplan(SCENARIO, work / "out-demo")
            print("demo run", json.dumps(results["demo"], ensure_ascii=False), flush=True)
            if not a.no_render:
                results["demo"].update(render_seconds(work / "out-demo" / "map.html"))
            print("demo", json.dumps(results["demo"], ensure_ascii=False), flush=True)
        scn = work / "tiled" / "scenario.yaml"
        if not scn.exists():
            # built in a child process so this process stays small (its peak would otherwise be
            # inherited by the measured child's ru_maxrss)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--build-only", str(work / "tiled"), str(a.n)],
                           check=True)
            print(f"built {a.n}x{a.n} input in {time.perf_counter() - t0:.0f} s", flush=True)
        key = f"{a.n}x{a.n}"
        results[key] = run_covplan(scn, work / f"out-{key}")
        print(f"{key} run", json.dumps(results[key], ensure_ascii=False), flush=True)
        if not a.no_render:
            results[key].update(render_seconds(work / f"out-{key}" / "map.html"))
        print(key, json.dumps(results[key], ensure_ascii=False), flush=True)
        if "demo" in results:
            r = results[key]["wall_s"] / results["demo"]["wall_s"]
            print(f"wall time ratio {key} / demo: {r:.2f}")
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--build-only":
        sys.path.insert(0, str(ROOT / "src"))
        build_tiled(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
