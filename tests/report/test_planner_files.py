"""The files a planner reads, from one ``covplan demo`` run: whole people that add up to
summary.json, Chinese headers, 12-digit codes as text, and no internal key anywhere."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from coverage.cli import app

pytestmark = pytest.mark.slow

#: Internal keys that must never reach a planner (typed out here, not imported); the first pattern
#: catches any snake_case identifier (rule ids such as clinic_rural_30min).
INTERNAL = [r"[a-z]+_[a-z0-9_]+", "urban_rural", "unit_code", "unit_name", "school", "clinic", "elderly", "fitness",
            "age60plus", "age3_5", "age6_11", "rule_id", "applies_to", "threshold", "ebike",
            "walk", "drive", "meets_target"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("planner") / "out"
    res = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8")), res.output


def _internal_words(text: str) -> list[str]:
    # the planner's own file names (shown beside a warning) are theirs, not our keys
    text = re.sub(r"[\w.\-/]+\.(?:xlsx|xls|csv|gpkg|shp|tif|tiff|yaml|yml|geojson|pbf)\b", "", text)
    return [m.group(0) for k in INTERNAL for m in [re.search(rf"(?<![A-Za-z_]){k}(?![A-Za-z_])", text)] if m]


def test_csv_chinese_headers_text_codes_whole_people(demo) -> None:
    out, summary, _ = demo
    df = pd.read_csv(out / "coverage_by_unit.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert all(re.search(r"[\u4e00-\u9fff]", c) for c in df.columns), list(df.columns)
    codes = df["乡镇(街道)代码"]
    units = df[codes != ""]
    # codes are written ="…" so that Excel keeps them as text; inside: 12 digits
    assert units["乡镇(街道)代码"].str.fullmatch(r'="\d{12}"').all()
    for col in ("人口", "覆盖人口", "未覆盖人口"):
        assert df[col].str.fullmatch(r"\d+").all(), col
    svc = df[df["层级"] == "服务汇总"]
    labels = {"school": "学校/教育", "clinic": "医疗卫生", "elderly": "养老服务", "fitness": "体育健身"}
    for key, cat in summary["categories"].items():
        part = svc[svc["服务领域"] == labels[key]]
        county = part[part["乡镇(街道)"] == "全县"]
        rows = part[part["乡镇(街道)"] != "全县"]
        assert len(county) == 1 and len(rows) == len(cat["by_unit"])
        for col, figure in (("人口", "population"), ("覆盖人口", "population_covered")):
            printed = int(county[col].iloc[0])
            assert printed == math.floor(cat[figure] + 0.5)  # summary.json's figure, rounded
            assert sum(int(v) for v in rows[col]) == printed  # the townships add up to it
        assert (rows["未覆盖人口"].astype(int) == rows["人口"].astype(int) - rows["覆盖人口"].astype(int)).all()
    assert set(df["层级"]) == {"服务汇总", "单项规则"}
    text = (out / "coverage_by_unit.csv").read_text(encoding="utf-8-sig")
    assert _internal_words(text) == []


def test_xlsx_whole_people_chinese_headers_no_internal_keys(demo) -> None:
    out, summary, _ = demo
    wb = openpyxl.load_workbook(out / "gaps.xlsx")
    assert wb.sheetnames == ["项目库", "储备项目", "分乡镇小计", "汇总", "学校教育", "医疗卫生", "养老服务", "体育健身", "城乡服务圈"]
    ws = wb["项目库"]
    head = [c.value for c in ws[1]]
    for col in ("服务人口", "新增覆盖人口"):
        j = head.index(col) + 1
        vals = [ws.cell(r, j).value for r in range(2, ws.max_row + 1)]
        assert all(v is None or isinstance(v, int) for v in vals), col
    ws = wb["汇总"]
    rows = list(ws.iter_rows(values_only=True))
    h = next(i for i, r in enumerate(rows) if r[0] == "服务领域")
    heads = list(rows[h])
    elderly = next(r for r in rows if r[0] == "养老服务")
    cat = summary["categories"]["elderly"]
    assert elderly[heads.index("对象人群")] == "60岁及以上"
    # elderly care beside the elderly population, not the total one
    assert elderly[heads.index("对象人口")] == math.floor(cat["population"] + 0.5)
    assert elderly[heads.index("对象人口")] < summary["population_total"] / 2
    school = next(r for r in rows if r[0] == "学校/教育")
    assert school[heads.index("对象人群")] == "3–5岁、6–11岁"
    for key, sheet in (("school", "学校教育"), ("elderly", "养老服务")):
        ws = wb[sheet]
        body = list(ws.iter_rows(min_row=2, values_only=True))
        units, total = body[:-1], body[-1]
        assert total[0] == "合计"
        assert all(isinstance(r[1], str) and re.fullmatch(r"\d{12}", r[1]) for r in units)
        for j, figure in ((3, "population"), (4, "population_covered")):
            assert all(isinstance(r[j], int) for r in units)
            assert sum(r[j] for r in units) == total[j] == math.floor(summary["categories"][key][figure] + 0.5)
    words = " ".join(str(c) for s in wb.worksheets for r in s.iter_rows(values_only=True) for c in r
                     if isinstance(c, str))
    assert _internal_words(words) == []


def test_report_and_map_have_no_internal_keys_and_terminal_is_clean(demo) -> None:
    out, _summary, output = demo
    report = (out / "report.html").read_text(encoding="utf-8")
    visible = re.sub(r"<style.*?</style>|<[^>]+>", " ", report, flags=re.S)
    assert _internal_words(visible) == []
    assert report.count("<svg") == 2 and "养老服务" in report
    m = (out / "map.html").read_text(encoding="utf-8")
    fields = [f for lst in re.findall(r"fields = (\[[^\]]*\])", m) for f in json.loads(lst)]
    assert fields  # popup and tooltip field names, all Chinese
    assert all(re.search(r"[\u4e00-\u9fff]", f) for f in fields), fields
    for noise in ("Warning:", "warnings.warn", "matplotlib", "pyogrio", "Glyph"):
        assert noise not in output, noise
