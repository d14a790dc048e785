"""The documents a preset rule cites, and how a citation reads for a planner.

A rule's ``source`` cites a seed plan by seed and line (``"S0 L722 …"``, ``"S0 L116–122 …"``) and a
national text by its title in 《》 (``"《全民健身计划(2021—2025年)》 …"``). ``index/documents.yaml`` (package
data beside this module) lists every document a built-in preset cites:

* the five seed plans (``S0`` … ``S4``): title, issuer, date, place, the seed file name, and an
  index of the plan's headings (chapters, sections, 专栏 tables, numbered items) built from the seed
  text by :func:`index_headings`, so a citation ``"S0 L440"`` reads
  ``《平凉市崆峒区“十四五”公共服务规划》 三、推进基本公共服务均等化 › (二)补齐基本公共服务短板弱项 ›
  专栏2 基本公共服务补短板重点工程 › 医疗卫生 › 3.县域综合服务能力提升建设 (第440行)``;
* the national texts (``held: false``): a value cited only from one of them was quoted from memory,
  not from a text we hold, and its rule says ``verified: false``.

The seeds themselves are not package data (they live in ``shared/seeds``); the heading index is, and
``tests/test_standards.py`` rebuilds it from the seeds, when they are at hand, to check it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The heading index and document list (package data).
DOCUMENTS_FILE: Path = Path(__file__).resolve().parent / "index" / "documents.yaml"

#: ``S0 L722``, ``S0 L116–122``, ``S2 L347-353``: seed, first line, optional last line.
SEED_CITE = re.compile(r"\b(S\d)\s*L(\d+)(?:\s*[–—-]\s*(\d+))?")

_CN_NUM = "一二三四五六七八九十"
_CHAPTER = re.compile(rf"^\s*(?:[{_CN_NUM}]+、|第[{_CN_NUM}]+章)")
_SECTION = re.compile(rf"^\s*(?:[(（][{_CN_NUM}]+[)）]|第[{_CN_NUM}]+节)")
_ITEM = re.compile(r"^\s*(\d{1,2})\s*[.．、]\s*[\u4e00-\u9fff“《(（]")
_DASH_ITEM = re.compile(r"^\s*——(.{2,12}?)。")
_LEAD = re.compile(r"^\s*([^\s。,，:：、0-9“”\"]{2,14})。")
_ROW_STOP = {
    "类别", "指标", "指  标", "指标性质", "预期性", "约束性", "服务领域", "服务项目", "工程", "重点工程",
    "服务类型", "业态创新", "2020年", "2025年", "2020年目标", "2020年实际", "目标", "实际",
}
#: Longest heading text kept (longer item texts are cut at the first 。 or here, with "…").
MAX_HEADING = 22


@dataclass(frozen=True)
class Heading:
    """One heading of a seed plan.

    Attributes
    ----------
    line : int
        1-based line in the seed file.
    kind : str
        ``chapter`` (一、 / 第一章), ``section`` ((一) / 第一节), ``row`` (a category cell of a 专栏
        table, e.g. 医疗卫生) or ``item`` (1. … / ——幼有所育 / a paragraph's short lead sentence).
    text : str
        The heading as printed, cut to :data:`MAX_HEADING` characters.
    """

    line: int
    kind: str
    text: str


@dataclass(frozen=True)
class Table:
    """A 专栏 (boxed table) of a seed plan: its number, title and first and last line."""

    start: int
    end: int
    title: str


@dataclass(frozen=True)
class Document:
    """A document that rules cite.

    Attributes
    ----------
    key : str
        ``S0`` … ``S4`` for the seed plans, or a short key for a national text (e.g. ``GB50180``).
    title : str
        Full title, without 《》.
    issuer, date, number, place : str
        Issuing body, date, document number (文号) and the county or city it plans ("" for national).
    held : bool
        Whether we hold the text (the seeds) — a value cited only from a text not held is unverified.
    file : str
        Seed file name in ``shared/seeds`` ("" for national texts).
    cite_as : tuple of str
        Strings that identify the document in a ``source`` (the 《title》 and short forms).
    headings : tuple of Heading
    tables : tuple of Table
    """

    key: str
    title: str
    issuer: str = ""
    date: str = ""
    number: str = ""
    place: str = ""
    held: bool = False
    file: str = ""
    cite_as: tuple[str, ...] = ()
    headings: tuple[Heading, ...] = ()
    tables: tuple[Table, ...] = ()

    @property
    def is_seed(self) -> bool:
        """Whether this is one of the seed plans (``S0`` … ``S4``)."""
        return bool(re.fullmatch(r"S\d", self.key))

    def heading_path(self, line: int) -> list[str]:
        """Headings in force at ``line``: chapter, section, 专栏 table, table row, and the line's own item heading (the seeds hold one paragraph per line).

        Parameters
        ----------
        line : int
            1-based line of the seed file.

        Returns
        -------
        list of str
            Outermost first; empty when the line lies before the first heading.
        """
        out: list[str] = []
        chapter = _last(self.headings, line, "chapter", 0)
        floor = chapter.line if chapter else 0
        section = _last(self.headings, line, "section", floor)
        if chapter:
            out.append(chapter.text)
        if section:
            out.append(section.text)
            floor = section.line
        table = next((t for t in self.tables if t.start <= line <= t.end), None)
        if table is not None:
            out.append(table.title)
            row = _last(self.headings, line, "row", table.start)
            if row:
                out.append(row.text)
        # the seeds hold one paragraph per line: an item heading names its own line only
        item = next((h for h in self.headings if h.line == line and h.kind == "item"), None)
        if item and (not out or item.text != out[-1]):
            out.append(item.text)
        return out


def _last(headings: tuple[Heading, ...], line: int, kind: str, floor: int) -> Heading | None:
    """The last heading of ``kind`` on a line in ``(floor, line]``."""
    best = None
    for h in headings:
        if h.kind == kind and floor < h.line <= line:
            best = h
    return best


def _cut(text: str) -> str:
    text = re.sub(r"\s+", " ", text.strip())
    stop = text.find("。")
    if 0 < stop <= MAX_HEADING:
        return text[:stop]
    return text if len(text) <= MAX_HEADING else text[:MAX_HEADING] + "…"


def index_headings(lines: list[str], tables: list[Table], skip_before: int = 0) -> list[Heading]:
    """Find the headings of a seed plan's text.

    Parameters
    ----------
    lines : list of str
        The seed file's lines (index 0 = line 1).
    tables : list of Table
        The plan's 专栏 tables (their ranges are set by hand in ``index/documents.yaml``: a table's end
        cannot be told from the text); inside a table short category cells become ``row`` headings.
    skip_before : int, default 0
        Ignore lines before this one (a table of contents repeating the headings).

    Returns
    -------
    list of Heading
        In line order.
    """
    out: list[Heading] = []
    for i, raw in enumerate(lines, start=1):
        if i < skip_before:
            continue
        s = raw.strip()
        if not s:
            continue
        in_table = any(t.start < i <= t.end for t in tables)
        if any(t.start == i for t in tables):
            continue
        if _CHAPTER.match(s):
            out.append(Heading(i, "chapter", _cut(s)))
        elif _SECTION.match(s):
            out.append(Heading(i, "section", _cut(s)))
        elif _ITEM.match(s):
            out.append(Heading(i, "item", _cut(s)))
        elif m := _DASH_ITEM.match(s):
            out.append(Heading(i, "item", m.group(1)))
        elif in_table and len(s) <= 8 and s not in _ROW_STOP and re.fullmatch(r"[\u4e00-\u9fff]+", s):
            prev = out[-1] if out else None
            if prev is not None and prev.kind == "row" and not any(x.strip() for x in lines[prev.line:i - 1]):
                out[-1] = Heading(prev.line, "row", prev.text + s)  # a cell split over two lines
            else:
                out.append(Heading(i, "row", s))
        elif m := _LEAD.match(s):
            out.append(Heading(i, "item", m.group(1)))
    return out


@functools.lru_cache(maxsize=1)
def documents() -> dict[str, Document]:
    """All documents of ``index/documents.yaml``, by key (``S0`` … ``S4``, national keys).

    Returns
    -------
    dict of str to Document
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw: dict[str, Any] = yaml.load(DOCUMENTS_FILE.read_text(encoding="utf-8"), Loader=loader)  # safe loader
    out: dict[str, Document] = {}
    for key, d in raw["documents"].items():
        out[key] = Document(
            key=key,
            title=d["title"],
            issuer=d.get("issuer", ""),
            date=str(d.get("date", "")),
            number=d.get("number", ""),
            place=d.get("place", ""),
            held=bool(d.get("held", False)),
            file=d.get("file", ""),
            cite_as=tuple(d.get("cite_as", [])),
            headings=tuple(Heading(int(a), str(b), str(c)) for a, b, c in d.get("headings", [])),
            tables=tuple(Table(int(a), int(b), str(c)) for a, b, c in d.get("tables", [])),
        )
    return out


