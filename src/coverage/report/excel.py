"""Printable Excel workbook ``gaps.xlsx``: the 年度项目库 (project bank) and coverage summaries.

Sheets, in this order:

* ``项目库`` — the first ``top`` (default 50) ranked rows of the gap table that fit the ``budget``
  (万元) (:func:`coverage.evaluate.select_bank`), with the 20 project-bank columns of DESIGN §4.4
  (:data:`PROJECT_BANK_COLUMNS`). Row 1 is the header and nothing sits above it, because other
  tools read row 1 as the header; the title and the scenario name go into the printed page header
  instead. The sheet holds project rows only, so it can be read back as a table;
* ``储备项目`` — the other ranked rows (reserve projects), same columns (only when there are any);
* ``分乡镇小计`` — per 乡镇(街道): number of projects, 新增覆盖人口 and 估算投资(万元) of the 项目库,
  a 合计 row (equal to the sum of the 项目库 rows), then the same block for the 储备项目;
* ``汇总`` — per service and for the 15 km urban–rural circle, from ``summary.json`` (DESIGN §4.2):
  the circle, the service's own target group and population (60岁及以上 for elderly care, 3–5岁 and
  6–11岁 for schools …), covered and uncovered people and the share; then the number of gaps by
  service and 指标性质.
* one sheet per service (named by :attr:`coverage.categories.Service.sheet`: ``学校教育``,
  ``医疗卫生``, ``养老服务``, ``体育健身``, and ``城乡服务圈`` for the 15 km circle) with coverage by
  乡镇/街道 and a 合计 row.
* ``方案比较`` — optional comparison of two scenarios, with Chinese headers.

People are whole numbers (:func:`coverage.report.tables.round_people`); in the township sheets the
rows add up to the 合计 row, which is the county figure of ``summary.json`` rounded. Codes are text
cells.

Every sheet is set up for printing: landscape A4, fit to page width, the header row repeated on
every page, header row frozen, bold filled header, autofilter, number formats (``#,##0`` for people,
``0.0%`` for shares, ``0.000000`` for lon/lat, ``#,##0.0`` for 万元) and column widths that fit
Chinese text (a CJK character counts as two Latin ones).

The workbook is written with XlsxWriter (about twice as fast as openpyxl for a project bank of
thousands of rows; the file reads back the same with openpyxl, pandas and Excel), to a temporary
file in the same directory and then moved into place with :func:`os.replace`, so a reader never
sees a half-written workbook.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from numbers import Number
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from coverage.categories import SERVICES
from coverage.errors import InputError
from coverage.evaluate import BANK_TOP, NO_DATA, select_bank
from coverage.report._util import atomic_target, is_missing
from coverage.report.tables import (
    COLUMN_LABELS,
    circle_label,
    people_table,
    planner_frame,
    round_people,
    service_text,
    target_groups,
)

__all__ = [
    "CIRCLE_SHEET",
    "NATURES",
    "PROJECT_BANK_COLUMNS",
    "SUBTOTAL_HEADERS",
    "project_bank_frame",
    "stamp_date",
    "subtotal_rows",
    "write_gaps_xlsx",
]

log = logging.getLogger(__name__)

#: Sheet (and row label) of the 15 km urban–rural service circle.
CIRCLE_SHEET = "城乡服务圈"
#: The two kinds of 指标性质 (binding, expected).
NATURES: tuple[str, str] = ("约束性", "预期性")

FMT_INT = "0"
FMT_PEOPLE = "#,##0"
FMT_SHARE = "0.0%"
FMT_LONLAT = "0.000000"
FMT_WAN = "#,##0.0"
FMT_TEXT = "@"

#: Project-bank columns (DESIGN §4.4): (header, internal column of the gap table, number format).
#: ``序号`` has no internal column: it is 1..n in the given order.
PROJECT_BANK_COLUMNS: tuple[tuple[str, str | None, str | None], ...] = (
    ("序号", None, FMT_INT),
    ("年度", "year", FMT_INT),
    ("服务领域", "service", None),
    ("设施类别", "ftype_label", None),
    ("项目名称", "project_name", None),
    ("建设性质", "construction", None),
    ("县(区)", "county", None),
    ("乡镇(街道)", "unit_name", None),
    ("村(社区)", "village", None),
    ("经度", "lon", FMT_LONLAT),
    ("纬度", "lat", FMT_LONLAT),
    ("建设规模", "scale", FMT_PEOPLE),
    ("服务人口", "population", FMT_PEOPLE),
    ("新增覆盖人口", "new_covered", FMT_PEOPLE),
    ("对应指标", "indicator", None),
    ("指标性质", "nature", None),
    ("估算投资(万元)", "cost", FMT_WAN),
    ("牵头单位", "lead", None),
    ("优先级", "priority", FMT_INT),
    ("备注", "note", None),
)
#: Text columns that wrap instead of growing wider than :data:`_MAX_WIDTH`.
_WRAP = {"项目名称", "对应指标", "备注", "建设规模", "设施类别", "牵头单位"}
_MAX_WIDTH = 36.0
_MIN_WIDTH = 6.0
#: Width (characters) below which no table column is set: the width every column of the workbook has had.
_BASE_WIDTH = 13.0

#: Fill of the header row, thin grey border of every table cell.
_HEADER_RGB = "#D9E1F2"
_BORDER_RGB = "#808080"
#: Number format of date-time cells (the one openpyxl gives them).
FMT_DATETIME = "yyyy-mm-dd h:mm:ss"
#: Pixels of a character of column width (Calibri 11, Excel's default font).
_CHAR_PX = 7


# --------------------------------------------------------------------------------------------
# small helpers shared by the report writers
# --------------------------------------------------------------------------------------------


def project_bank_frame(gaps: pd.DataFrame) -> pd.DataFrame:
    """Map the internal gap table to the 20 project-bank columns (DESIGN §4.4), in order.

    Parameters
    ----------
    gaps : pandas.DataFrame
        The ranked gap table (internal column names, see ``docs/architecture.md``). Missing columns
        give empty cells; extra columns (``kind``, ``unit_code``, ``rule_id``…) are dropped.

    Returns
    -------
    pandas.DataFrame
        Columns ``序号 … 备注``; ``序号`` is 1..n in the given order; ``服务领域`` holds the Chinese
        label of the service; 服务人口 and 新增覆盖人口 are whole people (``Int64``).
    """
    if not isinstance(gaps, pd.DataFrame):
        raise InputError(
            "缺口清单必须是表格(DataFrame)。",
            f"The gap table must be a pandas DataFrame, got {type(gaps).__name__}.",
            field="gaps",
        )
    n = len(gaps)
    out: dict[str, Any] = {}
    for header, col, _fmt in PROJECT_BANK_COLUMNS:
        if col is None:
            out[header] = np.arange(1, n + 1)
        elif col in gaps.columns:
            values = gaps[col].to_numpy(dtype=object)
            if col == "service":
                values = np.array([service_text(v) for v in values], dtype=object)
            elif col in ("population", "new_covered"):
                values = round_people(values)
            out[header] = values
        else:
            out[header] = np.full(n, None, dtype=object)
    return pd.DataFrame(out, columns=[h for h, _, _ in PROJECT_BANK_COLUMNS])


# --------------------------------------------------------------------------------------------
# the workbook
# --------------------------------------------------------------------------------------------


def write_gaps_xlsx(
    path: str | os.PathLike[str],
    gaps: pd.DataFrame,
    summary: dict,
    by_service: dict[str, pd.DataFrame] | None = None,
    comparison: pd.DataFrame | None = None,
    *,
    top: int | None = BANK_TOP,
    budget: float | None = None,
    chosen: np.ndarray | None = None,
) -> Path:
    """Write the printable project-bank workbook ``gaps.xlsx``.

    Parameters
    ----------
    path : str or path-like
        Output file (``.xlsx``). Written to a temporary file first, then renamed.
    gaps : pandas.DataFrame
        Ranked gap table with the internal columns ``year, service, ftype_label, project_name,
        construction, county, unit_name, village, lon, lat, scale, population, new_covered,
        indicator, nature, cost, lead, priority, note`` (missing ones stay empty). May be empty:
        the workbook then has the header row only.
    summary : dict
        ``summary.json`` contents (DESIGN §4.2): ``scenario``, ``population_total``,
        ``categories.<service>`` with ``population_covered``, ``share_covered``, ``circle`` and
        ``by_unit`` (list of ``{code, name, population, covered, share}``), and
        ``urban_rural_circle`` of the same shape.
    by_service : dict of str to pandas.DataFrame, optional
        Coverage by 乡镇/街道 per service (columns ``code, name, population, covered, share``; extra
        columns are appended). Overrides ``summary["categories"][service]["by_unit"]``.
    comparison : pandas.DataFrame, optional
        A scenario comparison written as sheet ``方案比较`` with its own column names.
    top : int or None
        Most rows in ``项目库`` (default :data:`coverage.evaluate.BANK_TOP`, ``None`` for all); the
        other rows go to ``储备项目``.
    budget : float or None
        Largest total 估算投资 (万元) of ``项目库`` (``None``: no limit).
    chosen : numpy.ndarray of bool, optional
        The 项目库 rows, chosen by the caller (a region's bank is the union of its counties' own
        selections); overrides ``top`` and ``budget``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    coverage.errors.InputError
        When ``gaps`` is not a DataFrame or ``summary`` is not a mapping.
    """
    if not isinstance(summary, Mapping):
        raise InputError(
            "汇总信息(summary)必须是字典。",
            f"The summary must be a dict (summary.json contents), got {type(summary).__name__}.",
            field="summary",
        )
    if isinstance(gaps, pd.DataFrame) and len(gaps):
        chosen = select_bank(gaps, top=top, budget=budget) if chosen is None else np.asarray(chosen, dtype=bool)
        parts = (gaps[chosen], gaps[~chosen])
    else:
        parts = (gaps, pd.DataFrame())
    bank = project_bank_frame(parts[0])
    reserve = project_bank_frame(parts[1])
    scenario = scenario_label(summary)

    date = str((summary.get("run") or {}).get("date") or "")
    with _no_cyclic_gc(), atomic_target(path, suffix=".xlsx") as tmp:  # a sheet holds a tuple a cell, none garbage
        wb = _new_workbook(tmp, f"{scenario} 年度项目库".strip(), _midnight(date))
        _workbook(wb, scenario, bank, reserve, gaps, summary, by_service, comparison)
        wb.close()  # in memory until here: a failure before it writes nothing
        stamp_date(tmp, date)
    return Path(path)


def _midnight(date: str) -> datetime | None:
    """Midnight of an ISO date ``YYYY-MM-DD`` (``None`` for anything else: the clock's time is used)."""
    try:
        return datetime.strptime(date, "%Y-%m-%d")
    except ValueError:
        return None


def stamp_date(path: str | os.PathLike[str], date: str) -> None:
    """Give a saved workbook the run's date instead of the clock's, so the same inputs give the same file.

    openpyxl writes the time of saving into ``docProps/core.xml`` (created, modified) and as the
    time of every zip entry (XlsxWriter: the given date, or the clock's, and 1980-01-01). Both
    become ``date`` (ISO ``YYYY-MM-DD``, midnight UTC: the date ``summary.json`` shows, fixed by
    ``SOURCE_DATE_EPOCH``); the entries keep their order and contents. When ``core.xml`` already
    has the date (XlsxWriter given it), only the entries' dates are written, in place; otherwise
    the workbook is written again. Nothing changes when ``date`` is not an ISO date.

    Parameters
    ----------
    path : str or path-like
        A saved ``.xlsx`` file, rewritten in place.
    date : str
        The run's date, ``YYYY-MM-DD``.
    """
    import re
    import zipfile

    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", date)
    if not m:
        return
    when = (int(m[1]), int(m[2]), int(m[3]), 0, 0, 0)

    def stamped_core(data: bytes) -> bytes:
        return re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                      rb"\g<1>" + f"{date}T00:00:00Z".encode() + rb"\g<2>", data)

    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        core = z.read("docProps/core.xml") if "docProps/core.xml" in z.namelist() else b""
        start_dir = z.start_dir
    if stamped_core(core) == core and _set_entry_dates(path, infos, start_dir, when):
        return
    with zipfile.ZipFile(path) as z:
        entries = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w") as out:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                data = stamped_core(data)
            stamped = zipfile.ZipInfo(info.filename, date_time=when)
            stamped.compress_type = info.compress_type
            stamped.external_attr = info.external_attr
            out.writestr(stamped, data)


