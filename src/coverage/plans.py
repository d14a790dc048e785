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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from coverage import access, categories, compare, evaluate, pipeline, settings, siting
from coverage.errors import InputError
from coverage.inputs import with_scenario
from coverage.io import read_vector

log = logging.getLogger(__name__)


@dataclass
class SiteRun:
    """Outcome of a siting run."""

    base: pipeline.RunResult
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
    urban = model.cells["urban"].to_numpy(dtype=bool)[model.nearest_cell(candidates)]
    first = {side: rules[0].proposed_ftype for side, rules in sides.items()}
    default = first.get("all") or next(iter(first.values()))
    return np.where(urban, first.get("urban", default), first.get("rural", default)).astype(object)


def service_cover(
    model: pipeline.Model, what: str, candidates: gpd.GeoDataFrame, existing: np.ndarray | None = None,
    demand: Mapping[str, np.ndarray] | None = None,
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, pd.DataFrame]:
    """Cover matrix of a service: rows (rule, cell), columns existing facilities then candidates.

    A site counts for a rule only when its facility type is one the rule counts (existing
    facilities by their type, candidates by :func:`candidate_ftypes`).

    Parameters
    ----------
    model : pipeline.Model
    what : str
        Service or facility-type key (see :func:`siting_rules`).
    candidates : geopandas.GeoDataFrame
    existing : numpy.ndarray of bool, optional
        Which of the model's facilities are the existing columns (default: every facility of the
        service). The what-if panel passes only the sites it toggles: the catchments of all the
        fixed facilities of a large county would not fit in memory, and it needs none of them.
    demand : mapping of str to numpy.ndarray of bool, optional
        Rule id → the cells that may make rows for the rule (default: all with people of its
        group on its side); the what-if panel passes the cells its fixed facilities leave uncovered.

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
    existing_mask = (fac["category"] == service).to_numpy() if existing is None else np.asarray(existing, dtype=bool)
    n_exist = int(existing_mask.sum())
    plan = []  # (rule, mode, cells) in the order of the row blocks
    for side, rules in sides.items():
        applies = evaluate.applies_mask(model.cells, side)
        for rule in rules:
            group = model.cells[rule.group].to_numpy(dtype=float)
            keep = applies & (group > 0)
            if demand is not None:
                keep &= demand.get(rule.id, np.ones(len(keep), dtype=bool))
            sel = np.flatnonzero(keep)
            if len(sel):
                plan.append((rule, pipeline.mode_of(rule, inputs.scenario), sel))
    # one search per site for the rules that share a mode and a threshold (kindergartens and primary
    # schools): catchments over the union of their cells, each rule reading its own cells
    wanted: dict[tuple, np.ndarray] = {}
    for rule, mode, sel in plan:
        key = (mode, rule.threshold, rule.unit)
        wanted.setdefault(key, np.zeros(len(model.cells), dtype=bool))[sel] = True
    union = {key: np.flatnonzero(mask) for key, mask in wanted.items()}  # ascending
    del wanted
    reach: dict[tuple, tuple[sp.csr_matrix, sp.csr_matrix]] = {}
    cand_snaps: dict[str, Any] = {}
    blocks, weights, rows = [], [], []
    for rule, mode, sel in plan:
        key = (mode, rule.threshold, rule.unit)
        if key not in reach:
            g = model.graphs[mode]
            d = model.snapped_cells[mode].take(union[key])
            ex = (sp.csr_matrix(access.catchments(g, d, model.snapped_facilities[mode].take(existing_mask), rule.threshold,
                                                  rule.unit)) if n_exist else sp.csr_matrix((0, len(union[key]))))
            if mode not in cand_snaps:
                cand_snaps[mode] = access.snap(g, candidates)
            ca = sp.csr_matrix(access.catchments(g, d, cand_snaps[mode], rule.threshold, rule.unit))
            m = sp.vstack([ex, ca]).T.tocsr()  # cells × sites
            m.data[:] = 1.0  # reached (a time of 0 included)
            reach[key] = (m, union[key])
        m, cells_of = reach[key]
        counts = fac["ftype"].isin(rule.ftypes).to_numpy()[existing_mask]  # other types don't count here
        kinds = np.concatenate([counts, np.isin(cand_ftype, rule.ftypes)]).astype(float)
        b = (m[np.searchsorted(cells_of, sel)] @ sp.diags(kinds)).tocsr()
        b.eliminate_zeros()
        b.sort_indices()
        blocks.append(b)
        weights.append(model.cells[rule.group].to_numpy(dtype=float)[sel])
        rows.append(pd.DataFrame({"rule_id": rule.id, "cell": sel}))
    if not blocks:  # nobody left to cover
        return (sp.csr_matrix((0, n_exist + len(candidates)), dtype=bool), np.zeros(0), np.arange(n_exist),
                pd.DataFrame({"rule_id": pd.Series([], dtype=object), "cell": pd.Series([], dtype=np.int64)}))
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
    # road time from the nearest existing facility that counts for the site's rule, for the note
    near = nearest_existing_times(model, what, out)
    for c in near.columns:
        out[c] = near[c].to_numpy()
    return out


#: ``nearest_existing`` of a site whose rule has no existing facility in the inputs (no data, not "far").
NO_EXISTING = "无同类现有设施数据"
#: Modes in the planner's words (the 备注 and the report).
MODE_WORDS = {"walk": "步行", "ebike": "电动自行车", "drive": "驾车"}


def site_rules(model: pipeline.Model, what: str, sites: gpd.GeoDataFrame, ftypes: Any) -> list[Any]:
    """The circle rule each site serves: the first headline rule of its side (urban or rural, from the nearest demand cell) that counts its facility type.

    Parameters
    ----------
    model : pipeline.Model
        The baseline model (demand cells with ``urban``).
    what : str
        Service or facility-type key of the siting run.
    sites : geopandas.GeoDataFrame
        Points in the model CRS.
    ftypes : array-like of str
        Facility type of each site.

    Returns
    -------
    list
        One rule per site.
    """
    _service, sides, _fixed = siting_rules(model.inputs.preset, what)
    urban = model.cells["urban"].to_numpy(dtype=bool)[model.nearest_cell(sites)]
    out = []
    for u, ft in zip(urban, ftypes, strict=True):
        rules = sides.get("urban" if u else "rural") or sides.get("all") or next(iter(sides.values()))
        out.append(next((r for r in rules if ft in r.ftypes), rules[0]))
    return out


def nearest_existing_times(model: pipeline.Model, what: str, sites: gpd.GeoDataFrame) -> pd.DataFrame:
    """Road time from the nearest existing facility to each proposed site, on the site's rule's mode.

    The existing facilities are those of the types the site's rule counts (:func:`site_rules`); the
    time is one multi-source search on the rule's mode graph (:func:`coverage.access.nearest`, no
    limit), legs on foot included, as for the circles.

    Parameters
    ----------
    model : pipeline.Model
        The baseline model.
    what : str
        Service or facility-type key of the siting run.
    sites : geopandas.GeoDataFrame
        The proposed sites with ``ftype``.

    Returns
    -------
    pandas.DataFrame
        ``nearest_existing`` (name; ``""`` when none can be reached by road, :data:`NO_EXISTING` when
        the inputs hold no facility of the rule's types), ``nearest_existing_min``
        (minutes, NaN when no existing facility is reachable by road), ``nearest_mode`` and
        ``nearest_rule``, one row per site in ``sites`` order.
    """
    inputs = model.inputs
    n = len(sites)
    out = pd.DataFrame({"nearest_existing": [""] * n, "nearest_existing_min": np.full(n, np.nan),
                        "nearest_mode": [""] * n, "nearest_rule": [""] * n})
    if not n:
        return out
    rules = site_rules(model, what, sites, sites["ftype"].to_numpy())
    fac = inputs.facilities
    for rid in dict.fromkeys(r.id for r in rules):
        rule = next(r for r in rules if r.id == rid)
        pos = np.array([k for k, r in enumerate(rules) if r.id == rid])
        mode = pipeline.mode_of(rule, inputs.scenario)
        out.loc[pos, "nearest_mode"] = mode
        out.loc[pos, "nearest_rule"] = rid
        mask = fac["ftype"].isin(rule.ftypes).to_numpy()
        if not mask.any():
            out.loc[pos, "nearest_existing"] = NO_EXISTING
            continue
        g = model.graphs[mode]
        res = access.nearest(g, access.snap(g, sites.iloc[pos]), model.snapped_facilities[mode].take(mask),
                             limit=float("inf"))
        t = res["minutes"].to_numpy(dtype=float)
        names = [str(fac.loc[i, "name"]) if i is not None else "" for i in res["facility"]]
        out.loc[pos, "nearest_existing_min"] = np.where(np.isfinite(t), t, np.nan)
        out.loc[pos, "nearest_existing"] = names
    return out


def road_time_text(site: Any) -> str:
    """备注 text: the nearest existing facility and the road time from it (or why there is none)."""
    name = getattr(site, "nearest_existing", "") or ""
    minutes = getattr(site, "nearest_existing_min", float("nan"))
    mode = MODE_WORDS.get(getattr(site, "nearest_mode", ""), getattr(site, "nearest_mode", ""))
    if name == NO_EXISTING:
        return "输入中没有同类现有设施（无数据，不是距离为0）/ no existing facility of these types in the inputs"
    if not name or not np.isfinite(minutes):
        return "道路上无可达的同类现有设施 / no existing facility of the rule's types reachable by road"
    return f"最近现有设施：{name}（{mode}道路{minutes:.0f}分钟）"


def marginal_curve(
    cover: sp.csr_matrix, weights: np.ndarray, result: siting.SitingResult, n_exist: int, extra: int = 3,
) -> list[float]:
    """People added by the k-th new site: the solution's sites in greedy order, then ``extra`` more.

    The first values are the solution's marginal gains (:attr:`SitingResult.marginal` of its new
    sites); the greedy then goes on over the candidates not chosen, each step adding the one that
    reaches the most people nobody reaches yet (ties: the lower column), so the report can say what
    a further site would add.

    Parameters
    ----------
    cover : scipy.sparse.csr_matrix
        Rows × (existing facilities, candidates), as :func:`service_cover`.
    weights : numpy.ndarray
        People per row.
    result : SitingResult
        The solution.
    n_exist : int
        Number of existing-facility columns (locked).
    extra : int
        Sites beyond the solution.

    Returns
    -------
    list of float
        People added by site 1, 2, … (solution first); shorter when the candidates run out.
    """
    curve = [float(m) for j, m in zip(result.selected, result.marginal, strict=True) if j >= n_exist]
    csc = sp.csc_matrix(cover, dtype=float)
    chosen = np.asarray(result.selected, dtype=int)
    covered = np.asarray(csc[:, chosen].sum(axis=1)).ravel() > 0 if len(chosen) else np.zeros(csc.shape[0], bool)
    free = np.ones(csc.shape[1], dtype=bool)
    free[:n_exist] = False
    free[chosen] = False
    w = np.asarray(weights, dtype=float)
    for _ in range(extra):
        if not free.any():
            break
        gain = csc.T @ np.where(covered, 0.0, w)
        gain[~free] = -1.0
        j = int(np.argmax(gain))
        curve.append(float(gain[j]))
        free[j] = False
        covered |= np.asarray(csc[:, j].toarray()).ravel() > 0
    return curve


def siting_sites(proposed: gpd.GeoDataFrame, gap_rows: pd.DataFrame, group: str) -> list[dict[str, Any]]:
    """The ranked sites for ``summary.json`` → ``siting.sites`` (the report's table reads these).

    Parameters
    ----------
    proposed : geopandas.GeoDataFrame
        :func:`proposed_facilities`.
    gap_rows : pandas.DataFrame
        :func:`proposed_gap_rows` of the same sites (the cost is the project bank's).
    group : str
        The people counted (e.g. ``60岁及以上``).

    Returns
    -------
    list of dict
        ``rank, cid, name, unit_code, unit_name, ftype, ftype_label, group, new_covered, cost_wan``
        (万元, ``None`` without a cost), ``cost_per_person_yuan`` (元/人, ``None`` without cost or
        people), ``nearest_existing``, ``nearest_existing_min`` (road minutes, ``None`` when none is
        reachable), ``nearest_mode``, ``nearest_rule`` (the circle rule the site serves), ``lon``, ``lat``.
    """
    out = []
    for r, g in zip(proposed.itertuples(), gap_rows.itertuples(), strict=True):
        cost = float(g.cost) if np.isfinite(g.cost) else None
        people = float(r.new_covered)
        minutes = float(getattr(r, "nearest_existing_min", np.nan))
        out.append({
            "rank": int(r.rank), "cid": str(r.cid), "name": str(r.name), "unit_code": str(r.unit_code),
            "unit_name": str(r.unit_name), "ftype": str(r.ftype), "ftype_label": str(g.ftype_label),
            "group": group, "new_covered": people, "cost_wan": cost,
            "cost_per_person_yuan": cost * 10000.0 / people if cost is not None and people > 0 else None,
            "nearest_existing": str(getattr(r, "nearest_existing", "") or ""),
            "nearest_existing_min": minutes if np.isfinite(minutes) else None,
            "nearest_mode": str(getattr(r, "nearest_mode", "")), "nearest_rule": str(getattr(r, "nearest_rule", "")),
            "lon": float(r.lon), "lat": float(r.lat),
        })
    return out


def gap_rows_change(base_gaps: pd.DataFrame, plan_gaps: pd.DataFrame, proposed: int) -> dict[str, int]:
    """Why the gap list's length changes after siting, in numbers.

    A gap row is matched across the two runs by ``kind``, ``rule_id`` (or service), ``unit_code``
    and ``project_name``.

    Parameters
    ----------
    base_gaps : pandas.DataFrame
        The baseline's gap table.
    plan_gaps : pandas.DataFrame
        The plan's own gap table (without the proposed-site rows).
    proposed : int
        Number of proposed-site rows put on top.

    Returns
    -------
    dict
        ``base`` (rows before), ``plan`` (rows after, proposed sites included), ``proposed``,
        ``remaining`` (plan's own rows), ``closed`` (baseline rows no longer found), ``kept``,
        ``new`` (plan rows not in the baseline: gaps split or re-sized by the new sites).
    """
    def keys(df: pd.DataFrame) -> set[tuple[str, ...]]:
        if not len(df):
            return set()
        cols = [c for c in ("kind", "rule_id", "service", "unit_code", "project_name") if c in df.columns]
        return set(df[cols].astype(str).itertuples(index=False, name=None))

    b, p = keys(base_gaps), keys(plan_gaps)
    return {"base": len(base_gaps), "plan": len(plan_gaps) + proposed, "proposed": proposed,
            "remaining": len(plan_gaps), "closed": len(b - p), "kept": len(b & p), "new": len(p - b)}


def comparison_summary(base: dict, plan: dict, diff: pd.DataFrame) -> dict[str, Any]:
    """``summary.json`` → ``comparison``: the two scenarios, the county row and the 乡镇 rows per service.

    Parameters
    ----------
    base, plan : dict
        The two runs' summaries.
    diff : pandas.DataFrame
        :func:`coverage.compare.unit_diff`.

    Returns
    -------
    dict
        ``base``, ``plan`` (scenario names), ``by_service`` (county rows, as ``comparison.csv``) and
        ``by_unit`` (the 乡镇/街道 rows, as ``comparison.csv``).
    """
    county = diff[diff["unit_code"] == ""]
    units = diff[diff["unit_code"] != ""]
    return {
        "base": base["scenario"], "plan": plan["scenario"],
        "by_service": json.loads(county.to_json(orient="records", force_ascii=False)),
        "by_unit": json.loads(units.to_json(orient="records", force_ascii=False)),
    }


def proposed_gap_rows(proposed: gpd.GeoDataFrame, preset: Any, county: str, year: int) -> pd.DataFrame:
    """Project-bank rows (kind ``proposed_site``) for the chosen sites, ranked by new people covered."""
    rows = []
    for r in proposed.itertuples():
        tmpl = preset.project(r.ftype)
        scale = tmpl.size_for(r.new_covered)
        cost = r.cost if np.isfinite(r.cost) else tmpl.cost_for(scale)
        note = f"选址第{r.rank}位；{road_time_text(r)}"
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
            "note": note,
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
    base = pipeline.evaluate_model(pipeline.build_model(inputs, step), step)
    model = base.model  # with the baseline's circle times
    inputs = model.inputs  # the model's inputs: the population rasters are freed (the cells hold the people)
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
        assert target_share is not None  # exactly one of add and target_share (checked by site_scenario)
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
    plan = pipeline.evaluate_model(plan_model, step, reuse=base)
    county = pipeline.county_name(inputs)
    year = int(plan.gaps["year"].iloc[0]) if len(plan.gaps) else int(pipeline.run_date()[:4]) + 1
    site_rows = proposed_gap_rows(proposed, inputs.preset, county, year)
    gap_change = gap_rows_change(base.gaps, plan.gaps, len(site_rows))
    plan.gaps = pd.concat([site_rows, plan.gaps], ignore_index=True)
    diff = compare.unit_diff(base.model.cells, plan.model.cells, inputs.preset)
    change = compare.cell_diff(base.model.cells, plan.model.cells, inputs.preset)
    groups = sorted({r.group for rules in siting_rules(inputs.preset, service)[1].values() for r in rules})
    group = "、".join("总人口" if g == "pop" else settings.AGE_GROUPS.get(g, g) for g in groups)
    plan.summary["siting"] = {
        "service": svc, "ftype": fixed, "model": "MCLP" if add is not None else "LSCP",
        "candidates": len(cands), "selected": proposed["cid"].tolist(),
        "new_covered": float(proposed["new_covered"].sum()) if len(proposed) else 0.0,
        "objective": float(sol.objective), "bound": float(sol.upper_bound), "gap": float(sol.gap),
        "method": sol.method, "proven_optimal": bool(sol.proven_optimal),
        "group": group,
        "sites": siting_sites(proposed, site_rows, group),
        "marginal_curve": marginal_curve(cover, weights, sol, len(locked)),
        "gap_rows": gap_change,
    }
    plan.summary["comparison"] = comparison_summary(base.summary, plan.summary, diff)
    pipeline.write_outputs(plan, out, step, comparison=diff, proposed=proposed, change=change)
    return SiteRun(base=base, plan=plan, proposed=proposed, solution=sol, diff=diff)


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
        same = pipeline.same_data(base_model.inputs, plan_inputs)
        plan_model = pipeline.with_facilities(base_model, plan_inputs) if same else pipeline.build_model(plan_inputs, step)
        plan = pipeline.evaluate_model(plan_model, step, reuse=base if same else None)
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
    plan.summary["comparison"] = comparison_summary(base.summary, plan.summary, diff)
    pipeline.write_outputs(plan, out, step, comparison=diff, proposed=added if len(added) else None,
                           change=cells)
    return plan, diff
