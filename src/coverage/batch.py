"""``covplan batch``: a whole prefecture or province in one command, one Dask task per county.

A region file (``REGION.yaml``, recognised by its top-level ``counties:`` key) names the shared
inputs once — roads, population, admin outlines, census folder, facility and candidate files,
standards — and the counties (adcodes or names, or every county inside a prefecture/province
code). Each county is then

1. prepared exactly as ``covplan prepare`` does (:func:`coverage.prepare.prepare`: clipped to the
   county plus the cross-border buffer, so people may use roads and facilities over the border,
   with the county's census age shares), from its own window of the regional inputs: road files
   (one PBF, or several PBFs and/or line files, each clipped to the window and combined into one
   line layer) and township/population polygon layers are read with a bounding box, facility and
   candidate rows are assigned by location (inside the county plus buffer) or by a county field,
   and a population raster is only ever read in the county's window;
2. evaluated as ``covplan run`` does (:mod:`coverage.pipeline`), into ``DIR/<county>/`` with its
   prepared ``scenario.yaml`` beside the run's files; ``DIR/<county>/.covplan-batch.json`` holds the
   content hash of the county's inputs, settings and code, its figures and its gap rows.

The driver then writes ``DIR/region_summary.csv|xlsx`` (one row per county), ``DIR/gaps.xlsx`` (the
merged project bank, ``县(区)`` filled, a sheet per county) and ``DIR/map.html`` (counties coloured
per service, each linking to its own map).

Execution: a ``dask.distributed.LocalCluster`` by default (one single-threaded worker process per
core: the numba kernels run one thread each), an existing scheduler with ``scheduler=ADDRESS``
(the workers must see the same paths), or in this process with ``workers=0``. A county that fails
is reported with its message and the others go on. A county whose hash is unchanged and whose
folder holds only covplan's unchanged files is skipped, so an interrupted province resumes.

Output-folder rules (:mod:`coverage._atomic`): every county folder is written atomically and never
loses a file covplan did not write; the region files are written atomically into ``DIR``; ``DIR``
may hold other files only with ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, overload
from urllib.parse import quote

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rich.console import Console

from coverage import __version__
from coverage._atomic import MANIFEST, atomic_output_dir, check_out_dir, foreign_entries
from coverage.categories import SERVICES
from coverage.errors import InputError, Problem

__all__ = [
    "BATCH_FILE",
    "BatchResult",
    "CountyJob",
    "Region",
    "is_region_file",
    "load_region",
    "plan_jobs",
    "read_region",
    "run_batch",
    "run_county",
    "validate_file",
    "validate_region",
]

#: Per-county record of a batch run (hash, figures, gap rows), inside ``DIR/<county>/``.
BATCH_FILE: str = ".covplan-batch.json"
#: Services in report order.
SERVICE_KEYS: tuple[str, ...] = tuple(SERVICES)
#: Region-summary columns → Chinese headers of ``region_summary.xlsx``.
SUMMARY_ZH: dict[str, str] = {
    "rank": "排名", "county": "县(区)", "adcode": "行政区划代码", "status": "状态", "population": "常住人口",
    **{k: v for s in SERVICE_KEYS for k, v in (
        (f"{s}_population", f"{SERVICES[s].label}-对象人口"), (f"{s}_covered", f"{SERVICES[s].label}-覆盖人口"),
        (f"{s}_share", f"{SERVICES[s].label}-覆盖率"))},
    "circle15_covered": "15公里城乡服务圈-覆盖人口", "circle15_share": "15公里城乡服务圈-覆盖率",
    "standards_passed": "达标项数", "standards_total": "考核项数", "gap_rows": "缺口项目数",
    "seconds": "耗时(秒)", "peak_mb": "进程内存峰值(MB)", "worker": "计算节点", "message": "说明",
}


# ----------------------------------------------------------------------------------------------
# the region file
# ----------------------------------------------------------------------------------------------


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _listify(v: Any) -> Any:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


class SourceFile(_M):
    """A facility or candidate file of the whole region: rows go to the counties by location."""

    path: str
    #: Declared coordinates: ``wgs84`` | ``gcj02`` (Amap) | ``bd09`` | an EPSG code; default as in the file.
    crs: str | None = None
    #: Facility type of every row of a type-less layer (a key of ``coverage.categories.FTYPES``).
    ftype: str | None = None
    #: A column naming each row's county (name or adcode): the row then goes to that county too.
    county_field: str | None = None

    @classmethod
    def coerce(cls, v: Any) -> Any:
        """A plain path string is ``{path: ...}``."""
        return {"path": v} if isinstance(v, str) else v


def _sources(v: Any) -> Any:
    return [SourceFile.coerce(x) for x in _listify(v)]


class CountySpec(_M):
    """One county, with inputs of its own that replace the region's."""

    area: str
    roads: list[str] | None = None
    population: str | None = None
    population_kind: Literal["auto", "count", "density"] | None = None
    pois: list[str] | None = None
    units: str | None = None
    facilities: list[SourceFile] | None = None
    candidates: list[SourceFile] | None = None
    standards: str | None = None
    #: 城区 seat (lon, lat, WGS-84) for the 15 km 城乡服务圈.
    seat: tuple[float, float] | None = None

    _l = field_validator("roads", "pois", mode="before")(lambda v: None if v is None else _listify(v))
    _s = field_validator("facilities", "candidates", mode="before")(lambda v: None if v is None else _sources(v))


class Within(_M):
    """Every county inside a prefecture (``629900``) or province (``610000``) code."""

    within: str = Field(pattern=r"^\d{6}$")


class RegionData(_M):
    """Inputs generated on first use: ``demo_prefecture`` is the synthetic 示例市."""

    synthetic: Literal["demo_prefecture"]
    seed: int | None = None


class RegionOutput(_M):
    """Output options shared by every county."""

    synthetic: bool = False
    year: int | None = None


