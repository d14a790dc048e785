"""Siting runs and plan comparison on top of :mod:`coverage.pipeline` (``covplan site``/``compare``).

Siting (``site_scenario``) for one service:

1. evaluate the baseline (circle times for every rule);
2. candidates = the scenario's candidate layer, plus ``generate`` sites from population-weighted
   k-means over the people the service's circles miss (:func:`coverage.siting.generate_candidates`);
3. one cover matrix for the service: a row per (headline rule, demand cell) with people of the
   rule's group on the rule's side (urban/rural); a column per existing facility of the service
   (locked, always selected) and per candidate; an entry where the site reaches the cell within the
   rule's threshold on the rule's mode (:func:`coverage.access.catchments`, sparse);
4. solve MCLP (``--add N``) or LSCP (``--target-share S``) with :mod:`coverage.siting`, which reports
   the optimality gap;
5. add the chosen sites as facilities, evaluate again, and write the plan's outputs with the proposed
   projects ranked in ``gaps.xlsx`` and a comparison with the baseline.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from coverage import access, categories, compare, evaluate, pipeline, siting
from coverage.errors import InputError
from coverage.inputs import with_scenario
from coverage.io import read_vector

log = logging.getLogger(__name__)


@dataclass
class SiteRun:
    """Outcome of a siting run: the baseline model (cells with circle times), the evaluated plan,
    the proposed sites, the solver's result and the plan-vs-baseline table."""

    base: pipeline.Model
    plan: pipeline.RunResult
    proposed: gpd.GeoDataFrame
    solution: siting.SitingResult
    diff: pd.DataFrame


