"""Plotly figure builders shared by all pages, and :func:`show`, which exports every chart as PNG or SVG.

Builders are pure (data in, ``go.Figure`` out; no Streamlit), so pages and tests reuse them.
:func:`show` draws a figure with the modebar's camera button set to the format picked in the
sidebar (:func:`export_format_picker`: PNG at 2x scale or SVG), all offline (no kaleido), and
can add a CSV download of the numbers behind the chart.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st
from plotly.colors import get_colorscale

from se_core.analysis.movement import FROZEN_SHARE, STILL_STD

PAIR_COLORS = {"se": "#d9480f", "vanilla": "#1c7ed6"}
"""Colours of the SE model and its vanilla counterpart, the same on every page."""
PALETTE = ("#1c7ed6", "#d9480f", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#e64980", "#5c7cfa", "#82c91e",
           "#868e96")
EXPORT_KEY = "chart_format"
EXPORT_FORMATS = ("png", "svg")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
WHITE_LAYOUT = {k: v for k, v in pio.templates["plotly_white"].layout.to_plotly_json().items()
                if k not in ("colorscale", "geo", "polar", "scene", "ternary")}
"""plotly_white's layout for 2-D charts as a plain dict, for :func:`fast_figure`: without its per-trace
styling, 3-D/polar/map parts and default colorscales (give each heatmap its own), so a figure stays small."""


def fast_figure(data: Sequence[Mapping], layout: Mapping) -> go.Figure:
    """A figure from plain plotly.js trace and layout dicts, built without plotly's per-property validation.

    Validated construction (``go.Bar(...)``, ``update_layout``, a template) costs 5-30 ms per figure, which
    dominates a page with a dozen charts; this costs well under 1 ms. So write plotly.js names exactly
    (``marker=dict(color=...)``, ``title=dict(text=...)``, colorscales as lists, see :func:`colorscale`):
    nothing here checks them (tests can: ``go.Figure(fig.to_dict())`` validates). The figure is drawn on
    plotly_white's layout (:data:`WHITE_LAYOUT`) unless ``layout`` names a template.
    """
    lay = dict(layout)
    lay.setdefault("template", {"layout": WHITE_LAYOUT})
    return go.Figure({"data": [dict(t) for t in data], "layout": lay}, _validate=False)


@functools.lru_cache(maxsize=32)
def _colorscale(name: str) -> tuple[tuple[float, str], ...]:
    return tuple((float(v), str(c)) for v, c in get_colorscale(name))


def colorscale(name: str) -> list[list]:
    """A named Plotly colorscale (``'Viridis'``, ``'RdBu_r'``, ...) as the explicit list plotly.js needs
    (plotly.js knows only some names, and no ``_r`` reversals)."""
    return [list(p) for p in _colorscale(name)]


def _new(data: go.Heatmap | None = None) -> go.Figure:
    """A figure on plotly_white from the start: a template given at construction replaces applying Plotly's
    default template first and plotly_white over it (same figure, ~2 ms less per chart)."""
    return go.Figure(data, layout={"template": "plotly_white"})


def _layout(fig: go.Figure, title: str, x_title: str | None, y_title: str | None, height: int | None = None) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.0, "xanchor": "left"} if title else None,
                      margin={"l": 60, "r": 10, "t": 50 if title else 20, "b": 50}, height=height,
                      legend={"orientation": "v", "yanchor": "top", "y": 1.0, "x": 1.02, "xanchor": "left"},
                      hoverlabel={"namelength": -1}, font={"size": 13})
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def _integer_x(fig: go.Figure, values: Sequence) -> go.Figure:
    """Whole-number ticks on the x axis when ``values`` are integers (epochs): no 1.5 epochs."""
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").dropna()
    if len(v) and bool((v == v.round()).all()):
        span = float(v.max() - v.min())
        fig.update_xaxes(tickformat="d", dtick=max(1, int(np.ceil(span / 10))))
    return fig


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


def line_curves(df: pd.DataFrame, x: str, y: str, color: str, *, dash: str | None = None, title: str = "",
                x_title: str | None = None, y_title: str | None = None, colors: Mapping[str, str] | None = None,
                markers: bool = True, height: int | None = None) -> go.Figure:
    """One line per value of ``color`` (and line style per value of ``dash``), e.g. curves per run."""
    fig = _new()
    cmap = color_map([str(v) for v in df[color]], colors) if len(df) else {}
    dashes = {v: _DASHES[i % len(_DASHES)] for i, v in enumerate(dict.fromkeys(df[dash]))} if dash and len(df) else {}
    groups = [color, dash] if dash else [color]
    for keys, g in df.groupby(groups, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        c = str(keys[0])
        name = c if not dash else f"{c} · {keys[1]}"
        g = g.sort_values(x)
        fig.add_trace(go.Scatter(x=g[x], y=g[y], name=name, legendgroup=c, mode="lines+markers" if markers else "lines",
                                 marker={"size": 5}, line={"color": cmap[c], "dash": dashes.get(keys[1]) if dash else "solid"}))
    if len(df):
        _integer_x(fig, df[x])
    return _layout(fig, title, x_title or x, y_title or y, height)


def band_curves(df: pd.DataFrame, x: str, y: str, err: str, color: str, *, title: str = "",
                x_title: str | None = None, y_title: str | None = None, colors: Mapping[str, str] | None = None,
                height: int | None = None) -> go.Figure:
    """Lines of ``y`` with a shaded band ``y ± err`` per value of ``color`` (e.g. gate mean ± std per block)."""
    fig = _new()
    cmap = color_map([str(v) for v in df[color]], colors) if len(df) else {}
    for c, g in df.groupby(color, sort=False):
        g = g.sort_values(x)
        col = cmap[str(c)]
        rgba = _rgba(col, 0.15)
        xs = list(g[x]) + list(g[x])[::-1]
        ys = list(g[y] + g[err]) + list(g[y] - g[err])[::-1]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=rgba, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, legendgroup=str(c)))
        fig.add_trace(go.Scatter(x=g[x], y=g[y], name=str(c), legendgroup=str(c), mode="lines+markers",
                                 marker={"size": 5}, line={"color": col},
                                 customdata=np.asarray(g[err]), hovertemplate="%{y:.4f} ± %{customdata:.4f}"))
    if len(df):
        _integer_x(fig, df[x])
    return _layout(fig, title, x_title or x, y_title or y, height)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def heatmap(z: np.ndarray | Sequence[Sequence[float]], x_labels: Sequence, y_labels: Sequence, *,
            zmin: float | None = None, zmax: float | None = None, zmid: float | None = None,
            colorscale: str = "Viridis", title: str = "", x_title: str | None = None, y_title: str | None = None,
            colorbar_title: str = "", height: int | None = None, hover: str = "%{y} · %{x}: %{z:.4f}") -> go.Figure:
    """A labelled heatmap (rows = ``y_labels``, columns = ``x_labels``), top row first."""
    fig = _new(go.Heatmap(z=np.asarray(z, dtype=float), x=list(x_labels), y=list(y_labels), zmin=zmin, zmax=zmax,
                          zmid=zmid, colorscale=colorscale, colorbar={"title": {"text": colorbar_title}},
                          hovertemplate=hover + "<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, x_title, y_title, height)


def bar_compare(df: pd.DataFrame, x: str, y: str, color: str, *, error: str | None = None, title: str = "",
                x_title: str | None = None, y_title: str | None = None, colors: Mapping[str, str] | None = None,
                barmode: str = "group", height: int | None = None, text_format: str | None = None,
                y_range: tuple[float, float] | None = None) -> go.Figure:
    """Grouped bars of ``y`` per ``x``, one bar series per ``color`` value, optional ± ``error`` whiskers.

    ``x`` keeps the order of the rows, even where the first series lacks some values; the series follow
    the categories of a categorical ``color`` column, else their first appearance."""
    fig = _new()
    cmap = color_map([str(v) for v in df[color]], colors) if len(df) else {}
    col = df[color]
    series = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else list(dict.fromkeys(col))
    for c in series:
        g = df[col == c]
        if g.empty:
            continue
        err = None
        if error is not None:
            e = g[error].astype(float)
            err = {"type": "data", "array": e.fillna(0).tolist(), "visible": bool(e.notna().any())}
        fig.add_trace(go.Bar(x=g[x], y=g[y], name=str(c), marker_color=cmap[str(c)], error_y=err,
                             texttemplate=text_format, textposition="outside" if text_format else None))
    fig.update_layout(barmode=barmode)
    fig.update_xaxes(categoryorder="array", categoryarray=list(dict.fromkeys(df[x])))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    return _layout(fig, title, x_title or x, y_title or y, height)


FROZEN_COLOR = "#868e96"


def gate_movement(frame: pd.DataFrame, *, title: str = "Gate movement per block", height: int | None = None) -> go.Figure:
    """Bars per SE block (depth order): the share of channels whose gate barely moves across images
    (``still_share`` of :meth:`ExcitationStats.movement_frame`), frozen blocks greyed, the frozen line dashed."""
    fig = _new()
    colors = [FROZEN_COLOR if f else PAIR_COLORS["se"] for f in frame["frozen"]]
    text = ["frozen" if f else "" for f in frame["frozen"]]
    fig.add_trace(go.Bar(x=frame["label"], y=frame["still_share"], marker={"color": colors}, text=text,
                         textposition="outside", customdata=np.stack([frame["site"], frame["median_std"]], axis=-1)
                         if len(frame) else None, name="still channels",
                         hovertemplate="%{customdata[0]}: %{y:.0%} of channels still, median std "
                                       "%{customdata[1]:.4f}<extra></extra>"))
    fig.add_hline(y=FROZEN_SHARE, line={"dash": "dash", "color": FROZEN_COLOR},
                  annotation_text=f"frozen above {FROZEN_SHARE:.0%}", annotation_position="top left")
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    fig.update_layout(meta={"chart": "gate_movement"}, showlegend=False)
    return _layout(fig, title, "block (stage.block, input → output)",
                   f"channels whose gate std across images < {STILL_STD}", height)


def seed_points(means: pd.DataFrame, points: pd.DataFrame, *, x: str, mean: str, std: str, n: str, y: str,
                colors: Sequence[str], point_info: Sequence[str] = ("seed",), ref_lines: Sequence[tuple] = (),
                title: str = "", x_title: str | None = None, y_title: str | None = None, unit: str = "%",
                height: int = 380) -> go.Figure:
    """Mean ± std per ``x`` (diamonds, one colour each) with every seed's value as a small dot.

    ``means`` has one row per ``x`` (columns ``mean``, ``std``, ``n``); ``points`` one row per seed
    (``x``, ``y`` and the ``point_info`` columns shown on hover, the first being the seed).
    ``ref_lines`` are ``(value, label, colour, annotation position)`` dotted horizontal lines.
    """
    fig = _new()
    fig.add_trace(go.Scatter(
        x=means[x], y=means[mean], mode="markers", name="mean ± std over seeds",
        marker={"symbol": "diamond", "size": 13, "color": list(colors)},
        error_y={"type": "data", "array": means[std].astype(float).fillna(0).tolist(), "visible": True},
        customdata=means[[n, std]].to_numpy(),
        hovertemplate=f"%{{x}}: %{{y:.2f}}{unit} ± %{{customdata[1]:.2f}} (%{{customdata[0]}} seeds)<extra></extra>"))
    extra = "".join(f", {c} %{{customdata[{i}]}}" for i, c in enumerate(point_info) if i)
    fig.add_trace(go.Scatter(
        x=points[x], y=points[y], mode="markers", name="single seeds",
        marker={"size": 6, "color": "rgba(0,0,0,0.45)"}, customdata=points[list(point_info)].to_numpy(),
        hovertemplate=f"%{{x}}, seed %{{customdata[0]}}: %{{y:.2f}}{unit}{extra}<extra></extra>"))
    for value, label, col, pos in ref_lines:
        fig.add_hline(y=float(value), line={"dash": "dot", "color": col, "width": 1}, annotation_text=label,
                      annotation_position=pos, annotation_font_color=col)
    fig.update_xaxes(type="category")
    _layout(fig, title, x_title or x, y_title or y, height)
    return fig.update_layout(legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"},
                             margin={"t": 80 if title else 40})


def histogram_stack(edges: Sequence[float] | Sequence[Sequence[float]], counts: Sequence[Sequence[float]],
                    labels: Sequence, *,
                    normalize: bool = True, title: str = "", x_title: str = "value", y_title: str | None = None,
                    colorscale: str = "Viridis", height: int | None = None) -> go.Figure:
    """Histograms (one row of bin ``counts`` per label, e.g. per epoch) drawn as overlaid step lines whose
    colour runs along ``colorscale`` in row order, so a distribution's evolution reads at a glance.

    ``edges``: one list of bin edges shared by all rows, or one list per row (ranges that change)."""
    from plotly.colors import sample_colorscale

    per_row = len(edges) > 0 and np.ndim(edges[0]) == 1
    if per_row and len(edges) != len(counts):
        raise ValueError(f"{len(edges)} edge lists for {len(counts)} histograms")
    fig = _new()
    n = len(counts)
    cols = sample_colorscale(colorscale, [i / max(1, n - 1) for i in range(n)]) if n else []
    for i, (row, lab) in enumerate(zip(counts, labels)):
        row = np.asarray(row, dtype=float)
        e = np.asarray(edges[i] if per_row else edges, dtype=float)
        if len(row) != len(e) - 1:
            raise ValueError(f"row {lab!r} has {len(row)} bins, edges define {len(e) - 1}")
        if normalize and row.sum() > 0:
            row = row / row.sum()
        xs = np.repeat(e, 2)[1:-1]
        ys = np.repeat(row, 2)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=str(lab), line={"color": cols[i], "width": 1.5},
                                 hovertemplate=f"{lab}: " + "%{x:.3f} → %{y:.4f}<extra></extra>"))
    return _layout(fig, title, x_title, y_title or ("fraction" if normalize else "count"), height)


def histogram_compare(values: Mapping[str, Sequence[float]], *, nbins: int = 40, title: str = "",
                      x_title: str = "value", colors: Mapping[str, str] | None = None,
                      height: int | None = None) -> go.Figure:
    """Overlaid, normalised histograms of raw values per group (e.g. SE vs vanilla)."""
    fig = _new()
    cmap = color_map(list(values), colors)
    for lab, v in values.items():
        fig.add_trace(go.Histogram(x=np.asarray(v, dtype=float), name=lab, nbinsx=nbins, histnorm="probability",
                                   opacity=0.6, marker_color=cmap[lab]))
    fig.update_layout(barmode="overlay")
    return _layout(fig, title, x_title, "fraction", height)


def export_format() -> str:
    """The format picked in the sidebar for chart downloads ('png' or 'svg')."""
    fmt = st.session_state.get(EXPORT_KEY, "png")
    return fmt if fmt in EXPORT_FORMATS else "png"


def export_format_picker() -> None:
    """Sidebar control for the format of every chart's camera (download) button."""
    st.radio("Chart download format", EXPORT_FORMATS, key=EXPORT_KEY, horizontal=True, format_func=str.upper,
             help="Format of the camera button in each chart's toolbar: PNG (2x scale) or SVG (vector, for papers).")


