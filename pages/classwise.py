"""Class-wise: how the SE gates depend on the class, block by block, over a whole data set (paper Sec. 7, Fig. 6-7).

Layout only: ``se_core.analysis.stats`` computes the streaming class-wise statistics (disk-cached by
checkpoint hash and data digest, so a data set is never processed twice for one model),
``se_core.analysis.knockout`` the accuracy with blocks knocked out, ``se_core.util.paths`` confines typed
paths to the configured data roots.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard.caching import get_pair
from dashboard.charts import PAIR_COLORS, PALETTE, band_curves, bar_compare, gate_movement, show
from dashboard.state import current_pair
from se_core.analysis import knockout as ko
from se_core.analysis import stats as S
from se_core.analysis.evaluate import eval_subset_indices
from se_core.analysis.movement import STILL_STD
from se_core.config import stats_cache_dir
from se_core.data.datasets import DataError, ImageSet, load_dataset
from se_core.models.weights import LoadedModel, LoadedPair
from se_core.probe.sites import pair_sites
from se_core.util.files import atomic_write_bytes, file_sha256
from se_core.util.paths import PathError, check_tree, data_roots, resolve_user_path

SOURCES = {"shipped": "Shipped: CIFAR-10 JPEG test set (full)",
           "cifar": "CIFAR-10 JPEG test set (compute here)",
           "folder": "ImageFolder folder (typed path)",
           "torchvision": "torchvision CIFAR-10 root (typed path)"}
STOP_STATS = "cw_stop_stats"
STOP_KO = "cw_stop_knockout"
KO_REQUEST = "cw_ko_request"


# --------------------------------------------------------------------------- cached loading


@st.cache_data(max_entries=16, show_spinner=False)
def _load_stats(path: str, mtime_ns: int) -> S.ExcitationStats:
    return S.load_stats(path)


def _stats_file(path: Path) -> S.ExcitationStats:
    return _load_stats(str(path), path.stat().st_mtime_ns)


@st.cache_resource(max_entries=4, show_spinner="Loading the data set...")
def _dataset(spec: str, split: str, size: tuple[int, int], subset: int | None, stamp: int) -> ImageSet:
    data = load_dataset(spec, split, size)
    if subset and subset < len(data):
        data = data.subset(eval_subset_indices(len(data), subset))
    return data


@st.cache_data(max_entries=16, show_spinner=False)
def _sha(path: str, mtime_ns: int) -> str:
    return file_sha256(path)


@st.cache_data(max_entries=32, show_spinner=False)
def _check_tree(path: str, mtime_ns: int, roots: tuple[str, ...]) -> int:
    """Confinement check of a typed folder's entries, once per (folder, modification time, roots)."""
    return check_tree(path, roots)


def _ckpt_sha(lm: LoadedModel) -> str:
    return _sha(lm.source, Path(lm.source).stat().st_mtime_ns)


def _request_stop(key: str) -> None:
    """Stop button callback. The click also reruns the page, which interrupts the running pass at its next
    progress update; the flag covers the rest (it is read between batches and shown after the rerun)."""
    st.session_state[key] = True


def _stopper(key: str):
    return lambda: bool(st.session_state.get(key, False))


# --------------------------------------------------------------------------- figures


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 380) -> go.Figure:
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.0}, height=height,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, xaxis_title=x, yaxis_title=y,
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0.0})
    return fig


def _class_colors(classes: list[str]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}


def fig6_block(stats: S.ExcitationStats, site: str, classes: list[str]) -> go.Figure:
    """Mean gate per channel at one block for the chosen classes, plus the all-class mean."""
    info = stats.site(site)
    mean = stats.class_mean(site)
    ch = np.arange(info.channels)
    colors = _class_colors(classes)
    fig = go.Figure()
    for cls in classes:
        k = stats.classes.index(cls)
        fig.add_scatter(x=ch, y=mean[k], mode="lines", name=cls, line={"color": colors[cls], "width": 1.5})
    fig.add_scatter(x=ch, y=stats.mean(site), mode="lines", name="all classes", line={"color": "#000", "dash": "dash", "width": 2.5})
    fig.update_layout(meta={"chart": "fig6", "site": site})
    fig.update_yaxes(range=[info.lo, info.hi] if info.gate and info.hi - info.lo <= 2 else None)
    return _layout(fig, f"Mean excitation per channel at {info.label} ({site})", "channel", "mean gate s")


