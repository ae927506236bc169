"""Models: registry with measured costs, the selected pair's provenance, and the training runs (curves, gates, results)."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st
import torch

from dashboard import caching, charts, state
from se_core.analysis.movement import FROZEN_SHARE, STILL_STD
from se_core.config import data_dir
from se_core.models.costs import cost_table
from se_core.models.pairs import PAIRS, pick_device
from se_core.models.registry import get_spec, list_models
from se_core.models.weights import LoadedModel
from se_core.nn.se import SEConfig
from se_core.runs.history import (
    RunError,
    RunInfo,
    all_metrics,
    fingerprint,
    gate_hist_long,
    list_runs,
    load_gate_history,
    per_class_summary,
    per_class_table,
    results_table,
    runs_table,
    seed_curves,
    summary,
)
from se_core.util.provenance import hardware


@st.cache_data(max_entries=8, show_spinner="Measuring parameters and multiply-adds...")
def _costs(names: tuple[str, ...]) -> pd.DataFrame:
    return cost_table(list(names))


@st.cache_data(max_entries=1, show_spinner=False)
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
                    "classes": f"{meta.num_classes}: {', '.join(meta.class_names[:12])}"
                               + (f", … ({meta.num_classes - 12} more)" if len(meta.class_names) > 12 else ""),
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

        st.markdown("#### Do the SE model's gates move?")
        movement, source = caching.shipped_movement(pair_name)
        if movement is None:
            st.info(f"Gate movement needs class-wise statistics ({source}); compute them on the **Class-wise** page.",
                    icon=":material/info:")
        else:
            frozen = movement[movement["frozen"]]
            st.caption(f"From `{source}` (every image of the test set). A block is **frozen** when most of its channels' "
                       "gates barely change from image to image: a constant scale, not attention "
                       f"({len(frozen)} of {len(movement)} blocks here"
                       + (f": {', '.join(frozen['label'])}" if len(frozen) else "") + ").")
            charts.show(charts.gate_movement(movement, title="Share of still channels per SE block"),
                        key="models-movement", filename=f"{pair_name}_gate_movement", data=movement)

# --- (d) training runs ---------------------------------------------------------------------------
with tab_runs:
    root = data_dir() / "runs"
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
            by_model = metrics["model"].nunique() < metrics["run"].nunique() and st.toggle(
                "Mean ± std over seeds per model", key="models-curves-seeds",
                help="One line per model, averaged over its runs (seeds) at each epoch; the band is ± one sample std.")
            if by_model:
                sc = seed_curves(metrics)
                colors = {spec.se_arch: charts.PAIR_COLORS["se"], spec.vanilla_arch: charts.PAIR_COLORS["vanilla"]}
                c1, c2 = st.columns(2)
                for col, metric, title, y_title in ((c1, "test_acc", "Test top-1 accuracy", "accuracy (%)"),
                                                    (c2, "train_loss", "Training loss", "cross-entropy (label-smoothed)")):
                    with col:
                        charts.show(charts.band_curves(sc[sc["metric"] == metric], "epoch", "mean", "std", "model",
                                                       title=f"{title}, mean ± std over seeds", y_title=y_title,
                                                       colors=colors),
                                    key=f"models-seeds-{metric}", filename=f"training_{metric}_over_seeds", data=sc)
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
                st.caption("Solid: train (running average over the epoch, augmented data); dashed: test set after the "
                           "epoch.")
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
                if gates["still_share"].notna().any():
                    charts.show(charts.line_curves(sel, "epoch", "still_share", "site",
                                                   title="Still channels per block (gate std over the probe batch < "
                                                         f"{STILL_STD}; frozen above {FROZEN_SHARE:.0%})",
                                                   y_title="share of channels"),
                                key="models-gate-still", filename=f"{run.name}_gate_still")
                else:
                    st.caption("This run's gate statistics predate the per-epoch gate-movement record; the "
                               "**Selected pair** tab shows its movement from the class-wise statistics.")
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
                                        "delta_se": st.column_config.NumberColumn(
                                            "Δ s.e.", format="%.2f",
                                            help="standard error of Δ: sqrt(s²/n of SE + s²/n of vanilla)"),
                                        "params": st.column_config.NumberColumn("params", format="localized"),
                                        "wall_time_s_mean": st.column_config.NumberColumn("train time (s)", format="%.0f")})
            charts.download_csv(summ, "se_lens_results_summary", key="models-summary-csv")
            colors = {spec.se_arch: charts.PAIR_COLORS["se"], spec.vanilla_arch: charts.PAIR_COLORS["vanilla"]}
            charts.show(charts.seed_points(summ, res, x="model", mean="top1_mean", std="top1_std", n="runs", y="top1",
                                           colors=[colors.get(m, charts.PALETTE[-1]) for m in summ["model"]],
                                           point_info=("seed", "run"), height=340, x_title="model",
                                           y_title="test top-1 (%)",
                                           title="Test top-1 of every seed (dots) and mean ± std (diamonds)"),
                        key="models-seeds", filename="top1_per_seed", data=res[["run", "model", "seed", "top1"]])
            with st.expander("Every finished run"):
                st.dataframe(res, hide_index=True, width="stretch", key="models-results")
                charts.download_csv(res, "se_lens_results_runs", key="models-results-csv")
            if not per_class.empty:
                charts.show(charts.bar_compare(per_class, "class", "acc_mean", "model", error="acc_std",
                                               title="Per-class test accuracy (whiskers: std over seeds)",
                                               x_title="class", y_title="accuracy (%)", colors=colors,
                                               y_range=(0, 100)),
                            key="models-per-class", filename="per_class_accuracy", data=per_class)


# =================================================================================================================
# ImageNet pairs from timm / torchvision, and the user's own checkpoint (se_core.models.zoo, se_core.models.user_models).
# A separate section, below the tabs above; it only reads the sidebar state and can switch it.
# =================================================================================================================
from se_core.models import zoo  # noqa: E402
from se_core.models.checkpoints import CheckpointError  # noqa: E402
from se_core.models.user_models import ModelRecipe, UserPairRecipe, inspect_file, register_user_pair, store_bytes, vanilla_choices  # noqa: E402
from se_core.nn.se import GATES, INTEGRATIONS, SITES, SQUEEZES  # noqa: E402

OTHER_ARCH = "another timm / torchvision model…"


@st.cache_data(max_entries=16, show_spinner="Reading the checkpoint...")
def _file_report(sha: str, name: str, _stored) -> tuple[bool, dict | None, int, int, str | None]:
    rep = inspect_file(_stored)
    meta = None if rep.meta is None else {"arch": rep.meta.arch, "se_config": rep.meta.se_config,
                                          "num_classes": rep.meta.num_classes, "classes": len(rep.meta.class_names)}
    return rep.has_meta, meta, rep.n_tensors, rep.n_values, rep.suggested_se.to_json() if rep.suggested_se else None


def _se_fields(role: str, suggested: str | None) -> str | None:
    """SE config widgets (for architectures built with this project's SE unit); the config as JSON."""
    base = SEConfig.from_json(suggested) if suggested else SEConfig()
    c = st.columns(7)
    r = c[0].number_input("reduction r", 1, 1024, base.reduction, key=f"models-user-{role}-r",
                          help="Guessed from the file's fc1 shapes when it has this project's SE units.")
    floor = c[1].number_input("min hidden", 1, 4096, base.min_hidden, key=f"models-user-{role}-floor",
                              help="Floor on the SE bottleneck width (timm's convention: 8); guessed from the shapes.")
    sq = c[2].selectbox("squeeze", SQUEEZES, index=SQUEEZES.index(base.squeeze), key=f"models-user-{role}-sq")
    gate = c[3].selectbox("gate", GATES, index=GATES.index(base.gate), key=f"models-user-{role}-gate")
    stages = c[4].text_input("stages", "" if base.stages is None else ",".join(map(str, base.stages)),
                             key=f"models-user-{role}-stages", help="1-based stage numbers, comma-separated; empty: all")
    integ = c[5].selectbox("integration", INTEGRATIONS, key=f"models-user-{role}-integ")
    site = c[6].selectbox("site", SITES, key=f"models-user-{role}-site")
    try:
        st_tuple = tuple(int(x) for x in stages.replace(" ", "").split(",") if x) or None
        return SEConfig(reduction=int(r), min_hidden=int(floor), squeeze=sq, gate=gate, stages=st_tuple,
                        integration=integ, site=site).to_json()
    except ValueError as e:
        st.error(f"This SE configuration is not valid: {e}. Correct the fields above.")
        return None


def _model_settings(role: str, label: str, require_se: bool) -> tuple[ModelRecipe, str] | None:
    """Uploader plus, when the file lacks metadata, architecture / SE config / class names; the recipe."""
    up = st.file_uploader(label, type=["safetensors", "pt", "pth"], key=f"models-user-{role}-upload",
                          help=".safetensors, or a .pt/.pth state dict (read with torch.load(weights_only=True); "
                               "pickled code is refused). Stored by its SHA-256 under the user cache, never executed.")
    if up is None:
        return None
    try:
        stored = store_bytes(up.name, up.getvalue())
        has_meta, meta, n_tensors, n_values, suggested = _file_report(stored.sha256, stored.name, stored)
    except CheckpointError as e:
        st.error(f"{e}. Upload a checkpoint saved with se_core.models.checkpoints.save_checkpoint, safetensors.torch.save_file "
                 "or torch.save(model.state_dict()).")
        return None
    st.caption(f"`{stored.name}`: {n_tensors} tensors, {n_values:,} values, sha256 `{stored.sha256[:16]}…`.")
    if has_meta:
        st.markdown(f"From the file's metadata: architecture **{meta['arch']}**, SE config "
                    f"`{json.dumps(meta['se_config']) if meta['se_config'] else 'none'}`, "
                    f"{meta['num_classes']} classes ({meta['classes']} names).")
        return ModelRecipe("upload", meta["arch"], file=stored.path.name, label=stored.name), stored.name
    st.info("This file has no SE Lens metadata: say what it is.", icon=":material/info:")
    archs = list_models()
    archs = sorted(archs, key=lambda a: (get_spec(a).has_se != require_se, a)) + [OTHER_ARCH]
    c1, c2 = st.columns([2, 3])
    arch = c1.selectbox("Architecture", archs, key=f"models-user-{role}-arch",
                        help="The registered architecture the weights belong to; shapes are checked key by key.")
    if arch == OTHER_ARCH:
        arch = c2.text_input("Library model", "", key=f"models-user-{role}-libarch", placeholder="timm:seresnet18",
                             help="Any timm or torchvision classifier: timm:<name> or torchvision:<name>.").strip()
        if not arch:
            return None
    se_json = None
    try:
        spec = get_spec(arch)
    except KeyError as e:
        st.error(f"{e.args[0] if e.args else e}. Type a name from timm.list_models() or "
                 "torchvision.models.list_models(), with its timm: / torchvision: prefix.")
        return None
    if spec.takes_se and role == "se":
        st.markdown("SE configuration of the file's model (not stored in the file):")
        se_json = _se_fields(role, suggested)
        if se_json is None:
            return None
    names = st.text_area("Class names (optional)", "", key=f"models-user-{role}-classes", height=90,
                         help="One per line or comma-separated, in output order. Empty: the architecture's own "
                              "(the library's ImageNet names, CIFAR-10's, or class numbers).")
    parts = [x.strip() for x in (names.splitlines() if "\n" in names.strip() else names.split(","))]
    class_names = tuple(x for x in parts if x)
    return ModelRecipe("upload", arch, file=stored.path.name, se=json.loads(se_json) if se_json else None,
                       class_names=class_names, label=stored.name), stored.name


st.divider()
st.header("ImageNet pairs and your own checkpoint")
lib_tab, own_tab = st.tabs(["ImageNet pairs (timm, torchvision)", "Your checkpoint"])

with lib_tab:
    st.markdown("SE networks from **timm** and **torchvision** next to the closest vanilla network, with the weights "
                "those libraries publish. They are read from the libraries' own caches on this machine (Hugging Face "
                "hub cache, torch hub checkpoints) or from `data/weights/`; SE Lens never downloads anything.")
    try:
        avail = pd.DataFrame(caching.library_weights())
    except Exception as e:  # noqa: BLE001 - a broken library install must not take the page down
        st.error(f"The library weights cannot be checked ({type(e).__name__}: {e}); check that timm and torchvision "
                 "are installed.")
        avail = pd.DataFrame()
    if not avail.empty:
        st.dataframe(avail[["pair", "role", "model", "weights", "available", "file"]], hide_index=True,
                     width="stretch", key="models-zoo-table",
                     column_config={"available": st.column_config.CheckboxColumn("on disk"),
                                    "file": st.column_config.TextColumn("file (found, or where it is expected)")})
        for zp in zoo.ZOO_PAIRS:
            rows = avail[avail["pair"] == zp.name]
            ready = bool(len(rows)) and bool(rows["available"].all())
            with st.expander(f"{PAIRS[zp.name].title}: {'ready' if ready else 'weights missing'}"):
                st.markdown(zp.note)
                for r in rows.itertuples():
                    if r.available:
                        st.markdown(f"**{r.role}** `{r.model}` ({r.weights}): `{r.file}`")
                    else:
                        st.markdown(f"**{r.role}** `{r.model}` ({r.weights}): **missing**. {r.message}")
                        st.code(r.command, language="bash")
                    if r.recipe:
                        st.caption(f"Training recipe / origin: {r.recipe}")
                if ready and st.button("Show this pair", key=f"models-zoo-show-{zp.name}",
                                       disabled=pair_name == zp.name):
                    state.select_pair(zp.name)
                    st.rerun()

with own_tab:
    done = st.session_state.pop("models-user-registered", None)
    if done:
        st.success(f"Registered **{PAIRS[done].title}** (`{done}`) and selected it in the sidebar; every page now "
                   "shows it. The link with `?pair=` reopens it.")
    st.markdown("Compare **your** SE model with a vanilla counterpart on every page. Upload its checkpoint (any "
                "registered architecture, or any timm / torchvision classifier); the architecture, SE configuration "
                "and class names come from the file's metadata, else you choose them below. Shapes are checked key by "
                "key before anything runs.")
    se_choice = _model_settings("se", "SE model checkpoint", require_se=True)
    if se_choice is not None:
        se_recipe, se_label = se_choice
        choices = vanilla_choices(se_recipe.arch)
        labels = [c.label for c in choices] + ["Upload a second checkpoint (vanilla model)"]
        pick = st.selectbox("Vanilla counterpart", range(len(labels)), format_func=lambda i: labels[i],
                            key="models-user-vanilla-choice",
                            help="The natural counterpart first: the vanilla model of a registered pair with the same "
                                 "SE architecture, then the same family. Random initialisations are untrained stand-ins.")
        van_recipe: ModelRecipe | None = None
        if pick == len(choices):
            van = _model_settings("vanilla", "Vanilla model checkpoint", require_se=False)
            van_recipe = van[0] if van else None
        else:
            ch = choices[pick]
            st.caption(ch.detail)
            van_recipe = ch.recipe if ch.available else None
            if not ch.available:
                st.warning(f"The weights of this counterpart are not on this machine ({ch.detail}); see the ImageNet "
                           "pairs tab for how to get them, or pick another counterpart.")
        if van_recipe is not None and st.button("Check and compare", key="models-user-register", type="primary",
                                                icon=":material/compare_arrows:"):
            se_lm, err = caching.user_model(se_recipe.file, se_recipe.arch, json.dumps(se_recipe.se, sort_keys=True)
                                            if se_recipe.se else None, se_recipe.class_names, se_label, True)
            if err:
                st.error(f"Your SE checkpoint cannot be used: {err}")
            else:
                van_err = None
                if van_recipe.source == "upload":
                    _, van_err = caching.user_model(van_recipe.file, van_recipe.arch, None, van_recipe.class_names,
                                                    van_recipe.label, False)
                if van_err:
                    st.error(f"The vanilla checkpoint cannot be used: {van_err}")
                else:
                    name = register_user_pair(UserPairRecipe(se_recipe, van_recipe))
                    state.add_user_pair(name)
                    st.session_state["models-user-registered"] = name
                    st.rerun()
