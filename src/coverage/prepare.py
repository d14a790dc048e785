"""``covplan prepare``: from raw data (OSM, WorldPop, Amap exports, admin files) to a scenario folder.

A planner rarely has a ready scenario. They have a Geofabrik extract (PBF or the "free" shapefiles),
a WorldPop GeoTIFF, an Excel list of facilities in Amap (GCJ-02) coordinates and perhaps a township
layer. :func:`prepare` turns these into a folder that ``covplan run`` accepts, and says what is
missing or doubtful in the data (``quality.json`` / ``quality.md``)::

    OUT/
      scenario.yaml                  validated with coverage.pipeline.validate before returning
      area/boundary.gpkg             county outline, WGS-84 (GCJ-02 Amap outlines converted)
      area/units.gpkg                乡镇/街道: the user's layer, or approximate (Voronoi) units
      network/roads.gpkg             roads clipped to the area + buffer (PBF, or a big line file)
      facilities/osm_facilities.gpkg OSM POIs mapped to the four services (unmapped ones dropped)
      facilities/<user files>        copies of the user's facility tables (small files)
      population/pop.tif             counts clipped to area + buffer (only when the raster is much
                                     larger than the area, e.g. the 10 km China grid, or a vector
                                     population layer rasterised)
      quality.json, quality.md       the data-quality report

Big inputs that need no clipping are referenced by absolute path, never copied. Everything is
written into a temporary sibling folder that replaces ``OUT`` only when the scenario validates; on
any error nothing is left behind.

Data-quality figures (all on the source raster's own cells, cells whose centre lies inside the
area; distances in the local metric CRS):

* ``pop_far_from_road_share``: population share whose cell centre is more than
  ``settings.SNAP_MAX_M`` (1 km) in a straight line from the nearest node of the walk graph;
* ``facilities_off_network``: facilities more than ``settings.SNAP_MAX_M`` from the nearest node;
* ``per_10k``: facilities per 10 000 residents per service, beside rough national figures
  (:data:`NATIONAL_PER_10K`) — OSM is sparse in much of China, and a service far below them is
  flagged as probably incomplete;
* ``crs_issues``: :func:`coverage.io.facilities.check_declared_crs` per facility file against the
  road vertices, road or unit layers without a CRS, GCJ-02 outlines converted;
* ``census``: the 2020 census resident population (七普, 常住) against the raster total;
* ``units.approximate``: True when the 乡镇/街道 units are Voronoi approximations.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from pyproj import CRS, Transformer

from coverage import settings
from coverage._atomic import atomic_output_dir
from coverage.categories import FTYPES, SERVICES, classify
from coverage.crs import local_metric_crs
from coverage.errors import InputError

log = logging.getLogger(__name__)

#: OSM tag values (key=value, or Geofabrik ``fclass``) → facility-type key. The facility's name may
#: refine the type inside the same service (e.g. ``amenity=school`` named …中学 → ``junior``).
OSM_FTYPES: dict[str, str] = {
    "amenity=school": "primary",
    "amenity=kindergarten": "kindergarten",
    "amenity=childcare": "nursery",
    "amenity=hospital": "county_hospital",
    "amenity=clinic": "private_clinic",
    "amenity=doctors": "private_clinic",
    "social_facility=nursing_home": "nursing_home",
    "social_facility=day_care": "day_care",
    "social_facility=assisted_living": "nursing_home",
    "amenity=nursing_home": "nursing_home",
    "leisure=fitness_centre": "fitness_center",
    "leisure=sports_centre": "fitness_center",
    "leisure=sports_hall": "stadium",
    "leisure=stadium": "stadium",
    "leisure=pitch": "multi_court",
    "leisure=fitness_station": "fitness_path",
}
#: Geofabrik ``fclass`` values (the "free" shapefiles) → the OSM tag they stand for.
GEOFABRIK_FCLASS: dict[str, str] = {
    "school": "amenity=school",
    "kindergarten": "amenity=kindergarten",
    "hospital": "amenity=hospital",
    "clinic": "amenity=clinic",
    "doctors": "amenity=doctors",
    "nursing_home": "social_facility=nursing_home",
    "sports_centre": "leisure=sports_centre",
    "stadium": "leisure=stadium",
    "pitch": "leisure=pitch",
    "fitness_centre": "leisure=fitness_centre",
}
#: Rough national facility counts per 10 000 residents (order of magnitude only), used to flag a
#: service whose POIs are probably incomplete. school: kindergartens 29.2万 + primary 15.8万 + junior
#: 5.3万 (教育统计 2020); clinic: 村卫生室 60.9万 + 乡镇卫生院 3.6万 + 社区卫生服务中心/站 3.5万 +
#: 诊所/门诊部 ~28万 + 医院 3.5万 (卫生健康统计 2020); elderly: 养老机构 3.8万 + 社区养老服务设施
#: ~29万 (民政统计 2020); fitness: 体育场地 371万 (2020 全国体育场地统计). Population 14.1亿.
NATIONAL_PER_10K: dict[str, float] = {"school": 3.6, "clinic": 7.0, "elderly": 2.3, "fitness": 26.0}
#: A service counts as "sparse" below this fraction of :data:`NATIONAL_PER_10K`.
SPARSE_FRACTION: float = 0.25
#: National age shares, used only when no county census row is available (see settings).
NATIONAL_AGE_SHARES: dict[str, float] = settings.NATIONAL_AGE_SHARES
#: Clip a population raster when its extent exceeds the area + buffer by this factor.
CLIP_RASTER_FACTOR: float = 16.0
#: Clip a road line file when its extent exceeds the area + buffer by this factor.
CLIP_LINES_FACTOR: float = 4.0
#: Copy user facility files up to this size (bytes); bigger ones are referenced by path.
COPY_MAX_BYTES: int = 20_000_000
#: Cell size (m) used to rasterise a vector population layer (polygons with a population field).
VECTOR_POP_RES_M: float = 100.0

_FILE_SPEC = re.compile(
    r"^(?P<path>.*?\.(?:csv|xlsx|xlsm|xls|gpkg|shp|geojson|json|fgb|txt))(?::(?P<crs>[^/\\]+))?$", re.I
)
_POP_FIELDS = ("population", "pop", "人口", "常住人口", "POP", "Population", "value", "count")


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def parse_file_spec(spec: str | Path) -> tuple[Path, str | None]:
    """Split ``PATH[:crs]`` (e.g. ``amap.xlsx:gcj02``, ``t.shp:EPSG:4545``) into path and crs.

    Parameters
    ----------
    spec : str or Path
        A file name, optionally followed by ``:`` and a declared coordinate system.

    Returns
    -------
    tuple
        ``(Path, crs or None)``.
    """
    s = str(spec)
    if Path(s).exists():
        return Path(s), None
    m = _FILE_SPEC.match(s)
    if m is None:
        return Path(s), None
    return Path(m.group("path")), m.group("crs")


def parse_facility_spec(spec: str | Path) -> tuple[Path, str | None, str | None]:
    """Split ``PATH[:crs[:ftype]]`` of ``--facilities`` into path, crs and facility type.

    ``ftype`` (a key of :data:`coverage.categories.FTYPES`) gives every row of a type-less layer its
    type, e.g. a school layer without a type column: ``schools.shp::primary`` (no crs: as in the
    file), ``amap_clinics.csv:gcj02:village_clinic``, ``t.shp:EPSG:4545:kindergarten``. A single
    part that is an ftype key is the ftype (``schools.gpkg:primary``).

    Returns
    -------
    tuple
        ``(Path, crs or None, ftype or None)``.

    Raises
    ------
    InputError
        An unknown ftype.
    """
    p, rest = parse_file_spec(spec)
    if not rest:
        return p, None, None
    parts = rest.split(":")
    if len(parts) == 1:
        return (p, None, parts[0]) if parts[0] in FTYPES else (p, parts[0], None)
    if parts[-1].strip().isdigit():  # EPSG:4545
        return p, rest, None
    ftype = parts[-1].strip()
    if ftype not in FTYPES:
        raise InputError(
            f"--facilities {spec}：未知的设施类型 ftype “{ftype}”。可用：{', '.join(FTYPES)}。",
            f"--facilities {spec}: unknown ftype {ftype!r}; valid keys: {', '.join(FTYPES)}.",
            file=p, field="ftype",
        )
    crs = ":".join(parts[:-1]).strip() or None
    return p, crs, ftype


def osm_ftype(tag: str, name: Any = None) -> str | None:
    """Facility-type key of an OSM tag (``"amenity=clinic"``) or Geofabrik ``fclass`` (``"clinic"``).

    The tag decides the service; the name may refine the type within that service (a school named
    …中学 is a ``junior``, a clinic named …卫生院 a ``township_health_center``).

    Parameters
    ----------
    tag : str
        ``key=value`` or a Geofabrik ``fclass``.
    name : str, optional
        The facility's name.

    Returns
    -------
    str or None
        A key of :data:`coverage.categories.FTYPES`, or None when the tag is not a mission service.
    """
    t = str(tag).strip().lower()
    t = GEOFABRIK_FCLASS.get(t, t)
    base = OSM_FTYPES.get(t)
    if base is None:
        return None
    if name is not None and str(name).strip() and str(name) != "nan":
        by_name = classify([name])["ftype"].iloc[0]
        if isinstance(by_name, str) and FTYPES[by_name].service == FTYPES[base].service:
            return by_name
    return base


def _rel(p: Path, base: Path) -> str:
    try:
        return Path(p).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(Path(p).resolve())


def _bbox_area(b) -> float:
    return max(b[2] - b[0], 1e-12) * max(b[3] - b[1], 1e-12)


def _shp_siblings(p: Path) -> list[Path]:
    if p.suffix.lower() != ".shp":
        return [p]
    return [q for q in p.parent.glob(p.stem + ".*") if q.suffix.lower() in (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qpj")]


# ----------------------------------------------------------------------------------------------
# area
# ----------------------------------------------------------------------------------------------


def _resolve_area(area, admin_path, admin_layer, units, adcode, census_dir, notes) -> tuple[gpd.GeoDataFrame, str | None, str]:
    """The outline (one row, EPSG:4326), its adcode (or None) and name."""
    from coverage.io import admin as iadmin
    from coverage.io import boundaries as ib

    if area is None and units is None:
        raise InputError(
            "请用 --area 给出评估范围：县名、6 位行政区划代码或边界文件。",
            "give the area with --area: a county name, a 6-digit adcode or a polygon file.",
            field="area",
        )
    src = area if area is not None else parse_file_spec(units)[0]
    p, crs = parse_file_spec(src)
    looks_file = p.suffix.lower() in (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".kml", ".zip")
    if looks_file or p.exists():
        outline = ib.read_boundary(p, target_crs="EPSG:4326", crs=crs)
        nm = p.stem.replace("-all", "")
        outline = outline.assign(adcode=adcode or "", name=nm)
        notes.append({"item": "area", "zh": f"评估范围取自文件 {p.name}（合并为一个面）。", "en": f"area from {p.name} (dissolved)."})
        if census_dir is not None and adcode:
            from coverage.io import census

            try:  # a polygon file: take the county's name from the census table
                nm = str(census.population(adcode, Path(census_dir) / "tudigong_population.csv")["name"]) or nm
            except InputError:
                pass
            outline = outline.assign(name=nm)
        return outline[["adcode", "name", "geometry"]], adcode, nm
    if admin_path is None:
        raise InputError(
            f"按县名/代码“{area}”查找边界需要行政区划文件：请用 --admin 指定（如 seed_admin_boundaries_amap.gpkg）。",
            f"looking up '{area}' by name or code needs an admin-boundary file: pass --admin (e.g. seed_admin_boundaries_amap.gpkg).",
            field="admin",
        )
    out = iadmin.county_outline(str(area), admin_path, layer=admin_layer)
    src_name = str(out["source"].iloc[0])
    if "gcj" in src_name.lower():
        notes.append({"item": "crs", "zh": f"县界 {src_name} 为 GCJ-02（高德），已逐点转换为 WGS-84。",
                      "en": f"the outline {src_name} is GCJ-02 (Amap); every vertex converted to WGS-84."})
    return out[["adcode", "name", "geometry"]], str(out["adcode"].iloc[0]), str(out["name"].iloc[0])


# ----------------------------------------------------------------------------------------------
# units
# ----------------------------------------------------------------------------------------------


def _read_seats(spec, outline_wgs: gpd.GeoDataFrame, kinds: tuple[str, ...] | None = None) -> gpd.GeoDataFrame:
    """Township seats from a CSV (name, lon, lat) or a point layer (name; Geofabrik places: fclass)."""
    from coverage.io import apply_declared_crs, read_vector
    from coverage.io.facilities import find_column, read_table, LAT_FIELDS, LON_FIELDS, NAME_FIELDS

    p, crs = parse_file_spec(spec)
    if p.suffix.lower() in (".csv", ".xlsx", ".xls", ".txt"):
        df = read_table(p, None)
        lon_c, lat_c, name_c = find_column(df.columns, LON_FIELDS), find_column(df.columns, LAT_FIELDS), find_column(df.columns, NAME_FIELDS)
        if lon_c is None or lat_c is None or name_c is None:
            raise InputError(
                f"乡镇驻地表 {p.name} 需要 名称、经度、纬度 三列（现有：{', '.join(df.columns)}）。",
                f"the seat table {p.name} needs name, lon and lat columns (it has: {', '.join(df.columns)}).",
                file=p,
            )
        gdf = gpd.GeoDataFrame(
            {"name": df[name_c].astype(str)},
            geometry=gpd.points_from_xy(pd.to_numeric(df[lon_c], errors="coerce"), pd.to_numeric(df[lat_c], errors="coerce")),
            crs=4326,
        )
        if "code" in df.columns:
            gdf["code"] = df["code"].astype(str)
        gdf = apply_declared_crs(gdf, crs, p)
    else:
        gdf = apply_declared_crs(read_vector(p, what_zh="乡镇驻地", what_en="township seats"), crs, p)
        if "fclass" in gdf.columns and kinds:
            gdf = gdf[gdf["fclass"].isin(kinds)]
        nm = next((c for c in ("name", "Name", "NAME", "名称") if c in gdf.columns), None)
        if nm is None:
            raise InputError(f"乡镇驻地图层 {p.name} 没有名称字段。", f"the seat layer {p.name} has no name field.", file=p, field="name")
        gdf = gdf.rename(columns={nm: "name"})[["name", *(["fclass"] if "fclass" in gdf.columns else []), "geometry"]]
        gdf["geometry"] = gdf.geometry.representative_point()
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty].to_crs(4326)
    return gdf[gdf.within(outline_wgs.union_all())].reset_index(drop=True)


def _places_from_pbf(pbf: Path, bounding, outline_wgs) -> gpd.GeoDataFrame:
    import pyrosm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        osm = pyrosm.OSM(str(pbf), bounding_box=bounding)
        df = osm.get_data_by_custom_criteria({"place": ["town", "suburb", "village"]}, keep_ways=False, keep_relations=False)
    if df is None or len(df) == 0 or "name" not in df.columns:  # no place, or none with a name
        return gpd.GeoDataFrame({"name": [], "fclass": []}, geometry=[], crs=4326)
    df = df[df["name"].notna()]
    gdf = gpd.GeoDataFrame({"name": df["name"].astype(str), "fclass": df["place"].astype(str)}, geometry=df.geometry.values, crs=4326)
    return gdf[gdf.within(outline_wgs.union_all())].reset_index(drop=True)


def _pick_seat_kinds(places: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Towns and suburbs (镇/街道 seats); villages only when fewer than two of those."""
    main = places[places["fclass"].isin(["town", "suburb"])]
    out = main if len(main) >= 2 else places[places["fclass"].isin(["town", "suburb", "village"])]
    out = out.drop_duplicates(subset=["name"]).copy()
    xy = np.round(shapely.get_coordinates(out.geometry.values), 6)
    return out[~pd.DataFrame(xy).duplicated().to_numpy()].reset_index(drop=True)


