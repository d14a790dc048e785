"""One reading path: every command that reads a scenario reads it here, with the same checks.

``covplan validate`` lists what :func:`read_inputs` finds; ``run``, ``site``, ``compare`` (and the
meeting server and the batch) call :func:`load_inputs`, which reads the same way and stops on the
same errors, with the same bilingual messages, before any output is written. So an input that
``validate`` rejects is never turned into figures. Warnings (an assumed age structure, facilities
outside the area, a suspected GCJ-02 file, duplicated facilities, a repaired boundary …) travel
with the inputs (:attr:`Inputs.problems`): the commands print them and record them in
``summary.json`` (``warnings``), the report and the workbook.

Checks, in reading order (each names the file, row and field, and says what to do):

* the scenario YAML: syntax, schema, ``extends:``, UTF-8 or GBK text;
* area: boundary, 乡镇/街道 units and 行政村 read; invalid geometries reported (repaired with
  ``make_valid``, which keeps every part, never silently); the 城区 seat inside the boundary;
* population: the raster overlaps the area and holds data there; each age group ≤ the total cell by
  cell and the groups' sum ≤ the total (a group raster that is really the total is refused); age
  groups the standards need but the scenario lacks come from the county's 2020 census row or from
  national shares, with a warning;
* 城区 and seat: without ``area.urban`` (``auto``) or ``area.seat`` they are derived from the
  population grid (:mod:`coverage.urban`, Degree of Urbanisation), with a warning (``urban_derived``,
  ``seat_derived``; ``urban_not_found``, ``seat_not_found`` when the grid has no town);
* roads: the file and layer open, hold lines (not points or polygons); a line layer is read here
  once (:func:`coverage.io.roads.read_road_lines`) and handed to the graph build
  (:attr:`Inputs.road_lines`);
* facilities and candidates: every row's coordinates (non-numeric, empty, swapped, out of range),
  facilities far outside the area (error beyond 20 km, warning nearer), the ``crs:`` declaration
  against the road vertices (GCJ-02 suspected), type names that map to no service, the same
  facility listed twice (same type and name within ``settings.DUPLICATE_FACILITY_M``: merged once);
* ``changes``: unknown category/ftype, a site outside the area (and whether lon/lat are swapped),
  ``remove``/``upgrade`` ids that no facility has;
* the standards preset loads.

Checks that need the road graph (people without road access, people and facilities on parts of the
network cut off from the rest, road ends that almost touch) are made where the graph is built
(:func:`coverage.pipeline.build_model`) and added to the same list.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from coverage import categories, settings, standards, urban
from coverage.crs import local_metric_crs, to_wgs84
from coverage.errors import InputError, Problem
from coverage.io import boundaries, parse_crs
from coverage.io import facilities as fac_io
from coverage.io import population
from coverage.io.roads import RoadLines, RoadLinesOnce
from coverage.scenario import Layer, Scenario, Share, parse_scenario

log = logging.getLogger(__name__)

#: Code of the single unit used when a scenario has no ``area.units`` (the whole area). It must not
#: be empty: ``unit_code == ""`` marks the county-total rows of :mod:`coverage.evaluate`.
WHOLE_AREA_CODE: str = "000000000000"

#: Facilities further than this from the area are an error (a wrong coordinate or ``crs:``).
FAR_OUTSIDE_M: float = 20_000.0


@dataclass
class Inputs:
    """Everything read from a scenario's files, in the area's metric CRS.

    Attributes
    ----------
    scenario : Scenario
    crs : pyproj.CRS
        The area's metric CRS (CGCS2000 Gauss–Krüger zone in China, UTM elsewhere).
    boundary, units : GeoDataFrame
        County outline; 乡镇/街道 (one whole-area unit when the scenario has none).
    villages, urban_area : GeoDataFrame or None
        ``urban_area``: the 城区 polygon given, or derived from the grid (``urban_derived``).
    grid : coverage.io.population.PopulationGrid
        Total and age groups on one grid (groups the scenario lacks are filled, see ``problems``).
    facilities : GeoDataFrame
        After ``changes`` and after merging duplicated rows.
    candidates : GeoDataFrame or None
    preset : coverage.standards.Preset
    seat : (lon, lat) or None
        Given, or derived from the grid (``seat_derived``); ``None``: the 15 km circle has no data.
    urban_derived, seat_derived : bool
        The 城区 / the seat were derived by :mod:`coverage.urban` (outputs mark them 推算).
    road_lines : coverage.io.roads.RoadLinesOnce
        The road line layer as read for its checks, handed once to the graph build
        (:func:`coverage.model.build_model`), so a run reads the road file once; empty for PBF, OSM
        XML and GraphML files and once taken.
    synthetic : bool
        Every output is labelled 合成示例数据.
    problems : list of Problem
        Warnings found while reading (errors stop :func:`load_inputs`).
    """

    scenario: Scenario
    crs: CRS
    boundary: gpd.GeoDataFrame
    units: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame | None
    urban_area: gpd.GeoDataFrame | None
    grid: population.PopulationGrid
    facilities: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame | None
    preset: standards.Preset
    seat: tuple[float, float] | None
    synthetic: bool = False
    problems: list[Problem] = field(default_factory=list)
    urban_derived: bool = False
    seat_derived: bool = False
    road_lines: RoadLinesOnce = field(default_factory=lambda: RoadLinesOnce(None))

    @property
    def warnings(self) -> list[Problem]:
        """The warnings among :attr:`problems`."""
        return [p for p in self.problems if p.severity != "error"]


# ----------------------------------------------------------------------------------------------
# collecting problems
# ----------------------------------------------------------------------------------------------


class _Reader:
    """Collects problems; ``guard`` turns a reader's exception into a problem and goes on."""

    def __init__(self, yml: Path, problems: list[Problem]) -> None:
        self.yml = yml
        self.problems = list(problems)

    @property
    def n_errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def exists(self, path: Path | None, field_: str) -> bool:
        if path is None:
            return False
        if not Path(path).exists():
            self.add(Problem(
                zh=f"找不到文件：{path}（{field_}）。请检查路径；相对路径以情景文件所在目录为准。",
                en=f"file not found: {path} ({field_}). Check the path; relative paths are resolved from the scenario's folder.",
                file=str(self.yml), field=field_, code="missing_file",
            ))
            return False
        return True

    @contextlib.contextmanager
    def guard(self, field_: str, file: Path | None = None) -> Iterator[None]:
        try:
            yield
        except InputError as err:
            p = err.problem
            self.add(Problem(zh=p.zh, en=p.en, file=p.file, row=p.row, field=p.field or field_,
                             severity=p.severity, code=p.code or "unreadable"))
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - a library's error on a user's file is an input problem
            log.debug("reading %s failed", field_, exc_info=True)
            name = Path(file).name if file is not None else field_
            self.add(Problem(
                zh=f"无法读取 {name}（{field_}）：{type(err).__name__}: {err}。请检查文件是否完整、格式与图层名是否正确。",
                en=f"cannot read {name} ({field_}): {type(err).__name__}: {err}. Check that the file is complete and that the format and layer name are right.",
                file=str(file) if file is not None else str(self.yml), field=field_, code="unreadable",
            ))


def _rows_text(rows: np.ndarray | list[int], limit: int = 10) -> str:
    rows = list(rows)
    text = ", ".join(map(str, rows[:limit]))
    return text + (f" … (+{len(rows) - limit})" if len(rows) > limit else "")


