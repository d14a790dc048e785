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

__all__ = ["histogram_svg", "share_bars_svg", "text_width"]

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


def histogram_svg(
    series: Sequence[tuple[str, str, np.ndarray, int]],
    *,
    bins: int = 30,
    title: str = "到最近设施的出行时间",
    width: float = 960.0,
) -> str | None:
    """Distribution of minutes to the nearest facility: histogram (left) and cumulative share (right).

    Parameters
    ----------
    series : sequence of (label, colour, finite minutes, total cells)
        One line per service. Cells beyond the threshold or without road access are not among the
        finite minutes; ``total cells`` counts them, so the cumulative curve ends below 100 %.
    bins : int
        Number of histogram bins between 0 and the largest time.
    title : str
        Chart title.
    width : float
        Width in px.

    Returns
    -------
    str or None
        An ``<svg>`` element; ``None`` when no series has a finite time.
    """
    finite = [np.asarray(m, dtype=float) for _, _, m, _ in series]
    if not any(m.size for m in finite):
        return None
    top = max(float(m.max()) for m in finite if m.size) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    counts = [np.histogram(m, bins=edges)[0] if m.size else np.zeros(bins, dtype=int) for m in finite]
    ymax = max(int(c.max()) for c in counts) or 1
    size = 11.0
    legend_h = 16.0 * len(series) + 8
    pt, pb, pl, gap = 44.0, 40.0 + legend_h, 56.0, 60.0
    ph = 220.0
    pw = (width - pl - 20 - gap) / 2
    height = pt + ph + pb
    body = [_text(width / 2, 20, title, 15, "middle", 'font-weight="bold"')]
    panels = [(pl, "时间分布", "格网单元数", ymax), (pl + pw + gap, "累计分布", "累计占全部格网单元 (%)", 100)]
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
        body.append(_text(x0 - 40, pt + ph / 2, ylab, size, "middle",
                          f'transform="rotate(-90 {_f(x0 - 40)} {_f(pt + ph / 2)})"'))
    for (label, colour, _, total), m, c in zip(series, finite, counts, strict=True):
        x0 = panels[0][0]
        pts = [(x0, pt + ph)]
        for b in range(bins):
            y = pt + ph * (1 - c[b] / ymax)
            pts += [(x0 + pw * edges[b] / top, y), (x0 + pw * edges[b + 1] / top, y)]
        pts.append((x0 + pw, pt + ph))
        body.append(_polyline(pts, colour))
        if m.size and total:
            x1 = panels[1][0]
            xs = np.sort(m)
            ys = np.arange(1, xs.size + 1) / total
            step = max(1, xs.size // 400)  # at most ~400 steps: same picture, small file
            keep = np.unique(np.r_[np.arange(0, xs.size, step), xs.size - 1])
            cpts = [(x1, pt + ph)]
            for xv, yv in zip(xs[keep], ys[keep], strict=True):
                px = x1 + pw * xv / top
                cpts += [(px, cpts[-1][1]), (px, pt + ph * (1 - yv))]
            cpts.append((x1 + pw, cpts[-1][1]))
            body.append(_polyline(cpts, colour))
    y = pt + ph + 44
    for label, colour, m, total in series:
        body.append(f'<line x1="{_f(pl)}" y1="{_f(y - 4)}" x2="{_f(pl + 22)}" y2="{_f(y - 4)}" '
                    f'stroke="{colour}" stroke-width="2"/>')
        body.append(_text(pl + 28, y, f"{label}(n={total:,},超出阈值/不可达 {total - np.asarray(m).size:,})", size))
        y += 16
    return _svg(width, height, body, title)


def _polyline(pts: list[tuple[float, float]], colour: str) -> str:
    d = " ".join(f"{_f(x)},{_f(y)}" for x, y in pts)
    return f'<polyline points="{d}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
