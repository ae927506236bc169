"""The Method settings of the Attributions page: IG steps, batch size, baseline, Grad-CAM layer, occlusion
window and stride, and the maps' opacity; one :class:`AttributionConfig` per chosen method."""
from __future__ import annotations

import streamlit as st
import torch

from se_core.analysis.attribution import BASELINES, AttributionConfig, stage_layers

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
