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

from coverage.errors import InputError, Problem

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
    #: 城区 polygon (path + layer); ``auto`` (the default) derives it from the population grid
    #: (:mod:`coverage.urban`, Degree of Urbanisation); ``none``: no 城区 (only 街道 units are urban).
    urban: Literal["auto", "none"] | Layer = Field("auto", union_mode="left_to_right", description="城区 polygon, auto or none")
    #: 城区 centre for the 15 km circle; without it, derived from the population grid (``seat_derived``).
    seat: tuple[float, float] | None = Field(None, description="城区 centre [lon, lat], WGS-84")
    adcode: str | None = Field(None, description="6-digit county code (行政区划代码): age shares from its 2020 census row")

    @field_validator("urban", mode="before")
    @classmethod
    def _urban(cls, v: Any) -> Any:
        if v is None:
            return "auto"
        if v is False:  # YAML reads `urban: no` / `off` as false
            return "none"
        if isinstance(v, str) and v.strip().lower() in ("auto", "none", "off", "no"):
            return "auto" if v.strip().lower() == "auto" else "none"
        return v

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
    #: Side of the analysis grid's cells in metres (default 100 m): demand always lives on this
    #: grid, in the area's metric CRS. A finer or similar raster is summed / resampled onto it
    #: (sum-preserving); a coarser one (cells > 1.5 × this) is spread onto it keeping every source
    #: cell's total: over ``spread_over`` when given, else in proportion to road length.
    resolution: float | None = Field(None, gt=0)
    #: Dasymetric spreading of a coarse raster (e.g. WorldPop 1 km) onto building footprints or
    #: residential land use, e.g. ``{path: gis_osm_buildings_a_free_1.shp}`` or
    #: ``{path: gis_osm_landuse_a_free_1.shp, where: "fclass = 'residential'"}``.
    spread_over: Layer | None = None
    #: Spread in proportion to footprint ``area`` or building ``count``.
    spread_weight: Literal["area", "count"] = "area"
    #: The 2020 census age table (``tudigong_ages.csv``) used, with ``area.adcode`` (or the units'
    #: 12-digit codes), for age groups the scenario does not give; without it national shares.
    census: RelPath | None = None

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

    walk_kmh: float | None = Field(default=None, gt=0)
    ebike_kmh: float | None = Field(default=None, gt=0)
    drive_kmh: dict[str, float] | None = None


class Network(_Model):
    """``network:`` — road file, per-service mode overrides, speeds."""

    roads: Layer
    class_field: str | None = None
    snap_m: float = Field(
        0.0, ge=0.0, le=100.0,
        description="join a dangling line end to another line's vertex within this many metres (lines drawn a few metres short of each other); 0 = off",
    )
    #: ``{value: class}`` for road-class values (e.g. ``430200: residential``); see
    #: :func:`coverage.network.road_class`.
    class_map: dict[str | int, str] | None = None
    mode: dict[str, Literal["walk", "drive", "ebike"]] = Field(default_factory=dict)
    speeds: Speeds = Field(default_factory=lambda: Speeds())


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


_FORMATS: tuple[Literal["summary", "csv", "xlsx", "gpkg", "map", "report"], ...] = (
    "summary", "csv", "xlsx", "gpkg", "map", "report")


