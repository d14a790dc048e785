"""The report's charts as hand-written SVG, with their text left to the browser.

The text of a chart (Chinese township and service names, axis titles) is SVG ``<text>``: the
browser draws it with the reader's own fonts, exactly as the HTML tables around it. So the charts
show Chinese on a machine that has no CJK font for Python, print sharply, can be searched and
copied, and need neither matplotlib nor any font lookup (no "Glyph missing" warnings). Text widths
for the layout are estimated (a CJK character is one em, other characters about 0.6 em).

Output is deterministic: the same figures give the same bytes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from html import escape

import numpy as np

__all__ = ["coord", "histogram_svg", "marginal_svg", "share_bars_svg", "svg_element", "text_element", "text_width"]

_FONT = "font-family=\"'Microsoft YaHei','PingFang SC','Noto Sans CJK SC','Source Han Sans SC'," \
        "'WenQuanYi Micro Hei',sans-serif\""
_GRID = "#dddddd"
_BAR = "#3b6ea5"
_MUTED = "#666666"


def text_width(text: str, size: float) -> float:
    """Estimated width in px of ``text`` at font size ``size``: wide (CJK) characters count one em, others 0.6 em."""
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else 0.6 * size for ch in str(text))


def _f(x: float) -> str:
    """Coordinates with at most 1 decimal (stable bytes)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, size: float, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" text-anchor="{anchor}"'
            f'{(" " + extra) if extra else ""}>{escape(s)}</text>')


