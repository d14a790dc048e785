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
from coverage.report.tables import circle_label, round_people, service_text

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


def write_report(
    path: str | os.PathLike[str],
    summary: dict,
    by_unit: pd.DataFrame | None,
    gaps: pd.DataFrame,
    standards_checks: pd.DataFrame | None,
    times: dict[str, np.ndarray] | None,
    title: str,
    synthetic: bool = False,
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
    times : dict of str to numpy.ndarray or None
        Service key → minutes to the nearest facility per demand cell; ``inf``/NaN (beyond the
        threshold or no road access) are left out of the histogram and counted in the legend.
    title : str
        Report title (page heading and ``<title>``).
    synthetic : bool
        Show the "合成示例数据 / synthetic demo data" banner.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    table = unit_share_table(summary, by_unit)
    services = [c for c in table.columns if c not in ("code", "name", "population")]
    gaps = gaps if gaps is not None else pd.DataFrame()

    charts = []
    if services and len(table):
        charts.append(_share_chart(table, services))
    if times:
        chart = _time_chart(times)
        if chart is not None:
            charts.append(chart)

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
    adds_up = not is_missing(total) and pop.notna().all() and abs(float(pop.sum()) - float(total)) < 0.5
    whole = round_people(pop, float(total) if adds_up else None)
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
        "caption": "图1 各乡镇(街道)服务圈覆盖率 / Figure 1. Coverage share by township and service",
    }


def _time_chart(times: Mapping[str, np.ndarray]) -> dict | None:
    series = []
    for key in _order(list(times)):
        t = np.asarray(times[key], dtype=float).ravel()
        colour = SERVICES[key].colour if key in SERVICES else _CIRCLE_COLOUR
        series.append((_label(key), colour, t[np.isfinite(t)], int(t.size)))
    out = svg.histogram_svg(series)
    if out is None:
        return None
    return {
        "svg": markupsafe.Markup(out),
        "alt": "到最近设施时间的分布 / distribution of time to the nearest facility",
        "caption": ("图2 到最近设施的出行时间(超出阈值或无道路可达的单元不计入横轴,只在图例中计数)"
                    " / Figure 2. Time to the nearest facility per demand cell"),
    }


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


def _no_data(block: Mapping | None) -> bool:
    """A summary block whose covered figure is ``null`` for want of input data (it has a ``note``)."""
    return bool(block) and block.get("population_covered") is None and bool(block.get("note"))


def _share_cell(v: Any) -> dict:
    if is_missing(v):
        return {"text": "—", "style": ""}
    try:
        x = float(v)
    except (TypeError, ValueError):
        return {"text": str(v), "style": ""}
    hue = int(round(120 * min(max(x, 0.0), 1.0)))
    return {"text": f"{x * 100:.1f}%", "style": f"background-color: hsl({hue}, 70%, 85%)"}
