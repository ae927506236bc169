"""What the Attributions page computes, cached per (pair, image digest, target, method settings).

Each method runs at background priority (:mod:`se_core.util.background`): seconds of Captum on a shared
server must not slow another session's probe, which the OS now schedules first.

The models and the input tensor are passed unhashed (leading underscore); the pair name and
the image's digest identify them. Quality metrics rerun a method several times and faithfulness
curves cost two forward passes per step, so both are only computed when the page asks.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard.state import request_stop
from se_core.analysis.attribution import (
    METHOD_TITLES,
    AttributionConfig,
    AttributionResult,
    PairAttribution,
    attribute,
    pair_of,
    predict,
    quality,
)
from se_core.analysis.faithfulness import Faithfulness, deletion_insertion
from se_core.models.weights import LoadedPair
from se_core.util import background

RANDOM_TITLE = "Random order"
"""The faithfulness tables' name for the seeded random reference order."""


@st.cache_data(max_entries=32, show_spinner=False)
def predictions(_se: torch.nn.Module, _vanilla: torch.nn.Module, _x: torch.Tensor, _x_vanilla: torch.Tensor,
                pair: str, digest: str, feed: str = "shared") -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities of both models, each on its input (``feed`` keys the preprocessing)."""
    return predict(_se, _x), predict(_vanilla, _x_vanilla)


@st.cache_data(max_entries=128, show_spinner=False)
def attribution(_model: torch.nn.Module, _x: torch.Tensor, pair: str, role: str, digest: str, target: int,
                config: AttributionConfig, feed: str = "shared") -> AttributionResult:
    """One method's map for one model of the pair; ``feed`` names which preprocessing made ``_x``."""
    return background.run(attribute, _model, _x, target, config)


STOP_KEY = "attr_stop"


def pair_attributions(pair: LoadedPair, x: torch.Tensor, x_vanilla: torch.Tensor, pair_name: str, digest: str,
                      target: int, configs: dict[str, AttributionConfig], feed: str) -> dict[str, PairAttribution]:
    """Every chosen method on both models, one at a time, saying which method on which model runs, with
    a Stop button; a stopped run shows a button that continues it (what was done stays cached)."""
    if st.session_state.get(STOP_KEY):
        st.info("Stopped. What was already computed is kept.", icon=":material/stop_circle:")
        if not st.button("Continue computing", key="attr_continue", icon=":material/play_arrow:"):
            return {}
        st.session_state[STOP_KEY] = False
    st.button("Stop", key="attr_stop_button", on_click=request_stop, args=(STOP_KEY,),
              help="Stops after the model being computed now; finished maps stay cached.")
    jobs = [(m, role) for m in configs for role in ("se", "vanilla")]
    bar = st.progress(0.0, text="Computing attributions...")
    maps: dict[tuple[str, str], AttributionResult] = {}
    for i, (method, role) in enumerate(jobs):
        lm, xin = (pair.se, x) if role == "se" else (pair.vanilla, x_vanilla)
        bar.progress(i / len(jobs), text=f"{METHOD_TITLES[method]} on the {'SE' if role == 'se' else 'vanilla'} model "
                                         f"({i + 1} of {len(jobs)})")
        try:
            maps[method, role] = attribution(lm.model, xin, pair_name, role, digest, target, configs[method], feed)
        except (ValueError, RuntimeError) as e:
            st.error(f"{METHOD_TITLES[method]} failed on the {role} model: {e}. Change its settings (e.g. a smaller "
                     "internal batch size or occlusion window) and try again.")
    bar.empty()
    return {m: pair_of(maps[m, "se"], maps[m, "vanilla"]) for m in configs if (m, "se") in maps and (m, "vanilla") in maps}


@st.cache_data(max_entries=64, show_spinner=False)
def explanation_quality(_model: torch.nn.Module, _x: torch.Tensor, pair: str, role: str, digest: str, target: int,
                        config: AttributionConfig, feed: str = "shared") -> dict[str, float]:
    """Infidelity and sensitivity-max of one method on one model."""
    return background.run(quality, _model, _x, target, config)


@st.cache_data(max_entries=128, show_spinner=False)
def faithfulness(_model: torch.nn.Module, _x: torch.Tensor, _amap: np.ndarray, pair: str, role: str, digest: str,
                 target: int, feed: str, baseline: str, steps: int, batch_size: int,
                 config: AttributionConfig | None) -> Faithfulness:
    """Deletion and insertion curves of one model, pixels ranked by ``_amap`` (the map ``config`` made on
    this model's input ``_x``), or in the seeded random order when ``config`` is None."""
    order = "random" if config is None else "attribution"
    return background.run(deletion_insertion, _model, _x, target, _amap, baseline=baseline, steps=steps,
                          batch_size=batch_size, order=order)


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
