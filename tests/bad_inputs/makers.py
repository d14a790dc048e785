"""Makers: small functions that write a case's bad file from real data (binary files, or files
derived from a base). Each takes ``(case_dir, scenario, base_dir)`` and may change ``scenario`` (a
dict) in place; it runs before the scenario is written, except ``after_write`` makers."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[2]


def broken_roads(case: Path, scn: dict, base: Path) -> None:
    """Every road line of the demo cut 6 m short at both ends: lines no longer touch."""
    roads = gpd.read_file(ROOT / "data" / "roads" / "roads.gpkg", layer="roads")
    metric = roads.to_crs(roads.estimate_utm_crs())
    g = metric.geometry.values
    length = shapely.length(g)
    keep = length > 20
    cut = shapely.line_substring if hasattr(shapely, "line_substring") else None
    out = []
    for geom, ok in zip(g, keep):
        if not ok:
            continue
        d0, d1 = 6.0, geom.length - 6.0
        pts = [geom.interpolate(d) for d in np.linspace(d0, d1, max(2, len(geom.coords)))]
        out.append(shapely.LineString(pts))
    broken = gpd.GeoDataFrame(metric[keep].drop(columns="geometry").reset_index(drop=True), geometry=out, crs=metric.crs)
    broken.to_crs(4326).to_file(case / "roads_broken.gpkg", layer="roads")
    scn["network"] = {"roads": {"path": str(case / "roads_broken.gpkg"), "layer": "roads"}}
    del cut


def bowtie_boundary(case: Path, scn: dict, base: Path) -> None:
    """The boundary redrawn as a bow-tie: its ring crosses itself in the middle."""
    b = gpd.read_file(base / "boundary.gpkg", layer="boundary").to_crs(4326)
    x0, y0, x1, y1 = b.total_bounds
    ring = [(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)]  # crosses itself: two triangles
    gpd.GeoDataFrame({"name": ["bow-tie"]}, geometry=[shapely.Polygon(ring)], crs=4326).to_file(
        case / "bowtie.gpkg", layer="boundary")
    scn["area"]["boundary"] = {"path": str(case / "bowtie.gpkg"), "layer": "boundary"}
    for key in ("units", "villages", "seat"):
        scn["area"].pop(key, None)


def duplicated_rows(case: Path, scn: dict, base: Path) -> None:
    """The facility table with its first 5 rows listed twice (same name, type, position)."""
    f = pd.read_csv(base / "facilities.csv")
    dup = f.head(5).copy()
    dup["编号"] = dup["编号"].astype(str) + "-b"
    pd.concat([f, dup], ignore_index=True).to_csv(case / "facilities_dup.csv", index=False, encoding="utf-8-sig")
    scn["facilities"][0] = {"path": str(case / "facilities_dup.csv"), "crs": "wgs84"}


def gcj_as_wgs(case: Path, scn: dict, base: Path) -> None:
    """The Amap (GCJ-02) workbook of the base declared as WGS-84."""
    for f in scn["facilities"]:
        if f.get("crs") == "gcj02":
            f["crs"] = "wgs84"


def far_facilities(case: Path, scn: dict, base: Path) -> None:
    """Every facility of the base moved 500 km east (another province)."""
    f = pd.read_csv(base / "facilities.csv")
    f["经度"] = f["经度"] + 5.5
    f.to_csv(case / "far.csv", index=False, encoding="utf-8-sig")
    scn["facilities"] = [{"path": str(case / "far.csv"), "crs": "wgs84"}]


def gbk_scenario(case: Path, scn: dict, base: Path) -> None:
    """after_write: the scenario file re-saved in GBK (Windows Notepad's ANSI on Chinese Windows)."""
    p = case / "scenario.yaml"
    p.write_bytes(p.read_text(encoding="utf-8").encode("gbk"))


def latin1_scenario(case: Path, scn: dict, base: Path) -> None:
    """after_write: bytes that are neither UTF-8 nor GBK in the scenario file."""
    p = case / "scenario.yaml"
    p.write_bytes(p.read_bytes() + b"\n# \xff\xfe\xff\n")


def all_nodata_raster(case: Path, scn: dict, base: Path) -> None:
    """A copy of the population raster with every cell set to nodata."""
    import rasterio

    src_path = Path(scn["population"]["total"])
    with rasterio.open(src_path) as src:
        prof = src.profile
        a = src.read(1).astype("float32")
    prof.update(dtype="float32", nodata=-9999.0)
    a[:] = -9999.0
    with rasterio.open(case / "nodata.tif", "w", **prof) as dst:
        dst.write(a, 1)
    scn["population"]["total"] = str(case / "nodata.tif")


def points_as_roads(case: Path, scn: dict, base: Path) -> None:
    """The facilities (points) given as the road layer."""
    f = pd.read_csv(base / "facilities.csv")
    gpd.GeoDataFrame(f, geometry=gpd.points_from_xy(f["经度"], f["纬度"]), crs=4326).to_file(case / "points.gpkg", layer="roads")
    scn["network"] = {"roads": {"path": str(case / "points.gpkg"), "layer": "roads"}}


AFTER_WRITE = {"gbk_scenario", "latin1_scenario"}


def xlsx_named_csv(case: Path, scn: dict, base: Path) -> None:
    """The Amap workbook copied with a .csv name."""
    import shutil

    shutil.copy(base / "elderly_fitness_amap.xlsx", case / "amap.csv")
    scn["facilities"][1] = {"path": str(case / "amap.csv"), "crs": "gcj02"}


def title_rows(case: Path, scn: dict, base: Path) -> None:
    """The facility table with a county title and a date row above the header (as counties print it)."""
    text = (base / "facilities.csv").read_text(encoding="utf-8-sig")
    (case / "facilities_title.csv").write_text("示例县公共服务设施统计表,,,\n统计时间：2025年12月,,,\n" + text, encoding="utf-8-sig")
    scn["facilities"][0] = {"path": str(case / "facilities_title.csv"), "crs": "wgs84"}


def second_sheet(case: Path, scn: dict, base: Path) -> None:
    """A workbook whose first sheet is a cover note and whose data sit on the second sheet."""
    f = pd.read_excel(base / "elderly_fitness_amap.xlsx")
    with pd.ExcelWriter(case / "two_sheets.xlsx") as xw:
        pd.DataFrame({"说明": ["本表为养老与健身设施清单，数据见第二个工作表。"]}).to_excel(xw, sheet_name="说明", index=False)
        f.to_excel(xw, sheet_name="设施清单", index=False)
    scn["facilities"][1] = {"path": str(case / "two_sheets.xlsx"), "crs": "gcj02"}


def gbk_csv(case: Path, scn: dict, base: Path) -> None:
    """The facility table saved by Excel on Chinese Windows (GBK) and the county's names kept."""
    text = (base / "facilities.csv").read_text(encoding="utf-8-sig")
    (case / "facilities_gbk.csv").write_bytes(text.encode("gbk"))
    scn["facilities"][0] = {"path": str(case / "facilities_gbk.csv"), "crs": "wgs84"}
