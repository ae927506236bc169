"""Inspect: what an SE network and its vanilla twin see in your images, block by block.

Layout only: every number comes from :mod:`se_core.analysis.inspect` (cached in :mod:`dashboard.probing`),
every chart from :mod:`dashboard.figures.inspector`.
"""
from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

import streamlit as st

from dashboard import display, handoff, probing, state, switch_off
from dashboard.caching import get_pair
from dashboard.display import lazy_expander
from dashboard.figures import inspector as figs
from dashboard.uploads import image_inputs
from se_core.data.images import ImageError

if TYPE_CHECKING:
    import plotly.graph_objects as go


def _show(fig: go.Figure, key: str, filename: str) -> None:
    """The shared chart display, with a file name safe on every OS (dots too)."""
    display.show(fig, key=key, filename=display.dotless_stem(filename))


def render() -> None:
    """The Inspect page."""
    st.title("Inspect")
    st.caption("Run the SE network and its vanilla twin on your images and look inside: predictions, the squeeze "
               "descriptors z (channel means entering each SE unit), the excitation gates s it computes from them, "
               "what the gates do to the features, and what happens when you switch them off.")
    pair_name = state.current_pair()
    pair = get_pair(pair_name)
    if pair is None:
        st.stop()
    inputs = image_inputs("inspect")
    if not inputs:
        st.info("Upload an image or choose one of the shipped samples above to start.")
        st.stop()
    names, digests = tuple(im.name for im in inputs), tuple(im.digest for im in inputs)
    images = [im.image for im in inputs]
    pkey = probing.pair_key(pair)
    try:
        result = probing.inspect(pkey, digests, names, pair, images)
    except (ImageError, ValueError, RuntimeError) as e:
        st.error(f"The models could not process these images ({e}). Remove the most recent upload, or re-save the "
                 "image as an RGB PNG or JPEG and upload it again.")
        st.stop()
    slug = hashlib.sha1("".join(digests).encode()).hexdigest()[:8]

    st.header("Predictions", divider="gray")
    same_input = result.se.preprocess == result.vanilla.preprocess
    h, w = result.se.preprocess.size
    for i, inp in enumerate(inputs):
        cols = st.columns([1, 1, 3] if same_input else [1, 1, 1, 3], vertical_alignment="center")
        cols[0].image(probing.thumb(inp.digest, inp.image), caption=f"{inp.name} ({inp.image.width}×{inp.image.height})",
                      output_format="JPEG")
        cols[1].image(probing.seen(pkey, "se", inp.digest, result.se.seen[i]),
                      caption=f"what {'both models see' if same_input else 'the SE model sees'}: {w}×{h}, "
                              "denormalized, enlarged with nearest", output_format="PNG")
        if not same_input:
            vh, vw = result.vanilla.preprocess.size
            cols[2].image(probing.seen(pkey, "vanilla", inp.digest, result.vanilla.seen[i]),
                          caption=f"what the vanilla model sees: {vw}×{vh}", output_format="PNG")
        with cols[-1]:
            _show(figs.top5(result, i), key=f"inspect_top5_{i}", filename=f"top5_{inp.name}")

    se_sites, gate_sites = result.se.sites, result.se.gate_sites
    if not gate_sites:
        st.warning(f"{result.se.name} has no recognisable SE unit, so there are no gates to show; only the squeeze "
                   "descriptors z are available. Choose another model pair in the sidebar.")

    st.header("Inside the blocks", divider="gray")
    by_label = {s_.label: s_ for s_ in se_sites}
    labels = list(by_label)
    c1, c2 = st.columns([1, 2])
    handoff.focus_handed_over(digests, names, f"inspect_focus_{slug}")
    focus_name = c1.selectbox("Image", names, key=f"inspect_focus_{slug}",
                              help="The image shown in the single-image charts below (heatmaps, energy).")
    focus = names.index(focus_name) if focus_name in names else 0
    image = names[focus]
    last_stage = max(s_.stage for s_ in se_sites) if se_sites else 0
    default_label = next((s_.label for s_ in se_sites if s_.stage == last_stage), labels[0] if labels else None)
    block_label = c2.select_slider("Block", options=labels, value=default_label, key=f"inspect_block_{pair_name}",
                                   help="stage.block of the network; used by the per-block charts below.") if labels else None
    block = by_label[block_label] if block_label else None

    if gate_sites:
        st.subheader("Excitation gates s")
        st.caption("s = the SE unit's per-channel scale, computed from z. Rows are blocks, columns channels; "
                   "values near 1 keep a channel, near 0 suppress it; gray marks channels a block does not have.")
        lab, mat = result.se.gate_matrix(focus)
        _show(figs.block_heatmap(lab, mat, f"Gates s of {result.se.name}, {image}", "s", "gate_heatmap", image,
                                 bounded=True), key="inspect_gate_heatmap", filename=f"gates_{image}")
        if (box := lazy_expander("Distribution of the gates over channels (every block, all images)", "inspect_more_gates")):
            with box:
                _show(figs.gate_box(result), key="inspect_gate_box", filename=f"gate_distribution_{slug}")

    st.subheader("Squeeze descriptors z")
    st.caption("z = mean of each channel over H×W, read where the SE unit sits (in the vanilla net at the same place: "
               "its identity placeholder, or, for timm / torchvision models, the output of the layer after which the "
               "SE twin recalibrates).")
    if block is not None:
        _show(figs.z_pair(result, block.name, focus), key="inspect_zblock", filename=f"z_{block.label}_{image}")
    if (box := lazy_expander("z heatmaps of both models (every block, the chosen image)", "inspect_more_z")):
        with box:
            st.caption("Blocks with fewer channels are padded (gray).")
            for col, mp in zip(st.columns(2), (result.se, result.vanilla)):
                lab, mat = mp.z_matrix(focus)
                with col:
                    title = f"z in the {'SE' if mp.role == 'se' else 'vanilla'} model ({mp.name}), {image}"
                    _show(figs.block_heatmap(lab, mat, title, "z", f"z_heatmap_{mp.role}", image),
                          key=f"inspect_zmap_{mp.role}", filename=f"z_heatmap_{mp.role}_{image}")

    if gate_sites:
        st.subheader("Compare images at one block")
        if block is None or block.name not in result.se.s:
            st.info("The chosen block has no SE unit; pick another block above.")
        elif (box := lazy_expander("Gates s and squeeze z of all images at the chosen block", "inspect_more_compare")):
            with box:
                st.caption("Like Fig. 6 of the paper, for your images: early blocks tend to give every image similar "
                           "gates, later ones differ by class. Add images to compare them.")
                for col, what, name in zip(st.columns(2), "sz", ("Gates s", "Squeeze z")):
                    with col:
                        _show(figs.compare_images(result, block.name, what, f"{name} at {block.label}, all images"),
                              key=f"inspect_compare_{what}", filename=f"compare_{what}_{block.label}_{slug}")

        st.subheader("What the gates do")
        if block is None or block.name not in result.se.energy_before or block.name not in result.se.s:
            st.info("The chosen block has no SE unit, so nothing is recalibrated there; pick another block above.")
        else:
            eb = float(result.se.energy_before[block.name][focus].sum())
            ea = float(result.se.energy_after[block.name][focus].sum())
            st.caption(f"Energy of each channel, mean over H×W of x², entering the SE unit of {block.label} and "
                       f"leaving it, for {image}. SE rescales channel c by s_c, so its energy by s_c².")
            m1, m2, m3 = st.columns(3)
            m1.metric("Energy before SE (sum over channels)", f"{eb:.4g}")
            m2.metric("Energy after SE (sum over channels)", f"{ea:.4g}")
            m3.metric("Kept", f"{ea / eb:.1%}" if eb > 0 else "n/a",
                      help="Sum over channels of mean(x²) after / before. For a standard SE unit each channel's "
                           "energy is multiplied by s².")
            if (box := lazy_expander("Energy of every channel, before and after SE", "inspect_more_energy")):
                with box:
                    _show(figs.energy(result.se, block.name, focus, image), key="inspect_energy",
                          filename=f"energy_{block.label}_{image}")

        switch_off.section(result, pair, digests, names, images, focus, pair_name)

    st.header("Export", divider="gray")
    st.download_button("Download z, s and channel energy (CSV)", functools.partial(probing.csv_bytes, result),
                       file_name=f"se_lens_inspect_{pair_name}_{slug}.csv", mime="text/csv", key="inspect_csv",
                       on_click="ignore", icon=":material/download:",
                       help="One row per image, model, block (site, stage, block) and channel; s is empty for the "
                            "vanilla model. Every chart exports itself as PNG or SVG (camera button; format in the sidebar).")
    st.caption(f"{probing.csv_rows(result):,} rows: {len(names)} image(s) × both models × every block × every channel.")


render()
