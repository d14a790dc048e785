"""Printable, self-contained ``report.html``: key figures, coverage by township, standards, gaps.

The page is rendered from the Jinja2 template ``templates/report.html.j2``. It carries everything
inline — CSS (with ``@media print`` rules for A4), and charts as base64 PNG images drawn with
matplotlib's Agg backend — and references no external resource (no CDN, no web font, no link), so it
opens offline and prints the same everywhere.

Chart labels are Chinese when a CJK-capable font is installed (:func:`find_cjk_font`; on Debian
``apt-get install fonts-noto-cjk``). Without one the charts fall back to English labels and show
townships by their code, and a warning is logged, so no chart ever shows empty boxes ("tofu")
silently. The tables themselves are HTML text and use the reader's own fonts.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import os
import shutil
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coverage import __version__
from coverage.report._util import atomic_target, is_missing
from coverage.report.excel import (
    CIRCLE_SHEET,
    NATURES,
    SERVICE_LABELS,
    circle_label,
    project_bank_frame,
    service_label,
)

__all__ = ["find_cjk_font", "unit_share_table", "write_report"]

log = logging.getLogger(__name__)

_TEMPLATES = Path(__file__).with_name("templates")
#: Key of the 15 km urban–rural circle among the services of the coverage table.
URBAN_RURAL = "urban_rural_circle"
#: English chart labels used when no CJK font is available.
_EN_LABELS = {
    "school": "Schools",
    "clinic": "Health",
    "elderly": "Elderly care",
    "fitness": "Fitness",
    URBAN_RURAL: "15 km circle",
}
#: Font families known to cover Chinese, best first.
_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
    "Noto Sans CJK JP",
    "Noto Serif CJK SC",
    "AR PL UKai CN",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)
_TOP_GAPS = 20
_GAP_COLUMNS = ("序号", "服务领域", "设施类别", "项目名称", "建设性质", "乡镇(街道)", "村(社区)",
                "服务人口", "新增覆盖人口", "对应指标", "指标性质", "优先级")
_GAP_NUMERIC = {"序号", "服务人口", "新增覆盖人口", "优先级"}


# --------------------------------------------------------------------------------------------
# fonts
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """Family name of an installed font that can draw Chinese, or ``None``.

    Looks first among the fonts matplotlib knows for well-known CJK families
    (Noto Sans CJK SC, Source Han Sans, WenQuanYi, Microsoft YaHei, SimHei…); then asks fontconfig
    (``fc-list :lang=zh``) and registers the files it lists, which finds fonts installed after
    matplotlib built its font cache. The candidate must draw ``覆盖率乡镇`` without missing glyphs.

    Returns
    -------
    str or None
        A family name for ``rcParams["font.sans-serif"]``; ``None`` when none is installed.
    """
    found = _known_cjk_family()
    if found:
        return found
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        out = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()})
    for f in files:
        try:
            font_manager.fontManager.addfont(f)
        except Exception:  # noqa: BLE001 - unreadable font files are skipped
            continue
    found = _known_cjk_family()
    if found:
        return found
    names = {entry.name for entry in font_manager.fontManager.ttflist if entry.fname in files}
    for name in sorted(names):
        if _draws_chinese(name):
            return name
    return None


def _known_cjk_family() -> str | None:
    names = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in _CJK_FAMILIES:
        if family in names and _draws_chinese(family):
            return family
    return None


def _draws_chinese(family: str, sample: str = "覆盖率乡镇街道") -> bool:
    """True when the font file behind ``family`` has a glyph for every character of ``sample``."""
    try:
        path = font_manager.findfont(
            font_manager.FontProperties(family=family), fallback_to_default=False
        )
        font = font_manager.get_font(path)
        return all(font.get_char_index(ord(ch)) != 0 for ch in sample)
    except Exception:  # noqa: BLE001 - a font we cannot open does not count
        return False


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
    first = [k for k in SERVICE_LABELS if k in keys]
    rest = sorted(k for k in keys if k not in SERVICE_LABELS and k != URBAN_RURAL)
    return first + rest + ([URBAN_RURAL] if URBAN_RURAL in keys else [])


def _label(key: str) -> str:
    return CIRCLE_SHEET + "(15公里)" if key == URBAN_RURAL else service_label(key)


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
    cjk = find_cjk_font()
    if cjk is None:
        log.warning(
            "没有找到中文字体,图表改用英文标注、乡镇以代码表示(请安装 fonts-noto-cjk)。 / "
            "No CJK font found: chart labels fall back to English and townships are shown by "
            "code. Install a CJK font (Debian: apt-get install fonts-noto-cjk)."
        )
    table = unit_share_table(summary, by_unit)
    services = [c for c in table.columns if c not in ("code", "name", "population")]
    gaps = gaps if gaps is not None else pd.DataFrame()

    charts, notes = [], []
    if services and len(table):
        charts.append(_share_chart(table, services, cjk))
        if cjk is None:
            notes.append("本机无中文字体,图中乡镇(街道)以代码表示,对照上表“代码”列。"
                         " / No CJK font: townships are labelled by code in the chart.")
    if times:
        chart = _time_chart(times, cjk)
        if chart is not None:
            charts.append(chart)

    context = {
        "title": title,
        "scenario": summary.get("scenario"),
        "synthetic": bool(synthetic),
        "version": __version__,
        "figures": _key_figures(summary, gaps, standards_checks),
        "coverage": _coverage_context(table, services, summary),
        "standards": _standards_context(standards_checks),
        "gaps": _gaps_context(gaps),
        "charts": charts,
        "chart_notes": notes,
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
        figs.append({
            "label": f"{service_label(key)} 覆盖率",
            "value": _pct(cat.get("share_covered")),
            "note": f"{circle_label(cat.get('circle'))} · 覆盖 {_people(cat.get('population_covered'))} 人".strip(" ·"),
        })
    ur = summary.get(URBAN_RURAL)
    if ur:
        figs.append({
            "label": "城乡服务圈(15公里)覆盖率",
            "value": _pct(ur.get("share_covered")),
            "note": f"{circle_label(ur.get('circle'))} · 覆盖 {_people(ur.get('population_covered'))} 人".strip(" ·"),
        })
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
    for rec in table.to_dict("records"):
        rows.append({
            "total": False,
            "name": _text(rec.get("name")),
            "code": _text(rec.get("code")),
            "population": _people(rec.get("population")),
            "shares": [_share_cell(rec.get(s)) for s in services],
        })
    if rows:
        cats = summary.get("categories") or {}
        totals = []
        for s in services:
            src = summary.get(URBAN_RURAL) if s == URBAN_RURAL else cats.get(s)
            totals.append(_share_cell((src or {}).get("share_covered")))
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
                cells.append({"text": service_label(v), "cls": ""})
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


def _rc(cjk: str | None) -> dict:
    fonts = [cjk, "DejaVu Sans"] if cjk else ["DejaVu Sans"]
    return {"font.family": "sans-serif", "font.sans-serif": fonts, "axes.unicode_minus": False}


def _png(fig: Figure) -> dict:
    """Render a figure to base64 PNG (deterministic: no timestamp/software metadata)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    if missing:
        log.warning("图表中有字体缺少的字符 / glyphs missing from the chart font: %s", missing[0])
    w, h = fig.get_size_inches() * 110
    return {"data": base64.b64encode(buf.getvalue()).decode("ascii"), "width": int(round(w)),
            "height": int(round(h))}


