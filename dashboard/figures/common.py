"""Chart types more than one page draws: bands, grouped bars, gate movement, seeds with their mean.

Pure builders (plain data in, figure out) in the one style of :mod:`dashboard.figures.style`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.style import FROZEN_COLOR, PAIR_COLORS, chart_layout, color_map, figure, hline, integer_ticks, merge, rgba
from se_core.analysis.movement import FROZEN_SHARE, STILL_STD


def band_curves(df: pd.DataFrame, x: str, y: str, err: str, color: str, *, title: str = "",
                x_title: str | None = None, y_title: str | None = None, colors: Mapping[str, str] | None = None,
                height: int | None = None, layout: Mapping | None = None) -> go.Figure:
    """Lines of ``y`` with a shaded band ``y ± err`` per value of ``color`` (e.g. gate mean ± std per block);
    ``layout`` is merged over the chart's own."""
    cmap = color_map([str(v) for v in df[color]], colors) if len(df) else {}
    traces = []
    for c, g in df.groupby(color, sort=False):
        g = g.sort_values(x)
        col = cmap[str(c)]
        xs = list(g[x]) + list(g[x])[::-1]
        ys = list(g[y] + g[err]) + list(g[y] - g[err])[::-1]
        traces.append(dict(type="scatter", x=xs, y=ys, mode="lines", fill="toself", fillcolor=rgba(col, 0.15),
                           line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=str(c)))
        traces.append(dict(type="scatter", x=np.asarray(g[x]), y=np.asarray(g[y]), name=str(c), legendgroup=str(c),
                           mode="lines+markers", marker={"size": 5}, line={"color": col},
                           customdata=np.asarray(g[err]), hovertemplate="%{y:.4f} ± %{customdata:.4f}"))
    lay = chart_layout(title, x_title or x, y_title or y, height)
    if len(df):
        lay["xaxis"].update(integer_ticks(df[x]))
    return figure(traces, merge(lay, layout or {}))


def bar_compare(df: pd.DataFrame, x: str, y: str, color: str, *, error: str | None = None, title: str = "",
                x_title: str | None = None, y_title: str | None = None, colors: Mapping[str, str] | None = None,
                barmode: str = "group", height: int | None = None, text_format: str | None = None,
                y_range: tuple[float, float] | None = None, layout: Mapping | None = None) -> go.Figure:
    """Grouped bars of ``y`` per ``x``, one bar series per ``color`` value, optional ± ``error`` whiskers.

    ``x`` keeps the order of the rows, even where the first series lacks some values; the series follow
    the categories of a categorical ``color`` column, else their first appearance. ``layout`` is merged
    over the chart's own (e.g. ``{"xaxis": {"type": "category"}}``)."""
    cmap = color_map([str(v) for v in df[color]], colors) if len(df) else {}
    col = df[color]
    series = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else list(dict.fromkeys(col))
    traces = []
    for c in series:
        g = df[col == c]
        if g.empty:
            continue
        bar = dict(type="bar", x=np.asarray(g[x]), y=np.asarray(g[y]), name=str(c), marker={"color": cmap[str(c)]})
        if error is not None:
            e = g[error].astype(float)
            bar["error_y"] = {"type": "data", "array": e.fillna(0).tolist(), "visible": bool(e.notna().any())}
        if text_format:
            bar.update(texttemplate=text_format, textposition="outside")
        traces.append(bar)
    lay = chart_layout(title, x_title or x, y_title or y, height)
    lay["barmode"] = barmode
    lay["xaxis"].update(categoryorder="array", categoryarray=list(dict.fromkeys(df[x])))
    if y_range is not None:
        lay["yaxis"]["range"] = list(y_range)
    return figure(traces, merge(lay, layout or {}))


