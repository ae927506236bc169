"""Models: registry with measured costs, the selected pair's provenance, and the training runs (curves, gates, results)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

from dashboard import caching, charts, state
from se_core import pairs
from se_core.costs import cost_table
from se_core.pairs import PAIRS, LoadedModel, pick_device
from se_core.registry import get_spec, list_models
from se_core.runs import (RunError, RunInfo, all_metrics, fingerprint, gate_hist_long, list_runs, load_gate_history,
                          per_class_summary, per_class_table, results_table, runs_table, summary)
from se_core.se import SEConfig
from se_core.train import hardware


@st.cache_data(max_entries=8, show_spinner="Measuring parameters and multiply-adds...")
def _costs(names: tuple[str, ...]) -> pd.DataFrame:
    return cost_table(list(names))


@st.cache_data(show_spinner=False)
def _hardware() -> str:
    return hardware()


@st.cache_data(max_entries=8, show_spinner=False)
def _runs(root: str, fp: tuple) -> list[RunInfo]:
    return list_runs(root)


@st.cache_data(max_entries=8, show_spinner=False)
def _metrics(root: str, fp: tuple) -> pd.DataFrame:
    return all_metrics(list_runs(root))


@st.cache_data(max_entries=16, show_spinner=False)
def _gates(run_dir: str, fp: tuple) -> pd.DataFrame:
    return load_gate_history(run_dir)


@st.cache_data(max_entries=8, show_spinner=False)
def _results(root: str, fp: tuple) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    res = results_table(root)
    return res, summary(res), per_class_summary(per_class_table(root))


pair_name = state.current_pair()
spec = PAIRS[pair_name]

st.title("Models")
device = pick_device()
dev_text = (f"GPU: {torch.cuda.get_device_name(0)}" if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} torch threads")
st.caption(f"Inference device: **{dev_text}**. Machine: {_hardware()}.")

tab_reg, tab_pair, tab_runs = st.tabs(["Registry", "Selected pair", "Training runs"])

# --- (a) registry -----------------------------------------------------------------------------
with tab_reg:
    st.markdown("Every registered architecture, with its size and cost measured on a randomly initialised "
                "instance (one image at the model's input size), and the SE overhead relative to the vanilla "
                "counterpart, as in paper Table 2.")
    all_names = list_models()
    small = [n for n in all_names if get_spec(n).input_size[0] <= 64]
    large = [n for n in all_names if n not in small]
    with_large = st.toggle(f"Include ImageNet-size models ({', '.join(large)})", value=False, key="models-large",
                           help="Building and counting these takes a few seconds the first time.") if large else False
    names = tuple(small + (large if with_large else []))
    try:
        costs = _costs(names)
    except Exception as e:  # noqa: BLE001 - a model that fails to build must not take the page down
        st.error(f"Measuring the registry failed ({type(e).__name__}: {e}); check the model definitions in se_core.")
        costs = None
    if costs is not None:
        st.dataframe(
            costs.drop(columns=["params_m"]), hide_index=True, width="stretch", key="models-registry",
            column_config={
                "model": st.column_config.TextColumn("model"),
                "has_se": st.column_config.CheckboxColumn("SE"),
                "input": st.column_config.TextColumn("input (px)"),
                "params": st.column_config.NumberColumn("params", format="localized"),
                "gmacs": st.column_config.NumberColumn("GFLOPs (GMACs)", format="%.4f",
                                                       help="billions of multiply-adds per image, as the paper counts"),
                "vanilla": st.column_config.TextColumn("vanilla counterpart"),
                "se_params_pct": st.column_config.NumberColumn("SE params overhead", format="%.2f %%"),
                "se_gmacs_pct": st.column_config.NumberColumn("SE GFLOPs overhead", format="%.3f %%"),
            })
        st.caption("Parameters: `sum(p.numel())` of the built model. GFLOPs: multiply-adds counted by "
                   "`torch.utils.flop_counter.FlopCounterMode` (convolutions and matrix products; the SE unit's "
                   "pooling, gating and channel scaling are not counted). Overhead = (SE − vanilla) / vanilla.")
        charts.download_csv(costs, "se_lens_registry_costs", key="models-registry-csv")
        plot = costs.assign(base=costs["vanilla"].where(costs["vanilla"] != "", costs["model"]),
                            kind=costs["has_se"].map({True: "SE", False: "vanilla"}))
        c1, c2 = st.columns(2)
        with c1:
            charts.show(charts.bar_compare(plot, "base", "params_m", "kind", title="Parameters",
                                           x_title="architecture", y_title="parameters (millions)",
                                           colors={"SE": charts.PAIR_COLORS["se"], "vanilla": charts.PAIR_COLORS["vanilla"]}),
                        key="models-params-chart", filename="registry_params")
        with c2:
            ov = plot[plot["vanilla"] != ""]
            charts.show(charts.bar_compare(ov, "base", "se_params_pct", "kind", title="SE parameter overhead",
                                           x_title="architecture", y_title="extra parameters (% of vanilla)",
                                           colors={"SE": charts.PAIR_COLORS["se"]}, text_format="%{y:.2f}%"),
                        key="models-overhead-chart", filename="registry_se_overhead")

# --- (b, c) the selected pair -------------------------------------------------------------------
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

        def model_card(m: LoadedModel, role: str) -> None:
            meta = m.meta
            n_params = sum(p.numel() for p in m.model.parameters())
            st.markdown(f"#### {role}: `{meta.arch}`")
            st.markdown(f"File `{m.source}`")
            try:
                se_text = SEConfig.from_dict(meta.se_config).label() if meta.se_config else "none (vanilla)"
            except (TypeError, ValueError):
                se_text = json.dumps(meta.se_config, sort_keys=True)
            info = {"architecture": meta.arch, "SE config": se_text, "parameters": f"{n_params:,}",
                    "classes": f"{meta.num_classes}: {', '.join(meta.class_names)}",
                    "input size": f"{meta.input_size[0]}×{meta.input_size[1]} px",
                    "normalization mean": ", ".join(f"{v:.4f}" for v in meta.mean),
                    "normalization std": ", ".join(f"{v:.4f}" for v in meta.std)}
            st.table(pd.DataFrame(info.items(), columns=["field", "value"]).set_index("field"))
            st.markdown("**Provenance** (from the checkpoint's metadata)")
            if meta.provenance:
                prov = pd.DataFrame([(k, v if isinstance(v, str) else json.dumps(v)) for k, v in meta.provenance.items()],
                                    columns=["field", "value"])
                st.table(prov.set_index("field"))
            else:
                st.warning("This checkpoint carries no provenance: where its weights came from is unknown.")
            if meta.extra:
                with st.expander("Extra metadata (e.g. the training config)"):
                    st.json(meta.extra, expanded=False)

        left, right = st.columns(2, gap="large")
        with left:
            model_card(pair.se, "SE model")
        with right:
            model_card(pair.vanilla, "Vanilla model")

# --- (d) training runs ---------------------------------------------------------------------------
with tab_runs:
    root = Path(pairs.DATA_DIR) / "runs"
    fp = fingerprint(root)
    runs = _runs(str(root), fp)
    if not runs:
        st.info(f"No training runs under `{root}` yet. Start one with "
                "`python -m se_core.train --arch se_resnet20_cifar --out data/runs/se_resnet20-s0`.",
                icon=":material/info:")
    else:
        st.markdown(f"Runs under `{root}` (read from their files; refresh the page to see new epochs).")
        st.dataframe(runs_table(runs), hide_index=True, width="stretch", key="models-runs-table",
                     column_config={"epochs_done": st.column_config.ProgressColumn(
                         "progress (epochs)", min_value=0, max_value=max(r.epochs for r in runs), format="%d")})
        for r in runs:
            if r.problem:
                st.error(f"Run `{r.name}` cannot be read: {r.problem}")
        try:
            metrics = _metrics(str(root), fp)
        except RunError as e:
            st.error(f"Training curves cannot be drawn: {e}")
            metrics = pd.DataFrame()

        st.subheader("Training curves")
        if metrics.empty:
            st.info("No run has finished its first epoch yet; curves appear after each epoch.", icon=":material/info:")
        else:
            long = pd.concat([
                metrics.assign(split="train", loss=metrics["train_loss"], acc=metrics["train_acc"]),
                metrics.assign(split="test", loss=metrics["test_loss"], acc=metrics["test_acc"])], ignore_index=True)
            c1, c2 = st.columns(2)
            with c1:
                charts.show(charts.line_curves(long, "epoch", "loss", "run", dash="split", title="Loss",
                                               y_title="cross-entropy (train: label-smoothed)"),
                            key="models-loss", filename="training_loss", data=metrics)
            with c2:
                charts.show(charts.line_curves(long, "epoch", "acc", "run", dash="split", title="Top-1 accuracy",
                                               y_title="accuracy (%)"),
                            key="models-acc", filename="training_accuracy")
            st.caption("Solid: train (running average over the epoch, augmented data); dashed: test set after the epoch.")
            with st.expander("Learning rate and throughput"):
                c3, c4 = st.columns(2)
                with c3:
                    charts.show(charts.line_curves(metrics, "epoch", "lr", "run", title="Learning rate (end of epoch)",
                                                   y_title="learning rate"), key="models-lr", filename="training_lr")
                with c4:
                    charts.show(charts.line_curves(metrics, "epoch", "img_per_s", "run", title="Training throughput",
                                                   y_title="images / s"), key="models-ips", filename="training_throughput")

        st.subheader("Excitation gates during training")
        st.caption("Per SE block, on a fixed probe batch of test images after every epoch: mean and standard deviation "
                   "of the gates s, their class selectivity (η², 0 = same for every class, 1 = set by the class), "
                   "and their histogram.")
        se_runs = [r for r in runs if r.has_gates and r.se != "none" and not r.problem]
        if not se_runs:
            st.info("No SE run has written gate statistics yet.", icon=":material/info:")
        else:
            run_name = st.selectbox("Run", [r.name for r in se_runs], key="models-gate-run")
            run = next(r for r in se_runs if r.name == run_name)
            try:
                gates = _gates(str(run.path), fp)
            except RunError as e:
                st.error(f"Gate statistics of `{run.name}` cannot be read: {e}")
                gates = pd.DataFrame()
            if gates.empty:
                st.info(f"`{run.name}` has no gate statistics yet.", icon=":material/info:")
            else:
                sites = list(dict.fromkeys(gates["site"]))
                last_per_stage = list({s.split(".")[0]: s for s in sites}.values())
                shown = st.multiselect("Blocks", sites, default=last_per_stage if len(sites) > 4 else sites,
                                       key="models-gate-blocks",
                                       help="Default: the last block of every stage. Add blocks to compare them.")
                sel = gates[gates["site"].isin(shown)]
                c1, c2 = st.columns(2)
                with c1:
                    charts.show(charts.band_curves(sel, "epoch", "mean", "std", "site", title="Gate mean ± std per block",
                                                   y_title="gate value s"),
                                key="models-gate-mean", filename=f"{run.name}_gate_mean",
                                data=gates.drop(columns=["hist"]))
                with c2:
                    charts.show(charts.line_curves(sel, "epoch", "selectivity", "site", title="Class selectivity per block",
                                                   y_title="mean η² over channels"),
                                key="models-gate-sel", filename=f"{run.name}_gate_selectivity")
                site = st.selectbox("Block for the histogram evolution", sites, index=len(sites) - 1,
                                    key="models-gate-site")
                hl = gate_hist_long(gates, site)
                sub = gates[gates["site"] == site].sort_values("epoch")
                # per-epoch bin edges: a ReLU gate's histogram range follows that epoch's largest gate
                edges = [[r.lo + i * (r.hi - r.lo) / len(r.hist) for i in range(len(r.hist) + 1)] for r in sub.itertuples()]
                c3, c4 = st.columns(2)
                with c3:
                    charts.show(charts.histogram_stack(edges, list(sub["hist"]), [f"epoch {e}" for e in sub["epoch"]],
                                                       title=f"{site}: gate histogram by epoch (light = late)",
                                                       x_title="gate value s"),
                                key="models-gate-hist", filename=f"{run.name}_{site}_gate_hist", data=hl)
                with c4:
                    piv = hl.pivot(index="epoch", columns="bin_center", values="fraction")
                    charts.show(charts.heatmap(piv.to_numpy(), list(piv.columns), [str(e) for e in piv.index],
                                               title=f"{site}: fraction of gates per bin", x_title="gate value s (bin centre)",
                                               y_title="epoch", colorbar_title="fraction",
                                               hover="epoch %{y}, s ≈ %{x:.3f}: %{z:.4f}"),
                                key="models-gate-heat", filename=f"{run.name}_{site}_gate_heatmap")

        st.subheader("Results")
        try:
            res, summ, per_class = _results(str(root), fp)
        except RunError as e:
            st.error(f"Results cannot be tabulated: {e}")
            res = summ = per_class = pd.DataFrame()
        if res.empty:
            st.info("No run has finished yet: a run's final fp32 test evaluation (final.json) appears when its last "
                    "epoch ends.", icon=":material/info:")
        else:
            st.markdown("**Per model** (top-1 test accuracy in %, fp32, mean ± sample std over seeds)")
            st.dataframe(summ, hide_index=True, width="stretch", key="models-summary",
                         column_config={"top1_mean": st.column_config.NumberColumn("top-1 mean (%)", format="%.2f"),
                                        "top1_std": st.column_config.NumberColumn("top-1 std", format="%.2f"),
                                        "top1_min": st.column_config.NumberColumn("min", format="%.2f"),
                                        "top1_max": st.column_config.NumberColumn("max", format="%.2f"),
                                        "delta_vs_vanilla": st.column_config.NumberColumn("Δ vs vanilla (pp)", format="%+.2f"),
                                        "params": st.column_config.NumberColumn("params", format="localized"),
                                        "wall_time_s_mean": st.column_config.NumberColumn("train time (s)", format="%.0f")})
            charts.download_csv(summ, "se_lens_results_summary", key="models-summary-csv")
            with st.expander("Every finished run"):
                st.dataframe(res, hide_index=True, width="stretch", key="models-results")
                charts.download_csv(res, "se_lens_results_runs", key="models-results-csv")
            if not per_class.empty:
                colors = {spec.se_arch: charts.PAIR_COLORS["se"], spec.vanilla_arch: charts.PAIR_COLORS["vanilla"]}
                charts.show(charts.bar_compare(per_class, "class", "acc_mean", "model", error="acc_std",
                                               title="Per-class test accuracy (whiskers: std over seeds)",
                                               x_title="class", y_title="accuracy (%)", colors=colors,
                                               y_range=(0, 100)),
                            key="models-per-class", filename="per_class_accuracy", data=per_class)
