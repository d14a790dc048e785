"""Scenario files: load and validate the YAML that describes one evaluation (DESIGN.md §5).

:func:`load_scenario` parses and checks the schema (pydantic, unknown keys refused) and resolves
every path relative to the YAML file; it raises :class:`coverage.errors.InputError` naming the key
path and the YAML line. :func:`validate` goes further and opens every input, collecting **every**
problem (missing files, empty layers, unreadable rows, coordinates outside the area, a ``crs:``
that the GCJ-02 offset test contradicts, unknown facility types in ``changes.add``, a population
raster that misses the area …) as :class:`coverage.errors.Problem` objects; ``covplan validate``
prints them and exits 1 when any is an error.

Example::

    name: 示例县 现状评估
    area:
      boundary: {path: ../data/boundaries/county.gpkg, layer: county}
      units: ../data/boundaries/townships.gpkg
      villages: ../data/boundaries/villages.gpkg
      urban: {path: ../data/boundaries/county.gpkg, layer: chengqu}
      seat: [106.70, 35.54]
    population:
      total: ../data/population/pop_100m.tif
      groups: {age60plus: ../data/population/pop_age60plus_100m.tif, age0_2: {share: 0.025}}
    network: {roads: ../data/roads/roads.gpkg}
    facilities:
      - {path: ../data/facilities/facilities.csv, crs: wgs84}
      - {path: ../data/facilities/elderly_fitness_amap.xlsx, crs: gcj02}
    candidates: ../data/facilities/candidates.csv
    standards: cn-default
    changes:
      add: [{id: N1, name: 城东养老服务中心, category: elderly, ftype: regional_elderly_center,
             lon: 106.71, lat: 35.55, capacity: 60}]
      remove: [F0123]
"""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from coverage.categories import FTYPES, SERVICES
from coverage.errors import InputError, Problem
from coverage.settings import AGE_GROUPS

log = logging.getLogger(__name__)


