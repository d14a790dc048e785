"""Tests of ``coverage.report.html``: the printable, self-contained ``report.html``.

Township names and codes are real (延庆区, ``shared/data``); every figure, check and project below is
MADE-UP TEST DATA (测试数据).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from coverage.report.html import unit_share_table, write_report


@pytest.fixture(scope="module")
def units(shared_data: Path) -> pd.DataFrame:
    g = gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson")
    g = g.sort_values("code").reset_index(drop=True)
    return pd.DataFrame({"code": g["code"].astype(str), "name": g["Name"]})


def make_summary(units: pd.DataFrame) -> dict:
    """TEST DATA: made-up populations and shares for all 18 延庆 townships."""
    n = len(units)
    pops = 1000.0 + 500.0 * np.arange(n)
    cats = {}
    for k, key in enumerate(["school", "clinic", "elderly", "fitness"]):
        shares = (np.arange(n) * (k + 3) % 11) / 10.0
        by_unit = [{"code": c, "name": nm, "population": float(p), "covered": float(p * s), "share": float(s)}
                   for c, nm, p, s in zip(units["code"], units["name"], pops, shares, strict=True)]
        cov = float(sum(r["covered"] for r in by_unit))
        cats[key] = {"population_covered": cov, "share_covered": cov / pops.sum(),
                     "circle": {"mode": "walk", "minutes": 15}, "by_unit": by_unit}
    return {"scenario": "测试方案", "population_total": float(pops.sum()), "categories": cats,
            "urban_rural_circle": {"population_covered": float(pops.sum()), "share_covered": 1.0,
                                   "circle": {"mode": "drive", "metres": 15000}}}


def make_gaps(n: int = 25) -> pd.DataFrame:
    return pd.DataFrame({
        "service": ["school", "clinic", "elderly", "fitness", "clinic"] * (n // 5),
        "project_name": [f"测试项目{i:02d}" for i in range(1, n + 1)],
        "unit_name": "香营乡",
        "population": np.linspace(9000, 100, n),
        "nature": (["约束性"] * 10 + ["预期性"] * n)[:n],
    })


CHECKS = pd.DataFrame({
    "rule": ["school_primary_walk15", "clinic_rural_30min", "elderly_walk15", "fitness_walk15"],
    "indicator": ["小学15分钟步行覆盖率", "村卫生室30分钟覆盖率", "养老15分钟覆盖率", "健身15分钟覆盖率"],
    "nature": ["约束性", "约束性", "预期性", "预期性"],
    "target": [0.95, 1.0, 0.6, 0.9],
    "value": [0.97, 0.82, 0.64, np.nan],
    "pass": pd.Series([True, False, True, None], dtype=object),
})


def times() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    school = np.r_[rng.uniform(0, 15, 400), np.full(37, np.inf)]
    return {"school": school, "clinic": rng.gamma(3, 3, 300), "elderly": np.full(10, np.inf)}


class _Resources(HTMLParser):
    """Collect every attribute that could load something (src, href, url(...) in style)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for k, v in attrs:
            if k in ("src", "href", "data", "poster", "srcset", "action"):
                self.refs.append((tag, k, v or ""))
            if tag == "img" and k == "src":
                self.imgs.append(v or "")


def render(tmp_path: Path, units: pd.DataFrame, **kw) -> str:
    args = dict(summary=kw.pop("summary", None) or make_summary(units), by_unit=None, gaps=make_gaps(), standards_checks=CHECKS,
                times=times(), title="延庆区公共服务设施覆盖评估(测试)", synthetic=False)
    args.update(kw)
    path = write_report(tmp_path / "report.html", **args)
    assert path == tmp_path / "report.html"
    return path.read_text(encoding="utf-8")


def svgs(text: str) -> list[ET.Element]:
    """The inline charts, parsed as XML (so they are well-formed)."""
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", text, flags=re.S)]


