"""Models: registry with measured costs, the selected pair's provenance, and the training runs (curves, gates, results)."""
from __future__ import annotations

import streamlit as st
import torch

from dashboard import caching, model_card, own_models, state, training_tab
from dashboard.display import download_csv, show
from dashboard.figures import models as figs
from dashboard.figures.common import gate_movement
from se_core.config import data_dir
from se_core.models.pairs import DEFAULT_PAIR, PAIRS, pick_device, shipped_pairs
from se_core.models.registry import get_spec, list_models
from se_core.runs.history import RunError, pairs_overview

REGISTRY_COLUMNS = {
    "model": st.column_config.TextColumn("model"),
    "has_se": st.column_config.CheckboxColumn("SE"),
    "input": st.column_config.TextColumn("input (px)"),
    "params": st.column_config.NumberColumn("params", format="localized"),
    "gmacs": st.column_config.NumberColumn("GFLOPs (GMACs)", format="%.4f",
                                           help="billions of multiply-adds per image, as the paper counts"),
    "vanilla": st.column_config.TextColumn("vanilla counterpart"),
    "se_params_pct": st.column_config.NumberColumn("SE params overhead", format="%.2f %%"),
    "se_gmacs_pct": st.column_config.NumberColumn("SE GFLOPs overhead", format="%.3f %%")}


def own_pairs() -> None:
    """The project's own CIFAR-10 pairs side by side: test top-1 per model and seed, Δ ± s.e., frozen SE blocks."""
    specs = shipped_pairs()
    try:
        summ, res = caching.own_pairs_results(tuple(p.name for p in specs))
    except RunError as e:
        st.error(f"The own pairs' results cannot be tabulated: {e}")
        return
    st.markdown("Every pair this project trained, with the same test set (CIFAR-10 JPEG q75, 10,000 images, fp32 "
                "re-evaluation). Δ is SE minus vanilla mean top-1 with its standard error over seeds; a gain counts "
                "as resolved at Δ ≥ 2 s.e. **Frozen SE blocks**: blocks whose gates barely move from image to image "
                "(a constant scale, not attention), from the shipped class-wise statistics of the seed-0 SE model.")
    table = pairs_overview(specs, summ, {p.name: caching.shipped_movement(p.name)[0] for p in specs})
    st.dataframe(table, hide_index=True, width="stretch", key="models-own-pairs")
    download_csv(table, "se_lens_own_pairs", key="models-own-pairs-csv")
    if not res.empty:
        show(figs.own_pairs_top1(summ, res), key="models-own-pairs-chart", filename="own_pairs_top1",
             data=res[["pair", "role", "run", "seed", "top1"]])


def render() -> None:
    """The Models page: four tabs, then the ImageNet pairs and the user's own checkpoint."""
    pair_name = state.current_pair()
    spec = PAIRS[pair_name]
    st.title("Models")
    device = pick_device()
    dev_text = (f"GPU: {torch.cuda.get_device_name(0)}" if device.type == "cuda"
                else f"CPU, {torch.get_num_threads()} torch threads")
    st.caption(f"Inference device: **{dev_text}**. Machine: {caching.hardware()}.")
    tab_reg, tab_pair, tab_own, tab_runs = st.tabs(["Registry", "Selected pair", "Our CIFAR-10 pairs", "Training runs"])

    with tab_reg:
        st.markdown("Every registered architecture, with its size and cost measured on a randomly initialised "
                    "instance (one image at the model's input size), and the SE overhead relative to the vanilla "
                    "counterpart, as in paper Table 2.")
        all_names = list_models()
        small = [n for n in all_names if get_spec(n).input_size[0] <= 64]
        large = [n for n in all_names if n not in small]
        with_large = st.toggle(f"Include ImageNet-size models ({', '.join(large)})", value=False, key="models-large",
                               help="Building and counting these takes a few seconds the first time.") if large else False
        try:
            costs = caching.costs(tuple(small + (large if with_large else [])))
        except Exception as e:  # noqa: BLE001 - a model that fails to build must not take the page down
            st.error(f"Measuring the registry failed ({type(e).__name__}: {e}); check the model definitions in se_core.")
            costs = None
        if costs is not None:
            st.dataframe(costs.drop(columns=["params_m"]), hide_index=True, width="stretch", key="models-registry",
                         column_config=REGISTRY_COLUMNS)
            st.caption("Parameters: `sum(p.numel())` of the built model. GFLOPs: multiply-adds counted by "
                       "`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; the SE unit's "
                       "pooling, gating and channel scaling are not counted). Overhead = (SE − vanilla) / vanilla.")
            download_csv(costs, "se_lens_registry_costs", key="models-registry-csv")
            c1, c2 = st.columns(2)
            with c1:
                show(figs.registry_params(costs), key="models-params-chart", filename="registry_params")
            with c2:
                show(figs.registry_overhead(costs), key="models-overhead-chart", filename="registry_se_overhead")

    with tab_pair:
        st.subheader(spec.title)
        st.caption(f"Data: {spec.dataset}. {spec.note}")
        pair, problem = caching.try_pair(pair_name)
        if pair is None:
            st.info(problem, icon=":material/info:")
            for label, ref in (("SE model", spec.se_weights), ("Vanilla model", spec.vanilla_weights)):
                how = f" — create it with `{ref.how_to_get}`" if ref.how_to_get else ""
                st.markdown(f"**{label}** expected at `{ref.path()}`{how}")
        else:
            st.caption(f"Models are on **{pair.device}**.")
            left, right = st.columns(2, gap="large")
            with left:
                model_card.card(pair.se, "SE model")
            with right:
                model_card.card(pair.vanilla, "Vanilla model")
            st.markdown("#### Do the SE model's gates move?")
            movement, source = caching.shipped_movement(pair_name)
            if movement is None:
                st.info(f"Gate movement needs class-wise statistics ({source}); compute them on the **Class-wise** page.",
                        icon=":material/info:")
            else:
                frozen = movement[movement["frozen"]]
                st.caption(f"From `{source}` (every image of the test set). A block is **frozen** when most of its "
                           "channels' gates barely change from image to image: a constant scale, not attention "
                           f"({len(frozen)} of {len(movement)} blocks here"
                           + (f": {', '.join(frozen['label'])}" if len(frozen) else "") + ").")
                show(gate_movement(movement, title="Share of still channels per SE block"),
                     key="models-movement", filename=f"{pair_name}_gate_movement", data=movement)

    with tab_own:
        own_pairs()

    with tab_runs:
        own = spec if spec.shipped is not None else PAIRS[DEFAULT_PAIR]
        if own is not spec:
            st.caption(f"The selected pair was not trained by this project; these are the runs of **{own.title}**.")
        training_tab.section(data_dir() / own.shipped.runs, own)

    st.divider()
    st.header("ImageNet pairs and your own checkpoint")
    lib_tab, own_tab = st.tabs(["ImageNet pairs (timm, torchvision)", "Your checkpoint"])
    with lib_tab:
        own_models.library_pairs(pair_name)
    with own_tab:
        own_models.own_checkpoint()


render()
