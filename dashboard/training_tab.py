"""The Training runs tab of the Models page: every run under ``data/runs`` with its curves, its gates during
training and the finished runs' results.

Run files are read through caches keyed by the folder's fingerprint (:func:`se_core.runs.history.fingerprint`),
so a refresh shows new epochs and an unchanged folder is not read again.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.display import download_csv, show
from dashboard.figures import models as figs
from dashboard.figures.style import PAIR_COLORS
from se_core.models.weights import PairSpec
from se_core.runs.history import (
    RunError,
    RunInfo,
    all_metrics,
    fingerprint,
    gate_hist_long,
    hist_edges,
    list_runs,
    load_gate_history,
    per_class_summary,
    per_class_table,
    results_table,
    runs_table,
    seed_curves,
    summary,
)


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


def _curves(metrics: pd.DataFrame, spec: PairSpec) -> None:
    by_model = metrics["model"].nunique() < metrics["run"].nunique() and st.toggle(
        "Mean ± std over seeds per model", key="models-curves-seeds",
        help="One line per model, averaged over its runs (seeds) at each epoch; the band is ± one sample std.")
    if by_model:
        sc = seed_curves(metrics)
        colors = {spec.se_arch: PAIR_COLORS["se"], spec.vanilla_arch: PAIR_COLORS["vanilla"]}
        for col, metric, title, y_title in zip(st.columns(2), ("test_acc", "train_loss"),
                                               ("Test top-1 accuracy", "Training loss"),
                                               ("accuracy (%)", "cross-entropy (label-smoothed)")):
            with col:
                show(figs.seed_curve(sc, metric, title, y_title, colors), key=f"models-seeds-{metric}",
                     filename=f"training_{metric}_over_seeds", data=sc)
    else:
        c1, c2 = st.columns(2)
        with c1:
            show(figs.loss_curves(metrics), key="models-loss", filename="training_loss", data=metrics)
        with c2:
            show(figs.accuracy_curves(metrics), key="models-acc", filename="training_accuracy")
        st.caption("Solid: train (running average over the epoch, augmented data); dashed: test set after the epoch.")
    with st.expander("Learning rate and throughput"):
        c3, c4 = st.columns(2)
        with c3:
            show(figs.line_curves(metrics, "epoch", "lr", "run", title="Learning rate (end of epoch)",
                                  y_title="learning rate"), key="models-lr", filename="training_lr")
        with c4:
            show(figs.line_curves(metrics, "epoch", "img_per_s", "run", title="Training throughput",
                                  y_title="images / s"), key="models-ips", filename="training_throughput")


def _gate_charts(runs: list[RunInfo], fp: tuple) -> None:
    st.subheader("Excitation gates during training")
    st.caption("Per SE block, on a fixed probe batch of test images after every epoch: mean and standard deviation "
               "of the gates s, their class selectivity (η², 0 = same for every class, 1 = set by the class), "
               "and their histogram.")
    se_runs = [r for r in runs if r.has_gates and r.se != "none" and not r.problem]
    if not se_runs:
        st.info("No SE run has written gate statistics yet.", icon=":material/info:")
        return
    run_name = st.selectbox("Run", [r.name for r in se_runs], key="models-gate-run")
    run = next(r for r in se_runs if r.name == run_name)
    try:
        gates = _gates(str(run.path), fp)
    except RunError as e:
        st.error(f"Gate statistics of `{run.name}` cannot be read: {e}")
        gates = pd.DataFrame()
    if gates.empty:
        st.info(f"`{run.name}` has no gate statistics yet.", icon=":material/info:")
        return
    sites = list(dict.fromkeys(gates["site"]))
    last_per_stage = list({s.split(".")[0]: s for s in sites}.values())
    shown = st.multiselect("Blocks", sites, default=last_per_stage if len(sites) > 4 else sites,
                           key="models-gate-blocks", help="Default: the last block of every stage. Add blocks to compare them.")
    sel = gates[gates["site"].isin(shown)]
    c1, c2 = st.columns(2)
    with c1:
        show(figs.gate_mean(sel), key="models-gate-mean", filename=f"{run.name}_gate_mean", data=gates.drop(columns=["hist"]))
    with c2:
        show(figs.gate_selectivity(sel), key="models-gate-sel", filename=f"{run.name}_gate_selectivity")
    if gates["still_share"].notna().any():
        show(figs.gate_still(sel), key="models-gate-still", filename=f"{run.name}_gate_still")
    else:
        st.caption("This run's gate statistics predate the per-epoch gate-movement record; the "
                   "**Selected pair** tab shows its movement from the class-wise statistics.")
    site = st.selectbox("Block for the histogram evolution", sites, index=len(sites) - 1, key="models-gate-site")
    hl = gate_hist_long(gates, site)
    sub = gates[gates["site"] == site].sort_values("epoch")
    c3, c4 = st.columns(2)
    with c3:
        show(figs.gate_hist_lines(hist_edges(sub), sub, site), key="models-gate-hist",
             filename=f"{run.name}_{site}_gate_hist", data=hl)
    with c4:
        show(figs.gate_hist_heatmap(hl, site), key="models-gate-heat", filename=f"{run.name}_{site}_gate_heatmap")


def _results_section(root: Path, fp: tuple, spec: PairSpec) -> None:
    st.subheader("Results")
    try:
        res, summ, per_class = _results(str(root), fp)
    except RunError as e:
        st.error(f"Results cannot be tabulated: {e}")
        res = summ = per_class = pd.DataFrame()
    if res.empty:
        st.info("No run has finished yet: a run's final fp32 test evaluation (final.json) appears when its last "
                "epoch ends.", icon=":material/info:")
        return
    st.markdown("**Per model** (top-1 test accuracy in %, fp32, mean ± sample std over seeds)")
    number = st.column_config.NumberColumn
    st.dataframe(summ, hide_index=True, width="stretch", key="models-summary",
                 column_config={"top1_mean": number("top-1 mean (%)", format="%.2f"),
                                "top1_std": number("top-1 std", format="%.2f"),
                                "top1_min": number("min", format="%.2f"),
                                "top1_max": number("max", format="%.2f"),
                                "delta_vs_vanilla": number("Δ vs vanilla (pp)", format="%+.2f"),
                                "delta_se": number("Δ s.e.", format="%.2f",
                                                   help="standard error of Δ: sqrt(s²/n of SE + s²/n of vanilla)"),
                                "params": number("params", format="localized"),
                                "wall_time_s_mean": number("train time (s)", format="%.0f")})
    download_csv(summ, "se_lens_results_summary", key="models-summary-csv")
    colors = {spec.se_arch: PAIR_COLORS["se"], spec.vanilla_arch: PAIR_COLORS["vanilla"]}
    show(figs.top1_per_seed(summ, res, colors), key="models-seeds", filename="top1_per_seed",
         data=res[["run", "model", "seed", "top1"]])
    with st.expander("Every finished run"):
        st.dataframe(res, hide_index=True, width="stretch", key="models-results")
        download_csv(res, "se_lens_results_runs", key="models-results-csv")
    if not per_class.empty:
        show(figs.per_class_accuracy(per_class, colors), key="models-per-class", filename="per_class_accuracy",
             data=per_class)


def section(root: Path, spec: PairSpec) -> None:
    """The tab: the runs table, training curves, gates during training and results."""
    fp = fingerprint(root)
    runs = _runs(str(root), fp)
    if not runs:
        st.info(f"No training runs under `{root}` yet. Start one with "
                "`python -m se_core.train --arch se_resnet20_cifar --out data/runs/se_resnet20-s0`.",
                icon=":material/info:")
        return
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
        _curves(metrics, spec)
    _gate_charts(runs, fp)
    _results_section(root, fp, spec)