def svg_text(el: ET.Element) -> list[str]:
    return [t.text or "" for t in el.iter("text")]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory, units: pd.DataFrame) -> str:
    """The report with every part, rendered once for the read-only tests below."""
    return render(tmp_path_factory.mktemp("report"), units)


def test_contents(full_report: str, units: pd.DataFrame) -> None:
    text = full_report
    assert "<title>延庆区公共服务设施覆盖评估(测试)</title>" in text
    for name in units["name"]:
        assert name in text
    # standards: every rule listed by its indicator (rule ids are internal), pass/fail/unknown per row
    for rule, indicator in zip(CHECKS["rule"], CHECKS["indicator"], strict=True):
        assert indicator in text and rule not in text
    assert text.count("✔ 达标") == 2
    assert text.count("✘ 未达标") == 1
    assert text.count("— 未评估") == 1
    row = re.search(r"<tr>(?:(?!</tr>).)*村卫生室30分钟覆盖率(?:(?!</tr>).)*</tr>", text, re.S).group(0)
    assert "未达标" in row and "约束性" in row
    # top 20 gaps only, in order
    shown = re.findall(r"测试项目(\d\d)", text)
    assert shown == [f"{i:02d}" for i in range(1, 21)]
    assert "共 25 项缺口" in text
    # key figures from the summary
    assert "100.0%" in text  # urban–rural circle
    assert "合成示例数据" not in text
    # service labels as column heads
    for label in ("学校/教育", "医疗卫生", "养老服务", "体育健身"):
        assert label in text


def test_self_contained(full_report: str) -> None:
    text = full_report
    assert "http://" not in text and "https://" not in text
    assert "@import" not in text and "url(" not in text
    p = _Resources()
    p.feed(text)
    assert all(v.startswith("data:") for _, _, v in p.refs), p.refs
    assert "<img" not in text  # charts are inline SVG
    assert "@media print" in text


def test_charts_are_svg_with_chinese_text_and_true_bars(full_report: str, units: pd.DataFrame) -> None:
    charts = svgs(full_report)
    assert len(charts) == 2  # coverage bars + time distribution
    bars_chart, time_chart = charts
    words = svg_text(bars_chart)
    for name in units["name"]:
        assert name in words
    for label in ("学校/教育", "医疗卫生", "养老服务", "体育健身"):
        assert label in words
    # one bar per township and service, its length proportional to the share computed by hand:
    # (i * (k + 3) % 11) / 10 for township i and service k (make_summary)
    n = len(units)
    bars = [r for r in bars_chart.iter("rect") if r.get("class") == "bar"]
    assert len(bars) == 4 * n
    want = [(i * (k + 3) % 11) / 10.0 for k in range(4) for i in range(n)]
    got = [float(b.get("data-share")) for b in bars]
    np.testing.assert_allclose(got, want)
    scale = {round(float(b.get("width")) / s, 1) for b, s in zip(bars, want, strict=True) if s > 0}
    assert len(scale) == 1  # same axis length in every panel
    words = " ".join(svg_text(time_chart))
    assert "到最近设施时间(分钟)" in words and "学校/教育(n=437,超出阈值/不可达 37)" in words
    assert "养老服务(n=10,超出阈值/不可达 10)" in words


def test_no_times_and_all_unreachable(tmp_path: Path, units: pd.DataFrame) -> None:
    assert len(svgs(render(tmp_path, units, times=None))) == 1
    assert len(svgs(render(tmp_path, units, times={"school": np.full(5, np.inf)}))) == 1