class Region(_M):
    """The region file (``REGION.yaml``). Relative paths are from the file (or the generated data)."""

    name: str
    data: RegionData | None = None
    admin: str
    admin_layer: str | None = None
    counties: list[str | CountySpec] | Within
    roads: list[str] = []
    population: str | None = None
    population_kind: Literal["auto", "count", "density"] = "auto"
    pois: list[str] = []
    units: str | None = None
    census: str | None = None
    facilities: list[SourceFile] = []
    candidates: list[SourceFile] = []
    #: One preset (name or file) for every county, or ``{default: ..., <name or adcode>: ...}``.
    standards: str | dict[str, str] = "cn-default"
    buffer_m: float = Field(3000.0, ge=0)
    output: RegionOutput = RegionOutput()

    _l = field_validator("roads", "pois", mode="before")(_listify)
    _s = field_validator("facilities", "candidates", mode="before")(_sources)

    @field_validator("counties", mode="before")
    @classmethod
    def _county_items(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x) if isinstance(x, int) else x for x in v]
        if isinstance(v, dict) and isinstance(v.get("within"), int):
            return {**v, "within": str(v["within"])}
        return v


def is_region_file(path: str | Path) -> bool:
    """Whether a YAML file is a region file (a mapping with a top-level ``counties:`` key).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    bool
        False for a scenario, a missing file or unreadable YAML (``validate`` then reports it).
    """
    from coverage.scenario import read_text_any

    p = Path(path)
    if not p.is_file():
        return False
    text, err = read_text_any(p)
    if err is not None and err.severity == "error":
        return False
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "counties" in data


def read_region(path: str | Path) -> tuple[Region | None, list[Problem], Path]:
    """Parse and check a region file, collecting problems (schema errors with their YAML line).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    (Region or None, list of Problem, Path)
        The region (None when a problem is an error), the problems, and the folder relative paths
        are resolved from (the file's folder, or the generated data's for ``data: {synthetic: …}``).
    """
    from coverage.scenario import read_text_any, yaml_line

    p = Path(path).expanduser().resolve()
    if not p.is_file():
        return None, [Problem(zh=f"找不到区域文件：{p}。", en=f"region file not found: {p}.", file=str(p), code="missing_file")], p.parent
    text, enc = read_text_any(p)
    probs = [enc] if enc is not None else []
    if enc is not None and enc.severity == "error":
        return None, probs, p.parent
    try:
        root, data = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, probs + [Problem(zh=f"YAML 语法错误（第 {line} 行）：{getattr(err, 'problem', err)}。",
                                      en=f"YAML syntax error (line {line}): {getattr(err, 'problem', err)}.",
                                      file=str(p), row=line, code="yaml_syntax")], p.parent
    try:
        region = Region.model_validate(data)
    except ValidationError as err:
        for e in err.errors(include_url=False):
            loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and ("[" in x or x in ("str", "list"))))
            key = ".".join(str(x) for x in loc) or "(top)"
            line = yaml_line(root, loc)
            where_zh, where_en = (f"（第 {line} 行）", f" (line {line})") if line else ("", "")
            if e["type"] == "extra_forbidden":
                zh, en = f"未知的键 '{loc[-1]}'（拼写错误？）", f"unknown key '{loc[-1]}' (typo?)"
            elif e["type"] == "missing":
                zh, en = f"缺少必填项 '{loc[-1] if loc else ''}'", f"required key '{loc[-1] if loc else ''}' is missing"
            else:
                zh, en = f"取值无效：{e.get('input')!r}", str(e["msg"])
            probs.append(Problem(zh=f"{key}: {zh}{where_zh}", en=f"{key}: {en}{where_en}", file=str(p), row=line,
                                 field=key, code="region_schema"))
        return None, probs, p.parent
    base = p.parent
    if region.data is not None:
        from coverage import demo_region

        base = demo_region.region_data_dir(region.data.seed or demo_region.REGION_SEED)
    return region, probs, base


def load_region(path: str | Path) -> tuple[Region, Path]:
    """Like :func:`read_region` but raise the first error.

    Raises
    ------
    InputError
        The region file is missing, not YAML, or does not fit the schema.
    """
    region, probs, base = read_region(path)
    errors = [q for q in probs if q.severity == "error"]
    if region is None or errors:
        raise InputError.from_problem(errors[0])
    return region, base


@overload
def _abs(p: str, base: Path) -> str: ...
@overload
def _abs(p: None, base: Path) -> None: ...
@overload
def _abs(p: str | None, base: Path) -> str | None: ...
def _abs(p: str | None, base: Path) -> str | None:
    """A path from the region file, made absolute (``PATH:crs`` suffixes and ``osmnx`` kept)."""
    if p is None or p == "osmnx":
        return p
    from coverage.prepare import parse_file_spec

    path, crs = parse_file_spec(str(base / p) if not Path(p).is_absolute() else p)
    if not path.is_absolute():
        path = base / path
    return str(path) + (f":{crs}" if crs else "")


# ----------------------------------------------------------------------------------------------
# planning: counties, their inputs and hashes
# ----------------------------------------------------------------------------------------------


@dataclass
class CountyJob:
    """Everything one county's task needs (absolute paths; picklable for Dask)."""

    key: str
    adcode: str
    name: str
    admin: str
    admin_layer: str | None
    outline_wkb: bytes
    roads: list[str]
    population: str | None
    population_kind: str
    pois: list[str]
    units: str | None
    census: str | None
    facilities: list[dict]
    candidates: list[dict]
    standards: str
    seat: tuple[float, float] | None
    buffer_m: float
    synthetic: bool
    year: int | None
    hash: str = ""
    error: str | None = None  # set when the county could not even be planned


def _admin_layer(admin: str, layer: str | None) -> str:
    import pyogrio

    from coverage.io.admin import PREFERRED_LAYERS

    names = [str(n) for n in pyogrio.list_layers(admin)[:, 0]]
    return layer or next((n for n in PREFERRED_LAYERS if n in names), names[0])


