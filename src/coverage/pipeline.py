"""End to end: a scenario YAML → inputs → graphs and demand → access → evaluation → output files.

This is the top of the data flow (only :mod:`coverage.cli` sits above it). Each stage is a plain
function so a planner's engineer can run the steps one by one in a notebook:

>>> from coverage import pipeline
>>> inputs = pipeline.load_inputs("scenarios/demo_baseline.yaml")       # doctest: +SKIP
>>> model = pipeline.build_model(inputs)                                  # doctest: +SKIP
>>> result = pipeline.evaluate_model(model)                               # doctest: +SKIP
>>> pipeline.write_outputs(result, "out/demo")                            # doctest: +SKIP

Output directories are written atomically: everything goes to a temporary sibling directory that
replaces ``out`` only when every file is written, so a failed run leaves no half-written folder.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import os
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pydantic import BaseModel
from rich.console import Console

from coverage import access, categories, checks, demand, evaluate, network, settings
from coverage import inputs as inputs_mod
from coverage._atomic import atomic_output_dir
from coverage.errors import InputError, Problem

@dataclass
class RunResult:
    """What a run produced: in-memory tables and, once written, the output folder."""

    model: Model
    summary: dict
    by_unit: pd.DataFrame
    gaps: pd.DataFrame
    presence: pd.DataFrame
    provision: pd.DataFrame
    out_dir: Path = Path(".")
    files: list[str] = field(default_factory=list)
    #: rule id → its clusters of uncovered people (None when it has none), for a later run to reuse
    clusters: dict[str, pd.DataFrame | None] = field(default_factory=dict)

    def describe(self) -> str:
        """A few lines for the terminal: population and coverage per service."""
        s = self.summary
        lines = [f"{s['scenario']}: 常住人口 / population {s['population_total']:,.0f}"]
        for key, cat in s["categories"].items():
            label = categories.SERVICES[key].label if key in categories.SERVICES else key
            if cat["population_covered"] is None:  # no input data: never a 0
                lines.append(f"  {label} ({key}): {evaluate.NO_DATA}")
                continue
            lines.append(
                f"  {label} ({key}): 覆盖 {cat['population_covered']:,.0f} 人 / covered, "
                f"{_pct(cat['share_covered'])}"
            )
        urc = s.get("urban_rural_circle")
        if urc and urc["population_covered"] is None:
            lines.append(f"  15公里城乡服务圈 / 15 km circle: {evaluate.NO_DATA}")
        elif urc:
            lines.append(
                f"  15公里城乡服务圈 / 15 km circle: {urc['population_covered']:,.0f} 人, "
                f"{_pct(urc['share_covered'])}"
            )
        lines.append(f"  缺口项目 / gap rows: {len(self.gaps)}")
        return "\n".join(lines)


def _pct(share: float | None) -> str:
    """A share as a percentage; ``None`` (nobody of the group lives here) as 无人口 / no people."""
    return "无人口 / no people" if share is None else f"{share:.1%}"


# ----------------------------------------------------------------------------------------------
# stage 1: inputs
# ----------------------------------------------------------------------------------------------


# The reading path (also behind ``covplan validate``) lives in :mod:`coverage.inputs`; these names
# stay here so that ``pipeline.load_inputs → build_model → evaluate_model → write_outputs`` reads as
# the stages of a run.
Inputs = inputs_mod.Inputs
load_inputs = inputs_mod.load_inputs
WHOLE_AREA_CODE = inputs_mod.WHOLE_AREA_CODE


# ----------------------------------------------------------------------------------------------
# stage 2: model (graphs per mode, demand cells, snapping once)
# ----------------------------------------------------------------------------------------------


def _rules(preset: Any) -> list[Any]:
    rules = list(preset.active_circles())
    urc = preset.urban_rural()
    if urc is not None:
        rules.append(urc)
    return rules


def read_roads(net: Any, modes: list[str], crs: Any) -> dict[str, network.RoadGraph]:
    """Build the road graph of each mode from the scenario's ``network`` section (a line layer is read once for all modes).

    Raises
    ------
    InputError
        Any failure to read the road file, with the file and what to check.
    """
    try:
        return _read_roads(net, modes, crs)
    except InputError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - a library's error on the user's road file
        raise InputError(
            f"无法读取路网 {Path(net.roads.path).name}：{type(err).__name__}: {err}。请检查文件是否完整、图层名（layer:）是否正确。",
            f"cannot read the road file {Path(net.roads.path).name}: {type(err).__name__}: {err}. Check that the file is complete and the layer: name is right.",
            file=net.roads.path, field="network.roads", code="roads_unreadable",
        ) from err


def _read_roads(net: Any, modes: list[str], crs: Any) -> dict[str, network.RoadGraph]:
    path = Path(net.roads.path)
    speeds = _speeds(net.speeds)
    name = path.name.lower()
    if name.endswith((".pbf", ".osm")):
        return {m: network.read_osm(path, mode=m, crs=crs, speeds=speeds) for m in modes}
    if name.endswith(".graphml"):
        return {m: network.from_graphml(path, mode=m, crs=crs, speeds=speeds) for m in modes}
    return network.read_lines(  # type: ignore[return-value]  # a list of modes gives a dict
        path, mode=modes, class_field=net.class_field, layer=net.roads.layer, crs=crs, speeds=speeds,
        join_m=net.snap_m,
        class_map=net.class_map,
    )


def _speeds(s: Any) -> dict[str, float] | None:
    out: dict[str, float] = {}
    if s.walk_kmh:
        out["walk"] = s.walk_kmh
    if s.ebike_kmh:
        out["ebike"] = s.ebike_kmh
    out.update(s.drive_kmh or {})
    return out or None


@dataclass
class Model:
    """Road graphs per mode, demand cells, and both snapped once per mode.

    ``problems`` holds the warnings of the reading path (:attr:`coverage.inputs.Inputs.problems`)
    and of the network checks (:func:`coverage.checks.network_problems`).
    """

    inputs: Inputs
    cells: gpd.GeoDataFrame
    graphs: dict[str, network.RoadGraph]
    snapped_cells: dict[str, access.Snapped]
    snapped_facilities: dict[str, access.Snapped]
    problems: list[Problem] = field(default_factory=list)


def build_model(inputs: Inputs, progress: Any = None) -> Model:
    """Demand cells, one road graph per mode the preset needs, and snapping done once per mode.

    The network checks of :mod:`coverage.checks` run here; their warnings join the inputs' in
    ``Model.problems``.
    """
    scn = inputs.scenario
    if scn.network is None:
        raise InputError(
            "情景缺少 network.roads（路网文件）。", "The scenario has no network.roads (road file).",
            file=scn.source, field="network", code="no_roads",
        )
    cells = demand.cells(inputs.grid, inputs.units, inputs.urban_area)
    modes = sorted({mode_of(r, scn) for r in _rules(inputs.preset)})
    _step(progress, f"路网 / road graphs: {', '.join(modes)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        graphs = read_roads(scn.network, modes, inputs.crs)
    # the readers' own warnings (a layer without CRS taken as lon/lat …) become problems, printed
    # and recorded like every other, instead of Python warnings with a source line
    road_notes: list[Problem] = []
    for w in caught:
        text = str(w.message)
        zh, _, en = text.partition(" / ")
        if issubclass(w.category, UserWarning) and text not in {p.zh + " / " + p.en for p in road_notes}:
            road_notes.append(Problem(zh=zh, en=en or zh, file=str(scn.network.roads.path), field="network.roads",
                                      severity="warning", code="roads_note"))
    sc, sf = {}, {}
    for mode, g in graphs.items():
        sc[mode] = access.snap(g, cells)
        sf[mode] = access.snap(g, inputs.facilities)
    problems = [*inputs.problems, *road_notes]
    problems += checks.network_problems(graphs, cells["pop"], sc, sf, roads_file=scn.network.roads.path)
    return Model(inputs=inputs, cells=cells, graphs=graphs, snapped_cells=sc, snapped_facilities=sf,
                 problems=problems)


def with_facilities(model: Model, inputs: Inputs) -> Model:
    """The same model asked about other facilities: reuse its graphs, demand cells and their snaps.

    Only the new facility table is snapped (milliseconds); this is what ``covplan site`` (the
    plan with the proposed sites) and ``covplan compare`` (a plan on the same data) use instead of
    building the model again.

    Parameters
    ----------
    model : Model
        A built model (not modified).
    inputs : Inputs
        Inputs on the same area, population, roads and standards as ``model.inputs`` (typically
        :func:`coverage.inputs.with_scenario` of them), with another facility table.

    Returns
    -------
    Model
    """
    sf = {mode: access.snap(g, inputs.facilities) for mode, g in model.graphs.items()}
    base_problems = set(model.inputs.problems)
    network_problems = [p for p in model.problems if p not in base_problems]
    return Model(inputs=inputs, cells=model.cells, graphs=model.graphs, snapped_cells=model.snapped_cells,
                 snapped_facilities=sf, problems=[*inputs.problems, *network_problems])


def same_data(a: Inputs, b: Inputs) -> bool:
    """Whether two scenarios' inputs differ only in their facilities (and name, changes, output), so that one model serves both (:func:`with_facilities`)."""
    skip = {"name", "changes", "facilities", "candidates", "output", "source"}
    return a.scenario.model_dump(mode="json", exclude=skip) == b.scenario.model_dump(mode="json", exclude=skip)