def _prepare_units(units, seats, outline_wgs, place_sources, bounding, notes) -> tuple[gpd.GeoDataFrame | None, dict]:
    """Units in WGS-84 (code, name, kind, approximate) and a description for the report."""
    from coverage.io import admin as iadmin
    from coverage.io import boundaries as ib

    shape = outline_wgs.union_all()
    if units is not None:
        p, crs = parse_file_spec(units)
        u = ib.read_units(p, target_crs="EPSG:4326", crs=crs)
        metric = local_metric_crs(shape.centroid.x, shape.centroid.y)
        um = u.to_crs(metric)
        inside = um.representative_point().within(gpd.GeoSeries([shape], crs=4326).to_crs(metric).iloc[0])
        u = u[inside.to_numpy()].reset_index(drop=True)
        if u.empty:
            raise InputError(
                f"乡镇/街道图层 {p.name} 中没有单元落在评估范围内。请检查范围和图层的坐标系。",
                f"no unit of {p.name} lies inside the area. Check the area and the layer's CRS.",
                file=p,
            )
        covered = float(u.to_crs(metric).union_all().intersection(gpd.GeoSeries([shape], crs=4326).to_crs(metric).iloc[0]).area)
        total = float(gpd.GeoSeries([shape], crs=4326).to_crs(metric).area.iloc[0])
        u = u[["code", "name", "kind", "geometry"]].assign(approximate=False)
        return u, {"source": p.name, "approximate": False, "count": len(u), "area_covered_share": covered / total if total else None}
    seat_gdf, seat_src = None, None
    if seats is not None:
        seat_gdf, seat_src = _read_seats(seats, outline_wgs), parse_file_spec(seats)[0].name
    else:
        for kind, src in place_sources:
            places = _read_seats(src, outline_wgs, kinds=("town", "suburb", "village")) if kind == "shp" else _places_from_pbf(src, bounding, outline_wgs)
            if "fclass" not in places.columns:
                places["fclass"] = "town"
            if len(places):
                seat_gdf, seat_src = _pick_seat_kinds(places)[["name", "geometry"]], f"OSM place=town/suburb/village ({Path(src).name})"
                break
    if seat_gdf is None or len(seat_gdf) == 0:
        notes.append({"item": "units", "zh": "没有乡镇/街道单元，也没有驻地点：全县作为一个单元评估。请用 --units 提供乡镇边界。",
                      "en": "no 乡镇/街道 units and no seats: the whole area is one unit. Give --units."})
        return None, {"source": None, "approximate": False, "count": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = iadmin.approximate_townships(outline_wgs, seat_gdf)
    u = u.to_crs(4326)[["code", "name", "kind", "approximate", "geometry"]]
    notes.append({"item": "units", "zh": f"乡镇/街道单元为近似范围（{len(u)} 个驻地的泰森多边形，驻地来自 {seat_src}），不是真实边界。",
                  "en": f"the 乡镇/街道 units are APPROXIMATE (Voronoi cells of {len(u)} seats from {seat_src}), not real boundaries."})
    return u, {"source": seat_src, "approximate": True, "count": len(u)}


# ----------------------------------------------------------------------------------------------
# roads
# ----------------------------------------------------------------------------------------------


def prepare_roads(roads: Any, tmp: Path, buffer_wgs: Any, notes: list[dict]) -> tuple[dict | None, Path | None, str | None]:  # noqa: C901 - issue 11: to narrow/split
    """The YAML ``network`` section, the roads path to build graphs from, and the class field.

    The roads (a PBF, a line layer or ``osmnx``) are clipped to ``buffer_wgs`` (the area plus its
    cross-border buffer, WGS-84) into ``tmp``; what was done is appended to ``notes`` (quality.md).
    """
    if roads is None:
        notes.append({"item": "roads", "zh": "没有路网：情景无法运行（covplan run 需要 network.roads）。请用 --roads 提供 OSM PBF 或道路线图层。",
                      "en": "no roads: the scenario cannot run (covplan run needs network.roads). Give --roads (OSM PBF or a line layer)."})
        return None, None, None
    p, crs = parse_file_spec(roads)
    name = p.name.lower()
    if str(roads) == "osmnx":
        return _roads_osmnx(tmp, buffer_wgs, notes)
    if not p.exists():
        raise InputError(f"找不到路网文件：{p}。", f"road file not found: {p}.", file=p, field="roads")
    out = tmp / "network" / "roads.gpkg"
    out.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".pbf"):
        import pyrosm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            osm = pyrosm.OSM(str(p), bounding_box=buffer_wgs)
            ways = osm.get_network(network_type="all")
        if ways is None or len(ways) == 0:
            raise InputError(f"{p.name} 在评估范围（含缓冲区）内没有道路。", f"{p.name} has no roads inside the area (plus buffer).", file=p)
        keep = [c for c in ("id", "highway", "name", "oneway", "junction", "maxspeed") if c in ways.columns]
        ways = gpd.GeoDataFrame(ways[keep].astype({c: str for c in keep if c != "id"}), geometry=ways.geometry.values, crs=4326)
        for c in keep:
            if c != "id":
                ways[c] = ways[c].replace({"None": None, "nan": None})
        ways.to_file(out, layer="roads", engine="pyogrio")
        notes.append({"item": "roads", "zh": f"道路取自 {p.name}，裁剪到评估范围外扩缓冲区（{len(ways)} 条 OSM way）。",
                      "en": f"roads from {p.name}, clipped to the area plus buffer ({len(ways)} OSM ways)."})
        return {"roads": {"path": "network/roads.gpkg", "layer": "roads"}, "class_field": "highway"}, out, "highway"
    if name.endswith((".osm", ".xml", ".graphml")):
        return {"roads": {"path": str(p.resolve())}}, p, None
    import pyogrio

    info = pyogrio.read_info(p)
    fields = list(info["fields"])
    from coverage.network import find_class_field

    cls, _osm = find_class_field(fields)
    if cls is None:
        notes.append({"item": "roads", "zh": f"路网 {p.name} 没有道路等级字段：所有道路按可步行、车速 {settings.DRIVE_KMH_UNKNOWN:g} km/h 处理。",
                      "en": f"the roads {p.name} have no class field: every line is walkable and driven at {settings.DRIVE_KMH_UNKNOWN:g} km/h."})
    if info["crs"] is None and crs is None:
        notes.append({"item": "crs", "zh": f"路网 {p.name} 没有坐标系（缺 .prj），按 WGS-84 经纬度处理，未能核实。",
                      "en": f"the roads {p.name} have no CRS (no .prj); taken as WGS-84 lon/lat, unverified."})
    src_b = info["total_bounds"]
    src_crs = CRS.from_user_input(info["crs"]) if info["crs"] else CRS.from_epsg(4326)
    if crs is not None:
        from coverage.io import parse_crs

        kind, declared = parse_crs(crs, p)
        if kind in ("gcj02", "bd09"):
            raise InputError(f"路网 {p.name} 声明为 {crs}：请先转换为 WGS-84。", f"the roads {p.name} are declared {crs}; convert them to WGS-84 first.", file=p, field="crs")
        if declared is not None:  # always, as crs is not None
            src_crs = declared
    bb = Transformer.from_crs(4326, src_crs, always_xy=True).transform_bounds(*buffer_wgs.bounds)
    section: dict[str, Any] = {}
    if _bbox_area(src_b) > CLIP_LINES_FACTOR * _bbox_area(bb) or crs is not None:
        from coverage.io import dbf_encoding

        enc = dbf_encoding(p)
        gdf = gpd.read_file(p, bbox=tuple(bb), engine="pyogrio", **({"encoding": enc} if enc else {}))
        if gdf.crs is None or crs is not None:
            gdf = gdf.set_crs(src_crs, allow_override=True)
        gdf = gdf.to_crs(4326)
        gdf = gdf[gdf.intersects(buffer_wgs)]
        gdf.to_file(out, layer="roads", engine="pyogrio")
        section["roads"] = {"path": "network/roads.gpkg", "layer": "roads"}
        notes.append({"item": "roads", "zh": f"道路 {p.name} 裁剪到评估范围外扩缓冲区（{len(gdf)} 条线）。",
                      "en": f"roads {p.name} clipped to the area plus buffer ({len(gdf)} lines)."})
        path = out
    else:
        if not any(out.parent.iterdir()):
            out.parent.rmdir()
        section["roads"] = {"path": str(p.resolve())}
        path = p
    if cls:
        section["class_field"] = cls
    return section, path, cls