@dataclass(frozen=True)
class Citation:
    """One document cited by a rule's ``source``.

    Attributes
    ----------
    doc : Document
    line, last : int or None
        The cited seed line (and the last line of a range), ``None`` for a national text.
    """

    doc: Document
    line: int | None = None
    last: int | None = None

    def describe(self) -> str:
        """How the citation reads for a planner: 《title》 chapter › section › … (第N行).

        Returns
        -------
        str
            E.g. ``《仁怀市公共服务发展行动方案(2023—2025年)》 三、重点任务 › (四)全面深化病有所医 ›
            2.持续优化医疗卫生服务体系 (第75行)``; a national text not held adds ``(原文未在手,待核)``.
        """
        head = f"《{self.doc.title}》"
        if self.line is None:
            return head if self.doc.held else f"{head}(原文未在手,待核)"
        path = " › ".join(self.doc.heading_path(self.line))
        where = f"第{self.line}行" if self.last is None else f"第{self.line}–{self.last}行"
        return f"{head} {path} ({where})" if path else f"{head} ({where})"


def cite(source: str) -> list[Citation]:
    """The documents a ``source`` string cites, in the order they appear.

    Parameters
    ----------
    source : str
        A rule's ``source``, e.g. ``"S1 L75 完善…; S0 L440 …"`` or ``"《全民健身计划(2021—2025年)》 …"``.

    Returns
    -------
    list of Citation
        Seed citations (``S3`` and unknown seeds are skipped) and national texts recognised by one
        of their ``cite_as`` strings; empty for an assumption or a user's own text.
    """
    docs = documents()
    found: list[tuple[int, Citation]] = []
    for m in SEED_CITE.finditer(source):
        doc = docs.get(m.group(1))
        if doc is None:
            continue
        last = int(m.group(3)) if m.group(3) else None
        found.append((m.start(), Citation(doc, int(m.group(2)), last)))
    for doc in docs.values():
        if doc.is_seed:
            continue
        pos = min((source.find(c) for c in doc.cite_as if c in source), default=-1)
        if pos >= 0:
            found.append((pos, Citation(doc)))
    found.sort(key=lambda x: x[0])
    return [c for _, c in found]


def seeds_cited(source: str) -> set[str]:
    """Keys of the seed plans a ``source`` cites (``{"S0", "S2"}`` …)."""
    return {m.group(1) for m in SEED_CITE.finditer(source)}


__all__ = [
    "DOCUMENTS_FILE",
    "SEED_CITE",
    "Citation",
    "Document",
    "Heading",
    "Table",
    "cite",
    "documents",
    "index_headings",
    "seeds_cited",
]