def validate(path: str | Path, network_checks: bool = True) -> list[Problem]:
    """Every problem of a scenario: the reading path's, then (when it has no error) the network's.

    This is ``covplan validate``: the same reading and checks as every computing command.

    Parameters
    ----------
    path : str or Path
        Scenario YAML.
    network_checks : bool
        Also build the road graphs and snap the demand and facilities (seconds on a county) to
        check access and connectivity.

    Returns
    -------
    list of Problem
        Errors (``covplan validate`` exits 1; ``run`` stops) and warnings.
    """
    inputs, problems = inputs_mod.read_inputs(path)
    if inputs is None or not network_checks:
        return problems
    try:
        model = build_model(inputs)
    except InputError as err:
        return [*problems, err.problem]
    return model.problems


def mode_of(rule: Any, scn: Any) -> str:
    """The rule's travel mode, unless the scenario's ``network.mode`` overrides it for the rule's id or service.

    Parameters
    ----------
    rule : CircleRule or UrbanRuralCircle
    scn : Scenario

    Returns
    -------
    str
        ``walk``, ``ebike`` or ``drive``.
    """
    over = scn.network.mode if scn.network is not None else {}
    return over.get(rule.id, over.get(getattr(rule, "service", ""), rule.mode))


def _step(progress: Any, text: str) -> None:
    if progress is not None:
        progress(text)


# ----------------------------------------------------------------------------------------------
# stage 3: access and evaluation
# ----------------------------------------------------------------------------------------------


def circle_times(model: Model, progress: Any = None, reuse: Model | None = None) -> gpd.GeoDataFrame:
    """Add ``t_<rule id>`` (minutes or metres, ``inf`` beyond), ``f_<rule id>`` (nearest facility id) and ``no_road`` to the demand cells, one bounded multi-source search per rule.

    Parameters
    ----------
    model : Model
    progress : callable, optional
        Called with a short text per rule.
    reuse : Model, optional
        An evaluated model on the same cells and graphs (:func:`with_facilities`): a rule whose
        sources are the same facilities at the same places there takes its columns from it instead
        of searching again (``covplan site``: only the sited service's rules change).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of the model's cells with the columns added.
    """
    inputs, cells = model.inputs, model.cells.copy()
    scn = inputs.scenario
    for rule in _rules(inputs.preset):
        if reuse is not None and rule.column in reuse.cells.columns and (
                rule_sources_key(model.inputs, rule) == rule_sources_key(reuse.inputs, rule)):
            cells[rule.column] = reuse.cells[rule.column].to_numpy()
            cells[f"f_{rule.id}"] = reuse.cells[f"f_{rule.id}"].to_numpy()
            continue
        mode = mode_of(rule, scn)
        g, sc = model.graphs[mode], model.snapped_cells[mode]
        _step(progress, f"可达性 / access: {rule.id}")
        sources, ids = _rule_sources(model, rule, mode)
        if sources is None:
            cells[rule.column] = np.inf
            cells[f"f_{rule.id}"] = None
            continue
        res = access.nearest(g, sc, sources, limit=rule.threshold, weight=rule.unit)
        cells[rule.column] = res[rule.unit].to_numpy()
        cells[f"f_{rule.id}"] = _facility_ids(res["facility"].to_numpy(), ids)
    ok = np.zeros(len(cells), dtype=bool)
    for s in model.snapped_cells.values():
        ok |= s.ok
    cells["no_road"] = ~ok
    return cells


def _facility_ids(labels: np.ndarray, ids: dict) -> np.ndarray:
    """Facility ids (``fid``) of nearest-facility index labels; None where there is none."""
    out = np.full(len(labels), None, dtype=object)
    has = pd.notna(labels)
    if has.any():
        out[has] = pd.Series(ids, dtype=object).loc[labels[has]].to_numpy()
    return out


def rule_sources_key(inputs: Inputs, rule: Any, capacity: bool = False) -> tuple:
    """What a rule's times depend on besides the cells and graphs: its sources' ids and places.

    Two inputs with equal keys give the rule the same ``t_``/``f_`` columns on the same model data
    (with ``capacity``, the same E2SFCA ratios too).
    """
    if rule.service == "urban_rural":
        return ("seat", tuple(inputs.seat) if inputs.seat is not None else None)
    fac = inputs.facilities
    m = fac["ftype"].isin(rule.ftypes).to_numpy()
    sub = fac[m]
    cap = pd.to_numeric(sub["capacity"], errors="coerce").fillna(-1.0) if capacity else pd.Series(0.0, index=sub.index)
    return tuple(sorted(zip(sub["fid"].astype(str), np.round(sub.geometry.x, 3), np.round(sub.geometry.y, 3), cap)))


def _rule_sources(model: Model, rule: Any, mode: str) -> tuple[Any, dict]:
    """The snapped sources of a rule: facilities of its types, or the county seat for 15 km."""
    inputs = model.inputs
    g = model.graphs[mode]
    if rule.service == "urban_rural":
        if inputs.seat is None:
            return None, {}
        seat = gpd.GeoDataFrame(
            {"fid": ["seat"]}, geometry=gpd.points_from_xy([inputs.seat[0]], [inputs.seat[1]]), crs="EPSG:4326"
        ).to_crs(inputs.crs)
        # the seat is a place, not a building: snap it without the leg cap
        return access.snap(g, seat, max_leg_m=float("inf")), {0: "城区"}
    mask = inputs.facilities["ftype"].isin(rule.ftypes).to_numpy()
    if not mask.any():
        return None, {}
    snapped = model.snapped_facilities[mode].take(mask)
    ids = dict(zip(inputs.facilities.index[mask], inputs.facilities["fid"][mask]))
    return snapped, ids