def _roads_osmnx(tmp: Path, buffer_wgs, notes):  # pragma: no cover - needs the internet
    import osmnx as ox

    G = ox.graph_from_polygon(buffer_wgs, network_type="all", simplify=False, retain_all=True)
    out = tmp / "network" / "roads.graphml"
    out.parent.mkdir(parents=True, exist_ok=True)
    ox.save_graphml(G, out)
    notes.append({"item": "roads", "zh": "道路由 osmnx 在线下载（Overpass）。", "en": "roads downloaded online with osmnx (Overpass)."})
    return {"roads": {"path": "network/roads.graphml"}}, out, "highway"


def _walk_graph(section: dict | None, roads_path: Path | None, crs: CRS):
    from coverage import network

    if section is None or roads_path is None:
        return None
    name = roads_path.name.lower()
    if name.endswith((".pbf", ".osm", ".xml")):
        return network.read_osm(roads_path, mode="walk", crs=crs)
    if name.endswith(".graphml"):
        return network.from_graphml(roads_path, mode="walk", crs=crs)
    layer = section["roads"].get("layer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return network.read_lines(roads_path, mode="walk", class_field=section.get("class_field"), layer=layer, crs=crs)


# ----------------------------------------------------------------------------------------------
# POIs → facilities
# ----------------------------------------------------------------------------------------------


def _pois_from_shp(p: Path, buffer_wgs) -> gpd.GeoDataFrame:
    from coverage.io import dbf_encoding

    enc = dbf_encoding(p)
    gdf = gpd.read_file(p, bbox=tuple(buffer_wgs.bounds), engine="pyogrio", **({"encoding": enc} if enc else {}))
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    gdf = gdf.to_crs(4326)
    tcol = next((c for c in ("fclass", "amenity", "type") if c in gdf.columns), None)
    if tcol is None:
        raise InputError(f"POI 图层 {p.name} 没有 fclass/amenity 字段。", f"the POI layer {p.name} has no fclass/amenity field.", file=p, field="fclass")
    names = gdf["name"] if "name" in gdf.columns else pd.Series([None] * len(gdf))
    ft = [osm_ftype(t, n) for t, n in zip(gdf[tcol].astype(str), names)]
    ids = gdf["osm_id"].astype(str) if "osm_id" in gdf.columns else pd.Series([f"{p.stem}-{i + 1}" for i in range(len(gdf))])
    out = gpd.GeoDataFrame(
        {"fid": "osm" + ids.to_numpy(dtype=str), "name": names.fillna("").astype(str).to_numpy(), "ftype": ft,
         "osm_tag": gdf[tcol].astype(str).to_numpy(), "source_file": p.name},
        geometry=gdf.geometry.representative_point().to_numpy(), crs=4326,
    )
    return out


def _pois_from_pbf(p: Path, buffer_wgs) -> gpd.GeoDataFrame:
    import pyrosm

    filt: dict[str, list[str]] = {}
    for tag in OSM_FTYPES:
        k, v = tag.split("=")
        filt.setdefault(k, []).append(v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        osm = pyrosm.OSM(str(p), bounding_box=buffer_wgs)
        df = osm.get_data_by_custom_criteria(filt, keep_relations=False)
    if df is None or len(df) == 0:
        return gpd.GeoDataFrame({"fid": [], "name": [], "ftype": [], "osm_tag": [], "source_file": []}, geometry=[], crs=4326)
    tags, fts = [], []
    names = df["name"] if "name" in df.columns else pd.Series([None] * len(df), index=df.index)
    for i, (_, r) in enumerate(df.iterrows()):
        tag, ft = "", None
        for k in ("social_facility", "amenity", "leisure"):
            val = r.get(k) if k in df.columns else None
            if isinstance(val, str) and f"{k}={val}" in OSM_FTYPES:
                tag = f"{k}={val}"
                ft = osm_ftype(tag, names.iloc[i])
                break
        tags.append(tag)
        fts.append(ft)
    kinds = df["osm_type"].astype(str).str[0] if "osm_type" in df.columns else pd.Series(["n"] * len(df), index=df.index)
    geoms = gpd.GeoSeries(df.geometry.values, crs=4326).representative_point()
    return gpd.GeoDataFrame(
        {"fid": ("osm" + kinds + df["id"].astype(str)).to_numpy(), "name": names.fillna("").astype(str).to_numpy(),
         "ftype": fts, "osm_tag": tags, "source_file": p.name},
        geometry=geoms.to_numpy(), crs=4326,
    )


def _prepare_pois(pois, tmp: Path, buffer_wgs, notes) -> tuple[dict | None, dict]:
    if not pois:
        return None, {}
    parts = []
    for spec in pois:
        p = parse_file_spec(spec)[0]
        if not p.exists():
            raise InputError(f"找不到 POI 文件：{p}。", f"POI file not found: {p}.", file=p, field="pois")
        parts.append(_pois_from_pbf(p, buffer_wgs) if p.name.lower().endswith(".pbf") else _pois_from_shp(p, buffer_wgs))
    allp = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)
    allp = allp[allp.within(buffer_wgs)]
    mapped = allp[allp["ftype"].notna()].copy()
    mapped = mapped.drop_duplicates(subset=["fid"]).reset_index(drop=True)
    mapped["category"] = [FTYPES[f].service for f in mapped["ftype"]]
    stats = {"pois_read": int(len(allp)), "mapped": int(len(mapped)), "by_service": {s: int((mapped["category"] == s).sum()) for s in SERVICES}}
    if mapped.empty:
        notes.append({"item": "facilities", "zh": "OSM POI 中没有可归入四类服务的设施。", "en": "no OSM POI maps to the four services."})
        return None, stats
    out = tmp / "facilities" / "osm_facilities.gpkg"
    out.parent.mkdir(parents=True, exist_ok=True)
    mapped.rename(columns={"fid": "id"})[["id", "name", "ftype", "category", "osm_tag", "source_file", "geometry"]].to_file(out, layer="facilities", engine="pyogrio")
    return {"path": "facilities/osm_facilities.gpkg", "layer": "facilities", "columns": {"type": "ftype", "id": "id", "name": "name"}}, stats


def _facility_columns(p: Path, crs: str | None) -> dict | None:
    """Pick lon/lat columns matching the declared crs when a table has several (lon_gcj02, lon_wgs84)."""
    if p.suffix.lower() not in (".csv", ".xlsx", ".xls", ".xlsm", ".txt"):
        return None
    from coverage.io.facilities import read_table

    cols = list(read_table(p, None).columns)
    lon = [c for c in cols if re.match(r"^(lon|lng|longitude|经度)", str(c), re.I)]
    lat = [c for c in cols if re.match(r"^(lat|latitude|纬度)", str(c), re.I)]
    if len(lon) <= 1 and len(lat) <= 1:
        return None
    key = {"gcj02": "gcj", "amap": "gcj", "bd09": "bd", "baidu": "bd"}.get(str(crs or "wgs84").lower().replace("-", "").replace("_", ""), "wgs")
    lo = next((c for c in lon if key in str(c).lower()), None)
    la = next((c for c in lat if key in str(c).lower()), None)
    if lo and la:
        return {"lon": lo, "lat": la}
    return None


def _prepare_user_facilities(facilities, tmp: Path) -> list[dict]:
    out = []
    for spec in facilities or []:
        p, crs, ftype = parse_facility_spec(spec)
        if not p.exists():
            raise InputError(f"找不到设施文件：{p}。", f"facility file not found: {p}.", file=p, field="facilities")
        entry: dict[str, Any] = {}
        size = sum(q.stat().st_size for q in _shp_siblings(p))
        if size <= COPY_MAX_BYTES:
            dst_dir = tmp / "facilities"
            dst_dir.mkdir(parents=True, exist_ok=True)
            for q in _shp_siblings(p):
                shutil.copy2(q, dst_dir / q.name)
            entry["path"] = f"facilities/{p.name}"
        else:
            entry["path"] = str(p.resolve())
        if crs is not None:
            entry["crs"] = crs
        if ftype is not None:
            entry["ftype"] = ftype
        cols = _facility_columns(p, crs)
        if cols:
            entry["columns"] = cols
        out.append(entry)
    return out


#: OSM ↔ Amap/Baidu ↔ planner duplicates: same service, at most this far apart (metres) …
DUPLICATE_M: float = 100.0
#: … and names at least this similar (:func:`coverage.io.facilities.name_similarity`).
DUPLICATE_NAME_SIMILARITY: float = 0.75
#: Columns that mark an Amap (高德) or Baidu POI export.
_POI_EXPORT_COLUMNS = {"typecode", "bigtype", "midtype", "smalltype", "uid", "poiid", "lon_gcj02", "lon_bd09"}


def _source_rank(entry: dict, path: Path, columns: list[str]) -> int:
    """Which copy of a duplicate wins: 0 the planner's own file, 1 an Amap/Baidu export, 2 OSM."""
    from coverage.io import parse_crs

    if str(entry["path"]).startswith("facilities/osm_"):
        return 2
    try:
        kind = parse_crs(entry.get("crs"))[0]
    except InputError:
        kind = "file"
    low = {str(c).lower() for c in columns}
    name = path.name.lower()
    if kind in ("gcj02", "bd09") or low & _POI_EXPORT_COLUMNS or any(k in name for k in ("amap", "高德", "baidu", "百度")):
        return 1
    return 0


def _entry_path(tmp: Path, entry: dict) -> Path:
    return Path(entry["path"]) if Path(entry["path"]).is_absolute() else tmp / entry["path"]


def _merge_duplicates(tmp: Path, fac: list[dict], metric: CRS, notes: list[dict]) -> dict:
    """Drop facilities listed twice across sources (OSM, Amap/Baidu, the planner's files).

    Same service (``category``), at most :data:`DUPLICATE_M` apart and names alike
    (:func:`coverage.io.facilities.duplicate_facilities`): the planner's own file wins, then
    Amap/Baidu, then OSM. Rows of the planner's files are never dropped, and rows are only dropped in
    favour of another source. A source that loses rows is rewritten without them (OSM: the GPKG;
    tables: the CSV copy in ``facilities/``, or ``facilities/<stem>.csv`` for Excel or big files;
    layers: ``facilities/<stem>.dedup.gpkg``) and its
    ``facilities`` entry is changed in place.

    Returns
    -------
    dict
        ``max_m``, ``min_name_similarity``, ``merged`` (rows dropped), ``by_file`` and ``examples``
        (up to 10) for ``quality.json``.
    """
    from coverage.io import facilities as ifac

    stats: dict[str, Any] = {"max_m": DUPLICATE_M, "min_name_similarity": DUPLICATE_NAME_SIMILARITY, "merged": 0, "by_file": {}, "examples": []}
    frames = []
    for k, entry in enumerate(fac):
        path = _entry_path(tmp, entry)
        gdf, _ = ifac.inspect_facilities(path, crs=entry.get("crs"), target_crs=metric, layer=entry.get("layer"),
                                         columns=entry.get("columns"), sheet=entry.get("sheet"), ftype=entry.get("ftype"))
        if gdf is None or gdf.empty:
            continue
        raw_cols = list(gdf.columns) if path.suffix.lower() not in (".csv", ".txt", ".xlsx", ".xls", ".xlsm") else list(ifac.read_table(path, entry.get("sheet"), entry.get("columns")).columns)
        gdf = gdf.assign(_entry=k, _rank=_source_rank(entry, path, raw_cols),
                         _row=gdf["source"].str.rsplit(":", n=1).str[1].astype(int))
        frames.append(gdf)
    if len(frames) < 2:
        return stats
    allf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=metric)
    dups = ifac.duplicate_facilities(allf, max_m=DUPLICATE_M, match="category", min_similarity=DUPLICATE_NAME_SIMILARITY, priority="_rank")
    if dups.empty:
        return stats
    ent, rank = allf["_entry"].to_numpy(), allf["_rank"].to_numpy()
    d_ent, k_ent = ent[dups["drop"].to_numpy()], ent[dups["keep"].to_numpy()]
    dups = dups[(d_ent != k_ent) & (rank[dups["drop"].to_numpy()] > 0)]
    if dups.empty:
        return stats
    for k, rows in allf.loc[dups["drop"]].groupby("_entry")["_row"]:
        entry = fac[int(k)]
        path = _entry_path(tmp, entry)
        _rewrite_without(tmp, entry, path, set(int(r) for r in rows))
        stats["by_file"][path.name] = int(len(rows))
    stats["merged"] = int(len(dups))
    for r in dups.head(10).itertuples():
        a, b = allf.loc[r.drop], allf.loc[r.keep]
        stats["examples"].append({"dropped": str(r.name_drop), "dropped_source": a["source"], "kept": str(r.name_keep),
                                  "kept_source": b["source"], "distance_m": float(r.distance_m)})
    files = ", ".join(f"{f} −{n}" for f, n in stats["by_file"].items())
    notes.append({"item": "facilities",
                  "zh": f"合并了 {stats['merged']} 个重复设施（同类服务、相距 ≤{DUPLICATE_M:g} 米、名称相近；保留顺序：本地清单 > 高德/百度 > OSM）：{files}。",
                  "en": f"merged {stats['merged']} duplicate facilities (same service, ≤{DUPLICATE_M:g} m apart, similar names; kept: planner's list > Amap/Baidu > OSM): {files}."})
    return stats


