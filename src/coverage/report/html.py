"""Printable, self-contained ``report.html``: key figures, coverage by township, standards, gaps.

The page is rendered from the Jinja2 template ``templates/report.html.j2``. It carries everything
inline — CSS (with ``@media print`` rules for A4), and charts as inline SVG
(:mod:`coverage.report.charts`) — and references no external resource (no CDN, no web font, no
link), so it opens offline and prints the same everywhere.

The charts' text is SVG text drawn by the browser with the reader's fonts, like the tables, so the
charts are in Chinese whether or not Python can find a CJK font, and nothing about fonts is
printed to the terminal. People are whole numbers (:mod:`coverage.report.tables`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
import pandas as pd

from coverage import __version__
from coverage.categories import SERVICES
from coverage.report import charts as svg
from coverage.report._util import atomic_target, is_missing
from coverage.report.excel import CIRCLE_SHEET, NATURES, project_bank_frame
from coverage.report.tables import circle_label, round_people, service_text, source_label

__all__ = ["unit_share_table", "write_report"]

log = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).with_name("templates")
#: Key of the 15 km urban–rural circle among the services of the coverage table.
URBAN_RURAL = "urban_rural_circle"
#: Colour of the 15 km circle in the charts.
_CIRCLE_COLOUR = "#8c564b"
_TOP_GAPS = 20
_GAP_COLUMNS = ("序号", "服务领域", "设施类别", "项目名称", "建设性质", "乡镇(街道)", "村(社区)",
                "服务人口", "新增覆盖人口", "对应指标", "指标性质", "优先级")
_GAP_NUMERIC = {"序号", "服务人口", "新增覆盖人口", "优先级"}


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def unit_share_table(summary: Mapping, by_unit: pd.DataFrame | None = None) -> pd.DataFrame:
    """Coverage share per 乡镇/街道 (rows) and service (columns).

    Parameters
    ----------
    summary : dict
        ``summary.json`` contents; its ``categories.<service>.by_unit`` lists and
        ``urban_rural_circle.by_unit`` are used when ``by_unit`` is ``None`` or empty.
    by_unit : pandas.DataFrame, optional
        Either *long* — columns ``service, code, name, population, covered, share`` (one row per
        service and township; ``service`` may be ``urban_rural_circle``) — or *wide* — columns
        ``code, name, population`` and ``share_<service>`` per service.

    Returns
    -------
    pandas.DataFrame
        Columns ``code, name, population`` then one share column (0–1) per service key, four
        mission services first, ``urban_rural_circle`` last; rows in first-seen order. In the long
        form ``population`` is the total-population figure of the 15 km circle when given, else the
        largest population of any service in that township (the total when a service counts
        everyone).
    """
    if by_unit is not None and len(by_unit):
        df = pd.DataFrame(by_unit).copy()
        if "service" not in df.columns:
            shares = [c for c in df.columns if str(c).startswith("share_")]
            out = pd.DataFrame(
                {
                    "code": df["code"].astype(object) if "code" in df.columns else None,
                    "name": df["name"] if "name" in df.columns else None,
                    "population": df["population"] if "population" in df.columns else np.nan,
                }
            )
            for c in shares:
                out[str(c)[len("share_"):]] = pd.to_numeric(df[c], errors="coerce")
            return out[["code", "name", "population", *_order(out.columns[3:])]].reset_index(drop=True)
        long = df
    else:
        recs = []
        for key, cat in (summary.get("categories") or {}).items():
            for r in (cat or {}).get("by_unit") or []:
                recs.append({"service": key, **r})
        for r in (summary.get(URBAN_RURAL) or {}).get("by_unit") or []:
            recs.append({"service": URBAN_RURAL, **r})
        if not recs:
            return pd.DataFrame(columns=["code", "name", "population"])
        long = pd.DataFrame(recs)
    return _pivot_long(long)


def _pivot_long(long: pd.DataFrame) -> pd.DataFrame:
    long = long.copy()
    for c in ("code", "name"):
        if c not in long.columns:
            long[c] = None
    long["code"] = long["code"].astype(object).where(long["code"].notna(), None)
    long["_key"] = [f"{c}\x00{n}" for c, n in zip(long["code"], long["name"], strict=True)]
    if "share" not in long.columns:
        long["share"] = np.nan
    share = pd.to_numeric(long["share"], errors="coerce")
    if {"population", "covered"} <= set(long.columns):
        pop = pd.to_numeric(long["population"], errors="coerce")
        cov = pd.to_numeric(long["covered"], errors="coerce")
        share = share.where(share.notna(), cov / pop.where(pop > 0))
    long["_share"] = share
    keys = list(dict.fromkeys(long["_key"]))
    first = long.drop_duplicates("_key").set_index("_key")
    out = pd.DataFrame({"code": first.loc[keys, "code"].to_numpy(), "name": first.loc[keys, "name"].to_numpy()})
    pops = pd.to_numeric(long.get("population", pd.Series(np.nan, index=long.index)), errors="coerce")
    long["_pop"] = pops
    circle = long[long["service"] == URBAN_RURAL].groupby("_key", sort=False)["_pop"].first()
    largest = long.groupby("_key", sort=False)["_pop"].max()
    out["population"] = [circle.get(k, np.nan) if pd.notna(circle.get(k, np.nan)) else largest.get(k, np.nan)
                         for k in keys]
    for svc in _order(long["service"].dropna().unique()):
        s = long[long["service"] == svc].groupby("_key", sort=False)["_share"].first()
        out[svc] = [s.get(k, np.nan) for k in keys]
    return out


def _order(keys: Sequence[Any]) -> list[str]:
    keys = [str(k) for k in keys]
    first = [k for k in SERVICES if k in keys]
    rest = sorted(k for k in keys if k not in SERVICES and k != URBAN_RURAL)
    return first + rest + ([URBAN_RURAL] if URBAN_RURAL in keys else [])


def _label(key: str) -> str:
    return CIRCLE_SHEET + "(15公里)" if key == URBAN_RURAL else service_text(key)


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


def write_report(  # noqa: PLR0913 - issue 11: the plan's map could join a figures object
    path: str | os.PathLike[str],
    summary: dict,
    by_unit: pd.DataFrame | None,
    gaps: pd.DataFrame,
    standards_checks: pd.DataFrame | None,
    times: Mapping[str, np.ndarray | tuple[np.ndarray, np.ndarray]] | None,
    title: str,
    synthetic: bool = False,
    *,
    site_map: str | None = None,
) -> Path:
    """Write the printable, self-contained HTML report.

    Parameters
    ----------
    path : str or path-like
        Output file (``report.html``); written to a temporary file, then renamed.
    summary : dict
        ``summary.json`` contents (DESIGN §4.2).
    by_unit : pandas.DataFrame or None
        Coverage by 乡镇/街道, long or wide (see :func:`unit_share_table`); ``None`` takes it from
        ``summary``.
    gaps : pandas.DataFrame
        The ranked gap table (internal columns); the first 20 rows are shown.
    standards_checks : pandas.DataFrame or None
        One row per checked rule: ``rule`` and/or ``indicator``, ``nature`` (约束性/预期性),
        ``target``, ``value``, ``pass`` (bool; missing = not evaluated); optional ``service``,
        ``unit`` (place checked) and ``note``.
    times : dict of str to numpy.ndarray or (numpy.ndarray, numpy.ndarray), or None
        Service key → minutes to the nearest facility per demand cell, or a pair ``(minutes,
        people)`` per (rule, cell) with the people of the rule's group: the time chart then counts
        people, not cells. ``inf``/NaN (beyond the threshold or no road access) are left out of the
        histogram and counted in the legend.
    title : str
        Report title (page heading and ``<title>``).
    synthetic : bool
        Show the "合成示例数据 / synthetic demo data" banner.
    site_map : str, optional
        The plan's static map (:func:`coverage.report.sitemap.site_map_svg`), shown in the plan
        section.

    Notes
    -----
    The plan section (``covplan site`` and ``compare``) reads ``summary["siting"]`` (ranked
    sites, marginal-gain curve, optimality gap, gap-list change) and ``summary["comparison"]``
    (before/after by 乡镇); the provenance block reads ``summary["run"]``.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    table = unit_share_table(summary, by_unit)
    services = [c for c in table.columns if c not in ("code", "name", "population")]
    gaps = gaps if gaps is not None else pd.DataFrame()

    plan = _plan_context(summary, site_map)
    charts = []
    if services and len(table):
        charts.append(_share_chart(table, services))
    if times:
        chart = _time_chart(times)
        if chart is not None:
            charts.append(chart)
    # figures numbered in the order of the page (the plan's come first)
    for k, fig in enumerate([*plan["figures"], *charts], start=1):
        fig["caption"] = fig["caption"].format(n=k)

    context = {
        "title": title,
        "scenario": summary.get("scenario"),
        "synthetic": bool(synthetic),
        "warnings": [w for w in summary.get("warnings") or [] if isinstance(w, dict)],
        "version": __version__,
        "figures": _key_figures(summary, gaps, standards_checks),
        "coverage": _coverage_context(table, services, summary),
        "standards": _standards_context(standards_checks),
        "gaps": _gaps_context(gaps),
        "charts": charts,
        "chart_notes": [],
        "plan": plan,
        "run": _run_context(summary),
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("report.html.j2").render(**context)
    with atomic_target(path, suffix=".html") as tmp:
        tmp.write_text(html, encoding="utf-8")
    return Path(path)


def _key_figures(summary: Mapping, gaps: pd.DataFrame, checks: pd.DataFrame | None) -> list[dict]:
    figs = [{"label": "总人口 / population", "value": _people(summary.get("population_total")), "note": ""}]
    cats = summary.get("categories") or {}
    for key in _order(list(cats)):
        cat = cats[key] or {}
        if _no_data(cat):
            figs.append({"label": f"{service_text(key)} 覆盖率", "value": NO_DATA_SHORT,
                         "note": f"{circle_label(cat.get('circle'))} · no data".strip(" ·")})
            continue
        figs.append({
            "label": f"{service_text(key)} 覆盖率",
            "value": _pct(cat.get("share_covered")),
            "note": f"{circle_label(cat.get('circle'))} · 覆盖 {_people(cat.get('population_covered'))} 人".strip(" ·"),
        })
    ur = summary.get(URBAN_RURAL)
    if ur and _no_data(ur):
        figs.append({"label": "城乡服务圈(15公里)覆盖率", "value": "无数据",
                     "note": "未给出城区中心，也无法推算 / no seat"})
    elif ur:
        figs.append({
            "label": "城乡服务圈(15公里)覆盖率",
            "value": _pct(ur.get("share_covered")),
            "note": f"{circle_label(ur.get('circle'))} · 覆盖 {_people(ur.get('population_covered'))} 人".strip(" ·"),
        })
    area = summary.get("area") or {}
    if area.get("urban") in ("derived", "given"):
        derived = area["urban"] == "derived"
        figs.append({"label": "城区人口占比" + ("（推算）" if derived else ""), "value": _pct(area.get("urban_share")),
                     "note": "按人口栅格推算 / derived (Degree of Urbanisation)" if derived else "城区范围：情景给出"})
    n = len(gaps)
    binding = int((gaps["nature"] == NATURES[0]).sum()) if n and "nature" in gaps.columns else 0
    figs.append({"label": "缺口项目 / gaps", "value": f"{n:,}", "note": f"其中约束性 {binding} 项"})
    if checks is not None and len(checks) and "pass" in checks.columns:
        p = checks["pass"]
        passed = int(sum(v is True or v is np.True_ or v == 1 for v in p if not is_missing(v)))
        evaluated = int(sum(not is_missing(v) for v in p))
        figs.append({"label": "标准核查达标", "value": f"{passed}/{evaluated}", "note": "项规则达标"})
    return figs


def _coverage_context(table: pd.DataFrame, services: list[str], summary: Mapping) -> dict:
    headers = ["乡镇(街道)", "代码", "人口", *(_label(s) for s in services)]
    rows = []
    cats_ = summary.get("categories") or {}
    missing = {s for s in services if _no_data(summary.get(URBAN_RURAL) if s == URBAN_RURAL else cats_.get(s))}
    total = summary.get("population_total")
    pop = pd.to_numeric(table["population"], errors="coerce") if len(table) else pd.Series(dtype=float)
    # the townships add up to the printed total when they partition it (they do with the 15 km
    # circle's population); otherwise each is rounded on its own
    known = _as_float(total)
    adds_up = known is not None and pop.notna().all() and abs(float(pop.sum()) - known) < 0.5
    whole = round_people(pop, known if adds_up else None)
    for rec, people in zip(table.to_dict("records"), whole, strict=True):
        rows.append({
            "total": False,
            "name": _text(rec.get("name")),
            "code": _text(rec.get("code")),
            "population": _people(people),
            "shares": [_NO_DATA_CELL if s in missing and is_missing(rec.get(s)) else _share_cell(rec.get(s))
                       for s in services],
        })
    if rows:
        cats = summary.get("categories") or {}
        totals = []
        for s in services:
            src = summary.get(URBAN_RURAL) if s == URBAN_RURAL else cats.get(s)
            totals.append(_NO_DATA_CELL if _no_data(src) else _share_cell((src or {}).get("share_covered")))
        rows.append({"total": True, "name": "全域合计", "code": "",
                     "population": _people(summary.get("population_total")), "shares": totals})
    return {"headers": headers, "rows": rows}


def _standards_context(checks: pd.DataFrame | None) -> dict:
    empty = {"headers": [], "rows": [], "passed": 0, "failed": 0, "unknown": 0, "failed_binding": 0}
    if checks is None or not len(checks):
        return empty
    spec = [("service", "服务领域"), ("rule", "规则"), ("indicator", "指标"), ("unit", "范围"),
            ("nature", "指标性质"), ("target", "目标值"), ("value", "现状值"), ("pass", "是否达标"),
            ("note", "说明")]
    cols = [(c, h) for c, h in spec if c in checks.columns]
    if "indicator" in checks.columns:  # rule ids are internal keys: shown only without an indicator
        cols = [(c, h) for c, h in cols if c != "rule"]
    rows, passed, failed, unknown, failed_binding = [], 0, 0, 0, 0
    for rec in checks.to_dict("records"):
        cells = []
        for c, _ in cols:
            v = rec.get(c)
            if c == "pass":
                if is_missing(v):
                    cells.append({"text": "— 未评估", "cls": "na"})
                    unknown += 1
                elif bool(v):
                    cells.append({"text": "✔ 达标", "cls": "pass"})
                    passed += 1
                else:
                    cells.append({"text": "✘ 未达标", "cls": "fail"})
                    failed += 1
                    failed_binding += rec.get("nature") == NATURES[0]
            elif c == "service":
                cells.append({"text": service_text(v), "cls": ""})
            elif c in ("target", "value"):
                cells.append({"text": _number(v), "cls": ""})
            else:
                cells.append({"text": _text(v), "cls": ""})
        rows.append({"cells": cells})
    return {"headers": [h for _, h in cols], "rows": rows, "passed": passed, "failed": failed,
            "unknown": unknown, "failed_binding": int(failed_binding)}


def _gaps_context(gaps: pd.DataFrame) -> dict:
    bank = project_bank_frame(gaps)
    top = bank.head(_TOP_GAPS)
    rows = []
    for rec in top.to_dict("records"):
        row = []
        for h in _GAP_COLUMNS:
            v = rec.get(h)
            if h in ("服务人口", "新增覆盖人口"):
                row.append({"text": _people(v), "num": True})
            elif h in _GAP_NUMERIC:
                row.append({"text": _number(v), "num": True})
            else:
                row.append({"text": _text(v), "num": False})
        rows.append(row)
    return {"headers": list(_GAP_COLUMNS), "rows": rows, "shown": len(rows) or _TOP_GAPS, "total": len(bank)}


# --------------------------------------------------------------------------------------------
# charts
# --------------------------------------------------------------------------------------------


def _share_chart(table: pd.DataFrame, services: list[str]) -> dict:
    names = [_text(r.get("name")) or _text(r.get("code")) or f"#{i}"
             for i, r in enumerate(table.to_dict("records"), start=1)]
    panels = [(_label(s), pd.to_numeric(table[s], errors="coerce").to_numpy(dtype=float)) for s in services]
    return {
        "svg": markupsafe.Markup(svg.share_bars_svg(names, panels)),
        "alt": "各乡镇(街道)分服务覆盖率条形图 / coverage share by township and service",
        "caption": "图{n} 各乡镇(街道)服务圈覆盖率 / Figure {n}. Coverage share by township and service",
    }


def _time_chart(times: Mapping[str, np.ndarray | tuple[np.ndarray, np.ndarray]]) -> dict | None:
    series: list[tuple[str, str, np.ndarray, float]] = []
    ws: list[np.ndarray | None] = []
    for key in _order(list(times)):
        value = times[key]
        pair = isinstance(value, tuple)
        t = np.asarray(value[0] if pair else value, dtype=float).ravel()
        colour = SERVICES[key].colour if key in SERVICES else _CIRCLE_COLOUR
        ok = np.isfinite(t)
        if pair:
            w = np.asarray(value[1], dtype=float).ravel()
            series.append((_label(key), colour, t[ok], float(w.sum())))
            ws.append(w[ok])
        else:
            series.append((_label(key), colour, t[ok], int(t.size)))
            ws.append(None)
    people = any(w is not None for w in ws)
    out = svg.histogram_svg(series, weights=ws if people else None)
    if out is None:
        return None
    what = "人" if people else "格网单元"
    return {
        "svg": markupsafe.Markup(out),
        "alt": "到最近设施时间的分布 / distribution of time to the nearest facility",
        "caption": (f"图{{n}} 到最近设施的出行时间(按{what}计;超出阈值或无道路可达的{what}不计入横轴,只在图例中计数)"
                    f" / Figure {{n}}. Time to the nearest facility, counting {'people' if people else 'demand cells'}"),
    }


# --------------------------------------------------------------------------------------------
# the plan (covplan site / compare) and provenance
# --------------------------------------------------------------------------------------------

#: ``nearest_existing`` of a site when the inputs hold no facility of its rule's types (plans.NO_EXISTING).
_NO_EXISTING = "无同类现有设施数据"
#: Modes in the planner's words.
_MODES = {"walk": "步行", "ebike": "电动自行车", "drive": "驾车"}


def _run_context(summary: Mapping) -> dict | None:
    run = summary.get("run")
    if not isinstance(run, Mapping):
        return None
    return {
        "date": _text(run.get("date")), "preset": _text(run.get("preset")),
        "preset_title": _text(run.get("preset_title")),
        "sources": [{"key": source_label(x.get("key")), "file": _text(x.get("file"))}
                    for x in run.get("sources") or [] if isinstance(x, Mapping)],
    }


def _money(v: Any, digits: int = 1) -> str:
    if is_missing(v):
        return "—"
    return f"{float(v):,.{digits}f}"


def _sites_context(siting: Mapping) -> dict:
    rows = []
    for r in siting.get("sites") or []:
        minutes = r.get("nearest_existing_min")
        mode = _MODES.get(str(r.get("nearest_mode")), _text(r.get("nearest_mode")))
        rows.append({
            "rank": int(r["rank"]), "cid": _text(r.get("cid")), "name": _text(r.get("name")),
            "unit": _text(r.get("unit_name")), "ftype": _text(r.get("ftype_label")),
            "gain": _people(r.get("new_covered")), "cost": _money(r.get("cost_wan")),
            "per_person": _money(r.get("cost_per_person_yuan"), 0),
            "minutes": (f"{float(minutes):.1f}" if not is_missing(minutes)
                        else "无数据" if r.get("nearest_existing") == _NO_EXISTING else "无道路可达"),
            "mode": mode, "nearest": _text(r.get("nearest_existing")) or "—",
        })
    sites = siting.get("sites") or []
    gain = sum(float(r.get("new_covered") or 0.0) for r in sites)
    costs = [r.get("cost_wan") for r in sites]
    cost = None if any(is_missing(c) for c in costs) else sum(float(c) for c in costs)
    return {"rows": rows, "gain": _people(gain), "cost": _money(cost),
            "per_person": _money(cost * 10000.0 / gain if cost is not None and gain > 0 else None, 0)}


def _curve_context(siting: Mapping, chosen: int) -> tuple[dict | None, str]:
    curve = [float(x) for x in siting.get("marginal_curve") or []]
    if not curve:
        return None, ""
    out = svg.marginal_svg(curve, chosen)
    chart = None if out is None else {
        "svg": markupsafe.Markup(out),
        "alt": "边际增益曲线 / marginal gain of each further site",
        "caption": ("图{n} 每增加一个点位新增覆盖的人数(蓝色为方案内,灰色为方案外的下一个点位)"
                    " / Figure {n}. People added by the k-th site (grey: beyond the plan)"),
    }
    if len(curve) > chosen:
        nxt = curve[chosen]
        last = curve[chosen - 1] if chosen else None
        text = (f"第{chosen + 1}个点位只能再新增覆盖 {_people(nxt)} 人"
                + (f"(第{chosen}个点位为 {_people(last)} 人)" if last is not None else "")
                + f" / a site no. {chosen + 1} would add only {_people(nxt)} people.")
    else:
        text = "候选点位已全部选用,没有更多点位可加 / no candidate left."
    return chart, text


def _gap_text(siting: Mapping) -> str:
    g = siting.get("gap_rows")
    if not isinstance(g, Mapping):
        return ""
    return (f"缺口清单(gaps.xlsx)由现状 {g['base']} 项变为方案后 {g['plan']} 项:其中 {g['proposed']} 项是本次选址的"
            f"拟建项目(列在最前),{g['remaining']} 项是方案后仍存在的缺口。与现状相比,{g['closed']} 项缺口已被新点位"
            f"覆盖或随之缩小而改写,{g['new']} 项是方案后新列出的(多为原缺口被部分覆盖后按剩余未覆盖人群重新划分;"
            f"现状无设施数据的服务在方案后才可评估,其缺口也在此列),"
            f"{g['kept']} 项不变。 / The gap list goes from {g['base']} to {g['plan']} rows: {g['proposed']} proposed "
            f"sites on top, {g['remaining']} remaining gaps ({g['closed']} closed or redrawn, {g['new']} listed anew, "
            f"mostly redrawn from what remains uncovered; {g['kept']} unchanged).")


def _comparison_context(summary: Mapping, only: str | None) -> list[dict]:
    comp = summary.get("comparison")
    if not isinstance(comp, Mapping):
        return []
    units = pd.DataFrame(comp.get("by_unit") or [])
    county = pd.DataFrame(comp.get("by_service") or [])
    tables = []
    for svc in _order(list(dict.fromkeys(county["service"]))) if len(county) else []:
        if only is not None and svc != only:
            continue
        c = county[county["service"] == svc]
        changed = float(c["gained"].sum()) > 0 or float(c["lost"].sum()) > 0
        if only is None and not changed:
            continue
        u = units[units["service"] == svc] if len(units) else units
        rows = [_diff_row(r, False) for r in u.to_dict("records")] + [_diff_row(r, True) for r in c.to_dict("records")]
        tables.append({"service": service_text(svc), "key": svc, "rows": rows})
    return tables


def _diff_row(r: Mapping, total: bool) -> dict:
    change = r.get("share_change")
    return {
        "total": total, "code": _text(r.get("unit_code")), "name": "全域合计" if total else _text(r.get("unit_name")),
        "population": _people(r.get("population_plan")),
        "before": _people(r.get("covered_base")), "after": _people(r.get("covered_plan")),
        "gained": _people(r.get("gained")), "lost": _people(r.get("lost")),
        "share_before": _pct(r.get("share_base")), "share_after": _pct(r.get("share_plan")),
        "change": "—" if (ch := _as_float(change)) is None else f"{ch * 100:+.1f}",
    }


def _plan_context(summary: Mapping, site_map: str | None) -> dict:
    siting = summary.get("siting") if isinstance(summary.get("siting"), Mapping) else None
    comp = summary.get("comparison") if isinstance(summary.get("comparison"), Mapping) else None
    ctx: dict[str, Any] = {"show": bool(siting or comp), "siting": None, "comparison": [], "figures": [],
                           "curve": None, "curve_text": "", "map": None, "gap_text": ""}
    if not ctx["show"]:
        return ctx
    if siting is not None:
        sites = _sites_context(siting)
        chosen = len(siting.get("sites") or [])
        gap = siting.get("gap")
        # MCLP: people covered (whole people); LSCP: number (or cost) of new sites
        fmt = _people if siting.get("model") == "MCLP" else (lambda v: _number(None if is_missing(v) else round(float(v), 1)))
        ctx["siting"] = {
            "model": _text(siting.get("model")), "service": service_text(siting.get("service")),
            "group": _text(siting.get("group")) or "人口", "candidates": _text(siting.get("candidates")),
            "n": chosen, "objective": fmt(siting.get("objective")), "bound": fmt(siting.get("bound")),
            "gap": "—" if is_missing(gap) else f"{float(gap) * 100:.2f}%",
            "proven": bool(siting.get("proven_optimal")), "method": _text(siting.get("method")), **sites,
        }
        ctx["curve"], ctx["curve_text"] = _curve_context(siting, chosen)
        ctx["gap_text"] = _gap_text(siting)
    ctx["comparison"] = _comparison_context(summary, siting.get("service") if siting else None)
    ctx["base"] = _text(comp.get("base")) if comp else ""
    if site_map:
        ctx["map"] = {
            "svg": markupsafe.Markup(site_map),
            "alt": "方案示意图 / map of the plan",
            "caption": ("图{n} 方案示意图:乡镇(街道)界线、现有设施、拟建点位(按排名编号)与方案后仍未覆盖的人口"
                        " / Figure {n}. The plan: townships, existing facilities, proposed sites by rank, people still uncovered"),
        }
    ctx["figures"] = [f for f in (ctx["curve"], ctx["map"]) if f is not None]
    return ctx


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def _text(v: Any) -> str:
    return "" if is_missing(v) else str(v)


def _people(v: Any) -> str:
    """Whole people with thousands separators (``—`` when missing)."""
    if is_missing(v):
        return "—"
    try:
        r = round_people([float(v)])[0]
    except (TypeError, ValueError):
        return str(v)
    return "—" if r is pd.NA else f"{int(r):,}"


def _pct(v: Any) -> str:
    if is_missing(v):
        return "—"
    try:
        return f"{float(v) * 100:.1f}%"
    except (TypeError, ValueError):
        return str(v)


def _number(v: Any) -> str:
    if is_missing(v):
        return ""
    if isinstance(v, bool | np.bool_):
        return "是" if v else "否"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        x = float(v)
        if not np.isfinite(x):
            return "∞" if x > 0 else "-∞"
        if x.is_integer():
            return f"{int(x):,}"
        return f"{x:,.3f}".rstrip("0").rstrip(".")
    return str(v)


#: A figure without input data (no facility of the service, no seat): never shown as 0.
NO_DATA_SHORT = "无设施数据"
_NO_DATA_CELL = {"text": NO_DATA_SHORT, "style": "color: #666; font-style: italic"}


def _as_float(v: Any) -> float | None:
    """``float(v)``, or None for a missing value (:func:`is_missing`)."""
    return None if is_missing(v) else float(v)


def _no_data(block: Mapping | None) -> bool:
    """A summary block whose covered figure is ``null`` for want of input data (it has a ``note``)."""
    return block is not None and bool(block) and block.get("population_covered") is None and bool(block.get("note"))


def _share_cell(v: Any) -> dict:
    if is_missing(v):
        return {"text": "—", "style": ""}
    try:
        x = float(v)
    except (TypeError, ValueError):
        return {"text": str(v), "style": ""}
    hue = int(round(120 * min(max(x, 0.0), 1.0)))
    return {"text": f"{x * 100:.1f}%", "style": f"background-color: hsl({hue}, 70%, 85%)"}
