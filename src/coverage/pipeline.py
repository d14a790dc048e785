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
import hashlib
import json
import os
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rich.console import Console

from coverage import access, categories, demand, evaluate, settings
from coverage import inputs as inputs_mod
from coverage._atomic import atomic_output_dir
from coverage.errors import InputError, Problem
from coverage.model import (
    Model,
    RunResult,
    build_model,
    circle_times,
    county_name,
    evaluate_model,
    mode_of,
    no_data_of,
    progress_step,
    read_roads,
    rule_sources_key,
    rules_of,
    run_date,
    run_info,
    same_data,
    search_key,
    supply_ratios,
    with_facilities,
)


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
# stages 2 and 3: the model and its evaluation live in coverage.model; their names stay here too
# (pipeline.build_model, pipeline.evaluate_model …) so that a run reads as its stages
# ----------------------------------------------------------------------------------------------

__all__ = [
    "Inputs", "Model", "RunResult", "build_model", "circle_times", "county_name", "evaluate_model",
    "load_inputs", "mode_of", "no_data_of", "read_roads", "rule_sources_key", "run_date", "run_info",
    "run_scenario", "same_data", "supply_ratios", "validate", "with_facilities", "write_outputs",
]


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


# ----------------------------------------------------------------------------------------------
# stage 3: access and evaluation
# ----------------------------------------------------------------------------------------------


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
    pop = cells["pop"].groupby(cells["unit_code"], observed=True).sum()  # categorical: by its codes
    pop.index = pop.index.astype(object)
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
    x, y = demand.point_xy(cells)
    # names as small codes while the cells are sorted and grouped (a million Python strings cost more)
    name_codes, name_of = pd.factorize(cells["unit_name"], use_na_sentinel=False)
    bkey = np.zeros(len(x), dtype=np.int64)
    if block_m and len(x):  # (no cells: no block, and no min of nothing)
        bx, by = np.floor(x / block_m).astype(np.int64), np.floor(y / block_m).astype(np.int64)
        bkey = (bx - bx.min()) * (int(by.max() - by.min()) + 1) + (by - by.min())  # (bx, by) order
    frames = []
    for service, short in (lack if lack is not None else lacking(result)).items():
        keep = np.flatnonzero(short > 0.5)
        if not len(keep):
            continue
        pop, xs, ys, name = short[keep], x[keep], y[keep], name_codes[keep]
        if block_m:
            # blocks in (bx, by) order; a block is named after the unit of its most populous cell
            # (the first such cell on a tie)
            key = bkey[keep]
            order = np.lexsort((-pop, key))
            key, pop, xs, ys, name = key[order], pop[order], xs[order], ys[order], name[order]
            first = np.ones(len(key), dtype=bool)
            first[1:] = key[1:] != key[:-1]
            block = np.cumsum(first) - 1
            total = np.bincount(block, weights=pop)
            xs = np.bincount(block, weights=xs * pop) / total
            ys = np.bincount(block, weights=ys * pop) / total
            pop, name = total, name[first]
        frames.append(gpd.GeoDataFrame(
            {"service": service, "pop": pop, "unit_name": np.asarray(name_of, dtype=object)[name]},
            geometry=gpd.points_from_xy(xs, ys), crs=cells.crs,
        ))
    if not frames:
        return gpd.GeoDataFrame({"service": [], "pop": []}, geometry=[], crs=cells.crs)
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=cells.crs)