class Output(_Model):
    """``output:`` — where and what to write."""

    dir: RelPath | None = None
    formats: list[Literal["summary", "csv", "xlsx", "gpkg", "map", "report"]] = Field(
        default_factory=lambda: list(_FORMATS)
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


def yaml_line(root: yaml.Node | None, loc: tuple) -> int | None:
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
        line = yaml_line(root, loc)
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
        probs.append(Problem(zh=f"{key}: {zh}{where}", en=f"{key}: {en}{where_en}", file=str(file), row=line, field=key, code="schema"))
    return probs


def read_text_any(p: Path, field: str | None = None) -> tuple[str, Problem | None]:
    """Text of a YAML file saved as UTF-8 (with or without BOM) or GBK/GB18030.

    Windows editors in China often save as GBK (ANSI). Such a file is read, with a warning saying so;
    a file that is neither (an Excel workbook, another encoding) is refused with an error naming it.
    The decoding is :func:`coverage.io.facilities.decode_text`, as for CSV tables.

    Returns
    -------
    (str, Problem or None)
        The text, and a warning (GBK read) or an error (undecodable; the text is then ``""``).
    """
    from coverage.io.facilities import decode_text

    try:
        text, encoding = decode_text(p.read_bytes(), p)
    except InputError as err:
        e = err.problem
        if e.code == "bad_encoding":  # the table advice (save from Excel) does not fit a YAML file
            return "", Problem(
                zh=f"{p.name} 第 {e.row} 行含无法识别的字符：既不是 UTF-8 也不是 GBK 编码。请用记事本或 VS Code 另存为 UTF-8。",
                en=f"{p.name} line {e.row} holds bytes that are neither UTF-8 nor GBK. Save the file as UTF-8 (Notepad: Save as → Encoding UTF-8).",
                file=str(p), row=e.row, field=field, code=e.code,
            )
        return "", Problem(zh=e.zh, en=e.en, file=str(p), row=e.row, field=field, code=e.code)
    if encoding != "gb18030":
        return text, None
    return text, Problem(
        zh=f"{p.name} 以 GBK（GB18030）编码保存，已按 GBK 读取。建议另存为 UTF-8，以免在其他软件中出现乱码。",
        en=f"{p.name} is saved as GBK (GB18030) and was read as such. Saving it as UTF-8 avoids garbled text in other tools.",
        file=str(p), field=field, severity="warning", code="gbk_text",
    )


def parse_scenario(path: str | Path) -> tuple[Scenario | None, list[Problem], Path]:
    """Parse a scenario YAML (with ``extends:``) and check its schema, collecting problems.

    Parameters
    ----------
    path : str or Path
        The scenario file.

    Returns
    -------
    (Scenario or None, list of Problem, Path)
        The scenario (``None`` when any problem is an error), every problem found (errors and
        warnings, e.g. a GBK-encoded file), and the resolved path.
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        return None, [Problem(
            zh=f"找不到情景文件：{p}。请检查路径。", en=f"scenario file not found: {p}. Check the path.", file=str(p),
            code="missing_file",
        )], p
    text, enc = read_text_any(p)
    notes = [enc] if enc is not None else []
    if enc is not None and enc.severity == "error":
        return None, notes, p
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, notes + [Problem(
            zh=f"YAML 语法错误（第 {line} 行）：{getattr(err, 'problem', err)}。常见原因：缩进不一致、冒号后缺空格、中文冒号“：”。",
            en=f"YAML syntax error (line {line}): {getattr(err, 'problem', err)}. Common causes: uneven indentation, no space after a colon, a full-width colon.",
            file=str(p), row=line, code="yaml_syntax",
        )], p
    if not isinstance(data, dict):
        return None, notes + [Problem(
            zh="情景文件应为键值对（如 name:、area:、population:）。",
            en="the scenario file must be a mapping (name:, area:, population: …).",
            file=str(p), code="yaml_not_mapping",
        )], p
    parent = data.pop("extends", None)
    if parent is not None:
        # a plan scenario: everything of the parent (paths already resolved), keys here override it
        base, probs, _ = parse_scenario(p.parent / str(parent))
        notes += [x for x in probs if x.severity != "error"]
        if base is None:
            return None, notes + [Problem(
                zh=f"extends: {parent}：{x.zh}", en=f"extends: {parent}: {x.en}",
                file=x.file, row=x.row, field=x.field, code=x.code,
            ) for x in probs if x.severity == "error"], p
        merged = base.model_dump(mode="json", exclude={"source"})
        data = _deep_merge(merged, data)
    try:
        sc = Scenario.model_validate(data, context={"base": p.parent})
    except ValidationError as err:
        return None, notes + _problems_from_validation(err, root, p), p
    sc.source = p
    return sc, notes, p


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
    sc, probs, p = parse_scenario(path)
    probs = [x for x in probs if x.severity == "error"]
    if probs:
        first = probs[0]
        more_zh = f"（另有 {len(probs) - 1} 个问题，运行 covplan validate 查看全部）" if len(probs) > 1 else ""
        more_en = f" ({len(probs) - 1} more; run covplan validate to see all)" if len(probs) > 1 else ""
        raise InputError(first.zh + more_zh, first.en + more_en, file=first.file, row=first.row, field=first.field,
                         code=first.code)
    assert sc is not None
    return sc


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
    "parse_scenario",
    "yaml_line",
]