def _resolve(v: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base") if info.context else None
    v = Path(v).expanduser()
    if base is not None and not v.is_absolute():
        v = (Path(base) / v).resolve()
    return v


#: A path resolved relative to the scenario file.
RelPath = Annotated[Path, AfterValidator(_resolve)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _path_shorthand(v: Any) -> Any:
    return {"path": v} if isinstance(v, (str, Path)) else v


class Layer(_Model):
    """A vector layer: ``path`` (GPKG/SHP/GeoJSON), optional ``layer``, ``fields`` and ``crs``."""

    path: RelPath
    layer: str | int | None = None
    fields: dict[str, str] | None = None
    crs: str | int | None = None
    #: OGR SQL attribute filter, e.g. ``"adcode = '820000'"`` (one county out of a province file).
    where: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        return _path_shorthand(v)


class Area(_Model):
    """``area:`` — county outline, 乡镇/街道 units, 行政村, 城区 polygon and the 城区 centre."""

    boundary: Layer
    units: Layer | None = None
    villages: Layer | None = None
    urban: Layer | None = Field(None, description="城区 polygon (path + layer)")
    seat: tuple[float, float] | None = Field(None, description="城区 centre [lon, lat], WGS-84")

    @field_validator("seat")
    @classmethod
    def _seat(cls, v):
        if v is not None and not (-180 <= v[0] <= 180 and -90 <= v[1] <= 90):
            raise ValueError(f"seat must be [lon, lat] in degrees, got {list(v)}")
        return v


class Share(_Model):
    """An age group derived from the total: ``{share: 0.025}``."""

    share: float = Field(ge=0.0, le=1.0)


class Population(_Model):
    """``population:`` — total raster, age groups (raster or share), kind and basis."""

    total: RelPath
    groups: dict[str, RelPath | Share] = Field(default_factory=dict)
    kind: Literal["auto", "count", "density"] = "auto"
    basis: Literal["常住", "户籍"] = "常住"
    #: Output cell size in metres. With ``spread_over`` it is the fine grid the people are spread
    #: onto (default 100 m) and the raster is read on its own cells; else the raster is resampled
    #: to it (default: the raster's own cell size).
    resolution: float | None = Field(None, gt=0)
    #: Dasymetric spreading of a coarse raster (e.g. WorldPop 1 km) onto building footprints or
    #: residential land use, e.g. ``{path: gis_osm_buildings_a_free_1.shp}`` or
    #: ``{path: gis_osm_landuse_a_free_1.shp, where: "fclass = 'residential'"}``.
    spread_over: Layer | None = None
    #: Spread in proportion to footprint ``area`` or building ``count``.
    spread_weight: Literal["area", "count"] = "area"

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, v):
        if isinstance(v, dict):
            return {k: (x if not isinstance(x, (int, float)) or isinstance(x, bool) else {"share": x}) for k, x in v.items()}
        return v

    @field_validator("basis", mode="before")
    @classmethod
    def _basis(cls, v):
        return {"resident": "常住", "registered": "户籍", "hukou": "户籍"}.get(v, v)


class Speeds(_Model):
    """Speed overrides in km/h."""

    walk_kmh: float | None = Field(None, gt=0)
    ebike_kmh: float | None = Field(None, gt=0)
    drive_kmh: dict[str, float] | None = None


class Network(_Model):
    """``network:`` — road file, per-service mode overrides, speeds."""

    roads: Layer
    class_field: str | None = None
    #: ``{value: class}`` for road-class values (e.g. ``430200: residential``); see
    #: :func:`coverage.network.road_class`.
    class_map: dict[str | int, str] | None = None
    mode: dict[str, Literal["walk", "drive", "ebike"]] = Field(default_factory=dict)
    speeds: Speeds = Field(default_factory=Speeds)


class FacilitySource(_Model):
    """One facility file: ``path``, ``crs`` (wgs84|gcj02|bd09|EPSG), ``layer``, ``columns``, ``sheet``."""

    path: RelPath
    crs: str | int | None = None
    layer: str | int | None = None
    columns: dict[str, str] | None = None
    sheet: str | int | None = None
    ftype: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        return _path_shorthand(v)


class AddFacility(_Model):
    """A planned facility in ``changes.add``."""

    id: str
    name: str
    category: str
    ftype: str | None = None
    lon: float
    lat: float
    crs: str | int = "wgs84"
    capacity: float | None = None
    tier: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v):
        return str(v)


class Upgrade(_Model):
    """A change to an existing facility in ``changes.upgrade``."""

    id: str
    capacity: float | None = None
    ftype: str | None = None
    tier: str | None = None
    name: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v):
        return str(v)


class Changes(_Model):
    """``changes:`` — facilities added, removed (by id) or upgraded."""

    add: list[AddFacility] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    upgrade: list[Upgrade] = Field(default_factory=list)

    @field_validator("remove", mode="before")
    @classmethod
    def _remove(cls, v):
        return [str(x) for x in v] if isinstance(v, list) else v


class Output(_Model):
    """``output:`` — where and what to write."""

    dir: RelPath | None = None
    formats: list[Literal["summary", "csv", "xlsx", "gpkg", "map", "report"]] = Field(
        default_factory=lambda: ["summary", "csv", "xlsx", "gpkg", "map", "report"]
    )
    year: int | None = None
    county: str | None = None
    #: The data are synthetic (the demo): every map, report and workbook then says 合成示例数据.
    synthetic: bool = False


class Scenario(_Model):
    """A whole scenario file (DESIGN.md §5). Paths are absolute after loading.

    A plan scenario may start with ``extends: baseline.yaml`` (relative to the plan file): it takes
    everything from the baseline and overrides what it sets itself (mappings merge key by key; lists
    such as ``changes.add`` replace).
    """

    name: str
    area: Area
    population: Population
    network: Network | None = None
    facilities: list[FacilitySource] = Field(default_factory=list)
    candidates: FacilitySource | None = None
    standards: str = "cn-default"
    changes: Changes = Field(default_factory=Changes)
    output: Output = Field(default_factory=Output)
    #: The YAML file the scenario came from (set by :func:`load_scenario`).
    source: Path | None = Field(None, exclude=True)

    @field_validator("facilities", mode="before")
    @classmethod
    def _facilities(cls, v):
        return [v] if isinstance(v, (str, dict)) else v

    @field_validator("standards", mode="before")
    @classmethod
    def _standards(cls, v, info: ValidationInfo):
        s = str(v)
        if s.endswith((".yaml", ".yml")) or "/" in s or "\\" in s:
            base = (info.context or {}).get("base")
            p = Path(s).expanduser()
            if base is not None and not p.is_absolute():
                p = (Path(base) / p).resolve()
            return str(p)
        return s