def fig6_all(stats: S.ExcitationStats, classes: list[str], cols: int = 3) -> go.Figure:
    """Small multiples of :func:`fig6_block`, one panel per SE block in depth order."""
    sites = stats.gate_sites
    rows = math.ceil(len(sites) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[s.label for s in sites], vertical_spacing=0.12 / max(rows, 1) * 3)
    colors = _class_colors(classes)
    for i, info in enumerate(sites):
        r, c = divmod(i, cols)
        mean = stats.class_mean(info.name)
        ch = np.arange(info.channels)
        for cls in classes:
            fig.add_scatter(x=ch, y=mean[stats.classes.index(cls)], mode="lines", name=cls, legendgroup=cls,
                            showlegend=i == 0, line={"color": colors[cls], "width": 1.2}, row=r + 1, col=c + 1)
        fig.add_scatter(x=ch, y=stats.mean(info.name), mode="lines", name="all classes", legendgroup="all",
                        showlegend=i == 0, line={"color": "#000", "dash": "dash", "width": 2}, row=r + 1, col=c + 1)
    fig.update_layout(meta={"chart": "fig6_all"})
    return _layout(fig, "Mean excitation per channel, every SE block", "", "", height=260 * rows + 80)


def fig7_block(stats: S.ExcitationStats, site: str, cls: str) -> go.Figure:
    """Median and IQR of each channel's gate for one class at one block; all-class median for reference."""
    info = stats.site(site)
    k = stats.classes.index(cls)
    q1, med, q3 = (stats.quantile(site, q)[k] for q in (0.25, 0.5, 0.75))
    ch = np.arange(info.channels)
    fig = go.Figure()
    fig.add_scatter(x=ch, y=q3, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip", name="Q3")
    fig.add_scatter(x=ch, y=q1, mode="lines", line={"width": 0}, fill="tonexty", fillcolor="rgba(217,72,15,0.2)",
                    name="IQR (Q1-Q3)")
    fig.add_scatter(x=ch, y=med, mode="lines+markers", marker={"size": 3}, line={"color": PAIR_COLORS["se"]},
                    name=f"median, {cls}")
    fig.add_scatter(x=ch, y=stats.median(site, per_class=False), mode="lines", line={"color": "#555", "dash": "dot"},
                    name="median, all classes")
    fig.update_layout(meta={"chart": "fig7", "site": site, "class": cls})
    fig.update_yaxes(range=[info.lo, info.hi] if info.hi - info.lo <= 2 else None)
    return _layout(fig, f"{cls}: median and IQR of each channel's gate at {info.label}", "channel", "gate s", 340)


def fig_selectivity(se: S.ExcitationStats, van: S.ExcitationStats | None) -> tuple[go.Figure, pd.DataFrame]:
    rows = []
    for what, st_, model in (("gates s", se, "SE"), ("squeeze z", se, "SE"), ("squeeze z", van, "vanilla")):
        if st_ is None:
            continue
        df = st_.selectivity_frame("s" if what == "gates s" else "z")
        df["series"], df["model"] = f"{what} ({model})", model
        rows.append(df)
    data = pd.concat(rows, ignore_index=True)
    ticks = se.selectivity_frame("z")
    styles = {"gates s (SE)": ({"color": PAIR_COLORS["se"], "width": 3}, "circle"),
              "squeeze z (SE)": ({"color": PAIR_COLORS["se"], "dash": "dot"}, "square"),
              "squeeze z (vanilla)": ({"color": PAIR_COLORS["vanilla"], "dash": "dot"}, "diamond")}
    fig = go.Figure()
    for series, g in data.groupby("series", sort=False):
        line, symbol = styles.get(series, ({}, "circle"))
        fig.add_scatter(x=g["depth"], y=g["selectivity"], mode="lines+markers", name=series, line=line,
                        marker={"symbol": symbol, "size": 8}, customdata=g["label"],
                        hovertemplate="%{customdata}: %{y:.4f}<extra>" + series + "</extra>")
    fig.update_xaxes(tickmode="array", tickvals=list(ticks["depth"]), ticktext=list(ticks["label"]))
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(meta={"chart": "selectivity"})
    return _layout(fig, "Class selectivity per block vs depth (mean eta² over channels)", "block (stage.block, input → output)",
                   "eta² = between-class share of variance"), data


def fig_knockout(df: pd.DataFrame) -> go.Figure:
    d = df[df["kind"] != "baseline"]
    fig = bar_compare(d, "target", "delta", "mode", title="Top-1 change when SE blocks are knocked out",
                      x_title="knocked-out blocks", y_title="Δ top-1 vs unmodified model (points)",
                      colors={"off": PAIR_COLORS["se"], "mean": PAIR_COLORS["vanilla"]}, text_format="%{y:.2f}")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=list(dict.fromkeys(d["target"])))
    fig.update_layout(meta={"chart": "knockout"})
    return fig