def _counties_within(code: str, admin: str, layer: str | None) -> list[str]:
    lay = _admin_layer(admin, layer)
    df = gpd.read_file(admin, layer=lay, engine="pyogrio", ignore_geometry=True)
    ad = df["adcode"].astype(str).str.strip()
    prefix = code.rstrip("0")
    prefix = prefix + "0" * (len(prefix) % 2)  # 620800 → 6208, 610000 → 61
    sel = ad.str.startswith(prefix) & ad.str.fullmatch(r"\d{6}") & ~ad.str.endswith("00")
    return sorted(set(ad[sel]))


def _preset_for(region: Region, adcode: str, name: str, base: Path) -> str:
    s = region.standards
    if isinstance(s, str):
        choice = s
    else:
        choice = s.get(adcode) or s.get(name) or s.get("default") or "cn-default"
    from coverage.standards import list_presets

    return choice if choice in list_presets() else str(_abs(choice, base))


def _file_hash(path: str, memo: dict[str, str]) -> str:
    from coverage.prepare import parse_file_spec

    p = parse_file_spec(path)[0]
    key = str(p)
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else (
        sorted(q for q in p.parent.glob(p.stem + ".*") if q.is_file()) if p.suffix.lower() == ".shp" else [p])
    for q in files:
        h.update(q.name.encode())
        try:
            with open(q, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError:
            h.update(b"missing")
    memo[key] = h.hexdigest()
    return memo[key]


def _code_hash() -> str:
    """The package's code and presets (so a changed covplan recomputes every county)."""
    root = Path(__file__).parent
    h = hashlib.sha256(__version__.encode())
    for q in sorted(root.rglob("*")):
        if q.suffix in (".py", ".yaml", ".yml") and "__pycache__" not in q.parts:
            h.update(q.relative_to(root).as_posix().encode())
            h.update(q.read_bytes())
    return h.hexdigest()


def _folder_name(name: str, adcode: str, taken: set[str]) -> str:
    safe = "".join("_" if c in '<>:"/\\|?*' else c for c in name).strip() or adcode
    key = safe if safe not in taken else f"{safe}_{adcode}"
    taken.add(key)
    return key


def plan_jobs(region: Region, base: Path) -> list[CountyJob]:
    """One job per county: its outline, its inputs (absolute paths) and the content hash.

    A county that cannot be found in the admin file gets a job with ``error`` set (reported as
    failed; the others go on).

    Parameters
    ----------
    region : Region
    base : Path
        Folder relative paths are resolved from.

    Returns
    -------
    list of CountyJob
    """
    from coverage.io.admin import county_outline

    admin = str(_abs(region.admin, base))
    if not Path(admin).is_file():
        raise InputError(f"找不到行政区划文件：{admin}。", f"admin-boundary file not found: {admin}.", file=admin, field="admin")
    entries: list[CountySpec] = (
        [CountySpec(area=a) for a in _counties_within(region.counties.within, admin, region.admin_layer)]
        if isinstance(region.counties, Within)
        else [CountySpec(area=c) if isinstance(c, str) else c for c in region.counties]
    )
    if not entries:
        raise InputError("区域内没有县：请检查 counties。", "the region has no county: check counties.", field="counties")
    memo: dict[str, str] = {}
    code = _code_hash()
    jobs: list[CountyJob] = []
    taken: set[str] = set()
    for e in entries:
        try:
            out = county_outline(e.area, admin, layer=region.admin_layer)
            adcode, name, outline = str(out["adcode"].iloc[0]), str(out["name"].iloc[0]), out.geometry.iloc[0]
            error = None
        except InputError as err:
            adcode, name, outline, error = e.area, e.area, shapely.Point(0, 0), str(err.problem)
        job = CountyJob(
            key=_folder_name(name, adcode, taken), adcode=adcode, name=name, admin=admin, admin_layer=region.admin_layer,
            outline_wkb=shapely.to_wkb(outline),
            roads=[str(_abs(r, base)) for r in (e.roads if e.roads is not None else region.roads)],
            population=_abs(e.population or region.population, base),
            population_kind=e.population_kind or region.population_kind,
            pois=[str(_abs(r, base)) for r in (e.pois if e.pois is not None else region.pois)],
            units=_abs(e.units or region.units, base), census=_abs(region.census, base),
            facilities=[{**f.model_dump(), "path": _abs(f.path, base)} for f in (e.facilities if e.facilities is not None else region.facilities)],
            candidates=[{**f.model_dump(), "path": _abs(f.path, base)} for f in (e.candidates if e.candidates is not None else region.candidates)],
            standards=_abs(e.standards, base) if e.standards else _preset_for(region, adcode, name, base),
            seat=e.seat, buffer_m=region.buffer_m, synthetic=region.output.synthetic, year=region.output.year,
            error=error,
        )
        if error is None:
            files = [job.admin, *job.roads, *job.pois, *(x for x in (job.population, job.units, job.census) if x),
                     *(f["path"] for f in job.facilities + job.candidates)]
            if job.standards not in _builtin_presets():
                files.append(job.standards)
            ident = {k: v for k, v in asdict(job).items() if k not in ("hash", "outline_wkb", "key")}
            ident["files"] = {f: _file_hash(f, memo) for f in files}
            ident["code"] = code
            job.hash = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
        jobs.append(job)
    return jobs


def _builtin_presets() -> list[str]:
    from coverage.standards import list_presets

    return list_presets()


# ----------------------------------------------------------------------------------------------
# one county (runs on a Dask worker)
# ----------------------------------------------------------------------------------------------


def _peak_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"local:{os.getpid()}"


def _window(job: CountyJob) -> tuple[shapely.Geometry, tuple[float, float, float, float]]:
    """The county plus buffer (WGS-84 polygon) and its bounds, a little widened."""
    from coverage.crs import local_metric_crs

    outline = shapely.from_wkb(job.outline_wkb)
    c = outline.centroid
    metric = local_metric_crs(c.x, c.y)
    buf = gpd.GeoSeries([outline], crs=4326).to_crs(metric).buffer(job.buffer_m + 500).to_crs(4326).iloc[0]
    return buf, tuple(buf.bounds)


def _read_window(path: str, bounds: tuple[float, float, float, float], layer: str | None = None) -> gpd.GeoDataFrame:
    """The features of a layer inside a WGS-84 box (read with a bounding box: never the whole file)."""
    import pyogrio
    from pyproj import CRS, Transformer

    from coverage.io import dbf_encoding
    from coverage.prepare import parse_file_spec

    p, crs = parse_file_spec(path)
    info = pyogrio.read_info(p, layer=layer)
    src = CRS.from_user_input(crs or info["crs"] or 4326)
    bb = Transformer.from_crs(4326, src, always_xy=True).transform_bounds(*bounds)
    enc = dbf_encoding(p)
    gdf = gpd.read_file(p, layer=layer, bbox=tuple(bb), engine="pyogrio", **({"encoding": enc} if enc else {}))
    if gdf.crs is None or crs:
        gdf = gdf.set_crs(src, allow_override=True)
    return gdf


#: Road inputs that are read whole by ``prepare`` and cannot be combined with other road files.
_ROADS_ALONE = (".osm", ".xml", ".graphml")


def _road_lines(spec: str, window, stage: Path, i: int) -> tuple[gpd.GeoDataFrame, str | None, bool]:
    """One road file's lines inside the county window (WGS-84), with normalised OSM fields.

    A PBF is clipped by :func:`coverage.prepare.prepare_roads` (pyrosm with the window as bounding
    box); a line file is read with the window's bounding box. ``oneway`` is normalised per file
    (Geofabrik ``F/T/B`` and OSM ``yes/-1`` cannot share one column) and ``maxspeed`` parsed to km/h.

    Returns
    -------
    (GeoDataFrame, class field or None, whether the class field holds OSM classes)
    """
    from coverage.network import find_class_field, parse_maxspeed, parse_oneway
    from coverage.prepare import prepare_roads, parse_file_spec

    p = parse_file_spec(spec)[0]
    if not p.exists():
        raise InputError(f"找不到路网文件：{p}。", f"road file not found: {p}.", file=p, field="roads")
    if p.name.lower().endswith(".pbf"):
        sub = stage / f"roads{i}"
        sub.mkdir()
        try:
            _section, out, _cls = prepare_roads(str(p), sub, window, [])
        except InputError:  # the file exists: this PBF holds no way inside the county window
            return gpd.GeoDataFrame(geometry=[], crs=4326), None, False
        gdf = gpd.read_file(out, layer="roads", engine="pyogrio")
    else:
        gdf = _read_window(spec, tuple(window.bounds)).to_crs(4326)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty & gdf.intersects(window)]
    gdf = gdf.explode(index_parts=False, ignore_index=True)
    gdf = gdf[gdf.geom_type == "LineString"]
    cls, osm = find_class_field(list(gdf.columns))
    out_cols: dict[str, Any] = {}
    if cls is not None:
        out_cols["highway" if osm else cls] = gdf[cls].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    if "name" in gdf.columns:
        out_cols["name"] = gdf["name"].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    if "oneway" in gdf.columns:
        out_cols["oneway"] = pd.Series(parse_oneway(gdf["oneway"].to_numpy()), index=gdf.index).map({1: "yes", -1: "-1", 0: "no"})
    if "maxspeed" in gdf.columns:
        out_cols["maxspeed"] = parse_maxspeed(gdf["maxspeed"].to_numpy())
    lines = gpd.GeoDataFrame(out_cols, geometry=gdf.geometry.values, crs=4326, index=gdf.index)
    return lines, ("highway" if osm else cls) if cls is not None else None, osm


