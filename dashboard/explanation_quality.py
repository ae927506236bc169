"""The Attributions page's two costly sections, each computed on a button click for the maps on screen:
"Quality of the explanations" (Captum's infidelity and sensitivity-max) and "Faithfulness" (RISE deletion
and insertion curves, with a seeded random order as the reference). Each model is scored on its own input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

from dashboard import attributing as calc
from dashboard.display import download_csv, show
from dashboard.figures import attributions as figs
from se_core.analysis.attribution import (
    INFIDELITY_NOISE_STD,
    INFIDELITY_SAMPLES,
    METHOD_TITLES,
    SENSITIVITY_RADIUS,
    SENSITIVITY_SAMPLES,
    AttributionConfig,
    PairAttribution,
)
from se_core.analysis.faithfulness import FAITHFULNESS_SEED, FAITHFULNESS_STEPS
from se_core.models.weights import LoadedPair

QUALITY_KEY = "attr_quality_for"
FAITH_KEY = "attr_faith_for"
ROLES = ("SE", "vanilla")


@dataclass(frozen=True)
class Explained:
    """What the page explained: the pair, the image (its digest and name), each model's input (``feed`` names
    the preprocessing), the target and its label, and each method's config and maps."""

    pair: LoadedPair
    pair_name: str
    digest: str
    image: str
    feed: str
    x: torch.Tensor
    x_va: torch.Tensor
    target: int
    label: str
    configs: dict[str, AttributionConfig]
    results: dict[str, PairAttribution]

    def model(self, role: str) -> tuple[torch.nn.Module, torch.Tensor]:
        """The model of ``role`` ('SE' or 'vanilla') and its own input."""
        return (self.pair.se.model, self.x) if role == "SE" else (self.pair.vanilla.model, self.x_va)

    def signature(self, *extra: object) -> tuple:
        """What a section's results depend on: a click is for these inputs only."""
        return (self.pair_name, self.digest, self.feed, self.target, tuple(self.configs[m] for m in self.results), *extra)

    def stem(self, what: str) -> str:
        return f"attribution-{what}-{self.image}-{self.label}".replace(" ", "_")


def _clicked(e: Explained, label: str, key: str, state: str, signature: tuple, icon: str) -> bool:
    """A button whose click sticks for ``signature`` (reruns keep the table until an input changes)."""
    if st.button(label, key=key, icon=icon):
        st.session_state[state] = signature
    return bool(e.results) and st.session_state.get(state) == signature


def quality_section(e: Explained) -> None:
    """Infidelity and sensitivity-max per method and model, on request."""
    st.subheader("Quality of the explanations")
    st.caption(f"Captum's metrics, lower is better. Infidelity: mean squared error between attribution·perturbation "
               f"and the logit change, for Gaussian noise of std {INFIDELITY_NOISE_STD} (normalized units), "
               f"{INFIDELITY_SAMPLES} samples, scale-normalized. Sensitivity-max: largest relative change of the "
               f"explanation under uniform noise of radius {SENSITIVITY_RADIUS}, {SENSITIVITY_SAMPLES} samples. "
               "Fixed seed; each sample reruns the method, so this takes longer. Infidelity is in squared logit "
               "units, so compare methods within one model; sensitivity is relative, so it compares across models too.")
    if not _clicked(e, "Compute quality metrics", "attr_quality_button", QUALITY_KEY, e.signature(), ":material/rule:"):
        return
    rows = []
    bar = st.progress(0.0, text="Scoring explanations...")
    jobs = [(m, role) for m in e.results for role in ROLES]
    for j, (method, role) in enumerate(jobs):
        model, x = e.model(role)
        with st.spinner(f"{METHOD_TITLES[method]}, {role} model..."):
            try:
                q = calc.explanation_quality(model, x, e.pair_name, role, e.digest, e.target, e.configs[method], e.feed)
            except (ValueError, RuntimeError) as err:
                st.error(f"Quality metrics for {METHOD_TITLES[method]} ({role}) failed: {err}. Change the settings and "
                         "try again.")
                q = {"infidelity": float("nan"), "sensitivity": float("nan")}
        rows.append({"method": METHOD_TITLES[method], "model": role, "infidelity": q["infidelity"],
                     "sensitivity_max": q["sensitivity"]})
        bar.progress((j + 1) / len(jobs), text=f"{METHOD_TITLES[method]} ({role}) scored")
    bar.empty()
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True,
                 column_config={"infidelity": st.column_config.NumberColumn(format="%.3e"),
                                "sensitivity_max": st.column_config.NumberColumn(format="%.3f")})
    download_csv(table, e.stem("quality"), key="attr-quality-csv")


def faithfulness_section(e: Explained) -> None:
    """Deletion and insertion curves per method and model plus the random reference, their areas, on request."""
    st.subheader("Faithfulness")
    first = next(iter(e.configs.values()), None)
    baseline = first.baseline if first else "zero"
    batch = first.internal_batch_size if first else 16
    st.caption("Deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018): each method's map ranks the pixels; "
               f"deletion replaces them, most important first, by the '{baseline}' baseline (Method settings) and "
               "insertion starts from that baseline and reveals them, while the target's softmax probability is "
               "recorded. Lower deletion AUC and higher insertion AUC are better; a method should beat the random "
               f"order (seed {FAITHFULNESS_SEED}). Each model is scored with its own map on its own input; every "
               "curve costs one forward pass per step.")
    steps = int(st.number_input("Curve steps", 2, 512, FAITHFULNESS_STEPS, key="attr_faith_steps",
                                help="Points of each curve after 0: the pixels are removed or revealed in this many "
                                     "equal parts."))
    if not _clicked(e, "Compute faithfulness curves", "attr_faith_button", FAITH_KEY, e.signature(steps),
                    ":material/timeline:"):
        return
    curves = {}
    bar = st.progress(0.0, text="Deleting and inserting pixels...")
    jobs = [(m, role) for m in [*e.results, None] for role in ROLES]
    for j, (method, role) in enumerate(jobs):
        model, x = e.model(role)
        name = calc.RANDOM_TITLE if method is None else METHOD_TITLES[method]
        res = None if method is None else e.results[method]
        amap = np.zeros(x.shape[-2:], np.float32) if res is None else (res.se if role == "SE" else res.vanilla).map
        with st.spinner(f"{name}, {role} model..."):
            try:
                curves[method, role] = calc.faithfulness(model, x, amap, e.pair_name, role, e.digest, e.target, e.feed,
                                                         baseline, steps, batch, None if method is None else e.configs[method])
            except (ValueError, RuntimeError) as err:
                st.error(f"Faithfulness curves for {name} ({role}) failed: {err}. Change the settings and try again.")
        bar.progress((j + 1) / len(jobs), text=f"{name} ({role}) done")
    bar.empty()
    points, areas = calc.faithfulness_tables(curves)
    if areas.empty:
        return
    st.dataframe(areas, hide_index=True,
                 column_config={"deletion_auc": st.column_config.NumberColumn("deletion AUC (lower is better)",
                                                                              format="%.3f"),
                                "insertion_auc": st.column_config.NumberColumn("insertion AUC (higher is better)",
                                                                               format="%.3f")})
    download_csv(areas, e.stem("faithfulness-auc"), key="attr-faith-auc-csv", label="Download AUC table (CSV)")
    show(figs.faithfulness_curves(points, f"Deletion and insertion · class '{e.label}'", calc.RANDOM_TITLE),
         key="attr-faith", filename=e.stem("faithfulness"), data=points)