# ----------------------------------------------------------------------------------------------
# area
# ----------------------------------------------------------------------------------------------


def _layer_args(layer: Layer) -> dict[str, Any]:
    return {"path": layer.path, "layer": layer.layer, "crs": layer.crs, "where": layer.where}


def _geometry_problems(gdf: gpd.GeoDataFrame, layer: Layer, field_: str, r: _Reader) -> None:
    """Report the geometries the reader repaired (``attrs["repaired"]``), with where and how much."""
    fixed = gdf.attrs.get("repaired") or []
    if not fixed:
        return
    rows = [f["row"] for f in fixed]
    worst = max(fixed, key=lambda f: abs(f["area_change"]))
    r.add(Problem(
        zh=(f"{len(fixed)} 个面要素的几何无效（第 {_rows_text(rows)} 个要素，如：{worst['reason']}），已用 make_valid 修复"
            f"（保留全部部分，面积变化最大 {worst['area_change']:+.1%}）。请在 GIS 中检查并修正（QGIS“修复几何图形”/ArcGIS“修复几何”）。"),
        en=(f"{len(fixed)} polygon(s) have invalid geometry (features {_rows_text(rows)}; e.g. {worst['reason']}); repaired with make_valid, "
            f"which keeps every part (largest area change {worst['area_change']:+.1%}). Check and fix them in GIS (QGIS Fix geometries / ArcGIS Repair Geometry)."),
        file=str(layer.path), row=int(rows[0]), field=field_, severity="warning", code="invalid_geometry",
    ))


def _whole_area_unit(boundary: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        # a real code: an empty one is the county-total marker of evaluate (the cells would count
        # as outside every unit and the unit row would be empty)
        {"code": [WHOLE_AREA_CODE], "name": [name], "kind": ["其他"]}, geometry=list(boundary.geometry), crs=boundary.crs
    )


@dataclass
class _Area:
    boundary: gpd.GeoDataFrame | None = None
    crs: CRS | None = None
    units: gpd.GeoDataFrame | None = None
    villages: gpd.GeoDataFrame | None = None
    urban: gpd.GeoDataFrame | None = None
    urban_derived: bool = False
    seat: tuple[float, float] | None = None
    seat_derived: bool = False


def _read_area(sc: Scenario, r: _Reader) -> _Area:
    out = _Area()
    area = sc.area
    if r.exists(area.boundary.path, "area.boundary"):
        with r.guard("area.boundary", area.boundary.path):
            outline = boundaries.read_boundary(**_layer_args(area.boundary), target_crs="EPSG:4326")
            _geometry_problems(outline, area.boundary, "area.boundary", r)
            c = outline.geometry.union_all().centroid
            out.crs = local_metric_crs(c.x, c.y)
            out.boundary = outline.to_crs(out.crs)
    if out.boundary is None:
        return out
    crs = out.crs
    if area.units is not None and r.exists(area.units.path, "area.units"):
        with r.guard("area.units", area.units.path):
            out.units = boundaries.read_units(**_layer_args(area.units), fields=area.units.fields, target_crs=crs)
            _geometry_problems(out.units, area.units, "area.units", r)
            other = out.units[out.units["kind"] == "其他"]
            if len(other):
                r.add(Problem(
                    zh=f"{len(other)} 个单元无法判断是街道、镇还是乡（如 {other['name'].iloc[0]}），按“其他”处理。可在图层中加 kind 字段。",
                    en=f"{len(other)} unit(s) could not be classed as 街道/镇/乡 (e.g. {other['name'].iloc[0]}); they count as 其他. Add a kind field to the layer.",
                    file=str(area.units.path), field="kind", severity="warning", code="unit_kind_unknown",
                ))
    elif area.units is None:
        out.units = _whole_area_unit(out.boundary, sc.output.county or sc.name)
    if area.villages is not None and r.exists(area.villages.path, "area.villages"):
        with r.guard("area.villages", area.villages.path):
            out.villages = boundaries.read_villages(
                **_layer_args(area.villages), fields=area.villages.fields, units=out.units, target_crs=crs
            )
    out.seat = (float(area.seat[0]), float(area.seat[1])) if area.seat is not None else None
    if isinstance(area.urban, Layer) and r.exists(area.urban.path, "area.urban"):
        with r.guard("area.urban", area.urban.path):
            out.urban = boundaries.read_boundary(**_layer_args(area.urban), target_crs=crs)
            _geometry_problems(out.urban, area.urban, "area.urban", r)
    if area.seat is not None:
        d = _outside_m([area.seat[0]], [area.seat[1]], out.boundary)[0]
        if d > 0:
            r.add(Problem(
                zh=f"城区中心 seat {list(area.seat)} 在县域边界之外（相距 {d / 1000:.1f} 公里）。请检查经纬度顺序（先经度后纬度）。",
                en=f"the 城区 seat {list(area.seat)} lies {d / 1000:.1f} km outside the boundary; check the order [lon, lat].",
                file=str(r.yml), field="area.seat", code="seat_outside",
            ))
    return out


def _outside_m(lon: Any, lat: Any, boundary: gpd.GeoDataFrame) -> np.ndarray:
    """Distance (m) from WGS-84 points to the area (0 inside); ``inf`` for invalid coordinates."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    out = np.full(len(lon), np.inf)
    if ok.any():
        pts = gpd.GeoSeries(gpd.points_from_xy(lon[ok], lat[ok]), crs=4326).to_crs(boundary.crs)
        out[ok] = pts.distance(boundary.geometry.union_all()).to_numpy()
    return out


# ----------------------------------------------------------------------------------------------
# population
# ----------------------------------------------------------------------------------------------


def _needed_groups(preset: standards.Preset | None) -> set[str]:
    """Age groups that the preset's rules count (``pop`` is the total)."""
    if preset is None:
        return set(settings.AGE_GROUPS)
    groups = set()
    for rule in [*preset.active_circles(), *preset.active_presence(), *preset.active_provision()]:
        g = getattr(rule, "group", None)
        if g and g in settings.AGE_GROUPS:
            groups.add(g)
    urc = preset.urban_rural()
    if urc is not None and getattr(urc, "group", None) in settings.AGE_GROUPS:
        groups.add(urc.group)
    return groups


def county_adcode(sc: Scenario, units: gpd.GeoDataFrame | None) -> str | None:
    """The 6-digit county code: ``area.adcode``, else the common prefix of the units' 12-digit codes."""
    if sc.area.adcode:
        return str(sc.area.adcode)[:6]
    if units is None or "code" not in units:
        return None
    codes = {str(c)[:6] for c in units["code"] if len(str(c)) >= 9 and str(c).isdigit()}
    codes.discard("000000")
    return codes.pop() if len(codes) == 1 else None