def _stage_roads(job: CountyJob, window, stage: Path) -> str | None:
    """One road spec for prepare: a single PBF as it is (prepare clips it); line files and several PBFs clipped per file to the county window, combined into one line layer."""
    if not job.roads:
        return None
    alone = [r for r in job.roads if r == "osmnx" or r.lower().endswith(_ROADS_ALONE)]
    if alone and len(job.roads) > 1:
        raise InputError(
            f"osmnx、.osm 和 GraphML 路网只能单独使用，不能与其他路网文件组合：{', '.join(Path(r).name for r in alone)}。",
            f"osmnx, .osm and GraphML roads must be the only road input: {', '.join(Path(r).name for r in alone)}.", field="roads")
    if len(job.roads) == 1 and (alone or job.roads[0].lower().endswith(".pbf")):
        return job.roads[0]
    parts, classes = [], {}
    for i, r in enumerate(job.roads):
        lines, cls, osm = _road_lines(r, window, stage, i)
        if cls is not None:
            classes[cls] = osm
        if len(lines):
            parts.append(lines)
    cn = [c for c, osm in classes.items() if not osm]
    if cn and (len(cn) > 1 or len(classes) > 1):
        raise InputError(
            f"各路网文件的道路等级字段不一致（{', '.join(classes)}）：OSM 等级与国标/自定义等级不能合并，请统一为同一字段。",
            f"the road files have different class fields ({', '.join(classes)}): OSM classes and Chinese/custom classes "
            "cannot be combined; give every file the same class field.", field="roads")
    if not parts:
        raise InputError(f"路网文件在本县（含缓冲区）内没有道路：{', '.join(Path(r).name for r in job.roads)}。",
                         f"the road files have no roads inside the county (plus buffer): {', '.join(Path(r).name for r in job.roads)}.",
                         field="roads")
    lines = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)
    # overlapping extracts (neighbouring provinces' PBFs hold the ways across their border) give the same line twice
    key = pd.Series(shapely.to_wkb(shapely.normalize(lines.geometry.values)), index=lines.index)
    cols = [c for c in lines.columns if c != "geometry"]
    dup = pd.concat([lines[cols].astype(str), key.rename("_wkb")], axis=1).duplicated()
    lines = lines[~dup.to_numpy()]
    out = stage / "roads.gpkg"
    lines.to_file(out, layer="roads", engine="pyogrio")
    return f"{out}:EPSG:4326"  # a declared CRS makes prepare copy the layer into the county folder


