"""Inspect: what an SE network and its vanilla twin see in your images, block by block.

Layout only: every number comes from :mod:`se_core.analysis.inspect` (cached by image digests and
pair); this file turns its arrays into Plotly figures.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import state
from dashboard.caching import get_pair
from dashboard.charts import PAIR_COLORS, colorscale, fast_figure
from dashboard.charts import show as _show_chart
from dashboard.uploads import ImageInput, image_inputs
from se_core.analysis import inspect as ops
from se_core.data.images import ImageError
from se_core.models.weights import LoadedPair

SE_COLOR, VANILLA_COLOR = PAIR_COLORS["se"], PAIR_COLORS["vanilla"]
_MARGIN = dict(l=10, r=10, t=50, b=10)


def show(fig: go.Figure, key: str, filename: str) -> None:
    """The shared chart display (PNG/SVG export), with a file name safe on every OS."""
    _show_chart(fig, key=key, filename=re.sub(r"[^A-Za-z0-9_.-]+", "_", filename.replace(".", "-")).strip("_"))


def _more(label: str, key: str) -> DeltaGenerator | None:
    """An expander (closed at first, then as the user left it) whose charts are built only while it is open,
    so a rerun after an upload builds just the essential charts. Its container, or None while closed.
    Keep ``label`` fixed: it is part of the expander's identity, and a new identity would close it."""
    box = st.expander(label, key=key, on_change="rerun", icon=":material/add_chart:")
    return box if box.open else None


def _title(text: str) -> dict:
    return {"text": text}


# --------------------------------------------------------------------------- cached compute


def _pair_key(pair: LoadedPair) -> str:
    return f"{pair.spec.name}|{pair.se.source}|{pair.vanilla.source}"


@st.cache_data(max_entries=64, show_spinner="Running both models...")
def _inspect(pair_key: str, digests: tuple[str, ...], names: tuple[str, ...], _pair: LoadedPair,
             _images: list) -> ops.InspectResult:
    return ops.inspect(_pair, _images, names)


@st.cache_data(max_entries=64, show_spinner="Running the SE model with gates changed...")
def _intervene(pair_key: str, digests: tuple[str, ...], names: tuple[str, ...], off: tuple[str, ...],
               _pair: LoadedPair, _images: list, _original: ops.ModelProbe) -> ops.InterventionResult:
    return ops.intervene(_pair, _images, ops.switch_off(off), names, _original)


def _csv_bytes(result: ops.InspectResult) -> bytes:
    """The long z/s/energy table as CSV bytes; built only when the download button is clicked."""
    return result.to_frame().to_csv(index=False).encode()


def _csv_rows(result: ops.InspectResult) -> int:
    """Rows of :func:`_csv_bytes` without building it: one per (image, model, site, channel)."""
    return sum(v.size for mp in (result.se, result.vanilla) for v in mp.z.values())


def _encoded(img, fmt: str) -> bytes:
    buf = io.BytesIO()
    ops.display_image(img).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buf.getvalue()


@st.cache_data(max_entries=128, show_spinner=False)
def _thumb(digest: str, _img) -> bytes:
    """Display copy of an upload as JPEG bytes, shown with ``output_format="JPEG"`` so it is sent as is
    (large photos are not re-scaled or re-encoded on every rerun)."""
    return _encoded(_img, "JPEG")


@st.cache_data(max_entries=256, show_spinner=False)
def _seen(pair_key: str, role: str, digest: str, _seen: np.ndarray) -> bytes:
    """What a model sees (its denormalized input) enlarged with nearest, as PNG bytes (lossless: the pixel
    grid stays crisp), cached per image and shown with ``output_format="PNG"`` so it is not re-encoded."""
    return _encoded(_seen, "PNG")


# --------------------------------------------------------------------------- figures
# Plain plotly.js dicts through charts.fast_figure: validated go.* construction cost 5-30 ms per chart,
# ten times the numbers behind it (tests validate every chart of the page against plotly's schema).