def gate_movement(frame: pd.DataFrame, *, title: str = "Gate movement per block", height: int | None = None) -> go.Figure:
    """Bars per SE block (depth order): the share of channels whose gate barely moves across images
    (``still_share`` of :meth:`ExcitationStats.movement_frame`), frozen blocks greyed, the frozen line dashed."""
    bar = dict(type="bar", x=np.asarray(frame["label"]), y=np.asarray(frame["still_share"]),
               marker={"color": [FROZEN_COLOR if f else PAIR_COLORS["se"] for f in frame["frozen"]]},
               text=["frozen" if f else "" for f in frame["frozen"]], textposition="outside", name="still channels",
               hovertemplate="%{customdata[0]}: %{y:.0%} of channels still, median std "
                             "%{customdata[1]:.4f}<extra></extra>")
    if len(frame):
        bar["customdata"] = np.stack([frame["site"], frame["median_std"]], axis=-1)
    shape, note = hline(FROZEN_SHARE, {"dash": "dash", "color": FROZEN_COLOR}, f"frozen above {FROZEN_SHARE:.0%}",
                        "top left")
    lay = chart_layout(title, "block (stage.block, input → output)",
                       f"channels whose gate std across images < {STILL_STD}", height)
    lay["yaxis"].update(range=[0, 1.1], tickformat=".0%")
    lay.update(shapes=[shape], annotations=[note], meta={"chart": "gate_movement"}, showlegend=False)
    return figure([bar], lay)


def seed_points(means: pd.DataFrame, points: pd.DataFrame, *, x: str, mean: str, std: str, n: str, y: str,
                colors: Sequence[str], point_info: Sequence[str] = ("seed",), ref_lines: Sequence[tuple] = (),
                title: str = "", x_title: str | None = None, y_title: str | None = None, unit: str = "%",
                height: int = 380) -> go.Figure:
    """Mean ± std per ``x`` (diamonds, one colour each) with every seed's value as a small dot.

    ``means`` has one row per ``x`` (columns ``mean``, ``std``, ``n``); ``points`` one row per seed
    (``x``, ``y`` and the ``point_info`` columns shown on hover, the first being the seed).
    ``ref_lines`` are ``(value, label, colour, annotation position)`` dotted horizontal lines.
    """
    extra = "".join(f", {c} %{{customdata[{i}]}}" for i, c in enumerate(point_info) if i)
    traces = [
        dict(type="scatter", x=np.asarray(means[x]), y=np.asarray(means[mean]), mode="markers",
             name="mean ± std over seeds", marker={"symbol": "diamond", "size": 13, "color": list(colors)},
             error_y={"type": "data", "array": means[std].astype(float).fillna(0).tolist(), "visible": True},
             customdata=means[[n, std]].to_numpy(),
             hovertemplate=f"%{{x}}: %{{y:.2f}}{unit} ± %{{customdata[1]:.2f}} (%{{customdata[0]}} seeds)<extra></extra>"),
        dict(type="scatter", x=np.asarray(points[x]), y=np.asarray(points[y]), mode="markers", name="single seeds",
             marker={"size": 6, "color": "rgba(0,0,0,0.45)"}, customdata=points[list(point_info)].to_numpy(),
             hovertemplate=f"%{{x}}, seed %{{customdata[0]}}: %{{y:.2f}}{unit}{extra}<extra></extra>")]
    lines = [hline(float(value), {"dash": "dot", "color": col, "width": 1}, label, pos, font_color=col)
             for value, label, col, pos in ref_lines]
    lay = chart_layout(title, x_title or x, y_title or y, height)
    lay["xaxis"]["type"] = "category"
    lay["legend"] = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "xanchor": "left"}
    lay["margin"]["t"] = 80 if title else 40
    if lines:
        lay.update(shapes=[s for s, _ in lines], annotations=[a for _, a in lines])
    return figure(traces, lay)


def histogram_compare(values: Mapping[str, Sequence[float]], *, nbins: int = 40, title: str = "",
                      x_title: str = "value", colors: Mapping[str, str] | None = None,
                      height: int | None = None) -> go.Figure:
    """Overlaid, normalised histograms of raw values per group (e.g. SE vs vanilla)."""
    cmap = color_map(list(values), colors)
    traces = [dict(type="histogram", x=np.asarray(v, dtype=float), name=lab, nbinsx=nbins, histnorm="probability",
                   opacity=0.6, marker={"color": cmap[lab]}) for lab, v in values.items()]
    lay = chart_layout(title, x_title, "fraction", height)
    lay["barmode"] = "overlay"
    return figure(traces, lay)


__all__ = ["band_curves", "bar_compare", "gate_movement", "histogram_compare", "seed_points"]
