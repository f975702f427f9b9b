"""Server-rendered SVG charts: a tiny element builder and the report's four chart kinds.

Charts take plain numbers and labels, never a database row, so they can be tested and reused.
Every series is told apart by colour (Okabe-Ito, safe for the common colour-vision deficiencies)
and also by pattern, dash or marker shape plus a text label, so a grey-scale print keeps it legible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

# Okabe & Ito (2008), "Color Universal Design".
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
BLACK = "#000000"
OKABE_ITO = (ORANGE, SKY_BLUE, GREEN, YELLOW, BLUE, VERMILLION, PURPLE)

FONT = "system-ui, 'Noto Sans CJK KR', 'Nanum Gothic', 'Malgun Gothic', 'Apple SD Gothic Neo', sans-serif"

# Each model keeps one colour and one dash style across every chart.
MODEL_STYLE: dict[str, tuple[str, str]] = {
    "production": (VERMILLION, "9 4"),
    "hospital": (BLUE, "2 3"),
    "research": (GREEN, "10 3 2 3"),
    "composite": (PURPLE, "5 2"),
}
# Overlay patterns that keep stacked segments apart without colour.
PATTERNS: tuple[str, ...] = ("none", "diag", "dots", "backdiag", "horiz", "cross", "vert")


def _attr_name(name: str) -> str:
    # Python names cannot hold hyphens: stroke_width -> stroke-width, class_ -> class.
    return name.rstrip("_").replace("_", "-")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return str(value)


@dataclass
class Element:
    """One SVG element; attributes and text are escaped when rendered."""

    tag: str
    attrs: dict[str, object] = field(default_factory=dict)
    children: list[Element] = field(default_factory=list)
    text: str | None = None

    def add(self, tag: str, text: str | None = None, **attrs: object) -> Element:
        child = Element(tag, {k: v for k, v in attrs.items() if v is not None}, [], text)
        self.children.append(child)
        return child

    def render(self) -> str:
        attrs = "".join(f' {_attr_name(k)}="{escape(_fmt(v), quote=True)}"' for k, v in self.attrs.items())
        if not self.children and self.text is None:
            return f"<{self.tag}{attrs}/>"
        inner = escape(self.text) if self.text is not None else ""
        inner += "".join(c.render() for c in self.children)
        return f"<{self.tag}{attrs}>{inner}</{self.tag}>"


def new_svg(width: int, height: int, *, uid: str, title: str, desc: str) -> Element:
    """A root <svg> with an accessible title and description and white background."""
    svg = Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {width} {height}",
            "width": width,
            "height": height,
            "role": "img",
            "aria-labelledby": f"{uid}-title {uid}-desc",
            "class": "chart",
            "font-family": FONT,
            "font-size": 12,
        },
    )
    svg.add("title", title, id=f"{uid}-title")
    svg.add("desc", desc, id=f"{uid}-desc")
    svg.add("rect", x=0, y=0, width=width, height=height, fill="#ffffff")
    return svg


def add_patterns(svg: Element, uid: str, colours: Sequence[str]) -> list[str]:
    """One <pattern> per colour (colour + black overlay); returns their fill references."""
    defs = svg.add("defs")
    fills = []
    for i, colour in enumerate(colours):
        kind = PATTERNS[i % len(PATTERNS)]
        pid = f"{uid}-p{i}"
        p = defs.add("pattern", id=pid, patternUnits="userSpaceOnUse", width=8, height=8)
        p.add("rect", x=0, y=0, width=8, height=8, fill=colour)
        ink: dict[str, object] = {"stroke": BLACK, "stroke_opacity": 0.55, "stroke_width": 1.2}
        if kind == "diag":
            p.add("path", None, d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4", **ink)
        elif kind == "backdiag":
            p.add("path", None, d="M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4", **ink)
        elif kind == "dots":
            p.add("circle", cx=4, cy=4, r=1.4, fill=BLACK, fill_opacity=0.6)
        elif kind == "horiz":
            p.add("path", None, d="M0,4 h8", **ink)
        elif kind == "vert":
            p.add("path", None, d="M4,0 v8", **ink)
        elif kind == "cross":
            p.add("path", None, d="M0,4 h8 M4,0 v8", **ink)
        fills.append(f"url(#{pid})")
    return fills


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap by character count (CJK text wraps per character)."""
    if not text:
        return [""]
    lines: list[str] = []
    current = ""
    tokens: Iterable[str] = text.split(" ") if " " in text else list(text)
    joiner = " " if " " in text else ""
    for token in tokens:
        candidate = f"{current}{joiner}{token}" if current else token
        # Hangul is about twice as wide as Latin letters at the same font size.
        if _width(candidate) > width and current:
            lines.append(current)
            current = token
        else:
            current = candidate
    lines.append(current)
    return lines