def plotly_config(filename: str, fmt: str | None = None) -> dict:
    """Plotly config: camera button downloads ``filename.png``/``.svg``; no logo; selection tools hidden."""
    fmt = fmt or export_format()
    return {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"],
            "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2 if fmt == "png" else 1}}


def show(fig: go.Figure, *, key: str, filename: str, data: pd.DataFrame | None = None) -> None:
    """Draw ``fig`` full width with PNG/SVG export; with ``data``, add a CSV download of its numbers."""
    filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", filename).strip("_") or "chart"
    st.plotly_chart(fig, width="stretch", theme=None, key=key, config=plotly_config(filename))
    if data is not None:
        download_csv(data, filename, key=f"{key}-csv")


def download_csv(df: pd.DataFrame, name: str, *, key: str | None = None, label: str = "Download CSV") -> None:
    """A download button for ``df`` as ``name.csv`` (no rerun on click)."""
    st.download_button(label, df.to_csv(index=False).encode("utf-8"), file_name=f"{name}.csv", mime="text/csv",
                       key=key or f"csv-{name}", on_click="ignore", icon=":material/download:")


__all__ = ["PAIR_COLORS", "PALETTE", "WHITE_LAYOUT", "band_curves", "bar_compare", "color_map", "colorscale",
           "download_csv", "export_format", "export_format_picker", "fast_figure", "heatmap", "histogram_compare",
           "histogram_stack", "line_curves", "plotly_config", "show"]
