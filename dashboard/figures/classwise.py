"""Figures of the Class-wise page: paper Fig. 6 (class means per channel), Fig. 7 (median and IQR),
selectivity vs depth, squeeze z of both models, and the knock-out bars.

Built from :class:`se_core.analysis.stats.ExcitationStats` and the page's tables, in the dict style of
:mod:`dashboard.figures.style`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.common import band_curves, bar_compare
from dashboard.figures.style import PAIR_COLORS, PALETTE, cell_axes, figure, grid, merge, title
from se_core.analysis import stats as S


def _layout(title_text: str, x: str, y: str, height: int = 380) -> dict:
    return {"title": {"text": title_text, "x": 0.0}, "height": height, "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
            "xaxis": {"title": title(x)}, "yaxis": {"title": title(y)},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0.0}}


def _class_colors(classes: list[str]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}


def fig6_block(stats: S.ExcitationStats, site: str, classes: list[str]) -> go.Figure:
    """Mean gate per channel at one block for the chosen classes, plus the all-class mean."""
    info = stats.site(site)
    mean = stats.class_mean(site)
    ch = np.arange(info.channels)
    colors = _class_colors(classes)
    traces = [dict(type="scatter", x=ch, y=mean[stats.classes.index(cls)], mode="lines", name=cls,
                   line={"color": colors[cls], "width": 1.5}) for cls in classes]
    traces.append(dict(type="scatter", x=ch, y=stats.mean(site), mode="lines", name="all classes",
                       line={"color": "#000", "dash": "dash", "width": 2.5}))
    lay = _layout(f"Mean excitation per channel at {info.label} ({site})", "channel", "mean gate s")
    lay["meta"] = {"chart": "fig6", "site": site}
    if info.gate and info.hi - info.lo <= 2:
        lay["yaxis"]["range"] = [info.lo, info.hi]
    return figure(traces, lay)


def fig6_all(stats: S.ExcitationStats, classes: list[str], cols: int = 3) -> go.Figure:
    """Small multiples of :func:`fig6_block`, one panel per SE block in depth order."""
    sites = stats.gate_sites
    rows = math.ceil(len(sites) / cols)
    colors = _class_colors(classes)
    traces = []
    for i, info in enumerate(sites):
        mean = stats.class_mean(info.name)
        ch = np.arange(info.channels)
        axes = cell_axes(i)
        for cls in classes:
            traces.append(dict(type="scatter", x=ch, y=mean[stats.classes.index(cls)], mode="lines", name=cls,
                               legendgroup=cls, showlegend=i == 0, line={"color": colors[cls], "width": 1.2}, **axes))
        traces.append(dict(type="scatter", x=ch, y=stats.mean(info.name), mode="lines", name="all classes",
                           legendgroup="all", showlegend=i == 0, line={"color": "#000", "dash": "dash", "width": 2},
                           **axes))
    lay = grid(rows, cols, [s.label for s in sites], vertical_spacing=0.12 / max(rows, 1) * 3)
    merge(lay, _layout("Mean excitation per channel, every SE block", "", "", height=260 * rows + 80))
    lay["meta"] = {"chart": "fig6_all"}
    return figure(traces, lay)


def fig7_block(stats: S.ExcitationStats, site: str, cls: str) -> go.Figure:
    """Median and IQR of each channel's gate for one class at one block; all-class median for reference."""
    info = stats.site(site)
    k = stats.classes.index(cls)
    q1, med, q3 = (stats.quantile(site, q)[k] for q in (0.25, 0.5, 0.75))
    ch = np.arange(info.channels)
    traces = [
        dict(type="scatter", x=ch, y=q3, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip", name="Q3"),
        dict(type="scatter", x=ch, y=q1, mode="lines", line={"width": 0}, fill="tonexty",
             fillcolor="rgba(217,72,15,0.2)", name="IQR (Q1-Q3)"),
        dict(type="scatter", x=ch, y=med, mode="lines+markers", marker={"size": 3}, line={"color": PAIR_COLORS["se"]},
             name=f"median, {cls}"),
        dict(type="scatter", x=ch, y=stats.median(site, per_class=False), mode="lines",
             line={"color": "#555", "dash": "dot"}, name="median, all classes")]
    lay = _layout(f"{cls}: median and IQR of each channel's gate at {info.label}", "channel", "gate s", 340)
    lay["meta"] = {"chart": "fig7", "site": site, "class": cls}
    if info.hi - info.lo <= 2:
        lay["yaxis"]["range"] = [info.lo, info.hi]
    return figure(traces, lay)


_SELECTIVITY_STYLES = {"gates s (SE)": ({"color": PAIR_COLORS["se"], "width": 3}, "circle"),
                       "squeeze z (SE)": ({"color": PAIR_COLORS["se"], "dash": "dot"}, "square"),
                       "squeeze z (vanilla)": ({"color": PAIR_COLORS["vanilla"], "dash": "dot"}, "diamond")}


def selectivity(data: pd.DataFrame) -> go.Figure:
    """Mean eta² per block vs depth, one line per ``series`` of ``data`` (the rows of
    :func:`dashboard.excitation.selectivity_frame`); ticks at the SE model's blocks."""
    ticks = data[data["series"] == "squeeze z (SE)"]
    traces = []
    for series, g in data.groupby("series", sort=False):
        line, symbol = _SELECTIVITY_STYLES.get(series, ({}, "circle"))
        traces.append(dict(type="scatter", x=np.asarray(g["depth"]), y=np.asarray(g["selectivity"]),
                           mode="lines+markers", name=series, line=line, marker={"symbol": symbol, "size": 8},
                           customdata=np.asarray(g["label"]),
                           hovertemplate="%{customdata}: %{y:.4f}<extra>" + series + "</extra>"))
    lay = _layout("Class selectivity per block vs depth (mean eta² over channels)", "block (stage.block, input → output)",
                  "eta² = between-class share of variance")
    lay["xaxis"].update(tickmode="array", tickvals=list(ticks["depth"]), ticktext=list(ticks["label"]))
    lay["yaxis"]["rangemode"] = "tozero"
    lay["meta"] = {"chart": "selectivity"}
    return figure(traces, lay)


def z_block(zdf: pd.DataFrame, site: str, label: str) -> go.Figure:
    """Squeeze z per channel at one block, mean ± std over all images, per model (rows of ``zdf``)."""
    return band_curves(zdf, "channel", "mean", "std", "model", colors={"SE": PAIR_COLORS["se"],
                                                                       "vanilla": PAIR_COLORS["vanilla"]},
                       title=f"Squeeze z per channel at {label}: mean ± std over all images",
                       x_title="channel", y_title="z (channel mean of the SE unit's input)",
                       layout={"meta": {"chart": "z_block", "site": site}})


def knockout(df: pd.DataFrame) -> go.Figure:
    """Top-1 change per knocked-out target (block, stage, all) and mode, from a knock-out table."""
    d = df[df["kind"] != "baseline"]
    return bar_compare(d, "target", "delta", "mode", title="Top-1 change when SE blocks are knocked out",
                       x_title="knocked-out blocks", y_title="Δ top-1 vs unmodified model (points)",
                       colors={"off": PAIR_COLORS["se"], "mean": PAIR_COLORS["vanilla"]}, text_format="%{y:.2f}",
                       layout={"xaxis": {"type": "category", "categoryorder": "array",
                                         "categoryarray": list(dict.fromkeys(d["target"]))},
                               "meta": {"chart": "knockout"}})


__all__ = ["fig6_all", "fig6_block", "fig7_block", "knockout", "selectivity", "z_block"]
