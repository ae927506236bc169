"""Figures of the Models page: registry costs, training curves, gates during training, results per seed and class.

Built from the tables of :mod:`se_core.models.costs` and :mod:`se_core.runs.history`, in the dict style of
:mod:`dashboard.figures.style`; the chart types shared with other pages are in :mod:`.common`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from dashboard.figures.common import band_curves, bar_compare, seed_points
from dashboard.figures.style import PAIR_COLORS, PALETTE, chart_layout, color_map, figure, integer_ticks
from dashboard.figures.style import colorscale as named_colorscale
from se_core.analysis.movement import FROZEN_SHARE, STILL_STD

_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
_SE_VANILLA = {"SE": PAIR_COLORS["se"], "vanilla": PAIR_COLORS["vanilla"]}


def line_curves(df: pd.DataFrame, x: str, y: str, color: str, *, dash: str | None = None, title: str = "",
                x_title: str | None = None, y_title: str | None = None, colors: Mapping[str, str] | None = None,
                markers: bool = True, height: int | None = None) -> go.Figure:
    """One line per value of ``color`` (and line style per value of ``dash``), e.g. curves per run."""
    cmap = color_map([str(v) for v in df[color]], colors) if len(df) else {}
    dashes = {v: _DASHES[i % len(_DASHES)] for i, v in enumerate(dict.fromkeys(df[dash]))} if dash and len(df) else {}
    traces = []
    for keys, g in df.groupby([color, dash] if dash else [color], sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        c = str(keys[0])
        g = g.sort_values(x)
        traces.append(dict(type="scatter", x=np.asarray(g[x]), y=np.asarray(g[y]), name=c if not dash else f"{c} · {keys[1]}",
                           legendgroup=c, mode="lines+markers" if markers else "lines", marker={"size": 5},
                           line={"color": cmap[c], "dash": dashes.get(keys[1]) if dash else "solid"}))
    lay = chart_layout(title, x_title or x, y_title or y, height)
    if len(df):
        lay["xaxis"].update(integer_ticks(df[x]))
    return figure(traces, lay)


def heatmap(z: np.ndarray | Sequence[Sequence[float]], x_labels: Sequence, y_labels: Sequence, *,
            zmin: float | None = None, zmax: float | None = None, zmid: float | None = None,
            colorscale: str = "Viridis", title: str = "", x_title: str | None = None, y_title: str | None = None,
            colorbar_title: str = "", height: int | None = None, hover: str = "%{y} · %{x}: %{z:.4f}") -> go.Figure:
    """A labelled heatmap (rows = ``y_labels``, columns = ``x_labels``), top row first."""
    trace = dict(type="heatmap", z=np.asarray(z, dtype=float), x=list(x_labels), y=list(y_labels),
                 colorscale=named_colorscale(colorscale), colorbar={"title": {"text": colorbar_title}},
                 hovertemplate=hover + "<extra></extra>")
    trace.update({k: v for k, v in (("zmin", zmin), ("zmax", zmax), ("zmid", zmid)) if v is not None})
    lay = chart_layout(title, x_title, y_title, height)
    lay["yaxis"]["autorange"] = "reversed"
    return figure([trace], lay)


def histogram_stack(edges: Sequence[float] | Sequence[Sequence[float]], counts: Sequence[Sequence[float]],
                    labels: Sequence, *, normalize: bool = True, title: str = "", x_title: str = "value",
                    y_title: str | None = None, colorscale: str = "Viridis", height: int | None = None) -> go.Figure:
    """Histograms (one row of bin ``counts`` per label, e.g. per epoch) drawn as overlaid step lines whose
    colour runs along the colorscale in row order, so a distribution's evolution reads at a glance.

    ``edges``: one list of bin edges shared by all rows, or one list per row (ranges that change)."""
    per_row = len(edges) > 0 and np.ndim(edges[0]) == 1
    if per_row and len(edges) != len(counts):
        raise ValueError(f"{len(edges)} edge lists for {len(counts)} histograms")
    n = len(counts)
    cols = sample_colorscale(colorscale, [i / max(1, n - 1) for i in range(n)]) if n else []
    traces = []
    for i, (row, lab) in enumerate(zip(counts, labels)):
        row = np.asarray(row, dtype=float)
        e = np.asarray(edges[i] if per_row else edges, dtype=float)
        if len(row) != len(e) - 1:
            raise ValueError(f"row {lab!r} has {len(row)} bins, edges define {len(e) - 1}")
        if normalize and row.sum() > 0:
            row = row / row.sum()
        traces.append(dict(type="scatter", x=np.repeat(e, 2)[1:-1], y=np.repeat(row, 2), mode="lines", name=str(lab),
                           line={"color": cols[i], "width": 1.5},
                           hovertemplate=f"{lab}: " + "%{x:.3f} → %{y:.4f}<extra></extra>"))
    return figure(traces, chart_layout(title, x_title, y_title or ("fraction" if normalize else "count"), height))


def _registry_rows(costs: pd.DataFrame) -> pd.DataFrame:
    """The cost table with each model's base architecture and kind (SE / vanilla), for grouped bars."""
    return costs.assign(base=costs["vanilla"].where(costs["vanilla"] != "", costs["model"]),
                        kind=costs["has_se"].map({True: "SE", False: "vanilla"}))