def evaluate_model(model: Model, progress: Any = None, reuse: RunResult | None = None) -> RunResult:
    """Circle times, coverage tables, presence and provision checks, clusters and the gap table.

    Parameters
    ----------
    model : Model
    progress : callable, optional
        Called with a short text per step.
    reuse : RunResult, optional
        An evaluated run on the same data (:func:`with_facilities`): every rule whose sources are
        unchanged takes its times (:func:`circle_times`), E2SFCA ratios (:func:`supply_ratios`)
        and clusters of uncovered people from it instead of computing them again.

    Returns
    -------
    RunResult
    """
    inputs = model.inputs
    preset = inputs.preset
    cells = circle_times(model, progress, reuse=reuse.model if reuse is not None else None)
    _step(progress, "供需比 / supply ratios (E2SFCA)")
    cells, ratios = supply_ratios(model, cells, reuse=reuse)
    model.cells = cells
    _step(progress, "评估 / evaluation")
    no_data = evaluate.no_data_rules(preset, inputs.facilities, inputs.seat)
    cov = evaluate.circle_coverage(cells, preset, units=inputs.units, no_data=no_data)
    pres = evaluate.presence(inputs.facilities, inputs.units, inputs.villages, preset, cells=cells)
    prov = evaluate.provision(inputs.facilities, cells, inputs.units, preset)
    summ = evaluate.summary(
        cells, preset, inputs.scenario.name, units=inputs.units, presence_df=pres, provision_df=prov,
        no_data=no_data,
    )
    summ["area"] = _area_summary(inputs, cells)
    summ["supply_ratio"] = ratios
    summ["synthetic"] = bool(inputs.synthetic)  # every reader labels the outputs 合成示例数据
    summ["run"] = run_info(inputs)
    grid = inputs.grid
    summ["population_grid"] = {
        "resolution_m": float(abs(grid.transform.a)),
        "source_resolution_m": grid.source_resolution_m,
        "method": grid.method,
        "basis": inputs.scenario.population.basis,
    }
    # what changed the figures (assumed shares, suspected GCJ-02, a broken network …), for every reader
    summ["warnings"] = [p.as_dict() for p in [*model.problems, *_no_data_problems(summ)] if p.severity != "error"]
    net = inputs.scenario.network
    speeds = _speeds(net.speeds) if net is not None else None  # the scenario's, as for the road graphs
    by_rule = {
        rule.id: (reuse.clusters[rule.id] if _unchanged(model, reuse, rule) and rule.id in reuse.clusters  # type: ignore[union-attr]
                  else evaluate.uncovered_clusters(cells, rule, villages=inputs.villages, speeds=speeds))
        for rule in _rules(preset)
    }
    clusters = [c for c in by_rule.values() if c is not None and len(c)]
    cl = pd.concat(clusters, ignore_index=True) if clusters else None
    year = inputs.scenario.output.year or (pd.Timestamp.today().year + 1)
    gaps = evaluate.gap_table(cov, pres, prov, cl, preset, county_name(inputs), year, no_data=no_data,
                              cells=cells)
    return RunResult(
        model=model, summary=summ, by_unit=cov, gaps=gaps, presence=pres, provision=prov, clusters=by_rule,
    )


def _unchanged(model: Model, reuse: RunResult | None, rule: Any, capacity: bool = False) -> bool:
    """Whether ``reuse`` holds this rule's results for ``model`` (same sources; with capacities)."""
    return reuse is not None and rule_sources_key(model.inputs, rule, capacity) == rule_sources_key(
        reuse.model.inputs, rule, capacity)


