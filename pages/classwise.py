"""Class-wise: how the SE gates depend on the class, block by block, over a whole data set (paper Sec. 7, Fig. 6-7).

Layout only: ``se_core.analysis.stats`` computes the streaming class-wise statistics (disk-cached by
checkpoint hash and data digest, so a data set is never processed twice for one model; see
:mod:`dashboard.excitation`), :mod:`dashboard.knockout` runs the Knock-out tab, and
:mod:`dashboard.datasets` confines typed paths to the configured data roots.
"""
from __future__ import annotations

import streamlit as st

from dashboard import excitation, knockout
from dashboard.caching import get_pair
from dashboard.datasets import choose_data
from dashboard.display import show
from dashboard.figures import classwise as figs
from dashboard.figures.common import gate_movement
from dashboard.state import current_pair
from se_core.analysis.movement import STILL_STD


def render() -> None:
    """The Class-wise page."""
    st.title("Class-wise excitation")
    st.caption("How the SE gates depend on the class of the image, block by block, over a whole data set (paper Sec. 7, "
               "Fig. 6 and Fig. 7): one streaming pass per model keeps per-class counts, sums, sums of squares and "
               "histograms of every channel's gate and squeeze value.")
    pair_name = current_pair()
    pair = get_pair(pair_name)
    if pair is None:
        st.stop()

    source, data = choose_data(pair, pair_name)
    if source == "shipped":
        all_stats = excitation.shipped(pair, pair_name)
    elif data is not None:
        all_stats = excitation.computed(pair, data)
    else:
        all_stats = None
    if not all_stats:
        st.stop()
    se_stats, van_stats = all_stats["se"], all_stats.get("vanilla")
    if not se_stats.gate_sites:
        st.info("The SE model of this pair has no SE gates, so there is no excitation to show; choose another pair.")
        st.stop()

    m = st.columns(4)
    m[0].metric("Images", f"{se_stats.n_images:,}")
    m[1].metric("Classes", se_stats.num_classes)
    m[2].metric("SE blocks", len(se_stats.gate_sites))
    m[3].metric("Quantile error", f"± {se_stats.quantile_error(se_stats.gate_sites[0].name):.4f}",
                help=f"Medians and quartiles come from {se_stats.bins}-bin histograms over each gate's range: each is "
                     "within half a bin width of the exact sample quantile (an IQR within one bin width). "
                     "Means and variances are exact.")
    with st.expander("Provenance"):
        st.caption(se_stats.meta.get("data", {}).get("name", ""))
        st.json({role: s.meta for role, s in all_stats.items() if s is not None}, expanded=False)

    classes = list(se_stats.classes)
    site_labels = {s.name: f"{s.label} · {s.name} · C={s.channels}" for s in se_stats.gate_sites}
    site_names = list(site_labels)
    tabs = st.tabs(["Fig. 6: class means", "Fig. 7: median & IQR", "Selectivity vs depth", "Squeeze z (both models)",
                    "Knock-out"])

    with tabs[0]:
        c1, c2 = st.columns([3, 1])
        chosen = c1.multiselect("Classes", classes, default=classes[:4], key="cw_f6_classes",
                                help="The all-class mean (black, dashed) is always drawn.")
        layout = c2.radio("Blocks", ["one", "all"], key="cw_f6_layout", horizontal=True,
                          format_func={"one": "one block", "all": "all blocks"}.get)
        if layout == "one":
            site = st.select_slider("Block (depth order)", site_names, value=site_names[-1], key="cw_f6_block",
                                    format_func=site_labels.get)
            frame = se_stats.channel_frame(site)
            show(figs.fig6_block(se_stats, site, chosen), key="cw_f6", filename=f"fig6_{site}",
                 data=frame[frame["class"].isin(chosen + ["all"])])
        else:
            show(figs.fig6_all(se_stats, chosen), key="cw_f6_all", filename="fig6_all_blocks")
        st.caption("Early blocks: gates barely depend on the class (lines overlap the all-class mean); later blocks: "
                   "class-specific values (paper Fig. 6).")

    with tabs[1]:
        c1, c2 = st.columns([1, 3])
        cls = c1.selectbox("Class", classes, key="cw_f7_class")
        last_of_stage = list({s.stage: s.name for s in se_stats.gate_sites}.values())
        blocks = c2.multiselect("Blocks", site_names, default=last_of_stage, key="cw_f7_blocks",
                                format_func=site_labels.get)
        st.caption(f"Median (line) and inter-quartile range (band) over the images of **{cls}**, from {se_stats.bins}-bin "
                   f"histograms: each quantile within ±{se_stats.quantile_error(site_names[0]):.4f} (half a bin) of the "
                   "exact sample quantile. Dotted: the median over all classes.")
        for site in blocks:
            frame = se_stats.channel_frame(site)
            show(figs.fig7_block(se_stats, site, cls), key=f"cw_f7_{site}", filename=f"fig7_{cls}_{site}",
                 data=frame[frame["class"].isin([cls, "all"])])

    with tabs[2]:
        st.markdown(
            "**Class selectivity** of a channel is the correlation ratio $\\eta^2$: the share of the gate's variance "
            "over all images that lies *between* classes, "
            "$\\eta^2_c = \\sum_k n_k(\\bar s_{k,c} - \\bar s_c)^2 \\,/\\, \\sum_i (s_{i,c} - \\bar s_c)^2$. "
            "0: every class has the same mean gate (class-agnostic); 1: the class alone fixes the gate. A block's value "
            "is the mean over its channels, computed exactly from the per-class sums. The paper's claim: excitation is "
            "class-agnostic early and increasingly class-specific with depth.")
        sel = excitation.selectivity_frame(se_stats, van_stats)
        show(figs.selectivity(sel), key="cw_sel", filename="class_selectivity_vs_depth", data=sel)
        movement = se_stats.movement_frame()
        st.markdown(f"**Gate movement.** Selectivity is a share of variance, so it says nothing when a gate hardly varies: "
                    f"a block whose channels' gates move by less than {STILL_STD} (std across these images) in most "
                    f"channels is **frozen**, a constant scale rather than attention. Here: {int(movement['frozen'].sum())} "
                    f"of {len(movement)} blocks.")
        show(gate_movement(movement), key="cw_movement", filename="gate_movement", data=movement)

    with tabs[3]:
        if van_stats is None:
            st.info("No statistics of the vanilla model; only the SE model's z is shown.")
        z_names = [s.name for s in se_stats.z_sites]
        z_site = st.select_slider("Block", z_names, value=z_names[-1], key="cw_z_block",
                                  format_func=lambda n: f"{se_stats.site(n).label} · {n}")
        zdf = excitation.z_frame(se_stats, van_stats, z_site)
        show(figs.z_block(zdf, z_site, se_stats.site(z_site).label), key="cw_z", filename=f"z_{z_site}", data=zdf)
        st.caption("z is the global average of the block's feature map where the SE unit (or, in the vanilla net, its "
                   "placeholder) sits. Selectivity of z per block is drawn on the previous tab.")

    with tabs[4]:
        knockout.section(pair, pair_name, se_stats, data)


render()
