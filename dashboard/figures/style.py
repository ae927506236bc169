"""The one way SE Lens builds a figure: plotly.js trace and layout dicts through :func:`figure`.

Why dicts: validated construction (``go.Bar(...)``, ``update_layout``, ``make_subplots``, a named
template) costs 16-37 ms per figure on the project's 2-core machine, a dict-built one under 1 ms
(measured for the Inspect page's top-5 bars and gate heatmap), and a page draws up to a dozen
charts per rerun. So every builder in :mod:`dashboard.figures` writes plotly.js names exactly
(``marker=dict(color=...)``, ``title=dict(text=...)``, colorscales as lists, see :func:`colorscale`)
and goes through the helpers here; nothing checks them at build time, the unit tests do
(``go.Figure(fig.to_dict())`` validates each builder's output). Also here: the palette every page
shares. Builders take plain data and never call Streamlit.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import get_colorscale

PAIR_COLORS = {"se": "#d9480f", "vanilla": "#1c7ed6"}
"""Colours of the SE model and its vanilla counterpart, the same on every page."""
PALETTE = ("#1c7ed6", "#d9480f", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e64980", "#5c7cfa", "#82c91e",
           "#868e96")
FROZEN_COLOR = "#868e96"
"""Grey of a frozen SE block (gates that barely move across images)."""

_WHITE = pio.templates["plotly_white"].to_plotly_json()
WHITE_LAYOUT = {k: v for k, v in _WHITE["layout"].items() if k not in ("colorscale", "geo", "polar", "scene", "ternary")}
"""plotly_white's layout for 2-D charts as a plain dict: without its 3-D/polar/map parts and default
colorscales (give each heatmap its own), so a figure stays small."""
TEMPLATE = {"layout": WHITE_LAYOUT,
            "data": {**{k: _WHITE["data"][k] for k in ("bar", "histogram", "scatter")},
                     "heatmap": [{"type": "heatmap", "colorbar": {"outlinewidth": 0, "ticks": ""}}]}}
"""The template of every figure: plotly_white for 2-D charts, with its bar / histogram / scatter / heatmap
defaults (white bar outlines, error-bar colour, plain colour bars) but no default colorscale."""


def figure(data: Sequence[Mapping], layout: Mapping) -> go.Figure:
    """A figure from plotly.js trace and layout dicts, without plotly's per-property validation,
    drawn on :data:`TEMPLATE` unless ``layout`` names a template."""
    lay = dict(layout)
    lay.setdefault("template", TEMPLATE)
    return go.Figure({"data": [dict(t) for t in data], "layout": lay}, _validate=False)


def title(text: str) -> dict:
    """A plotly.js title object."""
    return {"text": text}


def merge(base: dict, extra: Mapping) -> dict:
    """``base`` updated by ``extra`` in place, nested dicts merged (what ``update_layout`` does)."""
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def chart_layout(title_text: str, x_title: str | None, y_title: str | None, height: int | None = None) -> dict:
    """The layout most charts share: left-aligned title, legend right of the plot, full hover names."""
    lay = {"margin": {"l": 60, "r": 10, "t": 50 if title_text else 20, "b": 50},
           "legend": {"orientation": "v", "yanchor": "top", "y": 1.0, "x": 1.02, "xanchor": "left"},
           "hoverlabel": {"namelength": -1}, "font": {"size": 13}, "xaxis": {}, "yaxis": {}}
    if title_text:
        lay["title"] = {"text": title_text, "x": 0.0, "xanchor": "left"}
    if height is not None:
        lay["height"] = height
    if x_title is not None:
        lay["xaxis"]["title"] = title(x_title)
    if y_title is not None:
        lay["yaxis"]["title"] = title(y_title)
    return lay


def hline(y: float, line: Mapping, text: str, position: str, font_color: str | None = None) -> tuple[dict, dict]:
    """(shape, annotation) of a horizontal line across the plot with a label, as ``add_hline`` makes them;
    ``position`` is e.g. ``'top left'`` or ``'bottom right'``."""
    vert, horiz = position.split()
    shape = {"type": "line", "x0": 0, "x1": 1, "xref": "x domain", "y0": y, "y1": y, "yref": "y", "line": dict(line)}
    note = {"showarrow": False, "text": text, "x": 0 if horiz == "left" else 1, "xanchor": horiz, "xref": "x domain",
            "y": y, "yanchor": "bottom" if vert == "top" else "top", "yref": "y"}
    if font_color is not None:
        note["font"] = {"color": font_color}
    return shape, note


def integer_ticks(values: Sequence) -> dict:
    """x-axis settings for whole-number ticks when ``values`` are integers (epochs): no 1.5 epochs."""
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").dropna()
    if len(v) and bool((v == v.round()).all()):
        span = float(v.max() - v.min())
        return {"tickformat": "d", "dtick": max(1, int(np.ceil(span / 10)))}
    return {}


@functools.lru_cache(maxsize=64)
def _grid(rows: int, cols: int, titles: tuple[str, ...], horizontal_spacing: float | None,
          vertical_spacing: float | None) -> dict:
    from plotly.subplots import make_subplots

    kw = {k: v for k, v in (("horizontal_spacing", horizontal_spacing), ("vertical_spacing", vertical_spacing))
          if v is not None}
    lay = make_subplots(rows=rows, cols=cols, subplot_titles=titles or None, **kw).layout.to_plotly_json()
    lay.pop("template", None)
    return lay


def grid(rows: int, cols: int, titles: Sequence[str] = (), *, horizontal_spacing: float | None = None,
         vertical_spacing: float | None = None) -> dict:
    """The axes (``xaxis``, ``xaxis2``, ...; row by row) and subplot-title annotations of a grid of plots,
    exactly as ``make_subplots`` lays them out; computed once per shape (it costs ~30 ms)."""
    return copy.deepcopy(_grid(rows, cols, tuple(titles), horizontal_spacing, vertical_spacing))


def cell_axes(i: int) -> dict:
    """``xaxis``/``yaxis`` names of the ``i``-th plot (0-based, row by row) of a :func:`grid`."""
    suffix = "" if i == 0 else str(i + 1)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


@functools.lru_cache(maxsize=32)
def _colorscale(name: str) -> tuple[tuple[float, str], ...]:
    return tuple((float(v), str(c)) for v, c in get_colorscale(name))


def colorscale(name: str) -> list[list]:
    """A named Plotly colorscale (``'Viridis'``, ``'RdBu_r'``, ...) as the explicit list plotly.js needs
    (plotly.js knows only some names, and no ``_r`` reversals)."""
    return [list(p) for p in _colorscale(name)]


def color_map(labels: Sequence[str], colors: Mapping[str, str] | None = None) -> dict[str, str]:
    """Stable colour per label: given ``colors`` first, then the palette in order of appearance."""
    out, i = {}, 0
    for lab in dict.fromkeys(labels):
        if colors and lab in colors:
            out[lab] = colors[lab]
        else:
            out[lab] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` with transparency, for bands."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


__all__ = ["FROZEN_COLOR", "PAIR_COLORS", "PALETTE", "TEMPLATE", "WHITE_LAYOUT", "cell_axes", "chart_layout",
           "color_map", "colorscale", "figure", "grid", "hline", "integer_ticks", "merge", "rgba", "title"]