def _assumed_shares(sc: Scenario, units: gpd.GeoDataFrame | None, missing: list[str], r: _Reader) -> dict[str, dict]:
    """Shares for the groups the scenario lacks: the county's census row, else national shares."""
    from coverage.io import census

    adcode = county_adcode(sc, units)
    shares, source_zh, source_en = None, "", ""
    if adcode and sc.population.census is not None and r.exists(sc.population.census, "population.census"):
        path = sc.population.census
        path = path / "tudigong_ages.csv" if path.is_dir() else path
        try:
            shares = census.age_shares(adcode, path)
            source_zh = f"第七次人口普查该县（{adcode}）的年龄结构"
            source_en = f"the county's ({adcode}) 2020 census age structure"
        except InputError as err:
            r.add(Problem(zh=err.problem.zh, en=err.problem.en, file=err.problem.file, row=err.problem.row,
                          field="population.census", severity="warning", code="census_unavailable"))
    if shares is None:
        shares = dict(settings.NATIONAL_AGE_SHARES)
        source_zh = "全国平均年龄结构（第七次人口普查，按县人口加权）"
        source_en = "national age shares (2020 census, population-weighted over counties)"
        if not adcode:
            source_zh += "；未知县代码，可在 area.adcode 填写6位代码并给出 population.census"
            source_en += "; county code unknown: set area.adcode and population.census for the county's own shares"
    labels = "、".join(settings.AGE_GROUPS[g] for g in missing)
    r.add(Problem(
        zh=f"情景未给出年龄组 {labels}：按{source_zh}推算（{', '.join(f'{g} {shares[g]:.2%}' for g in missing)}）。相关覆盖率为推算值；有分年龄人口栅格时请在 population.groups 中给出。",
        en=f"the scenario gives no population for {', '.join(missing)}: assumed from {source_en} ({', '.join(f'{g} {shares[g]:.2%}' for g in missing)}). Figures for these groups are estimates; give age rasters in population.groups when you have them.",
        file=str(r.yml), field="population.groups", severity="warning", code="assumed_age_shares",
    ))
    return {g: {"share": float(shares[g])} for g in missing}


def _check_groups(grid: population.PopulationGrid, sc: Scenario, r: _Reader) -> None:
    """Each group ≤ total cell by cell; the groups' sum ≤ total (the groups do not overlap)."""
    tol = settings.GROUP_TOLERANCE
    total = grid.total
    t_sum = float(total.sum())
    if t_sum <= 0:
        return
    g_sum = 0.0
    for name, arr in grid.groups.items():
        spec = sc.population.groups.get(name)
        where = str(spec) if spec is not None and not isinstance(spec, Share) else str(r.yml)
        s = float(arr.sum())
        g_sum += s
        if s > settings.MAX_GROUP_SHARE * t_sum:
            r.add(Problem(
                zh=f"年龄组 {name} 的人口合计 {s:,.0f} 人，占总人口 {t_sum:,.0f} 人的 {s / t_sum:.0%}，超过任何年龄组可能的比例（{settings.MAX_GROUP_SHARE:.0%}）。这个文件可能是总人口而不是该年龄组；请检查 population.groups.{name}。",
                en=f"age group {name} sums to {s:,.0f} people, {s / t_sum:.0%} of the total {t_sum:,.0f}, more than any age group can be ({settings.MAX_GROUP_SHARE:.0%}). The file is probably the total population, not the group; check population.groups.{name}.",
                file=where, field=f"population.groups.{name}", code="group_exceeds_total",
            ))
            continue
        over = arr > total * (1.0 + tol) + 0.5
        if over.any():
            share = float(arr[over].sum()) / max(s, 1e-9)
            if share > 0.05:
                rr, cc = np.argwhere(over)[0]
                r.add(Problem(
                    zh=f"年龄组 {name} 在 {int(over.sum())} 个网格中多于总人口（占该组人口 {share:.1%}，如第 {rr + 1} 行第 {cc + 1} 列）。请确认年龄组栅格与总人口栅格来自同一来源、同一年份。",
                    en=f"age group {name} exceeds the total population in {int(over.sum())} cells ({share:.1%} of the group; e.g. row {rr + 1}, column {cc + 1}). Check that the group and total rasters come from the same source and year.",
                    file=where, field=f"population.groups.{name}", severity="warning", code="group_exceeds_cells",
                ))
    if g_sum > (1.0 + tol) * t_sum:
        r.add(Problem(
            zh=f"各年龄组人口之和 {g_sum:,.0f} 人多于总人口 {t_sum:,.0f} 人。年龄组互不重叠（0–2、3–5、6–11、12–14、60岁以上），其和不应超过总人口；请检查 population.groups。",
            en=f"the age groups sum to {g_sum:,.0f} people, more than the total {t_sum:,.0f}. The groups do not overlap (0–2, 3–5, 6–11, 12–14, 60+), so they cannot exceed the total; check population.groups.",
            file=str(r.yml), field="population.groups", code="groups_exceed_total",
        ))


def _population_roads(sc: Scenario, area: _Area) -> gpd.GeoDataFrame | None:
    """The scenario's road lines in the area's CRS, to weight a coarse population raster.

    Line layers through :func:`coverage.io.read_vector`; ``.osm.pbf`` through pyrosm (every way
    with a ``highway`` tag inside the area's bounding box); ``.osm`` XML and GraphML through osmnx
    (straight edges where a way has no geometry). ``None`` when there is no road file or it cannot be
    read (the graph build reports why); the population is then spread uniformly.
    """
    if sc.network is None or area.boundary is None:
        return None
    layer = sc.network.roads
    path = Path(layer.path)
    if not path.exists():
        return None
    name = path.name.lower()
    try:
        if name.endswith(".pbf"):
            import warnings

            import pyrosm

            lo, la, hi, ha = area.boundary.to_crs(4326).total_bounds
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lines = pyrosm.OSM(str(path), bounding_box=[lo, la, hi, ha]).get_network(network_type="all")
        elif name.endswith((".osm", ".xml", ".graphml")):
            import osmnx as ox

            G = ox.load_graphml(path) if name.endswith(".graphml") else ox.graph_from_xml(path, simplify=False, retain_all=True)
            lines = ox.graph_to_gdfs(G, nodes=False)
            # a two-way street is two directed edges: count its length once
            u, v = lines.index.get_level_values(0).to_numpy(), lines.index.get_level_values(1).to_numpy()
            pair = pd.Series(list(zip(np.minimum(u, v), np.maximum(u, v))))
            lines = lines[~pair.duplicated().to_numpy()]
        else:
            from coverage.io import apply_declared_crs, read_vector

            lines = apply_declared_crs(read_vector(path, layer=layer.layer, what_zh="道路", what_en="road"), layer.crs, path)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:  # the graph build reports an unreadable road file
        log.info("roads for the population weight could not be read from %s", path, exc_info=True)
        return None
    if lines is None or lines.empty or lines.crs is None:
        return None
    lines = lines[lines.geom_type.isin(["LineString", "MultiLineString"])]
    if lines.empty:
        return None
    keep = [c for c in ("highway", "fclass") if c in lines.columns]
    return gpd.GeoDataFrame(lines[keep], geometry=lines.geometry.values, crs=lines.crs).to_crs(area.crs)


