"""Gate space: what the gates encode, image by image, over a data set (issue #20).

Layout only: :mod:`se_core.analysis.gates` collects every image's gate and squeeze vectors (disk-cached by
checkpoint hash and data digest, see :mod:`dashboard.gatespace`) and computes the map, the top channels and
the input dependence; :mod:`dashboard.figures.gatespace` draws them.
"""
from __future__ import annotations

import streamlit as st

from dashboard import gatespace
from dashboard.caching import get_pair
from dashboard.datasets import choose_data
from dashboard.display import download_csv, show, show_selectable
from dashboard.figures import gatespace as figs
from dashboard.state import current_pair
from se_core.analysis import gates as G
from se_core.analysis.gates.cli import command
from se_core.analysis.movement import STILL_STD


def render() -> None:
    """The Gate space page."""
    st.title("Gate space")
    st.caption("What the SE gates encode, image by image: every image's gate vector s (and the squeeze descriptors "
               "z of both models) at each block, mapped to 2-D, the channels each class turns up, and how much a "
               "block's gates depend on the input at all (GCNet's question) against depth.")
    pair_name = current_pair()
    pair = get_pair(pair_name)
    if pair is None:
        st.stop()
    _, data = choose_data(pair, pair_name, prefix="gs", shipped=False, command=command)
    samples = gatespace.computed(pair, data) if data is not None else None
    if not samples:
        st.stop()
    se = samples["se"]
    m = st.columns(4)
    m[0].metric("Images", f"{se.n_images:,}", help="Evenly spaced images of the data set, the same for both "
                f"models, at most {G.MAX_SAMPLE_MB:g} MB of float16 vectors per model.")
    m[1].metric("Classes", se.num_classes)
    m[2].metric("SE blocks", len(se.gate_sites))
    on_disk = gatespace.disk_bytes(samples, pair, data)
    m[3].metric("Kept on disk", f"{on_disk / 1e6:.1f} MB",
                help=f"{on_disk:,} bytes: the compressed .npz cache files of both models.")
    options = gatespace.series_options(samples)
    if "gs_series" in st.session_state and st.session_state["gs_series"] not in options:
        del st.session_state["gs_series"]
    series = st.radio("Vectors", options, format_func=gatespace.SERIES.get, key="gs_series", horizontal=True,
                      help="The SE model's gates s, or the squeeze descriptors z (channel means entering each SE "
                           "unit; for the vanilla model at the same sites) of either model.")
    sample, what = gatespace.series_of(samples, series)
    sites = {s.name: f"{s.label} · {s.name} · C={s.channels}" for s in sample.sites(what)}
    names = list(sites)
    tabs = st.tabs(["Gate-space map", "Top channels per class", "Input dependence vs depth"])

    with tabs[0]:
        site = st.select_slider("Block", names, value=names[-1], key=f"gs_map_block_{series}", format_func=sites.get)
        proj = G.pca(sample.values(what, site), sample.labels, sample.num_classes)
        info, points = sample.site(site), gatespace.map_table(sample, proj)
        fig = figs.gate_map(proj.coords, sample.labels, sample.classes, proj.centroids, proj.explained,
                            points["row"].to_numpy(),
                            title_text=f"{gatespace.SERIES[series]} at {info.label} ({site}), first two principal "
                                       f"components: {proj.explained.sum():.1%} of the variance",
                            site=site, what=what)
        rows = show_selectable(fig, key=f"gs_map_{series}_{site}", filename=f"gate_map_{series}_{site}")
        st.caption("Each point is one image, coloured by its class; crosses are the class centroids. Drag a box "
                   "(or use the lasso in the toolbar, or click a point) to see the images; double-click to clear.")
        download_csv(points, f"gate_map_{site}", key="gs_map_csv")
        if rows:
            gatespace.selected_images(sample, data, rows)

    with tabs[1]:
        c1, c2 = st.columns([3, 1])
        site = c1.select_slider("Block", names, value=names[-1], key=f"gs_top_block_{series}", format_func=sites.get)
        channels = sample.site(site).channels
        k = int(c2.number_input("k channels per class", 1, channels, min(8, channels), key=f"gs_top_k_{channels}"))
        top = G.top_channels(sample.values(what, site), sample.labels, sample.classes, k, standardize=what == "z")
        score = "class mean − all-class mean" + (" (in all-image std)" if what == "z" else "")
        st.caption(f"A class's top {k} channels have the highest {score} at {sample.site(site).label}. Their overlap "
                   "between two classes is the Jaccard index |A ∩ B| / |A ∪ B| (1: the same channels).")
        show(figs.jaccard(top.jaccard(), sample.classes, title_text=f"Overlap of the classes' top {k} channels",
                          site=site, k=k), key="gs_jaccard", filename=f"jaccard_{site}_k{k}")
        union = sorted(set().union(*top.sets()))
        member = [[c in s for c in union] for s in top.sets()]
        show(figs.top_channels(top.score[:, union], member, sample.classes, union, site=site, score_name="score",
                               title_text=f"Score of the channels in any class's top {k} (● in that class's)"),
             key="gs_top", filename=f"top_channels_{site}_k{k}")
        st.markdown(gatespace.overlap_text(top))

    with tabs[2]:
        table = gatespace.dependence_table(samples)
        st.markdown(
            "A block's gate values (all images × channels) have a variance that splits exactly into a **static** "
            "part (each channel's mean differs from the others: a fixed scale, the same for every image), a part "
            "**between classes** and one **between images of one class** (law of total variance; the between-class "
            "part per channel over the across-image variance is the class selectivity η² of the Class-wise page). "
            "Shares are scale-free, so a gate that barely moves can still read as input-dependent: the spread "
            f"below says how far it moves, and blocks whose channels mostly move less than {STILL_STD} are frozen.")
        show(figs.input_vs_depth(table), key="gs_depth", filename="input_dependence_vs_depth", data=table)
        one = table[table["series"] == gatespace.SERIES[series]]
        show(figs.variance_split(one, title_text=f"Variance split per block: {gatespace.SERIES[series]}"),
             key="gs_split", filename=f"variance_split_{series}")
        gates = table[table["series"] == gatespace.SERIES["se:s"]]
        if len(gates):
            show(figs.spread_vs_depth(gates, title_text="Per-image spread of the SE gates", threshold=STILL_STD),
                 key="gs_spread", filename="gate_spread_vs_depth")
            st.caption(f"Frozen blocks (grey): {', '.join(gates.loc[gates['frozen'], 'label']) or 'none'}.")


render()