def registry_params(costs: pd.DataFrame) -> go.Figure:
    """Parameters of every registered architecture, SE next to vanilla (rows of :func:`se_core.models.costs.cost_table`)."""
    return bar_compare(_registry_rows(costs), "base", "params_m", "kind", title="Parameters", x_title="architecture",
                       y_title="parameters (millions)", colors=_SE_VANILLA)


def registry_overhead(costs: pd.DataFrame) -> go.Figure:
    """Extra parameters of each SE architecture over its vanilla counterpart."""
    plot = _registry_rows(costs)
    return bar_compare(plot[plot["vanilla"] != ""], "base", "se_params_pct", "kind", title="SE parameter overhead",
                       x_title="architecture", y_title="extra parameters (% of vanilla)",
                       colors={"SE": PAIR_COLORS["se"]}, text_format="%{y:.2f}%")


def seed_curve(curves: pd.DataFrame, metric: str, title: str, y_title: str, colors: Mapping[str, str]) -> go.Figure:
    """One metric per model over epochs, mean ± std over seeds (rows of :func:`se_core.runs.history.seed_curves`)."""
    return band_curves(curves[curves["metric"] == metric], "epoch", "mean", "std", "model",
                       title=f"{title}, mean ± std over seeds", y_title=y_title, colors=colors)


