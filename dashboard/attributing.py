"""What the Attributions page computes, cached per (pair, image digest, target, method settings).

The models and the input tensor are passed unhashed (leading underscore); the pair name and
the image's digest identify them. Quality metrics rerun a method several times and faithfulness
curves cost two forward passes per step, so both are only computed when the page asks.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from se_core.analysis.attribution import METHOD_TITLES, AttributionConfig, PairAttribution, compare, predict, quality
from se_core.analysis.faithfulness import Faithfulness, deletion_insertion

RANDOM_TITLE = "Random order"
"""The faithfulness tables' name for the seeded random reference order."""


@st.cache_data(max_entries=32, show_spinner=False)
def predictions(_se: torch.nn.Module, _vanilla: torch.nn.Module, _x: torch.Tensor, _x_vanilla: torch.Tensor,
                pair: str, digest: str, feed: str = "shared") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of both models, each on its input (``feed`` keys the preprocessing)."""
    return predict(_se, _x), predict(_vanilla, _x_vanilla)


@st.cache_data(max_entries=64, show_spinner=False)
def pair_attribution(_se: torch.nn.Module, _vanilla: torch.nn.Module, _x: torch.Tensor, pair: str, digest: str,
                     target: int, config: AttributionConfig, feed: str = "shared",
                     _x_vanilla: torch.Tensor | None = None) -> PairAttribution:
    """One method's maps for both models (:func:`se_core.analysis.attribution.compare`); ``feed`` names
    which preprocessing made the inputs (part of the cache key)."""
    return compare(_se, _vanilla, _x, target, config, _x_vanilla)


@st.cache_data(max_entries=64, show_spinner=False)
def explanation_quality(_model: torch.nn.Module, _x: torch.Tensor, pair: str, role: str, digest: str, target: int,
                        config: AttributionConfig, feed: str = "shared") -> dict[str, float]:
    """Infidelity and sensitivity-max of one method on one model."""
    return quality(_model, _x, target, config)


@st.cache_data(max_entries=128, show_spinner=False)
def faithfulness(_model: torch.nn.Module, _x: torch.Tensor, _amap: np.ndarray, pair: str, role: str, digest: str,
                 target: int, feed: str, baseline: str, steps: int, batch_size: int,
                 config: AttributionConfig | None) -> Faithfulness:
    """Deletion and insertion curves of one model, pixels ranked by ``_amap`` (the map ``config`` made on
    this model's input ``_x``), or in the seeded random order when ``config`` is None."""
    order = "random" if config is None else "attribution"
    return deletion_insertion(_model, _x, target, _amap, baseline=baseline, steps=steps, batch_size=batch_size,
                              order=order)


def faithfulness_tables(curves: dict[tuple[str | None, str], Faithfulness]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every curve's points, one row per method and model with both areas) from curves keyed by
    (method or None for the random order, model role); the first is the chart's data and CSV."""
    points, areas = [], []
    for (method, role), f in curves.items():
        name = RANDOM_TITLE if method is None else METHOD_TITLES[method]
        for kind, c in (("deletion", f.deletion), ("insertion", f.insertion)):
            points.append(pd.DataFrame({"method": name, "model": role, "curve": kind, "fraction": c.fractions,
                                        "probability": c.probabilities, "auc": c.auc}))
        areas.append({"method": name, "model": role, "deletion_auc": f.deletion.auc, "insertion_auc": f.insertion.auc})
    cols = ["method", "model", "curve", "fraction", "probability", "auc"]
    return (pd.concat(points, ignore_index=True) if points else pd.DataFrame(columns=cols)), pd.DataFrame(areas)


def map_table(res: PairAttribution) -> pd.DataFrame:
    """Both maps, raw and scaled, and their difference: one row per pixel (the chart's CSV)."""
    h, w = res.se.map.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    return pd.DataFrame({"y": rows, "x": cols, "se_raw": res.se.map.ravel(), "vanilla_raw": res.vanilla.map.ravel(),
                         "se_scaled": res.se_norm.ravel(), "vanilla_scaled": res.vanilla_norm.ravel(),
                         "se_minus_vanilla": res.diff.ravel()})


def delta_note(role: str, delta: float | None, gap: float | None) -> str:
    """One model's IG convergence delta, absolute and as a share of |f(x) − f(baseline)|."""
    if delta is None:
        return f"{role}: no delta"
    rel = f" = {abs(delta) / abs(gap):.2%} of |f(x) − f(baseline)| = {abs(gap):.3g}" if gap else ""
    return f"{role}: |delta| {abs(delta):.2e}{rel}"
