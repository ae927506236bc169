"""Figures of the Ablations page: our sweep per axis, the paper's rows, and what each setting costs.

Pure builders (tables in, ``go.Figure`` out) on top of :mod:`dashboard.charts`; the tables come
from :mod:`se_core.runs.tables`.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.charts import PAIR_COLORS, seed_points
from se_core.runs.tables import AXES, BASELINE_SETTING

OTHER_COLOR = "#2f9e44"
PAPER_COLOR = "#868e96"


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
    fig = go.Figure(go.Scatter(
        x=labels, y=ref["top1_err"], mode="markers", name="reported top-1 error",
        marker={"symbol": "square", "size": 12, "color": PAPER_COLOR},
        customdata=ref[["top5_err"]].to_numpy(), hovertemplate="%{x}: top-1 %{y:.2f}%, top-5 %{customdata[0]:.2f}%"
                                                                 "<extra></extra>"))
    fig.update_layout(template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      title={"text": f"Reported by Hu et al. (TPAMI v4, Table {AXES[axis].paper_table}), "
                                     "SE-ResNet-50 on ImageNet", "x": 0, "font": {"size": 13}})
    fig.update_xaxes(title_text="paper row (our setting)", type="category")
    fig.update_yaxes(title_text="ImageNet top-1 error (%)")
    return fig


def cost_fig(summary: pd.DataFrame, axis: str) -> go.Figure:
    """Parameters and FLOPs each setting adds over the no-SE network (absolute values on hover)."""
    added = summary["params_added"].notna().any()
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "parameters added over no SE" if added else "parameters",
        "FLOPs added over no SE (%)" if added else "FLOPs per image (millions)"))
    cols = [setting_color(s, d) for s, d in zip(summary["setting"], summary["is_default"])]
    absolute = summary[["params", "flops"]].to_numpy()
    fig.add_trace(go.Bar(x=summary["setting"], y=summary["params_added"] if added else summary["params"],
                         marker_color=cols, name="params", customdata=absolute,
                         hovertemplate="%{x}: %{y:,} (total %{customdata[0]:,})<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=summary["setting"], y=summary["flops_added_pct"] if added else summary["flops"] / 1e6,
                         marker_color=cols, name="FLOPs", customdata=absolute,
                         hovertemplate="%{x}: %{y:.4g}" + ("%" if added else " M") +
                                       " (total %{customdata[1]:,})<extra></extra>"), row=1, col=2)
    fig.update_layout(template="plotly_white", height=320, showlegend=False, margin={"l": 60, "r": 20, "t": 70, "b": 50},
                      title={"text": f"Ours: cost of each {AXES[axis].title.lower()} setting, measured on the network "
                                     "(FlopCounterMode; FLOPs = 2 x multiply-adds)", "x": 0, "font": {"size": 13}})
    fig.update_xaxes(type="category")
    return fig


__all__ = ["OTHER_COLOR", "PAPER_COLOR", "cost_fig", "ours_fig", "paper_fig", "setting_color"]