def _width(text: str) -> float:
    return sum(1.9 if ord(ch) > 0x1100 else 1.0 for ch in text)


def add_lines(
    parent: Element, x: float, y: float, lines: Sequence[str], step: float = 14, **attrs: object
) -> None:
    for i, line in enumerate(lines):
        parent.add("text", line, x=x, y=y + i * step, **attrs)


# --- radar -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RadarPanel:
    title: str
    model: str
    ideal: Sequence[float]  # one value in [0, 1] per axis


def radar(
    *,
    uid: str,
    title: str,
    desc: str,
    axes: Sequence[str],
    country: Sequence[float | None],
    country_label: str,
    ideal_label: str,
    panels: Sequence[RadarPanel],
    missing_label: str,
    note: str,
) -> str:
    """Small multiples: the country's profile (black, solid, grey fill) against each model's ideal."""
    cols, pw, ph, margin = 2, 390, 330, 30  # the margin keeps long axis labels inside the image
    rows = math.ceil(len(panels) / cols)
    width, height = 2 * margin + cols * pw, 40 + rows * ph + 70
    svg = new_svg(width, height, uid=uid, title=title, desc=desc)
    svg.add("text", title, x=12, y=24, font_size=15, font_weight="bold")
    n = len(axes)

    def point(cx: float, cy: float, r: float, i: int, v: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * i / n
        return cx + r * v * math.cos(angle), cy + r * v * math.sin(angle)

    for k, panel in enumerate(panels):
        ox, oy = margin + (k % cols) * pw, 40 + (k // cols) * ph
        cx, cy, r = ox + pw / 2, oy + ph / 2 + 12, 100
        g = svg.add("g", class_="panel", data_model=panel.model)
        g.add("text", panel.title, x=ox + 12, y=oy + 20, font_size=13, font_weight="bold")
        # Rings at the level boundaries: inside 1/3 is low, beyond 2/3 high.
        for ring in (1 / 3, 2 / 3, 1.0):
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(cx, cy, r, i, ring) for i in range(n)))
            g.add("polygon", points=pts, fill="none", stroke="#999", stroke_width=0.6)
        for i, label in enumerate(axes):
            x, y = point(cx, cy, r, i, 1.0)
            g.add("line", x1=cx, y1=cy, x2=x, y2=y, stroke="#999", stroke_width=0.6)
            lx, ly = point(cx, cy, r + 22, i, 1.0)
            anchor = "middle" if abs(lx - cx) < 8 else ("start" if lx > cx else "end")
            text = label if country[i] is not None else f"{label} ({missing_label})"
            g.add("text", text, x=round(lx, 1), y=round(ly + 4, 1), text_anchor=anchor, font_size=11)
        colour, dash = MODEL_STYLE.get(panel.model, (BLUE, "4 2"))
        ideal = " ".join(
            f"{x:.1f},{y:.1f}" for x, y in (point(cx, cy, r, i, v) for i, v in enumerate(panel.ideal))
        )
        g.add(
            "polygon",
            points=ideal,
            fill=colour,
            fill_opacity=0.12,
            stroke=colour,
            stroke_width=2.2,
            stroke_dasharray=dash,
            class_="ideal",
        )
        values = [0.0 if v is None else v for v in country]
        shape = " ".join(
            f"{x:.1f},{y:.1f}" for x, y in (point(cx, cy, r, i, v) for i, v in enumerate(values))
        )
        g.add(
            "polygon",
            points=shape,
            fill="#000",
            fill_opacity=0.10,
            stroke=BLACK,
            stroke_width=2,
            class_="country",
        )
        for i, v in enumerate(country):
            x, y = point(cx, cy, r, i, values[i])
            if v is None:
                g.add("circle", cx=round(x, 1), cy=round(y, 1), r=3.5, fill="#fff", stroke=BLACK)
            else:
                g.add("circle", cx=round(x, 1), cy=round(y, 1), r=3, fill=BLACK)
            ix, iy = point(cx, cy, r, i, panel.ideal[i])
            g.add(
                "rect",
                x=round(ix - 3, 1),
                y=round(iy - 3, 1),
                width=6,
                height=6,
                fill=colour,
                stroke=BLACK,
                stroke_width=0.6,
            )

    ly = 40 + rows * ph + 6
    svg.add("line", x1=14, y1=ly, x2=44, y2=ly, stroke=BLACK, stroke_width=2)
    svg.add("circle", cx=29, cy=ly, r=3, fill=BLACK)
    svg.add("text", country_label, x=50, y=ly + 4)
    svg.add("line", x1=300, y1=ly, x2=330, y2=ly, stroke="#555", stroke_width=2.2, stroke_dasharray="5 2")
    svg.add("rect", x=312, y=ly - 3, width=6, height=6, fill="#bbb", stroke=BLACK, stroke_width=0.6)
    svg.add("text", ideal_label, x=336, y=ly + 4)
    add_lines(svg, 14, ly + 24, wrap(note, 125), font_size=10.5, fill="#333")
    return svg.render()