# --------------------------------------------------------------------------- data source


def _folder_stamp(path: Path) -> int:
    """Latest modification time of a folder and its class sub-folders (changes when images come or go)."""
    return max([path.stat().st_mtime_ns] + [d.stat().st_mtime_ns for d in path.iterdir() if d.is_dir()])


def _typed_path(label: str, key: str, placeholder: str) -> Path | None:
    roots = data_roots()
    text = st.text_input(label, key=key, placeholder=placeholder,
                         help="Relative paths are looked up under each data root; absolute paths must lie inside one. "
                              "Allowed roots: " + ", ".join(str(r) for r in roots) + " (set SE_LENS_DATA_ROOTS to change).")
    st.caption("Allowed data roots: " + ", ".join(f"`{r}`" for r in roots))
    if not text.strip():
        st.info("Type a folder inside one of the data roots to use it.")
        return None
    try:
        path = resolve_user_path(text, roots)
        if not path.is_dir():
            raise PathError(f"{text} is a file; type the folder that holds the data")
        stamp = _folder_stamp(path)
        _check_tree(str(path), stamp, tuple(str(r) for r in roots))
    except PathError as e:
        st.error(f"That path cannot be used: {e}")
        return None
    except OSError as e:
        st.error(f"That folder cannot be read ({e.strerror or e}); check its permissions.")
        return None
    return path


def _choose_data(pair: LoadedPair) -> tuple[str, ImageSet | None]:
    """(source key, data set to compute on, or None for the shipped statistics / nothing chosen)."""
    source = st.radio("Data", list(SOURCES), format_func=SOURCES.get, key="cw_source", horizontal=True,
                      help="Statistics are computed once per (checkpoint, data set) and kept on disk.")
    size = tuple(pair.se.meta.input_size)
    spec, split, subset, stamp = None, "test", None, 0
    if source == "shipped":
        return source, None
    if source == "cifar":
        subset = int(st.number_input("Images (evenly spaced subset of the 10,000 test images)", 50, 10_000, 2_000,
                                     step=500, key="cw_cifar_n"))
        spec = S.DEFAULT_DATA
    elif source == "folder":
        path = _typed_path("ImageFolder path (one sub-folder per class)", "cw_folder", "e.g. my_images")
        if path is None:
            return source, None
        spec, stamp = str(path), _folder_stamp(path)
    else:
        path = _typed_path("Folder holding torchvision's cifar-10-batches-py", "cw_tv_root", "e.g. torchvision")
        if path is None:
            return source, None
        split = st.radio("Split", ["test", "train"], key="cw_tv_split", horizontal=True)
        spec = f"torchvision-cifar10:{path}"
    try:
        return source, _dataset(spec, split, size, subset, stamp)
    except DataError as e:
        st.error(f"The data set cannot be loaded: {e}")
        return source, None


def _shipped(pair: LoadedPair, pair_name: str) -> dict[str, S.ExcitationStats] | None:
    paths = S.shipped_paths(pair_name)
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        st.info("No shipped statistics for this pair yet (" + ", ".join(p.name for p in missing) + " missing). "
                f"Create them once with:\n\n```\n{S.SHIP_COMMAND}\n```\n\nor choose **{SOURCES['cifar']}** above.")
        return None
    out = {}
    for role, p in paths.items():
        try:
            out[role] = _stats_file(p)
        except S.StatsError as e:
            st.error(f"The shipped statistics cannot be read: {e}")
            return None
        lm = pair.se if role == "se" else pair.vanilla
        recorded = out[role].meta.get("provenance", {}).get("checkpoint", {}).get("sha256")
        if recorded and recorded != _ckpt_sha(lm):
            st.warning(f"{p.name} was computed from a different {role} checkpoint than the one loaded "
                       f"({Path(lm.source).name}); regenerate with `{S.SHIP_COMMAND}`.")
    return out


