"""Home: what a Squeeze-and-Excitation block does, drawn with the selected pair's actual SE configuration."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import caching, state
from dashboard.page_index import page_summaries
from se_core.analysis.diagram import integration_dot, integration_text, se_block_dot, se_widths
from se_core.models.pairs import PAIRS
from se_core.models.registry import get_spec
from se_core.nn.se import SEConfig


def render() -> None:
    """The Home page."""
    pair_name = state.current_pair()
    spec = PAIRS[pair_name]

    st.title("SE Lens")
    st.caption("An interactive look inside Squeeze-and-Excitation networks: what the excitation gates do, "
               "where they matter, and what they cost, on an SE model and its vanilla twin.")

    intro, howto = st.columns([3, 2], gap="large")
    with intro:
        st.subheader("The Squeeze-and-Excitation block")
        st.markdown(
            "An SE block recalibrates the channels of a feature map $U \\in \\mathbb{R}^{C\\times H\\times W}$ "
            "using global context:\n\n"
            "1. **Squeeze**: global average pooling summarises each channel by one number, "
            "$z_c = \\frac{1}{HW}\\sum_{i,j} u_c(i,j)$, giving $z \\in \\mathbb{R}^C$.\n"
            "2. **Excitation**: a bottleneck of two fully connected layers, "
            "FC($C \\to C/r$) → ReLU → FC($C/r \\to C$) → sigmoid gate, gives per-channel weights "
            "$s = \\sigma(W_2\\,\\delta(W_1 z)) \\in (0,1)^C$.\n"
            "3. **Scale**: each channel is multiplied by its gate, $\\tilde{x}_c = s_c \\cdot u_c$.\n\n"
            "The reduction ratio $r$ trades capacity for cost; in a ResNet the block sits on the residual "
            "branch just before the sum with the identity (paper Fig. 5, *standard*).")
        st.caption("J. Hu, L. Shen, G. Sun, *Squeeze-and-Excitation Networks*, CVPR 2018; extended version with "
                   "S. Albanie and E. Wu, IEEE TPAMI 42(8), 2020. [arXiv:1709.01507](https://arxiv.org/abs/1709.01507)")
    with howto:
        st.subheader("How to use")
        pages = [(t, d) for t, d in page_summaries() if t.lower() != "home"]
        st.markdown(
            "1. Pick a **model pair** in the sidebar (an SE network and its vanilla counterpart); the choice is kept "
            "in the URL (`?pair=...`), so a link reopens the same view.\n"
            "2. Open a page from the sidebar:\n"
            + "".join(f"    - **{t}**: {d}\n" if d else f"    - **{t}**\n" for t, d in pages)
            + "3. Every chart's camera button downloads it as PNG or SVG (format picked in the sidebar); "
              "tables have a CSV download.")

    st.divider()
    st.subheader("The SE block of the selected pair")
    st.caption(f"Pair **{spec.title}**: SE model `{spec.se_arch}`, vanilla model `{spec.vanilla_arch}`, "
               f"data {spec.dataset}.")

    pair, problem = caching.try_pair(pair_name)
    se_spec = get_spec(spec.se_arch)
    config: SEConfig | None
    if pair is not None:
        meta = pair.se.meta
        config = SEConfig.from_dict(meta.se_config) if meta.se_config else se_spec.default_se
        source = f"metadata of the loaded checkpoint `{Path(pair.se.source).name}`"
        widths = se_widths(pair.se.model)
    else:
        st.info(f"{problem}\n\nThe diagram below shows the registry's default configuration for `{spec.se_arch}` "
                "instead of the shipped checkpoint's.", icon=":material/info:")
        config = se_spec.default_se
        source = f"registry default of `{spec.se_arch}` (weights not loaded)"
        widths = caching.registry_widths(spec.se_arch, config.to_json() if config is not None else "")

    units = pd.DataFrame([{"unit": w.site, "stage": w.stage, "channels C": w.channels, "hidden h": w.hidden,
                           "parameters": w.params} for w in widths])
    design = ((pair.se.meta.extra or {}) if pair is not None else se_spec.meta).get("se_design", "")
    if not widths:
        st.warning(f"`{spec.se_arch}` has no SE units to draw; check the pair's definition.")
    elif config is None:
        # A library model (timm / torchvision) whose SE design is not one SEConfig describes: show its real units.
        m = st.columns(3)
        m[0].metric("SE units", len(widths))
        m[1].metric("SE parameters", f"{sum(w.params for w in widths):,}")
        m[2].metric("Hidden / channels", f"{min(w.hidden / w.channels for w in widths):.3f}–"
                                         f"{max(w.hidden / w.channels for w in widths):.3f}",
                    help="Range over the units of h / C (1/r for a fixed reduction ratio r)")
        st.markdown(f"**SE design of `{spec.se_arch}`.** {design or 'Set by the library model itself.'}")
        st.caption(f"Read from the {source}: the units' widths below are measured on the model.")
        st.dataframe(units, hide_index=True, width="stretch")
    else:
        stages = "all" if config.stages is None else ", ".join(map(str, config.stages))
        m = st.columns(6)
        m[0].metric("Reduction r", config.reduction)
        m[1].metric("Squeeze", {"avg": "avg pool", "max": "max pool", "none": "none"}[config.squeeze])
        m[2].metric("Gate", config.gate)
        m[3].metric("Integration", config.integration + (" (3×3)" if config.site == "3x3" else ""))
        m[4].metric("SE units", len(widths), help=f"in stage(s): {stages}")
        m[5].metric("SE parameters", f"{sum(w.params for w in widths):,}",
                    help="Parameters of all SE units of the model (2·C·h weights + h + C biases each), counted on the model")
        st.caption(f"Configuration from the {source}.")

        groups: dict[tuple[int, int, int], list[str]] = {}
        for w in widths:
            groups.setdefault((w.stage, w.channels, w.hidden), []).append(w.site)
        keys = list(groups)
        choice = st.selectbox(
            "Block to draw", range(len(keys)), index=len(keys) - 1, key="home-se-block",
            format_func=lambda i: (f"stage {keys[i][0]}: C = {keys[i][1]}, hidden = {keys[i][2]} "
                                   f"({len(groups[keys[i]])} unit{'s' if len(groups[keys[i]]) > 1 else ''})"),
            help="SE units of the same stage share their widths; the hidden width is max(1, C // r).")
        stage, channels, hidden = keys[choice]
        block = "bottleneck" if se_spec.family in ("resnet50", "regnet") else "basic"
        d1, d2, d3 = st.columns([4, 3, 3], gap="medium")
        with d1:
            st.graphviz_chart(se_block_dot(config, channels, title=f"SE unit, stage {stage}: C = {channels}, "
                                                                    f"r = {config.reduction}, hidden = {hidden}"))
        with d2:
            st.graphviz_chart(integration_dot(config, block=block))
        with d3:
            squeezed = (f"C = {channels} channels are squeezed ({config.squeeze} pooling) to a {channels}-vector z"
                        if config.squeeze != "none" else
                        f"Without a squeeze (NoSqueeze), the two FCs act as 1×1 convs on all {channels} channels at "
                        "every position")
            st.markdown(f"**This unit.** {squeezed}, reduced to hidden = max(1, C // r) = {hidden} units, expanded back "
                        f"to {channels} gates s ({config.gate}), and X is rescaled by s (dashed path).")
            st.markdown(f"**Where the units sit.** {integration_text(config)}")
            st.markdown("Paper Fig. 5 compares the *standard* placement with SE-PRE (start of the residual branch), "
                        "SE-POST (after the sum and ReLU) and SE-Identity (on the shortcut). In the paper's ablation "
                        "(TPAMI Table 14, SE-ResNet-50 on ImageNet) SE-PRE and SE-Identity do about as well as "
                        "standard; SE-POST is worse.")
        if hidden != config.hidden(channels):
            st.warning(f"The loaded unit has hidden width {hidden}, but C // r gives {config.hidden(channels)}: "
                       "the checkpoint's metadata and weights disagree.")
        with st.expander("All SE units of the model"):
            st.dataframe(units, hide_index=True, width="stretch")


render()