def test_township_people_add_up_to_the_printed_total(tmp_path: Path, units: pd.DataFrame) -> None:
    """Whole people in the coverage table; the townships add up to the 全域合计 row."""
    summary = make_summary(units)
    pops = [1000.4 + 500.0 * i for i in range(len(units))]  # fractions, as raster sums have
    summary["urban_rural_circle"]["by_unit"] = [
        {"code": c, "name": n, "population": p, "covered": p, "share": 1.0}
        for c, n, p in zip(units["code"], units["name"], pops, strict=True)]
    summary["population_total"] = sum(pops)
    text = render(tmp_path, units, summary=summary)
    table = text[text.index('<table class="coverage">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr( class=\"total\")?>\s*<td>(.*?)</td><td>.*?</td><td class=\"num\">([\d,]+)</td>",
                      table, flags=re.S)
    body = [int(p.replace(",", "")) for total, _, p in rows if not total]
    total = [int(p.replace(",", "")) for t, _, p in rows if t]
    assert len(body) == len(units) and total == [round(sum(pops))]
    assert sum(body) == total[0]
    assert all(abs(b - p) < 1 for b, p in zip(body, pops, strict=True))


def test_synthetic_banner_and_escaping(tmp_path: Path, units: pd.DataFrame) -> None:
    gaps = make_gaps(5)
    gaps.loc[0, "project_name"] = "<script>alert(1)</script>"
    text = render(tmp_path, units, synthetic=True, gaps=gaps, standards_checks=None)
    assert "合成示例数据 / synthetic demo data" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "未提供标准核查结果" in text


def test_empty_inputs(tmp_path: Path) -> None:
    text = render(tmp_path, pd.DataFrame({"code": [], "name": []}),
                  summary={"scenario": "空", "population_total": 0.0},
                  gaps=pd.DataFrame(), standards_checks=None, times=None)
    assert "没有发现缺口" in text
    assert svgs(text) == []


def test_atomic_write_leaves_only_report(tmp_path: Path, units: pd.DataFrame) -> None:
    (tmp_path / "report.html").write_text("old")
    assert "<html" in render(tmp_path, units, times=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


_NO_CJK_RUN = """
import logging, sys, warnings
import matplotlib
matplotlib.rcParams["font.family"] = "sans-serif"
matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans"]
import numpy as np
from coverage.report import charts
logging.basicConfig(level=logging.WARNING)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    a = charts.share_bars_svg(["城关街道", "峡口乡"], [("养老服务", [0.5, float("nan")])])
    b = charts.histogram_svg([("养老服务", "#9467bd", np.array([1.0, 5.0]), 3)])
print("WARNINGS:", [str(w.message) for w in caught])
print(a + b)
"""


def test_charts_on_a_machine_without_cjk_fonts(tmp_path: Path) -> None:
    """A font configuration without any font (so without CJK ones), and matplotlib told to use
    DejaVu Sans only: the charts still carry the Chinese text, and nothing warns about glyphs."""
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    f"<cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>")
    env = {**os.environ, "FONTCONFIG_FILE": str(conf), "MPLCONFIGDIR": str(tmp_path / "mpl")}
    res = subprocess.run([sys.executable, "-c", _NO_CJK_RUN], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert "WARNINGS: []" in res.stdout
    assert "glyph" not in (res.stdout + res.stderr).lower() and "warning" not in res.stderr.lower()
    for word in ("城关街道", "峡口乡", "养老服务", "无数据", "到最近设施时间(分钟)"):
        assert f">{word}<" in res.stdout or word in res.stdout
    assert res.stdout.count("<svg") == 2


def test_report_does_not_need_matplotlib() -> None:
    code = "import sys, coverage.report.html; print('matplotlib' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert res.stdout.strip() == "False", res.stderr


def test_unit_share_table_long_wide_and_summary_agree(units: pd.DataFrame) -> None:
    summary = make_summary(units.head(3))
    from_summary = unit_share_table(summary)
    long = pd.DataFrame([
        {"service": key, **r} for key, cat in summary["categories"].items() for r in cat["by_unit"]
    ])
    from_long = unit_share_table({}, long)
    wide = pd.DataFrame({"code": units["code"].head(3), "name": units["name"].head(3),
                         "population": [1000.0, 1500.0, 2000.0]})
    for key, cat in summary["categories"].items():
        wide[f"share_{key}"] = [r["share"] for r in cat["by_unit"]]
    from_wide = unit_share_table({}, wide)
    cols = ["code", "name", "population", "school", "clinic", "elderly", "fitness"]
    assert list(from_wide.columns) == cols
    assert list(from_long.columns) == cols
    # hand-computed: shares are (i * (k + 3) % 11) / 10 for unit i, service k
    np.testing.assert_allclose(from_wide["clinic"], [0.0, 0.4, 0.8])
    np.testing.assert_allclose(from_wide["fitness"], [0.0, 0.6, 0.1])
    for df in (from_long, from_summary):
        np.testing.assert_allclose(df[cols[2:]].to_numpy(float), from_wide[cols[2:]].to_numpy(float))
        assert list(df["name"]) == list(units["name"].head(3))


def test_share_computed_from_covered_when_missing() -> None:
    long = pd.DataFrame({"service": ["school", "school"], "code": ["1", "2"], "name": ["甲", "乙"],
                         "population": [200.0, 0.0], "covered": [50.0, 0.0]})
    out = unit_share_table({}, long)
    assert out["school"].iloc[0] == pytest.approx(0.25)
    assert np.isnan(out["school"].iloc[1])  # no people: share undefined, not 0


def test_same_inputs_same_bytes(tmp_path: Path, units: pd.DataFrame) -> None:
    small = units.head(3)
    kw = dict(summary=make_summary(small), gaps=make_gaps(5), times={"school": np.array([1.0, 2.0, np.inf])})
    a = render(tmp_path / "a", small, **kw)
    b = render(tmp_path / "b", small, **kw)
    assert a == b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cumulative_curve_follows_the_people(seed: int) -> None:
    """The report's cumulative curve (drawn from a histogram of CDF_STEPS steps, not a sort): at
    each of its vertices the share is the people within that time, counted from a plain sort,
    up to one step of the axis and the drawing's 0.1 px; it ends at the people within reach over
    the total (those beyond are not on the axis)."""
    from coverage.report import charts

    rng = np.random.default_rng(seed)
    n = 5000
    m = np.where(rng.random(n) < 0.1, 0.0, np.round(rng.exponential(6.0, n), 1 + seed))  # ties, zeros
    w = rng.integers(0, 30, n).astype(float)
    total = float(w.sum()) * 1.25
    svg = charts.histogram_svg([("学校", "#1f77b4", m, total)], weights=[w])
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    rects = [r for r in root.iter() if r.tag.endswith("rect") and r.get("fill") == "none"]
    x1, y0, pw, ph = (float(rects[1].get(k)) for k in ("x", "y", "width", "height"))
    curve = [p for p in root.iter() if p.tag.endswith("polyline") and p.get("class") != "hist"]
    assert len(curve) == 1 and ns
    pts = [tuple(map(float, xy.split(","))) for xy in curve[0].get("points").split()]
    top = float(m.max())
    step = top / charts.CDF_STEPS
    order = np.sort(m)
    cum = np.r_[0.0, np.cumsum(w[np.argsort(m, kind="stable")])] / total
    tol_x, tol_y = 0.06 / pw * top, 0.06 / ph
    for (xa, ya), (xb, yb) in zip(pts[1:-1], pts[2:-1]):
        if xa != xb or ya == yb:
            continue  # not a rise
        t, share = (xb - x1) / pw * top, 1.0 - (yb - y0) / ph
        below = cum[np.searchsorted(order, t - tol_x, side="right")]  # people within t
        within_step = cum[np.searchsorted(order, t + step + tol_x, side="left")]  # within the step
        assert below - tol_y <= share <= within_step + tol_y
    assert 1.0 - (pts[-1][1] - y0) / ph == pytest.approx(w.sum() / total, abs=tol_y)
