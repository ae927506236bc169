"""What the Attributions page computes, cached per (pair, image digest, target, method settings).

The models and the input tensor are passed unhashed (leading underscore); the pair name and
the image's digest identify them. Quality metrics rerun a method several times, so they are
only computed when the page asks.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from se_core.analysis.attribution import AttributionConfig, PairAttribution, compare, predict, quality


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