def _spread_problem(grid: population.PopulationGrid, pop: Any, res: float) -> Problem:
    """The ``population_spread`` warning: how a coarse raster was spread onto the analysis grid."""
    d = grid.details
    src = grid.source_resolution_m or 0.0
    n, k, people = d.get("source_cells", 0), d.get("uniform_cells", 0), d.get("uniform_people", 0.0)
    how_zh = {
        "roads": "按每个分析网格内的道路长度分配（道路加权面插值，Reibel & Bufalino 2005）",
        "buildings": "按建筑轮廓面积（或个数）分配",
        "uniform": "均匀分配（没有可用的道路）",
    }[grid.method]
    how_en = {
        "roads": "in proportion to the road length in each analysis cell (street-weighted areal interpolation, Reibel & Bufalino 2005)",
        "buildings": "over building footprints (area or count)",
        "uniform": "uniformly (no road to weight by)",
    }[grid.method]
    rest_zh = f"；其中 {k} 个源像元（{people:,.0f} 人）内没有{'道路' if grid.method == 'roads' else '建筑'}，在其范围内均匀分配" if k and grid.method != "uniform" else ""
    rest_en = f"; {k} source cells ({people:,.0f} people) hold no {'road' if grid.method == 'roads' else 'building'} and stay uniform" if k and grid.method != "uniform" else ""
    return Problem(
        zh=f"人口栅格分辨率约 {src:,.0f} 米，粗于 {res:g} 米分析网格：{n} 个源像元的人口已{how_zh}到 {res:g} 米网格，每个源像元的人口总数不变{rest_zh}。格内人口位置是估计值，小范围（村、小区）的覆盖率请谨慎使用。",
        en=f"the population raster's cells are about {src:,.0f} m, coarser than the {res:g} m analysis grid: the people of {n} source cells were spread onto {res:g} m cells {how_en}, keeping every source cell's total{rest_en}. Where people live inside a source cell is an estimate; read coverage of small places (villages, estates) with care.",
        file=str(pop.total), field="population.total", severity="warning", code="population_spread",
    )


def _read_population(sc: Scenario, area: _Area, preset: standards.Preset | None, r: _Reader) -> population.PopulationGrid | None:
    pop = sc.population
    for g in pop.groups:
        if g not in settings.AGE_GROUPS:
            r.add(Problem(
                zh=f"年龄组名称 {g} 不是标准名称（{', '.join(settings.AGE_GROUPS)}），标准中按年龄组的指标将找不到它。",
                en=f"age group {g} is not one of {', '.join(settings.AGE_GROUPS)}; age-group rules of the standards will not find it.",
                file=str(r.yml), field=f"population.groups.{g}", severity="warning", code="group_unknown",
            ))
    specs: dict[str, Any] = {}
    for g, spec in pop.groups.items():
        if isinstance(spec, Share):
            specs[g] = {"share": spec.share}
        elif r.exists(spec, f"population.groups.{g}"):
            specs[g] = spec
    missing = sorted(_needed_groups(preset) - set(pop.groups), key=list(settings.AGE_GROUPS).index)
    if missing:
        specs.update(_assumed_shares(sc, area.units, missing, r))
    weights = None
    spread = pop.spread_over
    if spread is not None and r.exists(spread.path, "population.spread_over"):
        from coverage.io import apply_declared_crs, read_vector

        with r.guard("population.spread_over", spread.path):
            weights = read_vector(
                spread.path, layer=spread.layer, what_zh="建筑/居住用地", what_en="buildings / residential land-use",
                where=spread.where,
            )
            weights = apply_declared_crs(weights, spread.crs, spread.path)
            if weights.empty:
                r.add(Problem(
                    zh="用于分配人口的图层是空的（0 个要素）；人口将在每个粗网格内均匀分布。",
                    en="the layer to spread population over is empty (0 features); people stay uniform inside each coarse cell.",
                    file=str(spread.path), field="population.spread_over", severity="warning", code="spread_empty",
                ))
    if not r.exists(pop.total, "population.total") or area.boundary is None:
        return None
    grid = None
    res = pop.resolution or population.ANALYSIS_CELL_M
    with r.guard("population.total", pop.total):
        src_res = population.source_resolution_m(pop.total, area.boundary)
        coarse = src_res > population.SPREAD_FACTOR * res
        if weights is None and not coarse:
            # finer or similar: summed / resampled onto the analysis grid (sum-preserving)
            grid = population.read_population(
                pop.total, specs, area=area.boundary, target_crs=area.crs, kind=pop.kind, resolution=res,
            )
        else:
            # coarser (or spread over buildings): read the source's own cells, then spread them
            native = population.read_population(
                pop.total, specs, area=area.boundary, target_crs=population.source_crs(pop.total), kind=pop.kind,
            )
            if weights is not None:
                grid = population.spread_over(
                    native, weights.to_crs(area.crs), resolution=res, weight=pop.spread_weight, area=area.boundary,
                )
            else:
                roads = _population_roads(sc, area)
                if roads is None:
                    grid = population.spread_weighted(
                        native, lambda tr, shape: np.zeros(shape), area.crs, resolution=res, area=area.boundary,
                    )
                else:
                    grid = population.spread_along_roads(native, roads, resolution=res, area=area.boundary, crs=area.crs)
            grid.source_resolution_m = src_res
            r.add(_spread_problem(grid, pop, res))
    if grid is None:
        return None
    if float(grid.total.sum()) <= 0:
        r.add(Problem(
            zh="评估范围内人口为 0。请检查人口栅格是否覆盖本县、单位（人/像元或人/平方公里）是否正确。",
            en="the population inside the area is 0. Check that the raster covers the county and its unit (people per cell or per km²).",
            file=str(pop.total), field="population.total", code="population_zero",
        ))
        return None
    _check_groups(grid, sc, r)
    return grid


# ----------------------------------------------------------------------------------------------
# 城区 and seat from the population grid (area.urban: auto, no area.seat)
# ----------------------------------------------------------------------------------------------