def _computed(pair: LoadedPair, data: ImageSet) -> dict[str, S.ExcitationStats] | None:
    roles = (("se", pair.se), ("vanilla", pair.vanilla))
    paths = {role: S.cache_path(lm.source, data) for role, lm in roles}
    if all(p.is_file() for p in paths.values()):
        try:
            return {role: _stats_file(p) for role, p in paths.items()}
        except S.StatsError:
            pass  # damaged cache entries are recomputed below
    if st.session_state.pop(STOP_STATS, False):
        st.warning("Stopped: nothing was saved. Press **Compute statistics** to start again.")
    st.info(f"{data.name}: {len(data):,} images, {len(data.classes)} classes. Statistics for this model pair and data "
            "set have not been computed yet; they are kept on disk once done.")
    if not st.button("Compute statistics", key="cw_compute", type="primary"):
        return None
    st.button("Stop", key="cw_stop_button", on_click=_request_stop, args=(STOP_STATS,),
              help="Stops between batches; nothing is saved.")
    bar = st.progress(0.0, text="Starting...")
    out = {}
    try:
        for i, (role, lm) in enumerate(roles):
            def prog(done: int, total: int, i: int = i, role: str = role) -> None:
                bar.progress((i + done / max(total, 1)) / len(roles), text=f"{role} model: batch {done}/{total}")

            out[role], _, _ = S.cached_stats(lm.source, lm.model, data, lm.meta.mean, lm.meta.std, role=role,
                                             arch=lm.name, device=next(lm.model.parameters()).device, progress=prog,
                                             should_stop=_stopper(STOP_STATS), command="dashboard page Class-wise")
    except S.StatsCancelled:
        bar.empty()
        st.warning("Stopped: nothing was saved for the unfinished model.")
        return None
    except S.StatsError as e:
        bar.empty()
        st.error(f"Statistics cannot be computed for this model: {e}")
        return None
    st.rerun()  # redraw from the disk cache, without the compute controls
    return out


# --------------------------------------------------------------------------- knock-out


def _ko_path(pair: LoadedPair, data: ImageSet, n: int, modes: tuple[str, ...]) -> Path:
    key = S.cache_key(_ckpt_sha(pair.se), f"{data.digest}|{n}|{','.join(modes)}")
    return stats_cache_dir() / f"knockout-{key}.csv"