def circle_polygons(model: Model | RunResult) -> tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]:
    """Service-circle polygons drawn from the reached road network (not buffers), per circle rule, and the 15 km 城乡服务圈 polygon.

    They depend on the facilities and the roads only, so a built model is enough.

    Parameters
    ----------
    model : Model or RunResult

    Returns
    -------
    circles : geopandas.GeoDataFrame or None
        One row per circle rule with facilities (``service``, ``rule_id``, ``label``, ``applies_to``,
        ``mode``, ``threshold``, ``unit``); ``None`` when no rule has any.
    urban_rural : geopandas.GeoDataFrame or None
        The 城乡服务圈 polygon.
    """
    from coverage.network import segment_index
    from coverage.report.circles import reached_area

    model = model.model if isinstance(model, RunResult) else model
    scn = model.inputs.scenario
    rows, urc = [], None
    drawn: dict[tuple, Any] = {}  # rules with the same sources, mode and threshold share a polygon
    todo: dict[tuple, Any] = {}
    for rule in rules_of(model.inputs.preset):
        todo.setdefault(search_key(rule, scn), rule)

    def draw(key: tuple) -> Any:
        rule, mode = todo[key], key[0]
        g = model.graphs[mode]
        # a node is inside the circle when someone standing there is within the threshold (kept
        # from circle_times where it ran on this model)
        reached = model.reached_nodes(rule)
        if reached is None:
            return None
        seg = segment_index(g)  # built for snapping already (cached on the graph)
        return reached_area(g.x, g.y, g.indptr, g.indices, reached, segments=(seg.a, seg.b))

    # side by side, one per CPU (at most 4): the searches and the compiled grid passes release the
    # GIL (no rasterio any more: an older try with threads around it saw GDAL warnings)
    with ThreadPoolExecutor(max(1, min(len(todo), os.cpu_count() or 1, 4))) as ex:
        drawn = dict(zip(todo, ex.map(draw, todo), strict=True))
    for rule in rules_of(model.inputs.preset):
        mode = mode_of(rule, scn)
        g = model.graphs[mode]
        poly = drawn[search_key(rule, scn)]
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
    cell_idx, cell_codes, _ = evaluate.unit_index(cells)
    cell_unit = pd.Index(list(unit_pos), dtype=object).get_indexer(cell_codes)[cell_idx].astype(np.int64)
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
        rid = rows["rule_id"].to_numpy()
        cuts = np.flatnonzero(rid[1:] != rid[:-1]) + 1  # one block of rows per rule
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(rid)], strict=True):
            rule = rules[rid[lo]]
            t = pd.to_numeric(cells[rule.column], errors="coerce").to_numpy(dtype=float)[cell[lo:hi]]
            run_cov[lo:hi] = t <= rule.threshold
        drop = run_cov & ~fixed_cov & prop_cov  # covered only thanks to a proposed site
        base_rows = run_cov & ~drop
        new = cover[:, list(toggles)].tocsr()
        new = new.multiply(~base_rows[:, None]).tocsr()
        new.eliminate_zeros()
        col_site = np.array(list(toggles.values()), dtype=np.int64)
        w, gu, site_groups = _site_groups(new, col_site, cell_unit[cell], weights)
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