def candidate_sites(
    model: pipeline.Model, service: str, generate: int = 0, seed: int = 0,
    exclude: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """The scenario's candidates plus ``generate`` sites at the weighted centres of unserved people.

    Generated sites never fall inside ``exclude`` (water, protected land, …: polygons in any CRS);
    the user's own candidates are kept as given.

    Returns
    -------
    geopandas.GeoDataFrame
        ``cid, name, kind, nature (建设性质), cost, source, geometry`` in the model CRS.
    """
    inputs = model.inputs
    frames = []
    if inputs.candidates is not None and len(inputs.candidates):
        c = inputs.candidates.copy()
        c["source"] = "candidates"
        frames.append(c)
    if generate > 0:
        cells = model.cells
        pop, cov = evaluate.service_cells(cells, inputs.preset, service)
        lack = pop - cov
        xy = np.column_stack([cells.geometry.x, cells.geometry.y])
        ex = exclude.to_crs(cells.crs) if exclude is not None else None
        idx = siting.generate_candidates(xy, lack, generate, exclusion=ex, seed=seed)
        if len(idx):
            frames.append(gpd.GeoDataFrame({
                "cid": [f"G{i + 1:03d}" for i in range(len(idx))],
                "name": [f"{cells['unit_name'].iloc[i]}规划点位{k + 1}" for k, i in enumerate(idx)],
                "kind": "生成点位", "nature": "新建", "cost": np.nan, "source": "generated",
            }, geometry=cells.geometry.iloc[idx].to_numpy(), crs=cells.crs))
    if not frames:
        raise InputError(
            "没有候选点位：情景未提供 candidates，且未要求生成（--generate N）。",
            "No candidate sites: the scenario has no candidates and none were generated (--generate N).",
            field="candidates",
        )
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    return out.reset_index(drop=True)


def siting_rules(preset: Any, what: str) -> tuple[str, dict[str, list[Any]], str | None]:
    """The headline rules a siting run serves: of a service (``elderly``) or of one facility type (``kindergarten``: only the rules that count that type).

    Returns
    -------
    tuple
        ``(service, {side: [rules]}, ftype or None)``.
    """
    if what in categories.FTYPES:
        service = categories.service_of(what)
        sides = {side: [r for r in rules if what in r.ftypes]
                 for side, rules in preset.headline(service).items()}
        sides = {k: v for k, v in sides.items() if v}
        fixed: str | None = what
    elif what in categories.SERVICES:
        service, sides, fixed = what, preset.headline(what), None
    else:
        raise InputError(
            f"未知服务类别或设施类型 {what}，可选服务：{', '.join(categories.SERVICES)}，或设施类型代码（如 day_care）。",
            f"unknown service or facility type {what!r}; services: {', '.join(categories.SERVICES)}, "
            "or a facility-type key (e.g. day_care).",
            field="--category",
        )
    if not sides:
        raise InputError(
            f"标准 {preset.name} 没有适用于“{what}”的服务圈规则。",
            f"preset {preset.name} has no circle rule for {what!r}.",
            field="--category",
        )
    return service, sides, fixed


def candidate_ftypes(model: pipeline.Model, what: str, candidates: gpd.GeoDataFrame) -> np.ndarray:
    """Facility type each candidate would become: the requested type, or the ``propose`` type of the first rule on the candidate's side (urban or rural, taken from the nearest demand cell)."""
    _service, sides, fixed = siting_rules(model.inputs.preset, what)
    if fixed is not None:
        return np.full(len(candidates), fixed, dtype=object)
    cells = model.cells
    _, i = cKDTree(np.column_stack([cells.geometry.x, cells.geometry.y])).query(
        np.column_stack([candidates.geometry.x, candidates.geometry.y])
    )
    urban = cells["urban"].to_numpy(dtype=bool)[i]
    first = {side: rules[0].proposed_ftype for side, rules in sides.items()}
    default = first.get("all") or next(iter(first.values()))
    return np.where(urban, first.get("urban", default), first.get("rural", default)).astype(object)


def service_cover(
    model: pipeline.Model, what: str, candidates: gpd.GeoDataFrame
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, pd.DataFrame]:
    """Cover matrix of a service: rows (rule, cell), columns existing facilities then candidates.

    A site counts for a rule only when its facility type is one the rule counts (existing
    facilities by their type, candidates by :func:`candidate_ftypes`).

    Returns
    -------
    cover : scipy.sparse.csr_matrix
        Bool, rows × (n_existing + n_candidates).
    weights : numpy.ndarray
        People of the rule's group per row.
    locked : numpy.ndarray
        Column indices of the existing facilities.
    rows : pandas.DataFrame
        ``rule_id``, ``cell`` position per row (to map the solution back to cells).
    """
    inputs = model.inputs
    fac = inputs.facilities
    service, sides, _ = siting_rules(inputs.preset, what)
    cand_ftype = candidate_ftypes(model, what, candidates)
    existing_mask = (fac["category"] == service).to_numpy()
    n_exist = int(existing_mask.sum())
    blocks, weights, rows = [], [], []
    for side, rules in sides.items():
        applies = evaluate.applies_mask(model.cells, side)
        for rule in rules:
            mode = pipeline.mode_of(rule, inputs.scenario)
            g = model.graphs[mode]
            group = model.cells[rule.group].to_numpy(dtype=float)
            sel = np.flatnonzero(applies & (group > 0))
            if not len(sel):
                continue
            d = model.snapped_cells[mode].take(sel)
            counts = fac["ftype"].isin(rule.ftypes).to_numpy()[existing_mask]
            ex = access.catchments(g, d, model.snapped_facilities[mode].take(existing_mask), rule.threshold, rule.unit)
            ex = sp.csr_matrix(ex)
            ex = sp.diags(counts.astype(float)) @ ex  # facilities of other types don't count here
            ca = sp.csr_matrix(access.catchments(g, d, access.snap(g, candidates), rule.threshold, rule.unit))
            ca = sp.diags(np.isin(cand_ftype, rule.ftypes).astype(float)) @ ca
            m = sp.vstack([ex, ca]).T.tocsr()
            m.data[:] = 1.0
            m.eliminate_zeros()
            blocks.append(m)
            weights.append(group[sel])
            rows.append(pd.DataFrame({"rule_id": rule.id, "cell": sel}))
    cover = sp.vstack(blocks).tocsr().astype(bool)
    return cover, np.concatenate(weights), np.arange(n_exist), pd.concat(rows, ignore_index=True)


def proposed_facilities(
    model: pipeline.Model, what: str, candidates: gpd.GeoDataFrame, result: siting.SitingResult,
    n_exist: int,
) -> gpd.GeoDataFrame:
    """The chosen candidates as facility rows (with ``new_covered`` = marginal people, greedy order)."""
    preset = model.inputs.preset
    service, _, _ = siting_rules(preset, what)
    new = [(int(j) - n_exist, float(m)) for j, m in zip(result.selected, result.marginal) if j >= n_exist]
    if not new:
        return gpd.GeoDataFrame(columns=["fid", "geometry"], geometry=[], crs=candidates.crs)
    pos = [j for j, _ in new]
    ftypes = candidate_ftypes(model, what, candidates)[pos]
    tmpls = [preset.project(f) for f in ftypes]
    c = candidates.iloc[pos].reset_index(drop=True)
    lonlat = c.to_crs(4326).geometry
    units = evaluate.assign_units(c, model.inputs.units)
    out = gpd.GeoDataFrame({
        "fid": [f"P-{cid}" for cid in c["cid"]],
        "name": [f"{n}（拟建{t.label}）" for n, t in zip(c["name"], tmpls)],
        "category": service, "ftype": ftypes, "type_raw": [categories.FTYPES[f].label for f in ftypes],
        "tier": "", "capacity": [t.size_for(0) for t in tmpls], "capacity_unit": [t.scale_unit for t in tmpls],
        "source": "siting", "lon": lonlat.x.to_numpy(), "lat": lonlat.y.to_numpy(),
        "cid": c["cid"].to_numpy(), "nature": c.get("nature", pd.Series("新建", index=c.index)).fillna("新建").to_numpy(),
        "cost": pd.to_numeric(c.get("cost", pd.Series(np.nan, index=c.index)), errors="coerce").to_numpy(),
        "unit_code": np.asarray(units), "new_covered": [m for _, m in new], "rank": np.arange(1, len(new) + 1),
    }, geometry=c.geometry.to_numpy(), crs=c.crs)
    codes = dict(zip(model.inputs.units["code"], model.inputs.units["name"]))
    out["unit_name"] = out["unit_code"].map(codes).fillna("")
    # nearest existing facility of the service (straight line), for the project note
    fac = model.inputs.facilities[model.inputs.facilities["category"] == service]
    if len(fac):
        d, i = cKDTree(np.column_stack([fac.geometry.x, fac.geometry.y])).query(
            np.column_stack([out.geometry.x, out.geometry.y])
        )
        out["nearest_existing"] = fac["name"].to_numpy()[i]
        out["nearest_existing_m"] = np.round(d)
    return out


def proposed_gap_rows(proposed: gpd.GeoDataFrame, preset: Any, county: str, year: int) -> pd.DataFrame:
    """Project-bank rows (kind ``proposed_site``) for the chosen sites, ranked by new people covered."""
    rows = []
    for r in proposed.itertuples():
        tmpl = preset.project(r.ftype)
        scale = tmpl.size_for(r.new_covered)
        cost = r.cost if np.isfinite(r.cost) else tmpl.cost_for(scale)
        near = getattr(r, "nearest_existing", "")
        rows.append({
            "kind": "proposed_site", "year": year, "service": r.category, "service_key": r.category,
            "ftype": r.ftype, "ftype_label": tmpl.label,
            "project_name": f"{r.unit_name}{r.name.split('（')[0]}{tmpl.label}{r.nature}项目",
            "construction": r.nature, "county": county, "unit_code": r.unit_code, "unit_name": r.unit_name,
            "village": "", "lon": r.lon, "lat": r.lat,
            "scale": f"{scale:g}{tmpl.scale_unit}", "scale_value": scale, "scale_unit": tmpl.scale_unit,
            "population": r.new_covered, "new_covered": r.new_covered,
            "indicator": "15分钟服务圈覆盖", "nature": "预期性", "cost": cost,
            "lead": preset.lead(r.category, r.ftype), "priority": "高" if r.rank <= 3 else "中",
            "note": f"选址第{r.rank}位；最近现有设施：{near}（直线{getattr(r, 'nearest_existing_m', float('nan')):.0f} m）",
            "rank_people": r.new_covered, "rule_id": "siting",
        })
    return pd.DataFrame(rows)


def site_scenario(  # noqa: PLR0913 - issue 11: to narrow/split
    path: str | Path, out: str | Path, service: str, add: int | None = None,
    target_share: float | None = None, generate: int = 0, time_limit: float = 60.0,
    console: Any = None, exclude: str | Path | None = None,
) -> SiteRun:
    """``covplan site``: choose sites for one service and write the plan's outputs.

    Parameters
    ----------
    path : str or Path
        Scenario YAML.
    out : str or Path
        Output folder (written atomically).
    service : str
        ``school``, ``clinic``, ``elderly`` or ``fitness``, or a facility-type key (``kindergarten``,
        ``township_health_center`` …) to site only that type for the rules that count it.
    add : int, optional
        Number of new sites (maximal covering). Exactly one of ``add`` and ``target_share``.
    target_share : float, optional
        Share of the service's people to cover (set covering: fewest sites).
    generate : int
        Extra candidates generated from unserved people.
    time_limit : float
        Seconds for the solver.
    exclude : str or Path, optional
        Polygons (GPKG/SHP/GeoJSON) where no generated site may go.

    Returns
    -------
    SiteRun
    """
    if (add is None) == (target_share is None):
        raise InputError("请给出 --add N 或 --target-share S 之一。", "Give exactly one of --add N or --target-share S.",
                         field="--add/--target-share")
    with pipeline.progress(console) as step:
        return _site(path, out, service, add, target_share, generate, time_limit, exclude, step)


def _site(  # noqa: PLR0913 - issue 11: to narrow/split
    path: str | Path, out: str | Path, service: str, add: int | None, target_share: float | None,
    generate: int, time_limit: float, exclude: str | Path | None, step: Callable[[str], None],
) -> SiteRun:
    """The body of :func:`site_scenario`, reporting each step to ``step``."""
    step("读取输入 / reading inputs")
    inputs = pipeline.load_inputs(path)
    model = pipeline.build_model(inputs, step)
    # the baseline needs only its circle times (for the unserved people, the cover matrix and the
    # comparison); the plan is evaluated in full and reuses the times of every unchanged rule
    model.cells = pipeline.circle_times(model, step)
    svc, _, fixed = siting_rules(inputs.preset, service)
    ex = read_vector(exclude, what_zh="禁建区", what_en="exclusion") if exclude is not None else None
    cands = candidate_sites(model, svc, generate, exclude=ex)
    step(f"选址 / siting: {len(cands)} 个候选点位 / candidates")
    cover, weights, locked, _rows = service_cover(model, service, cands)
    if add is not None:
        sol = siting.solve_max_coverage(cover, weights, p=min(add, len(cands)), locked=locked, time_limit=time_limit)
    else:
        # the planner's target is a share of all the service's people; the solver's is a share of
        # the people some site (existing or candidate) can reach at all
        total = float(weights.sum())
        coverable = float(weights[np.asarray(cover.sum(axis=1)).ravel() > 0].sum())
        need = target_share * total
        if need > coverable + 1e-9:
            log.warning(
                "目标覆盖率 %.1f%% 不可达：现有设施与全部候选点位最多覆盖 %.1f%%，按最大可达覆盖求解。/ "
                "target %.1f%% cannot be reached: existing sites and all candidates cover at most %.1f%%; "
                "solving for the most that can be covered.",
                100 * target_share, 100 * coverable / total, 100 * target_share, 100 * coverable / total,
            )
        share = min(1.0, need / coverable) if coverable > 0 else 1.0
        sol = siting.solve_set_cover(cover, weights, target_share=share, locked=locked, time_limit=time_limit)
    proposed = proposed_facilities(model, service, cands, sol, len(locked))
    # the plan: the same inputs with the proposed sites added, evaluated again
    label = categories.FTYPES[fixed].label if fixed else categories.SERVICES[svc].label
    what = f"+{add}" if add is not None else f"≥{target_share:.0%}"
    plan_scn = inputs.scenario.model_copy(update={"name": f"{inputs.scenario.name} · 选址方案（{label} {what}）"})
    plan_inputs = with_scenario(inputs, plan_scn, gpd.GeoDataFrame(
        pd.concat([inputs.facilities, proposed[[c for c in inputs.facilities.columns if c in proposed.columns]]],
                  ignore_index=True), crs=inputs.crs))
    step("评估方案 / evaluating the plan")
    plan_model = pipeline.with_facilities(model, plan_inputs)
    plan = pipeline.evaluate_model(plan_model, step, reuse=model)
    county = pipeline.county_name(inputs)
    year = int(plan.gaps["year"].iloc[0]) if len(plan.gaps) else pd.Timestamp.today().year + 1
    plan.gaps = pd.concat([proposed_gap_rows(proposed, inputs.preset, county, year), plan.gaps], ignore_index=True)
    diff = compare.unit_diff(model.cells, plan.model.cells, inputs.preset)
    change = compare.cell_diff(model.cells, plan.model.cells, inputs.preset)
    plan.summary["siting"] = {
        "service": svc, "ftype": fixed, "model": "MCLP" if add is not None else "LSCP",
        "candidates": len(cands), "selected": proposed["cid"].tolist(),
        "new_covered": float(proposed["new_covered"].sum()) if len(proposed) else 0.0,
        "objective": float(sol.objective), "bound": float(sol.upper_bound), "gap": float(sol.gap),
        "method": sol.method, "proven_optimal": bool(sol.proven_optimal),
        "seconds": float(sol.timings.get("total", np.nan)),
    }
    pipeline.write_outputs(plan, out, step, comparison=diff, proposed=proposed, change=change)
    return SiteRun(base=model, plan=plan, proposed=proposed, solution=sol, diff=diff)


def compare_scenarios(
    base_path: str | Path, plan_path: str | Path, out: str | Path, console: Any = None
) -> tuple[pipeline.RunResult, pd.DataFrame]:
    """``covplan compare``: evaluate both scenarios and write the plan's outputs with the diff.

    The diff (by service and 乡镇/街道: people newly covered, people losing coverage) goes to
    ``comparison.csv``, the ``方案比较`` sheet of ``gaps.xlsx``, ``summary.json`` (``comparison``), a
    覆盖变化 map layer and the ``coverage_change`` layer of ``layers.gpkg``; facilities the plan adds
    are drawn on the map.
    """
    with pipeline.progress(console) as step:
        step(f"现状 / baseline: {Path(base_path).name}")
        base_model = pipeline.build_model(pipeline.load_inputs(base_path), step)
        base = pipeline.evaluate_model(base_model, step)
        step(f"方案 / plan: {Path(plan_path).name}")
        plan_inputs = pipeline.load_inputs(plan_path)
        # a plan on the same data (the usual case: extends the baseline, changes facilities) reuses
        # the baseline's graphs, demand cells and snaps
        plan_model = (pipeline.with_facilities(base_model, plan_inputs) if pipeline.same_data(base_model.inputs, plan_inputs)
                      else pipeline.build_model(plan_inputs, step))
        plan = pipeline.evaluate_model(plan_model, step)
        return _compare(base, plan, out, step)


def _compare(
    base: pipeline.RunResult, plan: pipeline.RunResult, out: str | Path, step: Callable[[str], None]
) -> tuple[pipeline.RunResult, pd.DataFrame]:
    """Diff two evaluated runs and write the plan's outputs with the comparison."""
    preset = base.model.inputs.preset
    diff = compare.unit_diff(base.model.cells, plan.model.cells, preset)
    cells = compare.cell_diff(base.model.cells, plan.model.cells, preset)
    base_ids = set(base.model.inputs.facilities["fid"])
    pf = plan.model.inputs.facilities
    added = pf[~pf["fid"].isin(base_ids)]
    county = diff[diff["unit_code"] == ""]
    plan.summary["comparison"] = {
        "base": base.summary["scenario"], "plan": plan.summary["scenario"],
        "by_service": json.loads(county.to_json(orient="records", force_ascii=False)),
    }
    pipeline.write_outputs(plan, out, step, comparison=diff, proposed=added if len(added) else None,
                           change=cells)
    return plan, diff
