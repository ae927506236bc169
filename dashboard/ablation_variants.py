"""The Ablations page's kept variants: which of the table's trials have a kept checkpoint, opening one as the
sidebar's pair on Inspect or Gate space (picked beside its chart, or by clicking its seed's dot), and one axis'
variants compared per block (gate distributions, input dependence), computed through
:mod:`se_core.analysis.gates.compare` and kept in the gate-sample disk cache.

Kept checkpoints are read from :func:`se_core.config.ablations_dir` (``data/ablations/<sweep>/``), where
``python -m se_core.ablate run`` writes them as trials finish. Problems become ``st.error``/``st.info``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from dashboard import datasets, handoff, pair_pass
from dashboard.ablation_tables import RUN_COMMAND
from dashboard.display import show
from dashboard.figures.ablations import variant_dependence_fig, variant_gates_fig
from se_core.analysis.gates import compare as C
from se_core.analysis.stats import StatsError
from se_core.config import ablations_dir
from se_core.data.datasets import DataError
from se_core.models.ablation_models import KeptTrial, list_kept, pair_name, twin_problem
from se_core.models.checkpoints import CheckpointError
from se_core.models.registry import get_spec
from se_core.util.paths import repo_relative

_TRIAL = re.compile(r"^[0-9a-f]{12}$")


def kept_trials(df: pd.DataFrame | None) -> dict[str, KeptTrial]:
    """The table's trials whose checkpoints are kept (same sweep and trial id), by trial id."""
    if df is None or not len(df) or "sweep" not in df:
        return {}
    ids = set(df["trial_id"].astype(str))
    out: dict[str, KeptTrial] = {}
    for sweep in sorted({str(s) for s in df["sweep"].dropna() if str(s)}):
        out.update({k.trial_id: k for k in list_kept(sweep) if k.trial_id in ids})
    return out


def none_kept_note(df: pd.DataFrame) -> str:
    """What to run to get kept checkpoints, for a table that has none."""
    sweeps = ", ".join(sorted({str(s) for s in df["sweep"].dropna() if str(s)})) or "<sweep>"
    return (f"No checkpoint of this table's trials is kept in `{repo_relative(ablations_dir())}/{sweeps}/`, so its "
            "variants cannot be opened or compared here yet. The ablation runner keeps every trial it finishes "
            f"(float16, about 0.5 MB each, with provenance): `{RUN_COMMAND}` (rows trained before it kept them, "
            "such as the shipped seeds 0 and 1, get theirs only while their trial folders still hold "
            "`model.safetensors`; a new seed added to the spec keeps all of its trials).")


def axis_variants(kept: dict[str, KeptTrial], axis: str, order: Sequence[str]) -> list[KeptTrial]:
    """The kept SE trials on ``axis`` (the default SE trial included), in the chart's setting order, then by seed."""
    rank = {s: i for i, s in enumerate(order)}
    items = [k for k in kept.values() if not k.is_baseline and k.setting_on(axis) is not None]
    return sorted(items, key=lambda k: (rank.get(k.setting_on(axis) or "", len(rank)), k.seed, k.trial_id))


def picked_trial(points: Sequence) -> str | None:
    """The trial id among the selected points' ``customdata`` (the chart's seed dots carry ``[seed, trial_id]``)."""
    for data in reversed(list(points)):
        values = data if isinstance(data, (list, tuple)) else [data]
        for v in values:
            if isinstance(v, str) and _TRIAL.match(v):
                return v
    return None


def open_variant(kept: dict[str, KeptTrial], axis: str, order: Sequence[str], picked: str | None) -> None:
    """A picker of the axis' kept variants (preset by a dot clicked on the chart) and buttons opening the chosen one
    as the sidebar's pair on Inspect or Gate space; a variant whose vanilla twin is not kept says so."""
    variants = axis_variants(kept, axis, order)
    if not variants:
        st.caption("None of this axis' settings has a kept checkpoint yet.")
        return
    if picked is not None and picked not in kept:
        st.caption(f"Trial {picked}, clicked on the chart, has no kept checkpoint (it ran before the runner kept "
                   "them, or elsewhere); pick a kept one below.")
    elif picked is not None and kept[picked].is_baseline:
        st.caption("The no-SE trial clicked on the chart is every variant's vanilla twin; pick an SE variant below.")
    key = f"abl-{axis}-variant"
    names = [k.name for k in variants]
    labels = {k.name: f"{k.setting_on(axis)} · seed {k.seed} · trial {k.trial_id}" for k in variants}
    if picked is not None and picked in kept and st.session_state.get(f"{key}-applied") != picked:
        st.session_state[f"{key}-applied"] = picked  # a new click on the chart; later picks in the box stand
        if pair_name(kept[picked].sweep, picked) in names:
            st.session_state[key] = pair_name(kept[picked].sweep, picked)
    if st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = c1.selectbox("Open a variant (SE model) with its sweep's no-SE trial of the same seed", names, key=key,
                        format_func=labels.get,
                        help="Every trial on this axis with a kept checkpoint. Clicking a seed's dot on the chart "
                             "above picks its trial here.")
    problem = twin_problem(name)
    if c2.button("Open on Inspect", key=f"{key}-inspect", icon=":material/visibility:", disabled=problem is not None,
                 help="Makes this variant and its no-SE twin the sidebar's model pair and goes to Inspect."):
        handoff.open_pair(name, handoff.INSPECT_PAGE)
    if c3.button("Open in Gate space", key=f"{key}-gatespace", icon=":material/scatter_plot:",
                 disabled=problem is not None,
                 help="Makes this variant and its no-SE twin the sidebar's model pair and goes to Gate space."):
        handoff.open_pair(name, handoff.GATESPACE_PAGE)
    if problem is not None:
        st.warning(f"This variant cannot be opened as a pair yet: {problem}.")