def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return (f'<svg role="img" width="{_f(width)}" '
            f'height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}" {_FONT}>'
            f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")


def share_bars_svg(
    names: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str = "各乡镇(街道)服务圈覆盖率",
    width: float = 960.0,
) -> str:
    """Horizontal bar charts of a share (0–1) per township, one panel per service, side by side.

    Parameters
    ----------
    names : sequence of str
        Township names (one row each, top to bottom).
    panels : sequence of (str, sequence of float)
        Panel title (e.g. ``养老服务``) and one share per township (NaN: shown as ``无数据``).
    title : str
        Chart title.
    width : float
        Width in px.

    Returns
    -------
    str
        An ``<svg>`` element. Each bar is a ``<rect class="bar">`` whose width is the share times
        the panel's axis length (``data-share`` holds the share).
    """
    size, row_h, bar_h = 12.0, 20.0, 13.0
    left = max([text_width(n, size) for n in names] + [40.0]) + 12
    top, bottom, gap = 52.0, 34.0, 28.0
    k = max(len(panels), 1)
    pw = (width - left - 10 - gap * (k - 1)) / k
    height = top + row_h * len(names) + bottom
    body = [_text(width / 2, 20, title, 15, "middle", 'font-weight="bold"')]
    for i, n in enumerate(names):
        body.append(_text(left - 6, top + row_h * i + row_h / 2 + size * 0.35, n, size, "end"))
    for j, (label, shares) in enumerate(panels):
        x0 = left + j * (pw + gap)
        body.append(_text(x0 + pw / 2, top - 10, label, 13, "middle"))
        for t in (0, 50, 100):
            x = x0 + pw * t / 100
            body.append(f'<line x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" '
                        f'y2="{_f(top + row_h * len(names))}" stroke="{_GRID}" stroke-width="1"/>')
            body.append(_text(x, top + row_h * len(names) + 14, f"{t}%", 10, "middle", f'fill="{_MUTED}"'))
        for i, s in enumerate(shares):
            y = top + row_h * i + (row_h - bar_h) / 2
            v = float(s) if s is not None else float("nan")
            if not np.isfinite(v):
                body.append(_text(x0 + 3, y + bar_h - 2, "无数据", 10, extra=f'fill="{_MUTED}"'))
                continue
            v = min(max(v, 0.0), 1.0)
            body.append(f'<rect class="bar" data-share="{v:.4f}" x="{_f(x0)}" y="{_f(y)}" '
                        f'width="{pw * v:.2f}" height="{_f(bar_h)}" fill="{_BAR}"/>')
            body.append(_text(x0 + pw * v + 3 if v < 0.8 else x0 + pw * v - 3, y + bar_h - 2.5,
                              f"{v * 100:.0f}%", 9, "start" if v < 0.8 else "end",
                              'fill="#222222"' if v < 0.8 else 'fill="#ffffff"'))
        body.append(f'<line x1="{_f(x0)}" y1="{_f(top)}" x2="{_f(x0)}" '
                    f'y2="{_f(top + row_h * len(names))}" stroke="#444444" stroke-width="1"/>')
    body.append(_text(left + (width - left - 10) / 2, height - 4, "覆盖率 (%)", 11, "middle"))
    return _svg(width, height, body, title)


#: Steps of the cumulative curve of :func:`histogram_svg` along its axis (the plot is ~400 px wide).
CDF_STEPS = 800


def histogram_svg(
    series: Sequence[tuple[str, str, np.ndarray, float]],
    *,
    bins: int = 30,
    title: str = "到最近设施的出行时间",
    width: float = 960.0,
    weights: Sequence[np.ndarray | None] | None = None,
) -> str | None:
    """Distribution of minutes to the nearest facility: histogram (left) and cumulative share (right).

    The cumulative share is drawn in :data:`CDF_STEPS` steps of the time axis (each time counted
    at the start of its step, less than a pixel early).

    Parameters
    ----------
    series : sequence of (label, colour, finite minutes, total)
        One line per service. Cells beyond the threshold or without road access are not among the
        finite minutes; ``total`` counts them (cells, or people with ``weights``), so the
        cumulative curve ends below 100 %.
    bins : int
        Number of histogram bins between 0 and the largest time.
    title : str
        Chart title.
    width : float
        Width in px.
    weights : sequence of numpy.ndarray, optional
        People per finite minute of each series: the chart then counts people, not cells (the
        report's Figure 2), and ``total`` is people.

    Returns
    -------
    str or None
        An ``<svg>`` element; ``None`` when no series has a finite time. Each histogram line is a
        ``<polyline class="hist">`` with ``data-counts`` (per bin), ``data-total`` and
        ``data-beyond`` (outside the axis), in people with ``weights``.
    """
    finite = [np.asarray(m, dtype=float) for _, _, m, _ in series]
    if not any(m.size for m in finite):
        return None
    people = weights is not None
    given: Sequence[np.ndarray | None] = weights if weights is not None else [None] * len(finite)
    ws = [np.ones(m.size) if w is None else np.asarray(w, dtype=float) for m, w in zip(finite, given, strict=True)]
    top = max(float(m.max()) for m in finite if m.size) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    counts = [np.histogram(m, bins=edges, weights=w)[0] if m.size else np.zeros(bins)
              for m, w in zip(finite, ws, strict=True)]
    ymax = max(float(c.max()) for c in counts) or 1.0
    size = 11.0
    legend_h = 16.0 * len(series) + 8
    pt, pb, pl, gap = 44.0, 40.0 + legend_h, 64.0, 68.0
    ph = 220.0
    pw = (width - pl - 20 - gap) / 2
    height = pt + ph + pb
    body = [_text(width / 2, 20, title, 15, "middle", 'font-weight="bold"')]
    what = "人数" if people else "格网单元数"
    panels = [(pl, "时间分布", f"{what}" + (" (人)" if people else ""), ymax),
              (pl + pw + gap, "累计分布", "累计占全部" + ("人口" if people else "格网单元") + " (%)", 100)]
    for x0, sub, ylab, ytop in panels:
        body.append(f'<rect x="{_f(x0)}" y="{_f(pt)}" width="{_f(pw)}" height="{_f(ph)}" fill="none" '
                    f'stroke="#444444" stroke-width="1"/>')
        body.append(_text(x0 + pw / 2, pt - 8, sub, 13, "middle"))
        for t in np.linspace(0, 1, 5):
            y = pt + ph * (1 - t)
            body.append(f'<line x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x0 + pw)}" y2="{_f(y)}" '
                        f'stroke="{_GRID}" stroke-width="1"/>')
            body.append(_text(x0 - 4, y + 3.5, f"{ytop * t:,.0f}", 9, "end", f'fill="{_MUTED}"'))
            x = x0 + pw * t
            body.append(_text(x, pt + ph + 13, f"{top * t:.0f}", 9, "middle", f'fill="{_MUTED}"'))
        body.append(_text(x0 + pw / 2, pt + ph + 28, "到最近设施时间(分钟)", size, "middle"))
        body.append(_text(x0 - 48, pt + ph / 2, ylab, size, "middle",
                          f'transform="rotate(-90 {_f(x0 - 48)} {_f(pt + ph / 2)})"'))
    for (label, colour, _, total), m, w, c in zip(series, finite, ws, counts, strict=True):
        x0 = panels[0][0]
        pts = [(x0, pt + ph)]
        for b in range(bins):
            y = pt + ph * (1 - c[b] / ymax)
            pts += [(x0 + pw * edges[b] / top, y), (x0 + pw * edges[b + 1] / top, y)]
        pts.append((x0 + pw, pt + ph))
        data = (f'class="hist" data-label="{escape(label)}" data-counts="{" ".join(f"{v:.2f}" for v in c)}" '
                f'data-total="{float(total):.2f}" data-beyond="{float(total) - float(w.sum()):.2f}"')
        body.append(_polyline(pts, colour, data))
        if m.size and total:
            x1 = panels[1][0]
            # the share within each of CDF_STEPS steps of the axis (finer than a pixel), summed:
            # an O(n) histogram instead of sorting a large county's million times; the curve
            # rises at the start of every step that holds someone
            grid = np.linspace(0.0, top, CDF_STEPS + 1)
            ys = np.cumsum(np.histogram(m, bins=grid, weights=w)[0]) / float(total)
            rises = np.flatnonzero(np.diff(np.r_[0.0, ys]) != 0)
            cpts = [(x1, pt + ph)]
            for xv, yv in zip(grid[rises], ys[rises], strict=True):
                px = x1 + pw * xv / top
                cpts += [(px, cpts[-1][1]), (px, pt + ph * (1 - yv))]
            cpts.append((x1 + pw, cpts[-1][1]))
            body.append(_polyline(cpts, colour))
    y = pt + ph + 44
    for (label, colour, _, total), w in zip(series, ws, strict=True):
        body.append(f'<line x1="{_f(pl)}" y1="{_f(y - 4)}" x2="{_f(pl + 22)}" y2="{_f(y - 4)}" '
                    f'stroke="{colour}" stroke-width="2"/>')
        if people:
            text = f"{label}(合计 {round(float(total)):,} 人,超出阈值/不可达 {round(float(total) - float(w.sum())):,} 人)"
        else:
            text = f"{label}(n={int(total):,},超出阈值/不可达 {int(total) - w.size:,})"
        body.append(_text(pl + 28, y, text, size))
        y += 16
    return _svg(width, height, body, title)


def marginal_svg(
    gains: Sequence[float], chosen: int, *, title: str = "每增加一个点位新增覆盖的人数", unit: str = "人",
    width: float = 960.0,
) -> str | None:
    """Bars of the people the k-th site adds (the marginal-gain curve of a siting run).

    Parameters
    ----------
    gains : sequence of float
        People added by site 1, 2, … in greedy order.
    chosen : int
        How many of them the plan builds; bars beyond are drawn grey (方案外, what one more site
        would add).
    title : str
        Chart title.
    unit : str
        Unit of the y axis (people).
    width : float
        Width in px.

    Returns
    -------
    str or None
        An ``<svg>`` element; each bar a ``<rect class="gain">`` with ``data-k`` and ``data-people``.
        ``None`` without gains.
    """
    vals = [max(float(g), 0.0) for g in gains]
    if not vals:
        return None
    pt, pb, pl, pr = 44.0, 62.0, 72.0, 20.0
    ph = 220.0
    pw = width - pl - pr
    height = pt + ph + pb
    ymax = max(vals) or 1.0
    slot = pw / len(vals)
    bw = min(60.0, slot * 0.7)
    body = [_text(width / 2, 20, title, 15, "middle", 'font-weight="bold"')]
    for t in np.linspace(0, 1, 5):
        y = pt + ph * (1 - t)
        body.append(f'<line x1="{_f(pl)}" y1="{_f(y)}" x2="{_f(pl + pw)}" y2="{_f(y)}" stroke="{_GRID}" stroke-width="1"/>')
        body.append(_text(pl - 4, y + 3.5, f"{ymax * t:,.0f}", 9, "end", f'fill="{_MUTED}"'))
    for k, v in enumerate(vals, start=1):
        x = pl + slot * (k - 0.5) - bw / 2
        h = ph * v / ymax
        fill = _BAR if k <= chosen else "#b8c2cc"
        body.append(f'<rect class="gain" data-k="{k}" data-people="{v:.2f}" x="{_f(x)}" y="{_f(pt + ph - h)}" '
                    f'width="{_f(bw)}" height="{_f(h)}" fill="{fill}"/>')
        body.append(_text(x + bw / 2, pt + ph - h - 4, f"{round(v):,}", 10, "middle"))
        body.append(_text(x + bw / 2, pt + ph + 14, f"第{k}个", 10, "middle",
                          "" if k <= chosen else f'fill="{_MUTED}"'))
    if chosen < len(vals):
        xs = pl + slot * chosen
        body.append(f'<line x1="{_f(xs)}" y1="{_f(pt)}" x2="{_f(xs)}" y2="{_f(pt + ph)}" stroke="#b42318" '
                    f'stroke-width="1" stroke-dasharray="4 3"/>')
        body.append(_text(xs + 4, pt + 12, "方案外 / beyond the plan", 10, "start", 'fill="#b42318"'))
    body.append(f'<line x1="{_f(pl)}" y1="{_f(pt + ph)}" x2="{_f(pl + pw)}" y2="{_f(pt + ph)}" stroke="#444444" stroke-width="1"/>')
    body.append(_text(pl + pw / 2, pt + ph + 34, "按贪心顺序的第 k 个新点位 / k-th new site", 11, "middle"))
    body.append(_text(pl - 52, pt + ph / 2, f"新增覆盖人口 ({unit})", 11, "middle",
                      f'transform="rotate(-90 {_f(pl - 52)} {_f(pt + ph / 2)})"'))
    return _svg(width, height, body, title)


def coord(x: float) -> str:
    """A coordinate as text with at most 1 decimal (stable bytes), for other SVG writers."""
    return _f(x)


def text_element(x: float, y: float, s: str, size: float, anchor: str = "start", extra: str = "") -> str:
    """An escaped SVG ``<text>`` element (the charts' own), for other SVG writers."""
    return _text(x, y, s, size, anchor, extra)


def svg_element(width: float, height: float, body: list[str], title: str) -> str:
    """The ``<svg>`` element around ``body`` with the charts' font list and a ``<title>``."""
    return _svg(width, height, body, title)


def _polyline(pts: list[tuple[float, float]], colour: str, extra: str = "") -> str:
    d = " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
    return f'<polyline {extra + " " if extra else ""}points="{d}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
