"""Figures of the Inspect page: top-5 bars, block x channel heatmaps, gates and z per block, energy, interventions.

Built from an :class:`se_core.analysis.inspect.InspectResult` (or an intervention result) in the
dict style of :mod:`dashboard.figures.style`; this page draws the most charts per rerun.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.style import PAIR_COLORS, colorscale, figure, title
from se_core.analysis import inspect as ops

SE_COLOR, VANILLA_COLOR = PAIR_COLORS["se"], PAIR_COLORS["vanilla"]
_MARGIN = dict(l=10, r=10, t=50, b=10)


def top5(result: ops.InspectResult, i: int) -> go.Figure:
    """Top-5 bars of image ``i``, SE left and vanilla right (two axes laid out by hand)."""
    traces, notes = [], []
    for k, (mp, color, lo, hi) in enumerate(((result.se, SE_COLOR, 0.0, 0.4), (result.vanilla, VANILLA_COLOR, 0.6, 1.0))):
        top, ax = mp.top[i], "" if k == 0 else "2"
        traces.append(dict(type="bar", x=np.asarray(top.probs[::-1], dtype=np.float64), y=list(top.classes[::-1]),
                           orientation="h", marker=dict(color=color), text=[f"{p:.1%}" for p in top.probs[::-1]],
                           textposition="auto", showlegend=False, name=f"{mp.role} ({mp.name})", xaxis=f"x{ax}",
                           yaxis=f"y{ax}", hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
        notes.append(dict(text=f"<b>{'SE' if k == 0 else 'vanilla'}</b>: {mp.name}", x=(lo + hi) / 2, y=1.0,
                          xref="paper", yref="paper", xanchor="center", yanchor="bottom", showarrow=False))
    axis = dict(range=[0, 1], tickformat=".0%")
    return figure(traces, dict(
        xaxis=dict(domain=[0.0, 0.4], **axis), xaxis2=dict(domain=[0.6, 1.0], **axis),
        yaxis2=dict(anchor="x2"), annotations=notes, height=230, margin=dict(l=10, r=10, t=40, b=10),
        meta={"chart": "top5", "image": result.names[i]}))


def block_heatmap(labels: list[str], matrix: np.ndarray, title_text: str, zlabel: str, chart: str, image: str,
                  bounded: bool = False) -> go.Figure:
    """Blocks x channels; gates on a fixed 0..1 Viridis scale, signed values (z) diverging around 0.
    Gray behind the cells, so NaN padding (narrower blocks) never looks like a value near 0."""
    finite = matrix[np.isfinite(matrix)]
    if bounded and finite.size and finite.min() >= 0 and finite.max() <= 1:
        scale = dict(zmin=0.0, zmax=1.0, colorscale=colorscale("Viridis"))
    elif finite.size and finite.min() < 0 < finite.max():
        scale = dict(zmid=0.0, colorscale=colorscale("RdBu_r"))
    else:
        scale = dict(colorscale=colorscale("Viridis"))
    trace = dict(type="heatmap", z=matrix, y=list(labels), x=np.arange(matrix.shape[1]),
                 colorbar=dict(title=title(zlabel)), hoverongaps=False,
                 hovertemplate="block %{y}<br>channel %{x}<br>" + zlabel + " = %{z:.4f}<extra></extra>", **scale)
    return figure([trace], dict(
        yaxis=dict(autorange="reversed", title=title("block (stage.block)"), type="category", showgrid=False),
        xaxis=dict(title=title("channel"), showgrid=False), plot_bgcolor="#dee2e6",
        title=title(title_text), height=120 + 28 * len(labels), margin=_MARGIN, meta={"chart": chart, "image": image}))


def gate_box(result: ops.InspectResult) -> go.Figure:
    """Distribution of the gates over channels per block, one box series per image."""
    traces = []
    sites = result.se.gate_sites
    for i, name in enumerate(result.names):
        vals = [result.se.s[st_.name][i] for st_ in sites]
        xs = np.repeat(np.array([st_.label for st_ in sites], dtype=str), [len(v) for v in vals])
        ys = np.concatenate(vals).astype(np.float64) if vals else np.zeros(0)
        traces.append(dict(type="box", x=xs, y=ys, name=name, boxpoints=False))
    return figure(traces, dict(
        boxmode="group", title=title("Distribution of the gates s over channels, per block"),
        xaxis=dict(title=title("block (stage.block)")), yaxis=dict(title=title("s")), height=380,
        margin=_MARGIN, meta={"chart": "gate_box"}, legend=dict(title=title("image"))))


def compare_images(result: ops.InspectResult, site: str, what: str, title_text: str) -> go.Figure:
    """Gates (``what='s'``) or squeeze values (``'z'``) of every image at one block, one line each."""
    data = result.se.s if what == "s" else result.se.z
    traces = [dict(type="scatter", x=np.arange(data[site].shape[1]), y=data[site][i], mode="lines", name=name)
              for i, name in enumerate(result.names)]
    return figure(traces, dict(
        title=title(title_text), xaxis=dict(title=title("channel")), yaxis=dict(title=title(what)), height=340,
        margin=_MARGIN, meta={"chart": f"compare_{what}", "site": site}, legend=dict(title=title("image"))))


def z_pair(result: ops.InspectResult, site: str, i: int) -> go.Figure:
    """Squeeze descriptor z of image ``i`` at one block, SE and vanilla side by side where the twin has it."""
    z_se = result.se.z[site][i]
    traces = [dict(type="bar", x=np.arange(len(z_se)), y=z_se, name=f"SE ({result.se.name})",
                   marker=dict(color=SE_COLOR))]
    van = result.vanilla_site(site)
    if van is not None and van in result.vanilla.z:
        z_v = result.vanilla.z[van][i]
        traces.append(dict(type="bar", x=np.arange(len(z_v)), y=z_v, name=f"vanilla ({result.vanilla.name})",
                           marker=dict(color=VANILLA_COLOR)))
    return figure(traces, dict(
        barmode="group", title=title(f"Squeeze descriptor z at {result.se.site(site).label}, {result.names[i]}"),
        xaxis=dict(title=title("channel")), yaxis=dict(title=title("z (channel mean)")), height=340,
        margin=_MARGIN, meta={"chart": "z_block", "site": site}))


def energy(mp: ops.ModelProbe, site: str, i: int, image: str) -> go.Figure:
    """Channel energy mean(x²) entering and leaving the SE unit at one block."""
    before, after = mp.energy_before[site][i], mp.energy_after[site][i]
    ch = np.arange(len(before))
    return figure([
        dict(type="bar", x=ch, y=before, name="before SE (unit input)", marker=dict(color="#7f7f7f")),
        dict(type="bar", x=ch, y=after, name="after SE (recalibrated)", marker=dict(color=SE_COLOR)),
    ], dict(barmode="group", title=title(f"Channel energy mean(x²) at {mp.site(site).label}, {image}"),
            xaxis=dict(title=title("channel")), yaxis=dict(title=title("mean over H×W of x²")), height=360,
            margin=_MARGIN, meta={"chart": "energy", "site": site}))


def intervention(iv: ops.InterventionResult, i: int) -> go.Figure:
    """The SE model's probabilities on image ``i``, original vs with the chosen gates changed."""
    a, b = iv.original, iv.changed
    classes = list(dict.fromkeys(a.top[i].classes + b.top[i].classes))
    idx = [a.class_names.index(c) for c in classes]
    return figure([
        dict(type="bar", x=classes, y=a.probs[i, idx], name="original", marker=dict(color=SE_COLOR)),
        dict(type="bar", x=classes, y=b.probs[i, idx], name=iv.plan_label, marker=dict(color="#adb5bd")),
    ], dict(barmode="group", title=title(f"SE model on {iv.names[i]}: original vs {iv.plan_label}"),
            yaxis=dict(title=title("probability"), tickformat=".0%"), height=340, margin=_MARGIN,
            meta={"chart": "intervention", "image": iv.names[i]}))


__all__ = ["block_heatmap", "compare_images", "energy", "gate_box", "intervention", "top5", "z_pair"]