def _rewrite_without(tmp: Path, entry: dict, path: Path, rows: set[int]) -> None:
    """Write a source without the given rows and point ``entry`` at it.

    ``rows`` are the numbers of ``source`` (``file:row``): for a table the row number Excel/WPS
    shows (the index of :func:`coverage.io.facilities.read_table`), for a layer the 1-based feature.
    """
    from coverage.io import read_vector
    from coverage.io.facilities import read_table, row_numbers

    out_dir = tmp / "facilities"
    out_dir.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".csv", ".txt", ".xlsx", ".xls", ".xlsm"):
        df = read_table(path, entry.get("sheet"), entry.get("columns"))
        keep = [i for i, r in enumerate(row_numbers(df)) if int(r) not in rows]
        # the copy in facilities/ is replaced (same name); an Excel file or a file referenced by
        # path gets a CSV beside the other copies
        out = path if path.suffix.lower() == ".csv" and path.is_relative_to(tmp) else out_dir / f"{path.stem}.csv"
        if out != path and out.exists():
            out = out_dir / f"{path.stem}.dedup.csv"
        df.iloc[keep].to_csv(out, index=False, encoding="utf-8-sig")
        entry.pop("sheet", None)
    else:
        gdf = read_vector(path, layer=entry.get("layer"))
        keep = [i for i in range(len(gdf)) if i + 1 not in rows]
        if str(entry["path"]).startswith("facilities/osm_"):
            out = path
        else:
            out = out_dir / f"{path.stem}.dedup.gpkg"
        gdf.iloc[keep].to_file(out, layer="facilities", engine="pyogrio")
        entry["layer"] = "facilities"
    if out != path and path.is_relative_to(tmp):
        for q in _shp_siblings(path):
            q.unlink(missing_ok=True)
    entry["path"] = _rel(out, tmp)


