"""The model a run asks its questions of: road graphs, demand cells and snaps, then its evaluation.

A :class:`Model` is built once (:func:`build_model`: one road graph per mode the preset needs, the
demand cells, and every cell and facility snapped once per mode) and then asked many questions:
:func:`evaluate_model` computes the circle times (:func:`circle_times`), the E2SFCA supply ratios
(:func:`supply_ratios`) and every evaluation table once into a :class:`RunResult`;
:func:`with_facilities` gives the same model with other facilities (``covplan site``, ``compare``,
the meeting server and the batch), and ``evaluate_model(..., reuse=base)`` takes from an earlier
run every rule whose sources are unchanged (:func:`rule_sources_key`).

Stage: after :mod:`coverage.access` and :mod:`coverage.evaluate` (it runs them), before the
commands (:mod:`coverage.pipeline`, :mod:`coverage.plans`) that write outputs.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import geopandas as gpd
import numpy as np
import pandas as pd

from coverage import access, categories, checks, demand, evaluate, network
from coverage.errors import InputError, Problem
from coverage.inputs import Inputs
from coverage.io.roads import RoadLines, RoadLinesOnce, wanted_fields

__all__ = [
    "Model", "RunResult", "build_model", "circle_times", "county_name", "evaluate_model", "evaluated", "mode_of",
    "no_data_of", "progress_step", "read_roads", "rule_sources", "rule_sources_key", "rules_of", "run_date",
    "run_info", "same_data", "scenario_speeds", "supply_ratios", "with_facilities",
]


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
    #: :func:`coverage.evaluate.service_coverage` of the run, as ``summary`` counted it (None: not kept)
    by_service: pd.DataFrame | None = None

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


def rules_of(preset: Any) -> list[Any]:
    """The circle rules a run evaluates: the preset's active circles, then the 15 km circle if it has one."""
    rules = list(preset.active_circles())
    urc = preset.urban_rural()
    if urc is not None:
        rules.append(urc)
    return rules


def read_roads(net: Any, modes: list[str], crs: Any, lines: RoadLines | None = None) -> dict[str, network.RoadGraph]:
    """Build the road graph of each mode from the scenario's ``network`` section (a line layer is read once for all modes).

    ``lines``: the road lines the inputs stage read (:attr:`coverage.inputs.Inputs.road_lines`); the
    graphs are built from them (:func:`coverage.network.from_lines`, the same graphs as reading the
    file) when they come from the scenario's file and layer and hold the fields the build uses;
    otherwise the file is read.

    Raises
    ------
    InputError
        Any failure to read the road file, with the file and what to check.
    """
    try:
        return _read_roads(net, modes, crs, lines)
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


def _read_roads(net: Any, modes: list[str], crs: Any, lines: RoadLines | None) -> dict[str, network.RoadGraph]:
    path = Path(net.roads.path)
    speeds = scenario_speeds(net.speeds)
    if (
        lines is not None
        and lines.same_source(path, net.roads.layer)
        and all(f in lines.fields for f in wanted_fields(lines.columns, net.class_field, "oneway", "maxspeed"))
    ):
        return network.from_lines(
            lines, modes, class_field=net.class_field, crs=crs, speeds=speeds, join_m=net.snap_m,
            class_map=net.class_map,
        )
    name = path.name.lower()
    if name.endswith((".pbf", ".osm")):
        return {m: network.read_osm(path, mode=m, crs=crs, speeds=speeds) for m in modes}
    if name.endswith(".graphml"):
        return {m: network.from_graphml(path, mode=m, crs=crs, speeds=speeds) for m in modes}
    return network.read_lines(  # a list of modes gives a dict
        path, mode=modes, class_field=net.class_field, layer=net.roads.layer, crs=crs, speeds=speeds,
        join_m=net.snap_m,
        class_map=net.class_map,
    )


