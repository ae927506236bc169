"""Ablations: our sweep of SE design choices (CIFAR ResNet-20) beside the paper's ImageNet rows (Tables 10-16).

Thin page: ``se_core.runs.tables`` loads, checks and summarises the result table and the paper's
reference rows (picked and cached by :mod:`dashboard.ablation_tables`); ``se_core.runs.ablate``
produces the table and keeps each trial's checkpoint, whose variants :mod:`dashboard.ablation_variants`
opens as pairs and compares per block. This file only lays out.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import ablation_tables as abl
from dashboard import ablation_variants as variants
from dashboard import sweep_progress as live
from dashboard.display import download_csv, selected_customdata, show
from dashboard.figures.ablations import cost_fig, delta_fig, ours_fig, paper_fig
from se_core.runs import tables
from se_core.runs.tables import AXES, TableError

PROVENANCE_KEYS = ("sweep", "description", "spec_file", "spec_sha256", "started", "updated", "finished",
                   "trials_in_sweep", "trials_done", "failed")


def render() -> None:
    """The Ablations page."""
    st.title("Ablations")
    st.markdown(
        "The SE design choices Hu et al. ablate in Tables 10-16 (reduction ratio, squeeze, excitation, stages, "
        "integration, SE after the 3x3 conv, no squeeze), trained by this project with `se_core.runs.ablate` on "
        "**CIFAR-10 with a CIFAR ResNet-20** (each setting varies one field of the default SE config: r=16, average "
        "squeeze, sigmoid gate, all stages, standard integration), shown beside the rows the paper **reports** for "
        "SE-ResNet-50 on ImageNet. Data set and network differ, so compare *trends*: the change of each setting "
        "relative to its own network's baselines.")
    df, label, path = abl.table_source()
    try:
        ref = abl.reference()
    except (TableError, OSError) as e:
        st.error(f"The paper's reference rows could not be loaded ({e}); restore data/reference/ablations.csv "
                 "from ../shared/reference/.")
        ref = pd.DataFrame(columns=[*tables.REFERENCE_COLUMNS, "our_axis", "our_setting", "d_vs_vanilla", "d_vs_se"])

    every = live.refresh_every(live.progress(path))

    @st.fragment(run_every=every)
    def results(df: pd.DataFrame | None) -> None:
        """Re-run every few seconds while a sweep writes this table: its progress, and the rows as they land."""
        df, prog = abl.reread(path, df), live.progress(path)
        if every and not live.is_live(prog):
            st.rerun()  # the sweep ended: one full run draws the final state and stops the polling
        live.panel(prog)
        if df is not None:
            c = st.columns(4)
            c[0].metric("Trials", len(df))
            c[1].metric("Configs", abl.config_count(df))
            c[2].metric("Seeds", df["seed"].nunique())
            c[3].metric("Epochs", "/".join(str(int(e)) for e in sorted(df["epochs"].unique())))
            data_name = ", ".join(sorted({str(d) for d in df["data"] if str(d)})) or "?"
            st.caption(f"Table: **{label}** · architectures {', '.join(sorted(df['arch'].unique()))} · data {data_name} · "
                       f"test images per trial {', '.join(str(int(n)) for n in sorted(df['test_n'].dropna().unique())) or '?'}.")
            for w in tables.table_problems(df):
                st.warning(w)
            prov = abl.provenance(path)
            total = prov and (prov.get("trials_in_sweep") or prov.get("trials_in_shard"))
            if total and not prov.get("finished"):
                st.info(f"Sweep in progress: {prov.get('trials_done', len(df))} of {total} trials are in "
                        f"this table (updated {prov.get('updated') or '?'}). Settings without rows are missing from the "
                        "charts, and settings with one seed have no spread yet. The runner resumes where it stopped: "
                        f"`{abl.RUN_COMMAND}`.")
            with st.expander("Provenance and all trials"):
                if prov:
                    st.json({k: prov.get(k) for k in PROVENANCE_KEYS}, expanded=False)
                    inv = prov.get("invocations") or []
                    if inv:
                        st.dataframe(pd.DataFrame(inv), hide_index=True, width="stretch")
                else:
                    st.caption("No provenance JSON beside this table; the per-row command/commit/hardware/date columns "
                               "below are all there is.")
                st.dataframe(df, hide_index=True, width="stretch")
                download_csv(df, Path(str(label)).stem or "ablations", key="abl-all-csv", label="Download all trials (CSV)")

        kept = variants.kept_trials(df)
        if df is not None and not kept:
            st.info(variants.none_kept_note(df))
        present = tables.axes_present(df) if df is not None else []
        sigma, dof = tables.pooled_seed_std(df) if df is not None else (float("nan"), 0)
        axes = list(AXES)
        for axis, tab in zip(axes, st.tabs([f"T{AXES[a].paper_table} · {AXES[a].title}" for a in axes])):
            with tab:
                info = AXES[axis]
                paper = tables.reference_rows(ref, axis)
                summary = tables.summarize_axis(df, axis) if axis in present else pd.DataFrame(columns=tables.SUMMARY_COLUMNS)
                rows = tables.axis_rows(df, axis) if axis in present else None
                left, right = st.columns(2)
                points: list = []
                with left:
                    if rows is not None and len(summary) and kept:  # a seed's dot picks its trial below
                        points = selected_customdata(ours_fig(summary, rows, axis), key=f"abl-{axis}-ours",
                                                     filename=f"ablation-{axis}-ours", modes=("points",))
                    elif rows is not None and len(summary):
                        show(ours_fig(summary, rows, axis), key=f"abl-{axis}-ours", filename=f"ablation-{axis}-ours")
                    elif df is not None:
                        st.info(f"The loaded table has no trials on the {info.title.lower()} axis.")
                    else:
                        st.caption("Our results appear here once a result table is loaded.")
                with right:
                    if len(paper):
                        show(paper_fig(paper, axis), key=f"abl-{axis}-paper", filename=f"ablation-{axis}-paper")
                    st.caption(tables.paper_label(axis) + " — numbers as printed in the paper, not measured here.")
                if axis == "stages":
                    st.markdown("**Stage mapping.** The paper's ResNet-50 has four stages (conv2_x..conv5_x); its "
                                "SE_Stage_2/3/4 put SE only in conv2_x/conv3_x/conv4_x, i.e. its stages 1/2/3 of 4 — "
                                "conv5_x has no single-stage row. Our CIFAR ResNet-20 has three stages (16/32/64 "
                                "channels), so our 'stage 3' is the network's *last* stage, which the paper's "
                                "SE_Stage_4 is not.\n\n" + "\n".join(f"- {k}: {v}" for k, v in tables.STAGE_NOTE.items()))
                cmp = tables.compare_axis(summary, paper)
                if len(cmp):
                    show(delta_fig(cmp), key=f"abl-{axis}-delta", filename=f"ablation-{axis}-delta", data=cmp)
                    st.caption("Ours: mean over seeds minus the no-SE ResNet-20 / default SE-ResNet-20 mean (CIFAR-10); "
                               "whiskers ± one standard error"
                               + (f" (σ = {sigma:.2f} pt pooled over the table's seeds)" if dof else "")
                               + ". Paper: its row minus ResNet-50 / SE-ResNet-50 in the ablation schedule (ImageNet), one "
                                 "run per row, so no error bars.")
                if len(summary):
                    show(cost_fig(summary, axis), key=f"abl-{axis}-cost", filename=f"ablation-{axis}-cost")
                if kept and len(summary):
                    st.markdown(f"**Kept variants: {info.title.lower()}**")
                    order = list(summary["setting"])
                    variants.open_variant(kept, axis, order, variants.picked_trial(points))
                    variants.comparison(kept, axis, order, info.title)
                with st.expander("Numbers"):
                    if len(summary):
                        st.markdown("**Ours** (error in %, mean/std over seeds; Δ in points, `_se` its standard error from "
                                    + (f"the seed-to-seed std pooled over the table's configs, σ = {sigma:.2f} pt, {dof} dof)"
                                       if dof else "a pooled seed std, which needs a config with two seeds)"))
                        st.dataframe(summary, hide_index=True, width="stretch")
                        download_csv(summary, f"ablation-{axis}-ours", key=f"abl-{axis}-ours-csv")
                    if len(paper):
                        st.markdown(f"**Paper** ({tables.paper_label(axis)})")
                        cols = ["setting", "our_setting", "top1_err", "top5_err", "gflops", "params_m", "d_vs_vanilla",
                                "d_vs_se", "source_table"]
                        st.dataframe(paper[cols], hide_index=True, width="stretch")
                        download_csv(paper[cols], f"ablation-{axis}-paper", key=f"abl-{axis}-paper-csv")

    results(df)


render()
