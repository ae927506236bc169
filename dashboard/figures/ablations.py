"""Figures of the Ablations page: our sweep per axis, the paper's rows, the change vs baselines, each setting's cost,
and the kept variants' gates compared per block.

Built from the tables of :mod:`se_core.runs.tables` and :mod:`se_core.analysis.gates.compare`, in the dict style
of :mod:`dashboard.figures.style`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.common import bar_compare, seed_points
from dashboard.figures.gatespace import block_order, input_vs_depth
from dashboard.figures.style import PAIR_COLORS, PALETTE, cell_axes, chart_layout, figure, grid, rgba, title
from se_core.runs import tables
from se_core.runs.tables import AXES, BASELINE_SETTING

OTHER_COLOR = "#2f9e44"
PAPER_COLOR = "#868e96"
DELTA_COLORS = dict(zip(tables.DELTA_SERIES, ("#d9480f", "#f59f00", "#1c7ed6", "#74c0fc")))


def setting_color(setting: str, is_default: bool) -> str:
    """Vanilla blue for the no-SE baseline, SE orange for the default SE, green for every other setting."""
    if setting == BASELINE_SETTING:
        return PAIR_COLORS["vanilla"]
    return PAIR_COLORS["se"] if is_default else OTHER_COLOR


def ours_fig(summary: pd.DataFrame, rows: pd.DataFrame, axis: str) -> go.Figure:
    """Mean ± std top-1 error per setting with each seed as a dot, and the no-SE / default-SE means as lines."""
    refs = [(summary.loc[summary[flag], "top1_mean"].iloc[0], name, col, pos)
            for flag, name, col, pos in (("is_baseline", "no SE", PAIR_COLORS["vanilla"], "bottom right"),
                                         ("is_default", "default SE", PAIR_COLORS["se"], "top right"))
            if summary[flag].any()]
    return seed_points(summary, rows, x="setting", mean="top1_mean", std="top1_std", n="n", y="top1_err",
                       colors=[setting_color(s, d) for s, d in zip(summary["setting"], summary["is_default"])],
                       point_info=("seed", "trial_id"), ref_lines=refs, x_title="setting", y_title="top-1 error (%)",
                       title=f"Ours: {AXES[axis].title}, CIFAR-10 test top-1 error")


def paper_fig(ref: pd.DataFrame, axis: str) -> go.Figure:
    """The paper's reported top-1 error per row of its table."""
    # long rows ("ResNet-50 (original)") wrap before their bracket, so neighbouring tick labels do not run together
    labels = [s.replace(" (", "<br>(") + (f"<br>({o})" if isinstance(o, str) and o != s else "")
              for s, o in zip(ref["setting"], ref["our_setting"])]
    trace = dict(type="scatter", x=labels, y=np.asarray(ref["top1_err"]), mode="markers", name="reported top-1 error",
                 marker={"symbol": "square", "size": 12, "color": PAPER_COLOR},
                 customdata=ref[["top5_err"]].to_numpy(),
                 hovertemplate="%{x}: top-1 %{y:.2f}%, top-5 %{customdata[0]:.2f}%<extra></extra>")
    return figure([trace], {
        "height": 380, "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "title": {"text": f"Reported by Hu et al. (TPAMI v4, Table {AXES[axis].paper_table}), SE-ResNet-50 on ImageNet",
                  "x": 0, "font": {"size": 13}},
        "xaxis": {"title": title("paper row (our setting)"), "type": "category"},
        "yaxis": {"title": title("ImageNet top-1 error (%)")}})


def delta_fig(cmp: pd.DataFrame) -> go.Figure:
    """Change in top-1 error of each setting vs its own network's baselines, ours and the paper's
    (rows of :func:`se_core.runs.tables.compare_axis`), whiskers ± one standard error."""
    return bar_compare(cmp, "setting", "delta", "series", error="se", colors=DELTA_COLORS, height=360,
                       title="Change in top-1 error vs each network's own baselines (points; below 0 = better)",
                       x_title="setting (ours; paper rows mapped)", y_title="Δ top-1 error (points)",
                       layout={"xaxis": {"type": "category"}})