def scenario_speeds(s: Any) -> dict[str, float] | None:
    """The scenario's ``network.speeds`` as ``{mode or road class: km/h}``; ``None`` when it sets none."""
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
    _cell_tree: Any = field(default=None, init=False, repr=False, compare=False)
    _tree_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    #: :func:`search_key` → which nodes of the rule's mode's graph are within its threshold of its
    #: sources, kept by :func:`circle_times` for drawing the circles (:meth:`reached_nodes`) without
    #: searching again (a bool per node: 0.4 MB per rule for a large county)
    _reached: dict[tuple, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and deep-copied without its lock (a lock cannot be), as it was before it had one."""
        state = self.__dict__.copy()
        state.pop("_tree_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tree_lock = threading.Lock()

    def cell_tree(self) -> Any:
        """The KD-tree (:class:`scipy.spatial.cKDTree`) over the cell centres, built on first use and kept.

        Thread-safe: a second caller waits for the first one's build. The build releases the GIL,
        so :func:`evaluate_model` starts it in a thread beside the coverage tables; the gap table's
        sites and the map's what-if panel use it.
        """
        from scipy.spatial import cKDTree

        with self._tree_lock:
            if self._cell_tree is None:
                self._cell_tree = cKDTree(np.column_stack(demand.point_xy(self.cells)))
            return self._cell_tree

    def reached_nodes(self, rule: Any) -> np.ndarray | None:
        """Which nodes of a circle rule's mode's graph lie within its threshold of its sources (its service circle's roads).

        Kept from :func:`circle_times` (the same search), else searched now
        (:func:`coverage.access.node_times`); ``None`` when the rule has no source.

        Parameters
        ----------
        rule : CircleRule

        Returns
        -------
        numpy.ndarray of bool or None
            One value per node.
        """
        key = search_key(rule, self.inputs.scenario)
        kept = self._reached.get(key)
        if kept is not None:
            return kept
        sources, _ = rule_sources(self, rule, key[0])
        if sources is None:
            return None
        return access.node_times(self.graphs[key[0]], sources, limit=rule.threshold, weight=rule.unit) <= rule.threshold

    def nearest_cell(self, points: gpd.GeoDataFrame | gpd.GeoSeries) -> np.ndarray:
        """Position (in ``cells``) of the demand cell nearest to each point (straight line).

        The KD-tree over the cell centres is built on first use and kept: the cells' places never
        change (evaluation only adds columns), and :func:`with_facilities` hands it on.

        Parameters
        ----------
        points : GeoDataFrame or GeoSeries
            Points in the model CRS.

        Returns
        -------
        numpy.ndarray of int64
        """
        geom = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
        _, i = self.cell_tree().query(np.column_stack([geom.x.to_numpy(), geom.y.to_numpy()]))
        return np.asarray(i, dtype=np.int64)


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
    modes = sorted({mode_of(r, scn) for r in rules_of(inputs.preset)})
    # the demand cells are made in a thread while this one builds the road graphs and snaps the
    # cells' centres onto them (compiled, releasing the GIL; making a million point geometries
    # does not); the graph build's warnings are caught here
    with ThreadPoolExecutor(1) as ex:
        making = ex.submit(demand.cells, inputs.grid, inputs.units, inputs.urban_area)
        progress_step(progress, f"路网 / road graphs: {', '.join(modes)}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            graphs = read_roads(scn.network, modes, inputs.crs, inputs.road_lines.take())
        sc: dict[str, access.Snapped] = {}
        if graphs and all(g.crs.equals(inputs.grid.crs) for g in graphs.values()):
            _, _, x, y = demand.centres(inputs.grid)  # the points of ``cells``, in order
            sc = {mode: access.snap_xy(g, x, y) for mode, g in graphs.items()}
        sf = {mode: access.snap(g, inputs.facilities) for mode, g in graphs.items()}
        cells = making.result()
    # the readers' own warnings (a layer without CRS taken as lon/lat …) become problems, printed
    # and recorded like every other, instead of Python warnings with a source line
    road_notes: list[Problem] = []
    for w in caught:
        text = str(w.message)
        zh, _, en = text.partition(" / ")
        if issubclass(w.category, UserWarning) and text not in {p.zh + " / " + p.en for p in road_notes}:
            road_notes.append(Problem(zh=zh, en=en or zh, file=str(scn.network.roads.path), field="network.roads",
                                      severity="warning", code="roads_note"))
    if not sc:  # the grid in another CRS than the graphs: snap the points (reprojected)
        sc = {mode: access.snap(g, cells) for mode, g in graphs.items()}
    problems = [*inputs.problems, *road_notes]
    problems += checks.network_problems(graphs, cells["pop"], sc, sf, roads_file=scn.network.roads.path)
    # the model keeps the grid's shape and provenance, not its arrays: the cells hold the people now
    # (the caller's inputs are left as they were; a caller that drops them frees the rasters)
    light = dataclasses.replace(inputs, grid=inputs.grid.without_arrays(), road_lines=RoadLinesOnce(None))
    return Model(inputs=light, cells=cells, graphs=graphs, snapped_cells=sc, snapped_facilities=sf,
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
    inputs = dataclasses.replace(inputs, grid=model.inputs.grid)  # the same data: no second grid
    base_problems = set(model.inputs.problems)
    network_problems = [p for p in model.problems if p not in base_problems]
    out = Model(inputs=inputs, cells=model.cells, graphs=model.graphs, snapped_cells=model.snapped_cells,
                snapped_facilities=sf, problems=[*inputs.problems, *network_problems])
    out._cell_tree = model._cell_tree  # the same cells
    return out


def same_data(a: Inputs, b: Inputs) -> bool:
    """Whether two scenarios' inputs differ only in their facilities (and name, changes, output), so that one model serves both (:func:`with_facilities`)."""
    skip = {"name", "changes", "facilities", "candidates", "output", "source"}
    return a.scenario.model_dump(mode="json", exclude=skip) == b.scenario.model_dump(mode="json", exclude=skip)


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


def progress_step(progress: Any, text: str) -> None:
    """Report a step to ``progress`` (a callable taking a short text), if there is one."""
    if progress is not None:
        progress(text)


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

    Notes
    -----
    The same searches give the time to every road node: the nodes within each rule's threshold
    are kept on ``model`` (a cache, as its KD-tree; :meth:`Model.reached_nodes`), so the service
    circles are drawn without searching again. A rule taken from ``reuse`` takes them from there.
    """
    inputs, cells = model.inputs, model.cells.copy(deep=False)  # new columns only: the model's frame is left as it was
    scn = inputs.scenario
    columns: dict[str, Any] = {}  # filled in rule order, so the frame's columns keep that order
    jobs = []
    for rule in rules_of(inputs.preset):
        fcol = f"f_{rule.id}"
        if reuse is not None and rule.column in reuse.cells.columns and (
                rule_sources_key(model.inputs, rule) == rule_sources_key(reuse.inputs, rule)):
            columns[rule.column], columns[fcol] = reuse.cells[rule.column].to_numpy(), reuse.cells[fcol].array
            kept = reuse._reached.get(search_key(rule, scn))
            if kept is not None:  # the same sources on the same graph: the same circle
                model._reached[search_key(rule, scn)] = kept
            continue
        mode = mode_of(rule, scn)
        sources, ids = rule_sources(model, rule, mode)
        if sources is None:
            columns[rule.column], columns[fcol] = np.inf, None
            continue
        columns[rule.column] = columns[fcol] = None  # placeholders: computed below
        jobs.append((rule, mode, sources, ids))

    def search(job: tuple) -> tuple[np.ndarray, pd.Categorical]:
        rule, mode, sources, ids = job
        t, pos, at_nodes = access.nearest_positions(model.graphs[mode], model.snapped_cells[mode], sources,
                                                    limit=rule.threshold, weight=rule.unit, nodes=True)
        model._reached[search_key(rule, scn)] = at_nodes <= rule.threshold  # for its circle (Model.reached_nodes)
        return t, _facility_ids(pos, ids)

    # the searches release the GIL (compiled kernel; a busy graph gives the other thread a private
    # workspace): rules run side by side, one per CPU (at most 4)
    n_threads = max(1, min(len(jobs), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(n_threads) as ex:
        for job, (t, f) in zip(jobs, ex.map(search, jobs), strict=True):
            progress_step(progress, f"可达性 / access: {job[0].id}")
            columns[job[0].column], columns[f"f_{job[0].id}"] = t, f
    for s in model.snapped_cells.values():  # the searches are done: a million cells' targets go
        s.trim_cache()
    for col, values in columns.items():
        cells[col] = values
    ok = np.zeros(len(cells), dtype=bool)
    for s in model.snapped_cells.values():
        ok |= s.ok
    cells["no_road"] = ~ok
    return cells


def _facility_ids(pos: np.ndarray, fids: list) -> pd.Categorical:
    """Facility ids (``fid``) of the sources' positions (``-1``: none, missing).

    ``fids`` holds the id of each source, in the sources' order (:func:`rule_sources`). A
    categorical (small integer codes, ids sorted): a column per rule over a million cells costs
    1–2 bytes a cell instead of an 8-byte object pointer.
    """
    cats = pd.Index(sorted(set(fids), key=str), dtype=object)
    code_of = np.append(cats.get_indexer(fids), -1).astype(np.int64)  # position -1: none
    return pd.Categorical.from_codes(code_of[pos], categories=cats)


def search_key(rule: Any, scenario: Any) -> tuple:
    """Rules with equal keys make the same search on one model: same mode, sources (facility types, or the seat) and limit.

    Parameters
    ----------
    rule : CircleRule
    scenario : Scenario

    Returns
    -------
    tuple
        ``(mode, facility types or True for the 城区 seat, threshold, unit)``.
    """
    return (mode_of(rule, scenario), rule.service == "urban_rural" or tuple(sorted(rule.ftypes)), rule.threshold,
            rule.unit)


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


def rule_sources(model: Model, rule: Any, mode: str) -> tuple[Any, list]:
    """The snapped sources of a rule (facilities of its types, or the county seat for 15 km) and their ids, in order."""
    inputs = model.inputs
    g = model.graphs[mode]
    if rule.service == "urban_rural":
        if inputs.seat is None:
            return None, []
        seat = gpd.GeoDataFrame(
            {"fid": ["seat"]}, geometry=gpd.points_from_xy([inputs.seat[0]], [inputs.seat[1]]), crs="EPSG:4326"
        ).to_crs(inputs.crs)
        # the seat is a place, not a building: snap it without the leg cap
        return access.snap(g, seat, max_leg_m=float("inf")), ["城区"]
    mask = inputs.facilities["ftype"].isin(rule.ftypes).to_numpy()
    if not mask.any():
        return None, []
    return model.snapped_facilities[mode].take(mask), inputs.facilities["fid"][mask].tolist()


def evaluated(model: Model, cells: gpd.GeoDataFrame) -> Model:
    """The same model (graphs, snaps, inputs, KD-tree, kept circle nodes) with other demand-cell columns, e.g. its circle times.

    Parameters
    ----------
    model : Model
        Not modified.
    cells : geopandas.GeoDataFrame
        The model's cells, in the same order, with columns added.

    Returns
    -------
    Model
    """
    if len(cells) != len(model.cells):
        raise ValueError("cells must be the model's own cells, in order, with columns added")
    out = dataclasses.replace(model, cells=cells)
    out._cell_tree = model._cell_tree
    out._reached = model._reached  # the same facilities on the same graphs
    return out


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
    progress_step(progress, "供需比 / supply ratios (E2SFCA)")
    cells, ratios = supply_ratios(model, cells, reuse=reuse)
    model = evaluated(model, cells)  # the caller's model is left as it was
    progress_step(progress, "评估 / evaluation")
    no_data = evaluate.no_data_rules(preset, inputs.facilities, inputs.seat)
    net = inputs.scenario.network
    speeds = scenario_speeds(net.speeds) if net is not None else None  # the scenario's, as for the road graphs
    # cell coordinates, units, groups and spacing once for every rule's clusters
    shared = evaluate.ClusterCells(cells)

    def clusters_of(rule: Any) -> pd.DataFrame | None:
        if _unchanged(model, reuse, rule) and rule.id in reuse.clusters:  # type: ignore[union-attr]
            return reuse.clusters[rule.id]  # type: ignore[union-attr,no-any-return]
        return evaluate.uncovered_clusters(cells, rule, villages=inputs.villages, speeds=speeds, shared=shared)

    # the rules' clusters side by side in threads (their k-means and neighbour searches release the
    # GIL), started before the coverage tables this thread computes meanwhile; in the rules' order
    rules = rules_of(preset)
    with ThreadPoolExecutor(max(1, min(len(rules), os.cpu_count() or 1, 4))) as ex:
        clustering = ex.map(clusters_of, rules)
        # the cells' KD-tree (its build releases the GIL), for the gap table's sites and the map's
        # what-if panel, on a worker once the clusters leave it
        tree = ex.submit(model.cell_tree)
        cov = evaluate.circle_coverage(cells, preset, units=inputs.units, no_data=no_data)
        pres = evaluate.presence(inputs.facilities, inputs.units, inputs.villages, preset, cells=cells)
        prov = evaluate.provision(inputs.facilities, cells, inputs.units, preset)
        svc = evaluate.service_coverage(cells, preset, units=inputs.units, no_data=no_data)  # for every file too
        summ = evaluate.summary(
            cells, preset, inputs.scenario.name, units=inputs.units, presence_df=pres, provision_df=prov,
            no_data=no_data, coverage_df=cov, service_df=svc,
        )
        by_rule = dict(zip([r.id for r in rules], clustering, strict=True))
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
    clusters = [c for c in by_rule.values() if c is not None and len(c)]
    cl = pd.concat(clusters, ignore_index=True) if clusters else None
    year = inputs.scenario.output.year or (int(run_date()[:4]) + 1)  # the year after the run date
    gaps = evaluate.gap_table(cov, pres, prov, cl, preset, county_name(inputs), year, no_data=no_data,
                              cells=cells, cell_tree=tree.result())
    return RunResult(
        model=model, summary=summ, by_unit=cov, gaps=gaps, presence=pres, provision=prov, clusters=by_rule,
        by_service=svc,
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
    # units in code order with the first name each has among the cells, as in every other table
    # (cells outside every unit or without a code: evaluate.UNASSIGNED_CODE, 未归属乡镇)
    unit_idx, unit_codes, unit_names = evaluate.unit_index(cells)
    bins = unit_idx.astype(np.intp) + 1  # for np.bincount (bin 0 unused)
    out: dict[str, Any] = {}
    # (service, rule, mode, use, side, facilities of the rule's types without a capacity) in the
    # order of the columns; mode None: from ``reuse``
    jobs: list[tuple[str, Any, Any, Any, Any, int]] = []
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
                    jobs.append((service, rule, None, None, None, 0))  # taken from the earlier run
                    continue
                # demand = the rule's group on the rule's side (urban/rural) only
                side = evaluate.applies_mask(cells, rule.applies_to)
                jobs.append((service, rule, mode_of(rule, inputs.scenario), use, side, int((of_type & ~use).sum())))
    if not jobs:
        return cells, out
    # one rule at a time (each E2SFCA search runs on every core already, in chunks of facilities):
    # side by side, two rules and the modes' cell indexes held at once made a 0.46 GB transient at
    # 1.1 M cells (kept by the allocator afterwards) for no time gained. A mode's cell index is made
    # for its first rule and dropped after its last.
    last = {job[2]: i for i, job in enumerate(jobs) if job[2] is not None}
    indexes: dict[str, tuple] = {}
    for i, (service, rule, mode, use, side, without) in enumerate(jobs):
        col = f"e2sfca_{rule.id}"
        if mode is None:
            cells[col] = reuse.model.cells[col].to_numpy()  # type: ignore[union-attr]
            out[rule.id] = reuse.summary["supply_ratio"][rule.id]  # type: ignore[union-attr]
            continue
        if mode not in indexes:
            indexes[mode] = access.cell_index(model.graphs[mode], model.snapped_cells[mode])
        weight = cells[rule.group].to_numpy(dtype=float) * side  # the demand, and the means' weights
        a = access.e2sfca(
            model.graphs[mode], model.snapped_cells[mode], model.snapped_facilities[mode].take(use),
            rule.threshold, capacity=cap[use], population=weight, cell_index=indexes[mode],
        ).to_numpy() * 1000.0
        if last[mode] == i:
            del indexes[mode]
        cells[col] = np.where(side, a, np.nan)  # not defined off the rule's side
        del a
        county, units_ = _weighted_means(cells[col].to_numpy(dtype=float), weight, bins, unit_codes, unit_names)
        out[rule.id] = {
            "service": service, "capacity_unit": str(fac.loc[use, "capacity_unit"].mode().iloc[0]),
            "group": rule.group, "per": 1000, "minutes": rule.threshold, "mode": mode,
            "facilities": int(use.sum()), "facilities_without_capacity": without,
            "county": county, "by_unit": units_,
        }
    return cells, out


def _weighted_means(
    values: np.ndarray, weights: np.ndarray, bins: np.ndarray, codes: Any, names: np.ndarray
) -> tuple[float | None, list[dict[str, Any]]]:
    """Weighted means of ``values`` over the cells with weight > 0: the county's, and every unit's.

    One ``np.bincount`` pair over the weighted cells (taken once, by position), the county from the
    same sums.

    Parameters
    ----------
    values, weights : numpy.ndarray of float
        One per cell; only cells with ``weights > 0`` count (NaN weights do not).
    bins : numpy.ndarray of intp
        The cell's unit position + 1 (0: a cell without a unit code, counted for the county only).
    codes : sequence
        Unit codes in order (position ``i`` is bin ``i + 1``).
    names : numpy.ndarray of object
        Unit names, aligned with ``codes``.

    Returns
    -------
    county : float or None
        None when no cell has weight; NaN when a weighted cell's value is NaN (as ``numpy.average``).
    by_unit : list of dict
        ``[{code, name, value}]`` in code order, units without weight left out (NaN as above).
    """
    pos = np.flatnonzero(weights > 0)
    if not len(pos):
        return None, []
    b = bins[pos]
    w = weights[pos]
    n = len(codes) + 1
    wsum = np.bincount(b, weights=w, minlength=n)
    vsum = np.bincount(b, weights=values[pos] * w, minlength=n)
    county = float(vsum.sum() / wsum.sum())
    by_unit = [{"code": str(codes[i - 1]), "name": str(names[i - 1]), "value": float(vsum[i] / wsum[i])}
               for i in np.flatnonzero(wsum[1:] > 0) + 1]
    return county, by_unit


def county_name(inputs: Inputs) -> str:
    """The county's name: ``output.county``, else the boundary's ``name`` field, else the scenario."""
    if inputs.scenario.output.county:
        return inputs.scenario.output.county
    if "name" in inputs.boundary.columns and str(inputs.boundary["name"].iloc[0]).strip():
        return str(inputs.boundary["name"].iloc[0])
    return inputs.scenario.name