def _top5_figure(result: ops.InspectResult, i: int) -> go.Figure:
    """Top-5 bars, SE left and vanilla right (two axes laid out by hand: make_subplots costs ~30 ms)."""
    traces, notes = [], []
    for k, (mp, color, lo, hi) in enumerate(((result.se, SE_COLOR, 0.0, 0.4), (result.vanilla, VANILLA_COLOR, 0.6, 1.0))):
        top, ax = mp.top[i], "" if k == 0 else "2"
        traces.append(dict(type="bar", x=np.asarray(top.probs[::-1], dtype=np.float64), y=list(top.classes[::-1]),
                           orientation="h", marker=dict(color=color), text=[f"{p:.1%}" for p in top.probs[::-1]],
                           textposition="auto", showlegend=False, name=f"{mp.role} ({mp.name})", xaxis=f"x{ax}",
                           yaxis=f"y{ax}", hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
        notes.append(dict(text=f"<b>{'SE' if k == 0 else 'vanilla'}</b>: {mp.name}", x=(lo + hi) / 2, y=1.0,
                          xref="paper", yref="paper", xanchor="center", yanchor="bottom", showarrow=False))
    axis = dict(range=[0, 1], tickformat=".0%")
    return fast_figure(traces, dict(
        xaxis=dict(domain=[0.0, 0.4], **axis), xaxis2=dict(domain=[0.6, 1.0], **axis),
        yaxis2=dict(anchor="x2"), annotations=notes, height=230, margin=dict(l=10, r=10, t=40, b=10),
        meta={"chart": "top5", "image": result.names[i]}))


def _heatmap(labels: list[str], matrix: np.ndarray, title: str, zlabel: str, chart: str, image: str,
             bounded: bool = False) -> go.Figure:
    """Blocks x channels; gates on a fixed 0..1 Viridis scale, signed values (z) diverging around 0.
    Gray behind the cells, so NaN padding (narrower blocks) never looks like a value near 0."""
    finite = matrix[np.isfinite(matrix)]
    if bounded and finite.size and finite.min() >= 0 and finite.max() <= 1:
        scale = dict(zmin=0.0, zmax=1.0, colorscale=colorscale("Viridis"))
    elif finite.size and finite.min() < 0 < finite.max():
        scale = dict(zmid=0.0, colorscale=colorscale("RdBu_r"))
    else:
        scale = dict(colorscale=colorscale("Viridis"))
    trace = dict(type="heatmap", z=matrix, y=list(labels), x=np.arange(matrix.shape[1]),
                 colorbar=dict(title=_title(zlabel)), hoverongaps=False,
                 hovertemplate="block %{y}<br>channel %{x}<br>" + zlabel + " = %{z:.4f}<extra></extra>", **scale)
    return fast_figure([trace], dict(
        yaxis=dict(autorange="reversed", title=_title("block (stage.block)"), type="category", showgrid=False),
        xaxis=dict(title=_title("channel"), showgrid=False), plot_bgcolor="#dee2e6",
        title=_title(title), height=120 + 28 * len(labels), margin=_MARGIN, meta={"chart": chart, "image": image}))


def _gate_box(result: ops.InspectResult) -> go.Figure:
    traces = []
    sites = result.se.gate_sites
    for i, name in enumerate(result.names):
        vals = [result.se.s[st_.name][i] for st_ in sites]
        xs = np.repeat(np.array([st_.label for st_ in sites], dtype=str), [len(v) for v in vals])
        ys = np.concatenate(vals).astype(np.float64) if vals else np.zeros(0)
        traces.append(dict(type="box", x=xs, y=ys, name=name, boxpoints=False))
    return fast_figure(traces, dict(
        boxmode="group", title=_title("Distribution of the gates s over channels, per block"),
        xaxis=dict(title=_title("block (stage.block)")), yaxis=dict(title=_title("s")), height=380,
        margin=_MARGIN, meta={"chart": "gate_box"}, legend=dict(title=_title("image"))))


def _compare_figure(result: ops.InspectResult, site: str, what: str, title: str) -> go.Figure:
    data = result.se.s if what == "s" else result.se.z
    traces = [dict(type="scatter", x=np.arange(data[site].shape[1]), y=data[site][i], mode="lines", name=name)
              for i, name in enumerate(result.names)]
    return fast_figure(traces, dict(
        title=_title(title), xaxis=dict(title=_title("channel")), yaxis=dict(title=_title(what)), height=340,
        margin=_MARGIN, meta={"chart": f"compare_{what}", "site": site}, legend=dict(title=_title("image"))))


def _z_pair_figure(result: ops.InspectResult, site: str, i: int) -> go.Figure:
    z_se = result.se.z[site][i]
    traces = [dict(type="bar", x=np.arange(len(z_se)), y=z_se, name=f"SE ({result.se.name})",
                   marker=dict(color=SE_COLOR))]
    van = result.vanilla_site(site)
    if van is not None and van in result.vanilla.z:
        z_v = result.vanilla.z[van][i]
        traces.append(dict(type="bar", x=np.arange(len(z_v)), y=z_v, name=f"vanilla ({result.vanilla.name})",
                           marker=dict(color=VANILLA_COLOR)))
    return fast_figure(traces, dict(
        barmode="group", title=_title(f"Squeeze descriptor z at {result.se.site(site).label}, {result.names[i]}"),
        xaxis=dict(title=_title("channel")), yaxis=dict(title=_title("z (channel mean)")), height=340,
        margin=_MARGIN, meta={"chart": "z_block", "site": site}))


def _energy_figure(mp: ops.ModelProbe, site: str, i: int, image: str) -> go.Figure:
    before, after = mp.energy_before[site][i], mp.energy_after[site][i]
    ch = np.arange(len(before))
    return fast_figure([
        dict(type="bar", x=ch, y=before, name="before SE (unit input)", marker=dict(color="#7f7f7f")),
        dict(type="bar", x=ch, y=after, name="after SE (recalibrated)", marker=dict(color=SE_COLOR)),
    ], dict(barmode="group", title=_title(f"Channel energy mean(x²) at {mp.site(site).label}, {image}"),
            xaxis=dict(title=_title("channel")), yaxis=dict(title=_title("mean over H×W of x²")), height=360,
            margin=_MARGIN, meta={"chart": "energy", "site": site}))


def _intervention_figure(iv: ops.InterventionResult, i: int) -> go.Figure:
    a, b = iv.original, iv.changed
    classes = list(dict.fromkeys(a.top[i].classes + b.top[i].classes))
    idx = [a.class_names.index(c) for c in classes]
    return fast_figure([
        dict(type="bar", x=classes, y=a.probs[i, idx], name="original", marker=dict(color=SE_COLOR)),
        dict(type="bar", x=classes, y=b.probs[i, idx], name=iv.plan_label, marker=dict(color="#adb5bd")),
    ], dict(barmode="group", title=_title(f"SE model on {iv.names[i]}: original vs {iv.plan_label}"),
            yaxis=dict(title=_title("probability"), tickformat=".0%"), height=340, margin=_MARGIN,
            meta={"chart": "intervention", "image": iv.names[i]}))


# --------------------------------------------------------------------------- page


st.title("Inspect")
st.caption("Run the SE network and its vanilla twin on your images and look inside: predictions, the squeeze "
           "descriptors z (channel means entering each SE unit), the excitation gates s it computes from them, "
           "what the gates do to the features, and what happens when you switch them off.")

pair_name = state.current_pair()
pair = get_pair(pair_name)
if pair is None:
    st.stop()

inputs: list[ImageInput] = image_inputs("inspect")
if not inputs:
    st.info("Upload an image or choose one of the shipped samples above to start.")
    st.stop()

names = tuple(im.name for im in inputs)
digests = tuple(im.digest for im in inputs)
images = [im.image for im in inputs]
pkey = _pair_key(pair)
try:
    result = _inspect(pkey, digests, names, pair, images)
except (ImageError, ValueError, RuntimeError) as e:
    st.error(f"The models could not process these images ({e}). Remove the most recent upload, or re-save the "
             "image as an RGB PNG or JPEG and upload it again.")
    st.stop()
slug = hashlib.sha1("".join(digests).encode()).hexdigest()[:8]

# -- predictions -------------------------------------------------------------------------
st.header("Predictions", divider="gray")
same_input = result.se.preprocess == result.vanilla.preprocess
h, w = result.se.preprocess.size
for i, inp in enumerate(inputs):
    cols = st.columns([1, 1, 3] if same_input else [1, 1, 1, 3], vertical_alignment="center")
    cols[0].image(_thumb(inp.digest, inp.image), caption=f"{inp.name} ({inp.image.width}×{inp.image.height})",
                  output_format="JPEG")
    cols[1].image(_seen(pkey, "se", inp.digest, result.se.seen[i]),
                  caption=f"what {'both models see' if same_input else 'the SE model sees'}: {w}×{h}, "
                          "denormalized, enlarged with nearest", output_format="PNG")
    if not same_input:
        vh, vw = result.vanilla.preprocess.size
        cols[2].image(_seen(pkey, "vanilla", inp.digest, result.vanilla.seen[i]),
                      caption=f"what the vanilla model sees: {vw}×{vh}", output_format="PNG")
    with cols[-1]:
        show(_top5_figure(result, i), key=f"inspect_top5_{i}", filename=f"top5_{inp.name}")

se_sites = result.se.sites
gate_sites = result.se.gate_sites
if not gate_sites:
    st.warning(f"{result.se.name} has no recognisable SE unit, so there are no gates to show; only the squeeze "
               "descriptors z are available. Choose another model pair in the sidebar.")

# -- controls shared by the block views ----------------------------------------------------
st.header("Inside the blocks", divider="gray")
by_label = {s_.label: s_ for s_ in se_sites}
labels = list(by_label)
c1, c2 = st.columns([1, 2])
focus_name = c1.selectbox("Image", names, key=f"inspect_focus_{slug}",
                          help="The image shown in the single-image charts below (heatmaps, energy).")
focus = names.index(focus_name) if focus_name in names else 0
last_stage = max(s_.stage for s_ in se_sites) if se_sites else 0
default_label = next((s_.label for s_ in se_sites if s_.stage == last_stage), labels[0] if labels else None)
block_label = c2.select_slider("Block", options=labels, value=default_label, key=f"inspect_block_{pair_name}",
                               help="stage.block of the network; used by the per-block charts below.") if labels else None
block = by_label[block_label] if block_label else None

# -- excitation gates s ---------------------------------------------------------------------
if gate_sites:
    st.subheader("Excitation gates s")
    st.caption("s = the SE unit's per-channel scale, computed from z. Rows are blocks, columns channels; "
               "values near 1 keep a channel, near 0 suppress it; gray marks channels a block does not have.")
    lab, mat = result.se.gate_matrix(focus)
    show(_heatmap(lab, mat, f"Gates s of {result.se.name}, {names[focus]}", "s", "gate_heatmap", names[focus],
                  bounded=True), key="inspect_gate_heatmap", filename=f"gates_{names[focus]}")
    if (box := _more("Distribution of the gates over channels (every block, all images)", "inspect_more_gates")):
        with box:
            show(_gate_box(result), key="inspect_gate_box", filename=f"gate_distribution_{slug}")

# -- squeeze descriptors z ------------------------------------------------------------------
st.subheader("Squeeze descriptors z")
st.caption("z = mean of each channel over H×W, read where the SE unit sits (in the vanilla net at the same place: "
           "its identity placeholder, or, for timm / torchvision models, the output of the layer after which the "
           "SE twin recalibrates).")
if block is not None:
    show(_z_pair_figure(result, block.name, focus), key="inspect_zblock", filename=f"z_{block.label}_{names[focus]}")
if (box := _more("z heatmaps of both models (every block, the chosen image)", "inspect_more_z")):
    with box:
        st.caption("Blocks with fewer channels are padded (gray).")
        for col, mp in zip(st.columns(2), (result.se, result.vanilla)):
            lab, mat = mp.z_matrix(focus)
            with col:
                title = f"z in the {'SE' if mp.role == 'se' else 'vanilla'} model ({mp.name}), {names[focus]}"
                show(_heatmap(lab, mat, title, "z", f"z_heatmap_{mp.role}", names[focus]),
                     key=f"inspect_zmap_{mp.role}", filename=f"z_heatmap_{mp.role}_{names[focus]}")

if gate_sites:
    # -- all images at one block (Fig. 6) -------------------------------------------------------
    st.subheader("Compare images at one block")
    if block is None or block.name not in result.se.s:
        st.info("The chosen block has no SE unit; pick another block above.")
    elif (box := _more("Gates s and squeeze z of all images at the chosen block", "inspect_more_compare")):
        with box:
            st.caption("Like Fig. 6 of the paper, for your images: early blocks tend to give every image similar "
                       "gates, later ones differ by class. Add images to compare them.")
            cc = st.columns(2)
            with cc[0]:
                show(_compare_figure(result, block.name, "s", f"Gates s at {block.label}, all images"),
                     key="inspect_compare_s", filename=f"compare_s_{block.label}_{slug}")
            with cc[1]:
                show(_compare_figure(result, block.name, "z", f"Squeeze z at {block.label}, all images"),
                     key="inspect_compare_z", filename=f"compare_z_{block.label}_{slug}")

    # -- what the gates do ---------------------------------------------------------------------
    st.subheader("What the gates do")
    if block is None or block.name not in result.se.energy_before or block.name not in result.se.s:
        st.info("The chosen block has no SE unit, so nothing is recalibrated there; pick another block above.")
    else:
        eb = float(result.se.energy_before[block.name][focus].sum())
        ea = float(result.se.energy_after[block.name][focus].sum())
        st.caption(f"Energy of each channel, mean over H×W of x², entering the SE unit of {block.label} and "
                   f"leaving it, for {names[focus]}. SE rescales channel c by s_c, so its energy by s_c².")
        m1, m2, m3 = st.columns(3)
        m1.metric("Energy before SE (sum over channels)", f"{eb:.4g}")
        m2.metric("Energy after SE (sum over channels)", f"{ea:.4g}")
        m3.metric("Kept", f"{ea / eb:.1%}" if eb > 0 else "n/a",
                  help="Sum over channels of mean(x²) after / before. For a standard SE unit each channel's "
                       "energy is multiplied by s².")
        if (box := _more("Energy of every channel, before and after SE", "inspect_more_energy")):
            with box:
                show(_energy_figure(result.se, block.name, focus, names[focus]), key="inspect_energy",
                     filename=f"energy_{block.label}_{names[focus]}")

    st.markdown("**Switch SE off** (s = 1, the block passes its features unscaled) and see how the predictions change.")
    gate_by_label = {s_.label: s_.name for s_ in gate_sites}
    off_labels = st.multiselect("Blocks to switch off", list(gate_by_label), key=f"inspect_off_{pair_name}",
                                placeholder="Choose blocks (all images are rerun)")
    if off_labels:
        off = tuple(gate_by_label[lb] for lb in off_labels)
        try:
            iv = _intervene(pkey, digests, names, off, pair, images, result.se)
        except (ImageError, ValueError, RuntimeError) as e:
            st.error(f"The intervention could not run ({e}); choose other blocks.")
        else:
            table = iv.table()
            n_changed = int(table["changed"].sum())
            st.write(f"Top-1 changed for **{n_changed} of {len(names)}** image(s) with SE off at {', '.join(off_labels)}.")
            st.dataframe(table, hide_index=True, column_config={
                "p before": st.column_config.NumberColumn(format="percent"),
                "p after": st.column_config.NumberColumn(format="percent"),
                "p(top-1 before) after": st.column_config.NumberColumn(format="percent")})
            show(_intervention_figure(iv, focus), key="inspect_intervention",
                 filename=f"intervention_{names[focus]}")

# -- export ------------------------------------------------------------------------------------
st.header("Export", divider="gray")
n_rows = _csv_rows(result)
st.download_button("Download z, s and channel energy (CSV)", functools.partial(_csv_bytes, result),
                   file_name=f"se_lens_inspect_{pair_name}_{slug}.csv", mime="text/csv", key="inspect_csv",
                   on_click="ignore", icon=":material/download:",
                   help="One row per image, model, block (site, stage, block) and channel; s is empty for the "
                        "vanilla model. Every chart exports itself as PNG or SVG (camera button; format in the sidebar).")
st.caption(f"{n_rows:,} rows: {len(names)} image(s) × both models × every block × every channel.")