def _share_chart(table: pd.DataFrame, services: list[str], cjk: str | None) -> dict:
    names = []
    for i, rec in enumerate(table.to_dict("records"), start=1):
        if cjk:
            names.append(_text(rec.get("name")) or _text(rec.get("code")) or f"#{i}")
        else:
            code = _text(rec.get("code"))
            names.append(code if code and code.isascii() else f"#{i}")
    n = len(names)
    k = len(services)
    with rc_context(_rc(cjk)):
        fig = Figure(figsize=(10.0, max(2.6, 0.26 * n + 1.3)))
        axes = fig.subplots(1, k, sharey=True, squeeze=False)[0]
        y = np.arange(n)
        for ax, svc in zip(axes, services, strict=True):
            share = pd.to_numeric(table[svc], errors="coerce").to_numpy(dtype=float) * 100
            ax.barh(y, np.nan_to_num(share, nan=0.0), color="#3b6ea5", height=0.7)
            for yi, v in zip(y, share, strict=True):
                if np.isnan(v):
                    ax.text(2, yi, "n/a", va="center", fontsize=7, color="#777777")
            ax.set_xlim(0, 100)
            ax.set_title(_label(svc) if cjk else _EN_LABELS.get(svc, svc), fontsize=10)
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.tick_params(labelsize=8)
            ax.set_xlabel("覆盖率 (%)" if cjk else "share covered (%)", fontsize=8)
        axes[0].set_yticks(y)
        axes[0].set_yticklabels(names)
        axes[0].invert_yaxis()
        fig.suptitle("各乡镇(街道)服务圈覆盖率" if cjk else "Coverage share by township", fontsize=12)
        fig.tight_layout()
        out = _png(fig)
    out["alt"] = "各乡镇(街道)分服务覆盖率条形图 / coverage share by township and service"
    out["caption"] = "图1 各乡镇(街道)服务圈覆盖率 / Figure 1. Coverage share by township and service"
    return out


