"""The Knock-out tab of the Class-wise page: its controls, the run (progress, Stop), and the table kept on disk.

A measured table is saved under the statistics cache, keyed by the SE checkpoint's hash, the
images and the modes (:func:`table_path`), so a rerun only reads it; a damaged saved table is
removed so the next run measures again. The shipped table is used when no data source is chosen.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.datasets import dataset
from dashboard.display import show
from dashboard.excitation import checkpoint_sha
from dashboard.figures import classwise as figs
from se_core.analysis import knockout as ko
from se_core.analysis import stats as S
from se_core.analysis.evaluate import eval_subset_indices
from se_core.data.datasets import ImageSet
from se_core.models.weights import LoadedPair
from se_core.util.files import atomic_write_bytes

STOP_KO = "cw_stop_knockout"
KO_REQUEST = "cw_ko_request"


def table_path(pair: LoadedPair, data: ImageSet, n: int, modes: tuple[str, ...]) -> Path:
    """Where the knock-out table of (SE checkpoint, images, modes) is kept."""
    return ko.cache_path(checkpoint_sha(pair.se), data, n, modes)


def save_table(path: Path, df: pd.DataFrame) -> None:
    """Write a measured table atomically (a reader never sees half a file)."""
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))


def load_saved(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """(the saved table, None), or (None, why) after removing a damaged entry so the next run recomputes it."""
    try:
        return ko.load_table(path), None
    except ko.KnockoutError as e:
        path.unlink(missing_ok=True)
        return None, str(e)


def _run(pair: LoadedPair, sub: ImageSet, modes: tuple[str, ...], stats: S.ExcitationStats, path: Path) -> None:
    st.button("Stop", key="cw_ko_stop", on_click=state.request_stop, args=(STOP_KO,),
              help="Stops between batches; nothing is saved.")
    bar = st.progress(0.0, text="Baseline...")
    mean_gates = {s.name: stats.mean(s.name) for s in stats.gate_sites}
    try:
        df = ko.knockout(pair.se.model, sub, pair.se.meta.mean, pair.se.meta.std, modes=modes,
                         mean_gates=mean_gates, device=next(pair.se.model.parameters()).device,
                         progress=lambda i, t: bar.progress(i / t, text=f"evaluation {i}/{t}"),
                         should_stop=state.stopper(STOP_KO))
    except ko.KnockoutCancelled:
        st.session_state.pop(KO_REQUEST, None)
        st.warning("Knock-out stopped; nothing was saved.")
        return
    except ko.KnockoutError as e:
        st.error(f"The knock-out cannot run: {e}")
        return
    finally:
        bar.empty()
    save_table(path, df)
    st.rerun()  # redraw from the saved table, without the Stop button


def section(pair: LoadedPair, pair_name: str, stats: S.ExcitationStats, data: ImageSet | None) -> None:
    """The Knock-out tab: the shipped table when no data source is chosen, else controls and the measured table."""
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
        show(figs.knockout(df), key="cw_ko_shipped", filename="knockout_shipped", data=df)
        return
    if data is None:
        data = dataset(S.DEFAULT_DATA, "test", tuple(pair.se.meta.input_size), None, 0)
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
    path = table_path(pair, sub, n, modes)
    if st.button("Run knock-out", key="cw_ko_run"):
        st.session_state[KO_REQUEST] = str(path)
    if not path.is_file() and st.session_state.get(KO_REQUEST) == str(path):
        _run(pair, sub, modes, stats, path)
        return
    if not path.is_file():
        st.caption("Press **Run knock-out** (one evaluation per block, stage and mode; results are kept on disk).")
        return
    df, problem = load_saved(path)
    if df is None:
        st.error(f"The saved knock-out result could not be read ({problem}); it was removed. Press **Run knock-out** to "
                 "measure it again.")
        return
    base = df[df["kind"] == "baseline"]["top1"].iloc[0]
    st.metric("Baseline top-1 (unmodified SE model)", f"{base:.2f} %", help=f"{int(df['n'].iloc[0])} images of {data.name}")
    show(figs.knockout(df), key="cw_ko_chart", filename="knockout", data=df)
    st.dataframe(df.drop(columns=["sites"]), hide_index=True, width="stretch")

