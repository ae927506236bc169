"""Figures of the Attributions page: both models' maps over the image, their difference, and the
faithfulness (deletion / insertion) curves.

Built from a :class:`se_core.analysis.attribution.PairAttribution` and the image the models see, or a
table of curve points, in the dict style of :mod:`dashboard.figures.style` (a grid laid out as
``make_subplots`` would).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.style import FROZEN_COLOR, cell_axes, color_map, colorscale, figure, grid
from se_core.analysis.attribution import PairAttribution

_MARGIN = {"l": 10, "r": 10, "t": 70, "b": 10}


def _overlay(seen: np.ndarray, z: np.ndarray, raw: np.ndarray, name: str, i: int, opacity: float) -> list[dict]:
    """The image, and the map over it sharing the figure's colour axis, in plot ``i`` of the grid."""
    axes = cell_axes(i)
    return [dict(type="image", z=seen, hoverinfo="skip", name=f"{name} image", **axes),
            dict(type="heatmap", z=z, customdata=raw, name=name, coloraxis="coloraxis", opacity=opacity,
                 hovertemplate=f"{name}<br>x %{{x}}, y %{{y}}<br>scaled %{{z:.3f}}"
                               "<br>raw %{customdata:.3g}<extra></extra>", **axes)]


def _image_axes(lay: dict, cols: int) -> dict:
    """Bare image axes (no ticks or grid), y downwards, square pixels."""
    for c in range(1, cols + 1):
        suffix = "" if c == 1 else str(c)
        lay[f"xaxis{suffix}"].update(showticklabels=False, showgrid=False, zeroline=False)
        lay[f"yaxis{suffix}"].update(autorange="reversed", showticklabels=False, showgrid=False, zeroline=False,
                                     scaleanchor=f"x{suffix}")
    return lay


def pair_maps(res: PairAttribution, seen: np.ndarray, title: str, opacity: float,
              seen_vanilla: np.ndarray | None = None) -> go.Figure:
    """SE and vanilla maps over the image each model saw (``seen_vanilla``: the vanilla model's own view,
    when it had its own preprocessing), one colour axis (both maps lie in [-1, 1])."""
    signed = min(res.se_norm.min(), res.vanilla_norm.min()) < 0
    lay = grid(1, 2, ("SE model", "vanilla model"), horizontal_spacing=0.03)
    lay.update(coloraxis={"colorscale": colorscale("RdBu_r" if signed else "Inferno"), "cmin": -1.0 if signed else 0.0,
                          "cmax": 1.0, "colorbar": {"title": {"text": "map / max|map|"}}},
               title={"text": title, "x": 0.0}, margin=_MARGIN, height=380)
    traces = (_overlay(seen, res.se_norm, res.se.map, "SE", 0, opacity)
              + _overlay(seen if seen_vanilla is None else seen_vanilla, res.vanilla_norm, res.vanilla.map, "vanilla", 1,
                         opacity))
    return figure(traces, _image_axes(lay, 2))


def difference(res: PairAttribution, seen: np.ndarray, title: str, opacity: float) -> go.Figure:
    """Signed SE - vanilla of the scaled maps, diverging colours centred on 0."""
    m = float(np.abs(res.diff).max()) or 1.0
    lay = grid(1, 1)
    lay.update(coloraxis={"colorscale": colorscale("RdBu_r"), "cmin": -m, "cmax": m, "cmid": 0.0,
                          "colorbar": {"title": {"text": "difference"}}},
               title={"text": title, "x": 0.0}, margin=_MARGIN, height=380)
    traces = _overlay(seen, res.diff, res.se.map - res.vanilla.map, "SE − vanilla", 0, opacity)
    return figure(traces, _image_axes(lay, 1))


CURVE_CELLS = (("SE", "deletion"), ("vanilla", "deletion"), ("SE", "insertion"), ("vanilla", "insertion"))
"""(model, curve) of each plot of the faithfulness grid, row by row."""
_VERB = {"deletion": "removed", "insertion": "revealed"}


def faithfulness_curves(points: pd.DataFrame, title: str, reference: str = "Random order") -> go.Figure:
    """Deletion (top) and insertion (bottom) curves of the SE (left) and vanilla (right) model, one line per
    method, the ``reference`` method grey and dashed. ``points``: columns method, model, curve, fraction,
    probability, auc (the area is in each line's hover)."""
    lay = grid(2, 2, [f"{m} · {c} ({'lower' if c == 'deletion' else 'higher'} AUC is better)" for m, c in CURVE_CELLS],
               horizontal_spacing=0.08, vertical_spacing=0.14)
    lay.update(title={"text": title, "x": 0.0, "xanchor": "left"}, height=620, hoverlabel={"namelength": -1},
               margin={"l": 60, "r": 10, "t": 80, "b": 50},
               legend={"orientation": "v", "yanchor": "top", "y": 1.0, "x": 1.02, "xanchor": "left"})
    methods = list(dict.fromkeys(points["method"])) if len(points) else []
    colors = color_map(methods, {reference: FROZEN_COLOR})
    traces, legend = [], set()
    for i, (model, curve) in enumerate(CURVE_CELLS):
        suffix = "" if i == 0 else str(i + 1)
        lay[f"xaxis{suffix}"].update(title={"text": f"fraction of pixels {_VERB[curve]}"}, range=[0, 1])
        lay[f"yaxis{suffix}"].update(title={"text": "p(target)"}, range=[0, 1.02])
        for method in methods:
            sel = points[(points["method"] == method) & (points["model"] == model) & (points["curve"] == curve)]
            if sel.empty:
                continue
            auc = float(sel["auc"].iloc[0])
            line = {"color": colors[method], "width": 2, **({"dash": "dash"} if method == reference else {})}
            traces.append(dict(type="scatter", mode="lines", x=sel["fraction"].to_numpy(),
                               y=sel["probability"].to_numpy(), name=method, legendgroup=method, showlegend=method not in legend,
                               line=line, hovertemplate=f"{method} · {model} {curve}, AUC {auc:.3f}<br>"
                                                        "fraction %{x:.3f}<br>p %{y:.3f}<extra></extra>",
                               **cell_axes(i)))
            legend.add(method)
    return figure(traces, lay)


__all__ = ["difference", "faithfulness_curves", "pair_maps"]