def cost_fig(summary: pd.DataFrame, axis: str) -> go.Figure:
    """Parameters and FLOPs each setting adds over the no-SE network (absolute values on hover)."""
    added = summary["params_added"].notna().any()
    lay = grid(1, 2, ("parameters added over no SE" if added else "parameters",
                      "FLOPs added over no SE (%)" if added else "FLOPs per image (millions)"))
    cols = [setting_color(s, d) for s, d in zip(summary["setting"], summary["is_default"])]
    absolute = summary[["params", "flops"]].to_numpy()
    x = np.asarray(summary["setting"])
    traces = [
        dict(type="bar", x=x, y=np.asarray(summary["params_added"] if added else summary["params"]),
             marker={"color": cols}, name="params", customdata=absolute,
             hovertemplate="%{x}: %{y:,} (total %{customdata[0]:,})<extra></extra>", **cell_axes(0)),
        dict(type="bar", x=x, y=np.asarray(summary["flops_added_pct"] if added else summary["flops"] / 1e6),
             marker={"color": cols}, name="FLOPs", customdata=absolute,
             hovertemplate="%{x}: %{y:.4g}" + ("%" if added else " M") + " (total %{customdata[1]:,})<extra></extra>",
             **cell_axes(1))]
    lay.update(height=320, showlegend=False, margin={"l": 60, "r": 20, "t": 70, "b": 50},
               title={"text": f"Ours: cost of each {AXES[axis].title.lower()} setting, measured on the network "
                              "(FlopCounterMode; FLOPs = 2 x multiply-adds)", "x": 0, "font": {"size": 13}})
    lay["xaxis"]["type"] = lay["xaxis2"]["type"] = "category"
    return figure(traces, lay)


def variant_gates_fig(frame: pd.DataFrame, *, title_text: str) -> go.Figure:
    """Per SE block (depth order), each variant's distribution of the gate values s over the probe images and
    channels: a box from its quartiles and median, whiskers at the 5th and 95th percentiles, the mean dashed;
    one colour per variant, grouped by block (rows of :func:`se_core.analysis.gates.compare.compare_variants`)."""
    traces = []
    for i, (variant, g) in enumerate(frame.groupby("variant", sort=False)):
        color = PALETTE[i % len(PALETTE)]
        traces.append(dict(type="box", name=str(variant), x=list(g["label"]), q1=np.asarray(g["q25"]),
                           median=np.asarray(g["q50"]), q3=np.asarray(g["q75"]), lowerfence=np.asarray(g["q05"]),
                           upperfence=np.asarray(g["q95"]), mean=np.asarray(g["mean"]), boxmean=True,
                           marker={"color": color}, line={"color": color}, fillcolor=rgba(color, 0.3),
                           offsetgroup=str(variant), legendgroup=str(variant)))
    lay = chart_layout(title_text, "SE block (depth order)", "gate value s (5 / 25 / 50 / 75 / 95 %)", 440)
    lay.update(boxmode="group", meta={"chart": "variant_gates"})
    lay["xaxis"].update(type="category", categoryorder="array", categoryarray=block_order(frame))
    return figure(traces, lay)


def variant_dependence_fig(frame: pd.DataFrame, *, title_text: str) -> go.Figure:
    """Per variant, the share of each block's gate variance that depends on the image (solid) and on its class
    (dotted) against depth: the Gate space page's chart, one series per variant."""
    return input_vs_depth(frame.rename(columns={"variant": "series"}), title_text=title_text,
                          chart="variant_dependence")


__all__ = ["DELTA_COLORS", "OTHER_COLOR", "PAPER_COLOR", "cost_fig", "delta_fig", "ours_fig", "paper_fig",
           "setting_color", "variant_dependence_fig", "variant_gates_fig"]


def progress_fig(running: list[dict]) -> go.Figure:
    """Each running trial's epochs done out of its total, labelled with its current test error (from the
    sweep's progress file, :mod:`se_core.runs.ablate.progress`)."""
    names = [f"{r['axis']}={r['setting']} s{r['seed']} ({r['trial_id'][:6]})" for r in running]
    done = np.asarray([r.get("epoch") or 0 for r in running], dtype=float)
    total = np.asarray([r.get("epochs") or 0 for r in running], dtype=float)
    text = ["–" if r.get("top1_err") is None else f"{r['top1_err']:.1f}% err" for r in running]
    traces = [dict(type="bar", orientation="h", y=names, x=done, name="epochs done", text=text,
                   textposition="auto", marker={"color": PAIR_COLORS["se"]},
                   hovertemplate="%{y}: epoch %{x} · %{text}<extra></extra>"),
              dict(type="bar", orientation="h", y=names, x=np.maximum(total - done, 0), name="to go",
                   marker={"color": "#dee2e6"}, hoverinfo="skip")]
    return figure(traces, {
        "barmode": "stack", "height": 120 + 32 * len(running), "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "title": {"text": "Running trials: epochs done, current test top-1 error", "x": 0, "font": {"size": 13}},
        "xaxis": {"title": title("epoch"), "range": [0, float(total.max()) if len(total) else 1]},
        "yaxis": {"type": "category", "automargin": True}, "showlegend": False})