def _knockout_section(pair: LoadedPair, pair_name: str, stats: S.ExcitationStats, data: ImageSet | None) -> None:
    st.markdown("Each SE block (then each stage, then all blocks) has its gates replaced by **off** (s = 1: the SE "
                "unit does nothing) or **mean** (the class-agnostic mean gate vector over the data set above), and "
                "top-1 accuracy is measured on the same images. The paper remarks that SE-ResNet-50's last-stage "
                "blocks can be dropped at little cost; this measures it for the selected model.")
    if st.session_state.pop(STOP_KO, False):
        st.session_state.pop(KO_REQUEST, None)
        st.warning("Knock-out stopped; nothing was saved. Press **Run knock-out** to start again.")
    shipped = ko.shipped_path(pair_name)
    if data is None and shipped.is_file():
        try:
            df = ko.load_table(shipped)
        except ko.KnockoutError as e:
            st.error(f"The shipped knock-out table cannot be used: {e}. Regenerate it with `{ko.SHIP_COMMAND}`, or "
                     "choose a data source above to measure the knock-out here.")
            return
        st.caption(f"Shipped result: {shipped.name} (provenance in {shipped.name}.json)")
        show(fig_knockout(df), key="cw_ko_shipped", filename="knockout_shipped", data=df)
        return
    if data is None:
        data = _dataset(S.DEFAULT_DATA, "test", tuple(pair.se.meta.input_size), None, 0)
    if tuple(data.classes) != tuple(pair.se.class_names):
        st.info(f"Knock-out measures accuracy, so it needs images labelled with the model's classes "
                f"({', '.join(pair.se.class_names[:5])}, ...); {data.name} has {', '.join(data.classes[:5])}"
                f"{', ...' if len(data.classes) > 5 else ''}. Choose a CIFAR-10 source above.")
        return
    c1, c2 = st.columns(2)
    n = int(c1.number_input("Images", min(50, len(data)), len(data), min(len(data), 2_000), step=250, key="cw_ko_n",
                            help="An evenly spaced subset of the data set; every run uses the same images."))
    modes = tuple(c2.multiselect("Modes", list(ko.MODES), default=list(ko.MODES), key="cw_ko_modes"))
    if not modes:
        st.info("Choose at least one mode.")
        return
    sub = data.subset(eval_subset_indices(len(data), n)) if n < len(data) else data
    path = _ko_path(pair, sub, n, modes)
    if st.button("Run knock-out", key="cw_ko_run"):
        st.session_state[KO_REQUEST] = str(path)
    if not path.is_file() and st.session_state.get(KO_REQUEST) == str(path):
        st.button("Stop", key="cw_ko_stop", on_click=_request_stop, args=(STOP_KO,),
                  help="Stops between batches; nothing is saved.")
        bar = st.progress(0.0, text="Baseline...")
        mean_gates = {s.name: stats.mean(s.name) for s in stats.gate_sites}
        try:
            df = ko.knockout(pair.se.model, sub, pair.se.meta.mean, pair.se.meta.std, modes=modes,
                             mean_gates=mean_gates, device=next(pair.se.model.parameters()).device,
                             progress=lambda i, t: bar.progress(i / t, text=f"evaluation {i}/{t}"),
                             should_stop=_stopper(STOP_KO))
        except ko.KnockoutCancelled:
            st.session_state.pop(KO_REQUEST, None)
            st.warning("Knock-out stopped; nothing was saved.")
            return
        except ko.KnockoutError as e:
            st.error(f"The knock-out cannot run: {e}")
            return
        finally:
            bar.empty()
        atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
        st.rerun()  # redraw from the saved table, without the Stop button
    if not path.is_file():
        st.caption("Press **Run knock-out** (one evaluation per block, stage and mode; results are kept on disk).")
        return
    try:
        df = ko.load_table(path)
    except ko.KnockoutError as e:
        path.unlink(missing_ok=True)  # a damaged cache entry: removed so the next run recomputes it
        st.error(f"The saved knock-out result could not be read ({e}); it was removed. Press **Run knock-out** to "
                 "measure it again.")
        return
    base = df[df["kind"] == "baseline"]["top1"].iloc[0]
    st.metric("Baseline top-1 (unmodified SE model)", f"{base:.2f} %", help=f"{int(df['n'].iloc[0])} images of {data.name}")
    show(fig_knockout(df), key="cw_ko_chart", filename="knockout", data=df)
    st.dataframe(df.drop(columns=["sites"]), hide_index=True, width="stretch")


# --------------------------------------------------------------------------- page


st.title("Class-wise excitation")
st.caption("How the SE gates depend on the class of the image, block by block, over a whole data set (paper Sec. 7, "
           "Fig. 6 and Fig. 7): one streaming pass per model keeps per-class counts, sums, sums of squares and "
           "histograms of every channel's gate and squeeze value.")

pair_name = current_pair()
pair = get_pair(pair_name)
if pair is None:
    st.stop()

source, data = _choose_data(pair)
if source == "shipped":
    all_stats = _shipped(pair, pair_name)
elif data is not None:
    all_stats = _computed(pair, data)
else:
    all_stats = None
if not all_stats:
    st.stop()

se_stats, van_stats = all_stats["se"], all_stats.get("vanilla")
if not se_stats.gate_sites:
    st.info("The SE model of this pair has no SE gates, so there is no excitation to show; choose another pair.")
    st.stop()

d = se_stats.meta.get("data", {})
m = st.columns(4)
m[0].metric("Images", f"{se_stats.n_images:,}")
m[1].metric("Classes", se_stats.num_classes)
m[2].metric("SE blocks", len(se_stats.gate_sites))
m[3].metric("Quantile error", f"± {se_stats.quantile_error(se_stats.gate_sites[0].name):.4f}",
            help=f"Medians and quartiles come from {se_stats.bins}-bin histograms over each gate's range: each is "
                 "within half a bin width of the exact sample quantile (an IQR within one bin width). "
                 "Means and variances are exact.")
with st.expander("Provenance"):
    st.caption(d.get("name", ""))
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
        show(fig6_block(se_stats, site, chosen), key="cw_f6", filename=f"fig6_{site}",
             data=frame[frame["class"].isin(chosen + ["all"])])
    else:
        show(fig6_all(se_stats, chosen), key="cw_f6_all", filename="fig6_all_blocks")
    st.caption("Early blocks: gates barely depend on the class (lines overlap the all-class mean); later blocks: "
               "class-specific values (paper Fig. 6).")