@st.cache_data(max_entries=32, show_spinner=False)
def _frame(files: tuple[tuple[str, int, int], ...], labels: tuple[tuple[str, str], ...], data_digest: str,
           _variants: tuple[C.Variant, ...], _data) -> pd.DataFrame:
    """The comparison from the disk cache, once per (checkpoint files, labels, probe set)."""
    return C.compare_variants(list(_variants), _data, compute=False)


def comparison(kept: dict[str, KeptTrial], axis: str, order: Sequence[str], axis_title: str) -> None:
    """The axis' kept variants of one seed side by side per block: their gate distributions over a fixed probe
    set and their input dependence against depth (a Compute button until their gates are in the disk cache)."""
    variants = axis_variants(kept, axis, order)
    if not variants:
        return
    seeds = sorted({k.seed for k in variants})
    c1, c2 = st.columns(2)
    seed = c1.selectbox("Seed", seeds, index=len(seeds) - 1, key=f"abl-{axis}-cmp-seed",
                        help="The variants of one seed are compared (each is one trained network).")
    n = int(c2.number_input("Probe images", 100, 10_000, C.PROBE_IMAGES, step=100, key=f"abl-{axis}-cmp-n",
                            help="Evenly spaced images of the test split, the same for every variant."))
    chosen = [k for k in variants if k.seed == seed]
    try:
        spec = chosen[0].probe_data
    except ValueError as e:
        st.error(f"The comparison cannot run: {e}.")
        return
    try:
        data = datasets.dataset(spec, "test", tuple(get_spec(chosen[0].arch).input_size), n, 0)
    except (DataError, OSError, KeyError) as e:
        st.error(f"The probe images ({spec}, test split) cannot be loaded: {e}. The comparison needs the data set "
                 "the sweep trained on.")
        return
    vs = tuple(C.Variant(str(k.setting_on(axis)), k.path, k.trial_id) for k in chosen)
    absent = [s for s in order if s != "no SE" and s not in {v.label for v in vs}]
    if absent:
        st.caption(f"Settings without a kept checkpoint for seed {seed}: {', '.join(absent)}.")
    todo = C.missing(vs, data)
    if todo:
        st.info(f"{data.name}: the gates of {len(todo)} of {len(vs)} variant(s) are not computed yet; they are kept on "
                "disk once done (the Gate space page's cache).")
        if not st.button("Compute gate comparison", key=f"abl-{axis}-cmp-go", type="primary"):
            return
        bar = st.progress(0.0, text="Starting...")
        try:
            C.compare_variants(vs, data, progress=lambda d, t: bar.progress(min(d / max(t, 1), 1.0), text=f"batch {d}/{t}"),
                               command="dashboard page Ablations (variant comparison)")
        except (StatsError, CheckpointError) as e:
            bar.empty()
            st.error(f"The gate comparison cannot be computed: {e}")
            return
        except OSError as e:
            bar.empty()
            pair_pass.cache_error("gate samples", e)
            return
        st.rerun()
    try:
        frame = _frame(C.checkpoint_key(vs), tuple((v.label, v.key) for v in vs), data.digest, vs, data)
    except (StatsError, CheckpointError, OSError) as e:
        st.error(f"The gate comparison cannot be read: {e}")
        return
    what = f"{axis_title}, seed {seed}, {len(data):,} test images"
    show(variant_gates_fig(frame, title_text=f"Gate values s per block: {what}"), key=f"abl-{axis}-cmp-gates",
         filename=f"ablation-{axis}-gates-s{seed}")
    show(variant_dependence_fig(frame, title_text=f"Input dependence of the gates against depth: {what}"),
         key=f"abl-{axis}-cmp-dependence", filename=f"ablation-{axis}-gate-dependence-s{seed}", data=frame)
    st.caption("Boxes: quartiles and median of every image's gate in every channel of the block, whiskers the 5th and "
               "95th percentiles, dashed the mean. Lines: the share of the block's gate variance that changes with "
               "the image (solid) and with its class (dotted); the rest is static, a fixed per-channel scale "
               "(Gate space page, input dependence).")
