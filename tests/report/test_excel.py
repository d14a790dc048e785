"""Tests of ``coverage.report.excel``: the printable project-bank workbook ``gaps.xlsx``.

Township names and codes are real (延庆区 boundaries in ``shared/data``); every population, coverage
figure and project below is MADE-UP TEST DATA (测试数据), not a statement about 延庆区.
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coverage.errors import InputError
from coverage.report.excel import project_bank_frame, write_gaps_xlsx
from coverage.report.tables import circle_label

#: The 20 project-bank columns of DESIGN §4.4, typed out here (not imported from the module).
EXPECTED_HEADER = [
    "序号", "年度", "服务领域", "设施类别", "项目名称", "建设性质", "县(区)", "乡镇(街道)", "村(社区)",
    "经度", "纬度", "建设规模", "服务人口", "新增覆盖人口", "对应指标", "指标性质", "估算投资(万元)",
    "牵头单位", "优先级", "备注",
]
SERVICES = {"school": "学校/教育", "clinic": "医疗卫生", "elderly": "养老服务", "fitness": "体育健身"}


@pytest.fixture(scope="module")
def units(shared_data: Path) -> pd.DataFrame:
    """Six real 延庆区 townships (code, name), in code order."""
    g = gpd.read_file(shared_data / "beijing_subdistricts" / "yanqing-all.geojson")
    g = g.sort_values("code").head(6)
    return pd.DataFrame({"code": g["code"].astype(str).to_numpy(), "name": g["Name"].to_numpy()})


#: TEST DATA: share of each township's people in each service's target group (schools: children,
#: elderly care: people aged 60+; clinics and fitness: everybody).
GROUP_SHARE = {"school": 0.12, "clinic": 1.0, "elderly": 0.2, "fitness": 1.0}


def make_summary(units: pd.DataFrame) -> dict:
    """TEST DATA: made-up populations (with fractions, as raster sums have) and covered shares."""
    pops = [12000.4, 8500.3, 30250.2, 4100.45, 6600.35, 9800.1][: len(units)]
    shares = {"school": [0.9, 0.5, 1.0, 0.25, 0.6, 0.75], "clinic": [0.8, 0.4, 0.95, 0.1, 0.5, 0.7],
              "elderly": [0.7, 0.3, 0.9, 0.0, 0.4, 0.6], "fitness": [0.6, 0.2, 0.85, 0.05, 0.3, 0.5]}
    total = float(sum(pops))
    cats = {}
    for key, sh in shares.items():
        by_unit = [
            {"code": c, "name": n, "population": p * GROUP_SHARE[key], "covered": p * GROUP_SHARE[key] * s,
             "share": s}
            for c, n, p, s in zip(units["code"], units["name"], pops, sh, strict=False)
        ]
        group_pop = sum(r["population"] for r in by_unit)
        covered = sum(r["covered"] for r in by_unit)
        cats[key] = {"population": group_pop, "population_covered": covered, "share_covered": covered / group_pop,
                     "circle": {"mode": "walk", "minutes": 15}, "by_unit": by_unit}
    cats["elderly"]["circle"] = {
        "urban": {"mode": "walk", "minutes": 15, "rules": [{"rule": "e_u", "group": "age60plus"}]},
        "rural": {"mode": "ebike", "minutes": 15, "rules": [{"rule": "e_r", "group": "age60plus"}]},
    }
    ur = [{"code": c, "name": n, "population": p, "covered": p, "share": 1.0}
          for c, n, p in zip(units["code"], units["name"], pops, strict=False)]
    return {"scenario": "测试方案(测试数据)", "population_total": total, "categories": cats,
            "urban_rural_circle": {"population": total, "population_covered": total, "share_covered": 1.0,
                                   "circle": {"mode": "drive", "metres": 15000}, "by_unit": ur}}


def make_gaps(units: pd.DataFrame) -> pd.DataFrame:
    """TEST DATA: a hand-made, already-ranked gap table (约束性 first)."""
    names = list(units["name"])
    rows = [
        ("school", "小学", f"{names[3]}中心小学改扩建", "改扩建", names[3], "", 115.9812345, 40.4567891,
         "学位 360", 3075.0, 2900.0, "义务教育学校15分钟覆盖率", "约束性", 1500.0, "区教委", 1),
        ("clinic", "村卫生室", f"{names[1]}某村卫生室新建", "新建", names[1], "某村", 116.0123456, 40.5012345,
         "", 5100.0, 4800.5, "村卫生室覆盖", "约束性", 35.5, "区卫生健康委", 2),
        ("elderly", "养老服务驿站", f"{names[0]}养老服务驿站", "新建", names[0], "某社区", 116.05, 40.47,
         "床位 20", 3600.0, 2000.0, "养老服务15分钟覆盖率", "预期性", 120.0, "区民政局", 3),
        ("fitness", "全民健身路径", f"{names[4]}健身路径", "新建", names[4], None, np.nan, np.nan,
         np.nan, 4620.0, np.nan, "", "预期性", np.nan, "区体育局", 4),
    ]
    cols = ["service", "ftype_label", "project_name", "construction", "unit_name", "village", "lon", "lat",
            "scale", "population", "new_covered", "indicator", "nature", "cost", "lead", "priority"]
    df = pd.DataFrame(rows, columns=cols)
    df.insert(0, "year", 2026)
    df["county"] = "延庆区"
    df["note"] = ["测试数据", "", None, "测试数据"]
    df["kind"] = "uncovered_cluster"  # an extra internal column that must not appear
    return df


def header(ws) -> list:
    return [c.value for c in ws[1]]


def col(ws, name: str) -> int:
    return header(ws).index(name) + 1


def find_row(ws, label: str, column: int = 1) -> int:
    for r in range(1, ws.max_row + 1):
        if ws.cell(r, column).value == label:
            return r
    raise AssertionError(f"{label!r} not found in sheet {ws.title}")


@pytest.fixture()
def written(tmp_path: Path, units: pd.DataFrame):
    summary, gaps = make_summary(units), make_gaps(units)
    path = write_gaps_xlsx(tmp_path / "gaps.xlsx", gaps, summary)
    return path, summary, gaps


def test_project_bank_header_order_and_rows(written) -> None:
    path, _summary, gaps = written
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "项目库"
    ws = wb["项目库"]
    assert header(ws) == EXPECTED_HEADER
    assert ws.max_row == 1 + len(gaps)
    assert [ws.cell(r, 1).value for r in range(2, ws.max_row + 1)] == list(range(1, len(gaps) + 1))
    # mapping of internal columns, in the given order
    assert [ws.cell(r, col(ws, "项目名称")).value for r in range(2, 6)] == list(gaps["project_name"])
    assert [ws.cell(r, col(ws, "服务领域")).value for r in range(2, 6)] == [SERVICES[s] for s in gaps["service"]]
    assert [ws.cell(r, col(ws, "指标性质")).value for r in range(2, 6)] == list(gaps["nature"])
    assert ws.cell(2, col(ws, "县(区)")).value == "延庆区"
    assert ws.cell(2, col(ws, "年度")).value == 2026
    assert ws.cell(2, col(ws, "经度")).value == pytest.approx(115.9812345)
    assert ws.cell(3, col(ws, "新增覆盖人口")).value == 4801  # whole people (4800.5, halves up)
    assert ws.cell(2, col(ws, "服务人口")).value == 3075
    # missing values are empty cells, not "nan"
    assert ws.cell(5, col(ws, "经度")).value is None
    assert ws.cell(5, col(ws, "村(社区)")).value is None
    assert ws.cell(5, col(ws, "估算投资(万元)")).value is None
    assert "kind" not in header(ws)


def test_number_formats_and_print_setup(written) -> None:
    path, _summary, _gaps = written
    ws = openpyxl.load_workbook(path)["项目库"]
    expected = {"经度": "0.000000", "纬度": "0.000000", "服务人口": "#,##0", "新增覆盖人口": "#,##0",
                "估算投资(万元)": "#,##0.0"}
    for name, fmt in expected.items():
        assert ws.cell(2, col(ws, name)).number_format == fmt, name
    # text cells keep the General format
    assert ws.cell(2, col(ws, "项目名称")).number_format == "General"
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:T5"
    assert ws.print_title_rows == "$1:$1"
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == 9  # A4
    assert int(ws.page_setup.fitToWidth) == 1
    assert ws.sheet_properties.pageSetUpPr.fitToPage is True
    assert all(ws.cell(1, j).font.b for j in range(1, 21))
    assert ws.cell(1, 1).fill.fill_type == "solid"
    # the title is in the printed page header, not above the table
    assert "年度项目库" in ws.oddHeader.center.text
    # widths fit Chinese text: a CJK header of k characters needs at least 2k units
    assert ws.column_dimensions["O"].width >= 2 * len("对应指标")
    assert ws.column_dimensions["Q"].width >= 2 * len("估算投资") + len("(万元)")


def test_sheets_and_summary_totals(written, units: pd.DataFrame) -> None:
    path, summary, gaps = written
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["项目库", "分乡镇小计", "汇总", "学校教育", "医疗卫生", "养老服务", "体育健身", "城乡服务圈"]
    ws = wb["汇总"]
    assert ws.cell(find_row(ws, "方案"), 2).value == summary["scenario"]
    assert ws.cell(find_row(ws, "总人口"), 2).value == round(summary["population_total"])
    head_row = find_row(ws, "服务领域")
    heads = [ws.cell(head_row, j).value for j in range(1, 8)]
    assert heads == ["服务领域", "服务圈", "对象人群", "对象人口", "覆盖人口", "未覆盖人口", "覆盖率"]
    pops = [r["population"] for r in summary["urban_rural_circle"]["by_unit"]]
    for key, label in SERVICES.items():
        r = find_row(ws, label)
        cat = summary["categories"][key]
        # each service beside its own target population, recomputed here from the townships
        group_pop = sum(p * GROUP_SHARE[key] for p in pops)
        got = {h: ws.cell(r, j).value for j, h in enumerate(heads, start=1)}
        assert got["对象人口"] == round(group_pop)
        assert got["覆盖人口"] == round(cat["population_covered"])
        assert got["未覆盖人口"] == got["对象人口"] - got["覆盖人口"]
        assert all(isinstance(got[h], int) for h in ("对象人口", "覆盖人口", "未覆盖人口"))
        assert got["覆盖率"] == pytest.approx(cat["population_covered"] / group_pop)
        assert ws.cell(r, heads.index("覆盖率") + 1).number_format == "0.0%"
    assert ws.cell(find_row(ws, "养老服务"), 3).value == "60岁及以上"
    assert ws.cell(find_row(ws, "养老服务"), 2).value == "城镇步行15分钟；乡村电动自行车15分钟"
    assert ws.cell(find_row(ws, "医疗卫生"), 2).value == "步行15分钟"
    r = find_row(ws, "城乡服务圈(15公里)")
    assert ws.cell(r, heads.index("服务圈") + 1).value == "驾车15公里"
    assert ws.cell(r, heads.index("对象人群") + 1).value == "全体常住人口"
    assert ws.cell(r, heads.index("覆盖率") + 1).value == pytest.approx(1.0)

    # gap counts by service and nature, counted by hand from make_gaps: 2 约束性, 2 预期性
    head_row = find_row(ws, "缺口项目数")
    heads = [ws.cell(head_row, j).value for j in range(1, 6)]
    assert heads == ["缺口项目数", "约束性", "预期性", "未注明", "合计"]
    r = next(i for i in range(head_row, ws.max_row + 1) if ws.cell(i, 1).value == "医疗卫生")
    assert [ws.cell(r, j).value for j in range(2, 6)] == [1, 0, 0, 1]
    tot = next(i for i in range(head_row, ws.max_row + 1) if ws.cell(i, 1).value == "合计")
    assert [ws.cell(tot, j).value for j in range(2, 6)] == [2, 2, 0, len(gaps)]


def test_service_sheet_by_township(written, units: pd.DataFrame) -> None:
    path, summary, _gaps = written
    ws = openpyxl.load_workbook(path)["养老服务"]
    assert ws.freeze_panes == "A2"
    h = header(ws)
    assert h[:7] == ["序号", "乡镇(街道)代码", "乡镇(街道)", "人口", "覆盖人口", "未覆盖人口", "覆盖率"]
    by_unit = summary["categories"]["elderly"]["by_unit"]
    n = len(by_unit)
    assert [ws.cell(r, 3).value for r in range(2, n + 2)] == list(units["name"])
    assert [ws.cell(r, 2).value for r in range(2, n + 2)] == list(units["code"])  # codes kept as text
    for r, rec in enumerate(by_unit, start=2):
        pop, cov = ws.cell(r, 4).value, ws.cell(r, 5).value
        assert isinstance(pop, int) and isinstance(cov, int)
        assert abs(pop - rec["population"]) < 1 and abs(cov - rec["covered"]) < 1  # floor or ceiling
        assert ws.cell(r, 6).value == pop - cov
        assert ws.cell(r, 7).value == pytest.approx(rec["share"])
        assert ws.cell(r, 4).number_format == "#,##0"
        assert ws.cell(r, 7).number_format == "0.0%"
    assert ws.cell(5, 5).value == 0  # nobody covered stays 0
    total = n + 2
    assert ws.cell(total, 1).value == "合计"
    pop = sum(r["population"] for r in by_unit)
    cov = sum(r["covered"] for r in by_unit)
    # the printed total is the county figure rounded, and the printed rows add up to it
    assert ws.cell(total, 4).value == round(pop) == sum(ws.cell(r, 4).value for r in range(2, n + 2))
    assert ws.cell(total, 5).value == round(cov) == sum(ws.cell(r, 5).value for r in range(2, n + 2))
    assert ws.cell(total, 6).value == round(pop) - round(cov)
    assert ws.cell(total, 7).value == pytest.approx(cov / pop)
    assert ws.auto_filter.ref == f"A1:G{n + 1}"  # the total row stays out of the filter


def test_fully_covered_townships_print_fully_covered(written) -> None:
    path, summary, _gaps = written
    ws = openpyxl.load_workbook(path)["城乡服务圈"]
    n = len(summary["urban_rural_circle"]["by_unit"])
    for r in range(2, n + 2):
        assert ws.cell(r, 4).value == ws.cell(r, 5).value and ws.cell(r, 6).value == 0


def test_by_service_overrides_and_comparison(tmp_path: Path, units: pd.DataFrame) -> None:
    summary, gaps = make_summary(units), make_gaps(units)
    school = pd.DataFrame({"code": ["1"], "name": ["测试乡"], "population": [100.0], "covered": [40.0],
                           "share": [0.4]})
    comparison = pd.DataFrame({"service": ["school", "clinic"], "share_base": [0.5, 0.6],
                               "share_plan": [0.7, 0.65], "gained": [1200.4, 300.6]})
    path = write_gaps_xlsx(tmp_path / "gaps.xlsx", gaps, summary, by_service={"school": school},
                           comparison=comparison)
    wb = openpyxl.load_workbook(path)
    ws = wb["学校教育"]
    assert ws.cell(2, 3).value == "测试乡" and ws.cell(2, 7).value == pytest.approx(0.4)
    ws = wb["方案比较"]
    assert wb.sheetnames[-1] == "方案比较"
    assert header(ws) == ["服务领域", "覆盖率(现状)", "覆盖率(方案)", "新增覆盖人口"]
    assert [ws.cell(r, 1).value for r in (2, 3)] == ["学校/教育", "医疗卫生"]
    assert [ws.cell(r, 4).value for r in (2, 3)] == [1200, 301]
    assert ws.cell(2, 2).value == pytest.approx(0.5)
    assert ws.cell(2, 2).number_format == "0.0%"
    assert ws.cell(2, 4).number_format == "#,##0"


def test_empty_gap_table(tmp_path: Path, units: pd.DataFrame) -> None:
    path = write_gaps_xlsx(tmp_path / "gaps.xlsx", pd.DataFrame(), make_summary(units))
    wb = openpyxl.load_workbook(path)
    ws = wb["项目库"]
    assert header(ws) == EXPECTED_HEADER
    assert ws.max_row == 1
    assert ws.freeze_panes == "A2"
    tot = openpyxl.load_workbook(path)["汇总"]
    r = find_row(tot, "合计")
    assert [tot.cell(r, j).value for j in range(2, 6)] == [0, 0, 0, 0]
    # pandas reads the header row as the header, with no data rows
    df = pd.read_excel(path, sheet_name="项目库")
    assert list(df.columns) == EXPECTED_HEADER and len(df) == 0


def test_pandas_reads_row_one_as_header(written) -> None:
    path, _summary, gaps = written
    df = pd.read_excel(path, sheet_name=0)
    assert list(df.columns) == EXPECTED_HEADER
    assert list(df["项目名称"]) == list(gaps["project_name"])


def test_atomic_replace_and_failure_leaves_old_file(tmp_path: Path, units: pd.DataFrame, monkeypatch) -> None:
    target = tmp_path / "gaps.xlsx"
    target.write_bytes(b"old")
    write_gaps_xlsx(target, make_gaps(units), make_summary(units))
    assert openpyxl.load_workbook(target).sheetnames[0] == "项目库"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaps.xlsx"]

    target.write_bytes(b"old")

    def boom(self):  # noqa: ANN001
        Path(self.filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xlsxwriter.Workbook, "close", boom)
    with pytest.raises(OSError):
        write_gaps_xlsx(target, make_gaps(units), make_summary(units))
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gaps.xlsx"]


def test_bad_input_types(tmp_path: Path, units: pd.DataFrame) -> None:
    with pytest.raises(InputError):
        write_gaps_xlsx(tmp_path / "g.xlsx", [{"service": "school"}], make_summary(units))  # type: ignore[arg-type]
    with pytest.raises(InputError):
        write_gaps_xlsx(tmp_path / "g.xlsx", make_gaps(units), None)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_circle_label() -> None:
    assert circle_label({"mode": "walk", "minutes": 15}) == "步行15分钟"
    assert circle_label({"mode": "ebike", "minutes": 30}) == "电动自行车30分钟"
    assert circle_label({"mode": "drive", "metres": 15000}) == "驾车15公里"
    assert circle_label({"mode": "walk", "metres": 800}) == "步行800米"
    assert circle_label(None) == ""
    sides = {"urban": {"mode": "walk", "minutes": 15}, "rural": {"mode": "drive", "minutes": 30}}
    assert circle_label(sides) == "城镇步行15分钟；乡村驾车30分钟"
    assert circle_label({"urban": {"mode": "walk", "minutes": 15}, "rural": {"mode": "walk", "minutes": 15}}) == "步行15分钟"


_text = st.text(alphabet=st.sampled_from(list("甲乙丙丁镇乡村街道社区abcXYZ 0123-()/")), min_size=1, max_size=30)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(_text, min_size=0, max_size=8),
    pops=st.lists(st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)), min_size=8, max_size=8),
)
def test_roundtrip_property(tmp_path: Path, names: list[str], pops: list) -> None:
    """Any text and population values come back unchanged and in order; missing stays empty."""
    n = len(names)
    gaps = pd.DataFrame({"project_name": names, "population": pd.Series(pops[:n], dtype=float)})
    path = write_gaps_xlsx(tmp_path / "p.xlsx", gaps, {"scenario": "t"})
    ws = openpyxl.load_workbook(path)["项目库"]
    assert ws.max_row == n + 1
    for i in range(n):
        assert ws.cell(i + 2, 1).value == i + 1
        assert ws.cell(i + 2, 5).value == names[i]
        got, want = ws.cell(i + 2, 13).value, pops[i]
        if want is None:
            assert got is None
        else:  # whole people, the nearest one (halves up)
            assert isinstance(got, int) and math.floor(want + 0.5) == got


def test_top_budget_reserve_and_subtotals(tmp_path: Path, units: pd.DataFrame) -> None:
    from coverage.report.excel import subtotal_rows

    gaps = make_gaps(units)
    path = write_gaps_xlsx(tmp_path / "gaps.xlsx", gaps, make_summary(units), top=2)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[:3] == ["项目库", "储备项目", "分乡镇小计"]
    bank = pd.read_excel(path, sheet_name="项目库")
    reserve = pd.read_excel(path, sheet_name="储备项目")
    assert len(bank) == 2 and len(reserve) == len(gaps) - 2
    assert list(bank["项目名称"]) == list(gaps["project_name"][:2])
    assert list(reserve["序号"]) == list(range(1, len(reserve) + 1))
    sub = pd.read_excel(path, sheet_name="分乡镇小计")
    total = sub[(sub["清单"] == "项目库") & (sub["乡镇(街道)"] == "合计")].iloc[0]
    assert total["项目数"] == 2
    assert total["估算投资(万元)"] == pytest.approx(bank["估算投资(万元)"].fillna(0).sum())
    ws = wb["分乡镇小计"]
    r = find_row(ws, "合计", column=2)
    assert ws.cell(r, 1).font.b
    rows = subtotal_rows(project_bank_frame(gaps))
    assert rows[-1][1] == "合计" and rows[-1][2] == len(gaps)
    assert sum(x[4] for x in rows[:-1]) == pytest.approx(rows[-1][4])


def test_every_cell_styled_by_its_column_and_value(tmp_path: Path, units: pd.DataFrame) -> None:
    """Hundreds of rows (styles are set once per column kind and copied, issue 11): every data cell
    of both project sheets has the thin border, its column's number format only where it holds a
    number (``General`` for text and blanks), wrapping only in the long-text columns, and the bold
    合计 rows of 分乡镇小计 do not make any other cell bold."""
    base = make_gaps(units)
    gaps = pd.concat([base] * 60, ignore_index=True)  # TEST DATA, 240 rows
    gaps["cost"] = gaps["cost"].astype(object)
    gaps.loc[gaps.index % 7 == 0, "cost"] = "待定"  # text in a number column
    path = write_gaps_xlsx(tmp_path / "gaps.xlsx", gaps, make_summary(units), top=30)
    wb = openpyxl.load_workbook(path)
    formats = {"序号": "0", "年度": "0", "经度": "0.000000", "纬度": "0.000000", "建设规模": "#,##0",
               "服务人口": "#,##0", "新增覆盖人口": "#,##0", "估算投资(万元)": "#,##0.0", "优先级": "0"}
    wrap = {"项目名称", "对应指标", "备注", "建设规模", "设施类别", "牵头单位"}
    checked = 0
    for sheet in ("项目库", "储备项目"):
        ws = wb[sheet]
        names = header(ws)
        for row in ws.iter_rows(min_row=2):
            for name, c in zip(names, row, strict=True):
                assert all(getattr(c.border, s).style == "thin" for s in ("left", "right", "top", "bottom"))
                numeric = isinstance(c.value, int | float) and not isinstance(c.value, bool)
                assert c.number_format == (formats.get(name, "General") if numeric else "General"), (sheet, c.coordinate)
                assert bool(c.alignment.wrap_text) == (name in wrap), (sheet, c.coordinate)
                assert not c.font.b
                checked += 1
    assert checked == len(gaps) * 20
    ws = wb["分乡镇小计"]
    for row in ws.iter_rows(min_row=2):
        assert all(bool(c.font.b) == (row[1].value == "合计") for c in row)


@pytest.mark.parametrize("created", ["2031-05-06", "2019-12-31"])
def test_stamp_date_sets_every_entry_date(tmp_path, created):
    """stamp_date gives every zip entry the run's date: in place when core.xml has it already
    (XlsxWriter given the date: same size, same contents), by writing the workbook again when not."""
    import datetime as dt
    import zipfile

    from coverage.report.excel import stamp_date

    path = tmp_path / "b.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"in_memory": True})
    wb.set_properties({"created": dt.datetime.fromisoformat(created)})
    wb.add_worksheet("表一").write_row(0, 0, ["乡镇", 1.5, "=1+1"])
    wb.close()
    with zipfile.ZipFile(path) as z:
        before = {i.filename: z.read(i) for i in z.infolist()}
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    size = path.stat().st_size
    stamp_date(path, "2031-05-06")
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert {i.date_time for i in z.infolist()} == {(2031, 5, 6, 0, 0, 0)}
        after = {i.filename: z.read(i) for i in z.infolist()}
    assert list(after) == list(before)
    core = after.pop("docProps/core.xml").decode()
    assert core.count("2031-05-06T00:00:00Z") == 2  # created and modified
    assert all(after[k] == before[k] for k in after)
    assert (path.stat().st_size == size) == (created == "2031-05-06")  # in place only when core.xml had the date
    assert openpyxl.load_workbook(path)["表一"]["A1"].value == "乡镇"