with tabs[1]:
    c1, c2 = st.columns([1, 3])
    cls = c1.selectbox("Class", classes, key="cw_f7_class")
    last_of_stage = list({s.stage: s.name for s in se_stats.gate_sites}.values())
    blocks = c2.multiselect("Blocks", site_names, default=last_of_stage, key="cw_f7_blocks", format_func=site_labels.get)
    st.caption(f"Median (line) and inter-quartile range (band) over the images of **{cls}**, from {se_stats.bins}-bin "
               f"histograms: each quantile within ±{se_stats.quantile_error(site_names[0]):.4f} (half a bin) of the "
               "exact sample quantile. Dotted: the median over all classes.")
    for site in blocks:
        frame = se_stats.channel_frame(site)
        show(fig7_block(se_stats, site, cls), key=f"cw_f7_{site}", filename=f"fig7_{cls}_{site}",
             data=frame[frame["class"].isin([cls, "all"])])

with tabs[2]:
    st.markdown(
        "**Class selectivity** of a channel is the correlation ratio $\\eta^2$: the share of the gate's variance "
        "over all images that lies *between* classes, "
        "$\\eta^2_c = \\sum_k n_k(\\bar s_{k,c} - \\bar s_c)^2 \\,/\\, \\sum_i (s_{i,c} - \\bar s_c)^2$. "
        "0: every class has the same mean gate (class-agnostic); 1: the class alone fixes the gate. A block's value "
        "is the mean over its channels, computed exactly from the per-class sums. The paper's claim: excitation is "
        "class-agnostic early and increasingly class-specific with depth.")
    fig, sel = fig_selectivity(se_stats, van_stats)
    show(fig, key="cw_sel", filename="class_selectivity_vs_depth", data=sel)
    movement = se_stats.movement_frame()
    n_frozen = int(movement["frozen"].sum())
    st.markdown(f"**Gate movement.** Selectivity is a share of variance, so it says nothing when a gate hardly varies: "
                f"a block whose channels' gates move by less than {STILL_STD} (std across these images) in most "
                f"channels is **frozen**, a constant scale rather than attention. Here: {n_frozen} of "
                f"{len(movement)} blocks.")
    show(gate_movement(movement), key="cw_movement", filename="gate_movement", data=movement)

with tabs[3]:
    if van_stats is None:
        st.info("No statistics of the vanilla model; only the SE model's z is shown.")
    z_names = [s.name for s in se_stats.z_sites]
    z_site = st.select_slider("Block", z_names, value=z_names[-1], key="cw_z_block",
                              format_func=lambda n: f"{se_stats.site(n).label} · {n}")
    rows = [pd.DataFrame({"channel": np.arange(se_stats.site(z_site).channels), "mean": se_stats.z_mean(z_site),
                          "std": np.sqrt(se_stats.z_var(z_site)), "model": "SE"})]
    van_site = pair_sites(se_stats.z_sites, van_stats.z_sites).get(z_site) if van_stats is not None else None
    if van_site is not None:
        rows.append(pd.DataFrame({"channel": np.arange(van_stats.site(van_site).channels),
                                  "mean": van_stats.z_mean(van_site), "std": np.sqrt(van_stats.z_var(van_site)),
                                  "model": "vanilla"}))
    zdf = pd.concat(rows, ignore_index=True)
    zfig = band_curves(zdf, "channel", "mean", "std", "model", colors={"SE": PAIR_COLORS["se"],
                                                                       "vanilla": PAIR_COLORS["vanilla"]},
                       title=f"Squeeze z per channel at {se_stats.site(z_site).label}: mean ± std over all images",
                       x_title="channel", y_title="z (channel mean of the SE unit's input)")
    zfig.update_layout(meta={"chart": "z_block", "site": z_site})
    show(zfig, key="cw_z", filename=f"z_{z_site}", data=zdf)
    st.caption("z is the global average of the block's feature map where the SE unit (or, in the vanilla net, its "
               "placeholder) sits. Selectivity of z per block is drawn on the previous tab.")

with tabs[4]:
    _knockout_section(pair, pair_name, se_stats, data)
