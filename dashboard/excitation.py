"""The class-wise statistics the Class-wise page draws: the shipped files, or a pass computed here.

Shipped statistics are checked against the loaded checkpoints (the SHA-256 their provenance
records); computed ones are kept on disk by :func:`se_core.analysis.stats.cached_stats`, keyed by
checkpoint and data digest, so a data set is never processed twice for one model. Also the
tables the page's charts and CSV downloads share.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import pair_pass
from dashboard.datasets import SOURCES
from se_core.analysis import stats as S
from se_core.data.datasets import ImageSet
from se_core.models.weights import LoadedModel, LoadedPair
from se_core.probe.sites import pair_sites
from se_core.util.files import file_sha256


@st.cache_data(max_entries=16, show_spinner=False)
def _load_stats(path: str, mtime_ns: int) -> S.ExcitationStats:
    return S.load_stats(path)


def stats_file(path: Path) -> S.ExcitationStats:
    """A statistics file, read once per modification time."""
    return _load_stats(str(path), path.stat().st_mtime_ns)


@st.cache_data(max_entries=16, show_spinner=False)
def _sha(path: str, mtime_ns: int) -> str:
    return file_sha256(path)


def checkpoint_sha(lm: LoadedModel) -> str:
    """SHA-256 of a loaded model's checkpoint file, hashed once per modification time."""
    return _sha(lm.source, Path(lm.source).stat().st_mtime_ns)


def from_other_checkpoint(stats: S.ExcitationStats, lm: LoadedModel) -> bool:
    """Whether ``stats`` describe other weights than the loaded model's."""
    return S.from_other_checkpoint(stats, checkpoint_sha(lm))


def shipped(pair: LoadedPair, pair_name: str) -> dict[str, S.ExcitationStats] | None:
    """The pair's shipped statistics per role, or None after saying what is missing or wrong."""
    paths = S.shipped_paths(pair_name)
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        st.info("No shipped statistics for this pair yet (" + ", ".join(p.name for p in missing) + " missing). "
                f"Create them once with:\n\n```\n{S.SHIP_COMMAND}\n```\n\nor choose **{SOURCES['cifar']}** above.")
        return None
    out = {}
    for role, p in paths.items():
        try:
            out[role] = stats_file(p)
        except S.StatsError as e:
            st.error(f"The shipped statistics cannot be read: {e}")
            return None
        lm = pair.se if role == "se" else pair.vanilla
        if from_other_checkpoint(out[role], lm):
            st.warning(f"{p.name} was computed from a different {role} checkpoint than the one loaded "
                       f"({Path(lm.source).name}); regenerate with `{S.SHIP_COMMAND}`.")
    return out


def computed(pair: LoadedPair, data: ImageSet) -> dict[str, S.ExcitationStats] | None:
    """Both models' statistics on ``data`` from the disk cache, else a Compute button (with Stop and progress)."""
    def compute(role: str, lm: LoadedModel, progress: S.Progress, should_stop: S.StopCheck) -> None:
        S.cached_stats(lm.source, lm.model, data, lm.meta.mean, lm.meta.std, role=role, arch=lm.name,
                       device=next(lm.model.parameters()).device, progress=progress, should_stop=should_stop,
                       command="dashboard page Class-wise")

    return pair_pass.cached_pass(pair, data, what="statistics", key="cw",
                                 path_of=lambda lm: S.cache_path(lm.source, data), load=stats_file, compute=compute)


def selectivity_frame(se: S.ExcitationStats, van: S.ExcitationStats | None) -> pd.DataFrame:
    """Selectivity per block of the SE gates, the SE squeeze and (when given) the vanilla squeeze, one
    ``series`` each."""
    rows = []
    for what, st_, model in (("gates s", se, "SE"), ("squeeze z", se, "SE"), ("squeeze z", van, "vanilla")):
        if st_ is None:
            continue
        df = st_.selectivity_frame("s" if what == "gates s" else "z")
        df["series"], df["model"] = f"{what} ({model})", model
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def z_frame(se: S.ExcitationStats, van: S.ExcitationStats | None, z_site: str) -> pd.DataFrame:
    """Squeeze z mean and std per channel at SE site ``z_site``, and at the vanilla model's matching site."""
    rows = [pd.DataFrame({"channel": np.arange(se.site(z_site).channels), "mean": se.z_mean(z_site),
                          "std": np.sqrt(se.z_var(z_site)), "model": "SE"})]
    van_site = pair_sites(se.z_sites, van.z_sites).get(z_site) if van is not None else None
    if van_site is not None:
        rows.append(pd.DataFrame({"channel": np.arange(van.site(van_site).channels), "mean": van.z_mean(van_site),
                                  "std": np.sqrt(van.z_var(van_site)), "model": "vanilla"}))
    return pd.concat(rows, ignore_index=True)
