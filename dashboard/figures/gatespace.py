"""Figures of the Gate space page: the 2-D map of images' gate vectors, the classes' top-channel overlap,
and input dependence against depth. Plain data in (arrays and the tables of :mod:`se_core.analysis.gates`),
a figure out, in the dict style of :mod:`dashboard.figures.style`."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.style import FROZEN_COLOR, PALETTE, chart_layout, colorscale, figure, rgba

PARTS = (("static_share", "static: the same for every image", "#adb5bd"),
         ("between_share", "between classes", "#d9480f"),
         ("within_share", "between images of one class", "#1c7ed6"))
"""The three parts of a block's variance (se_core.analysis.gates.dependence), bottom up."""


def _class_color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def gate_map(coords: np.ndarray, labels: np.ndarray, classes: Sequence[str], centroids: np.ndarray,
             explained: np.ndarray, ids: np.ndarray, *, title_text: str, site: str, what: str) -> go.Figure:
    """Images as points in the first two principal components (one trace per class; ``customdata`` = the
    image's row in the sample, for selections), class centroids as crosses. Dragging selects a box."""
    traces = []
    for k, cls in enumerate(classes):
        rows = labels == k
        if not rows.any():
            continue
        traces.append(dict(type="scatter", mode="markers", name=cls, x=coords[rows, 0], y=coords[rows, 1],
                           customdata=ids[rows], marker={"size": 6, "opacity": 0.65, "color": _class_color(k)},
                           hovertemplate=f"{cls}<br>image %{{customdata}}<br>(%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
    present = [k for k in range(len(classes)) if np.isfinite(centroids[k]).all()]
    traces.append(dict(type="scatter", mode="markers+text", name="class centroids",
                       x=centroids[present, 0], y=centroids[present, 1], text=[classes[k] for k in present],
                       textposition="top center", customdata=[-1] * len(present), hoverinfo="text",
                       marker={"symbol": "x", "size": 14, "color": [_class_color(k) for k in present],
                               "line": {"width": 2, "color": "#000"}}))
    lay = chart_layout(title_text, f"PC1 ({explained[0]:.1%} of the variance)",
                       f"PC2 ({explained[1]:.1%} of the variance)", height=520)
    lay.update(dragmode="select", clickmode="event+select", meta={"chart": "gate_map", "site": site, "what": what})
    return figure(traces, lay)


def jaccard(matrix: np.ndarray, classes: Sequence[str], *, title_text: str, site: str, k: int) -> go.Figure:
    """Class x class Jaccard index of the classes' top-k channel sets."""
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in matrix]
    trace = dict(type="heatmap", z=matrix, x=list(classes), y=list(classes), zmin=0, zmax=1, text=text,
                 texttemplate="%{text}", colorscale=colorscale("Blues"), colorbar={"title": {"text": "Jaccard"}},
                 hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>")
    lay = chart_layout(title_text, None, None, height=460)
    lay["yaxis"]["autorange"] = "reversed"
    lay["meta"] = {"chart": "jaccard", "site": site, "k": k}
    return figure([trace], lay)


def top_channels(score: np.ndarray, member: np.ndarray, classes: Sequence[str], channels: Sequence[int], *,
                 title_text: str, site: str, score_name: str) -> go.Figure:
    """Score (class mean relative to all classes) of the channels in any class's top k; dots mark membership."""
    lim = float(np.nanmax(np.abs(score))) if score.size and np.isfinite(score).any() else 1.0
    trace = dict(type="heatmap", z=score, x=[str(c) for c in channels], y=list(classes), zmid=0, zmin=-lim, zmax=lim,
                 text=[["●" if m else "" for m in row] for row in member], texttemplate="%{text}",
                 colorscale=colorscale("RdBu_r"), colorbar={"title": {"text": score_name}},
                 hovertemplate="%{y}, channel %{x}: %{z:.4f}<extra></extra>")
    lay = chart_layout(title_text, "channel", None, height=420)
    lay["xaxis"]["type"] = "category"
    lay["yaxis"]["autorange"] = "reversed"
    lay["meta"] = {"chart": "top_channels", "site": site}
    return figure([trace], lay)


def variance_split(frame: pd.DataFrame, *, title_text: str) -> go.Figure:
    """Stacked shares of a block's variance per block (depth order): static, between classes, within a class."""
    traces = [dict(type="bar", name=name, x=list(frame["label"]), y=np.asarray(frame[col]), marker={"color": color},
                   hovertemplate=f"%{{x}}: %{{y:.1%}} {name}<extra></extra>") for col, name, color in PARTS]
    lay = chart_layout(title_text, "block (depth order)", "share of the block's variance", height=400)
    lay.update(barmode="stack", meta={"chart": "variance_split"})
    lay["yaxis"].update(range=[0, 1], tickformat=".0%")
    return figure(traces, lay)


def input_vs_depth(table: pd.DataFrame, *, title_text: str = "Input dependence against depth",
                   chart: str = "input_vs_depth") -> go.Figure:
    """Per series, the share of variance that depends on the image (solid) and on the class (dotted) vs depth
    (blocks in the order of ``depth``, so series with fewer blocks, SE in some stages only, line up)."""
    traces = []
    for i, (series, g) in enumerate(table.groupby("series", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        for col, dash, part in (("input_share", "solid", "input-dependent"), ("between_share", "dot", "between classes")):
            traces.append(dict(type="scatter", mode="lines+markers", x=list(g["label"]), y=np.asarray(g[col]),
                               name=f"{series}: {part}", legendgroup=series, line={"color": color, "dash": dash},
                               hovertemplate=f"{series}<br>%{{x}}: %{{y:.1%}} {part}<extra></extra>"))
    lay = chart_layout(title_text, "block (depth order)", "share of the block's variance", 420)
    lay["yaxis"].update(range=[0, 1], tickformat=".0%")
    lay["xaxis"].update(type="category", categoryorder="array", categoryarray=block_order(table))
    lay["meta"] = {"chart": chart}
    return figure(traces, lay)


def block_order(table: pd.DataFrame) -> list[str]:
    """The blocks' labels of a per-block table, in depth order, each once."""
    if "depth" not in table:
        return list(dict.fromkeys(table["label"]))
    return list(dict.fromkeys(table.sort_values("depth", kind="stable")["label"]))


def spread_vs_depth(frame: pd.DataFrame, *, title_text: str, threshold: float) -> go.Figure:
    """Per-image spread of the gates (median and quartiles of each image's RMS distance from the mean gate)
    against depth; frozen blocks in grey, the still threshold dashed."""
    x = list(frame["label"])
    color = PALETTE[1]
    band = dict(type="scatter", x=x + x[::-1], y=list(frame["spread_q3"]) + list(frame["spread_q1"])[::-1],
                fill="toself", fillcolor=rgba(color, 0.2), line={"width": 0}, hoverinfo="skip", name="quartiles")
    med = dict(type="scatter", mode="lines+markers", x=x, y=np.asarray(frame["spread_median"]), name="median image",
               line={"color": color},
               marker={"size": 9, "color": [FROZEN_COLOR if f else color for f in frame["frozen"]]},
               text=["frozen" if f else "" for f in frame["frozen"]],
               hovertemplate="%{x}: %{y:.4f} %{text}<extra></extra>")
    lay = chart_layout(title_text, "block (depth order)", "RMS distance of an image's gate from the mean gate", 400)
    lay["shapes"] = [{"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "y0": threshold, "y1": threshold,
                      "line": {"dash": "dash", "color": FROZEN_COLOR}}]
    lay["meta"] = {"chart": "gate_spread"}
    return figure([band, med], lay)


__all__ = ["PARTS", "gate_map", "input_vs_depth", "jaccard", "spread_vs_depth", "top_channels", "variance_split"]