def _locate_rows(src: dict) -> tuple[pd.DataFrame | gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """The rows of a facility/candidate file and their WGS-84 lon/lat (NaN when unreadable)."""
    from coverage.crs import to_wgs84
    from coverage.io import apply_declared_crs, parse_crs, read_vector
    from coverage.io.facilities import LAT_FIELDS, LON_FIELDS, find_column, read_table

    p = Path(src["path"])
    if p.suffix.lower() in (".csv", ".txt", ".xlsx", ".xls", ".xlsm"):
        df = read_table(p, None)
        lo, la = find_column(df.columns, LON_FIELDS), find_column(df.columns, LAT_FIELDS)
        if lo is None or la is None:  # Amap-style exports: lon_gcj02 / lon_wgs84 pairs, the declared one
            key = {"gcj02": "gcj", "bd09": "bd"}.get(str(src.get("crs") or "wgs84").lower().replace("-", ""), "wgs")
            lo = next((c for c in df.columns if str(c).lower().startswith(("lon", "lng")) and key in str(c).lower()), lo)
            la = next((c for c in df.columns if str(c).lower().startswith("lat") and key in str(c).lower()), la)
        if lo is None or la is None:
            raise InputError(f"{p.name} 没有经度/纬度列，无法按位置分到各县。", f"{p.name} has no lon/lat columns: its rows cannot be assigned to counties.",
                             file=p, field="经度/纬度")
        x = pd.to_numeric(df[lo], errors="coerce").to_numpy(float)
        y = pd.to_numeric(df[la], errors="coerce").to_numpy(float)
        kind, crs = parse_crs(src.get("crs"), p)
        if kind in ("gcj02", "bd09"):
            x, y = to_wgs84(x, y, kind)
        elif crs is not None and not crs.equals(4326):
            from pyproj import Transformer

            x, y = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
        return df, np.asarray(x, float), np.asarray(y, float)
    gdf = apply_declared_crs(read_vector(p), src.get("crs"), p)
    pts = gdf.geometry.representative_point().to_crs(4326) if gdf.crs is not None else gdf.geometry.representative_point()
    return gdf, pts.x.to_numpy(float), pts.y.to_numpy(float)


def _stage_rows(job: CountyJob, sources: list[dict], window, stage: Path, what: str) -> list[tuple[str, dict]]:
    """Each source's rows of this county (inside county + buffer, or named in ``county_field``)."""
    out = []
    for i, src in enumerate(sources):
        rows, x, y = _locate_rows(src)
        inside = shapely.contains_xy(window, x, y)
        cf = src.get("county_field")
        if cf:
            if cf not in rows.columns:
                raise InputError(f"{Path(src['path']).name} 没有县字段 {cf}。", f"{Path(src['path']).name} has no county field {cf!r}.",
                                 file=src["path"], field=cf)
            named = rows[cf].astype(str).str.strip()
            inside |= named.isin([job.name, job.adcode]).to_numpy()
        if not inside.any():
            continue
        p = Path(src["path"])
        sub = rows[inside]
        if isinstance(rows, gpd.GeoDataFrame):
            dst = stage / f"{what}{i}_{p.stem}.gpkg"
            sub.to_file(dst, layer=what, engine="pyogrio")
        else:
            dst = stage / f"{what}{i}_{p.stem}.csv"
            sub.to_csv(dst, index=False, encoding="utf-8-sig")
        out.append((str(dst), src))
    return out


def _stage_layer(path: str | None, bounds, stage: Path, name: str) -> str | None:
    if path is None:
        return None
    from coverage.prepare import parse_file_spec

    p, _crs = parse_file_spec(path)
    if p.suffix.lower() not in (".gpkg", ".shp", ".geojson", ".json", ".fgb"):
        return path  # a raster: read in its window by prepare and by the run
    gdf = _read_window(path, bounds).to_crs(4326)
    dst = stage / f"{name}.gpkg"
    gdf.to_file(dst, layer=name, engine="pyogrio")
    return str(dst)


def _move_up(src: Path, dst: Path) -> None:
    for q in src.iterdir():
        if q.name != MANIFEST:
            os.replace(q, dst / q.name)
    shutil.rmtree(src)


def _figures(summary: dict, checks: pd.DataFrame) -> dict[str, Any]:
    row: dict[str, Any] = {"population": summary.get("population_total")}
    for s in SERVICE_KEYS:
        c = (summary.get("categories") or {}).get(s) or {}
        row[f"{s}_population"] = c.get("population")
        row[f"{s}_covered"] = c.get("population_covered")
        row[f"{s}_share"] = c.get("share_covered")
    urc = summary.get("urban_rural_circle") or {}
    row["circle15_covered"] = urc.get("population_covered")
    row["circle15_share"] = urc.get("share_covered")
    row["standards_passed"] = int(checks["pass"].fillna(False).astype(bool).sum()) if len(checks) else 0
    row["standards_total"] = int(len(checks))
    return row


def _county_into(job: CountyJob, tmp: Path) -> dict[str, Any]:
    """Prepare and run one county into the (temporary) county folder ``tmp``; return its record."""
    from coverage import pipeline
    from coverage.prepare import prepare

    window, bounds = _window(job)
    with tempfile.TemporaryDirectory(prefix="covplan-batch-") as st:
        stage = Path(st)
        facs = _stage_rows(job, job.facilities, window, stage, "facilities")
        cands = _stage_rows(job, job.candidates, window, stage, "candidates")
        fac_specs = [f"{p}:{s.get('crs') or ''}:{s['ftype']}" if s.get("ftype") else (f"{p}:{s['crs']}" if s.get("crs") else p)
                     for p, s in facs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepare(tmp / "_prepare", area=job.adcode, admin_path=job.admin, admin_layer=job.admin_layer,
                    units=_stage_layer(job.units, bounds, stage, "units"), roads=_stage_roads(job, window, stage),
                    pois=job.pois or None, facilities=fac_specs or None,
                    population=_stage_layer(job.population, bounds, stage, "population"),
                    population_kind=job.population_kind, census_dir=job.census, buffer_m=job.buffer_m)
        _move_up(tmp / "_prepare", tmp)
        yml_path = tmp / "scenario.yaml"
        text = yml_path.read_text(encoding="utf-8")
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        yml = yaml.safe_load(text)
        yml["standards"] = job.standards
        if job.seat is not None:
            yml["area"]["seat"] = list(job.seat)
        if cands:
            (tmp / "facilities").mkdir(exist_ok=True)
            p, s = cands[0]  # one candidates file per scenario: the first source's rows
            shutil.copy(p, tmp / "facilities" / f"candidates{Path(p).suffix}")
            yml["candidates"] = {"path": f"facilities/candidates{Path(p).suffix}", **({"crs": s["crs"]} if s.get("crs") else {})}
            if Path(p).suffix == ".gpkg":
                yml["candidates"]["layer"] = "candidates"
        yml["output"] = {**yml.get("output", {}), "synthetic": job.synthetic, **({"year": job.year} if job.year else {})}
        yml_path.write_text(header + "# covplan batch: standards, candidates and output set from the region file\n"
                            + yaml.safe_dump(yml, allow_unicode=True, sort_keys=False), encoding="utf-8")
    inputs = pipeline.load_inputs(yml_path)
    model = pipeline.build_model(inputs)
    result = pipeline.evaluate_model(model)
    pipeline.write_outputs(result, tmp / "_run")
    _move_up(tmp / "_run", tmp)
    gaps = result.gaps.copy()
    if "county" not in gaps.columns or gaps["county"].isna().all() or (gaps["county"].astype(str) == "").all():
        gaps["county"] = job.name
    gaps = gaps.assign(county=gaps["county"].replace({"": job.name}).fillna(job.name))
    return {"figures": _figures(result.summary, pipeline.standards_checks(result)), "gap_rows": len(gaps),
            "gaps": json.loads(gaps.drop(columns=[c for c in gaps.columns if c == "geometry"]).to_json(orient="records", force_ascii=False))}


def run_county(job: CountyJob, out: str, overwrite: bool = False) -> dict[str, Any]:
    """Prepare and evaluate one county into ``out/<county>/`` (atomically). Never raises.

    Parameters
    ----------
    job : CountyJob
    out : str
        The batch output folder.
    overwrite : bool
        Write into a county folder that holds other files (only covplan's files are replaced).

    Returns
    -------
    dict
        ``key, name, adcode, status`` (``ok`` | ``failed``), ``message`` (bilingual, for a failure),
        ``figures``, ``gaps`` (records), ``seconds``, ``peak_mb`` (this worker process's peak
        resident memory so far) and ``worker``.
    """
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"key": job.key, "name": job.name, "adcode": job.adcode, "hash": job.hash, "covplan": __version__}
    if job.error is not None:
        return {**rec, "status": "failed", "message": job.error, "seconds": 0.0, "peak_mb": _peak_mb(), "worker": _worker_name()}
    try:
        with atomic_output_dir(Path(out) / job.key, overwrite=overwrite) as tmp:
            rec.update(_county_into(job, tmp))
            rec.update(status="ok", message="", seconds=round(time.perf_counter() - t0, 2), peak_mb=_peak_mb(), worker=_worker_name())
            (tmp / BATCH_FILE).write_text(json.dumps(rec, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        return rec
    except InputError as err:
        msg = str(err.problem)
    except Exception as err:  # noqa: BLE001 - one county's failure must not stop the others
        msg = f"{type(err).__name__}: {err} | {traceback.format_exc(limit=3).splitlines()[-3].strip()}"
    return {**rec, "status": "failed", "message": msg, "seconds": round(time.perf_counter() - t0, 2),
            "peak_mb": _peak_mb(), "worker": _worker_name(), "gaps": [], "figures": {}}


def _finished(job: CountyJob, out: Path) -> dict[str, Any] | None:
    """The record of an earlier run of the same county with the same hash, if its folder is intact."""
    folder = out / job.key
    try:
        rec = json.loads((folder / BATCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("hash") != job.hash or rec.get("status") != "ok" or not job.hash or foreign_entries(folder):
        return None
    return {**rec, "status": "skipped"}


# ----------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What a batch run did."""

    out_dir: Path
    table: pd.DataFrame
    records: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict]:
        """Records of the counties that failed."""
        return [r for r in self.records if r["status"] == "failed"]

    @property
    def exit_code(self) -> int:
        """0: every county done; 2: some failed (region files written for the others); 1: all failed."""
        if not self.failed:
            return 0
        return 1 if len(self.failed) == len(self.records) else 2

    def peak_by_worker(self) -> dict[str, float]:
        """Peak resident memory (MB) per worker process, over the counties it computed."""
        out: dict[str, float] = {}
        for r in self.records:
            if r["status"] != "skipped" and r.get("worker"):
                out[r["worker"]] = max(out.get(r["worker"], 0.0), float(r.get("peak_mb") or 0))
        return out

    def describe(self) -> str:
        """A few lines for the terminal."""
        n = len(self.records)
        done = sum(r["status"] == "ok" for r in self.records)
        skipped = sum(r["status"] == "skipped" for r in self.records)
        lines = [f"{n} 个县 / counties: {done} 计算 / computed, {skipped} 未变跳过 / unchanged (skipped), "
                 f"{len(self.failed)} 失败 / failed ({self.seconds:.1f} s)"]
        for r in self.failed:
            lines.append(f"  ✗ {r['name']} ({r['adcode']}): {r['message']}")
        peaks = self.peak_by_worker()
        if peaks:
            lines.append("  内存峰值 / peak memory per worker: " + ", ".join(f"{w} {mb:,.0f} MB" for w, mb in sorted(peaks.items())))
        return "\n".join(lines)


def check_batch_out(out: str | Path, *, overwrite: bool = False, protect: list[Path] | None = None) -> Path:
    """The rules of :func:`coverage._atomic.check_out_dir` for a batch folder, where the county folders of an earlier batch (each with its :data:`BATCH_FILE` and unchanged files) are covplan's.

    Raises
    ------
    InputError
        ``out`` may not be written; or it holds files covplan did not write and not ``overwrite``.
    """
    res = check_out_dir(out, overwrite=True, protect=protect or [])
    if overwrite or not res.is_dir():
        return res
    other = [n for n, _why in foreign_entries(res)
             if not ((res / n).is_dir() and (res / n / BATCH_FILE).is_file() and not foreign_entries(res / n))]
    if other:
        shown = ", ".join(other[:5]) + (f" … (+{len(other) - 5})" if len(other) > 5 else "")
        raise InputError(
            f"输出目录 {out} 里有 covplan 不能替换的文件：{shown}。为免误删，未写入任何文件。请换一个新的或空的目录，或加 --overwrite（只替换 covplan 自己的文件）。",
            f"the output folder {out} holds files covplan may not replace: {shown}. Nothing was written. Choose a new or empty "
            "folder, or add --overwrite (only covplan's own files are replaced).", file=out, field="--out")
    return res


def _execute(jobs: list[CountyJob], out: Path, workers: int | None, scheduler: str | None, overwrite: bool,
             on_done: Callable[[dict], None]) -> None:
    if not jobs:
        return
    if workers == 0 and scheduler is None:
        for job in jobs:
            on_done(run_county(job, str(out), overwrite))
        return
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, env=env,
                               silence_logs=40)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as err:
            raise InputError(f"无法连接 Dask 调度器 {scheduler}：{err}", f"cannot connect to the Dask scheduler {scheduler}: {err}",
                             field="--scheduler") from None
    try:
        futures = {client.submit(run_county, job, str(out), overwrite, key=f"county-{job.adcode}-{job.hash[:12]}", pure=False): job
                   for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                rec = fut.result()
            except Exception as err:  # noqa: BLE001 - a worker died (memory, signal): report the county
                rec = {"key": job.key, "name": job.name, "adcode": job.adcode, "status": "failed", "gaps": [], "figures": {},
                       "message": f"计算节点失败 / the worker failed: {type(err).__name__}: {err}", "seconds": None, "peak_mb": None, "worker": None}
            on_done(rec)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_batch(region_path: str | Path, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
              overwrite: bool = False, console: Console | None = None) -> BatchResult:
    """``covplan batch``: prepare and evaluate every county of a region, then write the region files.

    Parameters
    ----------
    region_path : str or Path
        The region file.
    out : str or Path
        Output folder (``region_summary.csv|xlsx``, ``gaps.xlsx``, ``map.html``, ``<county>/``).
    workers : int, optional
        Worker processes of the local cluster (default: the number of cores; 0: run in this
        process, no Dask). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``).
    overwrite : bool
        Write into folders that hold other files (only covplan's files are replaced).
    console : rich.console.Console, optional
        Where the progress bar goes (stderr by default).

    Returns
    -------
    BatchResult

    Raises
    ------
    InputError
        A bad region file or output folder (nothing is computed then).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.perf_counter()
    region, base = load_region(region_path)
    out = Path(out)
    check_batch_out(out, overwrite=overwrite, protect=[Path(region_path)])
    jobs = plan_jobs(region, base)
    records: dict[str, dict] = {}
    todo = []
    for job in jobs:
        finished = _finished(job, out)
        if finished is not None:
            records[job.key] = finished
        else:
            todo.append(job)
    console = console or Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task(f"{region.name}: 县 / counties", total=len(jobs), completed=len(records))

        def done(rec: dict) -> None:
            records[rec["key"]] = rec
            mark = "✓" if rec["status"] == "ok" else "✗"
            prog.console.print(f"  {mark} {rec['name']}" + (f": {rec['message']}" if rec["status"] == "failed" else
                                                             f" ({rec['seconds']:.1f} s, {rec['peak_mb']:,.0f} MB)"),
                               highlight=False, soft_wrap=True)
            prog.advance(task)

        _execute(todo, out, workers, scheduler, overwrite, done)
    ordered = [records[j.key] for j in jobs]
    table = region_table(ordered)
    files = _write_region(region, jobs, ordered, table, out)
    return BatchResult(out_dir=out, table=table, records=ordered, files=files, seconds=round(time.perf_counter() - t0, 2))


# ----------------------------------------------------------------------------------------------
# region outputs
# ----------------------------------------------------------------------------------------------


def region_table(records: list[dict]) -> pd.DataFrame:
    """One row per county (columns of :data:`SUMMARY_ZH`); ``rank`` 1 = the highest mean coverage share over the four services, among the counties with figures."""
    rows = []
    for r in records:
        rows.append({"county": r["name"], "adcode": r["adcode"], "status": r["status"], **(r.get("figures") or {}),
                     "gap_rows": r.get("gap_rows"), "seconds": r.get("seconds"), "peak_mb": r.get("peak_mb"),
                     "worker": r.get("worker"), "message": r.get("message") or ""})
    df = pd.DataFrame(rows)
    for c in SUMMARY_ZH:
        if c not in df.columns:
            df[c] = None
    shares = df[[f"{s}_share" for s in SERVICE_KEYS]].apply(pd.to_numeric, errors="coerce")
    score = shares.mean(axis=1, skipna=True)
    df["rank"] = score.rank(ascending=False, method="min").astype("Int64")
    return df[list(SUMMARY_ZH)]


def _region_summary_dict(name: str, table: pd.DataFrame, records: list[dict]) -> dict:
    """A ``summary.json``-shaped dict for the region, counties as units (for the workbook)."""
    ok = table[table["status"] != "failed"]
    cats = {}
    for s in SERVICE_KEYS:
        pop = pd.to_numeric(ok[f"{s}_population"], errors="coerce")
        cov = pd.to_numeric(ok[f"{s}_covered"], errors="coerce")
        if pop.notna().any():
            cats[s] = {"population": float(pop.sum()), "population_covered": float(cov.sum()),
                       "share_covered": float(cov.sum() / pop.sum()) if pop.sum() > 0 else None,
                       "by_unit": [{"code": r.adcode, "name": r.county, "population": p, "covered": c,
                                    "share": (c / p if p else None)}
                                   for r, p, c in zip(ok.itertuples(), pop.fillna(0), cov.fillna(0))]}
    warn = [{"zh": f"{r['name']} 计算失败：{r['message']}", "en": f"{r['name']} failed: {r['message']}", "file": None, "field": None}
            for r in records if r["status"] == "failed"]
    return {"scenario": name, "population_total": float(pd.to_numeric(ok["population"], errors="coerce").sum()),
            "categories": cats, "warnings": warn}


def _write_gaps(path: Path, name: str, table: pd.DataFrame, records: list[dict]) -> None:
    from openpyxl import load_workbook
    from openpyxl.styles import Font

    from coverage import pipeline
    from coverage.report import excel

    from coverage.evaluate import select_bank

    frames = [pd.DataFrame(r.get("gaps") or []) for r in records if r["status"] != "failed"]
    frames = [f for f in frames if len(f)]
    merged = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    # the region's 项目库 is the union of each county's own 项目库 (each county submits its list)
    chosen = np.concatenate([select_bank(f) for f in frames]) if frames else None
    excel.write_gaps_xlsx(path, merged, _region_summary_dict(name, table, records), chosen=chosen)
    wb = load_workbook(path)
    used = set(wb.sheetnames)
    for r in records:
        if r["status"] == "failed":
            continue
        bank = excel.project_bank_frame(pd.DataFrame(r.get("gaps") or []))
        title = r["name"][:31] if r["name"][:31] not in used else f"{r['name'][:24]}_{r['adcode']}"
        used.add(title)
        ws = wb.create_sheet(title)
        ws.append(list(bank.columns))
        for c in ws[1]:
            c.font = Font(bold=True)
        for row in bank.itertuples(index=False):
            ws.append([None if (v is pd.NA or (isinstance(v, float) and np.isnan(v))) else (v.item() if hasattr(v, "item") else v) for v in row])
        ws.freeze_panes = "A2"
    wb.save(path)
    excel.stamp_date(path, pipeline.run_date())  # the run's date, not the clock's: same inputs, same file


def _write_map(path: Path, name: str, synthetic: bool, jobs: list[CountyJob], table: pd.DataFrame) -> None:
    import html

    from coverage.report.map import write_map

    shapes = [shapely.from_wkb(j.outline_wkb) for j in jobs]
    units = gpd.GeoDataFrame({"code": table["adcode"].to_numpy(), "name": table["county"].to_numpy(), "kind": "县(区)",
                              **{f"share_{s}": pd.to_numeric(table[f"{s}_share"], errors="coerce").to_numpy() for s in SERVICE_KEYS}},
                             geometry=shapes, crs=4326)
    units = units[[not g.is_empty and g.geom_type != "Point" for g in shapes]]
    write_map(path, units=units, title=f"{name} 分县覆盖率 / coverage by county", synthetic=synthetic)
    links = "".join(
        f'<div><a href="{quote(j.key)}/map.html">{html.escape(j.name)}</a>'
        + ("" if r.status != "failed" else " ✗") + "</div>"
        for j, r in zip(jobs, table.itertuples()))
    panel = ('<div class="cov-legend" style="bottom:auto;top:60px;left:10px;right:auto;max-height:50%;overflow:auto">'
             f'<div class="cov-legend-title">各县地图 / county maps</div>{links}</div>')
    text = path.read_text(encoding="utf-8")
    i = text.rfind("</body>")
    path.write_text(text[:i] + panel + "\n" + text[i:], encoding="utf-8", newline="\n")


def _write_region(region: Region, jobs: list[CountyJob], records: list[dict], table: pd.DataFrame, out: Path) -> list[str]:
    """``region_summary.csv|xlsx``, ``gaps.xlsx`` and ``map.html`` into ``out`` (atomically)."""
    # the folder was checked by check_batch_out (county folders are ours): replace only our files
    with atomic_output_dir(out, overwrite=True) as tmp:
        note = "（合成示例数据）" if region.output.synthetic else ""
        table.to_csv(tmp / "region_summary.csv", index=False, encoding="utf-8-sig")
        zh = table.rename(columns=SUMMARY_ZH)
        with pd.ExcelWriter(tmp / "region_summary.xlsx", engine="openpyxl") as xw:
            zh.to_excel(xw, sheet_name="分县汇总", index=False)
            info = pd.DataFrame({"项目": ["区域", "说明"], "值": [region.name + note,
                                 "排名按四类服务覆盖率的平均值；失败的县见“说明”列 / rank by the mean share of the four services"]})
            info.to_excel(xw, sheet_name="说明", index=False)
        _write_gaps(tmp / "gaps.xlsx", region.name + note, table, records)
        _write_map(tmp / "map.html", region.name + note, region.output.synthetic, jobs, table)
        files = sorted(p.name for p in tmp.iterdir())
    return files


# ----------------------------------------------------------------------------------------------
# validate
# ----------------------------------------------------------------------------------------------


def validate_region(path: str | Path) -> list[Problem]:
    """Problems of a region file: its schema, the files it names, and counties not in the admin file.

    The counties themselves are checked when they are prepared (``covplan batch`` reports each).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Problem
    """
    region, probs, base = read_region(path)
    if region is None:
        return probs
    try:
        jobs = plan_jobs(region, base)
    except InputError as err:
        return [*probs, err.problem]
    from coverage.prepare import parse_file_spec

    seen: set[str] = set()
    for j in jobs:
        if j.error:
            probs.append(Problem(zh=f"counties: {j.name}：{j.error}", en=f"counties: {j.name}: {j.error}", file=str(path),
                                 field="counties", code="unknown_county"))
        paths = [*j.roads, *j.pois, *(x for x in (j.population, j.units, j.census) if x), *(f["path"] for f in j.facilities + j.candidates)]
        if j.standards not in _builtin_presets():
            paths.append(j.standards)
        for s in paths:
            p = parse_file_spec(s)[0]
            if s != "osmnx" and str(p) not in seen and not p.exists():
                seen.add(str(p))
                probs.append(Problem(zh=f"找不到文件：{p}。", en=f"file not found: {p}.", file=str(p), code="missing_file"))
    return probs


def validate_file(path: str | Path) -> list[Problem]:
    """``covplan validate``: a region file (top-level ``counties:``) or a scenario.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    list of Problem
    """
    if is_region_file(path):
        return validate_region(path)
    from coverage import pipeline

    return pipeline.validate(path)