# ----------------------------------------------------------------------------------------------
# population
# ----------------------------------------------------------------------------------------------


def _prepare_population(population, kind: str, tmp: Path, buffer_wgs, metric: CRS, notes) -> tuple[dict, Path, str]:
    """The YAML ``population`` section (without groups), the raster to measure and its kind."""
    import rasterio
    from rasterio.windows import from_bounds

    from coverage.io import population as ipop

    if population is None:
        raise InputError(
            "缺少人口数据：请用 --population 提供 WorldPop GeoTIFF（100 m 或 1 km，人数或密度）。",
            "no population: pass --population (a WorldPop GeoTIFF, 100 m or 1 km, counts or density).",
            field="population",
        )
    p = Path(population)
    if not p.exists():
        raise InputError(f"找不到人口文件：{p}。", f"population file not found: {p}.", file=p, field="population")
    if p.suffix.lower() in (".gpkg", ".shp", ".geojson", ".json", ".fgb"):
        return _rasterise_vector_population(p, tmp, metric, notes)
    out = tmp / "population" / "pop.tif"
    with ipop.open_raster(p, "总", "total") as src:
        src_crs = ipop.raster_crs(src, p)
        kind_t = ipop.raster_kind(p, src, kind)
        rb = Transformer.from_crs(src_crs, 4326, always_xy=True).transform_bounds(*src.bounds)
        big = _bbox_area(rb) > CLIP_RASTER_FACTOR * _bbox_area(buffer_wgs.bounds)
        res_m = ipop.default_resolution(src_crs, src.transform, buffer_wgs.centroid.y)
        if res_m > 2000:
            notes.append({"item": "population", "zh": f"人口栅格很粗（约 {res_m / 1000:.0f} 公里网格）：只适合粗略检查，不宜用于选址。",
                          "en": f"the population raster is coarse (about {res_m / 1000:.0f} km cells): good for a smoke test, not for siting."})
        if not big:
            return {"total": str(p.resolve()), "kind": kind_t}, p, kind_t
        bb = Transformer.from_crs(4326, src_crs, always_xy=True).transform_bounds(*buffer_wgs.bounds)
        w = from_bounds(*bb, transform=src.transform)
        c0, r0 = max(math.floor(w.col_off) - 1, 0), max(math.floor(w.row_off) - 1, 0)
        c1 = min(math.ceil(w.col_off + w.width) + 1, src.width)
        r1 = min(math.ceil(w.row_off + w.height) + 1, src.height)
        w = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
        counts, valid, tr = ipop.read_counts(src, p, kind_t, w)
    counts = np.where(valid, counts, np.nan).astype("float32")
    out.parent.mkdir(parents=True, exist_ok=True)
    prof = {"driver": "GTiff", "height": counts.shape[0], "width": counts.shape[1], "count": 1, "dtype": "float32",
            "crs": src_crs.to_wkt(), "transform": tr, "nodata": float("nan"), "compress": "deflate"}
    with rasterio.open(out, "w", **prof) as dst:
        dst.write(counts, 1)
        dst.update_tags(units="persons per cell", source=p.name)
    notes.append({"item": "population", "zh": f"人口栅格 {p.name} 远大于评估范围：已裁剪到范围外扩缓冲区并换算为每格人数（population/pop.tif）。",
                  "en": f"the population raster {p.name} is much larger than the area: clipped to the area plus buffer as persons per cell (population/pop.tif)."})
    return {"total": "population/pop.tif", "kind": "count"}, out, "count"


