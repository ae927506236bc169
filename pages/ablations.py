"""Ablations: our sweep of SE design choices (CIFAR ResNet-20) beside the paper's ImageNet rows (Tables 10-16).

Thin page: ``se_core.runs.tables`` loads, checks and summarises the result table and the paper's
reference rows; ``se_core.runs.ablate`` produces the table. This file only lays out.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.ablation_charts import cost_fig, ours_fig, paper_fig
from dashboard.charts import bar_compare, download_csv, show
from se_core.runs import tables
from se_core.runs.tables import AXES, TableError
from se_core.util.paths import PathError, data_roots, resolve_user_path

SOURCES = ("Shipped table", "Upload a CSV", "Path on this machine")
RUN_COMMAND = "python -m se_core.ablate run sweeps/default.toml"
DELTA_COLORS = dict(zip(tables.DELTA_SERIES, ("#d9480f", "#f59f00", "#1c7ed6", "#74c0fc")))


@st.cache_data(max_entries=16, show_spinner=False)
def _load_path(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    return tables.load_ablation_table(path)


@st.cache_data(max_entries=8, show_spinner=False)
def _load_bytes(data: bytes, name: str) -> pd.DataFrame:
    return tables.load_ablation_table(data, name=name)


@st.cache_data(max_entries=4, show_spinner=False)
def _reference(path: str, mtime_ns: int) -> pd.DataFrame:
    return tables.load_reference(path)


def _from_path(p: Path) -> pd.DataFrame:
    stt = p.stat()
    return _load_path(str(p), stt.st_mtime_ns, stt.st_size)


def _table_source() -> tuple[pd.DataFrame | None, str | None, Path | None]:
    """The result table the user picked: (table, label, file path if any). Problems become st.error/info."""
    source = st.radio("Result table", SOURCES, horizontal=True, key="abl_source",
                      help="The shipped sweep in data/ablations, a CSV you upload, or a CSV inside the data roots.")
    try:
        if source == SOURCES[0]:
            shipped = tables.shipped_tables()
            if not shipped:
                st.info("No ablation table is shipped yet (data/ablations/ is empty). Produce it with\n\n"
                        f"```\n{RUN_COMMAND}\n```\n\nwhich writes `data/ablations/resnet20-cifar10.csv` and its "
                        "provenance JSON (resumable; see docs/ablations.md for --jobs, --shard and merging). "
                        "The paper's reference rows are shown below meanwhile.")
                return None, None, None
            names = [p.name for p in shipped]
            pick = st.selectbox("Shipped table", names, key="abl_shipped")
            p = shipped[names.index(pick)]
            return _from_path(p), f"data/ablations/{p.name}", p
        if source == SOURCES[1]:
            up = st.file_uploader("Ablation table (CSV written by python -m se_core.ablate)", type=["csv"],
                                  key="abl_upload", help=f"At most {tables.MAX_TABLE_MB:g} MB; columns as in "
                                                         "docs/ablations.md.")
            if up is None:
                st.caption("Upload a table to see it here; the paper's rows are shown below meanwhile.")
                return None, None, None
            return _load_bytes(up.getvalue(), up.name), up.name, None
        roots = ", ".join(str(r) for r in data_roots())
        text = st.text_input("Path to an ablation CSV", key="abl_path", placeholder="ablations/resnet20-cifar10.csv",
                             help=f"Absolute, or relative to a data root ({roots}).")
        if not text.strip():
            st.caption(f"Type the path of a CSV inside the data roots ({roots}).")
            return None, None, None
        p = resolve_user_path(text)
        if not p.is_file():
            raise PathError(f"{text} is a folder; type the path of a CSV file in it")
        return _from_path(p), str(p), p
    except (TableError, PathError) as e:
        st.error(f"This result table cannot be used: {str(e).rstrip('.')}. The paper's reference rows are still shown below.")
        return None, None, None
    except OSError as e:
        st.error(f"The table could not be read ({e.strerror or e}); check the file and try again.")
        return None, None, None


def _provenance(p: Path | None) -> dict | None:
    if p is None:
        return None
    f = p.with_name(p.stem + ".provenance.json")
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except (OSError, ValueError):
        return None


st.title("Ablations")
st.markdown(
    "The SE design choices Hu et al. ablate in Tables 10-16 (reduction ratio, squeeze, excitation, stages, "
    "integration, SE after the 3x3 conv, no squeeze), trained by this project with `se_core.runs.ablate` on "
    "**CIFAR-10 with a CIFAR ResNet-20** (each setting varies one field of the default SE config: r=16, average "
    "squeeze, sigmoid gate, all stages, standard integration), shown beside the rows the paper **reports** for "
    "SE-ResNet-50 on ImageNet. Data set and network differ, so compare *trends*: the change of each setting "
    "relative to its own network's baselines.")

df, label, path = _table_source()
try:
    ref_file = tables.REFERENCE_PATH
    ref = _reference(str(ref_file), ref_file.stat().st_mtime_ns)
except (TableError, OSError) as e:
    st.error(f"The paper's reference rows could not be loaded ({e}); restore data/reference/ablations.csv "
             "from ../shared/reference/.")
    ref = pd.DataFrame(columns=[*tables.REFERENCE_COLUMNS, "our_axis", "our_setting", "d_vs_vanilla", "d_vs_se"])

if df is not None:
    n_cfg = df.drop_duplicates(["arch", "reduction", "squeeze", "gate", "stages", "integration", "site"]).shape[0]
    c = st.columns(4)
    c[0].metric("Trials", len(df))
    c[1].metric("Configs", n_cfg)
    c[2].metric("Seeds", df["seed"].nunique())
    c[3].metric("Epochs", "/".join(str(int(e)) for e in sorted(df["epochs"].unique())))
    data_name = ", ".join(sorted({str(d) for d in df["data"] if str(d)})) or "?"
    st.caption(f"Table: **{label}** · architectures {', '.join(sorted(df['arch'].unique()))} · data {data_name} · "
               f"test images per trial {', '.join(str(int(n)) for n in sorted(df['test_n'].dropna().unique())) or '?'}.")
    for w in tables.table_problems(df):
        st.warning(w)
    prov = _provenance(path)
    if prov and prov.get("trials_in_shard") and not prov.get("finished"):
        st.info(f"Sweep in progress: {prov.get('trials_done', len(df))} of {prov['trials_in_shard']} trials are in "
                f"this table (updated {prov.get('updated') or '?'}). Settings without rows are missing from the "
                "charts, and settings with one seed have no spread yet. The runner resumes where it stopped: "
                f"`{RUN_COMMAND}`.")
    with st.expander("Provenance and all trials"):
        if prov:
            st.json({k: prov.get(k) for k in ("sweep", "description", "spec_file", "spec_sha256", "shard", "started",
                                                "updated", "finished", "trials_in_shard", "trials_done", "failed")},
                    expanded=False)
            inv = prov.get("invocations") or []
            if inv:
                st.dataframe(pd.DataFrame(inv), hide_index=True, width="stretch")
        else:
            st.caption("No provenance JSON beside this table; the per-row command/commit/hardware/date columns "
                       "below are all there is.")
        st.dataframe(df, hide_index=True, width="stretch")
        download_csv(df, Path(str(label)).stem or "ablations", key="abl-all-csv", label="Download all trials (CSV)")

present = tables.axes_present(df) if df is not None else []
sigma, dof = tables.pooled_seed_std(df) if df is not None else (float("nan"), 0)
axes = list(AXES)
tabs = st.tabs([f"T{AXES[a].paper_table} · {AXES[a].title}" for a in axes])
for axis, tab in zip(axes, tabs):
    with tab:
        info = AXES[axis]
        paper = tables.reference_rows(ref, axis)
        summary = tables.summarize_axis(df, axis) if axis in present else pd.DataFrame(columns=tables.SUMMARY_COLUMNS)
        rows = tables.axis_rows(df, axis) if axis in present else None
        left, right = st.columns(2)
        with left:
            if rows is not None and len(summary):
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
            fig = bar_compare(cmp, "setting", "delta", "series", error="se", colors=DELTA_COLORS, height=360,
                              title="Change in top-1 error vs each network's own baselines (points; below 0 = better)",
                              x_title="setting (ours; paper rows mapped)", y_title="Δ top-1 error (points)")
            fig.update_xaxes(type="category")
            show(fig, key=f"abl-{axis}-delta", filename=f"ablation-{axis}-delta", data=cmp)
            st.caption("Ours: mean over seeds minus the no-SE ResNet-20 / default SE-ResNet-20 mean (CIFAR-10); "
                       "whiskers ± one standard error"
                       + (f" (σ = {sigma:.2f} pt pooled over the table's seeds)" if dof else "")
                       + ". Paper: its row minus ResNet-50 / SE-ResNet-50 in the ablation schedule (ImageNet), one "
                         "run per row, so no error bars.")
        if len(summary):
            show(cost_fig(summary, axis), key=f"abl-{axis}-cost", filename=f"ablation-{axis}-cost")
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
