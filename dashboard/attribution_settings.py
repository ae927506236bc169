"""The Method settings of the Attributions page: IG steps, batch size, baseline, Grad-CAM layer, occlusion
window and stride, and the maps' opacity; one :class:`AttributionConfig` per chosen method."""
from __future__ import annotations

import streamlit as st
import torch

from se_core.analysis.attribution import BASELINES, AttributionConfig, stage_layers
from se_core.analysis.inspect import preprocess_for
from se_core.data.images import Preprocess
from se_core.models.weights import LoadedPair

FEEDS = {"se": "the SE model's preprocessing for both", "vanilla": "the vanilla model's preprocessing for both",
         "own": "each model its own preprocessing"}

BASELINE_HELP = {"zero": "0 in normalized space = the training set's mean colour",
                 "blur": "the image blurred (Gaussian, sigma = side / 8)",
                 "mean": "this image's own mean colour"}


def method_settings(model: torch.nn.Module, size: tuple[int, int],
                    methods: list[str]) -> tuple[dict[str, AttributionConfig], float]:
    """The settings expander for an input of ``size`` (h, w); (config per method, map opacity)."""
    h, w = size
    layers = stage_layers(model)
    with st.expander("Method settings", expanded=False):
        c1, c2, c3 = st.columns(3)
        n_steps = c1.number_input("IG steps", 2, 1024, 32, step=8, key="attr_steps",
                                  help="Integration points (Gauss-Legendre) of Integrated Gradients; more steps, smaller "
                                       "convergence delta.")
        batch = c1.number_input("Internal batch size", 1, 512, 16, key="attr_batch",
                                help="Inputs per forward pass for IG steps and occlusion windows (memory vs speed).")
        baseline = c2.selectbox("Baseline (IG and occlusion)", BASELINES, key="attr_baseline",
                                format_func=lambda b: f"{b}: {BASELINE_HELP[b]}")
        layer = c2.selectbox("Grad-CAM layer", layers or [None], index=len(layers) - 1 if layers else 0,
                             key="attr_layer", help="Stage whose output Grad-CAM weighs by its gradients.")
        window = c3.number_input("Occlusion window (px)", 1, min(h, w), max(1, min(h, w) // 4), key="attr_window")
        stride = c3.number_input("Occlusion stride (px)", 1, min(h, w), max(1, min(h, w) // 8), key="attr_stride")
        opacity = st.slider("Map opacity over the image", 0.0, 1.0, 0.6, 0.05, key="attr_opacity")
    configs = {m: AttributionConfig(m, n_steps=int(n_steps), internal_batch_size=int(batch), baseline=baseline,
                                    occlusion_window=int(window), occlusion_stride=int(stride), layer=layer)
               for m in methods}
    return configs, opacity


def input_feed(pair: LoadedPair) -> tuple[str, Preprocess, Preprocess]:
    """How one image becomes the two models' inputs: (choice, SE model's, vanilla model's preprocessing).

    When the two models expect the same input there is nothing to choose; otherwise the user picks a
    shared preprocessing (one input, maps on one grid) or each model's own, and is told how they differ.
    """
    pre_se, pre_va = preprocess_for(pair.se), preprocess_for(pair.vanilla)
    if pre_se == pre_va:
        return "shared", pre_se, pre_va
    st.info(f"The two models expect different input. SE model: {pre_se.describe()}. Vanilla model: "
            f"{pre_va.describe()}.", icon=":material/tune:")
    feed = st.radio("Feed the image through", list(FEEDS), format_func=FEEDS.get, key="attr_feed", horizontal=True,
                    help="A shared preprocessing gives both models the same pixels, so their maps compare pixel by "
                         "pixel; each its own shows what each model sees in use (the difference map is then taken "
                         "on the SE model's grid).")
    shared = {"se": pre_se, "vanilla": pre_va}.get(feed)
    return feed, shared or pre_se, shared or pre_va