# --- stacked contributions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContributionBar:
    model: str
    label: str
    segments: Sequence[float]  # weight * fit per criterion, in legend order
    gated_score: float  # the rule score after gates
    gates_failed: int
    score_text: str


def contributions(
    *,
    uid: str,
    title: str,
    desc: str,
    criteria: Sequence[str],
    bars: Sequence[ContributionBar],
    axis_label: str,
    gate_label: str,
    note: str,
) -> str:
    """One horizontal bar per model, stacked by criterion (weight x fit); a marker where gates cut it."""
    left, bar_w, bar_h, gap = 200, 440, 30, 16
    top = 44
    legend_rows = math.ceil(len(criteria) / 2)
    width = left + bar_w + 120
    height = top + len(bars) * (bar_h + gap) + 40 + legend_rows * 20 + 50
    svg = new_svg(width, height, uid=uid, title=title, desc=desc)
    fills = add_patterns(svg, uid, OKABE_ITO[: len(criteria)])
    svg.add("text", title, x=12, y=24, font_size=15, font_weight="bold")
    axis_y = top + len(bars) * (bar_h + gap)
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + t * bar_w
        svg.add("line", x1=x, y1=top - 6, x2=x, y2=axis_y, stroke="#ccc", stroke_width=0.8)
        svg.add("text", f"{t:.2f}", x=x, y=axis_y + 14, text_anchor="middle", font_size=10.5)
    svg.add("text", axis_label, x=left + bar_w / 2, y=axis_y + 30, text_anchor="middle", font_size=11)

    for k, bar in enumerate(bars):
        y = top + k * (bar_h + gap)
        g = svg.add("g", class_="bar", data_model=bar.model)
        add_lines(g, left - 8, y + 13, wrap(bar.label, 28)[:2], step=13, text_anchor="end", font_size=11.5)
        x = float(left)
        for i, value in enumerate(bar.segments):
            w = max(0.0, value) * bar_w
            if w <= 0:
                continue
            g.add(
                "rect",
                x=round(x, 2),
                y=y,
                width=round(w, 2),
                height=bar_h,
                fill=fills[i],
                stroke=BLACK,
                stroke_width=0.7,
                data_criterion=criteria[i],
            )
            if w >= 30:
                # A white box keeps the number legible on any fill and pattern.
                g.add(
                    "rect",
                    x=round(x + w / 2 - 14, 1),
                    y=y + bar_h / 2 - 7,
                    width=28,
                    height=14,
                    fill="#fff",
                    fill_opacity=0.85,
                    rx=2,
                )
                g.add(
                    "text",
                    f"{value:.2f}".lstrip("0"),
                    x=round(x + w / 2, 1),
                    y=y + bar_h / 2 + 4,
                    text_anchor="middle",
                    font_size=10,
                )
            x += w
        if bar.gates_failed:
            gx = left + bar.gated_score * bar_w
            g.add("line", x1=gx, y1=y - 4, x2=gx, y2=y + bar_h + 4, stroke=BLACK, stroke_width=2.5)
            g.add("path", d=f"M{gx - 5:.1f},{y - 9} h10 l-5,6 z", fill=BLACK)
        g.add(
            "text",
            bar.score_text,
            x=left + bar_w + 8,
            y=y + bar_h / 2 + 4,
            font_size=11.5,
            font_weight="bold",
        )

    ly = axis_y + 48
    for i, name in enumerate(criteria):
        lx = 14 + (i % 2) * (width / 2)
        yy = ly + (i // 2) * 20
        svg.add("rect", x=lx, y=yy - 11, width=26, height=14, fill=fills[i], stroke=BLACK, stroke_width=0.7)
        svg.add("text", name, x=lx + 32, y=yy, font_size=11)
    ny = ly + legend_rows * 20 + 4
    svg.add("line", x1=18, y1=ny - 4, x2=18, y2=ny + 8, stroke=BLACK, stroke_width=2.5)
    svg.add("text", gate_label, x=28, y=ny + 6, font_size=10.5)
    add_lines(svg, 14, ny + 24, wrap(note, 120), font_size=10.5, fill="#333")
    return svg.render()


# --- positioning map ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MapCluster:
    label: str
    quadrant: int  # 1..4 as in seeds/000 §II-3 Table 1
    korean: bool
    highlighted: bool


def positioning(
    *,
    uid: str,
    title: str,
    desc: str,
    x_label: tuple[str, str, str],  # axis name, low end, high end
    y_label: tuple[str, str, str],
    quadrant_labels: dict[int, str],
    clusters: Sequence[MapCluster],
    country: tuple[float, float] | None,
    country_label: str,
    legend: tuple[str, str, str],  # Korean cluster, foreign cluster, reference of the recommended model
    note: str,
) -> str:
    """Table 1's 2x2 map (x maturity, y value-chain focus) with clusters by quadrant and the country."""
    width, height = 760, 640
    px, py, pw, ph = 80, 50, 440, 440
    svg = new_svg(width, height, uid=uid, title=title, desc=desc)
    svg.add("text", title, x=12, y=24, font_size=15, font_weight="bold")
    # Quadrant origin (left, top) in plot units; Q1 top right, Q2 top left, Q3 bottom left, Q4 bottom right.
    origin = {1: (0.5, 0.0), 2: (0.0, 0.0), 3: (0.0, 0.5), 4: (0.5, 0.5)}
    shade = {1: "#e9e9e9", 2: "#f6f6f6", 3: "#e9e9e9", 4: "#f6f6f6"}
    for q, (qx, qy) in origin.items():
        svg.add(
            "rect",
            x=px + qx * pw,
            y=py + qy * ph,
            width=pw / 2,
            height=ph / 2,
            fill=shade[q],
            stroke="#777",
            stroke_width=0.8,
        )
        add_lines(
            svg,
            px + qx * pw + 8,
            py + qy * ph + 18,
            wrap(quadrant_labels.get(q, ""), 34),
            step=13,
            font_size=10.5,
            fill="#333",
            font_weight="bold",
        )
    svg.add("rect", x=px, y=py, width=pw, height=ph, fill="none", stroke=BLACK, stroke_width=1.2)
    # Axes with arrows and both ends named.
    svg.add("text", x_label[0], x=px + pw / 2, y=py + ph + 40, text_anchor="middle", font_weight="bold")
    svg.add("text", x_label[1], x=px, y=py + ph + 18, font_size=11)
    svg.add("text", x_label[2], x=px + pw, y=py + ph + 18, text_anchor="end", font_size=11)
    svg.add(
        "text",
        y_label[0],
        x=0,
        y=0,
        text_anchor="middle",
        font_weight="bold",
        transform=f"translate({px - 50},{py + ph / 2}) rotate(-90)",
    )
    svg.add(
        "text",
        y_label[1],
        x=0,
        y=0,
        text_anchor="start",
        font_size=11,
        transform=f"translate({px - 22},{py + ph}) rotate(-90)",
    )
    svg.add(
        "text",
        y_label[2],
        x=0,
        y=0,
        text_anchor="end",
        font_size=11,
        transform=f"translate({px - 22},{py}) rotate(-90)",
    )

    by_quadrant: dict[int, list[MapCluster]] = {}
    for c in clusters:
        by_quadrant.setdefault(c.quadrant, []).append(c)
    for q, members in by_quadrant.items():
        qx, qy = origin[q]
        for i, c in enumerate(members):
            # Placed in a column inside the quadrant: the seed gives quadrants, not coordinates.
            x = px + qx * pw + 30
            y = py + qy * ph + 70 + i * 40
            g = svg.add("g", class_="cluster", data_quadrant=q)
            fill = BLACK if c.highlighted else "#fff"
            if c.korean:
                g.add(
                    "rect", x=x - 6, y=y - 6, width=12, height=12, fill=fill, stroke=BLACK, stroke_width=1.5
                )
            else:
                g.add("circle", cx=x, cy=y, r=6.5, fill=fill, stroke=BLACK, stroke_width=1.5)
            label = f"★ {c.label}" if c.highlighted else c.label
            g.add(
                "text",
                label,
                x=x + 12,
                y=y + 4,
                font_size=11.5,
                font_weight="bold" if c.highlighted else None,
            )

    if country is not None:
        cx, cy = px + country[0] * pw, py + (1 - country[1]) * ph
        g = svg.add("g", class_="country")
        g.add("line", x1=cx, y1=cy, x2=cx, y2=py + ph, stroke=VERMILLION, stroke_dasharray="3 3")
        g.add("line", x1=px, y1=cy, x2=cx, y2=cy, stroke=VERMILLION, stroke_dasharray="3 3")
        g.add(
            "path",
            d=f"M{cx:.1f},{cy - 11:.1f} l11,11 l-11,11 l-11,-11 z",
            fill=VERMILLION,
            stroke=BLACK,
            stroke_width=1.5,
        )
        anchor = "end" if country[0] > 0.7 else "start"
        dx = -14 if anchor == "end" else 14
        # A white halo keeps the label legible where it crosses a cluster's label or a line.
        g.add(
            "text",
            country_label,
            x=round(cx + dx, 1),
            y=round(cy - 10, 1),
            text_anchor=anchor,
            font_weight="bold",
            font_size=12.5,
            stroke="#fff",
            stroke_width=4,
            paint_order="stroke",
        )

    lx = px + pw + 24
    svg.add("rect", x=lx, y=py + 4, width=12, height=12, fill="#fff", stroke=BLACK, stroke_width=1.5)
    add_lines(svg, lx + 18, py + 14, wrap(legend[0], 24))
    svg.add("circle", cx=lx + 6, cy=py + 50, r=6.5, fill="#fff", stroke=BLACK, stroke_width=1.5)
    add_lines(svg, lx + 18, py + 54, wrap(legend[1], 24))
    svg.add("rect", x=lx, y=py + 84, width=12, height=12, fill=BLACK)
    add_lines(svg, lx + 18, py + 94, wrap(legend[2], 24))
    svg.add("path", d=f"M{lx + 6},{py + 124} l8,8 l-8,8 l-8,-8 z", fill=VERMILLION, stroke=BLACK)
    add_lines(svg, lx + 18, py + 136, wrap(country_label, 24))
    add_lines(svg, 14, py + ph + 66, wrap(note, 125), font_size=10.5, fill="#333")
    return svg.render()


# --- country ranking for one model -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RankedBar:
    label: str
    score: float
    detail: str  # e.g. stage and confidence, printed beside the bar


def ranking_bars(
    *, uid: str, title: str, desc: str, model: str, bars: Sequence[RankedBar], axis_label: str, note: str
) -> str:
    """Top countries for one model as horizontal bars, score printed at the end of each."""
    left, bar_w, bar_h, gap, top = 230, 360, 16, 6, 50
    width = left + bar_w + 190
    axis_y = top + max(1, len(bars)) * (bar_h + gap)
    height = axis_y + 80
    svg = new_svg(width, height, uid=uid, title=title, desc=desc)
    colour, _ = MODEL_STYLE.get(model, (BLUE, ""))
    fill = add_patterns(svg, uid, [colour, colour])[1]  # the colour with a diagonal overlay
    add_lines(svg, 12, 22, wrap(title, 110)[:2], step=16, font_size=14, font_weight="bold")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + t * bar_w
        svg.add("line", x1=x, y1=top - 4, x2=x, y2=axis_y, stroke="#ccc", stroke_width=0.8)
        svg.add("text", f"{t:.2f}", x=x, y=axis_y + 14, text_anchor="middle", font_size=10.5)
    svg.add("text", axis_label, x=left + bar_w / 2, y=axis_y + 30, text_anchor="middle", font_size=11)
    for k, bar in enumerate(bars):
        y = top + k * (bar_h + gap)
        g = svg.add("g", class_="bar")
        g.add("text", bar.label, x=left - 8, y=y + bar_h - 4, text_anchor="end", font_size=11)
        w = max(0.0, min(1.0, bar.score)) * bar_w
        g.add("rect", x=left, y=y, width=round(w, 2), height=bar_h, fill=fill, stroke=BLACK, stroke_width=0.7)
        g.add(
            "text",
            f"{bar.score:.3f}",
            x=round(left + w + 5, 1),
            y=y + bar_h - 4,
            font_size=10.5,
            font_weight="bold",
        )
        g.add("text", bar.detail, x=left + bar_w + 50, y=y + bar_h - 4, font_size=10.5, fill="#333")
    add_lines(svg, 14, axis_y + 52, wrap(note, 125), font_size=10.5, fill="#333")
    return svg.render()
