"""Attributions: where the SE model and its vanilla twin look, by four Captum methods.

Thin page: ``se_core.analysis.attribution`` computes (on a pooled view of each shared model), :mod:`dashboard.attributing`
caches per (image digest, pair, method, parameters), :mod:`dashboard.figures.attributions` draws.
Quality metrics and faithfulness curves (:mod:`dashboard.explanation_quality`), which cost many forward
passes, are computed only when asked for.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import attributing as calc
from dashboard.attribution_settings import input_feed, method_settings
from dashboard.caching import get_pair
from dashboard.display import show
from dashboard.explanation_quality import Explained, faithfulness_section, quality_section
from dashboard.figures import attributions as figs
from dashboard.state import current_pair
from dashboard.uploads import image_inputs
from se_core.analysis.attribution import METHOD_TITLES, METHODS, default_layer
from se_core.data.images import ImageError, denormalize, to_tensor


def render() -> None:
    """The Attributions page."""
    st.title("Attributions")
    st.caption("Which pixels drive the chosen class's logit, for the SE model and its vanilla counterpart, by "
               "Captum's Integrated Gradients, Saliency, Occlusion and Layer Grad-CAM on the same input.")
    pair_name = current_pair()
    pair = get_pair(pair_name)
    if pair is None:
        st.stop()
    images = image_inputs("attributions")
    if not images:
        st.info("Upload an image or pick a shipped sample above to see attributions.")
        st.stop()
    names = [im.name for im in images]
    uploads = tuple(im.digest for im in images if im.source == "upload")
    if uploads and st.session_state.get("attr_uploads") != uploads:
        st.session_state["attr_image"] = images[0].name  # a new upload is what the user wants to see
    st.session_state["attr_uploads"] = uploads
    if st.session_state.get("attr_image") not in names:
        st.session_state["attr_image"] = names[0]
    chosen = st.selectbox("Image", names, key="attr_image", help="Attributions are computed for one image at a time.") \
        if len(images) > 1 else names[0]
    item = images[names.index(chosen)]

    feed, pre, pre_va = input_feed(pair)
    try:
        x = to_tensor(item.image, pre)
        x_va = to_tensor(item.image, pre_va) if feed == "own" else x
    except ImageError as e:
        st.error(f"'{item.name}' cannot be fed to the models: {e}")
        st.stop()
    seen = denormalize(x, pre)
    seen_va = denormalize(x_va, pre_va) if feed == "own" else None
    classes = pair.se.class_names
    p_se, p_va = calc.predictions(pair.se.model, pair.vanilla.model, x, x_va, pair_name, item.digest, feed)

    left, right = st.columns([3, 2])
    methods = left.multiselect("Methods", METHODS, default=list(METHODS), format_func=METHOD_TITLES.get,
                               key="attr_methods")
    target = right.selectbox(
        "Target class", range(len(classes)), index=int(np.argmax(p_se)), key=f"attr_target_{pair_name}_{item.digest}",
        format_func=lambda k: f"{classes[k]} (SE p={p_se[k]:.2f}, vanilla p={p_va[k]:.2f})",
        help="Attributions explain this class's logit. Default: the SE model's top-1 prediction.")
    configs, opacity = method_settings(pair.se.model, pre.size, methods)
    if not methods:
        st.info("Choose at least one method.")
        st.stop()

    results = calc.pair_attributions(pair, x, x_va, pair_name, item.digest, int(target),
                                     {m: configs[m] for m in methods}, feed)

    label = classes[int(target)]
    for method, res in results.items():
        title = METHOD_TITLES[method]
        st.subheader(title)
        m = st.columns(4)
        m[0].metric("SE time", f"{res.se.seconds:.2f} s")
        m[1].metric("vanilla time", f"{res.vanilla.seconds:.2f} s")
        if method == "integrated_gradients":
            help_ = ("Captum's convergence delta: sum of attributions − (f(x) − f(baseline)) for the target logit; "
                     "near 0 means the integral is accurate. Raise the IG steps if it is large.")
            m[2].metric("SE IG delta", f"{res.se.delta:.1e}", help=help_)
            m[3].metric("vanilla IG delta", f"{res.vanilla.delta:.1e}", help=help_)
            st.caption("Convergence delta, " + "; ".join(
                calc.delta_note(r, d.delta, d.output_gap) for r, d in (("SE", res.se), ("vanilla", res.vanilla))) + ".")
        elif method == "layer_gradcam":
            m[2].metric("Grad-CAM layer", res.se.layer or default_layer(pair.se.model))
        a, b = st.columns([2, 1])
        stem = f"attributions-{method}-{item.name}-{label}".replace(" ", "_")
        with a:
            show(figs.pair_maps(res, seen, f"{title} · class '{label}'", opacity, seen_va), key=f"attr-pair-{method}",
                 filename=stem, data=calc.map_table(res))
        with b:
            show(figs.difference(res, seen, "SE − vanilla (scaled maps)", opacity), key=f"attr-diff-{method}",
                 filename=f"{stem}-difference")
        st.caption(f"Each model's map is divided by its own largest |value| (SE {res.se_scale:.3g}, vanilla "
                   f"{res.vanilla_scale:.3g}) so one colour scale shows where each model looks, not how large its "
                   "logits are; the difference is SE − vanilla of those scaled maps (red: SE relies more).")

    explained = Explained(pair, pair_name, item.digest, item.name, feed, x, x_va, int(target), label, configs, results)
    quality_section(explained)
    faithfulness_section(explained)


render()