def run_date() -> str:
    """The run's date (ISO, local time); ``SOURCE_DATE_EPOCH`` fixes it for reproducible outputs."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC).date().isoformat()
    return datetime.date.today().isoformat()


def _source_files(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every input path of a scenario (walked generically), as ``(key path, file name)``."""
    if isinstance(value, Path):
        yield key, value.name
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _source_files(getattr(value, name), f"{key}.{name}" if key else name)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _source_files(v, f"{key}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _source_files(v, f"{key}[{i}]")


def run_info(inputs: Inputs) -> dict[str, Any]:
    """Date, preset and input files of a run: the provenance block of the report and the map.

    Returns
    -------
    dict
        ``date`` (:func:`run_date`), ``preset`` (name), ``preset_title``, ``sources``: a list of
        ``{"key": "facilities[0].path", "file": "facilities.csv"}`` for every input file the
        scenario names (the scenario YAML itself first), and ``synthetic``.
    """
    scn = inputs.scenario
    sources = [{"key": "scenario", "file": scn.source.name}] if scn.source is not None else []
    seen = set()
    for key, name in _source_files(scn):
        if key.startswith("output") or key == "source" or (key, name) in seen:
            continue
        seen.add((key, name))
        sources.append({"key": key.removesuffix(".path"), "file": name})
    return {
        "date": run_date(), "preset": inputs.preset.name, "preset_title": inputs.preset.title,
        "sources": sources, "synthetic": bool(inputs.synthetic),
    }


def _area_summary(inputs: Inputs, cells: gpd.GeoDataFrame) -> dict[str, Any]:
    """Where the 城区 and the seat come from (``given`` / ``derived`` 推算 / ``none``) and the urban share."""
    pop = float(cells["pop"].sum())
    urban_pop = float(cells.loc[cells["urban"].astype(bool), "pop"].sum())
    src = "derived" if inputs.urban_derived else ("given" if inputs.urban_area is not None else "none")
    return {
        "urban": src, "urban_population": round(urban_pop, 1),
        "urban_share": round(urban_pop / pop, 6) if pop > 0 else None,
        "seat": list(inputs.seat) if inputs.seat is not None else None,
        "seat_source": "derived" if inputs.seat_derived else ("given" if inputs.seat is not None else "none"),
    }


def _no_data_problems(summary: dict) -> list[Problem]:
    """One ``no_facility_data`` warning per service whose figure is ``null`` for want of facilities."""
    out = []
    for key, cat in summary["categories"].items():
        if cat["population_covered"] is None and cat.get("note"):
            label = categories.service_label(key)
            out.append(Problem(
                zh=f"{label}：输入中没有该服务的设施（或缺少部分设施类型），覆盖人口和覆盖率记为“无设施数据”，不是 0。请补充设施文件。",
                en=f"{key}: the inputs hold no facility of this service (or of some of its types); its coverage is recorded as no data, not 0. Add the facility file.",
                field="facilities", severity="warning", code="no_facility_data",
            ))
    return out


def no_data_of(summary: dict) -> dict[str, str]:
    """The rules without input data recorded in a summary (``no_data``): rule id → note."""
    return {x["rule"]: x["note"] for x in summary.get("no_data") or []}


def supply_ratios(model: Model, cells: gpd.GeoDataFrame, reuse: RunResult | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """E2SFCA supply-to-demand ratios per headline circle rule, per cell and by unit.

    For every headline rule in minutes whose facility types carry capacities (学位, 托位, 床位, m²),
    :func:`coverage.access.e2sfca` (step decay over the rule's threshold, on the rule's mode) gives
    each cell the capacity within reach per person of the rule's group, counting only people on the
    rule's side (urban or rural); it is stored ×1000 as ``e2sfca_<rule id>`` (capacity per 1,000
    people; NaN off the rule's side). Facilities of those types without a capacity are left out of
    the ratio (their count is reported). Unit and county figures are the group-weighted means of
    the cells. Note that E2SFCA conserves supply: the county mean equals the capacity of the
    facilities that reach anyone divided by the people on that side, so the spread between units,
    not the county mean, is what it adds to the per-1000 checks.

    Parameters
    ----------
    model : Model
    cells : geopandas.GeoDataFrame
        The model's cells with their circle times.
    reuse : RunResult, optional
        An evaluated run on the same data: rules whose facilities and capacities are unchanged
        take their ratios from it.

    Returns
    -------
    cells : geopandas.GeoDataFrame
        With the new columns.
    ratios : dict
        ``rule id → {service, capacity_unit, group, per, minutes, mode, facilities,
        facilities_without_capacity, county, by_unit: [{code, name, value}]}``.
    """
    inputs = model.inputs
    fac = inputs.facilities
    cap = pd.to_numeric(fac["capacity"], errors="coerce").to_numpy(dtype=float)
    cells = cells.copy(deep=False)  # new columns only; the caller's frame is left as it was
    # units in code order and the first name each has among the cells
    unit_idx, unit_codes = pd.factorize(cells["unit_code"].to_numpy(), sort=True)
    first = pd.Series(unit_idx).drop_duplicates()
    unit_names = np.empty(len(unit_codes), dtype=object)
    unit_names[first.to_numpy()] = cells["unit_name"].to_numpy()[first.index.to_numpy()]
    out: dict[str, Any] = {}
    for service in categories.SERVICES:
        for rules in inputs.preset.headline(service).values():
            for rule in rules:
                if rule.unit != "minutes":
                    continue
                of_type = fac["ftype"].isin(rule.ftypes).to_numpy()
                use = of_type & np.isfinite(cap) & (cap > 0)
                if not use.any():
                    continue
                col = f"e2sfca_{rule.id}"
                if (reuse is not None and rule.id in reuse.summary.get("supply_ratio", {})
                        and col in reuse.model.cells.columns and _unchanged(model, reuse, rule, capacity=True)):
                    cells[col] = reuse.model.cells[col].to_numpy()
                    out[rule.id] = reuse.summary["supply_ratio"][rule.id]
                    continue
                mode = mode_of(rule, inputs.scenario)
                g = model.graphs[mode]
                # demand = the rule's group on the rule's side (urban/rural) only
                side = evaluate.applies_mask(cells, rule.applies_to)
                weight = cells[rule.group].to_numpy(dtype=float) * side
                a = access.e2sfca(
                    g, model.snapped_cells[mode], model.snapped_facilities[mode].take(use),
                    rule.threshold, capacity=cap[use], population=weight,
                ).to_numpy() * 1000.0
                col = f"e2sfca_{rule.id}"
                cells[col] = np.where(side, a, np.nan)  # not defined off the rule's side
                units_ = _unit_means(cells[col].to_numpy(dtype=float), weight, unit_idx, unit_codes, unit_names)
                out[rule.id] = {
                    "service": service, "capacity_unit": str(fac.loc[use, "capacity_unit"].mode().iloc[0]),
                    "group": rule.group, "per": 1000, "minutes": rule.threshold, "mode": mode,
                    "facilities": int(use.sum()), "facilities_without_capacity": int((of_type & ~use).sum()),
                    "county": _weighted_mean(cells[col], pd.Series(weight)), "by_unit": units_,
                }
    return cells, out


def _unit_means(
    values: np.ndarray, weights: np.ndarray, unit_idx: np.ndarray, codes: Any, names: np.ndarray
) -> list[dict[str, Any]]:
    """:func:`_weighted_mean` of every unit at once: ``[{code, name, value}]`` in code order, units without weight left out (a NaN value among the weighted cells makes the unit's value NaN, as in ``numpy.average``)."""
    keep = weights > 0
    n = len(codes)
    wsum = np.bincount(unit_idx[keep], weights=weights[keep], minlength=n)
    vsum = np.bincount(unit_idx[keep], weights=values[keep] * weights[keep], minlength=n)
    return [{"code": str(codes[i]), "name": str(names[i]), "value": float(vsum[i] / wsum[i])}
            for i in np.flatnonzero(wsum > 0)]


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float | None:
    """Weighted mean over cells with weight > 0 (None when there are none)."""
    w = weights.to_numpy(dtype=float)
    keep = w > 0
    return float(np.average(values.to_numpy(dtype=float)[keep], weights=w[keep])) if keep.any() else None


def county_name(inputs: Inputs) -> str:
    """The county's name: ``output.county``, else the boundary's ``name`` field, else the scenario."""
    if inputs.scenario.output.county:
        return inputs.scenario.output.county
    if "name" in inputs.boundary.columns and str(inputs.boundary["name"].iloc[0]).strip():
        return str(inputs.boundary["name"].iloc[0])
    return inputs.scenario.name


# ----------------------------------------------------------------------------------------------
# stage 4: outputs
# ----------------------------------------------------------------------------------------------


def unit_shares(result: RunResult, svc: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """The 乡镇/街道 layer with population and coverage share per service (``share_<service>``).

    ``svc`` is :func:`coverage.evaluate.service_coverage` of the run when the caller has it already.
    """
    inputs = result.model.inputs
    if svc is None:
        svc = evaluate.service_coverage(result.model.cells, inputs.preset, units=inputs.units,
                                        no_data=no_data_of(result.summary))
    sc = svc[svc["unit_code"] != ""]
    # pivot, not pivot_table: a service without data (all NaN) keeps its column
    wide = sc.pivot(index="unit_code", columns="service", values="share")
    wide.columns = [f"share_{c}" for c in wide.columns]
    cells = result.model.cells
    pop = pd.Series(cells["pop"].to_numpy(), index=cells["unit_code"].to_numpy()).groupby(level=0).sum()
    units = inputs.units.merge(wide, left_on="code", right_index=True, how="left")
    return units.merge(pop.rename("population"), left_on="code", right_index=True, how="left")


def lacking(result: RunResult) -> dict[str, np.ndarray]:
    """People of each service's groups outside its circle, per cell (service → array; services without headline rules are left out)."""
    cells = result.model.cells
    preset = result.model.inputs.preset
    out = {}
    for service in categories.SERVICES:
        if not preset.headline(service):
            continue
        cat = result.summary["categories"].get(service)
        if cat is not None and cat.get("population_covered") is None:
            continue  # no facility data: nobody is "uncovered", the figure is unknown
        pop, cov = evaluate.service_cells(cells, preset, service)
        out[service] = pop - cov
    return out


def uncovered_cells(
    result: RunResult, block_m: float | None = None, lack: dict[str, np.ndarray] | None = None,
) -> gpd.GeoDataFrame:
    """People outside each service's circle: ``service``, ``pop`` (uncovered), ``unit_name``.

    With ``block_m`` the cells are summed into square blocks of that size (points at the
    population-weighted centre), which keeps the meeting map light; without it, one row per cell.
    ``lack`` is :func:`lacking` of the run when the caller has it already.
    """
    cells = result.model.cells
    x, y = cells.geometry.x.to_numpy(), cells.geometry.y.to_numpy()
    names = cells["unit_name"].to_numpy()
    frames = []
    for service, short in (lack if lack is not None else lacking(result)).items():
        keep = short > 0.5
        if not keep.any():
            continue
        pop, xs, ys, name = short[keep], x[keep], y[keep], names[keep]
        if block_m:
            bx = np.floor(xs / block_m)
            by = np.floor(ys / block_m)
            # blocks in (bx, by) order; a block is named after the unit of its most populous cell
            # (the first such cell on a tie)
            order = np.lexsort((-pop, by, bx))
            bx, by, pop, xs, ys, name = bx[order], by[order], pop[order], xs[order], ys[order], name[order]
            first = np.ones(len(bx), dtype=bool)
            first[1:] = (bx[1:] != bx[:-1]) | (by[1:] != by[:-1])
            block = np.cumsum(first) - 1
            total = np.bincount(block, weights=pop)
            xs = np.bincount(block, weights=xs * pop) / total
            ys = np.bincount(block, weights=ys * pop) / total
            pop, name = total, name[first]
        frames.append(gpd.GeoDataFrame(
            {"service": service, "pop": pop, "unit_name": name},
            geometry=gpd.points_from_xy(xs, ys), crs=cells.crs,
        ))
    if not frames:
        return gpd.GeoDataFrame({"service": [], "pop": []}, geometry=[], crs=cells.crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=cells.crs)


def circle_polygons(result: RunResult) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
    """Service-circle polygons drawn from the reached road network (not buffers), per circle rule, and the 15 km 城乡服务圈 polygon."""
    from coverage.network import segment_index
    from coverage.report.circles import reached_area

    model = result.model
    scn = model.inputs.scenario
    rows, urc = [], None
    drawn: dict[tuple, Any] = {}  # rules with the same sources, mode and threshold share a polygon
    todo: dict[tuple, Any] = {}
    for rule in _rules(model.inputs.preset):
        mode = mode_of(rule, scn)
        key = (mode, rule.service == "urban_rural" or tuple(sorted(rule.ftypes)), rule.threshold, rule.unit)
        if key not in todo:
            todo[key] = rule

    def draw(key: tuple) -> Any:
        rule, mode = todo[key], key[0]
        g = model.graphs[mode]
        sources, _ = _rule_sources(model, rule, mode)
        if sources is None:
            return None
        t = access.node_times(g, sources, limit=rule.threshold, weight=rule.unit)
        # a node is inside the circle when someone standing there is within the threshold
        seg = segment_index(g)  # built for snapping already (cached on the graph)
        return reached_area(g.x, g.y, g.indptr, g.indices, t, threshold=rule.threshold, segments=(seg.a, seg.b))

    # one after the other (16x demo: ten circles in ~2.6 s since the compiled grid passes; an older
    # try with two threads around rasterio saw GDAL warnings, a possible race)
    drawn = {key: draw(key) for key in todo}
    for rule in _rules(model.inputs.preset):
        mode = mode_of(rule, scn)
        g = model.graphs[mode]
        key = (mode, rule.service == "urban_rural" or tuple(sorted(rule.ftypes)), rule.threshold, rule.unit)
        poly = drawn[key]
        if poly is None:
            continue
        if poly.is_empty:
            continue
        if rule.service == "urban_rural":
            urc = gpd.GeoDataFrame({"rule_id": [rule.id], "label": [rule.label]}, geometry=[poly], crs=g.crs)
            continue
        rows.append({"service": rule.service, "rule_id": rule.id, "label": rule.label,
                     "applies_to": rule.applies_to, "mode": mode, "threshold": rule.threshold,
                     "unit": rule.unit, "geometry": poly})
    circles = gpd.GeoDataFrame(rows, geometry="geometry", crs=model.inputs.crs) if rows else None
    return circles, urc


#: (top, budget 万元) of the 项目库 sheet for :func:`write_outputs` (``covplan run/site --top --budget``).
_BANK_LIMITS: contextvars.ContextVar[tuple[int | None, float | None]] = contextvars.ContextVar(
    "bank_limits", default=(evaluate.BANK_TOP, None))


@contextlib.contextmanager
def bank_limits(top: int | None = None, budget: float | None = None) -> Iterator[None]:
    """Limit the 项目库 sheet of the ``gaps.xlsx`` written inside the block.

    At most ``top`` rows (default 50) costing at most ``budget`` 万元; the rest go to 储备项目
    (see :func:`coverage.evaluate.select_bank`).
    """
    token = _BANK_LIMITS.set((evaluate.BANK_TOP if top is None else top, budget))
    try:
        yield
    finally:
        _BANK_LIMITS.reset(token)


def whatif_data(
    result: RunResult, svc: pd.DataFrame, proposed: gpd.GeoDataFrame | None = None
) -> dict[str, Any] | None:
    """Sparse catchments of the sites a meeting can toggle in map.html (its 情景推演 panel).

    The toggleable sites are the scenario's candidates (each built as the facility type
    :func:`coverage.plans.candidate_ftypes` proposes for the service) and ``proposed`` (facilities the
    run added: ``covplan site`` or ``compare``; they are on when the page opens). Per service, a
    row is a (headline rule, cell) pair as :func:`coverage.plans.service_cover` builds it, with the
    people of the rule's group: the service figure is the sum over rows, exactly as
    :func:`coverage.evaluate.service_cells` counts it. Rows covered by the fixed facilities form
    the base; rows a toggleable site would newly cover are merged into groups of the same
    乡镇 and the same set of sites (so a row is counted once whatever sites are on).

    Parameters
    ----------
    result : RunResult
        The evaluated run (proposed sites, if any, are among its facilities).
    svc : pandas.DataFrame
        :func:`coverage.evaluate.service_coverage` of the run.
    proposed : geopandas.GeoDataFrame, optional
        Facilities the run added (``fid``; ``cid`` when they come from candidates).

    Returns
    -------
    dict or None
        ``None`` when there is nothing to toggle. Otherwise ``units`` (乡镇 names), ``sites``
        (``[name, kind]``, kind ``c`` candidate or ``p`` proposed) and ``services``: per service
        ``key``, ``pop``, ``base`` (county people covered by the fixed facilities), ``units``
        (``[people, base covered]`` per 乡镇), ``w`` (people per group, integer hundredths),
        ``gu`` (乡镇 of each group), ``sites`` (site index → sorted group indices), ``ft`` (site index →
        facility type label) and ``on`` (sites on when the page opens).
    """
    from coverage import plans  # same stage; plans imports this module at load time

    model = result.model
    inputs, cells = model.inputs, model.cells
    fac = inputs.facilities
    prop_fids = set(proposed["fid"]) if proposed is not None and len(proposed) else set()
    cands = inputs.candidates
    if cands is not None and proposed is not None and len(proposed) and "cid" in proposed and "cid" in cands:
        cands = cands[~cands["cid"].isin(proposed["cid"])].reset_index(drop=True)  # proposed from these
    if cands is None:
        cands = gpd.GeoDataFrame({"cid": [], "name": []}, geometry=[], crs=inputs.crs)
    if not len(cands) and not prop_fids:
        return None
    unit_rows = svc[(svc["unit_code"] != evaluate.COUNTY_CODE)].drop_duplicates("unit_code")
    unit_pos = {c: i for i, c in enumerate(unit_rows["unit_code"])}
    cell_codes = cells["unit_code"].astype("string").fillna(evaluate.UNASSIGNED_CODE).replace("", evaluate.UNASSIGNED_CODE)
    cell_unit = np.array([unit_pos.get(c, -1) for c in cell_codes], dtype=np.int64)
    prop_rows = fac[fac["fid"].isin(prop_fids)]
    sites = [[str(n), "c"] for n in cands["name"]] + [[str(n), "p"] for n in prop_rows["name"]]
    prop_site = {fid: len(cands) + k for k, fid in enumerate(prop_rows["fid"])}
    no_data = no_data_of(result.summary)
    rules = {r.id: r for sides in (inputs.preset.headline(s) for s in categories.SERVICES) for rs in sides.values() for r in rs}
    services = []
    for service in categories.SERVICES:
        hl = inputs.preset.headline(service)
        if not hl or any(r.id in no_data for rs in hl.values() for r in rs):
            continue
        existing = fac[(fac["category"] == service).to_numpy() & fac["fid"].isin(prop_fids).to_numpy()]
        if not len(cands) and not len(existing):
            continue
        # columns: the proposed facilities of the service (toggleable), then the candidates
        is_prop = (fac["category"] == service).to_numpy() & fac["fid"].isin(prop_fids).to_numpy()
        # rows only where the fixed facilities leave people uncovered: the rest is the base whatever
        # is toggled (and their catchments would not fit in memory for a large county)
        fixed = _fixed_covered(model, [r for rs in hl.values() for r in rs], prop_fids)
        cover, weights, locked, rows = plans.service_cover(model, service, cands, existing=is_prop,
                                                           demand={k: ~v for k, v in fixed.items()})
        n_exist = len(locked)
        prop_cols = {j: prop_site[f] for j, f in enumerate(fac["fid"][is_prop]) if f in prop_site}
        toggles = {**prop_cols, **{n_exist + k: k for k in range(len(cands))}}
        cell = rows["cell"].to_numpy()
        fixed_cov = np.zeros(len(rows), dtype=bool)
        prop_cov = np.asarray(cover[:, list(prop_cols)].sum(axis=1)).ravel() > 0 if prop_cols else np.zeros(len(rows), bool)
        # covered in the run, as evaluate counts it (the rule's time within its threshold)
        run_cov = np.zeros(len(rows), dtype=bool)
        for rid, idx in rows.groupby("rule_id").indices.items():
            rule = rules[rid]
            t = pd.to_numeric(cells[rule.column], errors="coerce").to_numpy(dtype=float)[cell[idx]]
            run_cov[idx] = t <= rule.threshold
        drop = run_cov & ~fixed_cov & prop_cov  # covered only thanks to a proposed site
        base_rows = run_cov & ~drop
        new = cover[:, list(toggles)].tocsr()
        new = new.multiply(~base_rows[:, None]).tocsr()
        new.eliminate_zeros()
        col_site = np.array(list(toggles.values()), dtype=np.int64)
        groups: dict[tuple[int, tuple[int, ...]], int] = {}
        w: list[float] = []
        gu: list[int] = []
        site_groups: dict[int, list[int]] = {}
        for r in np.flatnonzero(np.diff(new.indptr) > 0):
            key = (int(cell_unit[cell[r]]), tuple(sorted(col_site[new.indices[new.indptr[r]:new.indptr[r + 1]]].tolist())))
            g = groups.get(key)
            if g is None:
                g = groups[key] = len(w)
                w.append(0.0)
                gu.append(key[0])
                for s in key[1]:
                    site_groups.setdefault(s, []).append(g)
            w[g] += float(weights[r])
        table = svc[svc["service"] == service].set_index("unit_code")
        county = table.loc[evaluate.COUNTY_CODE]
        drop_w = np.bincount(cell_unit[cell[drop]] + 1, weights=weights[drop], minlength=len(unit_pos) + 1)[1:]
        units = [[round(float(table.at[c, "population"]), 2), round(float(table.at[c, "covered"]) - float(d), 2)]
                 for c, d in zip(unit_rows["unit_code"], drop_w)]
        ftypes = plans.candidate_ftypes(model, service, cands) if len(cands) else np.array([], dtype=object)
        ft = {k: categories.FTYPES[f].label for k, f in enumerate(ftypes)}
        ft.update({prop_cols[j]: categories.FTYPES[existing["ftype"].iloc[j]].label for j in prop_cols
                   if existing["ftype"].iloc[j] in categories.FTYPES})
        services.append({
            "key": service, "pop": round(float(county["population"]), 2),
            "base": round(float(county["covered"]) - float(weights[drop].sum()), 2),
            "units": units, "w": [int(round(x * 100)) for x in w], "gu": gu,
            "sites": {str(s): g for s, g in sorted(site_groups.items())},
            "ft": {str(k): v for k, v in sorted(ft.items())}, "on": sorted(prop_cols.values()),
        })
    if not services:
        return None
    return {"units": unit_rows["unit_name"].astype(str).tolist(), "sites": sites, "services": services}


def _fixed_covered(model: Model, rules: list[Any], exclude: set[str]) -> dict[str, np.ndarray]:
    """Per rule, the cells covered by the facilities not in ``exclude`` (bool over the model's cells).

    Without excluded facilities this is the run's own coverage (the rule's time within its
    threshold); otherwise one bounded search per rule from the other facilities of its types.
    """
    cells, fac = model.cells, model.inputs.facilities
    out = {}
    for rule in rules:
        keep = fac["ftype"].isin(rule.ftypes).to_numpy() & ~fac["fid"].isin(exclude).to_numpy()
        if not exclude or not (fac["ftype"].isin(rule.ftypes) & fac["fid"].isin(exclude)).any():
            t = pd.to_numeric(cells[rule.column], errors="coerce").to_numpy(dtype=float)
        elif not keep.any():
            t = np.full(len(cells), np.inf)
        else:
            mode = mode_of(rule, model.inputs.scenario)
            t = access.nearest(model.graphs[mode], model.snapped_cells[mode], model.snapped_facilities[mode].take(keep),
                               limit=rule.threshold, weight=rule.unit)[rule.unit].to_numpy()
        out[rule.id] = t <= rule.threshold
    return out


def write_outputs(  # noqa: PLR0913 - issue 11: to narrow/split
    result: RunResult,
    out: str | Path,
    progress: Any = None,
    tiles: str = "none",
    *,
    tianditu_key: str | None = None,
    comparison: pd.DataFrame | None = None,
    proposed: gpd.GeoDataFrame | None = None,
    extra_layers: dict[str, gpd.GeoDataFrame] | None = None,
    change: gpd.GeoDataFrame | None = None,
) -> RunResult:
    """Write summary.json, coverage_by_unit.csv, gaps.xlsx, layers.gpkg, map.html and report.html into ``out`` atomically.

    Parameters
    ----------
    result : RunResult
    out : str or Path
        Output folder; replaced only when every file is written.
    progress : callable, optional
        Called with a short text per step.
    tiles : {"none", "osm", "amap", "tianditu"}
        Basemap of map.html (``none`` works offline; ``amap`` shifts the overlays to GCJ-02).
    tianditu_key : str, optional
        The user's 天地图 key, needed for ``tiles="tianditu"``.
    comparison : pandas.DataFrame, optional
        Plan-vs-baseline table (:func:`coverage.compare.unit_diff`): written to ``comparison.csv`` and
        the ``方案比较`` sheet.
    proposed : geopandas.GeoDataFrame, optional
        Proposed or planned facilities, drawn on the map and written to ``layers.gpkg``.
    extra_layers : dict, optional
        More layers for ``layers.gpkg``.
    change : geopandas.GeoDataFrame, optional
        Per-cell gains and losses against a baseline (:func:`coverage.compare.cell_diff`): a map
        layer and the ``coverage_change`` layer of ``layers.gpkg``.
    """
    from coverage.report import excel, gpkg, html, tables
    from coverage.report import map as map_

    inputs = result.model.inputs
    cells = result.model.cells
    title = inputs.scenario.name + ("（合成示例数据）" if inputs.synthetic and "合成" not in inputs.scenario.name else "")
    with atomic_output_dir(out) as tmp:
        _step(progress, "写出 / writing outputs")
        (tmp / "summary.json").write_text(
            json.dumps(result.summary, ensure_ascii=False, indent=2, allow_nan=False), encoding="utf-8"
        )
        no_data = no_data_of(result.summary)
        svc = evaluate.service_coverage(cells, inputs.preset, units=inputs.units, no_data=no_data)  # once, for all files
        rule_labels = {r.id: r.label for r in [*inputs.preset.circles, inputs.preset.urban_rural()] if r}
        if no_data:  # rows without input data say so instead of showing 0 covered
            csv = _no_data_csv(tables.coverage_csv_frame(result.summary, svc, result.by_unit, rule_labels),
                               svc, result.by_unit, rule_labels)
            code = tables.COLUMN_LABELS["unit_code"]
            csv[code] = csv[code].map(tables.excel_text)
            csv.to_csv(tmp / "coverage_by_unit.csv", index=False, encoding="utf-8-sig")
        else:
            tables.write_coverage_csv(tmp / "coverage_by_unit.csv", result.summary, svc, result.by_unit, rule_labels)
        by_service = {s: svc[svc["service"] == s] for s in svc["service"].unique()}
        top, budget = _BANK_LIMITS.get()
        excel.write_gaps_xlsx(tmp / "gaps.xlsx", result.gaps, result.summary, by_service=by_service,
                              comparison=comparison, top=top, budget=budget)
        if comparison is not None:
            comparison.to_csv(tmp / "comparison.csv", index=False, encoding="utf-8-sig")
        units = unit_shares(result, svc)
        lack = lacking(result)
        uncovered_map = uncovered_cells(result, block_m=settings.MAP_BLOCK_M, lack=lack)
        circles, urc = circle_polygons(result)
        layers = {
            "demand_cells": cells_layer(result), "facilities": inputs.facilities, "units": units,
            "uncovered": uncovered_layer(result, lack), "gaps": _gap_points(result.gaps),
        }
        if circles is not None:
            layers["service_circles"] = circles_layer(circles)
        if urc is not None:
            layers["urban_rural_circle"] = urc
        if inputs.villages is not None:
            layers["villages"] = inputs.villages
        if inputs.candidates is not None:
            layers["candidates"] = inputs.candidates
        derived = _derived_urban(inputs)
        if derived is not None:
            layers["urban_derived"] = derived
        if proposed is not None and len(proposed):
            layers["proposed"] = proposed
        layers.update(extra_layers or {})
        if change is not None and len(change):
            layers["coverage_change"] = change
        metres = {r.column for r in [*inputs.preset.active_circles(), inputs.preset.urban_rural()]
                  if r is not None and r.unit != "minutes"}
        # the per-cell layers are large: no R-tree (QGIS reads them without; "Create spatial index"
        # in the layer properties adds one when wanted)
        gpkg.write_layers(tmp / "layers.gpkg", layers, spatial_index_skip=CELL_LAYERS,
                          compact={k: compact_spec(layers[k], metres) for k in CELL_LAYERS if k in layers},
                          sides={"demand_cells": rule_sides(inputs.preset)}, rows_of={"uncovered": "demand_cells"},
                          keys=dict.fromkeys(("demand_cells", "uncovered"), "cell"))
        map_.write_map(
            tmp / "map.html", units=units, facilities=inputs.facilities, uncovered=uncovered_map,
            circles=circles, urban_rural_circle=urc, candidates=inputs.candidates, proposed=proposed,
            change=change, derived_urban=derived, whatif=whatif_data(result, svc, proposed),
            no_data=[k for k, c in result.summary["categories"].items() if c["population_covered"] is None],
            title=inputs.scenario.name, synthetic=inputs.synthetic, tiles=tiles, tianditu_key=tianditu_key,  # type: ignore[arg-type]  # checked by check_tiles
            service=map_service(result.summary), run=result.summary.get("run"),
        )
        times = report_times(result, no_data)
        by_unit_long = svc[svc["unit_code"] != ""].rename(columns={"unit_code": "code", "unit_name": "name"})
        html.write_report(
            tmp / "report.html", result.summary, by_unit_long, result.gaps, standards_checks(result),
            times, title=title, synthetic=inputs.synthetic,
            site_map=plan_map(result, proposed, uncovered_map),
        )
        files = sorted(p.name for p in tmp.iterdir())
    result.out_dir = Path(out)
    result.files = files
    return result


def report_times(result: RunResult, no_data: dict[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Minutes to the nearest facility and the people they concern, per service, for the report's time chart.

    One entry per (headline rule in minutes, cell of the rule's side with people of its group):
    the rule's time and the group's people, so the chart counts people and its total is the
    service's population in ``summary.json``.

    Returns
    -------
    dict
        Service key → ``(minutes, people)``, arrays of the same length.
    """
    cells = result.model.cells
    preset = result.model.inputs.preset
    out = {}
    for service in categories.SERVICES:
        ts, ws = [], []
        for side, rules in preset.headline(service).items():
            mask = evaluate.applies_mask(cells, side)
            for r in rules:
                if r.unit != "minutes" or r.id in no_data or r.group not in cells.columns:
                    continue
                g = cells[r.group].to_numpy(dtype=float) * mask
                keep = g > 0
                ts.append(cells[r.column].to_numpy(dtype=float)[keep])
                ws.append(g[keep])
        if ts:
            out[service] = (np.concatenate(ts), np.concatenate(ws))
    return out


def plan_map(result: RunResult, proposed: gpd.GeoDataFrame | None, uncovered: gpd.GeoDataFrame) -> str | None:
    """The report's static map of a plan (``covplan site``/``compare``): the sited service, or the added facilities' services.

    Returns
    -------
    str or None
        The SVG (:func:`coverage.report.sitemap.site_map_svg`); ``None`` without proposed sites.
    """
    from coverage.report import sitemap

    if proposed is None or not len(proposed):
        return None
    inputs = result.model.inputs
    siting = result.summary.get("siting") or {}
    services = [siting["service"]] if siting.get("service") else sorted(set(proposed["category"].dropna()))
    fac = inputs.facilities
    existing = fac[fac["category"].isin(services).to_numpy() & ~fac["fid"].isin(proposed["fid"]).to_numpy()]
    unc = uncovered[uncovered["service"].isin(services).to_numpy()] if len(uncovered) else None
    label = "、".join(categories.service_label(s) for s in services)
    return sitemap.site_map_svg(
        inputs.units, existing, proposed, unc, existing_label=f"现有{label}设施 / existing",
        title=f"{label}:{'选址方案' if siting else '方案新增设施'}示意图",
    )


def map_service(summary: dict[str, Any]) -> str | None:
    """The service map.html opens on: a siting run's (``summary["siting"]["service"]``), else the worst covered.

    The worst covered is the lowest ``share_covered`` among the services with data (ties in
    :data:`coverage.categories.SERVICES` order); ``None`` when no service has a share.
    """
    siting = summary.get("siting") or {}
    if siting.get("service"):
        return str(siting["service"])
    order = list(categories.SERVICES)
    shares = {k: c["share_covered"] for k, c in summary.get("categories", {}).items()
              if c.get("share_covered") is not None}
    return min(shares, key=lambda k: (shares[k], order.index(k) if k in order else len(order), k)) if shares else None


def _derived_urban(inputs: Inputs) -> gpd.GeoDataFrame | None:
    """The derived 城区 (``area.urban: auto``) with a name and a note for the map and layers.gpkg."""
    if not inputs.urban_derived or inputs.urban_area is None or not len(inputs.urban_area):
        return None
    u = inputs.urban_area
    return gpd.GeoDataFrame({
        "name": [f"城区（推算）：{k}" for k in u["kind_zh"]],
        "population": u["population"].to_numpy(), "area_km2": u["area_km2"].to_numpy(),
        "note": [f"{p:,.0f} 人，{a:.0f} 平方公里；按人口栅格推算（Degree of Urbanisation）/ derived"
                 for p, a in zip(u["population"], u["area_km2"])],
    }, geometry=u.geometry.to_numpy(), crs=u.crs)


def _no_data_csv(df: pd.DataFrame, svc: pd.DataFrame, by_rule: pd.DataFrame,
                 rule_labels: dict[str, str]) -> pd.DataFrame:
    """Write :data:`coverage.evaluate.NO_DATA` in 覆盖人口/未覆盖人口/覆盖率 of the rows without data.

    A row is matched on (服务 or 规则 label, 乡镇代码); the rows come from the NaN ``covered`` of
    :func:`coverage.evaluate.service_coverage` and :func:`coverage.evaluate.circle_coverage`.
    """
    from coverage.report import tables

    lab = tables.COLUMN_LABELS
    miss = set()
    for r in svc[svc["covered"].isna()].itertuples(index=False):
        miss.add(("service", tables.service_text(r.service), str(r.unit_code)))
    for r in by_rule[by_rule["covered"].isna() & (by_rule["note"] != "")].itertuples(index=False):
        miss.add(("rule", rule_labels.get(r.rule_id) or r.rule_id, str(r.unit_code)))
    out = df.copy()
    level = out[lab["level"]].map({v: k for k, v in tables.LEVELS.items()})
    key = np.where(level == "service", out[lab["service"]], out[lab["rule_id"]])
    hit = np.array([(lv, k, str(c)) in miss for lv, k, c in zip(level, key, out[lab["unit_code"]])], dtype=bool)
    for c in ("covered", "uncovered", "share"):
        whole = c != "share"  # people stay whole numbers (the NaN of the rows without data made them float)
        out[lab[c]] = [evaluate.NO_DATA if h else ("" if pd.isna(v) else (int(v) if whole else v))
                       for h, v in zip(hit, out[lab[c]])]
    return out



#: layers.gpkg layers with one row per demand cell, written without an R-tree.
CELL_LAYERS = ("demand_cells", "uncovered", "coverage_change")


def rule_sides(preset: Any) -> dict[str, str]:
    """``{column: "urban" | "rural"}``: the per-cell columns of rules that apply to one side only.

    Such a rule's time (``t_<id>``), nearest facility (``f_<id>``) and E2SFCA ratio
    (``e2sfca_<id>``) count only on its side; layers.gpkg stores an urban rule's column together
    with a rural rule's (:func:`coverage.report.gpkg.write_compact`).
    """
    out = {}
    for r in preset.active_circles():
        if r.applies_to in ("urban", "rural"):
            out.update({f"t_{r.id}": r.applies_to, f"f_{r.id}": r.applies_to, f"e2sfca_{r.id}": r.applies_to})
    return out


def circles_layer(circles: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The ``service_circles`` layer of layers.gpkg: one row per distinct drawing.

    Rules drawn alike (same sources, mode and threshold: e.g. the urban and rural fitness circles
    when both are 15 minutes' walk) share one row; its ``rule_id``, ``label`` and ``applies_to``
    list them, joined by ``;``.
    """
    if not len(circles):
        return circles
    key = circles.geometry.to_wkb()
    first = ~key.duplicated()
    out = circles[first.to_numpy()].copy()
    for col in ("rule_id", "label", "applies_to"):
        if col in circles.columns:
            joined = circles.groupby(key.to_numpy(), sort=False)[col].agg(lambda v: ";".join(dict.fromkeys(map(str, v))))
            out[col] = joined.reindex(key[first].to_numpy()).to_numpy()
    return out.reset_index(drop=True)


def compact_spec(layer: pd.DataFrame, metres: Collection[str] = ()) -> dict[str, int | None]:
    """How a per-cell layer is stored compactly in layers.gpkg (:func:`coverage.report.gpkg.write_compact`).

    Travel times to 0.1 min (``t_<rule>``; metres rules to 1 m), E2SFCA ratios to 0.01, every
    other float column (people) to 0.01 person; facility ids (``f_<rule>``) and ``unit_code`` are
    dictionary-coded. Integer columns are stored as they are.

    Parameters
    ----------
    layer : pandas.DataFrame
        ``demand_cells``, ``uncovered`` or ``coverage_change``.
    metres : collection of str
        Time columns of rules measured in metres (stored to 1 m).

    Returns
    -------
    dict
        ``{column: decimals}``, ``None`` for coded text.
    """
    spec: dict[str, int | None] = {}
    for c in layer.columns:
        s = layer[c]
        if c == "unit_code" or c.startswith("f_"):
            spec[c] = None
        elif not pd.api.types.is_float_dtype(s.dtype):
            continue
        elif c.startswith("t_"):
            spec[c] = 0 if c in metres else 1
        elif c.startswith("e2sfca_"):
            spec[c] = 2
        else:
            spec[c] = 2
    return spec


def cells_layer(result: RunResult) -> gpd.GeoDataFrame:
    """The ``demand_cells`` layer of layers.gpkg: the cells without repeated text.

    ``unit_name`` is left out (``unit_code`` joins the ``units`` layer, which has the names), so are
    the grid ``row`` and ``col`` (the point is the cell's centre; ``cell`` identifies it) and the
    15 km circle's ``f_`` column (its source is always the 城区), and
    travel times are rounded to 0.1 min (metres rules: to 1 m); everything else is as computed.
    """
    cells = result.model.cells
    out = cells.copy(deep=False)  # columns are dropped or replaced, never written into
    for c in ("unit_name", "lon", "lat", "row", "col"):  # row and col: the point is the cell's centre
        if c in out.columns:
            del out[c]
    rules = [*result.model.inputs.preset.active_circles(), result.model.inputs.preset.urban_rural()]
    urc = result.model.inputs.preset.urban_rural()
    if urc is not None and f"f_{urc.id}" in out.columns:  # always the 城区: t_<id> says who is reached
        del out[f"f_{urc.id}"]
    for rule in rules:
        if rule is not None and rule.column in out.columns:
            t = out[rule.column].to_numpy(dtype=float)
            out[rule.column] = np.round(t, 1 if rule.unit == "minutes" else 0)
    return out


def uncovered_layer(result: RunResult, lack: dict[str, np.ndarray] | None = None) -> gpd.GeoDataFrame:
    """The ``uncovered`` layer of layers.gpkg: one point per cell where someone lacks a service.

    Columns ``cell`` and ``unit_code`` (join ``demand_cells`` and ``units``) and one
    ``uncovered_<service>`` per service: people of the service's groups outside its circle
    (0 when fewer than half a person).
    """
    cells = result.model.cells
    lack = lack if lack is not None else lacking(result)
    data: dict[str, Any] = {}
    keep = np.zeros(len(cells), dtype=bool)
    for service, short in lack.items():
        short = np.where(short > 0.5, short, 0.0)
        data[f"uncovered_{service}"] = short
        keep |= short > 0
    idx = np.flatnonzero(keep)
    cols: dict[str, Any] = {c: cells[c].to_numpy()[idx] for c in ("cell", "unit_code") if c in cells.columns}
    cols.update({k: v[idx] for k, v in data.items()})
    return gpd.GeoDataFrame(cols, geometry=cells.geometry.array[idx], crs=cells.crs)


def _gap_points(gaps: pd.DataFrame) -> gpd.GeoDataFrame:
    lon = pd.to_numeric(gaps.get("lon"), errors="coerce") if len(gaps) else pd.Series(dtype=float)
    lat = pd.to_numeric(gaps.get("lat"), errors="coerce") if len(gaps) else pd.Series(dtype=float)
    return gpd.GeoDataFrame(gaps.copy(), geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")


def standards_checks(result: RunResult) -> pd.DataFrame:
    """Pass/fail of the presence and provision rules for the whole county, for the report.

    Presence rules: units of the rule's kind that have what they need, out of all such units (or,
    for share rules such as "≥ 50 % of 乡镇(街道)", the share reached). Provision rules: the county's
    value against its target.
    """
    preset = result.model.inputs.preset
    rules = {r.id: r for r in preset.active_presence()}
    no_data = no_data_of(result.summary)
    rows = []
    pres = result.presence
    if pres is not None and len(pres):
        for r in pres[pres["level"] == "county"].itertuples():
            rule = rules.get(r.rule_id)
            text = (rule.indicator or rule.label) if rule is not None else ""
            share = getattr(r, "target_share", np.nan)
            target = (f"≥ {share:.0%} 的{r.unit_kind}" if pd.notna(share)
                      else f"每个{r.unit_kind} ≥ {rule.min_count if rule else 1}")
            rows.append({
                "rule": r.rule_id, "indicator": text or r.rule_id, "nature": r.nature,
                "target": target, "value": f"{int(r.found)}/{int(r.required)}", "pass": bool(r.ok),
            } if r.rule_id not in no_data else {
                "rule": r.rule_id, "indicator": text or r.rule_id, "nature": r.nature,
                "target": target, "value": evaluate.NO_DATA, "pass": None,
            })
    prov = result.provision
    if prov is not None and len(prov):
        for r in prov[prov["level"] == "county"].itertuples():
            nd = r.rule_id in no_data
            rows.append({
                "rule": r.rule_id, "indicator": r.indicator, "nature": r.nature,
                "target": r.target, "value": evaluate.NO_DATA if nd else r.value, "pass": None if nd else r.ok,
            })
    return pd.DataFrame(rows, columns=["rule", "indicator", "nature", "target", "value", "pass"])


# ----------------------------------------------------------------------------------------------
# the commands
# ----------------------------------------------------------------------------------------------


def run_scenario(
    path: str | Path,
    out: str | Path,
    console: Console | None = None,
    tiles: str = "none",
    tianditu_key: str | None = None,
) -> RunResult:
    """Evaluate one scenario end to end and write every output file into ``out``."""
    from coverage.report.map import check_tiles

    check_tiles(tiles, tianditu_key)  # before the long run, not after it
    with progress(console) as step:
        step("读取输入 / reading inputs")
        inputs = load_inputs(path)
        model = build_model(inputs, step)
        result = evaluate_model(model, step)
        return write_outputs(result, out, step, tiles=tiles, tianditu_key=tianditu_key)


@contextlib.contextmanager
def progress(console: Console | None = None) -> Iterator[Callable[[str], None]]:
    """A spinner with elapsed time on stderr; yields ``step(text)`` to name the current step."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console or Console(stderr=True), transient=True) as prog:
        task = prog.add_task("")
        yield lambda text: prog.update(task, description=text)


def run_demo(out: str | Path, console: Console | None = None, tiles: str = "none",
             tianditu_key: str | None = None) -> RunResult:
    """Run the baseline scenario of the embedded synthetic demo county (示例县)."""
    return run_scenario(demo_scenario_path(), out, console=console, tiles=tiles, tianditu_key=tianditu_key)


def demo_scenario_path() -> Path:
    """The demo baseline scenario, beside the demo data (``scenarios/demo_baseline.yaml`` in a checkout; ``coverage/_demo/scenarios`` inside an installed wheel)."""
    from coverage import demo

    path = demo.demo_data_dir().parent / "scenarios" / "demo_baseline.yaml"
    if not path.is_file():
        raise InputError(
            f"找不到示例情景文件 {path}。请重新安装 covplan（pip install .）。",
            f"The demo scenario {path} is missing. Reinstall covplan (pip install .).",
            file=path,
        )
    return path