def _rasterise_vector_population(p: Path, tmp: Path, metric: CRS, notes) -> tuple[dict, Path, str]:
    """Polygons (hexagons, grid squares) with a population field → a 100 m count raster.

    Each polygon's people are shared equally among the 100 m cells whose centre lies inside it (a
    polygon with no such centre puts them in the cell of its representative point): totals kept.
    """
    import rasterio
    from affine import Affine
    from rasterio.features import rasterize

    from coverage.io import read_vector

    gdf = read_vector(p, what_zh="人口", what_en="population")
    col = next((c for c in _POP_FIELDS if c in gdf.columns), None)
    if col is None:
        raise InputError(
            f"人口图层 {p.name} 没有人口字段（population/pop/人口）。", f"the population layer {p.name} has no population field (population/pop/人口).",
            file=p, field="population",
        )
    gdf = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])].to_crs(metric).reset_index(drop=True)
    pop = pd.to_numeric(gdf[col], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    res = VECTOR_POP_RES_M
    b = gdf.total_bounds
    x0, y1 = math.floor(b[0] / res) * res, math.ceil(b[3] / res) * res
    w, h = int(math.ceil((b[2] - x0) / res)), int(math.ceil((y1 - b[1]) / res))
    tr = Affine(res, 0, x0, 0, -res, y1)
    ids = rasterize(((g, i + 1) for i, g in enumerate(gdf.geometry)), out_shape=(h, w), transform=tr, fill=0, dtype="int32")
    n = np.bincount(ids.ravel(), minlength=len(gdf) + 1)[1:]
    grid = np.zeros((h, w))
    per = np.divide(pop, n, out=np.zeros_like(pop), where=n > 0)
    grid[ids > 0] = per[ids[ids > 0] - 1]
    for i in np.flatnonzero(n == 0):
        rp = gdf.geometry.iloc[i].representative_point()
        c, r = ~tr * (rp.x, rp.y)
        grid[min(int(r), h - 1), min(int(c), w - 1)] += pop[i]
    out = tmp / "population" / "pop.tif"
    out.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(out, "w", driver="GTiff", height=h, width=w, count=1, dtype="float32", crs=metric.to_wkt(),
                       transform=tr, nodata=float("nan"), compress="deflate") as dst:
        dst.write(grid.astype("float32"), 1)
    notes.append({"item": "population", "zh": f"人口取自面图层 {p.name}（字段 {col}），按 100 米网格均分（总数不变）。",
                  "en": f"population from the polygon layer {p.name} (field {col}), shared equally over 100 m cells (totals kept)."})
    return {"total": "population/pop.tif", "kind": "count"}, out, "count"


def _age_groups(adcode: str | None, census_dir, notes) -> tuple[dict[str, dict], dict]:
    from coverage.io import census

    info: dict[str, Any] = {"source": None}
    if census_dir is not None and adcode:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shares = census.age_shares(adcode, Path(census_dir) / "tudigong_ages.csv")
            info["source"] = f"2020 census, county {adcode}"
            return {g: {"share": round(v, 5)} for g, v in shares.items()}, info
        except InputError as err:
            info["error"] = str(err.problem.en)
    shares = dict(NATIONAL_AGE_SHARES)
    info["source"] = "national 2020 census shares (fallback)"
    notes.append({"item": "population", "zh": "年龄结构没有本县普查数据，暂用 2020 年全国比例（按县人口加权的普查年龄结构）。请核实。",
                  "en": "no county census age structure: the national 2020 census shares are used (population-weighted over counties). Check them."})
    return {g: {"share": round(v, 5)} for g, v in shares.items()}, info


# ----------------------------------------------------------------------------------------------
# data quality
# ----------------------------------------------------------------------------------------------


def population_cells(raster: str | Path, boundary: gpd.GeoDataFrame, kind: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray, CRS]:
    """Populated cells of a raster on its own grid, centre inside the boundary.

    Parameters
    ----------
    raster : str or Path
        Population GeoTIFF.
    boundary : GeoDataFrame
        Area polygon(s), any CRS.
    kind : {"auto", "count", "density"}

    Returns
    -------
    tuple
        ``(x, y, pop, crs)``: cell-centre coordinates in the raster's CRS, persons per cell (> 0),
        and that CRS.
    """
    from coverage.io import population as ipop

    crs = ipop.source_crs(raster)
    grid = ipop.read_population(raster, {}, area=boundary, target_crs=crs, kind=kind)
    r, c = np.nonzero(grid.total > 0)
    x, y = ipop.grid_xy(grid.transform, c + 0.5, r + 0.5)
    return np.asarray(x, float), np.asarray(y, float), grid.total[r, c], crs


def far_from_nodes_share(x: np.ndarray, y: np.ndarray, pop: np.ndarray, nx_: np.ndarray, ny_: np.ndarray, limit_m: float) -> float:
    """Share of ``pop`` whose point is more than ``limit_m`` (straight line) from every node.

    Parameters
    ----------
    x, y, pop : ndarray
        Points (metric CRS) and their weights.
    nx_, ny_ : ndarray
        Node coordinates (same CRS).
    limit_m : float

    Returns
    -------
    float
        0–1 (NaN when ``pop`` sums to 0; 1 when there are no nodes).
    """
    from scipy.spatial import cKDTree

    tot = float(pop.sum())
    if tot <= 0:
        return float("nan")
    if len(nx_) == 0:
        return 1.0
    d, _ = cKDTree(np.column_stack([nx_, ny_])).query(np.column_stack([x, y]))
    return float(pop[d > limit_m].sum() / tot)


def _quality(tmp: Path, yml: dict, boundary_wgs, metric: CRS, graph, pop_path: Path, pop_kind: str, adcode, census_dir,  # noqa: PLR0913 - issue 11: to narrow/split
             units_info: dict, poi_stats: dict, groups_info: dict, notes: list[dict]) -> dict:
    from scipy.spatial import cKDTree

    from coverage.io import census
    from coverage.io import facilities as ifac

    q: dict[str, Any] = {"area": {"name": yml["output"]["county"], "adcode": adcode}}
    bm = boundary_wgs.to_crs(metric)
    q["area"]["area_km2"] = round(float(bm.area.sum()) / 1e6, 3)
    # population
    x, y, pop, pcrs = population_cells(pop_path, boundary_wgs, pop_kind)
    mx, my = Transformer.from_crs(pcrs, metric, always_xy=True).transform(x, y)
    mx, my = np.asarray(mx), np.asarray(my)
    total = float(pop.sum())
    q["population"] = {"raster": pop_path.name, "raster_total": round(total, 1), "cells": int(len(pop)), "basis": "常住",
                       "age_groups": groups_info}
    if census_dir is not None and adcode:
        try:
            c = census.population(adcode, Path(census_dir) / "tudigong_population.csv")
            q["census"] = {"population": c["population"], "urban_share": c["urban_share"],
                           "raster_over_census": round(total / c["population"], 4) if c["population"] else None}
            ratio = q["census"]["raster_over_census"]
            if ratio is not None and abs(ratio - 1) > 0.2:
                notes.append({"item": "population", "zh": f"栅格人口（{total:,.0f}）与 2020 年普查常住人口（{c['population']:,.0f}）相差 {ratio - 1:+.0%}。",
                              "en": f"the raster population ({total:,.0f}) differs from the 2020 census ({c['population']:,.0f}) by {ratio - 1:+.0%}."})
        except InputError as err:
            q["census"] = {"error": err.problem.en}
    # roads
    if graph is not None:
        share = far_from_nodes_share(mx, my, pop, graph.x, graph.y, settings.SNAP_MAX_M)
        q["roads"] = {"walk_nodes": graph.n_nodes, "walk_km": round(graph.length_km(), 1),
                      "pop_far_from_road_share": round(share, 6), "pop_far_from_road": round(share * total, 1),
                      "limit_m": settings.SNAP_MAX_M}
        if share > 0.05:
            notes.append({"item": "roads", "zh": f"{share:.1%} 的人口距最近道路节点超过 {settings.SNAP_MAX_M:g} 米：路网可能不全。",
                          "en": f"{share:.1%} of the population is more than {settings.SNAP_MAX_M:g} m from any road node: the network may be incomplete."})
        tree = cKDTree(np.column_stack([graph.x, graph.y]))
        lon_n, lat_n = Transformer.from_crs(metric, 4326, always_xy=True).transform(graph.x, graph.y)
        ref = np.column_stack([lon_n, lat_n])
    else:
        q["roads"] = None
        tree, ref = None, None
    # facilities
    area_shape = bm.union_all()
    fac_rows, crs_issues, by_service = [], [], {s: 0 for s in SERVICES}
    for entry in yml.get("facilities", []):
        path = Path(entry["path"]) if Path(entry["path"]).is_absolute() else tmp / entry["path"]
        gdf, probs = ifac.inspect_facilities(path, crs=entry.get("crs"), target_crs=metric, layer=entry.get("layer"),
                                             columns=entry.get("columns"), sheet=entry.get("sheet"), ftype=entry.get("ftype"))
        row: dict[str, Any] = {"file": path.name, "crs": entry.get("crs") or "file/wgs84"}
        if gdf is None or gdf.empty:
            row.update({"facilities": 0, "problems": [p.en for p in probs[:5]]})
            fac_rows.append(row)
            continue
        inside = gdf.within(area_shape).to_numpy()
        row["facilities"] = int(len(gdf))
        row["inside_area"] = int(inside.sum())
        row["by_service"] = {s: int(((gdf["category"] == s).to_numpy() & inside).sum()) for s in SERVICES}
        for s in SERVICES:
            by_service[s] += row["by_service"][s]
        if tree is not None:
            d, _ = tree.query(np.column_stack([gdf.geometry.x, gdf.geometry.y]))
            row["off_network"] = int((d > settings.SNAP_MAX_M).sum())
            if not str(entry["path"]).startswith("facilities/osm_"):
                prob = ifac.check_declared_crs(gdf, ref, declared=str(entry.get("crs") or "wgs84"), file=path.name)
                if prob is not None:
                    crs_issues.append({"file": path.name, "severity": prob.severity, "zh": prob.zh, "en": prob.en})
        fac_rows.append(row)
    q["facilities"] = fac_rows
    q["facilities_off_network"] = int(sum(r.get("off_network", 0) for r in fac_rows))
    per = {}
    for s in SERVICES:
        v = by_service[s] / (total / 10_000) if total > 0 else float("nan")
        ref_v = NATIONAL_PER_10K[s]
        per[s] = {"count": by_service[s], "per_10k": round(v, 3), "national_per_10k": ref_v, "sparse": bool(v < SPARSE_FRACTION * ref_v)}
    q["per_10k"] = per
    sparse = [s for s in SERVICES if per[s]["sparse"]]
    if sparse:
        notes.append({"item": "facilities", "zh": f"以下服务的设施密度远低于全国水平，数据可能不全（OSM 在中国多地稀疏）：{', '.join(SERVICES[s].label for s in sparse)}。请补充本地设施清单。",
                      "en": f"facility density far below national figures, probably incomplete (OSM is sparse in much of China): {', '.join(sparse)}. Add local facility lists."})
    if poi_stats:
        q["osm_pois"] = poi_stats
    q["units"] = units_info
    q["crs_issues"] = crs_issues + [{"file": None, "severity": "info", "zh": n["zh"], "en": n["en"]} for n in notes if n["item"] == "crs"]
    q["notes"] = notes
    return q


def _quality_md(q: dict) -> str:
    a = q["area"]
    lines = [f"# 数据质量报告 / Data-quality report: {a['name']}", "",
             f"- 面积 / area: {a['area_km2']:,.1f} km²; 行政区划代码 / adcode: {a.get('adcode') or '-'}",
             f"- 栅格人口 / raster population ({q['population']['raster']}): {q['population']['raster_total']:,.0f}（{q['population']['cells']} 格 / cells, 常住）"]
    c = q.get("census")
    if c and "population" in c:
        lines.append(f"- 2020 年普查常住人口 / 2020 census residents: {c['population']:,.0f}; 栅格/普查 / raster ÷ census = {c['raster_over_census']:.3f}")
    lines.append(f"- 年龄结构 / age groups: {q['population']['age_groups'].get('source')}")
    r = q.get("roads")
    if r:
        lines.append(f"- 步行路网 / walk graph: {r['walk_nodes']:,} 节点 / nodes, {r['walk_km']:,.1f} km; "
                     f"距道路节点超过 {r['limit_m']:g} 米的人口 / population > {r['limit_m']:g} m from a road node: "
                     f"{r['pop_far_from_road']:,.0f} ({r['pop_far_from_road_share']:.2%})")
    else:
        lines.append("- 路网 / roads: 无 / none")
    u = q["units"]
    lines.append(f"- 乡镇/街道 / units: {u.get('count', 0)} ({u.get('source') or '无 / none'})"
                 + ("，**近似范围（泰森多边形）/ APPROXIMATE (Voronoi)**" if u.get("approximate") else ""))
    lines += ["", "## 设施 / Facilities", "", "| 服务 / service | 设施数 / count | 每万人 / per 10k | 全国约 / national ≈ | 偏少 / sparse |", "|---|---|---|---|---|"]
    for s, v in q["per_10k"].items():
        lines.append(f"| {SERVICES[s].label} ({s}) | {v['count']} | {v['per_10k']:.2f} | {v['national_per_10k']:g} | {'是 / yes' if v['sparse'] else ''} |")
    lines += ["", "| 文件 / file | 坐标系 / crs | 设施 / rows | 范围内 / inside | 离路网 >1 km / off network |", "|---|---|---|---|---|"]
    for f in q["facilities"]:
        lines.append(f"| {f['file']} | {f['crs']} | {f['facilities']} | {f.get('inside_area', '-')} | {f.get('off_network', '-')} |")
    d = q.get("duplicates") or {}
    if d.get("merged"):
        lines += ["", f"重复设施已合并 / duplicates merged: {d['merged']}（≤{d['max_m']:g} m，名称相近 / similar names；"
                      "保留 / kept: 本地清单 planner > 高德/百度 Amap/Baidu > OSM）", ""]
        lines += [f"- {e['dropped']} ({e['dropped_source']}) → {e['kept']} ({e['kept_source']}), {e['distance_m']:.0f} m" for e in d["examples"]]
    lines += ["", "## 坐标系问题 / CRS issues", ""]
    lines += [f"- [{i['severity']}] {i.get('file') or ''} {i['zh']} / {i['en']}" for i in q["crs_issues"]] or ["- 未发现 / none found"]
    lines += ["", "## 说明与待办 / Notes and to-do", ""]
    lines += [f"- {n['zh']} / {n['en']}" for n in q["notes"] if n["item"] != "crs"]
    lines.append("- 未设置城区范围（area.urban）和城区中心（area.seat）：计算时由人口网格推算（城乡划分度方法，结果标为“推算”，警告 urban_derived、seat_derived）；"
                 "网格粗时推算不可靠。请在 scenario.yaml 中补充。"
                 " / no 城区 polygon (area.urban) or seat (area.seat): the run derives them from the population grid (Degree of Urbanisation, marked as derived:"
                 " warnings urban_derived, seat_derived), which is unreliable on a coarse grid; add them to scenario.yaml.")
    return "\n".join(lines) + "\n"


def quality_summary(q: dict) -> str:
    """A few terminal lines from a quality report (``quality.json``).

    Parameters
    ----------
    q : dict
        The report written by :func:`prepare`.

    Returns
    -------
    str
    """
    lines = [f"数据质量 / data quality: {q['area']['name']}",
             f"  人口 / population (raster): {q['population']['raster_total']:,.0f}"]
    c = q.get("census")
    if c and "population" in c:
        lines.append(f"  2020 普查 / census: {c['population']:,.0f} (raster ÷ census {c['raster_over_census']:.2f})")
    r = q.get("roads")
    if r:
        lines.append(f"  距道路 >{r['limit_m']:g} m 人口 / population far from roads: {r['pop_far_from_road_share']:.1%}")
    lines.append(f"  离路网设施 / facilities off the network: {q['facilities_off_network']}")
    lines.append("  每万人设施 / per 10k: " + ", ".join(
        f"{s} {v['per_10k']:.2f}{' (sparse)' if v['sparse'] else ''}" for s, v in q["per_10k"].items()))
    if not q.get("runnable", True):
        lines.append("  注意：缺少路网或设施，covplan run 无法运行此情景 / WARNING: no roads or no facilities, covplan run cannot run it")
    if q["units"].get("approximate"):
        lines.append("  乡镇/街道为近似范围 / townships are APPROXIMATE (Voronoi)")
    for i in q["crs_issues"]:
        if i["severity"] != "info":
            lines.append(f"  坐标系 / CRS [{i['severity']}] {i['file']}: {i['en']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------


def prepare(  # noqa: PLR0913 - issue 11: to narrow/split
    out_dir: str | Path,
    *,
    area: str | Path | None = None,
    admin_path: str | Path | None = None,
    units: str | Path | None = None,
    seats: str | Path | None = None,
    roads: str | Path | None = None,
    pois: Sequence[str | Path] | None = None,
    facilities: Sequence[str | Path] | None = None,
    population: str | Path | None = None,
    population_kind: str = "auto",
    census_dir: str | Path | None = None,
    adcode: str | None = None,
    buffer_m: float = 3000.0,
    name: str | None = None,
    admin_layer: str | None = None,
) -> Path:
    """Build a scenario folder (``scenario.yaml`` + clipped data + quality report) from raw data.

    Parameters
    ----------
    out_dir : str or Path
        Folder to create (replaced atomically if it exists).
    area : str or Path, optional
        County name (``"崆峒区"``) or 6-digit adcode (``"620802"``), looked up in ``admin_path``; or a
        polygon file (dissolved; ``PATH:crs`` declares its CRS). Default: the dissolved ``units``.
    admin_path : str or Path, optional
        Offline admin-boundary file (``seed_admin_boundaries_amap.gpkg``: GCJ-02 outlines are
        converted to WGS-84). Needed when ``area`` is a name or code.
    units : str or Path, optional
        乡镇/街道 polygons (``PATH[:crs]``, e.g. a CGCS2000 shapefile). Units whose representative point
        lies inside the area are kept. Without it, units are approximated from ``seats`` or OSM
        ``place=town/suburb`` (else ``village``) nodes, and labelled approximate.
    seats : str or Path, optional
        Township seats: CSV/XLSX with name, lon, lat (``PATH:crs``) or a point layer.
    roads : str or Path, optional
        OSM PBF (clipped to area + ``buffer_m`` into ``network/roads.gpkg``), ``.osm``/GraphML, a
        line layer (GPKG/SHP; clipped when much larger than the area), or ``"osmnx"`` (online).
    pois : list, optional
        OSM PBF or Geofabrik POI shapefiles (``gis_osm_pois_free_1.shp``, ``gis_osm_pois_a_free_1.shp``);
        POIs of the four services (:data:`OSM_FTYPES`) go to ``facilities/osm_facilities.gpkg``.
    facilities : list, optional
        User facility files ``PATH[:crs]`` (CSV/XLSX/GPKG/SHP; Amap exports ``:gcj02``, Baidu
        ``:bd09``). Small files are copied into ``facilities/``; bigger ones referenced by path.
    population : str or Path
        Population raster (WorldPop counts or density), or a polygon layer with a ``population``
        field (rasterised at 100 m).
    population_kind : {"auto", "count", "density"}
    census_dir : str or Path, optional
        Folder of ``tudigong_ages.csv`` and ``tudigong_population.csv`` (2020 census by county):
        age-group shares and the census check.
    adcode : str, optional
        County adcode when ``area`` is a file (for the census).
    buffer_m : float
        Buffer around the area for roads and POIs (cross-boundary access), metres.
    name : str, optional
        Scenario name; default ``"<area name> 现状评估"``.
    admin_layer : str, optional
        Layer of ``admin_path``.

    Returns
    -------
    Path
        ``out_dir / "scenario.yaml"``.

    Raises
    ------
    InputError
        Bad or missing input, or a scenario that does not validate (the problems are listed);
        nothing is left in ``out_dir`` then.
    """
    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir) as tmp:
        yml_path = _prepare_into(tmp, area=area, admin_path=admin_path, units=units, seats=seats, roads=roads, pois=pois,
                                 facilities=facilities, population=population, population_kind=population_kind,
                                 census_dir=census_dir, adcode=adcode, buffer_m=buffer_m, name=name, admin_layer=admin_layer)
    return out_dir / yml_path.name


def _prepare_into(tmp: Path, *, area, admin_path, units, seats, roads, pois, facilities, population, population_kind,  # noqa: PLR0913 - issue 11: to narrow/split
                  census_dir, adcode, buffer_m, name, admin_layer) -> Path:
    from coverage import pipeline

    notes: list[dict] = []
    outline, adcode, area_name = _resolve_area(area, admin_path, admin_layer, units, adcode, census_dir, notes)
    c = outline.union_all().centroid
    metric = local_metric_crs(c.x, c.y)
    buffer_wgs = gpd.GeoSeries([outline.to_crs(metric).union_all().buffer(buffer_m)], crs=metric).to_crs(4326).iloc[0]
    (tmp / "area").mkdir()
    outline.to_file(tmp / "area" / "boundary.gpkg", layer="boundary", engine="pyogrio")
    # places for approximate townships: Geofabrik places beside the given shapefiles, or the PBF
    place_sources: list[tuple[str, Path]] = []
    for spec in [roads, *(pois or [])]:
        if spec is None or str(spec) == "osmnx":
            continue
        p = parse_file_spec(spec)[0]
        if p.name.lower().endswith(".pbf"):
            place_sources.append(("pbf", p))
        elif (p.parent / "gis_osm_places_free_1.shp").exists():
            place_sources.append(("shp", p.parent / "gis_osm_places_free_1.shp"))
    u, units_info = _prepare_units(units, seats, outline, list(dict.fromkeys(place_sources)), buffer_wgs, notes)
    yml: dict[str, Any] = {"name": name or f"{area_name} 现状评估", "area": {"boundary": {"path": "area/boundary.gpkg", "layer": "boundary"}}}
    if u is not None:
        u.to_file(tmp / "area" / "units.gpkg", layer="units", engine="pyogrio")
        yml["area"]["units"] = {"path": "area/units.gpkg", "layer": "units"}
    pop_section, pop_path, pop_kind = _prepare_population(population, population_kind, tmp, buffer_wgs, metric, notes)
    groups, groups_info = _age_groups(adcode, census_dir, notes)
    yml["population"] = {**pop_section, "groups": groups, "basis": "常住"}
    net, roads_path, _cls = prepare_roads(roads, tmp, buffer_wgs, notes)
    if net is not None:
        yml["network"] = net
    osm_entry, poi_stats = _prepare_pois(pois, tmp, buffer_wgs, notes)
    fac = ([osm_entry] if osm_entry else []) + _prepare_user_facilities(facilities, tmp)
    if not fac:
        notes.append({"item": "facilities", "zh": "没有任何设施数据：请用 --pois 或 --facilities 提供。", "en": "no facilities at all: give --pois or --facilities."})
    dup_stats = _merge_duplicates(tmp, fac, metric, notes)
    yml["facilities"] = fac
    yml["standards"] = "cn-default"
    yml["output"] = {"county": area_name}
    graph = _walk_graph(net, roads_path, metric)
    q = _quality(tmp, yml, outline, metric, graph, pop_path, pop_kind, adcode, census_dir, units_info, poi_stats, groups_info, notes)
    q["duplicates"] = dup_stats
    q["runnable"] = bool(net is not None and fac)
    header = (f"# {yml['name']} — 由 covplan prepare 生成 / written by covplan prepare\n"
              "# 请阅读 quality.md（数据质量报告）/ read quality.md (data-quality report). Relative paths are from this file.\n")
    yml_path = tmp / "scenario.yaml"
    yml_path.write_text(header + yaml.safe_dump(yml, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (tmp / "quality.json").write_text(json.dumps(q, ensure_ascii=False, indent=2, default=float), encoding="utf-8")
    (tmp / "quality.md").write_text(_quality_md(q), encoding="utf-8")
    # a folder without roads or facilities is still prepared (quality.md says it cannot run yet)
    problems = [p for p in pipeline.validate(yml_path) if p.severity == "error" and p.code not in ("no_roads", "no_facilities")]
    if problems:
        text = "; ".join(str(p) for p in problems[:5])
        raise InputError(
            f"生成的情景未通过检查（{len(problems)} 个错误）：{text}",
            f"the prepared scenario does not validate ({len(problems)} error(s)): {text}",
            file=None, field="scenario",
        )
    return yml_path


__all__ = [
    "GEOFABRIK_FCLASS",
    "NATIONAL_AGE_SHARES",
    "NATIONAL_PER_10K",
    "OSM_FTYPES",
    "far_from_nodes_share",
    "osm_ftype",
    "parse_facility_spec",
    "parse_file_spec",
    "population_cells",
    "prepare",
    "quality_summary",
]