def _derive_urban(sc: Scenario, area: _Area, grid: population.PopulationGrid | None, r: _Reader) -> None:
    """Derive the 城区 (``area.urban: auto``) and the seat (no ``area.seat``) with :mod:`coverage.urban`.

    Sets ``area.urban``/``area.urban_derived`` and ``area.seat``/``area.seat_derived`` and adds the
    warnings ``urban_derived``, ``urban_not_found``, ``seat_derived`` or ``seat_not_found``.
    """
    want_urban = sc.area.urban == "auto"
    if grid is None or area.boundary is None or not (want_urban or area.seat is None):
        return
    with r.guard("area.urban"):
        u = urban.classify(grid)
        total = float(grid.total.sum())
        if want_urban:
            poly = urban.polygons(u)
            if len(poly):
                area.urban = poly.to_crs(area.crs)
                area.urban_derived = True
                pop, km2 = float(poly["population"].sum()), float(poly["area_km2"].sum())
                kind = "城市中心" if (poly["kind"] == urban.URBAN_CENTRE).any() else "高密度城镇聚集区"
                kind_en = "urban centre(s)" if (poly["kind"] == urban.URBAN_CENTRE).any() else "the largest dense urban cluster"
                r.add(Problem(
                    zh=(f"情景未给出城区范围（area.urban），已按人口栅格用城乡划分方法（Degree of Urbanisation）推算城区：{kind}，"
                        f"{km2:.0f} 平方公里、{pop:,.0f} 人（占 {pop / max(total, 1e-9):.0%}）。城区/乡村的划分及按城乡分别计算的覆盖率为推算值；"
                        "有城区边界时请在 area.urban 中给出。"),
                    en=(f"the scenario gives no 城区 polygon (area.urban): derived from the population grid with the Degree of "
                        f"Urbanisation ({kind_en}, {km2:.0f} km², {pop:,.0f} people, {pop / max(total, 1e-9):.0%}). The urban/rural split "
                        "and the figures by side are estimates; give the 城区 polygon in area.urban when you have it."),
                    file=str(r.yml), field="area.urban", severity="warning", code="urban_derived",
                ))
            else:
                r.add(Problem(
                    zh="情景未给出城区范围（area.urban），人口栅格中也找不到城市中心或高密度城镇聚集区（每平方公里 1500 人以上、合计 5000 人以上）：除街道外全部按乡村计算。",
                    en="the scenario gives no 城区 polygon (area.urban) and the population grid has no urban centre or dense urban cluster (≥ 1,500 people/km², ≥ 5,000 people): everything but 街道 units counts as rural.",
                    file=str(r.yml), field="area.urban", severity="warning", code="urban_not_found",
                ))
        if area.seat is None:
            s = urban.seat_of(u, grid)
            if s is None:
                r.add(Problem(
                    zh="情景未给出城区中心（area.seat），人口栅格中也找不到城镇聚集区：15公里城乡服务圈无数据。请在 area.seat 中给出县城中心 [经度, 纬度]。",
                    en="the scenario gives no seat (area.seat) and the population grid has no urban cluster: the 15 km circle has no data. Give the county seat [lon, lat] in area.seat.",
                    file=str(r.yml), field="area.seat", severity="warning", code="seat_not_found",
                ))
                return
            pt = gpd.GeoSeries(gpd.points_from_xy([s[0]], [s[1]]), crs=grid.crs).to_crs(4326).iloc[0]
            area.seat = (round(float(pt.x), 6), round(float(pt.y), 6))
            area.seat_derived = True
            name_zh, name_en = urban.CLASS_NAMES[s[2]]
            r.add(Problem(
                zh=(f"情景未给出城区中心（area.seat），已取人口最多的{name_zh}的人口加权中心 {list(area.seat)} 作为15公里城乡服务圈的起点（推算）。"
                    "请核对，或在 area.seat 中给出县城中心。"),
                en=(f"the scenario gives no seat (area.seat): the population-weighted centre of the most populous {name_en}, "
                    f"{list(area.seat)}, is used for the 15 km circle (derived). Check it, or give the county seat in area.seat."),
                file=str(r.yml), field="area.seat", severity="warning", code="seat_derived",
            ))


# ----------------------------------------------------------------------------------------------
# roads
# ----------------------------------------------------------------------------------------------


def _road_points(sc: Scenario, r: _Reader, max_points: int = 300_000) -> tuple[np.ndarray | None, RoadLines | None]:
    """Lon/lat vertices of a road line layer, after checking it opens and holds lines, and the lines read.

    The layer is read once (:func:`coverage.io.roads.read_road_lines`); the lines are handed to the
    graph build through :attr:`Inputs.road_lines`. The vertices (at most ``max_points``, evenly
    spaced) are those of the line features with the declared ``crs:`` applied, for the facilities'
    ``crs:`` check. PBF, OSM XML and GraphML files are checked when the graph is built.
    """
    from coverage.io import VECTOR_SUFFIXES, declared_crs
    from coverage.io.roads import read_road_lines, transform_vertices

    if sc.network is None:
        r.add(Problem(
            zh="情景缺少 network.roads（路网文件）。服务圈沿道路计算，必须给出路网。",
            en="the scenario has no network.roads (road file). Service circles follow the roads, so a road file is needed.",
            file=str(r.yml), field="network", code="no_roads",
        ))
        return None, None
    layer = sc.network.roads
    if not r.exists(layer.path, "network.roads"):
        return None, None
    if layer.path.suffix.lower() not in VECTOR_SUFFIXES:
        return None, None
    lines: RoadLines | None = None
    kind, crs = "file", None
    with r.guard("network.roads", layer.path):
        lines = read_road_lines(layer.path, layer=layer.layer, class_field=sc.network.class_field, what=("道路", "road"))
        file_crs = lines.crs
        if file_crs is None and lines.n_features:  # as coverage.io.read_vector
            b = lines.bounds
            if -180 <= b[0] <= b[2] <= 180 and -90 <= b[1] <= b[3] <= 90:
                file_crs = CRS.from_epsg(4326)
            else:
                p = layer.path
                raise InputError(
                    f"{p.name} 没有坐标系信息（缺少 .prj），且坐标不是经纬度。请在情景文件中用 crs: 指定 EPSG 代码。",
                    f"{p.name} has no CRS (missing .prj) and its coordinates are not lon/lat; declare it with crs: EPSG code in the scenario.",
                    file=p,
                    field="crs",
                )
        kind, crs = declared_crs(file_crs, layer.crs, layer.path)
    if lines is None:
        return None, None
    if lines.n_features == 0:
        r.add(Problem(zh="道路图层是空的（0 条道路）。", en="the road layer is empty (0 roads).",
                      file=str(layer.path), field="network.roads", code="roads_empty"))
        return None, None
    if not lines.has_lines:
        kinds = lines.kinds
        r.add(Problem(
            zh=f"道路图层中没有线要素（只有 {', '.join(f'{k} {v}' for k, v in kinds.items())}）。请给出道路中心线图层（线），而不是点或面。",
            en=f"the road layer holds no lines (only {', '.join(f'{k} {v}' for k, v in kinds.items())}). Give a road centre-line layer (lines), not points or polygons.",
            file=str(layer.path), field="network.roads", code="roads_not_lines",
        ))
        return None, None
    mask = lines.line_feature_mask()
    xy = lines.xy if mask is None else lines.xy[mask]
    z = None if lines.z is None else (lines.z if mask is None else lines.z[mask])
    if kind in ("gcj02", "bd09"):  # every vertex converted at once, as coverage.io.apply_declared_crs does
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], kind)
        xy = np.column_stack([lon, lat])
    if len(xy) > max_points:  # the sample first: the transform is vertex by vertex
        pick = np.linspace(0, len(xy) - 1, max_points).astype(int)
        xy, z = xy[pick], (None if z is None else z[pick])
    assert crs is not None
    out = transform_vertices(xy, z, crs, CRS.from_epsg(4326))
    return (out.copy() if out is lines.xy else out), lines


# ----------------------------------------------------------------------------------------------
# facilities
# ----------------------------------------------------------------------------------------------


def _area_checks(gdf: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame, src: Path, r: _Reader, what: str = "facilities") -> None:
    """Rows outside the area: warning when near, error further than :data:`FAR_OUTSIDE_M`."""
    if gdf is None or gdf.empty:
        return
    d = _outside_m(gdf["lon"], gdf["lat"], boundary)
    rows = gdf["source"].astype(str).str.rsplit(":", n=1).str[-1]
    rows = pd.to_numeric(rows, errors="coerce").fillna(0).astype(int).to_numpy()
    names = gdf["name"].astype(str).to_numpy() if "name" in gdf else np.array([""] * len(gdf))
    every = bool((d > FAR_OUTSIDE_M).all())
    for mask, sev, zh, en in (
        (d > FAR_OUTSIDE_M, "error",
         f"距评估范围超过 {FAR_OUTSIDE_M / 1000:.0f} 公里，坐标或坐标系（crs:）可能有误" + ("；文件中所有设施都在范围外，可能是另一个县的文件" if every else ""),
         f"more than {FAR_OUTSIDE_M / 1000:.0f} km outside the area; the coordinates or the crs: are probably wrong" + ("; every row is outside: is it another county's file?" if every else "")),
        ((d > 0) & (d <= FAR_OUTSIDE_M), "warning", "位于评估范围之外（邻县设施可保留，本县居民可跨界使用）",
         "outside the area (kept: residents may use them across the border)"),
    ):
        if mask.any():
            rr = rows[mask]
            r.add(Problem(
                zh=f"{int(mask.sum())} 个{'设施' if what == 'facilities' else '备选点'}{zh}：第 {_rows_text(rr)} 行（如 {names[mask][0]}，{d[mask][0] / 1000:.1f} 公里）。",
                en=f"{int(mask.sum())} {'facilities' if what == 'facilities' else 'candidate sites'} {en}: rows {_rows_text(rr)} (e.g. {names[mask][0]}, {d[mask][0] / 1000:.1f} km).",
                file=str(src), row=int(rr[0]), field="经度/纬度 lon/lat", severity=sev,
                code=f"{what}_far_outside" if sev == "error" else f"{what}_outside",
            ))