def _set_entry_dates(path: str | os.PathLike[str], infos: list[Any], start_dir: int, when: tuple[int, ...]) -> bool:
    """Write ``when`` as the MS-DOS date and time of every entry of a zip file, in place.

    The date and time sit at fixed places of each entry's local header (bytes 10–13) and of its
    central-directory record (bytes 12–15); no checksum covers them. Returns ``False``, having
    written nothing, when a header is not where the directory says (the caller then rewrites the
    file) and when an entry also carries a time in an extra field.
    """
    import struct

    dos = struct.pack("<HH", (when[3] << 11) | (when[4] << 5) | (when[5] // 2),
                      ((when[0] - 1980) << 9) | (when[1] << 5) | when[2])
    places = []
    with open(path, "r+b") as f:
        for info in infos:
            f.seek(info.header_offset)
            head = f.read(30)
            if head[:4] != b"PK\x03\x04" or info.extra:
                return False
            places.append(info.header_offset + 10)
        pos = start_dir
        for _ in infos:
            f.seek(pos)
            rec = f.read(46)
            if rec[:4] != b"PK\x01\x02":
                return False
            places.append(pos + 12)
            n, m, k = struct.unpack("<HHH", rec[28:34])
            pos += 46 + n + m + k
        for at in places:
            f.seek(at)
            f.write(dos)
    return True


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a workbook is built and saved.

    Every cell is a tuple that lives until the file is written; the collector's passes over them
    (and over the caller's large heap) find nothing to free.
    Reference counting still frees everything as usual; the previous state is restored.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Book:
    """An XlsxWriter workbook and the cell formats of ``gaps.xlsx``, each made once.

    Every table cell has a thin grey border; a body cell adds its column's number format (numbers
    only, or ``@`` for any value), top-aligned wrapping in the wrapped text columns, and bold in a
    合计 row. Header cells are bold, filled, centred and wrapped.
    """

    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        self.wb = wb
        self._formats: dict[tuple[str | None, bool, bool], Format] = {}
        self.header = wb.add_format({
            "bold": True, "pattern": 1, "fg_color": _HEADER_RGB, "bg_color": _HEADER_RGB,
            "border": 1, "border_color": _BORDER_RGB, "align": "center", "valign": "vcenter", "text_wrap": True,
        })

    def body(self, number: str | None, wrap: bool, bold: bool) -> Format:
        """The format of a table cell with number format ``number``, wrapped or not, bold or not."""
        key = (number, wrap, bold)
        fmt = self._formats.get(key)
        if fmt is None:
            props: dict[str, Any] = {"border": 1, "border_color": _BORDER_RGB}
            if number:
                props["num_format"] = number
            if wrap:
                props.update(text_wrap=True, valign="top")
            if bold:
                props["bold"] = True
            fmt = self._formats[key] = self.wb.add_format(props)
        return fmt


class _Sheet:
    """One worksheet being written: its XlsxWriter sheet, the rows and columns used, the column widths."""

    def __init__(self, book: _Book, name: str) -> None:
        self.book = book
        self.ws: Worksheet = book.wb.add_worksheet(name)
        self.max_row = 0  # last row written (1-based, as Excel shows it)
        self.max_col = 0
        self.widths: dict[int, float] = {}  # 0-based column -> width in characters


def _new_workbook(target: str | os.PathLike[str], title: str, created: datetime | None) -> xlsxwriter.Workbook:
    """An empty workbook kept in memory until ``close()`` writes ``target``; author covplan, ``title``, ``created``."""
    props: dict[str, Any] = {"title": title, "author": "covplan"}
    if created is not None:  # else XlsxWriter takes the clock's time
        props["created"] = created
    options = {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False}
    wb = xlsxwriter.Workbook(os.fspath(target), options)
    wb.set_properties(props)
    return wb


def _workbook(wb: xlsxwriter.Workbook, scenario: str, bank: pd.DataFrame, reserve: pd.DataFrame, gaps: pd.DataFrame,
              summary: Mapping, by_service: Mapping[str, pd.DataFrame] | None, comparison: pd.DataFrame | None) -> None:
    """Add the sheets of ``gaps.xlsx`` (see :func:`write_gaps_xlsx`) to ``wb``, in order."""
    book = _Book(wb)

    sh = _Sheet(book, "项目库")
    _write_project_bank(sh, bank)
    _page_setup(sh, f"{scenario} 公共服务设施补短板年度项目库".strip())

    if len(reserve):
        sh = _Sheet(book, "储备项目")
        _write_project_bank(sh, reserve)
        _page_setup(sh, f"{scenario} 公共服务设施补短板储备项目".strip())

    if len(bank) or len(reserve):
        sh = _Sheet(book, "分乡镇小计")
        _write_subtotals(sh, bank, reserve)
        _page_setup(sh, f"{scenario} 项目库分乡镇小计".strip(), autofilter=False)

    sh = _Sheet(book, "汇总")
    _write_summary(sh, summary, gaps)
    _page_setup(sh, f"{scenario} 覆盖汇总".strip(), autofilter=False)

    for _key, name, rows, total in _unit_tables(summary, by_service):
        sh = _Sheet(book, name)
        _write_units(sh, rows, total)
        _page_setup(sh, f"{scenario} {name} 分乡镇(街道)覆盖".strip(), autofilter_rows=len(rows) + 1)

    if comparison is not None and len(comparison.columns):
        sh = _Sheet(book, "方案比较")
        _write_generic(sh, comparison)
        _page_setup(sh, f"{scenario} 方案比较".strip())


def _write_project_bank(sh: _Sheet, bank: pd.DataFrame) -> None:
    headers = list(bank.columns)
    formats = [fmt for _, _, fmt in PROJECT_BANK_COLUMNS]
    rows = bank.itertuples(index=False, name=None)
    _write_table(sh, headers, rows, formats, wrap={h for h in headers if h in _WRAP})


#: Columns of the ``分乡镇小计`` sheet.
SUBTOTAL_HEADERS: tuple[str, ...] = ("清单", "乡镇(街道)", "项目数", "新增覆盖人口", "估算投资(万元)")


def subtotal_rows(bank: pd.DataFrame, label: str = "项目库") -> list[tuple]:
    """Per-乡镇 subtotal rows of a project-bank frame and its 合计 row (last).

    Parameters
    ----------
    bank : pandas.DataFrame
        :func:`project_bank_frame` output.
    label : str
        清单 name (``项目库`` / ``储备项目``).

    Returns
    -------
    list of tuple
        ``(清单, 乡镇(街道), 项目数, 新增覆盖人口, 估算投资(万元))``, townships in order of first
        appearance (county-level rows as 县级), then ``(清单, "合计", …)`` with the column sums.
    """
    if not len(bank):
        return [(label, "合计", 0, 0, 0.0)]
    unit = bank["乡镇(街道)"].map(lambda v: v if isinstance(v, str) and v else "县级")
    people = pd.to_numeric(bank["新增覆盖人口"], errors="coerce").fillna(0)
    cost = pd.to_numeric(bank["估算投资(万元)"], errors="coerce").fillna(0.0)
    df = pd.DataFrame({"u": unit.to_numpy(), "p": people.to_numpy(), "c": cost.to_numpy()})
    g = df.groupby("u", sort=False).agg(n=("p", "size"), p=("p", "sum"), c=("c", "sum"))
    rows: list[tuple] = [(label, str(u), int(r.n), int(r.p), round(float(r.c), 1)) for u, r in g.iterrows()]
    rows.append((label, "合计", int(len(df)), int(df["p"].sum()), round(float(df["c"].sum()), 1)))
    return rows


def _write_subtotals(sh: _Sheet, bank: pd.DataFrame, reserve: pd.DataFrame) -> None:
    rows = subtotal_rows(bank, "项目库")
    if len(reserve):
        rows += subtotal_rows(reserve, "储备项目")
    _write_table(sh, list(SUBTOTAL_HEADERS), rows, [None, None, FMT_INT, FMT_PEOPLE, FMT_WAN],
                 bold={i for i, r in enumerate(rows) if r[1] == "合计"})


def scenario_label(summary: Mapping) -> str:
    """The scenario's name as the workbook prints it, marked 合成示例数据 when the data are synthetic.

    Parameters
    ----------
    summary : mapping
        ``summary.json`` contents (``scenario``, ``synthetic``).

    Returns
    -------
    str
    """
    name = str(summary.get("scenario") or "")
    if summary.get("synthetic") and "合成" not in name:
        name += "（合成示例数据，不代表任何真实地区）"
    return name


def _write_summary(sh: _Sheet, summary: Mapping, gaps: pd.DataFrame) -> None:
    """Three blocks: key figures, coverage per service, number of gaps by service and nature.

    Each service's row shows its own target group and population (e.g. 60岁及以上 for elderly
    care), so 覆盖人口 / 对象人口 is the printed 覆盖率.
    """
    total = summary.get("population_total")
    _write_table(
        sh,
        ["项目", "值"],
        [("方案", scenario_label(summary)), ("总人口", _whole(total))],
        [None, FMT_PEOPLE],
    )

    row = 5
    headers = ["服务领域", "服务圈", "对象人群", "对象人口", "覆盖人口", "未覆盖人口", "覆盖率"]
    rows: list[tuple] = []
    categories = summary.get("categories") or {}
    for key in _ordered_keys(categories):
        rows.append(_coverage_row(service_text(key), categories[key]))
    if summary.get("urban_rural_circle"):
        rows.append(_coverage_row(CIRCLE_SHEET + "(15公里)", summary["urban_rural_circle"]))
    fmts = [None, None, None, FMT_PEOPLE, FMT_PEOPLE, FMT_PEOPLE, FMT_SHARE]
    _write_table(sh, headers, rows, fmts, start_row=row)
    row += len(rows) + 2

    # gaps by service and nature
    headers = ["缺口项目数", *NATURES, "未注明", "合计"]
    counts: dict[str, list[int]] = {}
    if len(gaps):
        svc = gaps["service"] if "service" in gaps.columns else pd.Series([""] * len(gaps))
        nat = gaps["nature"] if "nature" in gaps.columns else pd.Series([""] * len(gaps))
        for s, n in zip(svc.to_numpy(dtype=object), nat.to_numpy(dtype=object), strict=True):
            label = service_text(s) or "未注明"
            c = counts.setdefault(label, [0, 0, 0])
            idx = NATURES.index(n) if n in NATURES else 2
            c[idx] += 1
    order = [SERVICES[k].label for k in SERVICES if SERVICES[k].label in counts]
    order += sorted(k for k in counts if k not in order)
    rows = [(k, *counts[k], sum(counts[k])) for k in order]
    sums = [sum(r[i] for r in rows) for i in range(1, 5)]
    rows.append(("合计", *sums))
    _write_table(sh, headers, rows, [None, FMT_PEOPLE, FMT_PEOPLE, FMT_PEOPLE, FMT_PEOPLE], start_row=row,
                 bold={len(rows) - 1})
    row += len(rows) + 2
    # what changed the figures (assumed age shares, suspected GCJ-02, a broken road network …)
    warnings = [w for w in summary.get("warnings") or [] if isinstance(w, Mapping)]
    if warnings:
        _write_table(
            sh, ["注意事项（影响上列数字）", "文件 / 字段"],
            [(str(w.get("zh") or ""), " ".join(str(x) for x in (Path(str(w["file"])).name if w.get("file") else None, w.get("field")) if x))
             for w in warnings],
            [None, None], start_row=row,
        )
    sh.widths[0] = max(sh.widths.get(0, _BASE_WIDTH), 22.0)


def _coverage_row(label: str, cat: Mapping) -> tuple:
    """One service: circle, target group, its population, covered and uncovered people, share."""
    pop, covered = _whole(cat.get("population")), _whole(cat.get("population_covered"))
    uncovered = None if pop is None or covered is None else pop - covered
    if cat.get("population_covered") is None and cat.get("note"):  # no input data: never 0
        return (label, circle_label(cat.get("circle")), target_groups(cat), pop, NO_DATA, NO_DATA, NO_DATA)
    return (
        label,
        circle_label(cat.get("circle")),
        target_groups(cat),
        pop,
        covered,
        uncovered,
        _cell(cat.get("share_covered")),
    )


def _whole(v: Any) -> int | None:
    """A single people figure as whole people (``None`` when missing)."""
    r = round_people([v])[0]
    return None if r is pd.NA else int(r)


def _unit_tables(
    summary: Mapping, by_service: Mapping[str, pd.DataFrame] | None
) -> list[tuple[str, str, pd.DataFrame, dict[str, Any]]]:
    """(service key, sheet name, whole-people rows, total row) for every service with coverage by township; the rows add up to the service's county figures in ``summary.json``."""
    raw: dict[str, pd.DataFrame] = {}
    categories = summary.get("categories") or {}
    for key, cat in categories.items():
        if isinstance(cat, Mapping) and cat.get("by_unit"):
            raw[key] = pd.DataFrame(list(cat["by_unit"]))
    for key, df in (by_service or {}).items():
        raw[key] = pd.DataFrame(df)
    blocks: list[tuple[str, pd.DataFrame, Mapping]] = [
        (k, raw[k], categories.get(k) or {}) for k in _ordered_keys(raw)
    ]
    circle = summary.get("urban_rural_circle")
    if isinstance(circle, Mapping) and circle.get("by_unit"):
        blocks.append(("urban_rural_circle", pd.DataFrame(list(circle["by_unit"])), circle))
    out = []
    used: set[str] = set()
    for key, table, cat in blocks:
        rows, total = people_table(table, total_population=cat.get("population"),
                                   total_covered=cat.get("population_covered"))
        if cat.get("share_covered") is not None:
            total["share"] = cat.get("share_covered")
        rows, total = _no_data_rows(rows, total, cat)
        sheet = CIRCLE_SHEET if key == "urban_rural_circle" else (
            SERVICES[key].sheet if key in SERVICES else str(key))
        out.append((key, _sheet_name(sheet, used), rows, total))
    return out


def _no_data_rows(rows: pd.DataFrame, total: dict[str, Any], cat: Mapping) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:data:`coverage.evaluate.NO_DATA` in 覆盖人口/未覆盖人口/覆盖率 of rows without input data (a ``note`` and no ``covered``); the ``note`` column itself is not written."""
    if "note" not in rows.columns:
        return rows, total
    miss = rows["covered"].isna().to_numpy() & (rows["note"].fillna("").astype(str) != "").to_numpy()
    rows = rows.drop(columns="note")
    if miss.any():
        rows = rows.astype({c: object for c in ("covered", "uncovered", "share")})
        rows.loc[miss, ["covered", "uncovered", "share"]] = NO_DATA
    if cat.get("population_covered") is None and cat.get("note"):
        total = {**total, "covered": NO_DATA, "uncovered": NO_DATA, "share": NO_DATA}
    return rows, total


def _write_units(sh: _Sheet, rows: pd.DataFrame, total: Mapping[str, Any]) -> None:
    """Coverage by township with a total row (outside the autofilter range)."""
    base = [("code", FMT_TEXT), ("name", None), ("population", FMT_PEOPLE), ("covered", FMT_PEOPLE),
            ("uncovered", FMT_PEOPLE), ("share", FMT_SHARE)]
    extra = [c for c in rows.columns if c not in {k for k, _ in base}]
    headers = ["序号"] + [COLUMN_LABELS[k].replace("(%)", "") for k, _ in base]
    headers += [COLUMN_LABELS.get(str(c), str(c)) for c in extra]
    fmts = [FMT_INT] + [f for _, f in base] + [_guess_format(str(c), rows[c]) for c in extra]
    body = [(i, *(rec[k] for k, _ in base), *(rec[c] for c in extra))
            for i, rec in enumerate(rows.to_dict("records"), start=1)]
    last = ("合计", None, None, total["population"], total["covered"], total["uncovered"],
            total["share"], *([None] * len(extra)))
    _write_table(sh, headers, [*body, last], fmts, bold={len(body)})


def _write_generic(sh: _Sheet, df: pd.DataFrame) -> None:
    """A table as given, with internal column names and service keys made readable."""
    df = planner_frame(df)
    headers = [str(c) for c in df.columns]
    fmts = [_guess_format(h, df[c]) for h, c in zip(headers, df.columns, strict=True)]
    _write_table(sh, headers, df.itertuples(index=False, name=None), fmts)


def _guess_format(name: str, col: pd.Series) -> str | None:
    low = name.lower()
    if "share" in low or "率" in name or "占比" in name or low.endswith("_pct"):
        return FMT_SHARE
    if low in {"lon", "lat", "经度", "纬度"}:
        return FMT_LONLAT
    if "万元" in name or "cost" in low:
        return FMT_WAN
    if "pop" in low or "人口" in name or "covered" in low or pd.api.types.is_integer_dtype(col):
        return FMT_PEOPLE
    if pd.api.types.is_float_dtype(col):
        return "#,##0.0"
    return None


# --------------------------------------------------------------------------------------------
# cell writing and layout
# --------------------------------------------------------------------------------------------


def _write_table(
    sh: _Sheet,
    headers: Sequence[str],
    rows: Iterator[tuple] | Sequence[tuple],
    formats: Sequence[str | None],
    *,
    start_row: int = 1,
    wrap: set[str] | frozenset[str] = frozenset(),
    bold: set[int] | frozenset[int] = frozenset(),
) -> int:
    """Write a header row and data rows; widen columns to fit; return the number of data rows.

    ``start_row`` is 1-based (the header's row as Excel shows it); ``bold`` holds the 0-based
    positions of the data rows in bold (合计 rows).
    """
    ws, book = sh.ws, sh.book
    r0 = start_row - 1  # XlsxWriter counts rows and columns from 0
    widths = [_display_width(h) + 2 for h in headers]
    for j, h in enumerate(headers):
        if h:
            ws.write_string(r0, j, h, book.header)
        else:  # XlsxWriter would store "" as a string
            ws.write_blank(r0, j, None, book.header)
    ncol = len(headers)
    wrap_idx = {j for j, h in enumerate(headers) if h in wrap}
    fmts = [formats[j] if j < len(formats) else None for j in range(ncol)]
    # the formats of each column (text/empty, number, date): plain rows and bold (合计) rows
    cols = [(fmts[j], j in wrap_idx) for j in range(ncol)]
    plain = [_column_formats(book, fmt, wrapped, False) for fmt, wrapped in cols]
    strong = [_column_formats(book, fmt, wrapped, True) for fmt, wrapped in cols] if bold else plain
    lonlat = [fmt == FMT_LONLAT for fmt in fmts]
    write_string, write_number, write_blank = ws.write_string, ws.write_number, ws.write_blank
    n = 0
    for i, row in enumerate(rows, start=r0 + 1):
        fs = strong if n in bold else plain
        n += 1
        for j, value in enumerate(row):
            t = type(value)  # the common exact types first; anything else through _cell
            if t is str:
                v: Any = value or None  # XlsxWriter would store "" as a string: an empty cell, as before
            elif t is float:
                v = value if value - value == 0.0 else None  # NaN and ±inf: empty
            elif t is int:
                v = value
            else:
                v = _cell(value)
                t = str if isinstance(v, str) else type(v)
                v = None if t is str and not v else v
            if v is None:
                write_blank(i, j, None, fs[j][0])
            elif t is str:
                write_string(i, j, v, fs[j][0])
                w = _display_width(v) + 2
                if w > widths[j]:
                    widths[j] = w
            elif t is float or t is int:
                if lonlat[j] and t is float:
                    v = round(v, 6)  # stored as shown: 1e-6° ≈ 0.1 m, not 16 digits of float noise
                write_number(i, j, v, fs[j][1])
                w = _value_width(v, fmts[j]) + 2
                if w > widths[j]:
                    widths[j] = w
            else:
                widths[j] = max(widths[j], _write_other(ws, i, j, v, fs[j], fmts[j]) + 2)
    sh.max_row = max(sh.max_row, r0 + 1 + n)
    sh.max_col = max(sh.max_col, ncol)
    for j, w in enumerate(widths):
        w = min(max(w, _MIN_WIDTH), _MAX_WIDTH if j in wrap_idx else 60.0)
        sh.widths[j] = max(sh.widths.get(j, _BASE_WIDTH), w)
    return n


def _write_other(ws: Worksheet, row: int, col: int, v: Any, formats: tuple[Format, Format, Format],
                 fmt: str | None) -> float:
    """Write a bool, a date-time or another number (a :func:`_cell` value); return its width."""
    if isinstance(v, bool):
        ws.write_boolean(row, col, v, formats[0])
    elif isinstance(v, datetime):
        ws.write_datetime(row, col, v, formats[2])
    else:
        ws.write_number(row, col, v, formats[1])
    return _value_width(v, fmt)


def _column_formats(book: _Book, fmt: str | None, wrapped: bool, bold: bool) -> tuple[Format, Format, Format]:
    """A column's cell formats for text and empty cells, numbers, and dates.

    The column's number format applies to numbers only, except ``@`` (text), which every cell of
    the column gets.
    """
    text = FMT_TEXT if fmt == FMT_TEXT else None
    return (book.body(text, wrapped, bold), book.body(fmt, wrapped, bold),
            book.body(text or FMT_DATETIME, wrapped, bold))


def _page_setup(
    sh: _Sheet, header_text: str, *, autofilter: bool = True, autofilter_rows: int | None = None
) -> None:
    """Column widths; landscape A4, fit to width, repeated header row, frozen header, page header and footer."""
    ws = sh.ws
    for j, w in sorted(sh.widths.items()):
        # XlsxWriter stores a width of px / 7 characters: whole characters are stored exactly
        ws.set_column_pixels(j, j, round(w * _CHAR_PX))
    ws.freeze_panes(1, 0)
    ws.repeat_rows(0)
    ws.set_landscape()
    ws.set_paper(9)  # A4
    # "1" (not 1): XlsxWriter leaves out a width of 1 page, the schema's default; the file keeps saying it
    ws.fit_to_pages("1", 0)  # type: ignore[arg-type]
    ws.center_horizontally()
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    ws.set_header("&C&12 " + header_text.replace("&", "&&"), {"margin": 0.5})
    ws.set_footer("&Lcovplan&R第 &P 页 / 共 &N 页", {"margin": 0.5})
    if autofilter and sh.max_col >= 1:
        last = autofilter_rows if autofilter_rows is not None else sh.max_row
        ws.autofilter(0, 0, max(last, 1) - 1, sh.max_col - 1)


def _ordered_keys(mapping: Mapping[str, Any]) -> list[str]:
    """The four mission services first in their usual order, then any others in sorted order."""
    keys = [k for k in SERVICES if k in mapping]
    return keys + sorted((k for k in mapping if k not in SERVICES), key=str)


def _sheet_name(name: str, used: set[str]) -> str:
    r"""A valid, unique Excel sheet name (≤ 31 characters, none of ``[]:*?/\``)."""
    clean = "".join("_" if ch in '[]:*?/\\' else ch for ch in name)[:31] or "sheet"
    candidate, k = clean, 2
    while candidate.lower() in {u.lower() for u in used} or candidate in {"项目库", "汇总", "方案比较"}:
        candidate = f"{clean[:28]}_{k}"
        k += 1
    used.add(candidate)
    return candidate


def _cell(v: Any) -> Any:
    """A value for a cell: NumPy scalars to Python, NaN/inf/None to an empty cell."""
    if is_missing(v):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, bool | int | float | str | datetime):
        return v
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return str(v)


@lru_cache(maxsize=65_536)  # the same names and labels recur on thousands of rows
def _display_width(text: str) -> float:
    """Width in Excel character units: East-Asian wide/full-width characters count 2."""
    return float(sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text)))


def _is_number(v: Any) -> bool:
    """A number but not a bool (built-in types first: the ``Number`` ABC check is slow)."""
    return not isinstance(v, bool) and (isinstance(v, int | float) or isinstance(v, Number))


def _value_width(v: Any, fmt: str | None) -> float:
    if v is None:
        return 0.0
    if isinstance(v, str):
        return _display_width(v)
    if isinstance(v, bool):
        return 5.0
    if isinstance(v, int | float) or isinstance(v, Number):
        if fmt == FMT_SHARE:
            return 7.0
        if fmt == FMT_LONLAT:
            return 11.0
        if fmt in (FMT_PEOPLE, FMT_WAN, "#,##0.0"):
            s = f"{float(v):,.1f}"  # type: ignore[arg-type]  # a numbers.Number here is always real
        else:
            s = f"{v}"
        return float(len(s))
    return _display_width(str(v))
