"""Figures of the Attributions page: both models' maps over the image, and their difference.

Built from a :class:`se_core.analysis.attribution.PairAttribution` and the image the models see, in the
dict style of :mod:`dashboard.figures.style` (a grid laid out as ``make_subplots`` would).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.style import cell_axes, colorscale, figure, grid
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


__all__ = ["difference", "pair_maps"]