def merge_duplicates(fac: gpd.GeoDataFrame, max_m: float | None = None) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Merge facilities listed twice: the same type and name within ``max_m`` metres.

    The matching is :func:`coverage.io.facilities.duplicate_facilities` with ``match="ftype"`` and
    identical names (similarity 1).

    Parameters
    ----------
    fac : GeoDataFrame
        Facilities (``ftype``, ``name``, ``fid``, ``source``, point geometry).
    max_m : float, optional
        Default ``settings.DUPLICATE_FACILITY_M`` (50 m).

    Returns
    -------
    (GeoDataFrame, DataFrame)
        The facilities with each duplicate dropped (the first row of a group is kept, with its
        capacity; capacities are not summed), and one row per dropped facility: ``fid``, ``name``,
        ``source`` and the ``kept`` fid.
    """
    max_m = settings.DUPLICATE_FACILITY_M if max_m is None else float(max_m)
    found = fac_io.duplicate_facilities(fac.reset_index(drop=True), max_m=max_m, match="ftype", min_similarity=1.0)
    if found.empty:
        return fac, pd.DataFrame(columns=["fid", "name", "source", "kept"])
    f = fac.reset_index(drop=True)
    drop = found["drop"].to_numpy()
    dropped = pd.DataFrame({
        "fid": f["fid"].to_numpy()[drop], "name": f["name"].to_numpy()[drop],
        "source": f["source"].to_numpy()[drop], "kept": f["fid"].to_numpy()[found["keep"].to_numpy()],
    })
    return f.drop(index=drop).reset_index(drop=True), dropped


def _concat(parts: list[gpd.GeoDataFrame], crs: CRS) -> gpd.GeoDataFrame:
    parts = [p for p in parts if p is not None and len(p)]
    out = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=crs)
    dup = out["fid"].duplicated(keep=False)
    if dup.any():
        # ids must be unique across files; prefix duplicates with their source file
        out.loc[dup, "fid"] = [f"{s.split(':')[0]}:{f}" for s, f in zip(out.loc[dup, "source"], out.loc[dup, "fid"])]
    return out.reset_index(drop=True)


def _read_facilities(sc: Scenario, area: _Area, road_xy: np.ndarray | None, r: _Reader) -> gpd.GeoDataFrame | None:
    parts = []
    for i, src in enumerate(sc.facilities):
        if not r.exists(src.path, f"facilities[{i}].path"):
            continue
        gdf, probs = fac_io.inspect_facilities(
            src.path, crs=src.crs, target_crs=area.crs, layer=src.layer, columns=src.columns,
            sheet=src.sheet, ftype=src.ftype,
        )
        for p in probs:
            r.add(p)
        if gdf is None:
            continue
        if gdf.empty:
            r.add(Problem(
                zh="文件中没有可用的设施（0 行可归入四类服务）。请检查类型列，或用 ftype: 为整个文件指定设施类型。",
                en="no usable facilities in the file (0 rows map to a service). Check the type column, or give ftype: for the whole file.",
                file=str(src.path), field=f"facilities[{i}]", code="facilities_none_usable",
            ))
            continue
        if area.boundary is not None:
            _area_checks(gdf, area.boundary, src.path, r)
        if road_xy is not None:
            declared = str(src.crs) if src.crs is not None else "wgs84"
            prob = fac_io.check_declared_crs(gdf, road_xy, declared=declared, file=src.path)
            if prob is not None:
                r.add(Problem(zh=prob.zh, en=prob.en, file=prob.file, row=prob.row, field=f"facilities[{i}].crs",
                              severity=prob.severity, code="crs_suspect"))
        parts.append(gdf)
    if not sc.facilities:
        r.add(Problem(
            zh="情景中没有任何设施文件（facilities 为空）。请至少提供一个设施文件。",
            en="the scenario lists no facility file (facilities is empty). Give at least one file.",
            file=str(r.yml), field="facilities", code="no_facilities",
        ))
    if not parts or area.crs is None:
        return None
    fac = _concat(parts, area.crs)
    fac, dropped = merge_duplicates(fac)
    if len(dropped):
        ex = dropped.iloc[0]
        r.add(Problem(
            zh=f"{len(dropped)} 个设施重复列出（同名、同类型、相距不到 {settings.DUPLICATE_FACILITY_M:.0f} 米），已合并为一处，不重复计入千人指标和供需比（如 {ex['name']}：{ex['source']} 与 {ex['kept']}）。",
            en=f"{len(dropped)} facilities are listed twice (same name and type within {settings.DUPLICATE_FACILITY_M:.0f} m) and were merged, so they are not counted twice in per-1000 and supply ratios (e.g. {ex['name']}: {ex['source']} and {ex['kept']}).",
            file=str(ex["source"]).rsplit(":", 1)[0], field="name", severity="warning", code="duplicate_facilities",
        ))
    return fac


def _read_candidates(sc: Scenario, area: _Area, r: _Reader) -> gpd.GeoDataFrame | None:
    c = sc.candidates
    if c is None or not r.exists(c.path, "candidates"):
        return None
    cg, probs = fac_io.inspect_candidates(c.path, crs=c.crs, target_crs=area.crs, layer=c.layer, columns=c.columns, sheet=c.sheet)
    for p in probs:
        r.add(p)
    if cg is None:
        return None
    if cg.empty:
        r.add(Problem(zh="备选用地文件没有可用的行。", en="the candidates file has no usable rows.",
                      file=str(c.path), field="candidates", code="candidates_empty"))
        return None
    if area.boundary is not None:
        _area_checks(cg.assign(source=[f"{c.path.name}:{k + 1}" for k in range(len(cg))]), area.boundary, c.path, r,
                     what="candidates")
    return cg


# ----------------------------------------------------------------------------------------------
# changes
# ----------------------------------------------------------------------------------------------


def _yaml_line(r: _Reader, loc: tuple) -> int | None:
    import yaml

    from coverage.scenario import read_text_any, yaml_line

    with contextlib.suppress(Exception):
        return yaml_line(yaml.compose(read_text_any(r.yml)[0]), loc)
    return None


def _check_add(i: int, a: Any, area: _Area, r: _Reader) -> None:
    """Problems of one ``changes.add`` entry: category/ftype, position (outside, lon/lat swapped)."""
    from coverage.categories import FTYPES, SERVICES

    fld = f"changes.add[{i}]"
    cat = a.category
    if cat in FTYPES and a.ftype is None:
        cat = FTYPES[cat].service
    if cat not in SERVICES:
        r.add(Problem(
            zh=f"新增设施 {a.id}（{a.name}）的服务类别 category: {a.category} 未知。可用：{', '.join(SERVICES)}（或设施类型代码，如 day_care）。",
            en=f"added facility {a.id} ({a.name}) has unknown category {a.category!r}; use one of {', '.join(SERVICES)} (or an ftype key such as day_care).",
            file=str(r.yml), row=_yaml_line(r, ("changes", "add", i, "category")), field=f"{fld}.category",
            code="change_unknown_category",
        ))
    if a.ftype is not None:
        if a.ftype not in FTYPES:
            r.add(Problem(
                zh=f"新增设施 {a.id} 的设施类型 ftype: {a.ftype} 未知。可用：{', '.join(FTYPES)}。",
                en=f"added facility {a.id} has unknown ftype {a.ftype!r}; valid keys: {', '.join(FTYPES)}.",
                file=str(r.yml), row=_yaml_line(r, ("changes", "add", i, "ftype")), field=f"{fld}.ftype",
                code="change_unknown_ftype",
            ))
        elif cat in SERVICES and FTYPES[a.ftype].service != cat:
            r.add(Problem(
                zh=f"新增设施 {a.id} 的 ftype: {a.ftype} 属于 {FTYPES[a.ftype].service}，与 category: {a.category} 不符。",
                en=f"added facility {a.id}: ftype {a.ftype} belongs to {FTYPES[a.ftype].service}, not to category {a.category}.",
                file=str(r.yml), field=f"{fld}.ftype", code="change_ftype_mismatch",
            ))
    with r.guard(f"{fld}.crs"):
        kind, _c = parse_crs(a.crs, r.yml)
        if kind in ("wgs84", "gcj02", "bd09") and area.boundary is not None:
            lon, lat = (to_wgs84([a.lon], [a.lat], kind) if abs(a.lat) <= 90 else ([a.lon], [a.lat]))
            d = float(_outside_m(lon, lat, area.boundary)[0])
            if d > 0:
                # are lon and lat swapped? the swapped point lies inside the area
                swapped = abs(a.lon) <= 90 and float(_outside_m(*to_wgs84([a.lat], [a.lon], kind), area.boundary)[0]) == 0
                line = _yaml_line(r, ("changes", "add", i, "lon"))
                if swapped:
                    r.add(Problem(
                        zh=f"新增设施 {a.id}（{a.name}）的经纬度写反了：lon: {a.lon}, lat: {a.lat}；对调后（lon: {a.lat}, lat: {a.lon}）正好在评估范围内。请把 lon 写经度（如 106.7）、lat 写纬度（如 35.5）。",
                        en=f"added facility {a.id} ({a.name}) has lon and lat swapped: lon: {a.lon}, lat: {a.lat}; swapped (lon: {a.lat}, lat: {a.lon}) it lies inside the area. Put the longitude (e.g. 106.7) in lon and the latitude (e.g. 35.5) in lat.",
                        file=str(r.yml), row=line, field=f"{fld}.lon/lat", code="change_lonlat_swapped",
                    ))
                else:
                    far = d > FAR_OUTSIDE_M
                    r.add(Problem(
                        zh=f"新增设施 {a.id}（{a.name}）的坐标 ({a.lon}, {a.lat}) 在评估范围之外（相距 {'很远' if not np.isfinite(d) else f'{d / 1000:.1f} 公里'}）。请检查坐标与 crs。",
                        en=f"added facility {a.id} ({a.name}) at ({a.lon}, {a.lat}) lies {'far' if not np.isfinite(d) else f'{d / 1000:.1f} km'} outside the area. Check the coordinates and crs.",
                        file=str(r.yml), row=line, field=f"{fld}.lon/lat", severity="error" if far else "warning",
                        code="change_far_outside" if far else "change_outside",
                    ))


def _check_changes(sc: Scenario, area: _Area, fids: set[str], r: _Reader) -> None:

    for i, a in enumerate(sc.changes.add):
        _check_add(i, a, area, r)
    if not (fids or sc.facilities):
        return
    for i, rid in enumerate(sc.changes.remove):
        if rid not in fids:
            r.add(Problem(
                zh=f"changes.remove 中的编号 {rid} 不在任何设施文件中。请核对设施表的编号列（id）。",
                en=f"id {rid} in changes.remove is not in any facility file. Check the id column of the facility files.",
                file=str(r.yml), row=_yaml_line(r, ("changes", "remove", i)), field=f"changes.remove[{i}]",
                code="change_unknown_id",
            ))
    for i, u in enumerate(sc.changes.upgrade):
        if u.id not in fids:
            r.add(Problem(
                zh=f"changes.upgrade 中的编号 {u.id} 不在任何设施文件中。请核对设施表的编号列（id）。",
                en=f"id {u.id} in changes.upgrade is not in any facility file. Check the id column of the facility files.",
                file=str(r.yml), row=_yaml_line(r, ("changes", "upgrade", i, "id")), field=f"changes.upgrade[{i}].id",
                code="change_unknown_id",
            ))
        _check_upgrade(i, u, r)


def _check_upgrade(i: int, u: Any, r: _Reader) -> None:
    from coverage.categories import FTYPES

    if u.ftype is not None and u.ftype not in FTYPES:
        r.add(Problem(
            zh=f"changes.upgrade 中 {u.id} 的 ftype: {u.ftype} 未知。可用：{', '.join(FTYPES)}。",
            en=f"unknown ftype {u.ftype!r} for {u.id} in changes.upgrade; valid keys: {', '.join(FTYPES)}.",
            file=str(r.yml), field=f"changes.upgrade[{i}].ftype", code="change_unknown_ftype",
        ))


def check_changes(adds: list[Any], upgrades: list[Any], boundary: gpd.GeoDataFrame) -> list[Problem]:
    """The checks of ``covplan validate`` on facilities a plan adds or upgrades, without a file.

    For edits that do not come from a scenario file (the meeting server): unknown category or
    ftype, an ftype of another service, a point outside the area (error beyond
    :data:`FAR_OUTSIDE_M`) or with lon and lat swapped. Same codes and messages as in a scenario.

    Parameters
    ----------
    adds : list of coverage.scenario.AddFacility
    upgrades : list of coverage.scenario.Upgrade
    boundary : GeoDataFrame
        The area, in a metric CRS.

    Returns
    -------
    list of Problem
        With no file (the edit is not in a file).
    """
    import dataclasses

    r = _Reader(Path("-"), [])
    area = _Area(boundary=boundary, crs=CRS.from_user_input(boundary.crs))
    for i, a in enumerate(adds):
        _check_add(i, a, area, r)
    for i, u in enumerate(upgrades):
        _check_upgrade(i, u, r)
    return [dataclasses.replace(p, file=None, row=None) for p in r.problems]


def apply_changes(facilities: gpd.GeoDataFrame, changes: Any, crs: Any) -> gpd.GeoDataFrame:
    """Apply a scenario's ``changes`` (remove, upgrade, add) to the facility table.

    Parameters
    ----------
    facilities : GeoDataFrame
        The facility form of ``docs/architecture.md``.
    changes : coverage.scenario.Changes
    crs : CRS-like
        The facilities' metric CRS.

    Returns
    -------
    GeoDataFrame
        A new table; ``facilities`` is not modified.

    Raises
    ------
    InputError
        An id that no facility has, or an unknown category (``validate`` reports these first).
    """
    fac = facilities
    missing = [x for x in changes.remove if x not in set(fac["fid"])]
    missing += [u.id for u in changes.upgrade if u.id not in set(fac["fid"])]
    if missing:
        raise InputError(
            f"changes 中的设施编号不存在：{', '.join(missing[:10])}。请核对设施表的编号列。",
            f"changes refers to facility ids that do not exist: {', '.join(missing[:10])}. "
            "Check the id column of the facility files.",
            field="changes", code="change_unknown_id",
        )
    fac = fac[~fac["fid"].isin(changes.remove)].copy()
    for u in changes.upgrade:
        i = fac.index[fac["fid"] == u.id]
        for key in ("capacity", "tier", "name"):
            val = getattr(u, key)
            if val is not None:
                fac.loc[i, key] = val
        if u.ftype is not None:
            fac.loc[i, "ftype"] = u.ftype
            fac.loc[i, "category"] = categories.service_of(u.ftype)
    if changes.add:
        rows = []
        for a in changes.add:
            ftype = a.ftype or (a.category if a.category in categories.FTYPES else None)
            service = categories.service_of(ftype) if ftype else a.category
            if service not in categories.SERVICES:
                raise InputError(
                    f"changes.add 中的设施 {a.id} 类别“{a.category}”无法识别。",
                    f"changes.add facility {a.id}: unknown category {a.category!r}.",
                    field="changes.add", code="change_unknown_category",
                )
            ftype = ftype or categories.ftypes_of(service)[0]
            lon, lat = to_wgs84([a.lon], [a.lat], str(a.crs) if str(a.crs) != "4326" else "wgs84")
            rows.append({
                "fid": a.id, "name": a.name, "category": service, "ftype": ftype,
                "type_raw": categories.FTYPES[ftype].label, "tier": a.tier or "",
                "capacity": a.capacity if a.capacity is not None else np.nan,
                "capacity_unit": categories.FTYPES[ftype].capacity_unit,
                "source": "changes.add", "lon": float(lon[0]), "lat": float(lat[0]),
            })
        add = gpd.GeoDataFrame(
            rows, geometry=gpd.points_from_xy([x["lon"] for x in rows], [x["lat"] for x in rows]),
            crs="EPSG:4326",
        ).to_crs(crs)
        fac = gpd.GeoDataFrame(pd.concat([fac, add], ignore_index=True), crs=crs)
    return fac.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# the reading path
# ----------------------------------------------------------------------------------------------


def read_inputs(path: str | Path) -> tuple[Inputs | None, list[Problem]]:
    """Read every input of a scenario, collecting every problem instead of stopping at the first.

    Parameters
    ----------
    path : str or Path
        Scenario YAML (paths inside are relative to it).

    Returns
    -------
    (Inputs or None, list of Problem)
        The inputs (``None`` when any problem is an error) and every problem found, errors and
        warnings, in reading order.
    """
    sc, probs, yml = parse_scenario(path)
    r = _Reader(yml, probs)
    if sc is None:
        return None, r.problems
    area = _read_area(sc, r)
    preset = None
    with r.guard("standards"):
        preset = standards.load_preset(sc.standards)
    # the road lines, then the facilities (whose crs: is checked against the roads' vertices), are
    # read in a thread while this one reads the population rasters (all spend much of their time in
    # GDAL, which releases the GIL); their problems keep their place after the population's, as
    # when read one after the other
    roads_r, fac_r = _Reader(yml, []), _Reader(yml, [])

    def roads_then_facilities() -> tuple[RoadLines | None, gpd.GeoDataFrame | None]:
        road_xy, road_lines = _road_points(sc, roads_r)
        return road_lines, _read_facilities(sc, area, road_xy, fac_r)

    with ThreadPoolExecutor(1) as ex:
        later = ex.submit(roads_then_facilities)
        grid = _read_population(sc, area, preset, r)
        _derive_urban(sc, area, grid, r)
        road_lines, fac = later.result()
    r.problems.extend(roads_r.problems + fac_r.problems)
    candidates = _read_candidates(sc, area, r)
    fids = set(fac["fid"].astype(str)) if fac is not None else set()
    _check_changes(sc, area, fids, r)
    if r.n_errors or fac is None or grid is None or preset is None or area.boundary is None or area.units is None:
        if not r.n_errors:  # a part could not be read without a reported error: say so, never go on
            r.add(Problem(zh="输入不完整，无法计算。", en="the inputs are incomplete; nothing can be computed.",
                          file=str(yml), code="incomplete"))
        return None, r.problems
    with r.guard("changes"):
        fac = apply_changes(fac, sc.changes, area.crs)
    if r.n_errors:
        return None, r.problems
    assert area.crs is not None  # a boundary was read (else an error was reported above)
    return Inputs(
        scenario=sc, crs=area.crs, boundary=area.boundary, units=area.units, villages=area.villages,
        urban_area=area.urban, grid=grid, facilities=fac, candidates=candidates, preset=preset,
        seat=area.seat, synthetic=bool(sc.output.synthetic), problems=r.problems,
        urban_derived=area.urban_derived, seat_derived=area.seat_derived,
        road_lines=RoadLinesOnce(road_lines),
    ), r.problems


def raise_first_error(problems: list[Problem]) -> None:
    """Raise the first error among ``problems`` as an :class:`InputError` (with the count of the rest).

    Parameters
    ----------
    problems : list of Problem

    Raises
    ------
    InputError
        When any problem is an error.
    """
    errors = [p for p in problems if p.severity == "error"]
    if not errors:
        return
    first = errors[0]
    more_zh = f"（另有 {len(errors) - 1} 个错误，运行 covplan validate 查看全部）" if len(errors) > 1 else ""
    more_en = f" ({len(errors) - 1} more errors; run covplan validate to see them all)" if len(errors) > 1 else ""
    raise InputError(first.zh + more_zh, first.en + more_en, file=first.file, row=first.row, field=first.field,
                     code=first.code)


def load_inputs(path: str | Path) -> Inputs:
    """Read every input of a scenario into the area's metric CRS; stop on the first error.

    The same reading and the same checks as ``covplan validate`` (:func:`read_inputs`).

    Parameters
    ----------
    path : str or Path
        Scenario YAML (paths inside are relative to it).

    Returns
    -------
    Inputs
        With the warnings in :attr:`Inputs.problems`.

    Raises
    ------
    coverage.errors.InputError
        The first error found (``covplan validate`` lists them all).
    """
    inputs, problems = read_inputs(path)
    raise_first_error(problems)
    assert inputs is not None
    return inputs


def with_scenario(inputs: Inputs, scenario: Scenario, facilities: gpd.GeoDataFrame) -> Inputs:
    """The same inputs with another scenario and facility table (a plan on the same data).

    Parameters
    ----------
    inputs : Inputs
    scenario : Scenario
    facilities : GeoDataFrame

    Returns
    -------
    Inputs
        A new object sharing every other part with ``inputs``.
    """
    from dataclasses import replace

    return replace(inputs, scenario=scenario, facilities=facilities)


__all__ = [
    "FAR_OUTSIDE_M",
    "check_changes",
    "Inputs",
    "WHOLE_AREA_CODE",
    "apply_changes",
    "county_adcode",
    "load_inputs",
    "merge_duplicates",
    "raise_first_error",
    "read_inputs",
    "with_scenario",
]