def _site_groups(
    new: Any, col_site: np.ndarray, row_unit: np.ndarray, weights: np.ndarray
) -> tuple[list[float], list[int], dict[int, list[int]]]:
    """Merge the rows of the what-if panel into groups of the same 乡镇 and the same set of sites.

    Parameters
    ----------
    new : scipy.sparse.csr_matrix
        Rows × toggle columns: which toggleable sites newly cover each row.
    col_site : numpy.ndarray of int
        Site number of each column (distinct).
    row_unit : numpy.ndarray of int
        乡镇 position of each row.
    weights : numpy.ndarray of float
        People of each row.

    Returns
    -------
    w : list of float
        People per group; groups are numbered in the order of their first row.
    gu : list of int
        乡镇 of each group.
    site_groups : dict
        Site number → ascending groups it covers.

    Notes
    -----
    Exact and vectorised: rows with the same number of sites are compared whole
    (:func:`_unique_rows` over ``[unit, sorted sites]``), a handful of lengths in all; no hashing.
    """
    import scipy.sparse as sp

    n_sites = int(col_site.max(initial=-1)) + 1
    by_site = sp.csr_matrix((np.ones(new.nnz), col_site[new.indices], new.indptr), shape=(new.shape[0], n_sites))
    by_site.sort_indices()
    rows = np.flatnonzero(np.diff(by_site.indptr) > 0)
    if not len(rows):
        return [], [], {}
    length = np.diff(by_site.indptr)[rows]
    first_parts, local_parts, pos_parts = [], [], []
    n_before = 0
    for k in np.unique(length):
        rk = rows[length == k]
        sites = by_site.indices[by_site.indptr[rk][:, None] + np.arange(k)]
        first, inv = _unique_rows(np.column_stack([row_unit[rk], sites]))
        first_parts.append(rk[first])
        local_parts.append(inv + n_before)
        pos_parts.append(rk)
        n_before += len(first)
    first_row = np.concatenate(first_parts)
    order = np.argsort(first_row, kind="stable")  # groups numbered by their first row
    gid_of = np.empty(len(order), dtype=np.int64)
    gid_of[order] = np.arange(len(order))
    row_gid = np.empty(by_site.shape[0], dtype=np.int64)
    row_gid[np.concatenate(pos_parts)] = gid_of[np.concatenate(local_parts)]
    w = np.bincount(row_gid[rows], weights=np.asarray(weights, dtype=float)[rows], minlength=len(order))
    reps = first_row[order]
    gu = row_unit[reps]
    rep_len = np.diff(by_site.indptr)[reps]
    pair_gid = np.repeat(np.arange(len(reps)), rep_len)
    offset = np.arange(len(pair_gid)) - np.repeat(np.cumsum(rep_len) - rep_len, rep_len)
    pair_site = by_site.indices[np.repeat(by_site.indptr[reps], rep_len) + offset]
    o = np.lexsort((pair_gid, pair_site))
    site_groups: dict[int, list[int]] = {}
    cuts = np.flatnonzero(np.diff(pair_site[o])) + 1
    for chunk in np.split(o, cuts):
        if len(chunk):
            site_groups[int(pair_site[chunk[0]])] = pair_gid[chunk].tolist()
    return w.tolist(), gu.tolist(), site_groups


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first row of each distinct row, group of each row)`` of a 2-D integer array, groups in lexicographic order.

    What ``np.unique(keys, axis=0, return_index=True, return_inverse=True)`` gives, by one stable
    ``lexsort`` on the columns instead of a sort of row records (several times faster).
    """
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys.T[::-1])  # stable: the first of equal rows is the lowest row
    s = keys[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = (s[1:] != s[:-1]).any(axis=1)
    group = np.cumsum(new) - 1
    inv = np.empty(len(keys), dtype=np.int64)
    inv[order] = group
    return order[new], inv


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
            t, _ = access.nearest_positions(model.graphs[mode], model.snapped_cells[mode],
                                            model.snapped_facilities[mode].take(keep), limit=rule.threshold,
                                            weight=rule.unit)
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
    # the service circles (compiled grid passes and searches, which release the GIL) are drawn in a
    # thread while this one writes summary.json, the CSV, gaps.xlsx and report.html (Python, holding
    # the GIL); then the what-if panel's catchments are computed there. layers.gpkg is written in a
    # third thread from the start, beside all of it (GDAL inserts its rows without holding the GIL
    # where gpkg can reach GDAL's C API). Its units layer (third in the file) needs the service
    # table made below: the writer waits for it, and _settled fails it, so that the writer stops,
    # if this thread stops before making it.
    with (atomic_output_dir(out) as tmp, ThreadPoolExecutor(1) as bg, ThreadPoolExecutor(1) as gpkg_thread,
          _settled(Future()) as units_later):
        drawing = bg.submit(circle_polygons, result)
        progress_step(progress, "写出 / writing outputs")
        lack = lacking(result)
        derived = _derived_urban(inputs)
        layers = gpkg_layers(result, units_later.result, lack, drawing, derived=derived, proposed=proposed,
                             extra_layers=extra_layers, change=change)
        metres = {r.column for r in [*inputs.preset.active_circles(), inputs.preset.urban_rural()]
                  if r is not None and r.unit != "minutes"}
        # the per-cell layers are large: no R-tree (QGIS reads them without; "Create spatial index"
        # in the layer properties adds one when wanted)
        writing = gpkg_thread.submit(
            gpkg.write_layers, tmp / "layers.gpkg", layers, spatial_index_skip=CELL_LAYERS,
            compact={k: compact_spec(layers[k], metres) for k in CELL_LAYERS if k in layers},
            sides={"demand_cells": rule_sides(inputs.preset)}, rows_of={"uncovered": "demand_cells"},
            keys=dict.fromkeys(("demand_cells", "uncovered"), "cell"), lattices=_cell_lattice(inputs),
            date=str((result.summary.get("run") or {}).get("date") or ""),
        )
        del layers  # the per-cell layer frames (a million rows each) go once they are written
        (tmp / "summary.json").write_text(
            json.dumps(result.summary, ensure_ascii=False, indent=2, allow_nan=False), encoding="utf-8"
        )
        no_data = no_data_of(result.summary)
        svc = result.by_service  # once, for all files
        if svc is None:
            svc = evaluate.service_coverage(cells, inputs.preset, units=inputs.units, no_data=no_data)
        units = unit_shares(result, svc)
        units_later.set_result(units)
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
        uncovered_map = uncovered_cells(result, block_m=settings.MAP_BLOCK_M, lack=lack)
        # the report needs no circles: written while they are drawn
        times = report_times(result, no_data)
        by_unit_long = svc[svc["unit_code"] != ""].rename(columns={"unit_code": "code", "unit_name": "name"})
        html.write_report(
            tmp / "report.html", result.summary, by_unit_long, result.gaps, standards_checks(result),
            times, title=title, synthetic=inputs.synthetic,
            site_map=plan_map(result, proposed, uncovered_map),
        )
        del times
        # the what-if panel's searches (compiled, releasing the GIL) follow the circles in the
        # background thread while this one writes the map's other layers; begun only now, as the
        # report's tables are let go: begun beside them, its 0.2 GB (16x demo) raised the peak
        # over 2 GB, and the two cores were busy then anyway
        panel = bg.submit(whatif_data, result, svc, proposed)
        drawn, urc = drawing.result()
        map_.write_map(
            tmp / "map.html", units=units, facilities=inputs.facilities, uncovered=uncovered_map,
            circles=drawn, urban_rural_circle=urc, candidates=inputs.candidates, proposed=proposed,
            change=change, derived_urban=derived, whatif=panel.result,  # waited for once the layers are drawn
            no_data=[k for k, c in result.summary["categories"].items() if c["population_covered"] is None],
            title=inputs.scenario.name, synthetic=inputs.synthetic, tiles=tiles, tianditu_key=tianditu_key,  # type: ignore[arg-type]  # checked by check_tiles
            service=map_service(result.summary), run=result.summary.get("run"),
        )
        writing.result()
        files = sorted(p.name for p in tmp.iterdir())
    result.out_dir = Path(out)
    result.files = files
    return result


@contextlib.contextmanager
def _settled(future: Future) -> Iterator[Future]:
    """Yield ``future``; if it is still pending when the block ends (an error), fail it, so that a thread waiting on it stops."""
    try:
        yield future
    finally:
        if not future.done():
            future.set_exception(RuntimeError("not made: the run stopped before"))


def gpkg_layers(  # noqa: PLR0913 - the optional layers are keyword-only
    result: RunResult,
    units: gpd.GeoDataFrame | Callable[[], gpd.GeoDataFrame],
    lack: dict[str, np.ndarray],
    drawing: Future,
    *,
    derived: gpd.GeoDataFrame | None = None,
    proposed: gpd.GeoDataFrame | None = None,
    extra_layers: dict[str, gpd.GeoDataFrame] | None = None,
    change: gpd.GeoDataFrame | None = None,
) -> dict[str, Any]:
    """The layers of layers.gpkg in their order, for :func:`coverage.report.gpkg.write_layers`.

    The service circles are still being drawn (``drawing``, the future of
    :func:`circle_polygons`) when the file is begun: their two layers are given as functions that
    wait for them, so the per-cell layers are written meanwhile.

    Parameters
    ----------
    result : RunResult
    units : geopandas.GeoDataFrame or callable
        :func:`unit_shares` of the run, or a function returning it (called when its turn comes).
    lack : dict
        :func:`lacking` of the run.
    drawing : concurrent.futures.Future
        Of :func:`circle_polygons` of the run.
    derived, proposed, extra_layers, change : optional
        The derived 城区, proposed facilities, more layers and the per-cell change, as in
        :func:`write_outputs`.

    Returns
    -------
    dict
        Layer name → frame, or a function returning the frame (None: no such layer).
    """
    inputs = result.model.inputs
    layers: dict[str, Any] = {
        "demand_cells": cells_layer(result), "facilities": inputs.facilities, "units": units,
        "uncovered": uncovered_layer(result, lack), "gaps": _gap_points(result.gaps),
        "service_circles": lambda: _circles_or_none(drawing.result()[0]),
        "urban_rural_circle": lambda: drawing.result()[1],
    }
    more = {"villages": inputs.villages, "candidates": inputs.candidates, "urban_derived": derived,
            "proposed": proposed if proposed is not None and len(proposed) else None}
    layers.update({k: v for k, v in more.items() if v is not None})
    layers.update(extra_layers or {})
    if change is not None and len(change):
        layers["coverage_change"] = change
    return layers


def _circles_or_none(drawn: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    return None if drawn is None else circles_layer(drawn)


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
    # one drawing at a time (the WKB of a large county's circles runs to ~100 MB together)
    key = pd.Series([hashlib.sha256(shapely.to_wkb(g)).hexdigest() for g in circles.geometry.array],
                    index=circles.index)
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


def _cell_lattice(inputs: Inputs) -> dict[str, Any]:
    """The grid the demand cells' points lie on (a :class:`coverage.report.gpkg.Lattice`), so layers.gpkg builds them instead of storing them."""
    from coverage.report import gpkg

    axes = inputs.grid.axes() if inputs.grid is not None else None
    return {} if axes is None else {"demand_cells": gpkg.Lattice(*axes)}


def cells_layer(result: RunResult) -> gpd.GeoDataFrame:
    """The ``demand_cells`` layer of layers.gpkg: the cells without repeated text.

    ``unit_name`` is left out (``unit_code`` joins the ``units`` layer, which has the names), so are
    the grid ``row`` and ``col`` (the point is the cell's centre; ``cell`` identifies it) and the
    15 km circle's ``f_`` column (its source is always the 城区); everything else is as computed.
    layers.gpkg stores it compactly (:func:`compact_spec`: travel times to 0.1 min, metres rules to
    1 m, people to 0.01), so the columns are not rounded here (a million-cell copy of each).
    """
    cells = result.model.cells
    out = cells.copy(deep=False)  # columns are dropped or replaced, never written into
    for c in ("unit_name", "lon", "lat", "row", "col"):  # row and col: the point is the cell's centre
        if c in out.columns:
            del out[c]
    urc = result.model.inputs.preset.urban_rural()
    if urc is not None and f"f_{urc.id}" in out.columns:  # always the 城区: t_<id> says who is reached
        del out[f"f_{urc.id}"]
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
        # no name holds the inputs or the model before evaluation: what only they use is freed
        result = evaluate_model(build_model(load_inputs(path), step), step)
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
