"""Generator of the synthetic prefecture 示例市 (合成示例数据 / synthetic demo data) for ``covplan batch``.

示例市 is fictional: four small counties (about 150–250 km² and 60 000–130 000 residents each)
around the demo county's place (107.9° E, 35.3° N), one of them a small version of 示例县. It is
built from the same building blocks as :mod:`coverage.demo` (noisy outlines, jittered street grids,
bending connector roads, noded OSM-style lines) and drawn from ``numpy.random.default_rng(seed)``,
so one seed always gives the same files. Nothing of it is committed: :func:`region_data_dir`
generates it into a cache folder on first use (a few seconds).

Files written (all labelled 合成示例数据 / synthetic demo data):

* ``boundaries/admin.gpkg``: layer ``districts`` (``adcode, name``: the four counties, WGS-84),
  layer ``citys`` (示例市 629900);
* ``boundaries/townships.gpkg``: layer ``townships`` (``code, name, kind``), the 乡镇/街道 of the
  whole prefecture (EPSG:4490);
* ``roads/roads.gpkg``: layer ``roads`` (``highway, name``), one network for the whole prefecture,
  connected across the county borders (EPSG:4545);
* ``population/pop_100m.tif``: residents per 100 m cell for the whole prefecture (EPSG:4545);
* ``facilities/facilities.csv`` (schools and clinics, WGS-84, with a ``所属县`` column),
  ``facilities/elderly_fitness_amap.xlsx`` (elderly and fitness facilities, an Amap export in
  GCJ-02), ``facilities/candidates.csv``;
* ``census/tudigong_population.csv``, ``census/tudigong_ages.csv``: census-style rows for the four
  synthetic codes (the format of ``shared/data/china_county_census_2020``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon

from coverage.crs import wgs84_to_gcj02
from coverage.demo import (
    CENTER_LAT,
    CENTER_LON,
    METRIC_EPSG,
    Road,
    drop_isolated,
    grid_streets,
    lines,
    node_roads,
    noisy_ring,
    village_name,
    wiggle,
    write_gpkg,
    write_tif,
    write_xlsx,
)

__all__ = ["PREFECTURE_CODE", "PREFECTURE_NAME", "COUNTIES", "REGION_SEED", "SYNTHETIC_NOTE", "generate_region", "region_data_dir"]

#: Label written into every file.
SYNTHETIC_NOTE = "合成示例数据 / synthetic demo data (示例市 is fictional; made by coverage.demo_region)"
PREFECTURE_CODE = "629900"
PREFECTURE_NAME = "示例市"
#: The counties: adcode, name, township names (the first is the county seat's 街道).
COUNTIES: list[tuple[str, str, list[str]]] = [
    ("629901", "示例县", ["城关街道", "柳湖镇", "石门乡"]),
    ("629902", "东塬县", ["东城街道", "安平镇", "峡口乡"]),
    ("629903", "南川县", ["南关街道", "龙泉镇", "麻川乡"]),
    ("629904", "北岭县", ["北关街道", "新店镇", "青岭乡"]),
]
#: Default seed of the prefecture.
REGION_SEED = 20260113
CELL = 100.0
_SEAT_POP = (42000.0, 900.0)  # county town: people, spread (m)
_TOWN_POP = (7000.0, 450.0)
_VILLAGE_POP = (900.0, 220.0)
_BACKGROUND = 1.5  # people per cell inside the prefecture
_AGE_SHARES = {  # census-style 5-year bands (share of residents), a rural north-west profile
    "AGES_0": 0.0085, "AGES_1-4": 0.042, "AGES_5-9": 0.064, "AGES_10-14": 0.060, "AGES_15-19": 0.052,
    "AGES_20-24": 0.045, "AGES_25-29": 0.058, "AGES_30-34": 0.080, "AGES_35-39": 0.070, "AGES_40-44": 0.066,
    "AGES_45-49": 0.083, "AGES_50-54": 0.087, "AGES_55-59": 0.070, "AGES_60-64": 0.050, "AGES_65-69": 0.052,
    "AGES_70-74": 0.035, "AGES_75-79": 0.0155, "AGES_80-84": 0.0095, "AGES_85P": 0.0065,
}


@dataclass
class _Region:
    outline: Polygon
    counties: gpd.GeoDataFrame  # adcode, name, geometry (metric)
    units: gpd.GeoDataFrame  # code, name, kind, geometry (metric)
    seats: list[NDArray]
    towns: list[tuple[int, NDArray]]  # (county index, seat) of 乡镇
    villages: list[tuple[int, NDArray, str]]
    roads: gpd.GeoDataFrame


def _build(rng: np.random.Generator) -> _Region:
    outline = Polygon(noisy_ring(rng, 16500.0, 13500.0, 180, harm=0.12, rough=0.008)).buffer(0)
    seats = [np.array([sx * 8000.0, sy * 6500.0]) + rng.uniform(-800, 800, 2) for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1))]
    vor = list(shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(np.array(seats)), extend_to=outline.buffer(5000))))
    cgeoms = [next(c for c in vor if c.contains(Point(s))).intersection(outline) for s in seats]
    counties = gpd.GeoDataFrame({"adcode": [c[0] for c in COUNTIES], "name": [c[1] for c in COUNTIES]},
                                geometry=cgeoms, crs=METRIC_EPSG)
    unit_rows, towns, villages = [], [], []
    used: set[str] = set()
    for k, (code, _name, tnames) in enumerate(COUNTIES):
        poly = cgeoms[k]
        pts = [seats[k]]
        while len(pts) < len(tnames):
            p = np.array(poly.representative_point().coords[0]) + rng.uniform(-9000, 9000, 2)
            if poly.buffer(-1500).contains(Point(p)) and min(np.hypot(*(p - q)) for q in pts) > 4500:
                pts.append(p)
        towns += [(k, p) for p in pts[1:]]
        cells = list(shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(np.array(pts)), extend_to=poly.buffer(5000))))
        for j, (p, tn) in enumerate(zip(pts, tnames)):
            g = next(c for c in cells if c.contains(Point(p))).intersection(poly)
            kind = "街道" if tn.endswith("街道") else ("乡" if tn.endswith("乡") else "镇")
            unit_rows.append({"code": f"{code}{j + 1:03d}000", "name": tn, "kind": kind, "geometry": g})
        n_vil = 0
        while n_vil < 7:
            p = np.array(poly.representative_point().coords[0]) + rng.uniform(-10000, 10000, 2)
            if poly.buffer(-400).contains(Point(p)) and min(np.hypot(*(p - q)) for q in pts) > 1800:
                villages.append((k, p, village_name(rng, bool(rng.random() < 0.4), used)))
                n_vil += 1
    units = gpd.GeoDataFrame(unit_rows, crs=METRIC_EPSG)
    # roads: street grids, connectors (county towns joined across the borders), village lanes
    roads: list[Road] = []
    for s in seats:
        streets, stubs = grid_streets(rng, s, 1400.0, 1100.0, (260.0, 380.0), 0.15, 0.25, (60.0, 120.0))
        roads += [Road(xy, "secondary" if rank % 5 == 0 else "residential") for xy, rank, _o in streets]
        roads += [Road(xy, "service") for xy in stubs]
    for _k, t in towns:
        streets, _stubs = grid_streets(rng, t, 450.0, 350.0, (220.0, 320.0), 0.1, 0.0, (50.0, 80.0))
        roads += [Road(xy, "tertiary" if rank == 0 else "residential") for xy, rank, _o in streets]
    for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):
        roads.append(Road(wiggle(seats[a], seats[b], rng, 0.03, over_start=200, over_end=200), "primary", "示例公路"))
    for k, t in towns:
        roads.append(Road(wiggle(seats[k], t, rng, 0.05, over_start=150, over_end=150), "tertiary"))
    hubs = [*seats, *(t for _k, t in towns)]
    for _k, v, _n in villages:
        h = min(hubs, key=lambda q: float(np.hypot(*(q - v))))
        roads.append(Road(wiggle(v, h, rng, 0.06, over_end=150), "unclassified"))
    clip = outline.buffer(1500)
    parts = []
    for r in roads:
        g = shapely.intersection(LineString(r.xy), clip)
        parts += [Road(np.asarray(p.coords), r.highway, r.name) for p in shapely.get_parts(g)
                  if p.geom_type == "LineString" and p.length > 20]
    net = drop_isolated(node_roads(parts))
    road_gdf = gpd.GeoDataFrame({"highway": [r.highway for r in net], "name": [r.name for r in net]},
                                geometry=lines([r.xy for r in net]), crs=METRIC_EPSG)
    return _Region(outline, counties, units, seats, towns, villages, road_gdf)


def _population(rng: np.random.Generator, reg: _Region, shift: NDArray) -> tuple[NDArray, Affine]:
    minx, miny, maxx, maxy = reg.outline.bounds
    x0, y1 = np.floor((minx + shift[0]) / CELL) * CELL - 1000, np.ceil((maxy + shift[1]) / CELL) * CELL + 1000
    w = int(np.ceil((maxx + shift[0] + 1000 - x0) / CELL))
    h = int(np.ceil((y1 - (miny + shift[1] - 1000)) / CELL))
    tr = Affine(CELL, 0, x0, 0, -CELL, y1)
    cx = x0 + (np.arange(w) + 0.5) * CELL - shift[0]
    cy = y1 - (np.arange(h) + 0.5) * CELL - shift[1]
    X, Y = np.meshgrid(cx, cy)
    inside = shapely.contains_xy(reg.outline, X, Y)
    pop = np.where(inside, _BACKGROUND * rng.uniform(0.5, 1.5, X.shape), 0.0)
    blobs = [(s, *_SEAT_POP) for s in reg.seats] + [(t, *_TOWN_POP) for _k, t in reg.towns] + [(v, *_VILLAGE_POP) for _k, v, _n in reg.villages]
    for c, people, sd in blobs:
        g = np.exp(-((X - c[0]) ** 2 + (Y - c[1]) ** 2) / (2 * sd * sd)) * inside
        pop += people * rng.uniform(0.8, 1.2) * g / max(g.sum(), 1e-9)
    return np.round(pop, 2), tr


def _lonlat(x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    lon, lat = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True).transform(np.asarray(x, float), np.asarray(y, float))
    return np.round(np.asarray(lon), 6), np.round(np.asarray(lat), 6)


def _facilities(rng: np.random.Generator, reg: _Region, shift: NDArray) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    # rows of the facility table (name, type, level, capacity, unit, xy, county), of the Amap-style
    # table (name, type, xy, beds, area m²) and of the candidate sites
    fac: list[tuple[str, str, str, int | None, str, NDArray, str]] = []
    amap: list[tuple[str, str, NDArray, int | None, int | None]] = []
    cand: list[tuple[str, str, str, int, int, NDArray]] = []

    def near(p: NDArray, r: float = 250.0) -> NDArray:
        return p + shift + rng.uniform(-r, r, 2)

    for k, (_code, cname, _t) in enumerate(COUNTIES):
        s = reg.seats[k]
        fac += [(f"{cname}人民医院", "综合医院", "县级", 300, "床位", near(s, 400), cname),
                (f"{cname}第一小学", "小学", "", 1800, "学位", near(s, 600), cname),
                (f"{cname}实验幼儿园", "幼儿园", "", 360, "学位", near(s, 600), cname),
                (f"{cname}城关初级中学", "初中", "", 1500, "学位", near(s, 600), cname)]
        amap += [(f"{cname}县级养老服务中心", "县级养老服务中心", near(s, 500), 120, None),
                 (f"{cname}全民健身中心", "全民健身中心", near(s, 500), None, 3000)]
        for kk, t in reg.towns:
            if kk != k:
                continue
            town = min(reg.units.itertuples(), key=lambda u: u.geometry.distance(Point(t)))
            fac += [(f"{town.name}卫生院", "乡镇卫生院", "乡镇级", 40, "床位", near(t), cname),
                    (f"{town.name}中心小学", "小学", "", 600, "学位", near(t), cname)]
            amap += [(f"{town.name}日间照料中心", "日间照料中心", near(t), 20, None),
                     (f"{town.name}多功能运动场", "多功能运动场", near(t), None, 800)]
            cand.append((f"{town.name}原粮站", "闲置用房", "改扩建", 900, 90, near(t, 400)))
        for kk, v, vname in reg.villages:
            if kk != k:
                continue
            if rng.random() < 0.6:
                fac.append((f"{vname}卫生室", "村卫生室", "村级", None, "", near(v, 120), cname))
            if rng.random() < 0.5:
                amap.append((f"{vname}互助幸福院", "农村互助幸福院", near(v, 120), 10, None))
            if rng.random() < 0.6:
                amap.append((f"{vname}健身路径", "健身路径", near(v, 120), None, 200))
            if rng.random() < 0.4:
                cand.append((f"{vname}原小学闲置校舍", "闲置校舍", "转型", 1200, 110, near(v, 150)))
    f = pd.DataFrame(fac, columns=["名称", "类型", "级别", "规模", "规模单位", "xy", "所属县"])
    lon, lat = _lonlat(*np.array(list(f["xy"])).T)
    fac_df = pd.DataFrame({"编号": [f"F{i + 1:03d}" for i in range(len(f))], "名称": f["名称"], "类型": f["类型"],
                           "级别": f["级别"], "规模": f["规模"].astype("Int64"), "规模单位": f["规模单位"],
                           "所属县": f["所属县"], "经度": lon, "纬度": lat, "来源": "合成示例数据（synthetic demo data）"})
    a = pd.DataFrame(amap, columns=["名称", "类型", "xy", "床位", "面积(㎡)"])
    lon, lat = _lonlat(*np.array(list(a["xy"])).T)
    glon, glat = wgs84_to_gcj02(lon, lat)
    amap_df = pd.DataFrame({"序号": np.arange(1, len(a) + 1), "名称": a["名称"], "类型": a["类型"],
                            "经度": np.round(glon, 6), "纬度": np.round(glat, 6),
                            "床位": a["床位"].astype("Int64").astype(object).where(a["床位"].notna(), None),
                            "面积(㎡)": a["面积(㎡)"].astype("Int64").astype(object).where(a["面积(㎡)"].notna(), None)})
    c = pd.DataFrame(cand, columns=["名称", "类型", "建设性质", "可用面积", "估算投资(万元)", "xy"])
    lon, lat = _lonlat(*np.array(list(c["xy"])).T)
    cand_df = pd.DataFrame({"编号": [f"HX{i + 1:03d}" for i in range(len(c))], "名称": c["名称"], "类型": c["类型"],
                            "建设性质": c["建设性质"], "可用面积": c["可用面积"], "估算投资(万元)": c["估算投资(万元)"],
                            "经度": lon, "纬度": lat, "来源": "合成示例数据（synthetic demo data）"})
    return fac_df, amap_df, cand_df


def generate_region(out_dir: str | Path, seed: int = REGION_SEED) -> dict[str, Path]:
    """Generate the synthetic prefecture 示例市 into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (``boundaries/``, ``roads/``, ``population/``, ``facilities/`` and
        ``census/`` are created; files of the same names are replaced).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed always gives the same files.

    Returns
    -------
    dict of str to Path
        ``admin``, ``townships``, ``roads``, ``pop``, ``facilities``, ``elderly_fitness``,
        ``candidates``, ``census`` → path written.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    reg = _build(rng)
    cx, cy = Transformer.from_crs(4326, METRIC_EPSG, always_xy=True).transform(CENTER_LON, CENTER_LAT)
    shift = np.array([round(cx / CELL) * CELL, round(cy / CELL) * CELL])
    for sub in ("boundaries", "roads", "population", "facilities", "census"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def moved(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        return gdf.set_geometry(shapely.transform(gdf.geometry.values, lambda xy: xy + shift), crs=METRIC_EPSG)

    p = out / "boundaries" / "admin.gpkg"
    p.unlink(missing_ok=True)
    write_gpkg(moved(reg.counties).to_crs(4326), p, "districts", f"示例市各县 counties — {SYNTHETIC_NOTE}")
    city = gpd.GeoDataFrame({"adcode": [PREFECTURE_CODE], "name": [PREFECTURE_NAME]}, geometry=[reg.outline], crs=METRIC_EPSG)
    write_gpkg(moved(city).to_crs(4326), p, "citys", f"示例市 prefecture — {SYNTHETIC_NOTE}")
    paths["admin"] = p
    p = out / "boundaries" / "townships.gpkg"
    p.unlink(missing_ok=True)
    write_gpkg(moved(reg.units).to_crs(4490), p, "townships", f"乡镇/街道 — {SYNTHETIC_NOTE}")
    paths["townships"] = p
    p = out / "roads" / "roads.gpkg"
    p.unlink(missing_ok=True)
    write_gpkg(moved(reg.roads), p, "roads", f"道路 road network (OSM highway classes) — {SYNTHETIC_NOTE}")
    paths["roads"] = p
    pop, tr = _population(rng, reg, shift)
    p = out / "population" / "pop_100m.tif"
    write_tif(p, pop, tr, "常住人口 residents per 100 m cell")
    paths["pop"] = p
    fac, amap, cand = _facilities(rng, reg, shift)
    p = out / "facilities" / "facilities.csv"
    fac.to_csv(p, index=False, encoding="utf-8-sig", lineterminator="\n")
    paths["facilities"] = p
    p = out / "facilities" / "elderly_fitness_amap.xlsx"
    write_xlsx(amap, p)
    paths["elderly_fitness"] = p
    p = out / "facilities" / "candidates.csv"
    cand.to_csv(p, index=False, encoding="utf-8-sig", lineterminator="\n")
    paths["candidates"] = p
    # census-style tables: the raster's people per county, one age profile nudged per county
    xs = tr.c + (np.arange(pop.shape[1]) + 0.5) * CELL - shift[0]
    ys = tr.f - (np.arange(pop.shape[0]) + 0.5) * CELL - shift[1]
    X, Y = np.meshgrid(xs, ys)
    prow, arow = [], []
    for k, (code, name, _t) in enumerate(COUNTIES):
        inside = shapely.contains_xy(reg.counties.geometry.iloc[k], X, Y)
        prow.append({"CODE": code, "NAME": name, "POPU": int(round(float(pop[inside].sum()))), "POPU_URB": round(0.35 + 0.05 * k, 4)})
        bands = {b: v * (1 + 0.04 * (k - 1.5) * (1 if i < 10 else -1)) for i, (b, v) in enumerate(_AGE_SHARES.items())}
        tot = sum(bands.values())
        bands = {b: round(v / tot, 4) for b, v in bands.items()}
        arow.append({"CODE": code, "NAME": name, **bands})
    census = out / "census"
    pd.DataFrame(prow).to_csv(census / "tudigong_population.csv", index=False, encoding="utf-8-sig", lineterminator="\n")
    pd.DataFrame(arow).to_csv(census / "tudigong_ages.csv", index=False, encoding="utf-8-sig", lineterminator="\n")
    (census / "README.txt").write_text(f"{SYNTHETIC_NOTE}\n普查格式的合成数据 / census-format synthetic rows.\n", encoding="utf-8")
    paths["census"] = census
    return paths


def region_data_dir(seed: int = REGION_SEED) -> Path:
    """Folder of the synthetic prefecture's files, generated on first use.

    ``~/.cache/covplan/prefecture-<seed>`` (``$XDG_CACHE_HOME`` replaces ``~/.cache`` when set).
    The folder is filled atomically (a sibling is renamed into place), so parallel first uses
    do not see half-written files.

    Parameters
    ----------
    seed : int

    Returns
    -------
    pathlib.Path
    """
    import tempfile

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covplan" / f"prefecture-{seed}"
    if (base / "census" / "README.txt").is_file():
        return base
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.name}-", dir=base.parent))
    generate_region(tmp, seed)
    try:
        tmp.rename(base)
    except OSError:  # another process was first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return base