# ----------------------------------------------------------------------------------------------
# loading with line numbers
# ----------------------------------------------------------------------------------------------


def _node_line(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at ``loc`` (deepest existing ancestor)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if str(k.value) == str(part):
                    nxt = (k, v)
                    break
            if nxt is None:
                return line
            line = nxt[0].start_mark.line + 1
            node = nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _model_for(loc: tuple) -> type[BaseModel] | None:
    """The model class at ``loc`` inside :class:`Scenario` (for listing allowed keys)."""
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return model if isinstance(model, type) and issubclass(model, BaseModel) else None
        ann = model.model_fields[part].annotation
        model = _first_model(ann)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _first_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _first_model(a)
        if m is not None:
            return m
    return None


_TYPE_ZH = {
    "missing": "缺少必填项",
    "extra_forbidden": "未知的键（拼写错误？）",
    "literal_error": "取值不在允许范围内",
    "float_parsing": "应为数字",
    "int_parsing": "应为整数",
    "string_type": "应为文字",
    "dict_type": "应为键值对（映射）",
    "list_type": "应为列表",
    "tuple_type": "应为 [经度, 纬度] 两个数",
    "too_long": "项数过多",
    "too_short": "项数不足",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "greater_than": "数值应大于下限",
    "value_error": "取值无效",
    "model_type": "应为键值对（映射）",
}


def _clean_loc(loc: tuple) -> tuple:
    # drop pydantic's union/function tags such as "function-after[...]" or "Share"
    out = []
    for part in loc:
        if isinstance(part, str) and (part[:1].isupper() or "[" in part or part in ("str", "int", "float", "path", "lax-or-strict")):
            continue
        out.append(part)
    return tuple(out)


def _problems_from_validation(err: ValidationError, root: yaml.Node | None, file: Path) -> list[Problem]:
    probs: list[Problem] = []
    seen: set[tuple] = set()
    # typos first: an unknown key usually explains a "missing" one next to it
    errors = sorted(err.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    for e in errors:
        loc = _clean_loc(tuple(e["loc"]))
        key = ".".join(str(x) for x in loc) or "(top)"
        if (key, e["type"]) in seen:
            continue
        seen.add((key, e["type"]))
        line = _node_line(root, loc)
        zh = _TYPE_ZH.get(e["type"], "取值无效")
        en = e["msg"]
        if e["type"] == "extra_forbidden":
            parent = _model_for(loc[:-1])
            allowed = ", ".join(k for k in parent.model_fields if k != "source") if parent else ""
            zh = f"未知的键 '{loc[-1]}'（拼写错误？）。此处可用的键：{allowed}"
            en = f"unknown key '{loc[-1]}' (typo?); keys allowed here: {allowed}"
        elif e["type"] == "missing":
            zh = f"缺少必填项 '{loc[-1] if loc else ''}'"
            en = f"required key '{loc[-1] if loc else ''}' is missing"
        elif e["type"] == "literal_error":
            zh = f"取值 {e.get('input')!r} 不在允许范围内：{e.get('ctx', {}).get('expected', '')}"
        else:
            zh = f"{zh}：{e.get('input')!r}" if not isinstance(e.get("input"), dict) else zh
        where = f"（第 {line} 行）" if line else ""
        where_en = f" (line {line})" if line else ""
        probs.append(Problem(zh=f"{key}: {zh}{where}", en=f"{key}: {en}{where_en}", file=str(file), row=line, field=key))
    return probs


def _parse(path: str | Path) -> tuple[Scenario | None, list[Problem], Path]:
    p = Path(path).expanduser().resolve()
    if not p.exists():
        return None, [Problem(
            zh=f"找不到情景文件：{p}。", en=f"scenario file not found: {p}.", file=str(p)
        )], p
    text = p.read_text(encoding="utf-8-sig")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, [Problem(
            zh=f"YAML 语法错误（第 {line} 行）：{getattr(err, 'problem', err)}。常见原因：缩进不一致、冒号后缺空格、中文冒号“：”。",
            en=f"YAML syntax error (line {line}): {getattr(err, 'problem', err)}. Common causes: uneven indentation, no space after a colon, a full-width colon.",
            file=str(p), row=line,
        )], p
    if not isinstance(data, dict):
        return None, [Problem(
            zh="情景文件应为键值对（如 name:、area:、population:）。",
            en="the scenario file must be a mapping (name:, area:, population: …).",
            file=str(p),
        )], p
    parent = data.pop("extends", None)
    if parent is not None:
        # a plan scenario: everything of the parent (paths already resolved), keys here override it
        base, probs, _ = _parse(p.parent / str(parent))
        if probs:
            return None, [Problem(zh=f"extends: {parent}：{x.zh}", en=f"extends: {parent}: {x.en}",
                                  file=x.file, row=x.row, field=x.field) for x in probs], p
        merged = base.model_dump(mode="json", exclude={"source"})
        data = _deep_merge(merged, data)
    try:
        sc = Scenario.model_validate(data, context={"base": p.parent})
    except ValidationError as err:
        return None, _problems_from_validation(err, root, p), p
    sc.source = p
    return sc, [], p


def _deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario YAML, check its schema and resolve paths relative to the file.

    Parameters
    ----------
    path : str or Path
        The scenario file.

    Returns
    -------
    Scenario

    Raises
    ------
    InputError
        File missing, YAML syntax error or schema error (bilingual, naming the key path and the
        YAML line; when there are several errors the first is raised and the count is given).
    """
    sc, probs, p = _parse(path)
    if probs:
        first = probs[0]
        more_zh = f"（另有 {len(probs) - 1} 个问题，运行 covplan validate 查看全部）" if len(probs) > 1 else ""
        more_en = f" ({len(probs) - 1} more; run covplan validate to see all)" if len(probs) > 1 else ""
        raise InputError(first.zh + more_zh, first.en + more_en, file=first.file, row=first.row, field=first.field)
    assert sc is not None
    return sc


# ----------------------------------------------------------------------------------------------
# validate: open everything, collect every problem
# ----------------------------------------------------------------------------------------------


def _missing(path: Path, field: str, file: Path) -> Problem:
    return Problem(
        zh=f"找不到文件：{path}（{field}）。请检查路径；相对路径以情景文件所在目录为准。",
        en=f"file not found: {path} ({field}). Check the path; relative paths are resolved from the scenario's folder.",
        file=str(file),
        field=field,
    )


def _as_problem(err: InputError, field: str | None = None) -> Problem:
    p = err.problem
    return Problem(zh=p.zh, en=p.en, file=p.file, row=p.row, field=p.field or field, severity=p.severity)


def _road_points(layer: Layer, probs: list[Problem], file: Path, max_points: int = 300_000) -> np.ndarray | None:
    """Lon/lat vertices of a road line layer (GPKG/SHP/GeoJSON), or None for other formats."""
    import geopandas as gpd
    import shapely

    from coverage.io import VECTOR_SUFFIXES, apply_declared_crs, read_vector

    if layer.path.suffix.lower() not in VECTOR_SUFFIXES:
        return None
    try:
        g = read_vector(layer.path, layer=layer.layer, what_zh="道路", what_en="road")
        g = apply_declared_crs(g, layer.crs, layer.path)
    except InputError as err:
        probs.append(_as_problem(err, "network.roads"))
        return None
    if g.empty:
        probs.append(Problem(zh="道路图层是空的（0 条道路）。", en="the road layer is empty (0 roads).", file=str(layer.path), field="network.roads"))
        return None
    g = g[g.geom_type.isin(["LineString", "MultiLineString"])]
    if g.empty:
        return None
    g = gpd.GeoSeries(g.geometry.values, crs=g.crs).to_crs(4326)
    xy = shapely.get_coordinates(np.asarray(g.values))
    if len(xy) > max_points:
        xy = xy[np.linspace(0, len(xy) - 1, max_points).astype(int)]
    return xy


def _facility_area_checks(gdf, area_wgs, src: Path, probs: list[Problem], far_m: float = 20_000.0) -> None:
    """Rows outside the area: warning when near, error when further than ``far_m``."""
    import geopandas as gpd

    if gdf is None or gdf.empty or area_wgs is None:
        return
    metric = area_wgs.to_crs(gdf.crs)
    geom = metric.union_all()
    d = gpd.GeoSeries(gdf.geometry.values, crs=gdf.crs).distance(geom).to_numpy()
    rows = gdf["source"].str.rsplit(":", n=1).str[-1].astype(int).to_numpy()
    for mask, sev, zh, en in (
        (d > far_m, "error", f"距评估范围超过 {far_m / 1000:.0f} 公里，坐标或坐标系可能有误", f"more than {far_m / 1000:.0f} km outside the area; the coordinates or the crs are probably wrong"),
        ((d > 0) & (d <= far_m), "warning", "位于评估范围之外（邻县设施可保留）", "outside the area (keep them if they serve residents across the border)"),
    ):
        if mask.any():
            r = rows[mask]
            shown = ", ".join(map(str, r[:10])) + (f" … (+{len(r) - 10})" if len(r) > 10 else "")
            probs.append(Problem(
                zh=f"{len(r)} 个设施{zh}：第 {shown} 行（如 {gdf['name'].to_numpy()[mask][0]}）。",
                en=f"{len(r)} facilit{'y is' if len(r) == 1 else 'ies are'} {en}: rows {shown} (e.g. {gdf['name'].to_numpy()[mask][0]}).",
                file=str(src), row=int(r[0]), field="经度/纬度 lon/lat", severity=sev,
            ))


def validate(path: str | Path) -> list[Problem]:
    """Check a scenario and all its inputs; return every problem found (empty list = all fine).

    Checks, without stopping at the first problem:

    * YAML syntax and schema (unknown keys, wrong types), with the key path and line;
    * every referenced file exists; layers open and are not empty; unit fields are usable;
    * the population raster overlaps the area (and has no negative cells);
    * facility and candidate files: lon/lat columns, non-numeric/empty/swapped/out-of-range
      coordinates (with row numbers), unknown ``crs``, facilities outside the area (warning;
      error beyond 20 km), type names that map to no service (warning, with the names);
    * the ``crs:`` declaration of each facility file against road vertices
      (:func:`coverage.io.facilities.check_declared_crs`, when the roads are GPKG/SHP/GeoJSON lines);
    * ``changes``: unknown ``category``/``ftype``, a ``ftype`` of another service, coordinates
      outside the area, ``remove``/``upgrade`` ids that no facility has;
    * the standards preset exists and loads; population group names are known age groups
      (warning otherwise); the 城区 seat lies inside the boundary.

    Parameters
    ----------
    path : str or Path
        Scenario YAML.

    Returns
    -------
    list of Problem
        ``severity == "error"`` problems make ``covplan validate`` exit 1.
    """
    import geopandas as gpd

    from coverage.crs import to_wgs84
    from coverage.io import boundaries as ib
    from coverage.io import facilities as ifac
    from coverage.io import population as ipop
    from coverage.io import parse_crs

    sc, probs, yml = _parse(path)
    if sc is None:
        return probs

    # ---- files exist -------------------------------------------------------------------------
    def exists(p: Path | None, field: str) -> bool:
        if p is None:
            return False
        if not Path(p).exists():
            probs.append(_missing(Path(p), field, yml))
            return False
        return True

    # ---- area ------------------------------------------------------------------------------------
    area = None
    if exists(sc.area.boundary.path, "area.boundary"):
        try:
            area = ib.read_boundary(sc.area.boundary.path, layer=sc.area.boundary.layer, crs=sc.area.boundary.crs, where=sc.area.boundary.where)
        except InputError as err:
            probs.append(_as_problem(err, "area.boundary"))
    target = area.crs if area is not None else None
    area_wgs = area.to_crs(4326) if area is not None else None
    units = None
    if sc.area.units is not None and exists(sc.area.units.path, "area.units"):
        try:
            units = ib.read_units(sc.area.units.path, layer=sc.area.units.layer, fields=sc.area.units.fields, target_crs=target, crs=sc.area.units.crs, where=sc.area.units.where)
            other = units[units["kind"] == "其他"]
            if len(other):
                probs.append(Problem(
                    zh=f"{len(other)} 个单元无法判断是街道、镇还是乡（如 {other['name'].iloc[0]}），按“其他”处理。可在图层中加 kind 字段。",
                    en=f"{len(other)} unit(s) could not be classed as 街道/镇/乡 (e.g. {other['name'].iloc[0]}); they count as 其他. Add a kind field to the layer.",
                    file=str(sc.area.units.path), field="kind", severity="warning",
                ))
        except InputError as err:
            probs.append(_as_problem(err, "area.units"))
    if sc.area.villages is not None and exists(sc.area.villages.path, "area.villages"):
        try:
            ib.read_villages(sc.area.villages.path, layer=sc.area.villages.layer, fields=sc.area.villages.fields, units=units, target_crs=target, crs=sc.area.villages.crs, where=sc.area.villages.where)
        except InputError as err:
            probs.append(_as_problem(err, "area.villages"))
    if sc.area.urban is not None and exists(sc.area.urban.path, "area.urban"):
        try:
            ib.read_boundary(sc.area.urban.path, layer=sc.area.urban.layer, target_crs=target, crs=sc.area.urban.crs, where=sc.area.urban.where)
        except InputError as err:
            probs.append(_as_problem(err, "area.urban"))
    if sc.area.seat is not None and area_wgs is not None:
        from shapely import Point

        d = gpd.GeoSeries([Point(*sc.area.seat)], crs=4326).to_crs(target).distance(area.union_all()).iloc[0]
        if d > 0:
            probs.append(Problem(
                zh=f"城区中心 seat {list(sc.area.seat)} 在县域边界之外（相距 {d / 1000:.1f} 公里）。请检查经纬度顺序（先经度后纬度）。",
                en=f"the 城区 seat {list(sc.area.seat)} lies {d / 1000:.1f} km outside the boundary; check the order [lon, lat].",
                file=str(yml), field="area.seat",
            ))

    # ---- population --------------------------------------------------------------------------
    for g in sc.population.groups:
        if g not in AGE_GROUPS:
            probs.append(Problem(
                zh=f"年龄组名称 {g} 不是标准名称（{', '.join(AGE_GROUPS)}），标准中按年龄组的指标将找不到它。",
                en=f"age group {g} is not one of {', '.join(AGE_GROUPS)}; age-group rules of the standards will not find it.",
                file=str(yml), field=f"population.groups.{g}", severity="warning",
            ))
    pop_ok = exists(sc.population.total, "population.total")
    group_specs: dict[str, Any] = {}
    for g, spec in sc.population.groups.items():
        if isinstance(spec, Share):
            group_specs[g] = {"share": spec.share}
        elif exists(spec, f"population.groups.{g}"):
            group_specs[g] = spec
    spread = sc.population.spread_over
    if spread is not None and exists(spread.path, "population.spread_over"):
        from coverage.io import apply_declared_crs, read_vector

        try:
            w = apply_declared_crs(
                read_vector(spread.path, layer=spread.layer, what_zh="建筑/居住用地", what_en="buildings / residential land-use", where=spread.where),
                spread.crs, spread.path,
            )
            if w.empty:
                probs.append(Problem(
                    zh="用于分配人口的图层是空的（0 个要素）；人口将在每个粗网格内均匀分布。",
                    en="the layer to spread population over is empty (0 features); people stay uniform inside each coarse cell.",
                    file=str(spread.path), field="population.spread_over", severity="warning",
                ))
        except InputError as err:
            probs.append(_as_problem(err, "population.spread_over"))
    if pop_ok:
        try:
            grid = ipop.read_population(
                sc.population.total, group_specs, area=area,
                target_crs=ipop.source_crs(sc.population.total) if spread is not None else target,
                kind=sc.population.kind, resolution=None if spread is not None else sc.population.resolution,
            )
            if float(grid.total.sum()) <= 0:
                probs.append(Problem(zh="评估范围内人口为 0。", en="the population inside the area is 0.", file=str(sc.population.total), field="population.total"))
        except InputError as err:
            probs.append(_as_problem(err, "population.total"))

    # ---- roads ---------------------------------------------------------------------------------
    road_xy = None
    if sc.network is not None and exists(sc.network.roads.path, "network.roads"):
        road_xy = _road_points(sc.network.roads, probs, yml)

    # ---- facilities ----------------------------------------------------------------------------
    fids: set[str] = set()
    for i, src in enumerate(sc.facilities):
        if not exists(src.path, f"facilities[{i}].path"):
            continue
        gdf, fprobs = ifac.inspect_facilities(src.path, crs=src.crs, target_crs=target, layer=src.layer, columns=src.columns, sheet=src.sheet, ftype=src.ftype)
        probs.extend(fprobs)
        if gdf is None:
            continue
        if gdf.empty:
            probs.append(Problem(
                zh="文件中没有可用的设施（0 行可归入四类服务）。", en="no usable facilities in the file (0 rows map to a service).",
                file=str(src.path), field=f"facilities[{i}]",
            ))
            continue
        fids.update(gdf["fid"].astype(str))
        _facility_area_checks(gdf, area_wgs, src.path, probs)
        if road_xy is not None:
            declared = str(src.crs) if src.crs is not None else "wgs84"
            prob = ifac.check_declared_crs(gdf, road_xy, declared=declared, file=src.path)
            if prob is not None:
                probs.append(prob)
    if sc.candidates is not None and exists(sc.candidates.path, "candidates"):
        c = sc.candidates
        cg, cprobs = ifac.inspect_candidates(c.path, crs=c.crs, target_crs=target, layer=c.layer, columns=c.columns, sheet=c.sheet)
        probs.extend(cprobs)
        if cg is not None:
            if cg.empty:
                probs.append(Problem(zh="备选用地文件没有可用的行。", en="the candidates file has no usable rows.", file=str(c.path), field="candidates"))
            else:
                _facility_area_checks(cg.assign(source=[f"{c.path.name}:{k + 1}" for k in range(len(cg))]), area_wgs, c.path, probs)

    # ---- changes -------------------------------------------------------------------------------
    for i, a in enumerate(sc.changes.add):
        field = f"changes.add[{i}]"
        cat = a.category
        if cat in FTYPES and a.ftype is None:
            cat = FTYPES[cat].service
        if cat not in SERVICES:
            probs.append(Problem(
                zh=f"新增设施 {a.id}（{a.name}）的服务类别 category: {a.category} 未知。可用：{', '.join(SERVICES)}（或设施类型代码，如 day_care）。",
                en=f"added facility {a.id} ({a.name}) has unknown category {a.category!r}; use one of {', '.join(SERVICES)} (or an ftype key such as day_care).",
                file=str(yml), row=_node_line(yaml.compose(yml.read_text(encoding='utf-8-sig')), ("changes", "add", i, "category")), field=f"{field}.category",
            ))
        if a.ftype is not None:
            if a.ftype not in FTYPES:
                probs.append(Problem(
                    zh=f"新增设施 {a.id} 的设施类型 ftype: {a.ftype} 未知。可用：{', '.join(FTYPES)}。",
                    en=f"added facility {a.id} has unknown ftype {a.ftype!r}; valid keys: {', '.join(FTYPES)}.",
                    file=str(yml), row=_node_line(yaml.compose(yml.read_text(encoding='utf-8-sig')), ("changes", "add", i, "ftype")), field=f"{field}.ftype",
                ))
            elif cat in SERVICES and FTYPES[a.ftype].service != cat:
                probs.append(Problem(
                    zh=f"新增设施 {a.id} 的 ftype: {a.ftype} 属于 {FTYPES[a.ftype].service}，与 category: {a.category} 不符。",
                    en=f"added facility {a.id}: ftype {a.ftype} belongs to {FTYPES[a.ftype].service}, not to category {a.category}.",
                    file=str(yml), field=f"{field}.ftype",
                ))
        try:
            kind, _c = parse_crs(a.crs, yml)
            if kind in ("wgs84", "gcj02", "bd09") and area_wgs is not None:
                from shapely import Point

                lon, lat = to_wgs84([a.lon], [a.lat], kind)
                d = gpd.GeoSeries([Point(lon[0], lat[0])], crs=4326).to_crs(target).distance(area.union_all()).iloc[0]
                if d > 0:
                    probs.append(Problem(
                        zh=f"新增设施 {a.id}（{a.name}）的坐标 ({a.lon}, {a.lat}) 在评估范围之外（相距 {d / 1000:.1f} 公里）。",
                        en=f"added facility {a.id} ({a.name}) at ({a.lon}, {a.lat}) lies {d / 1000:.1f} km outside the area.",
                        file=str(yml), field=f"{field}.lon/lat", severity="error" if d > 20_000 else "warning",
                    ))
        except InputError as err:
            probs.append(Problem(zh=err.problem.zh, en=err.problem.en, file=str(yml), field=f"{field}.crs"))
    if fids or sc.facilities:
        for i, rid in enumerate(sc.changes.remove):
            if rid not in fids:
                probs.append(Problem(
                    zh=f"changes.remove 中的编号 {rid} 不在任何设施文件中。",
                    en=f"id {rid} in changes.remove is not in any facility file.",
                    file=str(yml), field=f"changes.remove[{i}]",
                ))
        for i, u in enumerate(sc.changes.upgrade):
            if u.id not in fids:
                probs.append(Problem(
                    zh=f"changes.upgrade 中的编号 {u.id} 不在任何设施文件中。",
                    en=f"id {u.id} in changes.upgrade is not in any facility file.",
                    file=str(yml), field=f"changes.upgrade[{i}].id",
                ))
            if u.ftype is not None and u.ftype not in FTYPES:
                probs.append(Problem(
                    zh=f"changes.upgrade 中 {u.id} 的 ftype: {u.ftype} 未知。", en=f"unknown ftype {u.ftype!r} for {u.id} in changes.upgrade.",
                    file=str(yml), field=f"changes.upgrade[{i}].ftype",
                ))

    # ---- standards -----------------------------------------------------------------------------
    probs.extend(_check_standards(sc.standards, yml))
    return probs


def _check_standards(value: str, yml: Path) -> list[Problem]:
    looks_path = value.endswith((".yaml", ".yml")) or "/" in value or "\\" in value
    if looks_path and not Path(value).exists():
        return [_missing(Path(value), "standards", yml)]
    try:
        from coverage.standards import load_preset  # the standards reader (inputs stage)
    except ImportError:  # pragma: no cover - module not available
        return []
    try:
        load_preset(value)
    except InputError as err:
        return [_as_problem(err, "standards")]
    except Exception as err:  # noqa: BLE001 - report, do not crash validate
        return [Problem(zh=f"无法读取标准 {value}：{err}", en=f"cannot load standards {value}: {err}", file=str(yml), field="standards")]
    return []


__all__ = [
    "AddFacility",
    "Area",
    "Changes",
    "FacilitySource",
    "Layer",
    "Network",
    "Output",
    "Population",
    "Scenario",
    "Share",
    "Upgrade",
    "load_scenario",
    "validate",
]