def _train_test(metrics: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([metrics.assign(split="train", loss=metrics["train_loss"], acc=metrics["train_acc"]),
                      metrics.assign(split="test", loss=metrics["test_loss"], acc=metrics["test_acc"])],
                     ignore_index=True)


def loss_curves(metrics: pd.DataFrame) -> go.Figure:
    """Train (solid) and test (dashed) loss per run over epochs (rows of :func:`se_core.runs.history.all_metrics`)."""
    return line_curves(_train_test(metrics), "epoch", "loss", "run", dash="split", title="Loss",
                       y_title="cross-entropy (train: label-smoothed)")


def accuracy_curves(metrics: pd.DataFrame) -> go.Figure:
    """Train (solid) and test (dashed) top-1 accuracy per run over epochs."""
    return line_curves(_train_test(metrics), "epoch", "acc", "run", dash="split", title="Top-1 accuracy",
                       y_title="accuracy (%)")


def gate_mean(gates: pd.DataFrame) -> go.Figure:
    """Gate mean ± std per block over epochs (rows of :func:`se_core.runs.history.load_gate_history`)."""
    return band_curves(gates, "epoch", "mean", "std", "site", title="Gate mean ± std per block", y_title="gate value s")


def gate_selectivity(gates: pd.DataFrame) -> go.Figure:
    """Class selectivity of the gates per block over epochs."""
    return line_curves(gates, "epoch", "selectivity", "site", title="Class selectivity per block",
                       y_title="mean η² over channels")


def gate_still(gates: pd.DataFrame) -> go.Figure:
    """Share of still channels per block over epochs."""
    return line_curves(gates, "epoch", "still_share", "site",
                       title=f"Still channels per block (gate std over the probe batch < {STILL_STD}; frozen above "
                             f"{FROZEN_SHARE:.0%})", y_title="share of channels")


def gate_hist_lines(edges: Sequence[Sequence[float]], rows: pd.DataFrame, site: str) -> go.Figure:
    """One block's gate histogram per epoch (``rows``: its gate-history rows in epoch order; ``edges`` per row)."""
    return histogram_stack(edges, list(rows["hist"]), [f"epoch {e}" for e in rows["epoch"]],
                           title=f"{site}: gate histogram by epoch (light = late)", x_title="gate value s")


def gate_hist_heatmap(hist_long: pd.DataFrame, site: str) -> go.Figure:
    """Fraction of gates per bin and epoch (rows of :func:`se_core.runs.history.gate_hist_long`)."""
    piv = hist_long.pivot(index="epoch", columns="bin_center", values="fraction")
    return heatmap(piv.to_numpy(), list(piv.columns), [str(e) for e in piv.index],
                   title=f"{site}: fraction of gates per bin", x_title="gate value s (bin centre)", y_title="epoch",
                   colorbar_title="fraction", hover="epoch %{y}, s ≈ %{x:.3f}: %{z:.4f}")


def top1_per_seed(summary: pd.DataFrame, results: pd.DataFrame, colors: Mapping[str, str]) -> go.Figure:
    """Test top-1 of every finished run (dots) and each model's mean ± std (diamonds)."""
    return seed_points(summary, results, x="model", mean="top1_mean", std="top1_std", n="runs", y="top1",
                       colors=[colors.get(m, PALETTE[-1]) for m in summary["model"]], point_info=("seed", "run"),
                       height=340, x_title="model", y_title="test top-1 (%)",
                       title="Test top-1 of every seed (dots) and mean ± std (diamonds)")


def own_pairs_top1(summary: pd.DataFrame, results: pd.DataFrame) -> go.Figure:
    """The project's own pairs side by side: per pair, vanilla then SE, every seed's test top-1 (dots) and
    mean ± std (diamonds); the x label is ``<pair> · <role>``."""
    label = lambda df: df["pair"] + " · " + df["role"]  # noqa: E731
    means = summary.assign(x=label(summary))
    points = results.assign(x=label(results))
    return seed_points(means, points, x="x", mean="top1_mean", std="top1_std", n="runs", y="top1",
                       colors=[PAIR_COLORS[r] for r in means["role"]], point_info=("seed", "run"), height=360,
                       x_title="pair · model", y_title="test top-1 (%)",
                       title="Own pairs side by side: test top-1 per seed (dots), mean ± std (diamonds)")


def per_class_accuracy(per_class: pd.DataFrame, colors: Mapping[str, str]) -> go.Figure:
    """Test accuracy per class and model, whiskers the std over seeds."""
    return bar_compare(per_class, "class", "acc_mean", "model", error="acc_std",
                       title="Per-class test accuracy (whiskers: std over seeds)", x_title="class",
                       y_title="accuracy (%)", colors=colors, y_range=(0, 100))


__all__ = ["accuracy_curves", "gate_hist_heatmap", "gate_hist_lines", "gate_mean", "gate_selectivity", "gate_still",
           "heatmap", "histogram_stack", "line_curves", "loss_curves", "per_class_accuracy", "registry_overhead",
           "registry_params", "seed_curve", "top1_per_seed"]