def _time_chart(times: Mapping[str, np.ndarray], cjk: str | None) -> dict | None:
    series = []
    for key in _order(list(times)):
        t = np.asarray(times[key], dtype=float).ravel()
        finite = t[np.isfinite(t)]
        series.append((key, finite, int(t.size - finite.size), int(t.size)))
    if not any(f.size for _, f, _, _ in series):
        return None
    top = max(float(f.max()) for _, f, _, _ in series if f.size)
    top = top if top > 0 else 1.0
    bins = np.linspace(0.0, top, 31)
    with rc_context(_rc(cjk)):
        fig = Figure(figsize=(10.0, 3.8))
        ax_h, ax_c = fig.subplots(1, 2)
        for key, finite, excluded, total in series:
            name = _label(key) if cjk else _EN_LABELS.get(key, key)
            if cjk:
                label = f"{name}(n={total:,},超出阈值/不可达 {excluded:,})"
            else:
                label = f"{name} (n={total:,}, beyond/unreachable {excluded:,})"
            if not finite.size:
                ax_c.plot([], [], label=label)
                continue
            ax_h.hist(finite, bins=bins, histtype="step", linewidth=1.4, label=name)
            xs = np.sort(finite)
            ys = np.arange(1, xs.size + 1) / total * 100
            ax_c.step(np.concatenate([[0.0], xs]), np.concatenate([[0.0], ys]), where="post", label=label)
        ax_h.set_xlabel("到最近设施时间(分钟)" if cjk else "minutes to nearest facility", fontsize=9)
        ax_h.set_ylabel("格网单元数" if cjk else "demand cells", fontsize=9)
        ax_h.set_title("时间分布" if cjk else "Histogram", fontsize=10)
        ax_c.set_xlabel("到最近设施时间(分钟)" if cjk else "minutes to nearest facility", fontsize=9)
        ax_c.set_ylabel("累计占全部格网单元 (%)" if cjk else "cumulative share of all cells (%)", fontsize=9)
        ax_c.set_title("累计分布" if cjk else "Cumulative distribution", fontsize=10)
        ax_c.set_ylim(0, 100)
        for ax in (ax_h, ax_c):
            ax.set_xlim(0, top)
            ax.grid(color="#dddddd", linewidth=0.6)
            ax.tick_params(labelsize=8)
        ax_h.legend(fontsize=7, loc="upper right")
        ax_c.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        out = _png(fig)
    out["alt"] = "到最近设施时间的分布 / distribution of time to the nearest facility"
    out["caption"] = ("图2 到最近设施的出行时间(超出阈值或无道路可达的单元不计入横轴,只在图例中计数)"
                      " / Figure 2. Time to the nearest facility per demand cell")
    return out


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def _text(v: Any) -> str:
    return "" if is_missing(v) else str(v)


def _people(v: Any) -> str:
    if is_missing(v):
        return "—"
    try:
        return f"{float(v):,.0f}"
    except (TypeError, ValueError):
        return str(v)


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


def _share_cell(v: Any) -> dict:
    if is_missing(v):
        return {"text": "—", "style": ""}
    try:
        x = float(v)
    except (TypeError, ValueError):
        return {"text": str(v), "style": ""}
    hue = int(round(120 * min(max(x, 0.0), 1.0)))
    return {"text": f"{x * 100:.1f}%", "style": f"background-color: hsl({hue}, 70%, 85%)"}
