"""The base scenarios that the bad-input cases break, built from real files at test time.

``mini``: the demo county's 城关街道 and 柳湖镇 (two real units of the embedded demo, about
156 km²): boundary, units, villages and facilities cut out of the demo files and written as real
GeoPackage/CSV/XLSX files; the demo's rasters and roads are used as they are (read clipped).
``macau``: the real Macau scenario of ``tests/data/macau.yaml`` (OSM, WorldPop, Amap).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data"
MINI_UNITS = ("城关街道", "柳湖镇")


def build_mini(folder: Path) -> dict:
    """Write the mini county's files into ``folder``; return its scenario as a dict (absolute paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    units = gpd.read_file(DEMO / "boundaries" / "townships.gpkg", layer="townships")
    units = units[units["name"].isin(MINI_UNITS)].reset_index(drop=True)
    units.to_file(folder / "units.gpkg", layer="units")
    outline = gpd.GeoDataFrame({"name": ["示例县（节选）"]}, geometry=[units.union_all()], crs=units.crs)
    outline.to_file(folder / "boundary.gpkg", layer="boundary")
    villages = gpd.read_file(DEMO / "boundaries" / "villages.gpkg", layer="villages")
    villages[villages["unit_code"].astype(str).isin(units["code"].astype(str))].to_file(
        folder / "villages.gpkg", layer="villages")
    area = outline.to_crs(4326).union_all()

    def inside(df: pd.DataFrame, lon: str = "经度", lat: str = "纬度", gcj: bool = False) -> pd.DataFrame:
        x, y = df[lon].to_numpy(), df[lat].to_numpy()
        if gcj:
            from coverage.crs import to_wgs84

            x, y = to_wgs84(x, y, "gcj02")
        pts = gpd.GeoSeries(gpd.points_from_xy(x, y), crs=4326)
        return df[pts.within(area).to_numpy()].reset_index(drop=True)

    inside(pd.read_csv(DEMO / "facilities" / "facilities.csv")).to_csv(folder / "facilities.csv", index=False, encoding="utf-8-sig")
    inside(pd.read_excel(DEMO / "facilities" / "elderly_fitness_amap.xlsx"), gcj=True).to_excel(
        folder / "elderly_fitness_amap.xlsx", index=False)
    inside(pd.read_csv(DEMO / "facilities" / "candidates.csv")).to_csv(folder / "candidates.csv", index=False, encoding="utf-8-sig")
    pop = DEMO / "population"
    return {
        "name": "示例县节选 坏输入测试",
        "area": {
            "boundary": {"path": str(folder / "boundary.gpkg"), "layer": "boundary"},
            "units": {"path": str(folder / "units.gpkg"), "layer": "units"},
            "villages": {"path": str(folder / "villages.gpkg"), "layer": "villages"},
            "urban": {"path": str(DEMO / "boundaries" / "county.gpkg"), "layer": "chengqu"},
            "seat": [107.915597, 35.290247],
        },
        "population": {
            "total": str(pop / "pop_100m.tif"),
            "groups": {g: str(pop / f"pop_{g}_100m.tif") for g in ("age0_2", "age3_5", "age6_11", "age12_14", "age60plus")},
            "kind": "count",
        },
        "network": {"roads": {"path": str(DEMO / "roads" / "roads.gpkg"), "layer": "roads"}},
        "facilities": [
            {"path": str(folder / "facilities.csv"), "crs": "wgs84"},
            {"path": str(folder / "elderly_fitness_amap.xlsx"), "crs": "gcj02"},
        ],
        "candidates": {"path": str(folder / "candidates.csv"), "crs": "wgs84"},
        "standards": "cn-default",
        "output": {"synthetic": True, "county": "示例县", "year": 2027},
    }


def macau() -> dict:
    """The Macau real-data scenario with absolute paths."""
    from coverage.scenario import load_scenario

    sc = load_scenario(ROOT / "tests" / "data" / "macau.yaml")
    return sc.model_dump(mode="json", exclude={"source"}, exclude_none=True)


def write_scenario(data: dict, path: Path) -> Path:
    """Write a scenario dict as UTF-8 YAML."""
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
